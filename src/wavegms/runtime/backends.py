"""Which compiled graph runs a model, and building it: the backends and precisions a
:class:`~wavegms.inference.segmenter.Segmenter` knows, the order it tries them in, and the
one function that builds each graph (every one checked against the eager model)."""

from __future__ import annotations

import warnings
from pathlib import Path

from wavegms.core.errors import InputError

#: Every backend a Segmenter runs; see :class:`~wavegms.inference.segmenter.Segmenter`.
BACKENDS = ("auto", "eager", "traced", "onnx", "openvino", "int8")
#: The arithmetic a Segmenter runs in: exact fp32 (the default everywhere) or int8 (faster,
#: not exact: only when the user asks for it).
PRECISIONS = ("fp32", "int8")
#: The exact CPU graphs "auto" tries, fastest first (docs/performance.md, issue 13); without
#: them the eager model runs. TorchScript ("traced") is not in line: building it costs more
#: than it saves on a run of a few images (docs/performance.md, issue 26).
AUTO_ORDER = ("onnx",)


def precision_of(backend: str) -> str:
    """The arithmetic a backend runs in: ``int8`` for the quantised graph, ``fp32`` for every
    other (the exact graphs and the eager model); empty when the backend is not known."""
    if not backend:
        return ""
    return "int8" if backend == "int8" else "fp32"


def choose(backend: str, precision: str, device: str) -> tuple[str, str]:
    """The (backend, precision) a Segmenter runs with when asked for ``backend`` and
    ``precision`` on a ``device`` of that torch type:
    checked, with one-line errors. int8 off the CPU warns and runs exact fp32 there (the
    graphs here are CPU graphs)."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be fp32 or int8, not {precision!r}")
    if backend == "int8":
        backend, precision = "auto", "int8"
    if precision == "int8" and backend != "auto":
        raise InputError(f"int8 runs on ONNX Runtime only: leave the backend auto, not {backend}")
    if device != "cpu":
        if precision != "fp32":
            warnings.warn(
                f"int8 runs on the CPU only; running exact fp32 on {device}",
                RuntimeWarning,
                stacklevel=3,
            )
        return "eager", "fp32"
    return backend, precision


def backend_line(backend: str, precision: str) -> tuple[str, ...]:
    """The graphs tried in turn for ``backend`` and ``precision`` on CPU: the first that
    builds and passes its check runs, else the eager model. int8 (asked for) comes first,
    followed by the exact graphs, so that a machine without ONNX Runtime still answers,
    exactly."""
    if precision == "int8":
        return ("int8", *AUTO_ORDER)
    return AUTO_ORDER if backend == "auto" else (backend,)


def build_graph(backend: str, model, model_file: Path | None, calibration=None):
    """One compiled soft-mask graph: images (N, 3, S, S) in [0, 1] -> soft masks (N, 1, S, S)."""
    if backend == "traced":
        from wavegms.runtime.traced import trace_soft_mask

        return trace_soft_mask(model)
    if backend == "onnx":
        from wavegms.runtime.onnx_session import build_onnx_soft_mask

        return build_onnx_soft_mask(model, model_file)
    if backend == "openvino":
        from wavegms.runtime.openvino_session import build_openvino_soft_mask

        return build_openvino_soft_mask(model, model_file)
    if backend == "int8":
        from wavegms.runtime.quantize import build_int8_soft_mask

        return build_int8_soft_mask(model, model_file, calibration)
    raise InputError(f"no graph for backend {backend!r}")
