"""Whole jobs timed as users run them: a folder through the one folder job, and a fine-tune
through the one fine-tune job, each beside its baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class FolderTiming:
    images: int
    pipelined_per_s: float  # segment_folder: decoding and writing overlap inference
    sequential_per_s: float  # the same steps and batches, one after another (overlap=False)
    one_at_a_time_per_s: float | None = None  # pipelined, each batch's images one at a time
    backend: str | None = None  # the graph that ran


def _synthetic_folder(folder, n: int, shape: tuple[int, int]) -> None:
    """``n`` speckled grey PNGs of ``shape`` with a bright disc (ultrasound-like sizes)."""
    from wavegms.core.files import write_png

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i in range(n):
        image = rng.gamma(2.0, 40.0, shape).clip(0, 255)
        cy, cx = rng.uniform(0.3, 0.7, 2) * shape
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < (shape[0] / 6) ** 2] *= 0.3
        write_png(folder / f"img_{i:03d}.png", image.astype(np.uint8))


def time_folder(
    model, n: int = 20, shape: tuple[int, int] = (472, 564), backend: str = "auto"
) -> FolderTiming:
    """Images per second for a folder of ``n`` BUSI-sized PNGs through the folder pipeline,
    with and without overlapping decoding and writing with inference: both runs do the very
    same work per image (decode once, model input, batched model, resize back, write); and
    with each batch's images run one at a time instead of side by side. ``backend``: the
    Segmenter's (default ``"auto"``, what ``wavegms segment`` runs)."""
    import tempfile
    from pathlib import Path

    from wavegms.inference.folder import segment_folder
    from wavegms.inference.segmenter import Segmenter

    segmenter = Segmenter(model, device="cpu", backend=backend)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        _synthetic_folder(src, n, shape)
        segment_folder(segmenter, src, Path(tmp) / "warm")  # first-call costs out of the way
        seconds = {}
        for overlap, side_by_side in ((True, True), (False, True), (True, False)):
            segmenter.side_by_side = side_by_side
            start = time.perf_counter()
            out = Path(tmp) / f"overlap_{overlap}_{side_by_side}"
            segment_folder(segmenter, src, out, overlap=overlap)
            seconds[overlap, side_by_side] = time.perf_counter() - start
    return FolderTiming(
        n, n / seconds[True, True], n / seconds[False, True], n / seconds[True, False],
        segmenter.graph_backend or "eager",
    )  # fmt: skip


@dataclass
class FinetuneTiming:
    label: str
    seconds: float
    val_dice: float
    train_images: int
    val_images: int
    epochs: int


#: The fine-tune variants the bench times beside today's defaults: the defaults before issue
#: 24's cheaper epochs (fp32 E_wave, validation every epoch) and the full (slow) schedule.
FINETUNE_BASELINES = {
    "previous defaults: fp32, validated every epoch": {"cpu_bf16": False, "val_every": 1},
    "full schedule": {"fast_cpu": False},
}


def time_finetune(
    data_dir: str,
    base_model: str,
    n_images: int = 10,
    epochs: int | None = None,
    label: str = "defaults",
    **changes,
) -> FinetuneTiming:
    """Wall time of fine-tuning ``base_model`` on the first ``n_images`` training pairs of
    ``data_dir`` (CPU), from the request to the installed model, by the one ``finetune()``
    that ``wavegms finetune`` and the dock run, with the request's defaults but for
    ``changes`` (fields of ``FinetuneRequest``, e.g. :data:`FINETUNE_BASELINES`). The model it
    installs (under a name of its own) is removed again afterwards."""
    import shutil
    import tempfile
    from pathlib import Path

    from wavegms.data.pairs import dataset_pairs
    from wavegms.store.catalogue import model_paths, resolve_model
    from wavegms.training.finetune import FinetuneRequest, finetune

    pairs = dataset_pairs(data_dir, split="train")[:n_images]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pairs"
        for sub in ("images", "masks"):
            (root / sub).mkdir(parents=True)
        for p in pairs:
            shutil.copyfile(p.image, root / "images" / Path(p.image).name)
            shutil.copyfile(p.mask, root / "masks" / Path(p.mask).name)
        name = f"wavegms-bench-{time.strftime('%Y%m%d-%H%M%S')}"
        request = FinetuneRequest(
            str(root), str(resolve_model(base_model)), name, out_dir=str(Path(tmp) / "run"),
            device="cpu", **({"epochs": epochs} if epochs else {}), **changes,
        )  # fmt: skip
        start = time.perf_counter()
        outcome = finetune(request)
        seconds = time.perf_counter() - start
        if outcome.installed is not None:  # installed by this call, under its own name
            for path in model_paths(outcome.installed):
                path.unlink(missing_ok=True)
    return FinetuneTiming(
        label, seconds, outcome.best_val_dice, outcome.train_images, outcome.val_images,
        request.epochs,
    )  # fmt: skip


def format_extra(folder: FolderTiming | None, finetunes: list[FinetuneTiming]) -> str:
    lines = []
    if folder is not None:
        lines += [
            f"folder of {folder.images} images 564x472 (decode, segment, write masks): "
            f"{folder.pipelined_per_s:.2f} images/s pipelined (segment_folder), "
            f"{folder.sequential_per_s:.2f} images/s with the same steps one after another "
            f"({folder.pipelined_per_s / folder.sequential_per_s:.2f}x)",
        ]
        if folder.one_at_a_time_per_s:
            lines.append(
                f"  backend {folder.backend}: a batch's images side by side (one stream per "
                f"thread) {folder.pipelined_per_s:.2f} images/s, one at a time (all threads on "
                f"one image) {folder.one_at_a_time_per_s:.2f} images/s "
                f"({folder.pipelined_per_s / folder.one_at_a_time_per_s:.2f}x)"
            )
    for f in finetunes:
        lines.append(
            f"fine-tune ({f.label}): {f.train_images} train + {f.val_images} validation "
            f"images, {f.epochs} epochs: {f.seconds:.1f} s wall, best validation Dice "
            f"{100 * f.val_dice:.2f}"
        )
    return "\n".join(lines)
