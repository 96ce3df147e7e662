"""Each inference path's peak memory alone: a fresh process per path."""

from __future__ import annotations

import torch

_RSS_CODE = """
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from wavegms.bench.measure import peak_rss_mb
from wavegms.inference.segmenter import Segmenter
s = Segmenter.load(sys.argv[1], device="cpu", backend=sys.argv[2])
image = np.random.default_rng(0).random((472, 564, 3), dtype=np.float32)
for _ in range(3):
    s.segment(image, rgb=True)
print(s.graph_backend or "eager", peak_rss_mb())
"""


def path_peak_rss_mb(
    model: str, backends=("auto", "eager", "traced", "onnx", "openvino", "int8")
) -> dict[str, float]:
    """Peak RSS (MB) of inference alone, per path: a fresh process loads ``model`` and
    segments a 564x472 image three times through that backend. ``auto`` is the default
    path, reported as ``default (<the backend it ran>)``. Paths that fell back to another
    backend (not installed) are left out."""
    import subprocess
    import sys

    out = {}
    for backend in backends:
        run = subprocess.run(
            [sys.executable, "-c", _RSS_CODE, model, backend, str(torch.get_num_threads())],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = run.stdout.strip().splitlines()
        if run.returncode != 0 or not lines:
            continue
        ran, rss = lines[-1].split()
        if backend == "auto":
            out[f"default ({ran})"] = float(rss)
        elif ran == backend:
            out[backend] = float(rss)
    return out
