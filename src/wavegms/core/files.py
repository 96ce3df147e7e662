"""Files written so that nobody ever sees half of one: atomic writes of PNG, JSON and text,
output folders checked before long work starts, and JSON read with a message naming the file."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wavegms.core.errors import InputError, OutputExistsError, OutputWriteError

PathLike = str | os.PathLike


#: the names :func:`atomic_write` gives its temporary files: ``.<name>.<12 hex>.tmp[suffix]``
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp(\.[A-Za-z0-9]+)?$")


def os_error_reason(exc: BaseException) -> str:
    """A short human reason for a failed read."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip() or type(exc).__name__
    if "could not find a backend" in text.lower():  # imageio's words for "unknown format"
        return "not an image in a format that can be read"
    return text.splitlines()[0][:300]


def read_json(path: PathLike) -> Any:
    """Read a UTF-8 JSON file; :class:`InputError` naming the file if it is missing or bad."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"cannot read JSON file {p}: the file does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read JSON file {p}: {os_error_reason(exc)}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} is not valid JSON: {exc}") from exc


def file_sha256(path: PathLike) -> str:
    """The sha256 of a file's bytes, read in blocks (a model or a volume need not fit twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def known_sha256(path: PathLike) -> str:
    """:func:`file_sha256`, remembered per path, size and modification time: a model file
    read by every run, or a DICOM of 500 frames, is hashed once; a file written again is
    another version, hashed again."""
    stat = os.stat(path)
    return _version_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


# A bounded memo of facts about file versions (short strings): nothing to own or to close.
@functools.lru_cache(maxsize=256)
def _version_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def ensure_folder(folder: PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` (and its parents) if needed and check that files can be made in it.

    Raises :class:`OutputWriteError` naming the folder, e.g. when a file stands where a folder
    should be or the place is read-only, before any long work starts.
    """
    d = Path(folder)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create the {what} {d}: {os_error_reason(exc)}") from exc
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputWriteError(f"cannot write into the {what} {d}: permission denied")
    return d


#: the longest file name most file systems take, in bytes (ext4, APFS, NTFS in UTF-16 units)
NAME_MAX = 255


def _temporary_name(name: str, token: str, suffix: str) -> str:
    """``.<name>.<token>.tmp<suffix>``, the name cut short where the whole would pass
    :data:`NAME_MAX` bytes: a legal 250-byte name must not fail for its temporary's sake."""
    room = NAME_MAX - len(os.fsencode(f"..{token}.tmp{suffix}"))
    encoded = os.fsencode(name)
    if len(encoded) > room:  # cut bytes; a split character stays its bytes (surrogateescape)
        name = os.fsdecode(encoded[:room])
    return f".{name}.{token}.tmp{suffix}"


def atomic_write(path: Path, write: Callable[[Path], None], suffix: str = "") -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place.

    The rename is atomic on one filesystem, so readers see the old file or the new one, never
    a half-written one; the temporary file is removed if anything fails. An ``OSError`` (a
    read-only folder, a full disk) becomes an :class:`OutputWriteError` naming ``path``.
    A process killed inside ``write`` leaves its temporary file behind (nothing can remove
    it then): :func:`remove_stale_temporaries` clears such leftovers.
    """
    ensure_folder(path.parent, "folder")
    # Not tempfile.mkstemp: it creates mode 0600 files, and the rename would keep that mode.
    # os.open with 0o666 lets the umask decide, as for any normally created file.
    while True:
        tmp = path.with_name(_temporary_name(path.name, secrets.token_hex(6), suffix))
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputWriteError(f"cannot write {path}: {os_error_reason(exc)}") from exc
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, OutputWriteError):
            raise OutputWriteError(f"cannot write {path}: {os_error_reason(exc)}") from exc
        raise
    return path


def is_temporary_of(name: str, target: str) -> bool:
    """Whether the file ``name`` is a temporary that :func:`atomic_write` made for ``target``
    (a name in the same folder)."""
    return name.startswith(f".{target}.") and _TEMPORARY.match(name) is not None


def remove_stale_temporaries(folder: PathLike) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` calls in ``folder`` left behind
    when their process was killed; returns what was removed.

    Only for folders one process writes at a time (a training run's folder, a locked folder
    run's outputs once its writers are done): a temporary file of a write still in progress
    elsewhere would be removed too.
    """
    d = Path(folder)
    if not d.is_dir():
        return []
    removed = []
    for p in d.iterdir():
        if _TEMPORARY.match(p.name) and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def _png_array(array: np.ndarray) -> np.ndarray:
    """Convert an array to something PNG stores losslessly (uint8 or uint16, 1/3/4 channels)."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.size == 0 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (2, 3, 4))):
        raise InputError(f"cannot write an array of shape {a.shape} as PNG; expected HxW[xC]")
    if a.dtype == bool:
        return a.astype(np.uint8) * np.uint8(255)
    if a.dtype in (np.uint8, np.uint16):
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise InputError("cannot write an image with NaN or Inf values as PNG")
        # A little slack for rounding in arithmetic that should have stayed in [0, 1].
        if a.min() < -1e-3 or a.max() > 1 + 1e-3:
            raise InputError(
                f"float image values must lie in [0, 1] to be written as PNG "
                f"(found {a.min():.4g} .. {a.max():.4g})"
            )
        return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return a.astype(np.uint16)
        raise InputError(f"integer values {lo} .. {hi} do not fit into a 16-bit PNG")
    raise InputError(f"cannot write an array of data type {a.dtype} as PNG")


def write_png(
    path: PathLike, array: np.ndarray, overwrite: bool = False, text: dict[str, str] | None = None
) -> Path:
    """Write ``array`` atomically as a PNG file and return its path.

    ``bool`` -> 0/255, floats in [0, 1] -> ``round(x * 255)`` uint8, uint8/uint16 as they are.
    ``text``: PNG text chunks (e.g. what made a mask), read back as Pillow's ``Image.text``.
    Raises :class:`OutputExistsError` if the file exists and ``overwrite`` is false, and
    :class:`InputError` for a path not ending in ``.png`` or an array PNG cannot hold.
    """
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise InputError(f"{p}: a PNG file name must end in .png")
    data = _png_array(array)  # validate before touching the disk
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} already exists (pass overwrite=True to replace it)")

    from skimage import io as skio

    def write(tmp: Path) -> None:
        if text:
            from PIL import Image, PngImagePlugin

            info = PngImagePlugin.PngInfo()
            for key, value in text.items():
                info.add_text(key, value)
            Image.fromarray(data).save(tmp, format="PNG", pnginfo=info)
            return
        # check_contrast=False: masks and dark images are legitimate; no warning spam.
        skio.imsave(str(tmp), data, check_contrast=False)

    return atomic_write(p, write, ".png")


def _json_default(obj: Any) -> Any:
    """Serialise the numpy scalars/arrays and paths that metrics and configs tend to hold."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` atomically as UTF-8 (newlines as given) and return the path."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8", newline="")

    return atomic_write(Path(path), write)


def write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` atomically as UTF-8 JSON (indent 2) and return the path.

    numpy scalars/arrays and paths are converted; NaN is written as ``NaN`` (Python's json
    reads it back), since metrics such as HD95 can be undefined.
    """
    p = Path(path)
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot write {p} as JSON: {exc}") from exc

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return atomic_write(p, write, ".json")
