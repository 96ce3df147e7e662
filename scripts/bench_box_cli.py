"""Box mode end to end: ``wavegms segment --boxes`` (no model named) on one split, with the
boxes of ``bench_boxes.py`` (the same jitter and seed), scored as that script scores.

    python scripts/bench_box_cli.py --data ../shared/data/busi --split test --out /tmp/boxcli
    python scripts/bench_box_cli.py ... --compare /work/runs/boxtest-final.json

The boxes file is written to OUT/boxes.csv, the CLI's outputs to OUT/run (results.csv names the
models that made the masks). The mean native-size DSC of OUT/run/masks is printed and, with
``--compare``, set beside the row of a ``bench_boxes.py --json`` file (its ``default_row``,
else ``--row``): the two agree when the CLI's default is the row the bench names. ``--same N``
compares the CLI's masks of the first N images pixel by pixel with
:func:`~wavegms.inference.boxes.segment_boxes` run here on box mode's default pair
(``catalogue.box_models()``), as ``bench_boxes.py``'s ``box mode`` row runs it.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from wavegms.cli import main as wavegms
from wavegms.data.masks import read_mask
from wavegms.data.pairs import dataset_pairs
from wavegms.inference.boxes import jittered_box
from wavegms.scoring.metrics import score


def bench_boxes(pairs, jitter: int, seed: int) -> dict[str, list[float]]:
    """Each image's box as ``bench_boxes.py`` draws it: one draw per image with a lesion, in
    the split's order (images with an empty mask draw nothing and get no box)."""
    rng = np.random.default_rng(seed)
    boxes = {}
    for pair in pairs:
        truth = read_mask(pair.mask)
        if truth.any():
            boxes[pair.image.name] = [float(v) for v in jittered_box(truth, rng, jitter)]
    return boxes


def same_masks(pairs, boxes: dict, run: Path, count: int) -> None:
    """The CLI's masks of the first ``count`` boxed images against ``segment_boxes`` on box
    mode's default pair, here: Dice of the two masks per image (1.0: the same pixels)."""
    import warnings

    from wavegms.data.images import read_image
    from wavegms.inference.boxes import segment_boxes
    from wavegms.inference.segmenter import Segmenter
    from wavegms.store.catalogue import box_models

    crops, whole = (Segmenter.load(name, device="cpu") for name in box_models())
    dices = []
    for pair in [p for p in pairs if p.image.name in boxes][:count]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # boxes past the border: clipped, as in the CLI
            here = segment_boxes(crops, read_image(pair.image), [boxes[pair.image.name]],
                                 whole=whole).labels > 0  # fmt: skip
        cli = read_mask(run / "masks" / f"{pair.image.stem}.png") > 0
        dices.append(score(here, cli)["dsc"])
    print(f"CLI masks against segment_boxes here, {len(dices)} images: Dice min "
          f"{min(dices):.6f}, {sum(d == 1.0 for d in dices)} identical")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True, help="a new folder")
    parser.add_argument("--jitter", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="only the first N boxes (0: all)")
    parser.add_argument("--compare", help="a bench_boxes.py --json file")
    parser.add_argument("--row", help="its row to compare with (default: its default_row)")
    parser.add_argument("--same", type=int, default=0, help="masks compared for N images")
    args = parser.parse_args()
    pairs = dataset_pairs(args.data, split=args.split)
    boxes = bench_boxes(pairs, args.jitter, args.seed)
    if args.limit:
        boxes = dict(list(boxes.items())[: args.limit])
    out = Path(args.out)
    out.mkdir(parents=True)
    with open(out / "boxes.csv", "w", newline="") as f:
        csv.writer(f).writerows([name, *box] for name, box in boxes.items())
    code = wavegms(["segment", str(Path(args.data) / "images"), str(out / "run"),
                    "--boxes", str(out / "boxes.csv"), "--format", "png"])  # fmt: skip
    if code:
        raise SystemExit(f"wavegms segment failed ({code})")
    with open(out / "run" / "results.csv", newline="") as f:
        made_by = {(r["model"], r["backend"], r["precision"]) for r in csv.DictReader(f)}
    scores = {}
    for pair in pairs:
        if pair.image.name in boxes:
            mask = read_mask(out / "run" / "masks" / f"{pair.image.stem}.png") > 0
            scores[pair.name] = 100.0 * score(mask, read_mask(pair.mask))["dsc"]
    mean = float(np.mean(list(scores.values())))
    print(f"CLI box mode ({made_by}): {len(scores)} images, DSC {mean:.4f}")
    (out / "scores.json").write_text(json.dumps({"mean": mean, "per_image": scores}, indent=1))
    if args.same:
        same_masks(pairs, boxes, out / "run", args.same)
    if args.compare:
        bench = json.loads(Path(args.compare).read_text())
        row = args.row or bench.get("default_row", "box mode")
        print(f"bench {args.compare} row {row!r}: DSC {bench['mean'][row]:.4f}")


if __name__ == "__main__":
    main()
