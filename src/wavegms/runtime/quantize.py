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

import contextlib
import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from wavegms.core.files import atomic_write
from wavegms.net.model import WaveGMS
from wavegms.runtime.calibration import (
    QUANTISED_OPS,
    batch_reader,
    calibration_batches,
    measure_ranges,
    recorded_check,
    sample_images,
    stored_ranges,
)

#: Largest mean absolute soft-mask difference from the eager model, on the bundled sample
#: images, accepted for an int8 graph whose ranges record no check of their own (a broken
#: quantisation is far off; rounding is not).
CHECK_MEAN_TOLERANCE = 0.05
#: An int8 graph built from stored ranges may differ from the eager model by at most this
#: many times the difference recorded with the ranges (``check`` of the calibration record:
#: the same graph gives the same number; other CPUs' int8 kernels round a little otherwise).
#: Ranges widened 3x give 2.2x (busi) to 3.7x (kvasir-seg) the recorded difference and cost
#: 2.4 BUSI DSC in silence; they are refused.
CHECK_RECORDED_FACTOR = 1.5


class _QuantiserNotes(logging.Filter):
    """Drops the quantiser's advice to pre-process the graph (it is written to the root
    logger on every build, and the graph here is already the optimised export)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantiser():
    root, notes = logging.getLogger(), _QuantiserNotes()
    root.addFilter(notes)
    try:
        yield
    finally:
        root.removeFilter(notes)


def quantize_onnx(
    fp32_path: Path,
    out_path: Path,
    batches: Iterable[np.ndarray] = (),
    *,
    reduce_range: bool = True,
    exclude: Sequence[str] = (),
    ranges: dict[str, list[float]] | None = None,
) -> Path:
    """Write the static int8 (QDQ) version of the fp32 graph at ``fp32_path`` to ``out_path``.
    Activation ranges: ``ranges`` measured before (``runtime.calibration``; handed to the
    quantiser as its calibration cache, so no image is run), else calibrated on ``batches``
    (model inputs, see :func:`calibration_batches`). ``reduce_range``: 7-bit weights (safe
    on every x86 CPU); ``exclude``: names of Conv nodes left in fp32."""
    import tempfile

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        TensorData,
        TensorsData,
        save_tensors_data,
    )

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="wavegms-int8-") as folder:
            cache = None
            if ranges is not None:  # float32, as the quantiser's own calibration holds them
                cache = Path(folder) / "ranges.json"
                data = {
                    name: TensorData(lowest=np.float32(low), highest=np.float32(high))
                    for name, (low, high) in ranges.items()
                }
                save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache)
            with _quiet_quantiser():
                quantize_static(
                    str(fp32_path), str(tmp), None if cache else batch_reader(batches),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range,
                    op_types_to_quantize=list(QUANTISED_OPS), nodes_to_exclude=list(exclude),
                    calibration_cache_path=cache,
                )  # fmt: skip

    return atomic_write(Path(out_path), write, ".onnx")


def sample_difference(graph, model: WaveGMS) -> float:
    """Mean absolute soft-mask difference of ``graph`` from the eager model over the bundled
    sample images (and their mirrors); ValueError for a wrong shape or non-finite output."""
    batches = calibration_batches(sample_images(), model.config.image_size)
    images = torch.from_numpy(np.concatenate(list(batches)))
    expected = model.predict_soft(images.to(next(model.parameters()).device)).float().cpu()
    got = torch.cat([graph(images[i : i + 1]).float() for i in range(len(images))])
    if got.shape != expected.shape or not torch.isfinite(got).all():
        raise ValueError("the int8 graph gives the wrong shape or non-finite values")
    return (got - expected).abs().mean().item()


def check_int8(graph, model: WaveGMS, recorded: float | None = None) -> float:
    """:func:`sample_difference` of ``graph``, refused (ValueError, one line) above
    :data:`CHECK_RECORDED_FACTOR` times ``recorded`` (the difference measured when its
    ranges were stored), or above :data:`CHECK_MEAN_TOLERANCE` when nothing was recorded."""
    diff = sample_difference(graph, model)
    if recorded is not None:
        limit = CHECK_RECORDED_FACTOR * recorded + 1e-5
        if diff > limit:
            raise ValueError(
                f"the int8 graph differs from the fp32 model by {diff:.4f} on the sample "
                f"images, more than the {recorded:.4f} recorded with its int8 ranges allows "
                f"({limit:.4f}): the ranges are not the ones the model was calibrated with"
            )
    elif diff > CHECK_MEAN_TOLERANCE:
        raise ValueError(f"the int8 graph differs from the eager model by {diff:.3f} on average")
    return diff


def build_int8_soft_mask(
    model: WaveGMS,
    model_file: Path | None = None,
    calibration: Sequence[np.ndarray] | None = None,
):
    """The int8 ONNX Runtime graph of ``model``, quantised once into the user cache (next to
    the fp32 export; rebuilt when damaged, see :mod:`wavegms.runtime.graph_cache`) and
    checked. Activation ranges: measured on ``calibration`` images if
    given, else the ranges stored in the model (``runtime.calibration``), else the bundled
    sample images (see the module docstring for why images like the real ones are better).
    The cached file is named by a digest of what calibrated it."""
    from wavegms.core.extras import require
    from wavegms.runtime.graph_cache import cache_path, cached_file, library_versions
    from wavegms.runtime.onnx_graph import cached_onnx, model_key
    from wavegms.runtime.onnx_session import OnnxSoftMask

    require("onnxruntime.quantization", "int8 (--precision int8)")  # before any export
    fp32 = cached_onnx(model, model_file)
    stored = stored_ranges(getattr(model, "metadata", {})) if calibration is None else None
    images = [] if stored is not None else sample_images() if calibration is None else calibration
    batches = list(calibration_batches(images, model.config.image_size))
    digest = hashlib.sha256()
    if stored is not None:
        digest.update(repr(sorted(stored.items())).encode())
        suffix = f"-r{digest.hexdigest()[:16]}"
    else:
        for batch in batches:
            digest.update(batch.tobytes())
        suffix = "" if calibration is None else f"-c{digest.hexdigest()[:16]}"
    libraries = library_versions("onnxruntime")  # its quantiser writes the graph
    int8 = cache_path(model_key(model, model_file), f"int8{suffix}", libraries, ".onnx")
    cached_file(int8, lambda path: quantize_onnx(fp32, path, batches, ranges=stored))
    graph = OnnxSoftMask(int8)
    check_int8(graph, model, recorded_check(model.metadata) if stored is not None else None)
    return graph


def calibration_record(model, images: list[np.ndarray], source: str) -> dict:
    """The :data:`METADATA_KEY` entry for ``model``: its activation ranges over ``images``
    (as readers give them; preprocessed by the one preprocessing function), where the images
    came from, and ``check``: how far the int8 graph of these ranges is from the fp32 model
    on the bundled sample images, which every later build of it must reproduce
    (:func:`check_int8`)."""
    from wavegms.runtime.onnx_graph import GRAPH_VERSION, cached_onnx

    fp32 = cached_onnx(model)
    ranges = measure_ranges(fp32, calibration_batches(images, model.config.image_size))
    record = {"graph": GRAPH_VERSION, "images": len(images), "source": source, "ranges": ranges}
    return {**record, "check": ranges_check(model, fp32, ranges)}


def ranges_check(model, fp32: Path, ranges: dict[str, list[float]]) -> float:
    """The sample difference of the int8 graph that ``ranges`` make of the export ``fp32``."""
    import tempfile

    from wavegms.runtime.onnx_session import OnnxSoftMask

    with tempfile.TemporaryDirectory(prefix="wavegms-check-") as tmp:
        int8 = quantize_onnx(fp32, Path(tmp) / "int8.onnx", ranges=ranges)
        return sample_difference(OnnxSoftMask(int8), model)
