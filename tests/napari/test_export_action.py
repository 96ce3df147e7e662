""" "Export..." in the fine-tune dock: offered once a model was made, asks where to write,
runs the library's export in a worker thread and shows the outcome in one line.

The export itself is replaced by a stand-in that records its call and writes a file; the
real one is tested in tests/test_export_bioimageio.py."""

from __future__ import annotations

import dataclasses
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


def test_finetune_dock_offers_the_model_it_made(make_napari_viewer, tiny_model, tmp_path):
    from wavegms.napari.finetune import FinetuneWidget
    from wavegms.napari.finetune_job import outcome_message
    from wavegms.napari.settings import blank_request
    from wavegms.training.finetune import FinetuneOutcome

    dock = FinetuneWidget(make_napari_viewer())
    try:
        assert dock.made_model() is None and not dock.export_form.run_button.enabled
        dock.request = dataclasses.replace(blank_request(), new_name=tiny_model)
        outcome = FinetuneOutcome(
            run_dir=tmp_path, installed=tmp_path, best_val_dice=0.5, best_epoch=1,
            epochs_done=1, train_images=2, val_images=3, cancelled=False, epochs_planned=1,
        )  # fmt: skip
        dock.on_returned(outcome_message(outcome))  # as the training process sends it
        assert dock.made_model() == tiny_model and dock.export_form.run_button.enabled
        dock.on_returned({**dock.outcome, "installed": None})  # stopped before an epoch
        assert dock.made_model() is None and not dock.export_form.run_button.enabled
    finally:
        dock.shutdown()
