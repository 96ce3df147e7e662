"""Segment a folder of images: ``OUT/masks/``, ``OUT/soft/`` and ``OUT/results.csv``.

The same layout as ``wavegms evaluate`` (which adds the scores). Decoding the next images and
writing the finished masks run in threads beside the model, so a folder costs about its
inference time: PNG/JPEG codecs release the GIL, and so does torch.
"""

from __future__ import annotations

import csv
import io as _stdio
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError, OutputExistsError, WaveGMSError
from wavegms.core.files import ensure_folder, write_png, write_text
from wavegms.core.progress import CancelToken, ProgressCallback, report
from wavegms.data.images import list_images, read_image
from wavegms.data.preprocess import model_input, soft_to_shape
from wavegms.inference.segmenter import Segmenter

RESULTS_CSV = "results.csv"
RESULTS_COLUMNS = ("name", "file", "height", "width", "mask_area")
PREFETCH = 4  # images decoded ahead of the model


@dataclass
class FolderReport:
    out_dir: Path
    written: list[Path] = field(default_factory=list)  # binary masks, in input order
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    cancelled: bool = False

    @property
    def csv_path(self) -> Path:
        return self.out_dir / RESULTS_CSV

    def summary(self) -> str:
        state = "cancelled after" if self.cancelled else "done:"
        lines = [
            f"{state} {len(self.written)} mask(s) written to {self.out_dir / 'masks'}, "
            f"{len(self.skipped)} file(s) skipped; table {self.csv_path}"
        ]
        lines += [f"  skipped {p.name}: {why}" for p, why in self.skipped]
        return "\n".join(lines)


def output_paths(out_dir: Path, image: Path) -> tuple[Path, Path]:
    """``OUT/masks/<stem>.png`` (binary 0/255) and ``OUT/soft/<stem>.png`` (soft, 0-255)."""
    return out_dir / "masks" / f"{image.stem}.png", out_dir / "soft" / f"{image.stem}.png"


def _check_outputs(images: list[Path], out_dir: Path, overwrite: bool) -> None:
    stems: dict[str, Path] = {}
    for image in images:
        if image.stem in stems:
            raise InputError(
                f"{stems[image.stem].name} and {image.name} would write the same mask "
                f"{image.stem}.png; rename one of them"
            )
        stems[image.stem] = image
    if overwrite:
        return
    outputs = [p for im in images for p in output_paths(out_dir, im)]
    existing = [p for p in [*outputs, out_dir / RESULTS_CSV] if p.exists()]
    if existing:
        raise OutputExistsError(
            f"{len(existing)} output file(s) already exist in {out_dir} (first: "
            f"{existing[0].relative_to(out_dir)}); choose another folder or allow overwriting"
        )


Decoded = tuple[np.ndarray, tuple[int, int]]  # the model's input and the image's height, width


def _decode(path: Path, size: int) -> Decoded:
    """Read an image and keep only its model-size input: the queue of prefetched images then
    holds small arrays, whatever the size of the files."""
    image = read_image(path)
    return model_input(image, size), image.shape[:2]


def _decoded(
    images: list[Path], pool: ThreadPoolExecutor, size: int
) -> Iterator[tuple[Path, Decoded | None, str]]:
    """(path, decoded image or None, why) in order, decoding up to PREFETCH images ahead."""
    pending: list[tuple[Path, Future]] = []
    todo = iter(images)
    for path in todo:
        pending.append((path, pool.submit(_decode, path, size)))
        if len(pending) >= PREFETCH:
            break
    while pending:
        path, future = pending.pop(0)
        nxt = next(todo, None)
        if nxt is not None:
            pending.append((nxt, pool.submit(_decode, nxt, size)))
        try:
            yield path, future.result(), ""
        except (WaveGMSError, OSError, ValueError) as err:
            yield path, None, str(err)


def _write(path: Path, out_dir: Path, small: np.ndarray, shape: tuple, threshold: float) -> dict:
    """Resize one soft mask back to its image, write both masks, return its table row."""
    soft = soft_to_shape(small, shape)
    binary = soft > threshold
    mask_path, soft_path = output_paths(out_dir, path)
    write_png(soft_path, soft, overwrite=True)
    write_png(mask_path, binary, overwrite=True)
    return {
        "name": path.stem,
        "file": path.name,
        "height": shape[0],
        "width": shape[1],
        "mask_area": int(binary.sum()),
    }


def _table(rows: list[dict]) -> str:
    buf = _stdio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RESULTS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def segment_folder(
    segmenter: Segmenter,
    in_dir: str | Path,
    out_dir: str | Path,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> FolderReport:
    """Segment every image in ``in_dir`` into ``out_dir``; see the module docstring.

    Unreadable files are skipped and listed. Existing outputs are never replaced unless
    ``overwrite``, checked before any work is done. Cancelling keeps the masks written so far
    and still writes the table of them.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise InputError(f"input folder {in_dir} does not exist or is not a folder")
    if in_dir.resolve() == out_dir.resolve():
        raise InputError("the output folder must differ from the input folder")
    images = list_images(in_dir)
    _check_outputs(images, out_dir, overwrite)
    # A folder that cannot be written is reported now, not after the model has run.
    for folder in (out_dir, out_dir / "masks", out_dir / "soft"):
        ensure_folder(folder)
    result = FolderReport(out_dir)
    writes: list[tuple[Path, Future]] = []
    with ThreadPoolExecutor(2, thread_name_prefix="wavegms-io") as pool:
        batch: list[tuple[Path, Decoded]] = []
        stream = _decoded(images, pool, segmenter.image_size)
        for path, image, why in stream:
            if cancel is not None and cancel.cancelled:
                result.cancelled = True
                break
            if image is None:
                result.skipped.append((path, why))
            else:
                batch.append((path, image))
            if len(batch) == segmenter.batch_size:
                writes += _segment_batch(segmenter, batch, out_dir, pool)
                batch = []
            done = len(result.skipped) + len(writes)
            report(progress, "segment", done, len(images), path.name)
        if batch and not result.cancelled:
            writes += _segment_batch(segmenter, batch, out_dir, pool)
            report(progress, "segment", len(result.skipped) + len(writes), len(images))
        stream.close()
        for path, future in writes:
            try:
                result.rows.append(future.result())
                result.written.append(output_paths(out_dir, path)[0])
            except (WaveGMSError, OSError) as err:
                result.skipped.append((path, f"could not write its mask: {err}"))
    write_text(out_dir / RESULTS_CSV, _table(result.rows))
    return result


def _segment_batch(
    segmenter: Segmenter, batch: list[tuple[Path, Decoded]], out_dir: Path, pool
) -> list[tuple[Path, Future]]:
    """Run the model on a batch; resizing back and writing happen in the background."""
    softs = segmenter.predict_soft([small for _, (small, _) in batch])
    threshold = segmenter.threshold
    return [
        (path, pool.submit(_write, path, out_dir, soft, shape, threshold))
        for (path, (_, shape)), soft in zip(batch, softs, strict=True)
    ]
