"""ONNX Runtime backend: the exported soft-mask graph (:mod:`wavegms.runtime.onnx_graph`) run
by ONNX Runtime's CPU provider, which fuses and lays out the many small convolutions of this
model itself. Optional: needs ``onnxruntime`` (``pip install napari-wavegms[cpu-fast]``).

Each :class:`OnnxSoftMask` owns its sessions (and the threads of :meth:`OnnxSoftMask.run_many`)
and frees them on :meth:`OnnxSoftMask.close`; its owner, a
:class:`~wavegms.inference.segmenter.Segmenter`, closes it with itself. Nothing is shared
through the module: a segmenter of a model file written again never meets a session of the
old file, and a closed segmenter leaves no session behind.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from wavegms.core.lifetime import Closable
from wavegms.net.model import WaveGMS

#: Largest difference from the eager model accepted when a graph is built (soft masks lie in
#: [0, 1]; exact paths differ by float rounding, about 1e-5).
CHECK_TOLERANCE = 1e-3
#: Largest difference accepted between running images one at a time and side by side (the
#: same fp32 graph with other thread counts: float rounding only).
SIDE_BY_SIDE_TOLERANCE = 1e-5


def load_session(path: Path, threads: int | None = None):
    """A new ONNX Runtime CPU session for ``path`` with all graph optimisations, ``threads``
    intra-op threads (default: torch's thread count, so both backends use the same cores).
    The caller owns it (ONNX Runtime frees it with the last reference)."""
    from wavegms.core.extras import require

    ort = require("onnxruntime", "the onnx and int8 backends")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads() if threads is None else threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no notes on the console
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxSoftMask(Closable):
    """Callable like the traced graph: (N, 3, S, S) float tensor in [0, 1] -> (N, 1, S, S).
    Owns its sessions: :meth:`close` frees them (a closed graph refuses to run)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = torch.get_num_threads() if threads is None else threads
        self.session = load_session(self.path, self.threads)
        self.input_name = self.session.get_inputs()[0].name
        self._single = None  # the one-thread session that run_many runs from each thread
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, images: torch.Tensor, session=None) -> torch.Tensor:
        if self.session is None:
            raise RuntimeError(f"the ONNX Runtime graph {self.path.name} has been closed")
        batch = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        (soft,) = (session or self.session).run(None, {self.input_name: batch})
        return torch.from_numpy(soft)

    def run_many(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each (1, 3, S, S) image of ``images`` through the graph, side by side: one
        single-threaded run per thread (ONNX Runtime's ``run`` is thread-safe and releases the
        GIL), which keeps both cores busy where one image at a time leaves them idle in the
        graph's serial parts. The answer is the one-at-a-time answer (checked on first use)."""
        if self.threads < 2 or len(images) < 2:
            return [self(image) for image in images]
        if self._pool is None:
            self._single = load_session(self.path, 1)
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="wavegms-onnx")
            check_same(self(images[0], self._single), self(images[0]), "the one-thread session")
        return list(self._pool.map(lambda image: self(image, self._single), images))

    def close(self) -> None:
        """Free the sessions and stop the side-by-side threads (after their current run)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.session = self._single = None


def check_same(side_by_side: torch.Tensor, one_at_a_time: torch.Tensor, what: str) -> None:
    """ValueError unless the two soft masks agree within :data:`SIDE_BY_SIDE_TOLERANCE`."""
    diff = (side_by_side - one_at_a_time).abs().max().item()
    if not diff <= SIDE_BY_SIDE_TOLERANCE:  # NaN too
        raise ValueError(f"{what} differs from one image at a time by {diff:.2g}")


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
    from wavegms.core.extras import require
    from wavegms.runtime.onnx_graph import cached_onnx

    require("onnxruntime", "the onnx backend")  # before anything is exported
    graph = OnnxSoftMask(cached_onnx(model, model_file))
    check_against_eager(graph, model)
    return graph
