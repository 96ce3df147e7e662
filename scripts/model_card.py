"""Write a shipped model's card from its own metadata and a `wavegms evaluate` run of it.

    python scripts/model_card.py NAME EVAL_DIR src/wavegms/package_data/model_cards/NAME.md \
        [--paper DSC HD95] [--precision fp32|int8]

Every number in the card is read from the model file's JSON (training history, schedule) or
from the evaluation's summary.json; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wavegms.core.files import read_json, write_text
from wavegms.store.catalogue import read_config, resolve_model

#: Where the cards live: inside the package, so that an installed wheel exports them too.
CARDS = "src/wavegms/package_data/model_cards"
#: The training recipes the Reproduce section names (found from the script, not the working folder)
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _row(summary: dict, key: str) -> str:
    cells = []
    for size in ("224", "native"):
        s = summary[f"{key}_{size}"]
        cells.append(f"{s['mean']:.2f} ± {s['std']:.2f}")
    return " | ".join(cells)


def _dice(row: dict) -> str:
    """An epoch's validation Dice, or a dash for an epoch not validated (``val_every``)."""
    return f"{row['val_dice']:.4f}" if "val_dice" in row else "-"


def worst_cases(scores_csv: Path, n: int = 5) -> list[str]:
    """Table rows of the ``n`` test images with the lowest DSC at 224."""
    import csv

    with open(scores_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["name"] not in ("mean", "std")]
    rows.sort(key=lambda r: float(r["dsc_224"]))
    return [
        f"| {r['name']} | {float(r['dsc_224']):.1f} | {float(r['hd95_224']):.1f} | "
        f"{int(float(r['mask_area']))} |"
        for r in rows[:n]
    ]


# What the paper's figures do and do not cover, by dataset folder: a card never invites a
# comparison the protocols do not support.
DATASET_NOTES = {
    "kvasir_seg": (
        "The Wave-GMS paper scored Kvasir-Instrument, not Kvasir-SEG, so it has no figure to "
        "compare this model with. Polyp-segmentation papers that follow the PraNet protocol "
        "(trained on Kvasir-SEG and CVC-ClinicDB together, their own 900/100 split) report "
        "numbers that are not comparable with this model's either: it is trained on Kvasir-SEG "
        "alone and scored on the official 880/120 test split."
    ),
}


def provenance_lines(provenance: dict) -> list[str]:
    """The card's provenance: which file these figures belong to (its sha256: a fine-tuned
    copy under the same name is another model) and the precision they were computed in."""
    exact = provenance["precision"] == "fp32"
    how = (
        "exact fp32 (every exact backend, ONNX Runtime or PyTorch, gives these figures)"
        if exact
        else f"{provenance['precision']} (not exact; the default run is exact fp32)"
    )
    return [
        "## Provenance",
        "",
        f"- Model file: `{provenance['file']}`, sha256 `{provenance['sha256']}`.",
        f"- Test scores computed in {how}.",
    ]


def box_lines(bench: dict, row: str | None) -> list[str]:
    """The card's box-mode section from a ``scripts/bench_boxes.py --json`` run of the test
    split: box mode's ``row`` (default: the row the run marks as box mode's default) against
    whole-image segmentation by ``--model``."""
    row = row or bench.get("default_row") or "m=1.5 crop keep=largest"
    whole, boxed = bench["mean"]["whole"], bench["mean"][row]
    paired = "crop+whole" in row
    what = (
        "box mode's default: this model's crops, each averaged with `busi`'s whole-image soft "
        f"mask (`{row}`)"
        if paired
        else f"box mode with this model (`{row}`)"
    )
    lines = [
        "## Box mode (test split)",
        "",
        'Crops around a box drawn by the user (`wavegms segment --box`, the napari "Segment in '
        f"boxes\" dock), MedSAM's protocol (`scripts/bench_boxes.py`: each of {bench['n']} test "
        "images' ground-truth box enlarged by a uniform 0-20 px per side, seed 0):",
        "",
        "| | DSC % (native size) |",
        "|---|---|",
        f"| whole image, `busi` | {whole:.2f} ± {bench['std']['whole']:.2f} |",
        f"| {what} | {boxed:.2f} ± {bench['std'][row]:.2f} ({boxed - whole:+.2f}) |",
    ]
    crops = row.replace("crop+whole", "crop")  # the same margin and keep, crops alone
    if paired and crops in bench["mean"]:
        alone = bench["mean"][crops]
        lines += [
            f"| this model's crops alone (`{crops}`) | {alone:.2f} ± {bench['std'][crops]:.2f} "
            f"({alone - whole:+.2f}) |",
            "",
            "The pairing, the margin and the kept part were chosen on the validation images "
            "carved from the train names, not on test scores; an earlier test run had already "
            'scored every row before that choice (docs/performance.md, "Box prompts").',
        ]
    return lines


def warm_recipe(name: str, train: dict) -> Path | None:
    """The config of a warm restart of the shipped ``name`` (its ``init_model`` is ``name``)
    that trained this model: the file in configs/ whose run name is the model's run name."""
    if train.get("init_model") != name:
        return None
    import yaml

    for path in sorted(CONFIGS.glob("*.yaml")):
        if (yaml.safe_load(path.read_text()) or {}).get("name") == train.get("name"):
            return Path("configs", path.name)
    return None


def reproduce_lines(name: str, dataset: str, train: dict) -> list[str]:
    """The card's commands: the first run's recipe, then the warm restart that made this one."""
    own = f"{name.replace('-', '_')}_cpu.yaml"  # a model with its own recipe
    recipe = Path("configs", own if (CONFIGS / own).is_file() else f"{dataset}_cpu.yaml")
    warm = warm_recipe(name, train)
    then = (
        [
            f"wavegms train --config {warm.as_posix()}   # then warm restarts from the shipped "
            f"{name}, each shipped when better (this model's history above)"
        ]
        if warm
        else []
    )
    return [
        "",
        "## Reproduce",
        "",
        "```bash",
        f"wavegms train --config {recipe.as_posix()}   # configs/{dataset}.yaml on a GPU",
        *then,
        f"python scripts/ship_model.py RUN_DIR {name}",
        f"wavegms evaluate --model {name} --data ../shared/data/{dataset} --split test --out EVAL",
        f"python scripts/model_card.py {name} EVAL {CARDS}/{name}.md",
        "```",
    ]


def card(
    name: str,
    config: dict,
    evaluation: dict,
    paper: tuple[float, float] | None,
    hardware: str,
    worst: list[str] | None = None,
    provenance: dict | None = None,
    boxes: list[str] | None = None,
) -> str:
    meta = config["metadata"]
    train = meta["config"]
    history = meta["history"]
    summary = evaluation["summary"]
    hours = meta["train_wall_seconds"] / 3600
    views = train["cached_views"]
    if views == 1:
        augment = "none (1 cached, unaugmented view of each image)"
    elif views > 1:
        augment = f"{views - 1} augmented cached view(s) beside the plain one"
    else:
        augment = "on every batch" if train["augment"] else "off"
    if train.get("box_crops"):
        augment += (f", {train['box_crops']:.0%} of the augmented views cut around the lesion "
                    f"as box mode cuts them (margins {train['box_margins']})")  # fmt: skip
    best = max((row for row in history if "val_dice" in row), key=lambda row: row["val_dice"])
    dataset = Path(train["data_dir"]).name  # configs are named after their dataset folder
    lines = [
        f"# Model card: `{name}`",
        "",
        f"Wave-GMS ({config['model']['backend'].upper()} backend, "
        f"{config['model']['latent_channels']} latent channels, "
        f"{config['model']['image_size']}x{config['model']['image_size']} input), "
        f"weights stored as {config['dtype']} safetensors.",
        "",
        "## Training",
        "",
        f"- Data: `{train['data_dir']}`, split `{train['split']}`: {meta['train_images']} "
        f"training and {meta['val_images']} validation images (validation carved from the "
        "training names by a seeded hash; the test split was never used for selection).",
        f"- Schedule: {train['epochs']} epochs, batch {train['batch_size']}, AdamW lr "
        f"{train['lr']} (warm-up {train['warmup_epochs']}, cosine), seed {train['seed']}, "
        f"augmentation: {augment}; Dice through the decoder on heads "
        f"{', '.join(train['seg_heads'])} every {train['seg_every']} batch(es).",
        *(
            [f"- Started from the model `{Path(train['init_model']).stem}` (fine-tuned from it)."]
            if train.get("init_model")
            else []
        ),
        f"- Wall time: {hours:.2f} h (sum of epochs) on {hardware}.",
        f"- Selected: epoch {best['epoch']}, validation Dice {best['val_dice']:.4f}.",
        "",
        "| epoch | loss | validation Dice | seconds |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['epoch']} | {r['loss']:.4f} | {_dice(r)} | {r['seconds']:.0f} |" for r in history
    ]
    lines += [
        "",
        f"## Test scores ({evaluation['n_images']} images, threshold {evaluation['threshold']})",
        "",
        "| metric | at 224 (paper protocol) | at native size |",
        "|---|---|---|",
        f"| DSC % | {_row(summary, 'dsc')} |",
        f"| IoU % | {_row(summary, 'iou')} |",
        f"| HD95 px | {_row(summary, 'hd95')} |",
        "",
        f"- {evaluation['overlap_convention']}.",
        f"- {evaluation['hd95_convention']}.",
        f"- Mean ± {evaluation['std_definition']}.",
    ]
    if worst:
        lines += [
            "",
            "## Failure cases",
            "",
            "The test images it segments worst (DSC at 224; a predicted area of 0 means it found "
            "no lesion). The images are not reproduced here (research data is not shipped): "
            "open them from the dataset with the masks `wavegms evaluate` writes.",
            "",
            "| image | DSC % | HD95 px | predicted area (native px) |",
            "|---|---|---|---|",
            *worst,
        ]
    note = DATASET_NOTES.get(Path(train["data_dir"]).name)
    if note is not None:
        lines += ["", "## Comparing with published figures", "", note]
    if paper is not None:
        dsc = summary["dsc_224"]["mean"]
        hd = summary["hd95_224"]["mean"]
        lines += [
            "",
            "## Against the paper",
            "",
            f"The paper reports DSC {paper[0]:.2f} and HD95 {paper[1]:.2f} at 224 on this "
            f"split; this model scores {dsc:.2f} ({dsc - paper[0]:+.2f}) and {hd:.2f} "
            f"({hd - paper[1]:+.2f}).",
        ]
    if boxes:
        lines += ["", *boxes]
    if provenance:
        lines += ["", *provenance_lines(provenance)]
    lines += reproduce_lines(name, dataset, train)
    lines += [
        "",
        "## Use",
        "",
        "Research use: segmenting lesions in 2D images like its training data. It is not a "
        "medical device and must not be used for diagnosis. Check and correct its masks; "
        "fine-tune on your own corrected images (napari dock or `wavegms train`) for other "
        "scanners and sites.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("eval_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--paper", nargs=2, type=float, metavar=("DSC", "HD95"))
    parser.add_argument("--hardware", default="the training machine", help="where it trained")
    parser.add_argument(
        "--precision", choices=("fp32", "int8"), default="fp32",
        help="the precision EVAL_DIR was computed in (`wavegms evaluate --precision`)",
    )  # fmt: skip
    parser.add_argument("--boxes", type=Path, help="a bench_boxes.py --json run of the test split")
    parser.add_argument(
        "--box-row", help="its box-mode row (default: the row it marks as box mode's default)"
    )
    args = parser.parse_args()
    from wavegms.runtime.graph_cache import file_sha256

    weights = resolve_model(args.name)
    config = read_config(weights)
    provenance = {"file": weights.name, "sha256": file_sha256(weights), "precision": args.precision}
    evaluation = read_json(args.eval_dir / "summary.json")
    paper = tuple(args.paper) if args.paper else None
    worst = worst_cases(args.eval_dir / "results.csv")
    boxes = box_lines(read_json(args.boxes), args.box_row) if args.boxes else None
    text = card(args.name, config, evaluation, paper, args.hardware, worst, provenance, boxes)
    write_text(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
