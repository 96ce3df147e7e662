"""The correction-loop study (issue 16): does the review uncertainty point at the errors, and
does correcting the most uncertain images first make a better model than random or in order?

Part ``correlation``: the shipped ``busi`` model on the BUSI and the Kvasir-SEG test splits
(through ``run_folder``, scored); Spearman rho between each uncertainty definition of
:mod:`wavegms.scoring.uncertainty` and 1 - DSC (native and at model size).

Part ``user``: a simulated user on Kvasir-SEG starting from ``busi`` (another domain). The
pool is the first 200 images of the Kvasir-SEG train split (``--pool``; 0: all 880),
segmented once by ``busi``. Ten images are "corrected"
(their ground truth is the correction) and added to a training set, chosen three ways: by
uncertainty (the review order of ``wavegms rank``), at random, and in the folder's fixed
order (sorted names). Each set fine-tunes ``busi`` through ``training.finetune.finetune`` with
the dock's default settings (``FinetuneRequest`` defaults; only the seed varies), and the new
model is scored on the 120 test images. Three seeds. The uncertainty and fixed choices are the
same for every seed (the seed moves the fine-tuning and the random choice).

Resumable: every finished step is appended to ``OUT/results.json`` and skipped when run again;
all models, sets and outputs live under ``OUT`` (``WAVEGMS_HOME=OUT/home``), never in the
user's folders. Run on a quiet machine:

    OMP_NUM_THREADS=1 python scripts/correction_study.py --out /work/runs/correction_study
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path("/work/runs/correction_study")
STRATEGIES = ("uncertainty", "random", "fixed")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--data", type=Path, default=None, help="default: $WAVEGMS_DATA")
    parser.add_argument("--part", choices=("correlation", "user", "all", "table"), default="all")
    parser.add_argument("--model", default="busi")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-corrected", type=int, default=10)
    parser.add_argument(
        "--pool", type=int, default=200, help="the first N train images (0: all 880)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--test", type=int, default=0, help="first N test images (0: all 120)")
    parser.add_argument("--epochs", type=int, help="smoke runs only (default: the dock's)")
    return parser.parse_args(argv)


class Log:
    """``OUT/results.json``: one record per finished step, keyed, written atomically."""

    def __init__(self, path: Path) -> None:
        from wavegms.core.files import read_json

        self.path = path
        self.records: dict[str, dict] = read_json(path) if path.is_file() else {}

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def put(self, key: str, record: dict) -> None:
        from wavegms.core.files import write_json

        self.records[key] = {**record, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_json(self.path, self.records)
        print(f"[{time.strftime('%H:%M:%S')}] {key}: {_short(record)}", flush=True)


def _short(record: dict) -> str:
    keep = {k: v for k, v in record.items() if not isinstance(v, (list, dict))}
    return ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in keep.items()
    )


def _segment(model: str, pairs, out: Path, device: str) -> list[dict]:
    """Scored ``run_folder`` of ``pairs`` into ``out`` (replaced): the rows."""
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import pair_items
    from wavegms.inference.segmenter import Segmenter

    segmenter = Segmenter.load(model, device=device)
    result = run_folder(segmenter, pair_items(pairs), out, overwrite=True, skip_unreadable=False)
    return result.rows


def _mean(rows: list[dict], key: str) -> float:
    return float(sum(float(r[key]) for r in rows) / len(rows))


def correlation(args, log: Log, data: Path) -> None:
    import numpy as np
    from scipy.stats import spearmanr

    from wavegms.data.images import read_image
    from wavegms.data.pairs import dataset_pairs
    from wavegms.scoring.uncertainty import DEFINITIONS

    for dataset in ("busi", "kvasir_seg"):
        key = f"correlation/{dataset}"
        if key in log:
            continue
        out = args.out / "segmented" / f"{dataset}-test-{args.model}"
        rows = _segment(args.model, dataset_pairs(data / dataset, split="test"), out, args.device)
        record: dict = {"n": len(rows), "dsc_native": _mean(rows, "dsc_native")}
        per_image = {name: [] for name in DEFINITIONS}
        for row in rows:
            soft = read_image(out / "soft" / f"{row['name']}.png")
            for name, define in DEFINITIONS.items():
                per_image[name].append(define(soft))
        for name, values in per_image.items():
            for suffix in ("native", "224"):
                error = [1.0 - float(r[f"dsc_{suffix}"]) / 100.0 for r in rows]
                rho, p = spearmanr(values, error)
                record[f"{name}_rho_{suffix}"] = float(rho)
                record[f"{name}_p_{suffix}"] = float(p)
        csv_rho, _ = spearmanr(
            [float(r["uncertainty"]) for r in rows],
            [1 - float(r["dsc_native"]) / 100 for r in rows],
        )
        record["results_csv_uncertainty_rho_native"] = float(csv_rho)
        record["per_image"] = {
            "name": [r["name"] for r in rows],
            "dsc_native": [float(r["dsc_native"]) for r in rows],
            **{k: [float(x) for x in v] for k, v in per_image.items()},
        }
        assert np.isfinite(record["dsc_native"])
        log.put(key, record)


def chosen_names(strategy: str, pool_rows: list[dict], n: int, seed: int) -> list[str]:
    """The ``n`` images a simulated user corrects: by review order, at random, or in order."""
    import numpy as np

    from wavegms.inference.review import review_order

    names = sorted(r["name"] for r in pool_rows)
    if strategy == "uncertainty":
        return review_order(pool_rows)[:n]
    if strategy == "random":
        rng = np.random.default_rng(seed)
        return [names[i] for i in sorted(rng.choice(len(names), n, replace=False))]
    return names[:n]


def simulated_user(args, log: Log, data: Path) -> None:
    from wavegms.core.errors import InputError
    from wavegms.core.files import read_json
    from wavegms.data.images import read_image
    from wavegms.data.masks import read_mask
    from wavegms.data.pairs import dataset_pairs
    from wavegms.inference.review import read_results
    from wavegms.store.catalogue import list_models
    from wavegms.training.finetune import FinetuneRequest, finetune
    from wavegms.training.training_set import TrainingSet

    kvasir = data / "kvasir_seg"
    test = dataset_pairs(kvasir, split="test")
    test = test[: args.test] if args.test else test
    pool = dataset_pairs(kvasir, split="train")
    pool = pool[: args.pool] if args.pool else pool
    by_name = {p.name: p for p in pool}
    test_names = {p.name for p in test}
    if "user/baseline" not in log:  # the correlation part's run, when it was made
        out = args.out / "segmented" / f"kvasir_seg-test-{args.model}"
        if "correlation/kvasir_seg" not in log:
            _segment(args.model, test, out, args.device)
        rows = read_results(out)
        log.put("user/baseline", {"model": args.model, "dsc_native": _mean(rows, "dsc_native"),
                                  "dsc_224": _mean(rows, "dsc_224")})  # fmt: skip
    if "user/pool" not in log:
        rows = _segment(args.model, pool, args.out / "segmented" / "user-pool", args.device)
        keep = ("name", "uncertainty", "dsc_native")
        log.put("user/pool", {"n": len(rows), "rows": [{k: r[k] for k in keep} for r in rows]})
    pool_rows = read_json(log.path)["user/pool"]["rows"]
    for seed in args.seeds:
        for strategy in STRATEGIES:
            key = f"user/{strategy}/seed{seed}"
            if key in log:
                continue
            names = chosen_names(strategy, pool_rows, args.n_corrected, seed)
            project = f"{strategy}_seed{seed}"
            pairs = TrainingSet(project)
            if sorted(e.source for e in pairs.entries()) != sorted(names):
                pairs.remove(pairs.names())
                for name in names:  # the ground truth stands in for the user's correction
                    pair = by_name[name]
                    pairs.add(read_image(pair.image), read_mask(pair.mask), name)
            model = f"study-{project}"
            started = time.time()
            if model not in list_models():
                request = FinetuneRequest(data_dir=str(pairs.root), base_model=args.model,
                                          new_name=model, out_dir=str(args.out / "runs" / model),
                                          seed=seed)  # fmt: skip
                if args.epochs:
                    request.epochs = args.epochs
                try:
                    outcome = finetune(request)
                except InputError as err:  # refused (nothing found): the user keeps the base
                    trained = {"refused": str(err)}
                else:
                    trained = {
                        "best_val_dice": outcome.best_val_dice,
                        "epochs": outcome.epochs_done,
                    }
            else:
                trained = {"note": "model already trained by an earlier run"}
            if "refused" in trained:
                rows = read_results(args.out / "segmented" / f"kvasir_seg-test-{args.model}")
                rows = rows if not args.test else [r for r in rows if r["name"] in test_names]
            else:
                rows = _segment(model, test, args.out / "segmented" / model, args.device)
            pool_dsc = {r["name"]: float(r["dsc_native"]) for r in pool_rows}
            record = {"strategy": strategy, "seed": seed, "chosen": names}
            record["chosen_pool_dsc"] = [pool_dsc[n] for n in names]
            for metric in ("dsc_native", "dsc_224", "iou_native"):
                record[metric] = _mean(rows, metric)
            record["finetune"] = trained
            record["seconds"] = round(time.time() - started, 1)
            log.put(key, record)


def table(log: Log) -> None:
    import numpy as np

    for key, record in log.records.items():
        if key.startswith("correlation/"):
            print(f"{key} (n={record['n']}, mean DSC {record['dsc_native']:.2f}%): Spearman rho "
                  "with 1-DSC native / 224:")  # fmt: skip
            for name in ("band_share", "region_entropy", "image_entropy"):
                print(
                    f"  {name:<16} {record[f'{name}_rho_native']:+.3f} "
                    f"(p={record[f'{name}_p_native']:.1e}) / {record[f'{name}_rho_224']:+.3f}"
                )
    if "user/baseline" in log.records:
        print(
            f"simulated user: busi on Kvasir-SEG test before any correction: DSC "
            f"{log.records['user/baseline']['dsc_native']:.2f}%"
        )
    for strategy in STRATEGIES:
        done = [r for k, r in log.records.items() if k.startswith(f"user/{strategy}/")]
        if done:
            values = np.array([r["dsc_native"] for r in done])
            seeds = ",".join(str(r["seed"]) for r in done)
            refused = sum("refused" in r["finetune"] for r in done)
            note = f"; {refused} fine-tune(s) refused, scored as the base" if refused else ""
            print(
                f"  {strategy:<12} DSC native {values.mean():.2f} ± {values.std():.2f} % "
                f"(seeds {seeds}; min {values.min():.2f}, max {values.max():.2f}{note})"
            )
        else:
            print(f"  {strategy:<12} not run yet")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    os.environ["WAVEGMS_HOME"] = str(args.out / "home")  # models and sets stay in the study
    data = args.data or Path(os.environ.get("WAVEGMS_DATA", "/work/shared/data"))
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())
    args.out.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "results.json")
    if args.part in ("correlation", "all"):
        correlation(args, log, data)
    if args.part in ("user", "all"):
        simulated_user(args, log, data)
    table(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
