"""Masks for fine-tuning: the napari training set (TrainingSet.add) and dataset loading."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
from skimage.io import imsave

from wavegms.core.errors import InputError, MaskWarning
from wavegms.data.images import read_image
from wavegms.data.masks import read_mask
from wavegms.data.pairs import dataset_pairs, load_pair
from wavegms.training.dataset import InMemoryDataset
from wavegms.training.training_set import TrainingSet

from .cases import case


def image(shape=(24, 30), seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def disc(shape=(24, 30), label=1) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - 12) ** 2 + (xx - 15) ** 2 < 64).astype(np.uint8) * label


@contextlib.contextmanager
def no_mask_warning():
    """A block in which any MaskWarning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaskWarning)
        yield


@case(
    "MASK-WRONG-SHAPE",
    "Labels of another size than the image, labels with 3 dimensions, a mask file of "
    "another size than its image",
    "InputError giving both sizes (and both files); nothing is written to the training set",
)
def test_mask_of_the_wrong_shape(tmp_path):
    pairs = TrainingSet("p")
    with pytest.raises(InputError, match=r"labels \(30x24\) and the image \(24x30\)"):
        pairs.add(image(), np.zeros((30, 24), np.uint8), "scan")
    with pytest.raises(InputError, match="one 2D plane"):
        pairs.add(image(), np.zeros((2, 24, 30), np.uint8), "scan")
    assert not pairs.root.exists() and pairs.entries() == []
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    imsave(tmp_path / "images" / "a.png", image(), check_contrast=False)
    imsave(tmp_path / "masks" / "a.png", disc((20, 30)) * 255, check_contrast=False)
    [pair] = dataset_pairs(tmp_path, split=None)
    with pytest.raises(InputError, match=r"images/a\.png is 30x24 .*masks/a\.png is 30x20"):
        load_pair(pair)


@case(
    "MASK-EMPTY",
    "Labels with no foreground at all (a normal image)",
    "Accepted as a negative example, with a MaskWarning saying so (a forgotten mask would "
    "teach the model to find nothing): mask area 0, an all-black mask file that loads as zeros",
)
def test_empty_mask(tmp_path):
    pairs = TrainingSet("p")
    with pytest.warns(MaskWarning, match="are empty: this pair teaches the model"):
        entry = pairs.add(image(), np.zeros((24, 30), np.uint8), "scan")
    assert entry.mask_area == 0
    assert not read_image(pairs.masks_dir / f"{entry.name}.png").any()
    with no_mask_warning():
        pairs.add(image(seed=1), disc(), "other")
    data = InMemoryDataset(dataset_pairs(pairs.root, split=None), 16)
    assert data.masks[data.names.index(entry.name)].sum() == 0


@case(
    "MASK-FULL",
    "Labels that are foreground everywhere",
    "Accepted: mask area = every pixel, the mask file is all 255 and loads as ones",
)
def test_all_foreground_mask():
    pairs = TrainingSet("p")
    entry = pairs.add(image(), np.ones((24, 30), np.uint8), "scan")
    assert entry.mask_area == 24 * 30
    assert (read_image(pairs.masks_dir / f"{entry.name}.png") == 255).all()
    assert read_mask(pairs.masks_dir / f"{entry.name}.png").all()


@case(
    "MASK-MULTI-LABEL",
    "napari labels holding several label values (1, 2, 3) added to the training set",
    "All labels become one foreground, with a MaskWarning naming the values",
)
def test_several_labels_are_merged_with_a_warning():
    labels = disc()
    labels[:4, :4] = 2
    labels[-3:, -3:] = 3
    pairs = TrainingSet("p")
    with pytest.warns(MaskWarning, match=r"3 different label values \(1, 2, 3\)"):
        entry = pairs.add(image(), labels, "scan")
    np.testing.assert_array_equal(read_mask(pairs.masks_dir / f"{entry.name}.png"), labels > 0)
    with no_mask_warning():
        pairs.add(image(seed=1), disc(label=7), "single")  # one label, any value: no warning


@case(
    "MASK-LABEL-FILE",
    "A dataset mask file holding small label values (0, 1, 2) instead of 0/255",
    "Every label is foreground, with a MaskWarning naming the file (was: silently an empty "
    "mask, as 1 and 2 are below the 127 threshold)",
)
def test_label_valued_mask_file(tmp_path):
    labels = disc()
    labels[:4, :4] = 2
    path = tmp_path / "labels.png"
    imsave(path, labels, check_contrast=False)
    with pytest.warns(MaskWarning, match=r"labels\.png holds 2 different label values"):
        mask = read_mask(path)
    np.testing.assert_array_equal(mask, labels > 0)
    imsave(path, disc() * 255, check_contrast=False)
    with no_mask_warning():
        np.testing.assert_array_equal(read_mask(path), disc() > 0)  # ordinary 0/255 mask


@case(
    "MASK-COUNT-MISMATCH",
    "A dataset folder with more images than masks (and a mask without image)",
    "InputError listing the unmatched names, from dataset loading and from train() before "
    "any model is built",
)
def test_image_and_mask_counts_differ(tmp_path, monkeypatch):
    from wavegms.training import trainer as train_module
    from wavegms.training.config import TrainConfig
    from wavegms.training.trainer import train

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name in ("a", "b", "c"):
        imsave(root / "images" / f"{name}.png", image(), check_contrast=False)
    for name in ("a", "b", "z"):
        imsave(root / "masks" / f"{name}.png", disc() * 255, check_contrast=False)
    message = r"3 images .* 3 masks .*1 images have no mask: c; 1 masks have no image: z"
    with pytest.raises(InputError, match=message):
        dataset_pairs(root, split=None)

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built for a dataset that cannot be used")

    monkeypatch.setattr(train_module, "load_autoencoder", no_model)
    config = TrainConfig(data_dir=str(root), out_dir=str(tmp_path / "run"), split=None)
    with pytest.raises(InputError, match="have no mask: c"):
        train(config)
    assert not (tmp_path / "run").exists()


@case(
    "MASK-ANY-COLOUR",
    "Mask files drawn in green, in blue and in dark blue (0, 0, 100) on black, RGB and RGBA opaque",
    "The drawing is the foreground whatever its colour (was: read as empty unless drawn in red)",
)
def test_mask_drawn_in_any_colour(tmp_path):
    drawn = disc() > 0
    for name, colour in (("green", (0, 255, 0)), ("blue", (0, 0, 255)), ("dark", (0, 0, 100))):
        rgb = np.zeros((*drawn.shape, 3), np.uint8)
        rgb[drawn] = colour
        for array in (rgb, np.dstack([rgb, np.full(drawn.shape, 255, np.uint8)])):
            path = tmp_path / f"{name}{array.shape[-1]}.png"
            imsave(path, array, check_contrast=False)
            with no_mask_warning():
                np.testing.assert_array_equal(read_mask(path), drawn)


@case(
    "MASK-ALPHA-ONLY",
    "A mask drawn in the alpha channel only (opaque black strokes on a transparent layer), "
    "and a red drawing on a transparent layer whose hidden pixels are white",
    "The opaque area is the foreground; hidden colours do not count (was: an empty mask)",
)
def test_mask_drawn_in_alpha_only(tmp_path):
    drawn = disc() > 0
    rgba = np.zeros((*drawn.shape, 4), np.uint8)
    rgba[..., 3] = np.where(drawn, 255, 0)
    imsave(tmp_path / "alpha.png", rgba, check_contrast=False)
    with no_mask_warning():
        np.testing.assert_array_equal(read_mask(tmp_path / "alpha.png"), drawn)
    rgba[~drawn, :3] = 255  # white, but transparent: not drawn
    rgba[drawn, :3] = (255, 0, 0)
    imsave(tmp_path / "red.png", rgba, check_contrast=False)
    with no_mask_warning():
        np.testing.assert_array_equal(read_mask(tmp_path / "red.png"), drawn)


@case(
    "MASK-COLOUR-LABELS",
    "A colour mask file with two structures drawn in two colours (red and green)",
    "Both are foreground, with a MaskWarning naming the file and the colours merged",
)
def test_colour_labels_are_merged_with_a_warning(tmp_path):
    rgb = np.zeros((24, 30, 3), np.uint8)
    rgb[2:8, 2:8] = (255, 0, 0)
    rgb[12:20, 12:20] = (0, 255, 0)
    imsave(tmp_path / "two.png", rgb, check_contrast=False)
    with pytest.warns(MaskWarning, match=r"two\.png holds 2 different colours"):
        mask = read_mask(tmp_path / "two.png")
    np.testing.assert_array_equal(mask, rgb.max(axis=-1) > 0)
