"""The few-shot learning curve behind the fine-tune defaults (epochs, learning rate).

Fine-tunes a base model on N pairs of a dataset's *training* split with each (learning rate,
epochs) asked for, by the one ``finetune()`` of ``wavegms finetune`` and the napari dock, and
scores every result (and the base model) on M other training pairs held out from it, by the
one folder job of ``wavegms evaluate`` (DSC at model size). The test split is never read.

    python scripts/fewshot_curve.py --data ../shared/data/kvasir_seg --base busi \
        --lrs 5e-4,1e-3,2e-3 --epochs 4,8,12,20

Models are installed into a temporary WAVEGMS_HOME and removed with it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path


def _copy_pairs(pairs, root: Path) -> Path:
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for p in pairs:
        shutil.copyfile(p.image, root / "images" / Path(p.image).name)
        shutil.copyfile(p.mask, root / "masks" / Path(p.mask).name)
    return root


def _held_out_dsc(model: str, pairs, out: Path) -> float:
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import pair_items
    from wavegms.inference.segmenter import Segmenter

    segmenter = Segmenter.load(model, device="cpu", backend="eager")
    report = run_folder(
        segmenter, pair_items(pairs), out, threshold=segmenter.threshold,
        batch_size=segmenter.batch_size, skip_unreadable=False,
    )  # fmt: skip
    return report.scores["dsc_224"][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--base", default="busi")
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--held-out", type=int, default=30)
    ap.add_argument("--lrs", default="1e-3")
    ap.add_argument("--epochs", default="5,10,20")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--val-every", type=int, help="default: the fine-tune default")
    ap.add_argument("--no-bf16", action="store_true", help="E_wave and LMM in fp32")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wavegms-fewshot-"))
    os.environ["WAVEGMS_HOME"] = str(tmp / "home")
    from wavegms.data.pairs import dataset_pairs
    from wavegms.store.catalogue import resolve_model
    from wavegms.training.finetune import FinetuneRequest, finetune

    pairs = dataset_pairs(args.data, split="train")
    random.Random(args.seed).shuffle(pairs)
    train, held = pairs[: args.pairs], pairs[args.pairs : args.pairs + args.held_out]
    data = _copy_pairs(train, tmp / "pairs")
    base = str(resolve_model(args.base))
    print(f"{len(train)} fine-tune pairs, {len(held)} held-out pairs of {args.data} (train split)")
    print(f"base {args.base}: held-out DSC {_held_out_dsc(base, held, tmp / 'base'):.2f}")
    print(f"bf16 E_wave: {not args.no_bf16}, validation every {args.val_every or 'default'}")
    head = f"{'lr':>8} {'epochs':>6} {'seconds':>8} {'CPU-s':>7} {'best epoch':>10}"
    print(f"{head} {'val Dice':>8} {'DSC':>7}")
    for lr in (float(x) for x in args.lrs.split(",")):
        for epochs in (int(x) for x in args.epochs.split(",")):
            name = f"fewshot-{lr:.0e}-{epochs}".replace(".", "p").replace("+", "")
            request = FinetuneRequest(str(data), base, name, device="cpu", epochs=epochs, lr=lr)
            request.cpu_bf16 = request.cpu_bf16 and not args.no_bf16
            request.val_every = args.val_every or request.val_every
            start, cpu_start = time.perf_counter(), time.process_time()
            outcome = finetune(request)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            dsc = _held_out_dsc(str(outcome.installed), held, tmp / name)
            print(
                f"{lr:>8g} {epochs:>6} {seconds:>8.1f} {cpu:>7.1f} {outcome.best_epoch:>10} "
                f"{100 * outcome.best_val_dice:>8.2f} {dsc:>7.2f}",
                flush=True,
            )
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
