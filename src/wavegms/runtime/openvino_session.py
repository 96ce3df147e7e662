"""OpenVINO backend: the same exported soft-mask graph as ONNX Runtime
(:func:`wavegms.runtime.onnx_graph.cached_onnx`) compiled by OpenVINO for the CPU. Optional:
needs ``openvino`` (``pip install napari-wavegms[openvino]``).

Inference precision is pinned to fp32: on CPUs with bf16 or fp16 units OpenVINO would
otherwise pick those by itself, which is not the model's answer. Two compilations of one
graph, both fp32: one for a single image at a time (LATENCY hint, all threads on it), one for
folders (one stream per thread, images run side by side, see :meth:`OpenVinoSoftMask.run_many`).
Each :class:`OpenVinoSoftMask` owns its compilations and frees them on
:meth:`OpenVinoSoftMask.close` (its :class:`~wavegms.inference.segmenter.Segmenter` closes it);
nothing is shared through the module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wavegms.core.lifetime import Closable
from wavegms.net.model import WaveGMS


def compile_graph(path: Path, threads: int | None = None, hint: str = "LATENCY"):
    """``path`` (ONNX) compiled anew for the CPU in fp32 with ``threads`` inference threads
    (default: torch's thread count). ``hint``: ``"LATENCY"`` (one stream) or
    ``"THROUGHPUT"`` (one stream per thread). The caller owns the compiled model."""
    import openvino as ov

    threads = torch.get_num_threads() if threads is None else threads
    config = {
        "PERFORMANCE_HINT": hint,
        "INFERENCE_PRECISION_HINT": "f32",  # never bf16/f16 behind our back
        "INFERENCE_NUM_THREADS": threads,
    }
    if hint == "THROUGHPUT":
        config["NUM_STREAMS"] = threads
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    if precision != ov.Type.f32:
        raise ValueError(f"OpenVINO runs this graph in {precision}, not fp32")
    return compiled


class OpenVinoSoftMask(Closable):
    """Callable like the traced graph: (N, 3, S, S) float tensor in [0, 1] -> (N, 1, S, S).
    Owns its compilations: :meth:`close` frees them (a closed graph refuses to run)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = torch.get_num_threads() if threads is None else threads
        self.request = compile_graph(self.path, self.threads).create_infer_request()
        self._queue = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.request is None:
            raise RuntimeError(f"the OpenVINO graph {self.path.name} has been closed")
        batch = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        soft = self.request.infer({0: batch})[0]
        return torch.from_numpy(np.array(soft, copy=True))

    def run_many(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each (1, 3, S, S) image of ``images`` through the graph, side by side (one
        inference stream per thread): a folder's throughput, where one image at a time leaves
        cores idle in the graph's serial parts. Same answer as one at a time (both fp32)."""
        if self.threads < 2 or len(images) < 2:
            return [self(image) for image in images]
        from openvino import AsyncInferQueue

        from wavegms.runtime.onnx_session import check_same

        if self._queue is None:
            compiled = compile_graph(self.path, self.threads, "THROUGHPUT")
            self._queue = AsyncInferQueue(compiled, self.threads)
            first = self._run_queue(images[:1])[0]
            check_same(first, self(images[0]), "OpenVINO's throughput compilation")
        return self._run_queue(images)

    def _run_queue(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(images)

        def done(request, index: int) -> None:
            out[index] = torch.from_numpy(np.array(request.get_output_tensor(0).data, copy=True))

        self._queue.set_callback(done)
        for i, image in enumerate(images):
            batch = np.ascontiguousarray(image.detach().cpu().numpy(), dtype=np.float32)
            self._queue.start_async({0: batch}, i)
        self._queue.wait_all()
        return out  # type: ignore[return-value]

    def close(self) -> None:
        """Free the compiled models and their requests (after the queue's current runs)."""
        if self._queue is not None:
            self._queue.wait_all()
        self.request = self._queue = None


def build_openvino_soft_mask(model: WaveGMS, model_file: Path | None = None) -> OpenVinoSoftMask:
    """The cached ONNX export of ``model`` compiled by OpenVINO, checked against the eager
    model (ValueError if it differs; ImportError if OpenVINO is not installed)."""
    from wavegms.core.extras import require

    require("openvino", "the openvino backend")  # before anything is exported

    from wavegms.runtime.onnx_graph import cached_onnx
    from wavegms.runtime.onnx_session import check_against_eager

    graph = OpenVinoSoftMask(cached_onnx(model, model_file))
    check_against_eager(graph, model)
    return graph
