""" "Export..." in the fine-tune dock: offered once a model was made, asks where to write,
runs the library's export in a worker thread and shows the outcome in one line.

The export itself is replaced by a stand-in that records its call and writes a file; the
real one is tested in tests/test_export_bioimageio.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from napari_helpers import wait_idle

from wavegms.core.errors import OutputExistsError
from wavegms.core.progress import Progress
from wavegms.napari.export_action import ExportForm

pytestmark = pytest.mark.napari


@pytest.fixture
def exports(monkeypatch) -> list[tuple]:
    """The calls of the (stand-in) export: (model, out, overwrite)."""
    calls: list[tuple] = []

    def export(model_name_or_path, out, *, overwrite, progress, cancel):
        calls.append((model_name_or_path, out, overwrite))
        if Path(out).exists() and not overwrite:
            raise OutputExistsError(f"{out} already exists; not overwriting it")
        progress(Progress("export", 1, 1, "writing the package"))
        Path(out).write_bytes(b"package")
        return Path(out)

    monkeypatch.setattr("wavegms.export.bioimageio.export_bioimageio", export)
    return calls


def test_export_writes_where_the_user_chose(qtbot, tmp_path, exports):
    model = {"name": None}
    target = tmp_path / "mine.bioimageio.zip"
    form = ExportForm(lambda: model["name"], ask_path=lambda name: (str(target), False))
    assert not form.run_button.enabled  # nothing to export yet
    model["name"] = "mine"
    form.refresh()
    assert form.run_button.enabled
    form.run_button.native.click()
    wait_idle(qtbot, form)
    assert exports == [("mine", str(target), False)]
    assert target.read_bytes() == b"package"
    assert form.status.value.startswith(f"wrote {target}") and form.run_button.enabled
    # again, to the same file, without the dialog's consent to replace it: refused, kept
    form.run_button.native.click()
    wait_idle(qtbot, form)
    assert "already exists" in form.status.value and target.read_bytes() == b"package"


def test_closing_the_dialog_exports_nothing(qtbot, exports):
    form = ExportForm(lambda: "mine", ask_path=lambda name: ("", False))
    form.run_button.native.click()
    assert not form.busy and exports == [] and form.status.value == "export cancelled"


def test_finetune_dock_offers_every_installed_model(make_napari_viewer, tiny_model):
    import shutil

    from wavegms.napari.finetune import FinetuneWidget
    from wavegms.store.paths import user_models_dir

    for suffix in (".safetensors", ".json"):  # a second installed model
        shutil.copyfile(user_models_dir() / f"tiny{suffix}", user_models_dir() / f"other{suffix}")
    dock = FinetuneWidget(make_napari_viewer())
    try:
        assert set(dock.export_model.choices) == {"tiny", "other"}  # not only the one it made
        dock.export_model.value = "other"
        dock.export_form.refresh()
        assert dock.made_model() == "other" and dock.export_form.run_button.enabled
    finally:
        dock.shutdown()
