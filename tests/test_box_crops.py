"""Crop-and-rescale augmentation (wavegms.training.box_crops): crops as box mode cuts them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from wavegms.core.errors import InputError
from wavegms.core.files import write_png
from wavegms.data.pairs import Pair
from wavegms.training.box_crops import crop_view, crop_views, random_window
from wavegms.training.config import TrainConfig


def lesion(shape=(60, 90), rows=(20, 32), cols=(40, 58)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def test_window_holds_the_whole_lesion_box_with_margins_in_range():
    shape, rows, cols = (400, 500), (150, 190), (200, 260)  # far from the borders: no clipping
    mask = lesion(shape, rows, cols)
    rng = np.random.default_rng(1)
    jitter, low, high = 20, 0.5, 1.5
    for _ in range(200):
        window = random_window(mask, rng, jitter, (low, high))
        row0, row1, col0, col1 = window.pixels
        # the box: the lesion's bounding box grown by 0..jitter on each side
        assert rows[0] - jitter <= row0 <= rows[0] and rows[1] <= row1 <= rows[1] + jitter
        assert cols[0] - jitter <= col0 <= cols[0] and cols[1] <= col1 <= cols[1] + jitter
        # the margin: a share in [low, high] of the box's size, the same on every side
        for start, stop, size, (a, b) in (
            (window.rows.start, window.rows.stop, row1 - row0, (row0, row1)),
            (window.cols.start, window.cols.stop, col1 - col0, (col0, col1)),
        ):
            assert a - start == stop - b
            assert math.ceil(low * size) <= a - start <= math.ceil(high * size)


def test_window_near_the_border_is_clipped_to_the_image():
    mask = lesion((40, 50), (0, 10), (35, 50))  # touches the top and right edges
    rng = np.random.default_rng(2)
    for _ in range(50):
        window = random_window(mask, rng, 20, (1.0, 1.0))
        assert window.rows.start == 0 and window.cols.stop == 50
        assert window.rows.stop <= 40 and window.cols.start >= 0
        assert mask[window.rows, window.cols].sum() == mask.sum()  # the whole lesion inside


def test_crop_view_keeps_image_and_mask_aligned_in_the_whole_images_range():
    mask = lesion()
    # The lesion is bright on a ramp that is not in [0, 1]: the crop must be normalised with
    # the whole image's range (as box mode does), and must show the lesion where its mask is.
    ramp = np.linspace(0.0, 400.0, mask.size).reshape(mask.shape)
    image = (ramp + 2000.0 * mask).astype(np.float32)
    pixels, small = crop_view(image, mask, 32, np.random.default_rng(3), 20, (0.5, 1.5))
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.float32
    assert small.shape == (32, 32) and small.dtype == bool
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    # image and mask aligned: the bright pixels are the lesion's, up to its resampled border
    agree = ((pixels[..., 0] > 0.5) == small).mean()
    assert agree > 0.95 and small.any() and not small.all()
    # normalised with the whole image's range (0..2400), not stretched by the crop's own
    lesion_level = (2000.0 + ramp[mask].min()) / image.max()
    assert pixels[..., 0][small].mean() == pytest.approx(lesion_level, abs=0.1)
    assert pixels[..., 0][~small].max() < 0.5 * lesion_level


def write_pairs(tmp_path, masks: list[np.ndarray]) -> list[Pair]:
    pairs = []
    for i, mask in enumerate(masks):
        image = (np.linspace(0, 60, mask.size).reshape(mask.shape) + 100 * mask).astype(np.uint8)
        pair = Pair(f"p{i}", tmp_path / f"i{i}.png", tmp_path / f"m{i}.png")
        write_png(pair.image, image)
        write_png(pair.mask, mask)
        pairs.append(pair)
    return pairs


def small_set(masks: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    from wavegms.data.preprocess import mask_to_model_size

    n = len(masks)
    images = torch.full((n, 3, 16, 16), 7, dtype=torch.uint8)  # a stand-in whole view
    small = np.stack([mask_to_model_size(m, 16) for m in masks])
    return images, torch.from_numpy(small.astype(np.uint8))[:, None]


def test_crop_views_crop_the_chosen_share_and_leave_empty_masks_whole(tmp_path):
    masks = [lesion(), lesion(rows=(5, 15), cols=(60, 80)), np.zeros((60, 90), bool)]
    pairs = write_pairs(tmp_path, masks)
    images, small = small_set(masks)

    same_images, same_masks = crop_views(pairs, images, small, 0.0, np.random.default_rng(0),
                                         20, (1.0, 1.0))  # fmt: skip
    assert torch.equal(same_images, images) and torch.equal(same_masks, small)

    out_images, out_masks = crop_views(pairs, images, small, 1.0, np.random.default_rng(0),
                                       20, (1.0, 1.0))  # fmt: skip
    assert out_images.dtype == torch.uint8 and out_images.shape == images.shape
    assert out_masks.shape == small.shape and set(out_masks.unique().tolist()) <= {0, 1}
    for i in (0, 1):  # cropped: the lesion covers more of the view than in the whole image
        assert not torch.equal(out_images[i], images[i])
        assert out_masks[i].float().mean() > small[i].float().mean()
        bright = out_images[i, 0] > 80  # background <= 60, lesion >= 100 (write_pairs)
        assert (bright == out_masks[i, 0].bool()).float().mean() > 0.9
    assert torch.equal(out_images[2], images[2]) and torch.equal(out_masks[2], small[2])
    assert torch.equal(images, small_set(masks)[0])  # the inputs are left as they were


def test_box_crop_settings_are_checked(tmp_path):
    base = {"data_dir": str(tmp_path), "cached_views": 2}
    config = TrainConfig.from_dict({**base, "box_crops": 0.5, "box_margins": [0.5, 1.5]})
    assert config.box_margins == (0.5, 1.5) and config.to_dict()["box_margins"] == [0.5, 1.5]
    with pytest.raises(InputError, match="cached_views >= 2"):
        TrainConfig.from_dict({**base, "cached_views": 1, "box_crops": 0.5})
    with pytest.raises(InputError, match="box_crops"):
        TrainConfig.from_dict({**base, "box_crops": 1.5})
    with pytest.raises(InputError, match="low <= high"):
        TrainConfig.from_dict({**base, "box_margins": [1.5, 0.5]})
    with pytest.raises(InputError, match="box_margins"):
        TrainConfig.from_dict({**base, "box_margins": [0.5]})


class PoolingEncoder:
    """Stands in for the frozen encoder: the views, not the latents, are under test."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 8)


def test_cached_views_with_box_crops_hold_whole_and_crop_views(tiny_dataset, tmp_path):
    from wavegms.training.dataset import train_and_validation
    from wavegms.training.targets import CachedViews

    config = TrainConfig(
        data_dir=str(tiny_dataset), image_size=32, val_fraction=0.34, cached_views=2,
        box_crops=1.0, box_jitter=0, box_margins=(0.1, 0.1),
    )  # fmt: skip
    train_set, _ = train_and_validation(config)
    views = CachedViews(train_set, config, PoolingEncoder(), torch.device("cpu"),
                        torch.Generator().manual_seed(0), run_dir=tmp_path)  # fmt: skip
    views.prepare(None, None)
    n = len(train_set)
    masks = views.views["mask"].float()
    assert torch.equal(views.views["mask"][:n], train_set.masks)  # view 0: the whole images
    # view 1: tight crops (no jitter, 10 % margin), the disks fill far more of every view
    whole, crops = masks[:n].mean(dim=(1, 2, 3)), masks[n:].mean(dim=(1, 2, 3))
    assert crops.min() > 2 * whole.max()
    # other crop settings give other views: saved views are not reused for them
    for change in ({"box_margins": (0.5, 0.5)}, {"box_jitter": 5}, {"box_crops": 0.5}):
        other = dataclasses.replace(config, **change)
        again = CachedViews(train_set, other, PoolingEncoder(), torch.device("cpu"),
                            torch.Generator(), run_dir=tmp_path)  # fmt: skip
        assert again.fingerprint() != views.fingerprint()
