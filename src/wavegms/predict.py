"""Prediction: one image, a stack, or a folder -> binary and soft masks at the input's size.

Images of any size are resized to the model size (aspect ignored, as in training); the soft mask
is resized back bilinearly and then thresholded, so edges follow the soft mask, not a blocky
224-pixel grid.

Very large planes (more than :data:`LARGE_PLANE_PIXELS`) take memory-lean paths: they are
box-averaged band by band before a float copy is made, and the soft mask is interpolated
straight into its output array. The masks themselves must fit into memory: a stack whose masks
would not is refused with :class:`InputError` before anything is allocated.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import InputError, ReducedBatchWarning, WaveGMSError
from .evaluate import resize_soft
from .io import check_numeric, intensity_range, to_rgb01
from .progress import CancelToken, ProgressCallback, check_cancel, report

#: planes with more pixels than this (e.g. 2900x2900) take the memory-lean paths
LARGE_PLANE_PIXELS = 1 << 23
#: about how many values one band of a large plane holds while it is converted to float
BAND_VALUES = 1 << 22
#: the share of the free memory the masks of one ``segment`` call may take
MEMORY_SHARE = 0.5
#: bytes per pixel of ``segment``'s outputs: a float32 soft mask and a bool binary mask
MASK_BYTES_PER_PIXEL = 5


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """float32 HxWx3 in [0, 1] -> size x size x 3, anti-aliased bilinear (as in training)."""
    if image.shape[:2] == (size, size):
        return image.astype(np.float32, copy=False)
    from skimage.transform import resize

    out = resize(image, (size, size), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(out, 0, 1).astype(np.float32)


def _box_reduce(plane: np.ndarray, factor: int) -> np.ndarray:
    """Normalise a large 2D image (as :func:`to_rgb01` would) and average it over
    ``factor x factor`` blocks (the last ones partial), band by band, so no full-size float
    copy ever exists: an 8000x8000 grey image would need 1.5 GB as float64 RGB."""
    value_range = intensity_range(plane)
    height, width = plane.shape[:2]
    band_rows = factor * max(1, BAND_VALUES // (factor * width * 3))
    col_starts = np.arange(0, width, factor)
    col_counts = np.diff(np.append(col_starts, width)).astype(np.float64)
    bands = []
    for top in range(0, height, band_rows):
        band = to_rgb01(plane[top : top + band_rows], value_range=value_range)
        row_starts = np.arange(0, band.shape[0], factor)
        row_counts = np.diff(np.append(row_starts, band.shape[0])).astype(np.float64)
        sums = np.add.reduceat(band, row_starts, axis=0, dtype=np.float64)
        sums = np.add.reduceat(sums, col_starts, axis=1)
        bands.append(sums / row_counts[:, None, None] / col_counts[None, :, None])
    return np.concatenate(bands).astype(np.float32)


def model_input(image: np.ndarray, size: int) -> np.ndarray:
    """Any 2D image (HxW or HxWxC, any real dtype) -> float32 ``size x size x 3`` in [0, 1]:
    ``resize_image(to_rgb01(image), size)``, except that a plane of more than
    :data:`LARGE_PLANE_PIXELS` is first box-averaged to about twice the model size."""
    image = np.asarray(image)
    height, width = image.shape[:2]
    factor = min(height, width) // (2 * size)
    if height * width > LARGE_PLANE_PIXELS and factor >= 2:
        return resize_image(_box_reduce(image, factor), size)
    return resize_image(to_rgb01(image), size)


def _interpolation(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of 1D linear interpolation with pixel centres aligned and
    edge values repeated (skimage's ``resize(order=1, mode="edge")`` when enlarging)."""
    pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (pos - lo).astype(np.float32)
    return lo, hi, frac


def _enlarge_into(small: np.ndarray, out: np.ndarray) -> None:
    """Bilinearly enlarge a 2D soft mask into ``out`` (float32, every side at least as large),
    row band by row band, so that no float64 or full-size temporary is made."""
    rows_lo, rows_hi, rows_frac = _interpolation(out.shape[0], small.shape[0])
    cols_lo, cols_hi, cols_frac = _interpolation(out.shape[1], small.shape[1])
    small = small.astype(np.float32, copy=False)
    wide = small[:, cols_lo] * (1 - cols_frac) + small[:, cols_hi] * cols_frac  # (S, W)
    step = max(1, BAND_VALUES // (4 * out.shape[1]))
    for top in range(0, out.shape[0], step):
        rows = slice(top, top + step)
        f = rows_frac[rows, None]
        np.multiply(wide[rows_lo[rows]], 1 - f, out=out[rows])
        out[rows] += wide[rows_hi[rows]] * f
    np.clip(out, 0.0, 1.0, out=out)


def soft_to_shape(
    small: np.ndarray, shape: tuple[int, int], out: np.ndarray | None = None
) -> np.ndarray:
    """A model-size soft mask resized to ``shape`` (float32 in [0, 1]), written to ``out`` if
    given. Large outputs that only enlarge take the memory-lean path (same interpolation)."""
    height, width = int(shape[0]), int(shape[1])
    enlarging = height >= small.shape[0] and width >= small.shape[1]
    if out is None:
        out = np.empty((height, width), np.float32)
    if enlarging and height * width > LARGE_PLANE_PIXELS:
        _enlarge_into(np.asarray(small), out)
    else:
        out[...] = resize_soft(small, (height, width))
    return out


def split_planes(image: np.ndarray, rgb: bool | None = None) -> tuple[np.ndarray, tuple, bool]:
    """View any array as a list of 2D planes: (planes (N, H, W[, C]), leading shape, rgb).

    ``rgb=None`` guesses: a last axis of 1 to 4 on a 3D+ array holds channels (napari's RGB(A)
    rule, plus grey+alpha and single-channel images as image files give them).
    """
    image = np.asarray(image)
    if image.ndim < 2 or image.size == 0:
        raise InputError(f"expected a 2D image or a stack of them, got shape {image.shape}")
    if rgb is None:
        rgb = image.ndim >= 3 and image.shape[-1] <= 4
    spatial = 3 if rgb else 2
    if image.ndim < spatial:
        raise InputError(f"an RGB image needs 3 dimensions, got shape {image.shape}")
    lead = image.shape[: image.ndim - spatial]
    return image.reshape((-1, *image.shape[image.ndim - spatial :])), lead, rgb


def _available_memory() -> int | None:
    """Bytes of memory free for new allocations, or None where that cannot be told."""
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def check_mask_memory(n_planes: int, height: int, width: int) -> None:
    """Refuse, before allocating, masks that would take more than :data:`MEMORY_SHARE` of
    the free memory: running out of memory kills the process (and napari with it)."""
    needed = n_planes * height * width * MASK_BYTES_PER_PIXEL
    available = _available_memory()
    if available is None or needed <= MEMORY_SHARE * available:
        return
    gb = 1 << 30
    raise InputError(
        f"the masks of {n_planes} plane(s) of {height}x{width} pixels would need "
        f"{needed / gb:.1f} GB of memory and only {available / gb:.1f} GB is free; crop or "
        "downscale the image, or segment fewer planes at a time"
    )


# torch.OutOfMemoryError is new in torch 2.5; torch.cuda's name for it is older.
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, _OUT_OF_MEMORY):
        return True
    # MPS and some CUDA paths raise a plain RuntimeError with this text.
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class Segmenter:
    """A loaded model plus the settings it runs with. Thread-compatible, not thread-safe:
    use one Segmenter per worker."""

    def __init__(
        self,
        model,
        device: str = "auto",
        threshold: float = 0.5,
        batch_size: int = 8,
        traced: bool | None = None,
    ):
        """``traced``: run the TorchScript graph of :mod:`wavegms.traced` (default: on CPU,
        where it is about a quarter faster); otherwise the eager model, batch by batch."""
        from .devices import resolve_device

        if not 0 <= threshold <= 1:
            raise InputError(f"threshold must be in [0, 1], got {threshold}")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.threshold = threshold
        self.batch_size = batch_size
        self.traced = self.device.type == "cpu" if traced is None else traced
        self._graph = None

    @classmethod
    def load(cls, name_or_path: str | Path, device: str = "auto", **kwargs) -> Segmenter:
        from .registry import load_segmentation_model

        return cls(load_segmentation_model(name_or_path, device), device, **kwargs)

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    def _run(self, images: Sequence[np.ndarray]) -> np.ndarray:
        chunk = [model_input(im, self.image_size) for im in images]
        batch = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).to(self.device)
        graph = self._soft_mask_graph() if self.traced else None
        if graph is not None:
            with torch.no_grad():
                soft = torch.cat([graph(batch[i : i + 1]) for i in range(len(batch))])
        else:
            soft = self.model.predict_soft(batch)
        return soft[:, 0].float().cpu().numpy()

    def _soft_mask_graph(self):
        """The traced graph, built on first use; None (eager from then on) if tracing fails."""
        if self._graph is None:
            from .traced import trace_soft_mask

            try:
                self._graph = trace_soft_mask(self.model)
            except Exception as err:  # a speed-up must never cost the result
                warnings.warn(
                    f"the traced CPU graph could not be built ({type(err).__name__}: {err}); "
                    "using the eager model",
                    RuntimeWarning,
                    stacklevel=4,
                )
                self.traced = False
        return self._graph

    def _reduce_batch(self, err: BaseException) -> None:
        """After running out of memory: halve the batch size for good, or give up at 1."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size == 1:
            raise WaveGMSError(
                f"out of memory on {self.device} even for a single image; close other "
                "programs using it or choose the device 'cpu'"
            ) from err
        old, self.batch_size = self.batch_size, max(1, self.batch_size // 2)
        warnings.warn(
            f"out of memory on {self.device} at batch size {old}; going on with batch size "
            f"{self.batch_size}",
            ReducedBatchWarning,
            stacklevel=3,
        )

    def predict_soft(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """2D images (float32 HxWx3 in [0, 1], or anything :func:`model_input` takes) ->
        (B, S, S) soft masks at the model size. Running out of (GPU) memory halves the batch
        size, with a :class:`ReducedBatchWarning`, and tries again."""
        out: list[np.ndarray] = []
        start = 0
        while start < len(images):
            chunk = images[start : start + self.batch_size]
            try:
                out.append(self._run(chunk))
            except Exception as err:
                if not _is_out_of_memory(err):
                    raise
                self._reduce_batch(err)
                continue
            start += len(chunk)
        return np.concatenate(out) if out else np.zeros((0, self.image_size, self.image_size))

    def segment(
        self,
        image: np.ndarray,
        rgb: bool | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Any 2D image or stack -> (binary mask bool, soft mask float32), both shaped like the
        input without its colour axis. Stacks are segmented plane by plane. Raises
        :class:`InputError` for input that is no real-valued image, or whose masks would not
        fit into the free memory, before the model runs."""
        planes, lead, rgb = split_planes(image, rgb)
        check_numeric(planes, "image")  # before any allocation, e.g. complex values
        n_planes, height, width = planes.shape[:3]
        check_mask_memory(n_planes, height, width)
        binary = np.empty((n_planes, height, width), dtype=bool)
        soft = np.empty((n_planes, height, width), dtype=np.float32)
        for start in range(0, n_planes, self.batch_size):
            check_cancel(cancel)
            idx = range(start, min(start + self.batch_size, n_planes))
            small = self.predict_soft([planes[i] for i in idx])
            for i, s in zip(idx, small, strict=True):
                soft_to_shape(s, (height, width), out=soft[i])
                np.greater(soft[i], self.threshold, out=binary[i])
            report(progress, "segment", idx[-1] + 1, n_planes)
        shape = (*lead, height, width)
        return binary.reshape(shape), soft.reshape(shape)
