"""int8 post-training quantisation of the exported soft-mask graph (ONNX Runtime, static, QDQ).

Weights are int8 per output channel with 7-bit range (``reduce_range``: AVX2 without VNNI
saturates the 16-bit sums of u8 x s8 products otherwise); activations are uint8 with ranges
calibrated on images. Not exact: the answer differs from the fp32 model, so the int8 backend
is only used when asked for, and ``wavegms bench`` reports its BUSI DSC/HD95 beside fp32's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from wavegms.core.files import atomic_write
from wavegms.net.model import WaveGMS

#: Largest mean absolute soft-mask difference from the eager model accepted when the int8
#: graph is built (a broken quantisation is far off; rounding is not).
CHECK_MEAN_TOLERANCE = 0.05
SAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "napari" / "sample_data" / "images"


def calibration_batches(images: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Images as readers give them -> model inputs (1, 3, S, S) float32, one per image, made
    by the one preprocessing function (so calibration sees what inference sees)."""
    from wavegms.data.preprocess import model_input

    for image in images:
        yield model_input(image, size).transpose(2, 0, 1)[None].astype(np.float32)


def sample_images() -> list[np.ndarray]:
    """The bundled sample images, flipped too: the default calibration set."""
    from wavegms.data.images import read_image

    images = [read_image(p) for p in sorted(SAMPLE_IMAGES.glob("*.png"))]
    return images + [im[:, ::-1] for im in images]


def quantize_onnx(fp32_path: Path, out_path: Path, batches: Iterable[np.ndarray]) -> Path:
    """Write the static int8 (QDQ) version of the fp32 graph at ``fp32_path`` to ``out_path``,
    activation ranges calibrated on ``batches`` (model inputs, see :func:`calibration_batches`)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    def write(tmp: Path) -> None:
        quantize_static(
            str(fp32_path), str(tmp), Reader(),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
            op_types_to_quantize=["Conv"],
        )  # fmt: skip

    return atomic_write(Path(out_path), write, ".onnx")


def check_int8(graph, model: WaveGMS) -> float:
    """Mean absolute soft-mask difference from the eager model on a bundled sample image;
    ValueError above :data:`CHECK_MEAN_TOLERANCE` or for non-finite output."""
    (batch,) = list(calibration_batches(sample_images()[:1], model.config.image_size))
    images = torch.from_numpy(batch)
    expected = model.predict_soft(images.to(next(model.parameters()).device)).float().cpu()
    got = graph(images).float()
    if got.shape != expected.shape or not torch.isfinite(got).all():
        raise ValueError("the int8 graph gives the wrong shape or non-finite values")
    diff = (got - expected).abs().mean().item()
    if diff > CHECK_MEAN_TOLERANCE:
        raise ValueError(f"the int8 graph differs from the eager model by {diff:.3f} on average")
    return diff


def build_int8_soft_mask(model: WaveGMS, model_file: Path | None = None):
    """The int8 ONNX Runtime graph of ``model``, quantised once into the user cache (next to
    the fp32 export, calibrated on the bundled sample images) and checked."""
    from wavegms.runtime.onnx_graph import cached_onnx
    from wavegms.runtime.onnx_session import OnnxSoftMask

    fp32 = cached_onnx(model, model_file)
    int8 = fp32.with_name(fp32.stem + "-int8.onnx")
    if not int8.is_file():
        quantize_onnx(fp32, int8, calibration_batches(sample_images(), model.config.image_size))
    graph = OnnxSoftMask(int8)
    check_int8(graph, model)
    return graph
