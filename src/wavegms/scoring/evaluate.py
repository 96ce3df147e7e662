"""Scoring a segmenter on image/mask pairs: per-image CSV, summary JSON, binary and soft PNGs.

The scoring protocol (DESIGN.md section 7): each image is scored twice,

* at model size (the paper's protocol): prediction = soft mask > threshold, ground truth resized
  with nearest neighbour to model size then >= 0.5;
* at native resolution (what a user sees): soft mask resized bilinearly to the image's shape,
  then > threshold, against the original mask.

This module never imports the model: it takes any object implementing :class:`SoftPredictor`.
"""

from __future__ import annotations

import csv
import io as _stdio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from wavegms.core.errors import InputError, OutputExistsError
from wavegms.core.progress import CancelToken, ProgressCallback, check_cancel, report
from wavegms.data.preprocess import mask_to_model_size, resize_soft
from wavegms.scoring.metrics import (
    HD95_CONVENTION,
    OVERLAP_CONVENTION,
    STD_DEFINITION,
    score,
    summarise,
)

__all__ = [
    "CSV_COLUMNS",
    "METRIC_KEYS",
    "EvaluationResult",
    "PairLike",
    "SoftPredictor",
    "evaluate_pairs",
]

METRIC_KEYS = (
    "dsc_224",
    "iou_224",
    "hd95_224",
    "dsc_native",
    "iou_native",
    "hd95_native",
)
# Summarised columns of the CSV (mean/std rows); height/width stay blank there.
SUMMARY_KEYS = (*METRIC_KEYS, "pred_area_native")
CSV_COLUMNS = ("name", "height", "width", *METRIC_KEYS, "pred_area_native")


class SoftPredictor(Protocol):
    """What :func:`evaluate_pairs` needs from a model."""

    image_size: int  # model input size, e.g. 224

    def predict_soft(self, images: list[np.ndarray]) -> np.ndarray:
        """float32 HxWx3 images in [0, 1] of any size -> (B, S, S) soft masks in [0, 1]."""
        ...


class PairLike(Protocol):
    """An image/mask pair (duck-typed ``wavegms.data.pairs.Pair``)."""

    name: str
    image: Path
    mask: Path


@dataclass
class EvaluationResult:
    """Per-image rows (DSC/IoU in %, HD95 in pixels) and their mean/std summary."""

    rows: list[dict]
    summary: dict[str, tuple[float, float]]
    threshold: float = 0.5
    image_size: int | None = None
    out_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image file name, why)

    def format_summary(self) -> str:
        """A small text table: mean ± std at model size and native, plus the conventions."""
        size = self.image_size or 224
        col224 = f"{size}x{size}"
        lines = [f"{'metric':<10}{col224:>20}{'native':>20}"]
        for key, label, unit in (("dsc", "DSC", "%"), ("iou", "IoU", "%"), ("hd95", "HD95", "px")):
            cells = []
            for suffix in ("224", "native"):
                mean, std = self.summary[f"{key}_{suffix}"]
                cells.append(f"{mean:.2f} ± {std:.2f}")
            lines.append(f"{label + ' ' + unit:<10}{cells[0]:>20}{cells[1]:>20}")
        lines.append(f"n images: {len(self.rows)}; threshold: {self.threshold:g}")
        lines.append(f"std: {STD_DEFINITION}")
        lines.append(f"{OVERLAP_CONVENTION}")
        lines.append(HD95_CONVENTION)
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6f}"
    return str(value)


def _csv_text(rows: Sequence[dict], summary: dict[str, tuple[float, float]]) -> str:
    buf = _stdio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row[k]) for k in CSV_COLUMNS})
    for label, idx in (("mean", 0), ("std", 1)):
        extra = {k: _fmt(summary[k][idx]) for k in SUMMARY_KEYS}
        writer.writerow({"name": label, "height": "", "width": "", **extra})
    return buf.getvalue()


def _output_paths(out_dir: Path, names: Iterable[str]) -> dict[str, Path]:
    paths = {"scores": out_dir / "scores.csv", "summary": out_dir / "summary.json"}
    for name in names:
        paths[f"masks/{name}"] = out_dir / "masks" / f"{name}.png"
        paths[f"soft/{name}"] = out_dir / "soft" / f"{name}.png"
    return paths


def _check_names(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise InputError(f"pair name {name!r} cannot be used as a file name")
        if name in seen:
            raise InputError(f"two pairs share the name {name!r}; their outputs would collide")
        seen.add(name)


def _score_row(
    name: str, soft: np.ndarray, mask: np.ndarray, size: int, threshold: float
) -> tuple[dict, np.ndarray, np.ndarray]:
    """One image's CSV row, plus its native binary and soft masks."""
    gt_model = mask_to_model_size(mask, size)
    s_model = score(soft > threshold, gt_model)
    soft_native = resize_soft(soft, mask.shape)
    pred_native = soft_native > threshold
    s_native = score(pred_native, mask)
    row = {
        "name": name,
        "height": int(mask.shape[0]),
        "width": int(mask.shape[1]),
        "dsc_224": 100.0 * s_model["dsc"],
        "iou_224": 100.0 * s_model["iou"],
        "hd95_224": s_model["hd95"],
        "dsc_native": 100.0 * s_native["dsc"],
        "iou_native": 100.0 * s_native["iou"],
        "hd95_native": s_native["hd95"],
        "pred_area_native": int(np.count_nonzero(pred_native)),
    }
    return row, pred_native, soft_native


def _read_pair(pair: PairLike) -> tuple[np.ndarray, np.ndarray]:
    """An RGB float image and its boolean mask; InputError when unreadable or mismatched."""
    from wavegms.data.images import read_image, read_mask, to_rgb01

    image = to_rgb01(read_image(pair.image))
    mask = np.asarray(read_mask(pair.mask), dtype=bool)
    if image.shape[:2] != mask.shape:
        raise InputError(
            f"{pair.name}: image {image.shape[:2]} and mask {mask.shape} differ in size"
        )
    return image, mask


def evaluate_pairs(
    predictor: SoftPredictor,
    pairs: Iterable[PairLike],
    out_dir: Path | None,
    threshold: float = 0.5,
    batch_size: int = 8,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    skip_unreadable: bool = False,
) -> EvaluationResult:
    """Score ``predictor`` on ``pairs``; with ``out_dir``, write masks, soft masks, CSV, JSON.

    Refuses (``OutputExistsError``) before any work if an output exists and ``overwrite`` is
    False. Masks are written as images are scored, ``scores.csv`` and ``summary.json`` last, so a
    cancelled run leaves no CSV. With ``skip_unreadable``, a pair whose image or mask cannot
    be read (or whose sizes differ) is listed in ``result.skipped`` instead of ending the run.
    """
    from wavegms.core.files import ensure_folder, write_json, write_png, write_text

    pairs = list(pairs)
    if not pairs:
        raise InputError("no image/mask pairs to evaluate")
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold must be in [0, 1], got {threshold}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    size = int(predictor.image_size)
    names = [str(p.name) for p in pairs]
    _check_names(names)

    paths: dict[str, Path] = {}
    if out_dir is not None:
        out_dir = Path(out_dir)
        paths = _output_paths(out_dir, names)
        if not overwrite:
            existing = [p for p in paths.values() if p.exists()]
            if existing:
                shown = ", ".join(str(p) for p in existing[:3])
                more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
                raise OutputExistsError(
                    f"outputs already exist: {shown}{more} (pass overwrite=True to replace them)"
                )
        # A folder that cannot be written is reported now, not after the model has run.
        for folder in (out_dir, out_dir / "masks", out_dir / "soft"):
            ensure_folder(folder)

    total = len(pairs)
    rows: list[dict] = []
    skipped: list[tuple[str, str]] = []
    report(progress, "evaluate", 0, total)
    for start in range(0, total, batch_size):
        check_cancel(cancel)
        batch, images, masks = [], [], []
        for p in pairs[start : start + batch_size]:
            try:
                image, mask = _read_pair(p)
            except (InputError, OSError) as err:
                if not skip_unreadable:
                    raise
                skipped.append((Path(p.image).name, str(err)))
                continue
            batch.append(p)
            images.append(image)
            masks.append(mask)
        if not batch:
            continue
        softs = np.asarray(predictor.predict_soft(images), dtype=np.float32)
        if softs.shape != (len(batch), size, size):
            raise InputError(
                f"predictor returned shape {softs.shape}, expected {(len(batch), size, size)}"
            )
        # Guard against tiny float excursions outside [0, 1] from the model.
        softs = np.clip(softs, 0.0, 1.0)
        for p, soft, m in zip(batch, softs, masks, strict=True):
            row, pred_native, soft_native = _score_row(p.name, soft, m, size, threshold)
            if out_dir is not None:
                write_png(paths[f"masks/{p.name}"], pred_native, overwrite=overwrite)
                write_png(paths[f"soft/{p.name}"], soft_native, overwrite=overwrite)
            rows.append(row)
        done = len(rows) + len(skipped)
        running = float(np.mean([r["dsc_224"] for r in rows]))
        report(
            progress,
            "evaluate",
            done,
            total,
            message=batch[-1].name,
            metrics={"dsc_224": running},
        )

    if not rows:
        raise InputError(f"none of the {total} pairs could be read: {skipped[0][1]}")
    summary = summarise(rows, SUMMARY_KEYS)
    result = EvaluationResult(
        rows=rows,
        summary=summary,
        threshold=threshold,
        image_size=size,
        out_dir=out_dir,
        skipped=skipped,
    )
    if out_dir is not None:
        write_text(paths["scores"], _csv_text(rows, summary))
        meta = {
            "n_images": len(rows),
            "threshold": threshold,
            "model_size": size,
            "hd95_convention": HD95_CONVENTION,
            "overlap_convention": OVERLAP_CONVENTION,
            "std_definition": STD_DEFINITION,
            "units": {"dsc": "%", "iou": "%", "hd95": "pixels", "pred_area_native": "pixels"},
            "summary": {k: {"mean": m, "std": s} for k, (m, s) in summary.items()},
        }
        write_json(paths["summary"], meta)
        result.files = {
            "scores": paths["scores"],
            "summary": paths["summary"],
            "masks": out_dir / "masks",
            "soft": out_dir / "soft",
        }
    return result
