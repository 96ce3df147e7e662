"""int8 post-training quantisation of the exported soft-mask graph (ONNX Runtime, static, QDQ).

Weights are int8 per output channel with 7-bit range (``reduce_range``: AVX2 without VNNI
saturates the 16-bit sums of u8 x s8 products otherwise); activations are uint8 with ranges
calibrated on images. The calibration images decide the accuracy: on BUSI test, calibrated on
the one bundled sample image (and its mirror) the graph loses 6.2-6.75 DSC against fp32, on 32
BUSI training images 0.1-0.2 (docs/performance.md, issue 13). Not exact: the answer differs
from the fp32 model, so the int8 backend is only used when asked for, and ``wavegms bench``
reports its BUSI DSC/HD95 beside fp32's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
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


def dataset_images(data_dir: str | Path, n: int = 32, seed: int = 0) -> list[np.ndarray]:
    """``n`` images drawn (seeded) from the training split of a dataset folder: calibration
    images like the ones the model will see."""
    from wavegms.data.images import read_image
    from wavegms.data.pairs import dataset_pairs

    pairs = dataset_pairs(data_dir, split="train")
    picked = np.random.default_rng(seed).choice(len(pairs), min(n, len(pairs)), replace=False)
    return [read_image(pairs[i].image) for i in picked]


def quantize_onnx(
    fp32_path: Path,
    out_path: Path,
    batches: Iterable[np.ndarray],
    *,
    reduce_range: bool = True,
    exclude: Sequence[str] = (),
) -> Path:
    """Write the static int8 (QDQ) version of the fp32 graph at ``fp32_path`` to ``out_path``,
    activation ranges calibrated on ``batches`` (model inputs, see :func:`calibration_batches`).
    ``reduce_range``: 7-bit weights (safe on every x86 CPU); ``exclude``: names of Conv nodes
    left in fp32."""
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
            weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range,
            op_types_to_quantize=["Conv"], nodes_to_exclude=list(exclude),
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


def build_int8_soft_mask(
    model: WaveGMS,
    model_file: Path | None = None,
    calibration: Sequence[np.ndarray] | None = None,
):
    """The int8 ONNX Runtime graph of ``model``, quantised once into the user cache (next to
    the fp32 export) and checked. ``calibration``: the images its activation ranges are
    calibrated on (default: the bundled sample images; see the module docstring for why
    images like the real ones are better); the cached file is named by their digest."""
    from wavegms.runtime.onnx_graph import cached_onnx
    from wavegms.runtime.onnx_session import OnnxSoftMask

    fp32 = cached_onnx(model, model_file)
    images = sample_images() if calibration is None else list(calibration)
    batches = list(calibration_batches(images, model.config.image_size))
    digest = hashlib.sha256()
    for batch in batches:
        digest.update(batch.tobytes())
    suffix = "" if calibration is None else f"-c{digest.hexdigest()[:16]}"
    int8 = fp32.with_name(f"{fp32.stem}-int8{suffix}.onnx")
    if not int8.is_file():
        quantize_onnx(fp32, int8, batches)
    graph = OnnxSoftMask(int8)
    check_int8(graph, model)
    return graph
