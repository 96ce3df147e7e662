"""int8 activation ranges that travel with a model.

The int8 graph is only as good as the images its activation ranges were measured on: the
bundled sample image costs 6.2-6.75 BUSI test DSC, 32 of the model's own training images 0.1-0.2
(docs/performance.md). Users do not have those images, so the ranges are measured once where
they are (when a model is shipped: ``scripts/ship_model.py --calibrate DATA``) and stored in the
model's JSON under :data:`METADATA_KEY`; any machine then rebuilds the same int8 graph from the
fp32 export and these numbers alone (:func:`wavegms.runtime.quantize.build_int8_soft_mask`).

Stored: the exported graph's version (ranges name that graph's tensors), how many images, where
they came from, and ``{tensor name: [lowest, highest]}`` for every activation the quantiser
reads. Anything else (another graph version, a range that is not two finite ordered numbers)
is no calibration: the model then runs its exact fp32 graph.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

#: Where a model's JSON metadata keeps its calibration.
METADATA_KEY = "int8_calibration"
#: The operators whose inputs are quantised (and so calibrated); see ``quantize_onnx``.
QUANTISED_OPS = ("Conv",)


def calibration_batches(images: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Images as readers give them -> model inputs (1, 3, S, S) float32, one per image, made
    by the one preprocessing function (so calibration sees what inference sees)."""
    from wavegms.data.preprocess import model_input

    for image in images:
        yield model_input(image, size).transpose(2, 0, 1)[None].astype(np.float32)


def sample_images() -> list[np.ndarray]:
    """The bundled sample images, flipped too: the default calibration set."""
    from wavegms.data.images import read_image
    from wavegms.package_data import as_path, sample_image_files

    images = []
    for resource in sample_image_files():
        with as_path(resource) as path:
            images.append(read_image(path))
    return images + [im[:, ::-1] for im in images]


def dataset_images(data_dir: str | Path, n: int = 32, seed: int = 0) -> list[np.ndarray]:
    """``n`` images drawn (seeded) from the training split of a dataset folder: calibration
    images like the ones the model will see."""
    from wavegms.data.images import read_image
    from wavegms.data.pairs import dataset_pairs

    pairs = dataset_pairs(data_dir, split="train")
    picked = np.random.default_rng(seed).choice(len(pairs), min(n, len(pairs)), replace=False)
    return [read_image(pairs[i].image) for i in picked]


def batch_reader(batches: Iterable[np.ndarray]):
    """``batches`` (model inputs) as the ONNX Runtime calibration reader that feeds them to the
    exported graph's ``images`` input."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    return Reader()


def measure_ranges(fp32_path: Path, batches: Iterable[np.ndarray]) -> dict[str, list[float]]:
    """``{tensor: [lowest, highest]}`` of the activations ONNX Runtime's quantiser calibrates
    in the graph at ``fp32_path``, over the model inputs ``batches`` (min/max, as
    ``quantize_static`` itself measures)."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    with tempfile.TemporaryDirectory(prefix="wavegms-calibration-") as tmp:
        calibrator = create_calibrator(
            Path(fp32_path),
            list(QUANTISED_OPS),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
        )
        calibrator.collect_data(batch_reader(batches))
        data = calibrator.compute_data()
    return {
        name: [float(np.min(r.range_value[0])), float(np.max(r.range_value[1]))]
        for name, r in sorted(data.data.items())
    }


def recorded_check(metadata: dict) -> float | None:
    """The ``check`` stored with a model's ranges, if it is a usable number."""
    record = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    value = record.get("check") if isinstance(record, dict) else None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) and value >= 0 else None


def stored_ranges(metadata: dict) -> dict[str, list[float]] | None:
    """The ranges in a model's metadata if they are usable for today's exported graph, else
    None (no calibration, another graph version, or numbers that are not ranges)."""
    from wavegms.runtime.onnx_graph import GRAPH_VERSION

    record = metadata.get(METADATA_KEY)
    if not isinstance(record, dict) or record.get("graph") != GRAPH_VERSION:
        return None
    ranges = record.get("ranges")
    if not isinstance(ranges, dict) or not ranges:
        return None
    for value in ranges.values():
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
            and value[0] <= value[1]
        ):
            return None
    return ranges
