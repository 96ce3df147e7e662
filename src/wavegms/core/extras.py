"""Optional libraries, imported the one way: a missing one is a one-line error that names the
extra of the package that installs it, never a raw ``ModuleNotFoundError``.

:class:`MissingExtraError` is an :class:`ImportError` too, so code that falls back when an
optional runtime is absent (the segmenter's graphs, the benchmark's rows) keeps doing so.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from wavegms.core.errors import WaveGMSError

#: The extra of napari-wavegms that installs each optional top-level module.
EXTRA_OF = {
    "onnxruntime": "cpu-fast",
    "onnx": "cpu-fast",
    "openvino": "openvino",
    "diffusers": "taesd",
    "bioimageio": "bioimageio",
    "pydicom": "clinical",
    "nibabel": "clinical",
    "dask": "distributed",
    "distributed": "distributed",
    "napari": "napari",
    "magicgui": "napari",
    "qtpy": "napari",
}


class MissingExtraError(WaveGMSError, ImportError):
    """An optional library that is not installed; the message says how to install it."""


def install_hint(module: str) -> str:
    """``pip install 'napari-wavegms[EXTRA]'`` for ``module`` (a dotted name is fine)."""
    top = module.split(".")[0]
    extra = EXTRA_OF.get(top)
    return f"pip install 'napari-wavegms[{extra}]'" if extra else f"pip install {top}"


def require(module: str, purpose: str) -> ModuleType:
    """``module`` imported, or :class:`MissingExtraError`: "``purpose`` needs ``module``:
    pip install 'napari-wavegms[extra]'". ``purpose`` says what the user asked for."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = err.name or module
        raise MissingExtraError(
            f"{purpose} needs {missing.split('.')[0]}, which is not installed: "
            f"{install_hint(module)}"
        ) from None


def one_line_reason(err: BaseException) -> str:
    """``err`` as one short line for a warning: its message alone when it is ours (it is
    written for the user), else its type and the message's first line."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, WaveGMSError):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
