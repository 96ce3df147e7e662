""" "Export..." for a model a dock made: asks where to save, then writes the model's
bioimage.io package (``wavegms.export.bioimageio``) in a worker thread, with the plugin's one
job runner (progress bar, Cancel, one-line errors).

A small form of its own, so that a dock only appends it and says which model it offers
(``model``: a callable returning the model's name, or None while there is none yet).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wavegms.core.errors import InputError
from wavegms.napari.runner import JobForm

#: the file filter of the save dialog
PACKAGE_FILTER = "bioimage.io model package (*.zip)"


def ask_package_path(name: str) -> tuple[str, bool]:
    """Qt's save dialog, which asks before replacing a file: (path or "", replace agreed)."""
    from qtpy.QtWidgets import QFileDialog

    suggested = str(Path.home() / f"{name}.bioimageio.zip")
    path, _ = QFileDialog.getSaveFileName(None, f"Export model {name!r}", suggested, PACKAGE_FILTER)
    if path and not path.lower().endswith(".zip"):
        path += ".zip"
        return path, False  # the dialog asked about the name without .zip, not this one
    return path, bool(path)


class ExportForm(JobForm):
    """An "Export..." button (and its Cancel and status line) for the model ``model()``."""

    def __init__(
        self,
        model: Callable[[], str | None],
        ask_path: Callable[[str], tuple[str, bool]] = ask_package_path,
    ) -> None:
        super().__init__("Export model...", nested=True)  # short: the dock stays narrow
        self.run_button.tooltip = "save the model as a bioimage.io package (one .zip file)"
        self.model = model
        self.ask_path = ask_path
        self.add_job_controls()
        self.refresh()

    def refresh(self) -> None:
        """Offer the button only while there is a model to export and no export runs."""
        self.run_button.enabled = self.model() is not None and not self.busy

    def start(self) -> None:
        from wavegms.export.bioimageio import export_bioimageio

        name = self.model()
        if name is None:
            raise InputError("there is no model to export yet: fine-tune one first")
        path, replace_agreed = self.ask_path(name)
        if not path:
            self.status.value = "export cancelled"
            return
        self.start_thread(
            export_bioimageio,
            f"exporting {name} to {path}",
            model_name_or_path=name,
            out=path,
            overwrite=replace_agreed,
        )

    def on_returned(self, path) -> None:
        self.status.value = f"wrote {path}: share it, or open it in a bioimage.io tool"

    def on_finished(self) -> None:
        self.refresh()
