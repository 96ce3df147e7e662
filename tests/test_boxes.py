"""Box prompts (wavegms.inference.boxes): crop, segment, paste back, one label per box."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.inference.boxes import (
    BoxWarning,
    clip_box,
    crop_window,
    parse_box,
    segment_boxes,
)


class BrightSegmenter:
    """Segments what is brighter than 0.5 in the crop it is given, and records the crops."""

    threshold = 0.5

    def __init__(self) -> None:
        self.crops: list[np.ndarray] = []

    def segment(self, image, threshold=None):
        self.crops.append(image)
        soft = np.asarray(image, np.float32)
        soft = soft[..., 0] if soft.ndim == 3 else soft / 255.0
        return soft > (self.threshold if threshold is None else threshold), soft


def two_squares() -> np.ndarray:
    image = np.zeros((60, 80), np.uint8)
    image[10:20, 10:20] = 255  # lesion 1
    image[30:50, 50:70] = 200  # lesion 2
    return image


def test_each_box_gets_its_own_label_inside_it():
    seg = BrightSegmenter()
    result = segment_boxes(seg, two_squares(), [(5, 5, 25, 25), (45, 25, 75, 55)], margin=0.1)
    expected = np.zeros((60, 80), np.uint16)
    expected[10:20, 10:20] = 1
    expected[30:50, 50:70] = 2
    np.testing.assert_array_equal(result.labels, expected)
    assert result.soft[15, 15] == pytest.approx(1.0) and result.soft[40, 60] == pytest.approx(
        200 / 255
    )
    # margin 0.1: 2 pixels on every side of a 20 x 20 box, 3 of a 30 x 30 one
    assert seg.crops[0].shape == (24, 24, 3)
    assert seg.crops[1].shape == (36, 36, 3)


def test_a_lesion_outside_the_box_is_left_out_unless_asked():
    image = two_squares()
    image[22:24, 10:20] = 255  # a bright strip just below box 1, inside its margin
    box = [(5, 5, 25, 21)]
    kept_box = segment_boxes(BrightSegmenter(), image, box, margin=0.5, keep="box").labels
    kept_crop = segment_boxes(BrightSegmenter(), image, box, margin=0.5, keep="crop").labels
    kept_touch = segment_boxes(BrightSegmenter(), image, box, margin=0.5, keep="touching").labels
    assert kept_box[22:24].sum() == 0 and kept_box[10:20, 10:20].all()
    assert kept_crop[22:24, 10:20].all()
    assert kept_touch[22:24].sum() == 0  # the strip does not reach into the box
    assert kept_touch[10:20, 10:20].all() and kept_touch[20, 10:20].sum() == 0
    image[12:14, 21:23] = 255  # a speck inside the box, apart from the lesion
    largest = segment_boxes(BrightSegmenter(), image, [(5, 5, 25, 21)], keep="largest").labels
    assert largest[10:20, 10:20].all() and largest.sum() == 100


class ConstantSegmenter:
    """A crop model whose soft mask is 0.7 wherever it looks."""

    threshold = 0.5

    def segment(self, image, threshold=None):
        soft = np.full(np.shape(image)[:2], 0.7, np.float32)
        return soft > 0.5, soft


class PatchSegmenter:
    """A whole-image model: 0.9 on rows 10-19 x columns 10-14, 0.35 on columns 15-19 of
    those rows, 0.1 elsewhere; records the images it is given."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def segment(self, image, threshold=None):
        self.images.append(image)
        soft = np.full(np.shape(image)[:2], 0.1, np.float32)
        soft[10:20, 10:15], soft[10:20, 15:20] = 0.9, 0.35
        return soft > 0.5, soft


def test_whole_averages_each_crop_with_the_partners_whole_image():
    image = np.zeros((40, 40), np.uint8)
    boxes = [(5, 5, 25, 25), (30, 30, 38, 38)]
    alone = segment_boxes(ConstantSegmenter(), image, boxes, margin=0, keep="box").labels
    partner = PatchSegmenter()
    paired = segment_boxes(ConstantSegmenter(), image, boxes, margin=0, keep="box", whole=partner)
    # the crop alone: all of each box (0.7); the partner alone: columns 10-14 (0.9);
    # averaged: columns 10-19 ((0.7 + 0.35) / 2 = 0.525), nothing else ((0.7 + 0.1) / 2)
    assert (alone == 1).sum() == 400 and (alone == 2).sum() == 64
    expected = np.zeros((40, 40), np.uint16)
    expected[10:20, 10:20] = 1
    np.testing.assert_array_equal(paired.labels, expected)
    assert paired.soft[15, 12] == pytest.approx(0.8) and paired.soft[15, 17] == pytest.approx(0.525)
    assert len(partner.images) == 1 and partner.images[0].shape == (40, 40)  # once per image


def test_a_whole_image_model_that_answers_wrongly_is_refused():
    class Wrong:
        def segment(self, image):
            return None, np.full((3, 3), 0.5, np.float32)

    with pytest.raises(WaveGMSError, match="whole-image model gave a"):
        segment_boxes(ConstantSegmenter(), np.zeros((20, 20)), [(0, 0, 5, 5)], whole=Wrong())


def test_the_crop_is_normalised_with_the_whole_images_range():
    image = np.zeros((40, 40), np.uint16)
    image[0, 0] = 4000  # the image's maximum, outside the box
    image[20:30, 20:30] = 1000  # dark in the whole image: 0.25
    seg = BrightSegmenter()
    labels = segment_boxes(seg, image, [(15, 15, 35, 35)], margin=0).labels
    assert seg.crops[0].max() == pytest.approx(0.25)
    assert labels.sum() == 0  # not stretched into a bright lesion


def test_overlapping_boxes_give_each_pixel_to_the_brighter_soft_mask():
    image = np.zeros((40, 40), np.uint8)
    image[10:30, 10:30] = 255
    labels = segment_boxes(BrightSegmenter(), image, [(5, 5, 25, 25), (15, 15, 35, 35)]).labels
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[12, 12] == 1 and labels[28, 28] == 2
    assert labels[20, 20] == 1  # equal soft masks: the first box keeps it


def test_boxes_outside_the_image_are_clipped_with_a_warning():
    with pytest.warns(BoxWarning, match="clipped to 0,0,10,8"):
        assert clip_box(parse_box("-5,-3,10,8"), (20, 30)) == (0, 8, 0, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clip_box(parse_box("2.5, 3, 9.2, 8"), (20, 30)) == (3, 8, 2, 10)
    with pytest.raises(InputError, match="outside the image"):
        clip_box(parse_box("40,0,50,5"), (20, 30))
    seg = BrightSegmenter()
    with pytest.warns(BoxWarning):
        labels = segment_boxes(seg, two_squares(), [(-10, -10, 25, 25)], margin=0).labels
    assert labels.shape == (60, 80) and labels[10:20, 10:20].all()
    assert seg.crops[0].shape == (25, 25, 3)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("10,10,10,20", "empty or inverted"),
        ("10,10,20,5", "empty or inverted"),
        ("20,0,10,5", "empty or inverted"),
        ("1,2,3", "has 3 numbers"),
        ("a,b,c,d", "not four numbers"),
        ("0,0,nan,5", "finite"),
    ],
)
def test_bad_boxes_are_one_line_errors(text, why):
    with pytest.raises(InputError, match=why) as err:
        parse_box(text)
    assert "\n" not in str(err.value)


def test_bad_requests_are_refused_before_the_model_runs():
    seg = BrightSegmenter()
    for kwargs, why in (
        ({"boxes": []}, "no box"),
        ({"boxes": [(0, 0, 5, 5)], "keep": "all"}, "keep must be"),
        ({"boxes": [(0, 0, 5, 5)], "margin": -1}, "margin"),
        ({"boxes": [(0, 0, 5, 5), (5, 5, 2, 2)]}, "inverted"),
    ):
        with pytest.raises(InputError, match=why):
            segment_boxes(seg, two_squares(), **kwargs)
    with pytest.raises(InputError, match="one 2D image"):
        segment_boxes(seg, np.zeros((3, 20, 20, 20)), [(0, 0, 5, 5)])
    assert seg.crops == []


def test_crop_window_adds_the_margin_and_stays_inside():
    assert crop_window((10, 20, 30, 50), (100, 100), 0.25) == (slice(7, 23), slice(25, 55))
    assert crop_window((0, 5, 95, 100), (100, 100), 1.0) == (slice(0, 10), slice(90, 100))


def test_a_real_segmenter_paints_only_inside_the_crop(segmenter):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)
    result = segment_boxes(
        segmenter, image, [(10, 5, 30, 25)], margin=0.1, keep="crop", threshold=0.0
    )
    assert result.labels.shape == (50, 70) and result.labels.dtype == np.uint16
    assert result.labels[3:27, 8:32].all()  # threshold 0: the whole crop (2 px margin)
    outside = np.ones((50, 70), bool)
    outside[3:27, 8:32] = False
    assert not result.labels[outside].any()
    assert np.isfinite(result.soft).all() and 0 <= result.soft.min() <= result.soft.max() <= 1
    # the defaults (the largest part inside the box), the crop averaged with a real
    # segmenter's soft mask of the whole (RGB) image; threshold 0: the whole box
    default = segment_boxes(
        segmenter, image, [(10, 5, 30, 25)], threshold=0.0, whole=segmenter
    ).labels
    inside = np.zeros((50, 70), bool)
    inside[5:25, 10:30] = True
    np.testing.assert_array_equal(default > 0, inside)
