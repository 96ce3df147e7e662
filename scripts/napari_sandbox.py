"""What the napari measuring scripts share (``bench_cancel.py``, ``dock_finetune.py``): the BUSI
folder, and a napari viewer over a temporary user folder that holds a copy of one model under
a short name, so that no run reads or writes the real user's models and settings."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def busi_folder(data: Path | None) -> tuple[Path, dict]:
    """The BUSI folder (``data``, else ``$WAVEGMS_DATA/busi``) and its split file."""
    root = data or Path(os.environ.get("WAVEGMS_DATA", REPO.parent / "shared" / "data"))
    root = root / "busi" if (root / "busi").is_dir() else root
    return root, json.loads((root / "split.json").read_text())


@contextlib.contextmanager
def sandboxed_viewer(model: str, name: str, prefix: str) -> Iterator[tuple[object, object, Path]]:
    """(Qt application, shown napari viewer, temporary folder) with ``model`` installed as the
    user model ``name`` in a temporary ``WAVEGMS_HOME``; the viewer is closed at the end."""
    from wavegms.store.catalogue import model_paths, resolve_model

    files = list(model_paths(resolve_model(model)))
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.environ["WAVEGMS_HOME"] = str(Path(tmp) / "home")
        from wavegms.store.paths import user_models_dir

        user_models_dir().mkdir(parents=True)
        for source in files:
            shutil.copyfile(source, user_models_dir() / f"{name}{source.suffix}")
        import napari
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance() or napari.qt.get_qapp()
        viewer = napari.Viewer(show=True)
        try:
            yield app, viewer, Path(tmp)
        finally:
            viewer.close()
