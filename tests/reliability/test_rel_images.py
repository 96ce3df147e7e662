"""Input images through the library: decoding files as viewers show them (read_image),
to_rgb01, split_planes and Segmenter.segment."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from wavegms.core.errors import InputError
from wavegms.data import preprocess
from wavegms.data.images import read_image
from wavegms.data.intensities import to_rgb01
from wavegms.data.preprocess import model_input, soft_to_shape, split_planes

from .cases import case


def speckle(shape, seed=0) -> np.ndarray:
    """float64 values in [0, 1] with a darker disc: an image the model gives a varied mask."""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2
    values = rng.random(shape)
    values[disc] *= 0.4
    return values


def check_masks(binary, soft, shape, threshold=0.5):
    assert binary.shape == shape and binary.dtype == bool
    assert soft.shape == shape and soft.dtype == np.float32
    assert np.isfinite(soft).all() and soft.min() >= 0 and soft.max() <= 1
    np.testing.assert_array_equal(binary, soft > threshold)


def model_never_runs(segmenter, monkeypatch):
    def refuse(batch):
        raise AssertionError("the model ran on input that should have been refused")

    monkeypatch.setattr(segmenter.model, "predict_soft", refuse)


@case(
    "IMG-EMPTY",
    "Image with 0 pixels (0x0, 0x5, 5x0x3)",
    "InputError naming the shape from to_rgb01, split_planes and segment; the model never runs",
)
def test_empty_image(segmenter, monkeypatch):
    model_never_runs(segmenter, monkeypatch)
    for shape in [(0, 0), (0, 5), (5, 0, 3)]:
        empty = np.zeros(shape, np.uint8)
        for call in (to_rgb01, split_planes, segmenter.segment):
            with pytest.raises(InputError, match=r"\(" + str(shape[0])):
                call(empty)


@case(
    "IMG-NOT-AN-IMAGE",
    "Arrays that are no image: 0-d, 1D, strings, objects",
    "InputError saying what was expected; the model never runs",
)
def test_not_an_image(segmenter, monkeypatch):
    model_never_runs(segmenter, monkeypatch)
    for bad in (np.float32(3), np.arange(10), np.full((4, 4), "a"), np.empty((4, 4), object)):
        with pytest.raises(InputError):
            segmenter.segment(bad)


@case("IMG-1X1", "A 1x1 image", "1x1 binary and soft masks (the pixel is resized up and back)")
def test_one_pixel(segmenter):
    binary, soft = segmenter.segment(np.array([[200]], np.uint8))
    check_masks(binary, soft, (1, 1))


@case("IMG-8X8", "An 8x8 image", "8x8 masks")
def test_tiny_image(segmenter):
    binary, soft = segmenter.segment(speckle((8, 8)))
    check_masks(binary, soft, (8, 8))
    assert soft.std() > 0  # a real, varied prediction, not a constant fill


@case(
    "IMG-HUGE",
    "An 8000x8000 uint8 image",
    "Masks at 8000x8000; shrunk band by band before any float copy: peak extra memory stays "
    "near the size of the masks (no 1.5 GB float64 copy, no out-of-memory kill)",
)
def test_huge_image_is_segmented_without_a_full_float_copy(segmenter):
    image = np.zeros((8000, 8000), np.uint8)
    image[2000:6000, 2000:6000] = 200  # a bright square: the mask is not uniform
    tracemalloc.start()
    try:
        binary, soft = segmenter.segment(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert binary.shape == soft.shape == (8000, 8000)
    assert soft[4000, 4000] != soft[10, 10]
    outputs = binary.nbytes + soft.nbytes  # 320 MB that the caller asked for
    # float32 RGB alone would be 768 MB, float64 1.5 GB: allow the outputs plus 200 MB.
    assert peak < outputs + 200e6, f"peak {peak / 1e6:.0f} MB"


def smooth_colour_image(h, w) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    grey = 0.3 + 0.4 * xx / w + 0.2 * yy / h - 0.25 * ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < 9e4)
    return (np.stack([grey, grey * 0.9, grey * 0.8], axis=-1) * 60000).astype(np.uint16)


@case(
    "IMG-HUGE-SAME",
    "The memory-lean large-image path, forced on a 1000x900 uint16 image in many bands",
    "Exactly a block average of the normalised image (partial edge blocks included), close "
    "to the direct path; the soft mask is enlarged as resize_soft does (within 1e-5)",
)
def test_large_image_path_matches_the_direct_path(monkeypatch):
    from wavegms.data.preprocess import resize_image, resize_soft

    image = smooth_colour_image(1000, 900)
    direct = model_input(image, 32)
    monkeypatch.setattr(preprocess, "LARGE_PLANE_PIXELS", 1000)
    monkeypatch.setattr(preprocess, "BAND_VALUES", 50_000)  # many bands, as for a huge image
    lean = model_input(image, 32)
    k = 900 // 64  # blocks of 14 pixels; 1000 and 900 leave partial blocks at the edges
    full = to_rgb01(image).astype(np.float64)
    blocks = np.array(
        [
            [full[i : i + k, j : j + k].mean(axis=(0, 1)) for j in range(0, 900, k)]
            for i in range(0, 1000, k)
        ]
    )
    np.testing.assert_allclose(lean, resize_image(blocks.astype(np.float32), 32), atol=1e-5)
    assert np.abs(lean - direct).mean() < 0.01  # the same picture as the direct path
    small = np.random.default_rng(2).random((32, 32)).astype(np.float32)
    np.testing.assert_allclose(
        soft_to_shape(small, (1000, 900)), resize_soft(small, (1000, 900)), atol=1e-5
    )


@case(
    "IMG-MEMORY-GUARD",
    "A stack whose masks would not fit into the free memory",
    "InputError giving the GB needed and free and what to do, before any mask is allocated "
    "or the model runs",
)
def test_masks_that_do_not_fit_are_refused_first(segmenter, monkeypatch):
    model_never_runs(segmenter, monkeypatch)
    monkeypatch.setattr(preprocess, "_available_memory", lambda: 100 * 2**20)  # 100 MB free
    stack = np.zeros((20, 1000, 1000), np.uint8)  # masks: 100 MB
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"0\.1 GB is free; crop or downscale"):
            segmenter.segment(stack)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10e6


@case(
    "IMG-CONSTANT",
    "All-constant images: uint8 0, uint16 500, float 0.7",
    "Normalised to 0, 0 and 0.7 (no division by zero); finite masks",
)
def test_constant_images(segmenter):
    for value, dtype, expected in ((0, np.uint8, 0.0), (500, np.uint16, 0.0), (0.7, float, 0.7)):
        image = np.full((20, 24), value, dtype)
        np.testing.assert_allclose(to_rgb01(image), expected, atol=1e-7)
        check_masks(*segmenter.segment(image), (20, 24))


@case(
    "IMG-NAN-INF",
    "Float images containing NaN, +Inf and -Inf, and an all-NaN image",
    "Non-finite pixels become 0, the rest is stretched by the finite min/max; finite masks",
)
def test_nan_and_inf(segmenter):
    image = speckle((20, 24)) * 10 + 5
    image[0, :3] = np.nan, np.inf, -np.inf
    rgb = to_rgb01(image)
    assert np.isfinite(rgb).all()
    np.testing.assert_array_equal(rgb[0, :3], 0.0)
    finite = np.isfinite(image)
    assert rgb[finite].min() == 0.0 and rgb[finite].max() == 1.0
    check_masks(*segmenter.segment(image), (20, 24))
    all_nan = np.full((20, 24), np.nan)
    assert not to_rgb01(all_nan).any()
    check_masks(*segmenter.segment(all_nan), (20, 24))


@case(
    "IMG-UINT16-NARROW",
    "uint16 image using only 1000..1010",
    "Stretched to the full [0, 1] range; the mask equals that of the same image as uint8 0..250",
)
def test_uint16_with_a_small_range(segmenter):
    steps = np.random.default_rng(3).integers(0, 11, (20, 24))
    rgb = to_rgb01((1000 + steps).astype(np.uint16))
    assert rgb.min() == 0.0 and rgb.max() == 1.0
    _, soft16 = segmenter.segment((1000 + steps).astype(np.uint16))
    _, soft8 = segmenter.segment(steps / 10.0)
    np.testing.assert_allclose(soft16, soft8, atol=1e-5)


@case(
    "IMG-FLOAT-1000",
    "float image with values in [0, 1000]",
    "Stretched to [0, 1]: the same masks as the image divided by 1000",
)
def test_float_up_to_1000(segmenter):
    image = speckle((20, 24))
    image.flat[[0, 1]] = 0.0, 1.0
    _, soft_big = segmenter.segment(image * 1000)
    _, soft_one = segmenter.segment(image)
    np.testing.assert_allclose(soft_big, soft_one, atol=1e-5)


@case("IMG-BOOL", "A bool image", "Read as 0/1: the same masks as the uint8 0/255 image")
def test_bool_image(segmenter):
    image = speckle((20, 24)) > 0.5
    np.testing.assert_array_equal(to_rgb01(image)[..., 0], image.astype(np.float32))
    _, soft_bool = segmenter.segment(image)
    _, soft_u8 = segmenter.segment(image.astype(np.uint8) * 255)
    np.testing.assert_array_equal(soft_bool, soft_u8)


@case(
    "IMG-RGBA",
    "A 4-channel (RGBA) image with a random alpha",
    "Alpha ignored: the masks of the RGB part",
)
def test_four_channels(segmenter):
    rgb = (speckle((20, 24, 3)) * 255).astype(np.uint8)
    alpha = np.random.default_rng(4).integers(0, 256, (20, 24, 1), dtype=np.uint8)
    binary, soft = segmenter.segment(np.concatenate([rgb, alpha], axis=-1))
    check_masks(binary, soft, (20, 24))
    np.testing.assert_array_equal(soft, segmenter.segment(rgb)[1])


@case(
    "IMG-GREY-ALPHA",
    "A 2-channel (grey + alpha) HxWx2 image, as image files give them",
    "Read as one grey image: HxW masks equal to the grey channel's (was: a stack of 2-pixel "
    "wide images)",
)
def test_two_channels(segmenter):
    grey = (speckle((20, 24)) * 255).astype(np.uint8)
    two = np.stack([grey, np.full_like(grey, 255)], axis=-1)
    np.testing.assert_array_equal(to_rgb01(two), to_rgb01(grey))
    binary, soft = segmenter.segment(two)
    check_masks(binary, soft, (20, 24))
    np.testing.assert_array_equal(soft, segmenter.segment(grey)[1])


@case(
    "IMG-COMPLEX",
    "A complex-valued image",
    "InputError 'complex values ... give a real-valued image'; the model never runs",
)
def test_complex_image(segmenter, monkeypatch):
    model_never_runs(segmenter, monkeypatch)
    image = np.ones((10, 10), np.complex64)
    with pytest.raises(InputError, match="complex values"):
        to_rgb01(image)
    with pytest.raises(InputError, match="complex values"):
        segmenter.segment(image)


@case(
    "IMG-5D",
    "5D stacks: (2, 2, 3, H, W) grey and (2, 2, H, W, 3) colour",
    "Masks of the same shape without the colour axis; each plane as if segmented alone",
)
def test_five_dimensional_stack(segmenter):
    stack = speckle((2, 2, 3, 16, 20))
    binary, soft = segmenter.segment(stack)
    check_masks(binary, soft, (2, 2, 3, 16, 20))
    np.testing.assert_allclose(soft[1, 0, 2], segmenter.segment(stack[1, 0, 2])[1], atol=1e-5)
    colour = speckle((2, 2, 16, 20, 3))
    check_masks(*segmenter.segment(colour, rgb=True), (2, 2, 16, 20))


def colour_picture(shape=(20, 30)) -> np.ndarray:
    """uint8 RGB with a bright red top-left block, so flips and negatives show."""
    rgb = np.zeros((*shape, 3), np.uint8)
    rgb[..., 2] = 60
    rgb[: shape[0] // 2, : shape[1] // 3] = (230, 40, 40)
    return rgb


@case(
    "IMG-CMYK-JPEG",
    "A CMYK JPEG (as print workflows save them)",
    "Read as the RGB image viewers show (was: its colour negative, taken as RGBA)",
)
def test_cmyk_jpeg(tmp_path):
    from PIL import Image

    rgb = colour_picture()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    out = read_image(tmp_path / "cmyk.jpg")
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() < 8  # JPEG loss only, not 255 - value


@case(
    "IMG-EXIF-ROTATED",
    "A JPEG whose EXIF orientation says 'rotate 90 degrees clockwise' (as phones save them)",
    "Read rotated as every viewer shows it, so its masks line up with what the user sees "
    "(was: the stored, unrotated pixels)",
)
def test_exif_orientation(tmp_path, segmenter):
    from PIL import Image

    from wavegms.inference.folder import segment_folder

    stored = colour_picture((20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored pixels must be turned 90 degrees clockwise
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(stored).save(src / "phone.jpg", quality=95, exif=exif)
    out = read_image(src / "phone.jpg")
    assert out.shape == (30, 20, 3)
    assert np.abs(out.astype(int) - np.rot90(stored, k=-1)).mean() < 8
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert read_image(report.masks[0]).shape == (30, 20)


@case(
    "IMG-TIFF-PAGES",
    "Multi-page TIFFs: 3 grey pages, 4 grey pages, 2 RGB pages",
    "Read as a stack (N, H, W[, C]) (was: 3 or 4 pages taken as one RGB(A) image); "
    "Segmenter.segment gives one mask per page",
)
def test_multi_page_tiff(tmp_path, segmenter):
    import tifffile

    for stack in (
        (speckle((3, 16, 20)) * 255).astype(np.uint8),
        (speckle((4, 16, 20), seed=1) * 65535).astype(np.uint16),
        (speckle((2, 16, 20, 3), seed=2) * 255).astype(np.uint8),
    ):
        path = tmp_path / f"stack{stack.shape[0]}.tif"
        grey = stack.ndim == 3
        tifffile.imwrite(path, stack, photometric="minisblack" if grey else "rgb")
        with tifffile.TiffFile(path) as tif:
            assert len(tif.pages) == stack.shape[0]
        out = read_image(path)
        np.testing.assert_array_equal(out, stack)
        for k in range(stack.shape[0]):
            np.testing.assert_array_equal(read_image(path, page=k), stack[k])
    binary, soft = segmenter.segment(read_image(tmp_path / "stack3.tif"))
    check_masks(binary, soft, (3, 16, 20))
    planar = tmp_path / "planar.tif"  # one RGB page stored colour by colour: not a stack
    rgb = (speckle((16, 20, 3), seed=3) * 255).astype(np.uint8)
    tifffile.imwrite(planar, np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(planar), rgb)


@case(
    "IMG-PALETTE-16BIT",
    "A palette PNG, a palette PNG with transparency, a 16-bit grey PNG",
    "Palettes applied (RGB, or RGBA with the transparency); 16-bit values kept as uint16",
)
def test_palette_and_16_bit_png(tmp_path):
    from PIL import Image

    index = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    palette = [10, 20, 30, 200, 100, 0, 0, 0, 255]
    im = Image.fromarray(index, mode="P")
    im.putpalette(palette)
    im.save(tmp_path / "p.png")
    colours = np.array(palette, np.uint8).reshape(3, 3)
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), colours[index])
    im.save(tmp_path / "pa.png", transparency=1)
    rgba = read_image(tmp_path / "pa.png")
    assert rgba.shape == (2, 3, 4)
    np.testing.assert_array_equal(rgba[..., 3], np.where(index == 1, 0, 255))
    deep = np.array([[0, 1000, 65535]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, deep)
