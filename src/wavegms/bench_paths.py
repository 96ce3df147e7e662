"""Per-path checks of ``wavegms bench`` beyond latency: each backend's accuracy on a dataset's
test split (by the one folder job) and its peak memory alone (a fresh process per path)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wavegms.bench import bench_paths

# ----------------------------------------------------------------------------- accuracy per path


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


# ----------------------------------------------------------------------------- memory per path

_RSS_CODE = """
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from wavegms.bench import peak_rss_mb
from wavegms.inference.segmenter import Segmenter
s = Segmenter.load(sys.argv[1], device="cpu", backend=sys.argv[2])
image = np.random.default_rng(0).random((472, 564, 3), dtype=np.float32)
for _ in range(3):
    s.segment(image, rgb=True)
print(s.graph_backend or "eager", peak_rss_mb())
"""


def path_peak_rss_mb(
    model: str, backends=("eager", "traced", "onnx", "openvino", "int8")
) -> dict[str, float]:
    """Peak RSS (MB) of inference alone, per path: a fresh process loads ``model`` and
    segments a 564x472 image three times through that backend. Paths that fell back to
    another backend (not installed) are left out."""
    import subprocess
    import sys

    out = {}
    for backend in backends:
        run = subprocess.run(
            [sys.executable, "-c", _RSS_CODE, model, backend, str(torch.get_num_threads())],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = run.stdout.strip().splitlines()
        if run.returncode == 0 and lines and lines[-1].split()[0] == backend:
            out[backend] = float(lines[-1].split()[1])
    return out
