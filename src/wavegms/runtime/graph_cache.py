"""Compiled graphs cached on disk, keyed by what makes them, checked before they are used.

A cached graph's name holds the sha256 of the model file (of its weights when there is none),
the backend, the graph version and the versions of the libraries that wrote it, so a new
model, a new export or a new torch/ONNX Runtime never reuses an old file. Next to each graph
lies the sha256 of its bytes (``.sha256``), written after the graph: a graph whose bytes no
longer match (truncated, garbled, half-copied) is never handed to a runtime; it is removed and
built again, with one line saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from wavegms.core.files import known_sha256 as file_sha256
from wavegms.core.files import write_text

#: Bumped whenever the exported graph changes, so stale cache entries are never reused.
GRAPH_VERSION = 1


class DamagedCacheWarning(UserWarning):
    """A cached graph was damaged and has been built again."""


def model_digest(model, model_file: str | Path | None = None) -> str:
    """The sha256 of the model file when given, else of the model's config and trainable
    weights. (The frozen autoencoder's weights are pinned by hash: they need no part in it.)"""
    if model_file is not None:
        return file_sha256(model_file)
    digest = hashlib.sha256(repr(sorted(model.config.to_dict().items())).encode())
    for name, tensor in sorted(model.trainable_state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def library_versions(*distributions: str) -> str:
    """``torch-2.13.0_onnxruntime-1.23.2``: the versions of the libraries a graph depends on,
    for its cache name (a library that is not installed is named ``none``)."""
    parts = []
    for name in ("torch", *distributions):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "none"
        parts.append(f"{name}-{version.replace('+', '.')}")
    return "_".join(parts)


def graph_dir() -> Path:
    from wavegms.store.paths import cache_dir

    return cache_dir() / "graphs"


def cache_path(digest: str, backend: str, libraries: str, suffix: str) -> Path:
    """Where the ``backend`` graph of the model with sha256 ``digest`` is cached."""
    return graph_dir() / f"{digest}-{backend}-g{GRAPH_VERSION}-{libraries}{suffix}"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_intact(path: Path) -> bool:
    """Whether ``path`` is there with the bytes it was written with."""
    try:
        recorded = _sidecar(path).read_text(encoding="ascii").strip()
        return path.is_file() and file_sha256(path) == recorded
    except (OSError, UnicodeDecodeError):
        return False


def remove(path: Path) -> None:
    for p in (path, _sidecar(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def cached_file(path: Path, build: Callable[[Path], object]) -> Path:
    """``path``, built by ``build(path)`` first when it is missing or damaged (then written
    atomically with the sha256 of its bytes beside it). A damaged file warns once."""
    if is_intact(path):
        return path
    if path.exists() or _sidecar(path).exists():
        warnings.warn(
            f"the cached graph {path.name} was damaged; building it again",
            DamagedCacheWarning,
            stacklevel=3,
        )
        remove(path)
    build(path)
    write_text(_sidecar(path), file_sha256(path) + "\n")
    return path
