"""Export of the soft-mask path to ONNX, and its per-model cache.

:func:`export_onnx` writes the exact path (E_wave mean, LMM ``out`` head, the exactly rewritten
TAEF2 decoder of :mod:`wavegms.runtime.decoder_rewrite`) as an fp32 ONNX graph: input
``images`` (N, 3, H, W) float in [0, 1], output ``mask`` (N, 1, H, W) soft mask in [0, 1].
:func:`cached_onnx` keeps one export per model in the user cache
(:mod:`wavegms.runtime.graph_cache`: named by the model's sha256 and torch's version, checked
before use, rebuilt when damaged).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from wavegms.core.files import atomic_write
from wavegms.net.model import WaveGMS
from wavegms.runtime.graph_cache import (  # noqa: F401  (GRAPH_VERSION: named here too)
    GRAPH_VERSION,
    cache_path,
    cached_file,
    library_versions,
    model_digest,
)
from wavegms.runtime.soft_mask import SoftMaskPath

INPUT_NAME, OUTPUT_NAME = "images", "mask"
MAX_SIDE_8 = 512  # H and W up to 4096 (the largest model size)
OPSET = 20  # the newest opset both torch exporters write


def _attention_as_matmul(
    q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
):
    """softmax(q k^T * scale) v: the LMM's attention (no mask, no dropout) in operators every
    ONNX opset has; the exporter's fused attention accepts only 4D inputs."""
    if attn_mask is not None or dropout_p or is_causal:
        raise ValueError("only plain attention is exported")
    s = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    return torch.softmax((q * s) @ k.transpose(-2, -1), dim=-1) @ v


def export_onnx(model: WaveGMS, path: Path, *, opset: int | None = None) -> Path:
    """Write ``model``'s soft-mask path to ``path`` as fp32 ONNX and return ``path``.

    Input ``images``: (N, 3, H, W) float32 in [0, 1]; output ``mask``: (N, 1, H, W) float32
    soft mask in [0, 1] (threshold it for the binary mask). Dynamic dims: the batch N and the
    image height H and width W, which must be multiples of 8; the channel dims are fixed. The
    model was trained at ``model.config.image_size`` square: resize images to that size for
    the results it was validated on. ``opset``: the ONNX opset (default :data:`OPSET`).
    Written atomically: a reader sees the old file or the whole new one.
    """
    path = Path(path)
    module = SoftMaskPath(model.cpu().eval()).float()
    opset = OPSET if opset is None else opset

    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation and constant-folding notes
            try:
                _export_traced(module, tmp, opset)
            except Exception:  # the tracing exporter is deprecated; the other one is slow
                _export_dynamo(module, tmp, opset)

    return atomic_write(path, write, ".onnx")


def _example(module: SoftMaskPath) -> torch.Tensor:
    size = module.image_size
    return torch.rand(2, 3, size, size)  # batch 2, so that no exporter takes the batch as 1


def _export_traced(module: SoftMaskPath, path: Path, opset: int) -> None:
    """TorchScript-based exporter: seconds, where the torch.export one takes minutes."""
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        module, (_example(module),), str(path), dynamo=False, opset_version=opset,
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
    )  # fmt: skip


def _export_dynamo(module: SoftMaskPath, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    height = torch.export.Dim("height_8", min=1, max=MAX_SIDE_8)
    width = torch.export.Dim("width_8", min=1, max=MAX_SIDE_8)
    shapes = {"images": {0: batch, 2: 8 * height, 3: 8 * width}}
    program = torch.export.export(module, (_example(module),), dynamic_shapes=shapes, strict=False)
    table = torch.export.default_decompositions()
    table[torch.ops.aten.scaled_dot_product_attention.default] = _attention_as_matmul
    onnx_program = torch.onnx.export(
        program.run_decompositions(table), dynamo=True, opset_version=opset,
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], optimize=True, verbose=False,
    )  # fmt: skip
    onnx_program.save(str(path))


def model_key(model: WaveGMS, model_file: Path | None = None) -> str:
    """The sha256 of ``model``'s weights file when given, else of its trainable weights and
    config (see :func:`wavegms.runtime.graph_cache.model_digest`)."""
    return model_digest(model, model_file)


def cached_onnx(model: WaveGMS, model_file: Path | None = None) -> Path:
    """The ONNX export of ``model`` from the user cache, exported (atomically) if missing or
    damaged (in a child process within ``export_child.exports_in_child``). Named by the
    model's sha256, the graph version and torch's version. Whether the
    file is there and intact is asked of the disk each time (its digest is remembered per
    file version, :func:`~wavegms.runtime.graph_cache.file_sha256`): nothing of it is kept
    in this process."""
    path = cache_path(model_key(model, model_file), "onnx", library_versions(), ".onnx")
    return cached_file(path, lambda target: _export(model, model_file, target))


def _export(model: WaveGMS, model_file: Path | None, target: Path) -> None:
    """Export ``model`` to ``target``: from its file in a child process where the build asked
    for it (``export_child.exports_in_child``: no GIL held in this process meanwhile), else
    here; a child that fails leaves the export to this process."""
    from wavegms.runtime import export_child

    if model_file is not None and export_child.wanted():
        try:
            export_child.export_in_child(Path(model_file), target)
            return
        except (OSError, RuntimeError) as err:
            warnings.warn(f"{err}; exporting in this process", RuntimeWarning, stacklevel=2)
    export_onnx(model, target)
