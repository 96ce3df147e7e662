"""Files and folders: damaged, disguised, unreadable and looping inputs; unwritable outputs."""

from __future__ import annotations

import builtins
import csv
import io as stdio
import os
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imsave

from wavegms.core.errors import ImageReadError, OutputExistsError, OutputWriteError, WaveGMSError
from wavegms.data.images import read_image
from wavegms.inference.folder import run_folder, segment_folder
from wavegms.inference.folder_items import pair_items

from .cases import case

IS_ROOT = os.name == "posix" and os.geteuid() == 0


def grey(seed=0, shape=(24, 30)) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def truncated(tmp_path: Path, name: str) -> Path:
    whole = tmp_path / f"whole{Path(name).suffix}"
    imsave(whole, grey(shape=(64, 64)), check_contrast=False)
    data = whole.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    return tmp_path / name


def deny_reading(monkeypatch, *paths: Path) -> list[str]:
    """Make opening ``paths`` raise PermissionError, as chmod 000 does for anyone but root.
    Both names of the built-in open are patched (Pillow uses one, pathlib the other); the
    returned list records each refusal, so a test can tell that the code path ran."""
    refused: list[str] = []
    real_open = builtins.open
    denied = {os.fspath(p) for p in paths}

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) in denied:
            refused.append(os.fspath(file))
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(stdio, "open", guarded_open)
    return refused


def count_model_runs(segmenter, monkeypatch) -> list[int]:
    runs: list[int] = []
    real = segmenter.model.predict_soft

    def counted(batch):
        runs.append(len(batch))
        return real(batch)

    monkeypatch.setattr(segmenter.model, "predict_soft", counted)
    return runs


@case(
    "FILE-TRUNC-PNG",
    "A PNG cut off halfway",
    "ImageReadError naming the file (no partial image)",
)
def test_truncated_png(tmp_path):
    path = truncated(tmp_path, "cut.png")
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        read_image(path)


@case(
    "FILE-TRUNC-JPEG",
    "A JPEG cut off halfway",
    "ImageReadError naming the file and saying it is truncated (no half-grey image)",
)
def test_truncated_jpeg(tmp_path):
    path = truncated(tmp_path, "cut.jpg")
    with pytest.raises(ImageReadError, match=r"cut\.jpg: .*truncated"):
        read_image(path)


@case(
    "FILE-TEXT-PNG",
    "A text file named .png",
    "ImageReadError naming the file, not a library traceback",
)
def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("patient notes, not an image\n")
    with pytest.raises(ImageReadError, match=r"cannot read image .*notes\.png: "):
        read_image(path)


@pytest.mark.skipif(IS_ROOT or os.name != "posix", reason="root reads files whatever the mode")
@case(
    "FILE-UNREADABLE",
    "An image file without read permission (chmod 000); skipped when run as root, who can "
    "read it anyway (FILE-UNREADABLE-SIM runs the same path)",
    "ImageReadError 'permission denied' naming the file",
)
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.png"
    imsave(path, grey(), check_contrast=False)
    path.chmod(0)
    try:
        with pytest.raises(ImageReadError, match=r"secret\.png: permission denied"):
            read_image(path)
    finally:
        path.chmod(0o644)


@case(
    "FILE-UNREADABLE-SIM",
    "Opening an image raises PermissionError (simulated, so it runs as root too)",
    "ImageReadError 'permission denied' naming the file; in a batch the file is skipped and listed",
)
def test_unreadable_file_simulated(tmp_path, monkeypatch, segmenter):
    src = tmp_path / "in"
    src.mkdir()
    imsave(src / "a.png", grey(1), check_contrast=False)
    imsave(src / "secret.png", grey(2), check_contrast=False)
    refused = deny_reading(monkeypatch, src / "secret.png")
    with pytest.raises(ImageReadError, match=r"secret\.png: permission denied"):
        read_image(src / "secret.png")
    assert refused, "the simulated refusal was never reached"
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert [p.name for p in report.masks] == ["a.png"]
    assert [(name, why.endswith("permission denied")) for name, why in report.skipped] == [
        ("secret.png", True)
    ]


@case(
    "FILE-SYMLINK-LOOP",
    "An image name that is a symbolic link pointing to itself",
    "ImageReadError naming the file; in a batch it is listed as skipped, not silently missing",
)
def test_symlink_loop(tmp_path, segmenter):
    src = tmp_path / "in"
    src.mkdir()
    imsave(src / "a.png", grey(), check_contrast=False)
    os.symlink(src / "loop.png", src / "loop.png")
    with pytest.raises(ImageReadError, match=r"loop\.png"):
        read_image(src / "loop.png")
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert [p.name for p in report.masks] == ["a.png"]
    assert [name for name, _ in report.skipped] == ["loop.png"]


@case(
    "FILE-BATCH-MIXED",
    "A batch folder mixing good images with a text file named .png, a truncated JPEG, a "
    "sub-folder named .png, notes.txt and a broken link",
    "Every good image is segmented; each bad one is skipped with its reason; results.csv "
    "lists the good ones only; other files are ignored",
)
def test_batch_folder_with_junk(tmp_path, segmenter):
    src = tmp_path / "in"
    src.mkdir()
    imsave(src / "a.png", grey(1), check_contrast=False)
    imsave(src / "b.tif", grey(2, (10, 12)), check_contrast=False)
    imsave(src / "c.jpg", np.dstack([grey(3)] * 3), check_contrast=False)
    (src / "fake.png").write_text("not an image")
    truncated(tmp_path, "cut.jpg").rename(src / "cut.jpg")
    (src / "folder.png").mkdir()
    (src / "notes.txt").write_text("ignored")
    os.symlink(tmp_path / "gone.png", src / "gone.png")
    out = tmp_path / "out"
    report = segment_folder(segmenter, src, out)
    assert [p.name for p in report.masks] == ["a.png", "b.png", "c.png"]
    skipped = dict(report.skipped)
    assert sorted(skipped) == ["cut.jpg", "fake.png", "gone.png"]
    assert "truncated" in skipped["cut.jpg"] and "broken symbolic link" in skipped["gone.png"]
    with open(out / "results.csv", newline="") as f:
        assert [row["file"] for row in csv.DictReader(f)] == ["a.png", "b.tif", "c.jpg"]
    assert read_image(out / "masks" / "b.png").shape == (10, 12)
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["a.png", "b.png", "c.png"]


@case(
    "FILE-OUT-UNWRITABLE",
    "An output folder that cannot be created (a regular file stands in its path), for "
    "segment_folder, run_folder with ground truth and `wavegms segment`",
    "OutputWriteError 'cannot create the output folder ...' before the model runs; the "
    "command prints one line and exits with 2",
)
def test_output_folder_cannot_be_created(
    tmp_path, segmenter, monkeypatch, capsys, tiny_dataset, tiny_model_file
):
    from wavegms.cli import main
    from wavegms.data.pairs import dataset_pairs

    src = tmp_path / "in"
    src.mkdir()
    imsave(src / "a.png", grey(), check_contrast=False)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    runs = count_model_runs(segmenter, monkeypatch)
    with pytest.raises(OutputWriteError, match=r"cannot create the output folder .*blocker"):
        segment_folder(segmenter, src, blocker / "out")
    pairs = dataset_pairs(tiny_dataset, split="test")
    with pytest.raises(OutputWriteError, match="cannot create the output folder"):
        run_folder(segmenter, pair_items(pairs), blocker / "eval")
    assert runs == []
    assert blocker.read_text() == "a file, not a folder"
    code = main(["segment", str(src), str(blocker / "out"), "--model", "tiny", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "error: cannot create the output folder" in err
    assert "Traceback" not in err


@case(
    "FILE-OUT-EXISTS",
    "Output masks that already exist (segment_folder, write_png)",
    "OutputExistsError before any work; the existing file is byte-identical afterwards; "
    "replaced only with overwrite",
)
def test_existing_output_is_kept(tmp_path, segmenter, monkeypatch):
    from wavegms.core.files import write_png

    src = tmp_path / "in"
    src.mkdir()
    imsave(src / "a.png", grey(1), check_contrast=False)
    imsave(src / "b.png", grey(2), check_contrast=False)
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    existing = out / "masks" / "b.png"
    existing.write_bytes(b"the user's own file")
    runs = count_model_runs(segmenter, monkeypatch)
    with pytest.raises(OutputExistsError, match=r"masks/b\.png"):
        segment_folder(segmenter, src, out)
    with pytest.raises(OutputExistsError):
        write_png(existing, np.zeros((2, 2), np.uint8))
    assert runs == [] and existing.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in out.rglob("*")) == ["b.png", "masks"]
    report = segment_folder(segmenter, src, out, overwrite=True)
    assert report.written == 2 and read_image(existing).shape == (24, 30)
    assert isinstance(OutputExistsError("x"), WaveGMSError)


def folder_with(tmp_path: Path, *good: str) -> Path:
    """tmp_path/in holding a small grey image for each name in ``good``."""
    src = tmp_path / "in"
    src.mkdir()
    for k, name in enumerate(good):
        imsave(src / name, grey(k), check_contrast=False)
    return src


@case(
    "FILE-FIFO",
    "A named pipe (FIFO) called scan.png among the images of a batch folder",
    "Never opened (opening it would block forever, deaf to Ctrl+C): read_image refuses it at "
    "once with ImageReadError, a batch lists it as skipped and segments the rest",
)
def test_fifo_named_png(tmp_path, segmenter):
    import threading

    src = folder_with(tmp_path, "a.png")
    os.mkfifo(src / "scan.png")
    errors: list[Exception] = []

    def read() -> None:
        try:
            read_image(src / "scan.png")
        except ImageReadError as err:
            errors.append(err)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert not reader.is_alive(), "read_image blocked on a FIFO"
    assert "named pipe" in str(errors[0])
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert [p.name for p in report.masks] == ["a.png"]
    assert "named pipe" in dict(report.skipped)["scan.png"]


def huge_png(path: Path, width: int, height: int) -> Path:
    """A tiny PNG file whose header declares ``width x height`` grey pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * (width + 1))  # one row; the rest is missing
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
    return path


def huge_tiff(path: Path, width: int, height: int) -> Path:
    """A 4x4 TIFF whose header was changed to declare ``width x height`` pixels."""
    import tifffile

    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(width)
        tif.pages[0].tags["ImageLength"].overwrite(height)
    return path


@case(
    "FILE-HUGE-HEADER",
    "A PNG and a TIFF of a few hundred bytes whose headers declare 20000x20000 and "
    "100000x100000 pixels, in a batch with a good image",
    "ImageReadError stating the declared size and the pixel limit, from the header before any "
    "pixel is decoded; the batch skips them and writes the good mask and results.csv (was: a "
    "MemoryError traceback that ended the batch without a table)",
)
def test_header_declares_a_huge_plane(tmp_path, segmenter):
    src = folder_with(tmp_path, "a.png")
    huge_png(src / "bomb.png", 20000, 20000)
    huge_tiff(src / "big.tif", 100000, 100000)
    assert (src / "bomb.png").stat().st_size < 1000
    with pytest.raises(ImageReadError, match=r"big\.tif: it declares 100000 x 100000 .*limit"):
        read_image(src / "big.tif")
    with pytest.raises(ImageReadError, match=r"bomb\.png: it declares more than \d+ pixels"):
        read_image(src / "bomb.png")
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert [p.name for p in report.masks] == ["a.png"]
    assert sorted(dict(report.skipped)) == ["big.tif", "bomb.png"]
    with open(tmp_path / "out" / "results.csv", newline="") as f:
        assert [row["file"] for row in csv.DictReader(f)] == ["a.png"]


@case(
    "FILE-NAME-NOT-UTF8",
    "An image whose file name holds bytes that are no valid UTF-8 (b'scan\\xff.png')",
    "Segmented like any other; its mask keeps the name's bytes; results.csv and the summary "
    "write the bad byte as \\xff (was: the CSV write failed after every mask was written)",
)
def test_file_name_not_utf8(tmp_path, segmenter):
    src = folder_with(tmp_path, "a.png")
    imsave(src / os.fsdecode(b"scan\xff.png"), grey(5), check_contrast=False)
    out = tmp_path / "out"
    report = segment_folder(segmenter, src, out)
    assert report.written == 2 and not report.skipped
    assert b"scan\xff.png" in os.listdir(os.fsencode(out / "masks"))
    with open(out / "results.csv", encoding="utf-8", newline="") as f:
        assert [row["file"] for row in csv.DictReader(f)] == ["a.png", "scan\\xff.png"]
    report.summary().encode("utf-8")  # printable: no lone surrogates left


@case(
    "FILE-UNREAD-FORMATS",
    "A batch folder holding damaged DICOM (.dcm) and NIfTI (.nii, .nii.gz) files and a GIF "
    "beside a PNG; a folder holding one damaged DICOM only",
    "Each one listed as skipped with its one-line reason (the GIF: 'GIF is not read', the "
    "damaged DICOM and NIfTI: 'cannot read image ...'), the PNG is segmented (was: skipped "
    "without a word); the folder with nothing readable: no mask, the DICOM listed with why",
)
def test_formats_not_read_are_listed(tmp_path, segmenter):
    from PIL import Image

    src = folder_with(tmp_path, "a.png")
    (src / "ct.dcm").write_bytes(b"\0" * 128 + b"DICM")
    (src / "brain.nii").write_bytes(b"\0" * 352)
    (src / "brain2.nii.gz").write_bytes(b"\x1f\x8b")
    Image.fromarray(grey(1)).save(src / "clip.gif")
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert [p.name for p in report.masks] == ["a.png"]
    skipped = dict(report.skipped)
    assert sorted(skipped) == ["brain.nii", "brain2.nii.gz", "clip.gif", "ct.dcm"]
    for name in ("brain.nii", "brain2.nii.gz", "ct.dcm"):
        assert skipped[name].startswith(f"cannot read image {src / name}: ")
        assert "\n" not in skipped[name]
    assert "GIF" in skipped["clip.gif"]
    assert "ct.dcm" in report.summary()
    only = tmp_path / "dicom"
    only.mkdir()
    (only / "ct.dcm").write_bytes(b"\0" * 128 + b"DICM")
    report = segment_folder(segmenter, only, tmp_path / "out2")
    assert report.written == 0 and [name for name, _ in report.skipped] == ["ct.dcm"]


@case(
    "FILE-TIFF-PAGES",
    "A 3-page TIFF in a batch folder",
    "One mask per page, scan_page001.png .. scan_page003.png, each of the page's size, one "
    "results.csv row each (was: taken as one RGB image)",
)
def test_batch_multi_page_tiff(tmp_path, segmenter):
    import tifffile

    src = folder_with(tmp_path, "a.png")
    pages = np.stack([grey(k, (12, 16)) for k in range(3)])
    tifffile.imwrite(src / "scan.tif", pages, photometric="minisblack")
    out = tmp_path / "out"
    report = segment_folder(segmenter, src, out)
    names = ["a.png", "scan_page001.png", "scan_page002.png", "scan_page003.png"]
    assert [p.name for p in report.masks] == names
    assert all(read_image(p).shape == (12, 16) for p in report.masks[1:])
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["file"] for row in rows] == ["a.png", "scan.tif", "scan.tif", "scan.tif"]


@case(
    "FILE-LONG-NAME",
    "Outputs whose names are legal but long: 255 bytes of ASCII, 254 bytes of two-byte "
    "characters, and a folder run over an image named with 251 characters",
    "Written under their own names (their temporaries' names are cut to the 255-byte limit); "
    "no temporary left behind (was: 'file name too long' for a legal name)",
)
def test_long_output_names(segmenter, tmp_path):
    from wavegms.core.files import write_png

    for name in ("a" * 251 + ".png", "é" * 125 + ".png"):
        assert write_png(tmp_path / name, np.zeros((3, 3), bool)).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a" * 251 + ".png", "é" * 125 + ".png"]
    )
    src = tmp_path / "in"
    src.mkdir()
    imsave(
        src / ("b" * 251 + ".png"), np.random.default_rng(0).integers(0, 255, (20, 20), np.uint8)
    )
    report = segment_folder(segmenter, src, tmp_path / "out")
    assert [p.name for p in report.masks] == ["b" * 251 + ".png"] and not report.skipped
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 1
