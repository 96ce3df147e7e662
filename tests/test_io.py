"""Tests of reading, normalising and binarising images and of atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from wavegms.core.errors import ImageReadError, InputError, MaskWarning, OutputExistsError
from wavegms.core.files import read_json, write_json, write_png
from wavegms.data import images as wio
from wavegms.data.images import IMAGE_SUFFIXES, list_images, read_image
from wavegms.data.intensities import to_rgb01
from wavegms.data.masks import binarise_mask, read_mask


def _gradient(h: int = 12, w: int = 16) -> np.ndarray:
    return (np.arange(h * w) % 256).astype(np.uint8).reshape(h, w)


# ------------------------------------------------------------------------------------ read_image


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_read_image_roundtrip_lossless_formats(tmp_path: Path, suffix: str) -> None:
    from skimage import io as skio

    a = _gradient()
    p = tmp_path / f"a{suffix}"
    skio.imsave(p, a, check_contrast=False)
    out = read_image(p)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, a)


def test_read_image_jpeg_and_rgb(tmp_path: Path) -> None:
    from skimage import io as skio

    rgb = np.zeros((10, 8, 3), np.uint8)
    rgb[..., 0] = 200
    skio.imsave(tmp_path / "c.jpg", rgb, check_contrast=False)
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (10, 8, 3)
    assert abs(int(out[..., 0].mean()) - 200) < 5


def test_read_image_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.png"
    with pytest.raises(ImageReadError, match="does not exist") as info:
        read_image(p)
    assert str(p) in str(info.value)


def test_read_image_directory(tmp_path: Path) -> None:
    d = tmp_path / "dir.png"
    d.mkdir()
    with pytest.raises(ImageReadError, match="folder"):
        read_image(d)


def test_read_image_not_an_image(tmp_path: Path) -> None:
    p = tmp_path / "text.png"
    p.write_text("this is not a PNG")
    with pytest.raises(ImageReadError) as info:
        read_image(p)
    assert "text.png" in str(info.value)


def test_read_image_truncated(tmp_path: Path) -> None:
    p = write_png(tmp_path / "full.png", np.random.default_rng(0).random((64, 64)))
    data = p.read_bytes()
    t = tmp_path / "trunc.png"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"trunc\.png"):
        read_image(t)


def test_read_image_symlink_loop_and_broken_link(tmp_path: Path) -> None:
    loop = tmp_path / "loop.png"
    os.symlink(loop, loop)
    with pytest.raises(ImageReadError, match=r"loop\.png"):
        read_image(loop)
    broken = tmp_path / "broken.png"
    os.symlink(tmp_path / "missing.png", broken)
    with pytest.raises(ImageReadError, match="broken symbolic link"):
        read_image(broken)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_read_image_permission_denied(tmp_path: Path) -> None:
    p = write_png(tmp_path / "secret.png", _gradient())
    p.chmod(0)
    try:
        with pytest.raises(ImageReadError, match=r"secret\.png"):
            read_image(p)
    finally:
        p.chmod(0o644)


def test_image_read_error_is_an_input_error(tmp_path: Path) -> None:
    # Callers catching InputError (e.g. the napari layer) also get unreadable files.
    with pytest.raises(InputError):
        read_image(tmp_path / "x.png")


# -------------------------------------------------------------------------------------- to_rgb01


def test_to_rgb01_uint8_gray() -> None:
    a = np.array([[0, 51], [255, 102]], np.uint8)
    out = to_rgb01(a)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], a / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_to_rgb01_channel_layouts() -> None:
    base = np.array([[0, 255]], np.uint8)
    one = to_rgb01(base[..., None])
    assert one.shape == (1, 2, 3)
    np.testing.assert_allclose(one[0, :, 1], [0.0, 1.0])
    # gray + alpha: the alpha channel (here 255 everywhere) must not leak into the grey level
    two = to_rgb01(np.stack([base, np.full_like(base, 255)], -1))
    np.testing.assert_allclose(two[0, :, 0], [0.0, 1.0])
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 7
    out = to_rgb01(rgba)
    assert out.shape == (1, 2, 3)
    np.testing.assert_allclose(out[0, 0], [1.0, 0.0, 0.0])


def test_to_rgb01_bool() -> None:
    out = to_rgb01(np.array([[True, False]]))
    np.testing.assert_array_equal(out[0, :, 0], [1.0, 0.0])
    assert out.dtype == np.float32


def test_to_rgb01_uint16_min_max_stretch() -> None:
    a = np.array([[1000, 2000], [3000, 1500]], np.uint16)
    out = to_rgb01(a)[..., 0]
    np.testing.assert_allclose(out, [[0.0, 0.5], [1.0, 0.25]], atol=1e-6)


def test_to_rgb01_float_in_range_kept_and_out_of_range_stretched() -> None:
    a = np.array([[0.2, 0.4]], np.float64)
    np.testing.assert_allclose(to_rgb01(a)[0, :, 0], [0.2, 0.4], rtol=1e-6)
    b = np.array([[-1.0, 3.0, 1.0]], np.float32)
    np.testing.assert_allclose(to_rgb01(b)[0, :, 0], [0.0, 1.0, 0.5])


def test_to_rgb01_colour_stretch_is_global_not_per_channel() -> None:
    a = np.zeros((1, 1, 3), np.uint16)
    a[0, 0] = [100, 200, 300]
    np.testing.assert_allclose(to_rgb01(a)[0, 0], [0.0, 0.5, 1.0])


def test_to_rgb01_constant_image() -> None:
    np.testing.assert_array_equal(to_rgb01(np.full((3, 3), 500, np.int32)), 0.0)
    # a constant image already in [0, 1] is kept, not zeroed
    np.testing.assert_allclose(to_rgb01(np.full((2, 2), 0.5)), 0.5)


def test_to_rgb01_nan_inf() -> None:
    a = np.array([[np.nan, 2.0], [np.inf, 4.0]])
    out = to_rgb01(a)[..., 0]
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.0, 1.0]])
    assert to_rgb01(np.full((2, 2), np.nan)).max() == 0.0


def test_to_rgb01_signed_and_wide_ints() -> None:
    out = to_rgb01(np.array([[-5, 5]], np.int8))[0, :, 0]
    np.testing.assert_allclose(out, [0.0, 1.0])
    big = np.array([[0, 2**40]], np.int64)
    np.testing.assert_allclose(to_rgb01(big)[0, :, 0], [0.0, 1.0])


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((4, 4), np.complex64), "complex"),
        (np.zeros((0, 4), np.uint8), "empty"),
        (np.zeros((4,), np.uint8), "dimensions"),
        (np.zeros((2, 4, 4, 3), np.uint8), "dimensions"),
        (np.zeros((4, 4, 5), np.uint8), "5 channels"),
        (np.zeros((3, 16, 16), np.uint8), "channel-first"),
        (np.array([["a"]]), "data type"),
    ],
)
def test_to_rgb01_rejects(array: np.ndarray, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        to_rgb01(array)


# ---------------------------------------------------------------------------------------- masks


def test_binarise_uint8_threshold_127() -> None:
    a = np.array([[0, 127, 128, 255, 3, 250]], np.uint8)  # JPEG-like artefacts
    np.testing.assert_array_equal(binarise_mask(a), [[False, False, True, True, False, True]])


def test_binarise_label_style_zero_one_masks() -> None:
    for dtype in (np.uint8, np.uint16, np.int32, np.int64):
        out = binarise_mask(np.array([[0, 1, 1]], dtype))
        np.testing.assert_array_equal(out, [[False, True, True]])


def test_binarise_uint16_and_wide_ints() -> None:
    a = np.array([[0, 30000, 40000, 65535]], np.uint16)
    np.testing.assert_array_equal(binarise_mask(a), [[False, False, True, True]])
    # wide integers come from label images: any label is foreground
    np.testing.assert_array_equal(binarise_mask(np.array([[0, 2, 255]], np.int64)), [[0, 1, 1]])


def test_binarise_float_bool_and_colour() -> None:
    f = np.array([[0.0, 0.49, 0.5, 1.0, np.nan]])
    np.testing.assert_array_equal(binarise_mask(f), [[False, False, True, True, False]])
    b = np.array([[True, False]])
    out = binarise_mask(b)
    assert out.dtype == bool and out is not b
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 1, 0] = 255
    rgb[0, 2, 2] = 255  # any channel counts: a blue drawing is as visible as a red one
    with pytest.warns(MaskWarning, match="2 different colours"):  # red and blue: labels?
        np.testing.assert_array_equal(binarise_mask(rgb), [[False, True, True]])


def test_binarise_rejects_stacks() -> None:
    with pytest.raises(InputError, match="mask"):
        binarise_mask(np.zeros((5, 8, 8), np.uint8))


def test_read_mask_png_and_jpeg(tmp_path: Path) -> None:
    from skimage import io as skio

    m = np.zeros((32, 32), bool)
    m[8:24, 8:24] = True
    write_png(tmp_path / "m.png", m)
    out = read_mask(tmp_path / "m.png")
    assert out.dtype == bool and out.shape == (32, 32)
    np.testing.assert_array_equal(out, m)
    skio.imsave(tmp_path / "m.jpg", m.astype(np.uint8) * 255, check_contrast=False)
    jpg = read_mask(tmp_path / "m.jpg")
    assert (jpg != m).mean() < 0.02  # thresholding at 127 removes the ringing


def test_read_mask_bad_shape_names_file(tmp_path: Path) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((6, 8, 8), np.uint8))
    with pytest.raises(InputError, match=r"stack\.tif"):
        read_mask(tmp_path / "stack.tif")


# -------------------------------------------------------------------------------------- writing


def test_write_png_values_and_dtypes(tmp_path: Path) -> None:
    p = write_png(tmp_path / "sub" / "dir" / "b.png", np.array([[True, False]]))
    assert p == tmp_path / "sub" / "dir" / "b.png"
    np.testing.assert_array_equal(read_image(p), [[255, 0]])

    f = np.array([[0.0, 0.5, 1.0, 0.2]], np.float32)
    np.testing.assert_array_equal(read_image(write_png(tmp_path / "f.png", f)), [[0, 128, 255, 51]])

    u16 = np.array([[0, 1000, 65535]], np.uint16)
    out = read_image(write_png(tmp_path / "u16.png", u16))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, u16)

    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(write_png(tmp_path / "rgb.png", rgb)), rgb)


def test_write_png_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        write_png(tmp_path / "x.png", np.array([[0.0, 2.0]]))
    with pytest.raises(InputError, match="NaN"):
        write_png(tmp_path / "x.png", np.array([[np.nan]]))
    with pytest.raises(InputError, match=r"\.png"):
        write_png(tmp_path / "x.jpg", np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="shape"):
        write_png(tmp_path / "x.png", np.zeros((2, 2, 2, 2), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_png_overwrite(tmp_path: Path) -> None:
    p = write_png(tmp_path / "o.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(OutputExistsError, match=r"o\.png"):
        write_png(p, np.ones((2, 2), np.uint8))
    np.testing.assert_array_equal(read_image(p), 0)  # untouched
    write_png(p, np.full((2, 2), 9, np.uint8), overwrite=True)
    np.testing.assert_array_equal(read_image(p), 9)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.png"]  # no temp files left


def test_write_png_cleans_up_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skimage import io as skio

    target = tmp_path / "keep.png"
    write_png(target, np.zeros((2, 2), np.uint8))

    def broken(fname, arr, **kwargs):
        Path(fname).write_bytes(b"half")  # a partial write, then a crash
        raise OSError("disk full")

    monkeypatch.setattr(skio, "imsave", broken)
    with pytest.raises(OSError, match="disk full"):
        write_png(target, np.ones((2, 2), np.uint8), overwrite=True)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["keep.png"]
    monkeypatch.undo()
    np.testing.assert_array_equal(read_image(target), 0)  # the old file survived intact


def test_written_files_follow_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = write_png(tmp_path / "perm.png", np.zeros((2, 2), np.uint8))
        j = write_json(tmp_path / "perm.json", {})
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644
    assert j.stat().st_mode & 0o777 == 0o644


def test_json_roundtrip(tmp_path: Path) -> None:
    obj = {
        "name": "bénin ✓",
        "n": np.int64(3),
        "x": np.float32(0.5),
        "arr": np.arange(3),
        "path": tmp_path / "a",
        "nested": [1, {"b": None}],
    }
    p = write_json(tmp_path / "deep" / "o.json", obj)
    text = p.read_text(encoding="utf-8")
    assert "bénin ✓" in text  # UTF-8, not \\u escapes
    assert '\n  "n": 3' in text  # indent 2
    back = read_json(p)
    assert back == {
        "name": "bénin ✓",
        "n": 3,
        "x": 0.5,
        "arr": [0, 1, 2],
        "path": str(tmp_path / "a"),
        "nested": [1, {"b": None}],
    }
    assert json.loads(text) == back
    write_json(p, {"again": True})  # JSON writes replace
    assert read_json(p) == {"again": True}
    assert sorted(x.name for x in p.parent.iterdir()) == ["o.json"]


def test_write_json_unserialisable_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="JSON"):
        write_json(tmp_path / "bad.json", {"f": object()})
    assert list(tmp_path.iterdir()) == []


def test_read_json_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_json(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json"):
        read_json(bad)


# ----------------------------------------------------------------------------------- list_images


def test_list_images(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.tiff", "d.txt", "e.JPEG", ".hidden.png", "f.bmp", "g.tif"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.jpg", "b.PNG", "c.tiff", "e.JPEG", "f.bmp", "g.tif"]
    assert all(isinstance(p, Path) for p in list_images(tmp_path))


def test_scan_folder_lists_what_it_does_not_read(tmp_path: Path) -> None:
    for name in ["a.png", "ct.DCM", "b.nii.gz", "c.gif", "notes.txt", ".d.dcm"]:
        (tmp_path / name).write_bytes(b"")
    os.mkfifo(tmp_path / "pipe.tif")
    (tmp_path / "sub.dcm").mkdir()
    scan = wio.scan_folder(tmp_path)
    # DICOM and NIfTI are read (wavegms.data.clinical): reading these empty ones says why not
    assert [p.name for p in scan.images] == ["a.png", "b.nii.gz", "ct.DCM"]
    skipped = {p.name: why for p, why in scan.skipped}
    assert sorted(skipped) == ["c.gif", "pipe.tif"]
    assert "GIF" in skipped["c.gif"] and "named pipe" in skipped["pipe.tif"]
    assert list_images(tmp_path) == scan.images


def test_list_images_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        list_images(tmp_path / "missing")


def test_image_suffixes() -> None:
    assert (
        wio.IMAGE_SUFFIXES == IMAGE_SUFFIXES == (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
    )
