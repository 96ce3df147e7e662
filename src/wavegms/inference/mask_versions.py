"""Every mask of an output folder that is replaced can be restored.

Before a mask of ``OUT/masks`` (and its soft mask) is replaced, by Accept (the corrected mask)
or by segmenting again with a new model, :meth:`MaskVersions.keep` copies both and the image's
row of ``results.csv`` into ``OUT/versions/<n>/`` and records the replace in
``OUT/versions/versions.json``. :meth:`MaskVersions.restore` brings an image's last kept
version back (keeping the mask it replaces, so a restore can be undone too) and
:meth:`MaskVersions.undo_last` does so for every image of the last batch replace.

Qt-free and torch-free; files are copied atomically.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.core.files import atomic_write, read_json, write_json
from wavegms.inference.folder_outputs import output_paths

VERSIONS = "versions"
JOURNAL = "versions.json"
_LOCK = threading.Lock()  # one journal writer at a time in this process


@dataclass
class Replace:
    """One replace: the masks it was about to overwrite, kept in ``OUT/versions/<id>/``."""

    id: int
    reason: str  # "accept", "resegment" (with a model), "restore"
    when: str
    names: list[str]
    rows: dict[str, dict] = field(default_factory=dict)  # the table rows they had
    batch: bool = False  # a replace of many images at once (undone by undo_last)
    undone: bool = False


def _copy(source: Path, target: Path) -> None:
    atomic_write(target, partial(shutil.copyfile, source), target.suffix)


class MaskVersions:
    """The kept versions of one output folder's masks."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.root = self.out_dir / VERSIONS

    def replaces(self) -> list[Replace]:
        path = self.root / JOURNAL
        if not path.is_file():
            return []
        try:
            return [Replace(**r) for r in read_json(path)["replaces"]]
        except (WaveGMSError, KeyError, TypeError) as err:
            raise InputError(f"the mask history {path} is damaged: {err}") from err

    def _save(self, replaces: list[Replace]) -> None:
        write_json(self.root / JOURNAL, {"replaces": [asdict(r) for r in replaces]})

    def keep(
        self, names: list[str], reason: str, rows: dict[str, dict], batch: bool = False
    ) -> Replace | None:
        """Copy the current masks of ``names`` (those that exist) and their ``rows`` aside
        before they are replaced; None if none exists yet."""
        with _LOCK:
            replaces = self.replaces()
            entry = Replace(
                1 + max((r.id for r in replaces), default=0), reason,
                time.strftime("%Y-%m-%d %H:%M:%S"), [], {}, batch,
            )  # fmt: skip
            for name in names:
                mask, soft = output_paths(self.out_dir, name)
                if not mask.is_file():
                    continue
                kept_mask, kept_soft = output_paths(self.root / str(entry.id), name)
                _copy(mask, kept_mask)
                if soft.is_file():
                    _copy(soft, kept_soft)
                entry.names.append(name)
                if name in rows:
                    entry.rows[name] = rows[name]
            if not entry.names:
                return None
            self._save([*replaces, entry])
            return entry

    def history(self, name: str) -> list[Replace]:
        """The replaces that kept a version of ``name``, newest first."""
        return [r for r in reversed(self.replaces()) if name in r.names]

    def restore(self, name: str, current_row: dict | None = None) -> dict | None:
        """Bring back ``name``'s last kept version (the current mask is kept first, so this
        can be undone in turn); returns the row it had, for the table (None if unknown)."""
        past = self.history(name)
        if not past:
            raise InputError(f"no earlier mask of {name!r} was kept: nothing to restore")
        source = past[0]
        self.keep([name], "restore", {name: current_row} if current_row else {})
        self._bring_back(source, name)
        return source.rows.get(name)

    def _bring_back(self, source: Replace, name: str) -> None:
        kept_mask, kept_soft = output_paths(self.root / str(source.id), name)
        mask, soft = output_paths(self.out_dir, name)
        _copy(kept_mask, mask)
        if kept_soft.is_file():
            _copy(kept_soft, soft)

    def last_batch(self) -> Replace | None:
        return next((r for r in reversed(self.replaces()) if r.batch and not r.undone), None)

    def undo_last(self, current_rows: dict[str, dict]) -> tuple[list[str], dict[str, dict]]:
        """Restore every image of the last batch replace not yet undone; returns the names
        and the rows they get back."""
        batch = self.last_batch()
        if batch is None:
            raise InputError("no batch of masks was replaced: nothing to undo")
        rows = {n: current_rows[n] for n in batch.names if n in current_rows}
        self.keep(batch.names, "restore", rows)
        for name in batch.names:
            self._bring_back(batch, name)
        with _LOCK:
            replaces = self.replaces()
            for r in replaces:
                if r.id == batch.id:
                    r.undone = True
            self._save(replaces)
        return list(batch.names), dict(batch.rows)
