"""ONNX Runtime backend: the exported soft-mask graph (:mod:`wavegms.runtime.onnx_graph`) run
by ONNX Runtime's CPU provider, which fuses and lays out the many small convolutions of this
model itself. Optional: needs ``onnxruntime`` (``pip install napari-wavegms[cpu-fast]``).

Sessions are shared within a process per graph file (ONNX Runtime's ``run`` is thread-safe),
so segmenters of the same model pay for loading the graph once.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from wavegms.net.model import WaveGMS

_SESSIONS: dict[tuple[str, int], object] = {}
_LOCK = threading.Lock()
#: Largest difference from the eager model accepted when a graph is built (soft masks lie in
#: [0, 1]; exact paths differ by float rounding, about 1e-5).
CHECK_TOLERANCE = 1e-3


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def load_session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session for ``path`` with all graph optimisations, ``threads``
    intra-op threads (default: torch's thread count, so both backends use the same cores)."""
    import onnxruntime as ort

    threads = torch.get_num_threads() if threads is None else threads
    key = (str(Path(path).resolve()), threads)
    with _LOCK:
        if key not in _SESSIONS:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # errors only: no notes on the console
            _SESSIONS[key] = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        return _SESSIONS[key]


class OnnxSoftMask:
    """Callable like the traced graph: (N, 3, S, S) float tensor in [0, 1] -> (N, 1, S, S)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = load_session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        (soft,) = self.session.run(None, {self.input_name: batch})
        return torch.from_numpy(soft)


def check_against_eager(graph, model: WaveGMS, tolerance: float = CHECK_TOLERANCE) -> None:
    """Run ``graph`` and the eager model on one small random image; ValueError if they differ
    by more than ``tolerance``, so a wrong graph is never used for a real image."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(1, 3, 32, 32, generator=generator)
    expected = model.predict_soft(images.to(next(model.parameters()).device)).float().cpu()
    got = graph(images).float()
    if got.shape != expected.shape or not torch.isfinite(got).all():
        raise ValueError(f"the graph gives shape {tuple(got.shape)} or non-finite values")
    diff = (got - expected).abs().max().item()
    if diff > tolerance:
        raise ValueError(f"the graph differs from the eager model by {diff:.2g}")


def build_onnx_soft_mask(model: WaveGMS, model_file: Path | None = None) -> OnnxSoftMask:
    """The ONNX Runtime soft-mask graph of ``model`` (exported once into the user cache),
    checked against the eager model before it is returned."""
    from wavegms.runtime.onnx_graph import cached_onnx

    graph = OnnxSoftMask(cached_onnx(model, model_file))
    check_against_eager(graph, model)
    return graph
