"""The one folder pipeline behind ``wavegms segment``, ``wavegms evaluate``, the napari batch
panel and ``wavegms bench``.

Each image is decoded once, made into the model's input by :mod:`wavegms.data.preprocess`,
segmented in batches, and its soft mask resized back to the image; optionally it is scored
against its ground-truth mask (:mod:`wavegms.scoring.scores`). Outputs:

* ``OUT/masks/<name>.png`` (binary, 0/255) and ``OUT/soft/<name>.png`` (soft, 0-255); a
  multi-page TIFF ``scan.tif`` gives one of each per page, ``scan_page001.png`` and on;
* ``OUT/results.csv``: one row per image (name, file, height, width, mask_area); a scored run
  adds the score columns and a mean and a std row;
* ``OUT/summary.json`` (scored runs only): mean/std and the conventions they follow.

With ``overlap`` the next images are decoded and the finished ones resized, scored and written
in threads beside the model (PNG/JPEG codecs, numpy and torch release the GIL); without it the
very same steps run one after another, which is the benchmark's baseline.
"""

from __future__ import annotations

import csv
import io as _stdio
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from wavegms.core.errors import (
    NONFINITE_SOFT,
    ImageReadError,
    InputError,
    OutputExistsError,
    WaveGMSError,
)
from wavegms.core.files import PathLike, ensure_folder, write_json, write_png, write_text
from wavegms.core.lock import folder_lock
from wavegms.core.progress import CancelToken, ProgressCallback, report
from wavegms.data.images import IMAGE_SUFFIXES, page_count, read_image, read_mask, scan_folder
from wavegms.data.preprocess import model_input, soft_to_shape
from wavegms.scoring.scores import (
    SCORE_KEYS,
    SUMMARY_KEYS,
    score_image,
    score_table,
    summarise_scores,
    summary_record,
)

if TYPE_CHECKING:
    from wavegms.inference.segmenter import Segmenter

RESULTS_CSV = "results.csv"
SUMMARY_JSON = "summary.json"
IMAGE_COLUMNS = ("name", "file", "height", "width", "mask_area")
PREFETCH = 4  # images decoded ahead of the model


class SoftPredictor(Protocol):
    """What the pipeline needs from a model (a ``Segmenter``, or a fake in tests)."""

    image_size: int

    def predict_soft(self, images: list[np.ndarray]) -> np.ndarray:
        """float32 ``S x S x 3`` model inputs in [0, 1] -> (B, S, S) soft masks in [0, 1]."""
        ...


@dataclass(frozen=True)
class FolderItem:
    """One image to segment, named by its outputs' stem, with its ground truth if scored.

    ``page`` picks one plane of a multi-page TIFF; ``unread`` says why a file found in the
    folder is not read at all (it is listed as skipped with that reason).
    """

    name: str
    image: Path
    mask: Path | None = None
    page: int | None = None
    unread: str | None = None


def _image_items(path: Path) -> list[FolderItem]:
    """One item per plane: a multi-page TIFF ``scan.tif`` of N pages gives the masks
    ``scan_page001.png`` .. ``scan_pageN.png``; any other image one item named by its stem."""
    try:
        pages = page_count(path)
    except WaveGMSError:
        pages = 1  # reading it later reports what is wrong with it
    if pages == 1:
        return [FolderItem(path.stem, path)]
    digits = max(3, len(str(pages)))
    return [FolderItem(f"{path.stem}_page{k + 1:0{digits}d}", path, page=k) for k in range(pages)]


def folder_items(in_dir: PathLike) -> list[FolderItem]:
    """Every image of a folder, unscored (see :func:`~wavegms.data.images.scan_folder`):
    one item per page of a multi-page TIFF, and the files not read (DICOM, NIfTI, GIF, a FIFO
    named ``.png``) as items that are listed as skipped with their reason."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise InputError(f"input folder {in_dir} does not exist or is not a folder")
    scan = scan_folder(in_dir)
    if not scan.images:
        why = f"; skipped {scan.skipped[0][0].name}: {scan.skipped[0][1]}" if scan.skipped else ""
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {in_dir}{why}")
    items = [item for p in scan.images for item in _image_items(p)]
    # The full file name, not the stem: a.dcm never takes the name of a.png's masks.
    items += [FolderItem(p.name, p, unread=why) for p, why in scan.skipped]
    return items


def pair_items(pairs: Iterable[Any]) -> list[FolderItem]:
    """Image/mask pairs (``wavegms.data.pairs.Pair`` or alike: name, image, mask), scored."""
    return [FolderItem(str(p.name), Path(p.image), Path(p.mask)) for p in pairs]


def output_paths(out_dir: Path, name: str) -> tuple[Path, Path]:
    """``OUT/masks/<name>.png`` (binary 0/255) and ``OUT/soft/<name>.png`` (soft, 0-255)."""
    return out_dir / "masks" / f"{name}.png", out_dir / "soft" / f"{name}.png"


@dataclass
class FolderReport:
    """What a run did: a row per image written, the files skipped, the scores if scored."""

    out_dir: Path
    total: int  # images asked for
    threshold: float
    model_size: int
    scored: bool
    rows: list[dict] = field(default_factory=list)  # CSV rows, in input order
    masks: list[Path] = field(default_factory=list)  # binary masks written, in input order
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input file name, why)
    cancelled: bool = False
    kept: int = 0  # masks a resumed run kept from the interrupted one
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (mean, std)

    @property
    def written(self) -> int:
        return len(self.masks)

    @property
    def csv_path(self) -> Path:
        return self.out_dir / RESULTS_CSV

    @property
    def summary_path(self) -> Path | None:
        return self.out_dir / SUMMARY_JSON if self.scored else None

    def summary(self) -> str:
        state = "cancelled after" if self.cancelled else "done:"
        lines = [
            f"{state} {self.written} of {self.total} image(s) segmented into "
            f"{self.out_dir / 'masks'} and {self.out_dir / 'soft'}; table {self.csv_path}"
        ]
        if self.kept:
            lines.append(f"{self.kept} of them kept from the interrupted run (resumed)")
        if self.scores:
            lines.append(
                f"scores over {self.written} image(s), threshold {self.threshold:g}: "
                "mean DSC, IoU and HD95 ± std"
            )
            lines += score_table(self.scores, self.model_size)
        if self.skipped:
            lines.append(f"{len(self.skipped)} file(s) skipped:")
            lines += [f"  {name}: {why}" for name, why in self.skipped]
        return printable("\n".join(lines))


# ------------------------------------------------------------------------------ before any work


def _check_request(
    items: Sequence[FolderItem], out_dir: Path, threshold: float, batch_size: int
) -> None:
    """Refuse a run that would fail or harm files, before any work."""
    if not items:
        raise InputError("no images to segment")
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold must be in [0, 1], got {threshold}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if len({item.mask is None for item in items}) > 1:
        raise InputError("either every image has a ground-truth mask or none has")
    seen: dict[str, FolderItem] = {}
    for item in items:
        if not item.name or "/" in item.name or "\\" in item.name or item.name in (".", ".."):
            raise InputError(f"{item.image.name}: {item.name!r} cannot be used as a file name")
        if item.name in seen:
            raise InputError(
                f"{seen[item.name].image.name} and {item.image.name} would write the same mask "
                f"{item.name}.png; rename one of them"
            )
        seen[item.name] = item
    _check_apart(items, out_dir)


def _folders_read(items: Sequence[FolderItem]) -> set[Path]:
    """The real folders a run reads, with the ground truth beside a dataset's ``images/``
    folder (``D/masks`` next to ``D/images``): a run without scores must not write there
    either."""
    folders = set()
    for item in items:
        folders.update(p.parent.resolve() for p in (item.image, item.mask) if p is not None)
        images = item.image.parent.resolve()
        if images.name == "images":
            folders.add((images.parent / "masks").resolve())
    return folders


def _check_apart(items: Sequence[FolderItem], out_dir: Path) -> None:
    """Outputs never go into, or over, an input or ground-truth folder (whatever
    ``overwrite`` says): refuse an output folder that is one of them or holds one. Real paths
    are compared, so a symlink or a relative path cannot hide the overlap."""
    read = _folders_read(items)
    for folder in (out_dir, out_dir / "masks", out_dir / "soft"):
        real = folder.resolve()
        for source in sorted(read):
            if real == source or real in source.parents:
                raise InputError(
                    f"the output folder must differ from the folders read and lie outside "
                    f"them: {folder} is or holds {source}; choose another output folder"
                )


def _refuse_existing(items: Sequence[FolderItem], out_dir: Path) -> None:
    """Refuse outputs that are already there (called unless overwriting or resuming)."""
    outputs = [p for item in items for p in output_paths(out_dir, item.name)]
    outputs.append(out_dir / RESULTS_CSV)
    if items[0].mask is not None:
        outputs.append(out_dir / SUMMARY_JSON)
    existing = [p for p in outputs if p.exists()]
    if existing:
        raise OutputExistsError(
            f"{len(existing)} output file(s) already exist in {out_dir} (first: "
            f"{existing[0].relative_to(out_dir)}); choose another folder, allow overwriting, "
            "or resume an interrupted run"
        )


def _finished_row(item: FolderItem, out_dir: Path) -> dict | None:
    """The CSV row of an image an interrupted run finished (its mask and soft mask are both
    written: the soft mask is written first), or None to segment it again."""
    mask_path, soft_path = output_paths(out_dir, item.name)
    if not (mask_path.is_file() and soft_path.is_file()):
        return None
    try:
        mask = read_image(mask_path)
    except (WaveGMSError, OSError, ValueError):
        return None  # unreadable: made again
    if mask.ndim != 2:
        return None  # not a mask this pipeline wrote: made again
    return {
        "name": item.name,
        "file": item.image.name,
        "height": int(mask.shape[0]),
        "width": int(mask.shape[1]),
        "mask_area": int(np.count_nonzero(mask)),
    }


# ----------------------------------------------------------------------------------- the steps


class Decoded(NamedTuple):
    """An image as the queue holds it: only its model input, whatever the file's size."""

    model_input: np.ndarray
    shape: tuple[int, int]  # the image's height and width
    truth: np.ndarray | None  # the boolean ground truth at the image's size, if scored


def _decode(item: FolderItem, size: int) -> Decoded:
    if item.unread:
        raise ImageReadError(item.unread)
    raw = read_image(item.image, page=item.page)
    shape = (int(raw.shape[0]), int(raw.shape[1]))
    truth = None
    if item.mask is not None:
        truth = read_mask(item.mask)
        if truth.shape != shape:
            raise InputError(f"{item.name}: image {shape} and mask {truth.shape} differ in size")
    return Decoded(model_input(raw, size), shape, truth)


def _finish(
    item: FolderItem,
    small: np.ndarray,
    image: Decoded,
    out_dir: Path,
    threshold: float,
    overwrite: bool,
) -> dict:
    """Resize one soft mask back to its image, write both masks, score; return its CSV row."""
    soft = soft_to_shape(small, image.shape)
    binary = soft > threshold
    mask_path, soft_path = output_paths(out_dir, item.name)
    # Existing outputs were refused before the run; one appearing since is kept all the same.
    write_png(soft_path, soft, overwrite=overwrite)
    write_png(mask_path, binary, overwrite=overwrite)
    row = {
        "name": item.name,
        "file": item.image.name,
        "height": image.shape[0],
        "width": image.shape[1],
        "mask_area": int(np.count_nonzero(binary)),
    }
    if image.truth is not None:
        row.update(score_image(small, binary, image.truth, threshold))
    return row


class _InOrder:
    """An executor that runs each task at once in the caller's thread: the pipeline with the
    same steps as with threads, only without overlap."""

    def submit(self, fn: Callable, *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:
            future.set_exception(err)
        return future

    def __enter__(self) -> _InOrder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _decoded(items: list[FolderItem], pool, size: int) -> Iterator[tuple[FolderItem, Future]]:
    """(item, future of its :class:`Decoded`) in order, decoding up to PREFETCH ahead."""
    pending: list[tuple[FolderItem, Future]] = []
    for item in items:
        pending.append((item, pool.submit(_decode, item, size)))
        if len(pending) > PREFETCH:
            yield pending.pop(0)
    yield from pending


def printable(text: str) -> str:
    """``text`` with the bytes of file names that are no valid UTF-8 (held as surrogates, as
    :func:`os.fsdecode` gives them) written as ``\\xNN``: printable and writable as UTF-8."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name gives: escaped as \udNNN
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _csv_cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6f}"
    return printable(str(value))


def _csv_text(rows: list[dict], scores: dict[str, tuple[float, float]], scored: bool) -> str:
    columns = [*IMAGE_COLUMNS, *(SCORE_KEYS if scored else ())]
    buf = _stdio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _csv_cell(row[k]) for k in columns} for row in rows)
    for label, index in (("mean", 0), ("std", 1)) if scores else ():
        writer.writerow({"name": label, **{k: _csv_cell(scores[k][index]) for k in SUMMARY_KEYS}})
    return buf.getvalue()


# ----------------------------------------------------------------------------------- the run


def run_folder(
    predictor: SoftPredictor,
    items: Sequence[FolderItem],
    out_dir: PathLike,
    *,
    threshold: float = 0.5,
    batch_size: int = 8,
    overwrite: bool = False,
    resume: bool = False,
    skip_unreadable: bool = True,
    overlap: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> FolderReport:
    """Segment ``items`` into ``out_dir`` (see the module docstring), scoring them when they
    come with ground-truth masks.

    Refused before any work, whatever ``overwrite`` says: an output folder that is, or holds,
    a folder read (images, ground truth, or the ``masks/`` beside an ``images/`` folder), two
    items with one name, and an output folder in use by another run (a lock file in it, see
    :mod:`wavegms.core.lock`). Existing outputs are refused unless ``overwrite`` or ``resume``:
    a resumed run keeps each image whose mask and soft mask are both written, segments the
    rest again and writes the table over all images (unscored runs only).

    An image (or mask) that cannot be read is skipped and listed, or ends the run when
    ``skip_unreadable`` is False (a benchmark must not silently score fewer images).
    Cancelling keeps the masks written so far and still writes the table (and
    ``summary.json``, marked incomplete) of them.
    """
    items, out_dir = list(items), Path(out_dir)
    _check_request(items, out_dir, threshold, batch_size)
    scored = items[0].mask is not None
    if resume and scored:
        raise InputError(
            "only a segmentation without ground truth can be resumed (the scores need every "
            "image again); evaluate again into a new folder, or allow overwriting"
        )
    # A folder that cannot be written is reported now, not after the model has run.
    ensure_folder(out_dir)
    with folder_lock(out_dir):
        if not (overwrite or resume):
            _refuse_existing(items, out_dir)
        for folder in (out_dir / "masks", out_dir / "soft"):
            ensure_folder(folder)
        return _run(
            predictor, items, out_dir, threshold, batch_size, overwrite or resume, resume,
            skip_unreadable, overlap, progress, cancel,
        )  # fmt: skip


def _run(
    predictor: SoftPredictor,
    items: list[FolderItem],
    out_dir: Path,
    threshold: float,
    batch_size: int,
    overwrite: bool,
    resume: bool,
    skip_unreadable: bool,
    overlap: bool,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> FolderReport:
    """:func:`run_folder` once its request is checked and its output folder locked."""
    scored = items[0].mask is not None
    size = int(predictor.image_size)
    result = FolderReport(out_dir, len(items), threshold, size, scored)
    kept = {item.name: row for item in items if resume and (row := _finished_row(item, out_dir))}
    order = {item.name: i for i, item in enumerate(items)}
    result.kept = len(kept)
    items = [item for item in items if item.name not in kept]
    stage = "evaluate" if scored else "segment"
    finishing: list[tuple[FolderItem, Future]] = []

    def run_batch(batch: list[tuple[FolderItem, Decoded]]) -> None:
        softs = np.asarray(predictor.predict_soft([d.model_input for _, d in batch]), np.float32)
        if softs.shape != (len(batch), size, size):
            raise InputError(
                f"the model returned shape {softs.shape}, expected {(len(batch), size, size)}"
            )
        np.clip(softs, 0.0, 1.0, out=softs)  # a model may stray a rounding error outside [0, 1]
        for (item, image), small in zip(batch, softs, strict=True):
            if not np.isfinite(small).all():  # thresholded, NaN would be an empty mask
                result.skipped.append((item.image.name, NONFINITE_SOFT))
                continue
            finishing.append(
                (item, pool.submit(_finish, item, small, image, out_dir, threshold, overwrite))
            )

    with ThreadPoolExecutor(2, thread_name_prefix="wavegms-io") if overlap else _InOrder() as pool:
        batch: list[tuple[FolderItem, Decoded]] = []
        report(progress, stage, 0, len(items))
        for item, decoding in _decoded(items, pool, size):
            if cancel is not None and cancel.cancelled:
                result.cancelled = True
                break
            try:
                batch.append((item, decoding.result()))
            except (WaveGMSError, OSError, ValueError) as err:
                if not skip_unreadable:
                    raise
                result.skipped.append((item.image.name, str(err)))
            if len(batch) == batch_size:
                run_batch(batch)
                batch = []
            done = len(result.skipped) + len(finishing)
            report(progress, stage, done, len(items), item.name)
        if batch and not result.cancelled:
            run_batch(batch)
            report(progress, stage, len(result.skipped) + len(finishing), len(items))
        for item, future in finishing:
            try:
                result.rows.append(future.result())
                result.masks.append(output_paths(out_dir, item.name)[0])
            except (WaveGMSError, OSError) as err:
                result.skipped.append((item.image.name, f"could not write its mask: {err}"))
    if kept:  # the kept images join the table in input order
        rows = [*kept.values(), *result.rows]
        result.rows = sorted(rows, key=lambda row: order[row["name"]])
        result.masks = [output_paths(out_dir, row["name"])[0] for row in result.rows]
    if scored and not result.rows and not result.cancelled:
        why = result.skipped[0][1] if result.skipped else "nothing was scored"
        raise InputError(f"none of the {result.total} images could be scored: {why}")
    if scored and result.rows:
        result.scores = summarise_scores(result.rows)
        record = summary_record(
            result.scores, len(result.rows), threshold, size, complete=not result.cancelled
        )
        write_json(out_dir / SUMMARY_JSON, record)
    write_text(out_dir / RESULTS_CSV, _csv_text(result.rows, result.scores, scored))
    return result


def segment_folder(
    segmenter: Segmenter,
    in_dir: PathLike,
    out_dir: PathLike,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    overlap: bool = True,
    resume: bool = False,
) -> FolderReport:
    """Every image of ``in_dir`` through :func:`run_folder`, with the segmenter's threshold and
    batch size; unreadable files are skipped and listed."""
    return run_folder(
        segmenter, folder_items(in_dir), out_dir,
        threshold=segmenter.threshold, batch_size=segmenter.batch_size, overwrite=overwrite,
        resume=resume, overlap=overlap, progress=progress, cancel=cancel,
    )  # fmt: skip
