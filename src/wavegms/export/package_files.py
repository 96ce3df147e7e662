"""The files inside an exported model package, each made by the project's own code path:
TorchScript weights of the soft-mask path, test tensors, a cover image and the documentation.

The package's network runs on what :func:`~wavegms.data.preprocess.model_input` makes (RGB
float32 in [0, 1], resized to the model size) and gives the soft mask at the model size, as
:meth:`WaveGMS.predict_soft` does; resizing the mask back to the image is left to the consumer.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from wavegms.core.errors import NONFINITE_SOFT, InputError, WaveGMSError
from wavegms.data.images import page_count, read_image
from wavegms.data.preprocess import model_input
from wavegms.net.model import WaveGMS

#: cover images are at least this tall: a 32-pixel model's tensors would make a tiny cover
COVER_HEIGHT = 256


def soft_mask_module(model: WaveGMS) -> torch.nn.Module:
    """The whole inference path as one module, images (N, 3, S, S) in [0, 1] -> soft masks
    (N, 1, S, S): the one the ONNX export records too (``runtime.soft_mask``)."""
    from wavegms.runtime.soft_mask import SoftMaskPath

    return SoftMaskPath(model).eval()


def write_torchscript(model: WaveGMS, path: Path) -> Path:
    """Trace the soft-mask path at the model size, freeze it (which drops the weights it never
    uses, such as the autoencoder's encoder) and save it. Not optimised for this CPU, unlike
    the inference graph of ``runtime.traced``, so that the file runs wherever PyTorch does."""
    size = model.config.image_size
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shapes: one fixed shape is recorded
        graph = torch.jit.trace(
            soft_mask_module(model), torch.zeros(1, 3, size, size), check_trace=False
        )
        graph = torch.jit.freeze(graph)
    graph.save(str(path))
    make_reproducible(Path(path))
    return path


def make_reproducible(path: Path) -> None:
    """Rewrite a saved TorchScript archive without its ``.debug_pkl`` records, which hold the
    source paths of the machine that exported it (a user's home folder has no place in a
    shared package), and with a serialization id made from its contents instead of a random
    one: the same model then exports the same bytes from a wheel or a clone, today or later.
    Loading and running need neither."""
    import hashlib
    import zipfile

    from wavegms.core.files import atomic_write

    with zipfile.ZipFile(path) as archive:
        kept = [
            (info, archive.read(info.filename))
            for info in archive.infolist()
            if not info.filename.endswith(".debug_pkl")
        ]
    digest = hashlib.sha256()
    for info, data in kept:
        if not info.filename.endswith("serialization_id"):
            digest.update(info.filename.encode() + data)
    serial = f"{int(digest.hexdigest(), 16) % 10**40:040d}".encode()
    kept = [(i, serial if i.filename.endswith("serialization_id") else d) for i, d in kept]

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as out:
            for info, data in kept:
                out.writestr(info, data)

    atomic_write(path, write)


def test_tensors(model: WaveGMS, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(input (1, 3, S, S), output (1, 1, S, S)), float32, of ``image`` through the project's
    own path: ``model_input`` then ``predict_soft``. A non-finite output is refused."""
    size = model.config.image_size
    x = model_input(image, size).transpose(2, 0, 1)[None].copy()
    device = next(model.parameters()).device
    y = model.predict_soft(torch.from_numpy(x).to(device)).float().cpu().numpy()
    if not np.isfinite(y).all():
        raise WaveGMSError(NONFINITE_SOFT)
    return x.astype(np.float32), y.astype(np.float32)


def example_image(path: str | Path | None) -> np.ndarray:
    """The image the test tensors and the cover are made of: ``path``, else the synthetic
    ultrasound-like sample image shipped in the package (no patient data). A file of several
    planes (a multi-frame DICOM, a NIfTI volume, a multi-page TIFF) is refused before its
    pixels are read: which plane to show is the user's choice."""
    if path is None:
        from wavegms.package_data import as_path, sample_file

        with as_path(sample_file()) as sample:
            return read_image(sample)
    planes = page_count(path)
    if planes > 1:
        raise InputError(
            f"{path} holds {planes} planes (frames, slices or pages); the package's test image "
            "must be one 2D image: save the plane you want as a PNG and pass that"
        )
    return read_image(path)


def cover(x: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """A 2:1 RGB uint8 cover: the model input on the left, on the right the same image with
    the soft mask tinted red and the thresholded outline in yellow."""
    image = x[0].transpose(1, 2, 0)
    soft = y[0, 0]
    tinted = image * (1 - 0.5 * soft[..., None]) + 0.5 * soft[..., None] * np.array([1, 0, 0])
    inside = soft > threshold
    edge = inside & ~(
        np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1)
        & np.roll(inside, -1, 1)
    )  # fmt: skip
    tinted[edge] = (1, 1, 0)
    both = np.concatenate([image, tinted], axis=1)
    factor = max(1, -(-COVER_HEIGHT // both.shape[0]))  # whole-pixel enlargement, no blur
    both = both.repeat(factor, axis=0).repeat(factor, axis=1)
    return np.round(np.clip(both, 0, 1) * 255).astype(np.uint8)


def sample_images(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The test tensors as pictures for people (bioimage.io's sample tensors): the input as an
    RGB image and the soft mask as a grey one, both at the model size."""
    return x[0].transpose(1, 2, 0), y[0, 0]


def documentation(name: str, model: WaveGMS, card: str | None) -> str:
    """The package's README.md: the model card (or a short heading) followed by how the
    input is prepared and how to validate the model, which bioimage.io asks for."""
    size = model.config.image_size
    head = card.rstrip() if card else f"# Wave-GMS model `{name}`"
    return f"""{head}

## Input and output of this package

- Input `image`: shape (1, 3, {size}, {size}) (batch, RGB channel, y, x), float32 in [0, 1].
  Prepare it as napari-wavegms does: grey images are repeated to three channels, alpha is
  dropped; uint8 values are divided by 255, other values are kept when they lie in [0, 1] and
  otherwise stretched by the image's own minimum and maximum; then the image is resized
  to {size} x {size} (aspect ratio ignored, bilinear with anti-aliasing).
- Output `soft_mask`: shape (1, 1, {size}, {size}), float32 in [0, 1], the lesion
  probability-like soft mask at the model size. Resize it bilinearly to the image's size and
  threshold it at 0.5 for a binary mask.
- Weights: TorchScript and ONNX of the whole inference path (wavelet encoder, latent mapping
  model and the frozen TAEF2 decoder); both give the test output from the test input.

## Validation

Validate the model on unseen, labelled images of your own before you rely on it: with
napari-wavegms, `wavegms evaluate --model {name} --data FOLDER --split test --out EVAL`
writes per-image DSC, IoU and HD95 (at {size} and at the native size) for a folder of
`images/` and `masks/`. The test tensors of this package only check that a runtime
reproduces the model's output; they say nothing about its accuracy.
"""


def write_package(out: Path, write) -> Path:
    """``write(tmp)`` into a temporary beside ``out``, renamed into place, while this process
    holds the folder's lock: a temporary of the same package left there by a killed export
    (15 MB, hidden) is then known to be stale and is removed first."""
    from wavegms.core.files import atomic_write, is_temporary_of
    from wavegms.core.lock import folder_lock

    with folder_lock(out.parent):
        for leftover in out.parent.iterdir():
            if is_temporary_of(leftover.name, out.name) and leftover.is_file():
                leftover.unlink(missing_ok=True)
        return atomic_write(out, write, suffix=".zip")
