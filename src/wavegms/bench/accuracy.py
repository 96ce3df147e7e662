"""Each inference path's accuracy on a dataset's test split, by the one folder job, beside
the eager model's."""

from __future__ import annotations

from dataclasses import dataclass

from wavegms.bench.latency import bench_paths


@dataclass
class PathScore:
    name: str
    images: int
    dsc: float  # mean test DSC (%) at model size, the paper's protocol
    hd95: float  # mean HD95 (pixels) at model size
    dsc_native: float


def score_paths(
    model,
    data_dir: str,
    split: str = "test",
    backends: tuple[str, ...] | None = None,
    calibrate: bool = False,
) -> list[PathScore]:
    """Each path's DSC/HD95 on the ``split`` of ``data_dir``, by the one folder job
    (``run_folder``, as ``wavegms evaluate``), eager first: every path sees the same images.
    ``calibrate``: add the int8 path calibrated on the training images of ``data_dir``."""
    import tempfile
    from pathlib import Path

    from wavegms.data.pairs import dataset_pairs
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import pair_items
    from wavegms.inference.segmenter import Segmenter

    items = pair_items(dataset_pairs(data_dir, split=split))
    scores = []
    wanted = [("WG eager", "eager", None)]
    wanted += bench_paths(backends, data_dir if calibrate else None, model)
    with tempfile.TemporaryDirectory() as tmp:
        for name, backend, calibration in wanted:
            segmenter = Segmenter(model, device="cpu", backend=backend, calibration=calibration)
            report = run_folder(
                segmenter, items, Path(tmp) / name.replace(" ", "_"), threshold=segmenter.threshold,
                batch_size=segmenter.batch_size, skip_unreadable=False,
            )  # fmt: skip
            if (segmenter.graph_backend or "eager") != backend:
                continue  # not installed or not built: its scores would be another path's
            s = report.scores
            scores.append(
                PathScore(
                    name, report.written, s["dsc_224"][0], s["hd95_224"][0], s["dsc_native"][0]
                )
            )
    return scores


def format_scores(scores: list[PathScore], data_dir: str, split: str = "test") -> str:
    base = scores[0] if scores else None
    lines = [f"accuracy on {data_dir} split {split!r} (mean over images, model size; native DSC)"]
    for s in scores:
        delta = f"  ({s.dsc - base.dsc:+.2f} DSC vs eager)" if base and s is not base else ""
        lines.append(
            f"{s.name:<10} {s.images:>4} images  DSC {s.dsc:6.2f}  HD95 {s.hd95:6.2f}  "
            f"DSC native {s.dsc_native:6.2f}{delta}"
        )
    return "\n".join(lines)
