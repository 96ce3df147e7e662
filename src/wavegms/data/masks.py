"""Masks to bool HxW: any drawn colour, transparency, label images and soft masks, with a
warning when several labels or colours are merged into one foreground."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError, MaskWarning
from wavegms.core.files import PathLike
from wavegms.data.images import read_image
from wavegms.data.intensities import check_numeric

#: a colour mask with 2 up to this many different colours in its foreground looks like labels
#: drawn in colours; more are anti-aliased or JPEG edges of one drawing
LABEL_COLOURS = 16


def _mask_plane(array: np.ndarray, what: str) -> np.ndarray:
    """The HxW plane a mask's foreground is read from: any non-zero channel counts, so a mask
    drawn in any colour is seen. Where the alpha channel holds transparency, only opaque
    pixels are drawn; if they all have one colour (or none: an alpha-only drawing), the
    opaque area itself is the mask."""
    if array.ndim == 2:
        return array
    if not (array.ndim == 3 and 1 <= array.shape[-1] <= 4):
        raise InputError(
            f"{what} has shape {array.shape}; expected a 2D image HxW or HxWxC with 1 to 4 channels"
        )
    channels = array.shape[-1]
    has_alpha = channels in (2, 4)
    colour = array[..., : channels - 1] if has_alpha else array
    plane = colour.max(axis=-1)
    if has_alpha:
        alpha = array[..., -1]
        lo, hi = alpha.min(), alpha.max()
        if lo != hi:  # transparency: what is opaque is what was drawn
            opaque = alpha > lo + (hi - lo) / 2
            drawn = plane[opaque]
            if drawn.min() == drawn.max():
                return opaque
            return np.where(opaque, plane, np.zeros((), plane.dtype))
    return plane


def _warn_colour_labels(array: np.ndarray, mask: np.ndarray, what: str) -> None:
    """A MaskWarning when a colour mask's foreground holds a few different colours."""
    if array.ndim != 3 or array.shape[-1] < 3 or not mask.any():
        return
    colour = array[..., :3][mask]
    if (colour == colour[:, :1]).all():
        return  # grey: label values were already looked at
    colours = np.unique(colour, axis=0)
    if 1 < len(colours) <= LABEL_COLOURS:
        shown = ", ".join(str(tuple(int(v) for v in c)) for c in colours[:4])
        warnings.warn(
            f"{what} holds {len(colours)} different colours ({shown}"
            f"{', ...' if len(colours) > 4 else ''}); all of them were merged into one "
            "foreground (Wave-GMS segments one structure)",
            MaskWarning,
            stacklevel=3,
        )


def merged_labels_message(labels: np.ndarray, what: str) -> str:
    """What to tell the user when the label values ``labels`` became one foreground."""
    shown = ", ".join(str(v) for v in labels[:8]) + (", ..." if len(labels) > 8 else "")
    return (
        f"{what} holds {len(labels)} different label values ({shown}); all of them were "
        "merged into one foreground (Wave-GMS segments one structure)"
    )


def binarise_mask(array: np.ndarray, what: str = "mask") -> np.ndarray:
    """Binarise a mask array to bool HxW.

    Colour masks: any channel counts (a mask drawn in green or blue is as visible as one in
    red); with transparency, only opaque pixels count, and an alpha-only drawing is its opaque
    area (see :func:`_mask_plane`). Values: ``bool`` as is; floats ``>= 0.5`` (NaN is
    background); integers holding only 0 and 1 (label-style masks, as numpy code and napari
    Labels produce) ``> 0``; other 8- and 16-bit integers ``> dtype max // 2`` (``uint8``:
    ``> 127``, which also removes JPEG artefacts) unless no value reaches that far: then they
    are label images (values such as 1, 2, 3) and any label is foreground; other integers
    wider than 16 bits ``> 0``, because such arrays come from label images, never from mask
    files where half the dtype range would mean anything. Several different labels (or a few
    different colours) merged into one foreground give a
    :class:`~wavegms.core.errors.MaskWarning` naming ``what``.
    """
    array = np.asarray(array)
    check_numeric(array, what)
    plane = _mask_plane(array, what)
    if plane.dtype == bool:
        mask = plane.copy()
    elif np.issubdtype(plane.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            mask = np.nan_to_num(plane, nan=0.0) >= 0.5
    else:
        mask = _binarise_integers(plane, what)
    _warn_colour_labels(array, mask, what)
    return mask


def _binarise_integers(plane: np.ndarray, what: str) -> np.ndarray:
    lo, hi = plane.min(), plane.max()
    if lo >= 0 and hi <= 1:
        return plane > 0
    info = np.iinfo(plane.dtype)
    if info.bits <= 16 and hi > info.max // 2:
        return plane > info.max // 2
    # A label image: thresholding at half the range would silently drop every label.
    mask = plane > 0
    labels = np.unique(plane[mask])
    if len(labels) > 1:
        warnings.warn(merged_labels_message(labels, what), MaskWarning, stacklevel=3)
    return mask


def read_mask(path: PathLike) -> np.ndarray:
    """Read a mask file and binarise it (see :func:`binarise_mask`) to bool HxW."""
    array = read_image(path)
    try:
        return binarise_mask(array, what=f"mask {Path(path)}")
    except InputError as exc:
        raise InputError(f"mask {Path(path)}: {exc}") from exc
