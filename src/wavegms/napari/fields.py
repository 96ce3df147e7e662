"""The forms' fields: what their lists offer (models, devices, layers) and when an edit counts
as done (settings are saved then, not on every keystroke).

Torch-free: building a form must not import torch on napari's GUI thread, so a device list
starts as ``auto``/``cpu`` and is completed by a worker thread once the event loop runs. The
list it finds is kept by that form's own combo box (nothing module-wide): it goes with the form.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from functools import partial

from magicgui.widgets import ComboBox, Container, FileEdit
from magicgui.widgets.bases import ValueWidget
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QAbstractSpinBox, QLineEdit

from wavegms.napari.feedback import guarded

#: What a device list offers until a worker has listed the machine's devices.
FIRST_DEVICES = ("auto", "cpu")


def model_choices(_widget=None) -> list[str]:
    """Every model by name: shipped first, then the user's fine-tuned ones."""
    from wavegms.store.catalogue import list_models

    return list(list_models())


def device_choices(_widget=None) -> list[str]:
    """``auto`` and ``cpu``: a device list's choices until :func:`complete_device_list`
    has listed this machine's devices into it."""
    return list(FIRST_DEVICES)


def _list_devices() -> list[str]:
    from wavegms.core.devices import available_devices  # torch: in the worker thread only

    return available_devices()


def complete_device_list(combo: ComboBox, saved: str) -> None:
    """Once the form is built, complete ``combo``'s devices (a worker lists them; the combo
    keeps the list) and select ``saved``, the device the user chose last time, if it was not
    listed before."""
    after_build(lambda: _start_listing(combo, saved))


def _start_listing(combo: ComboBox, saved: str) -> None:
    worker = create_worker(_list_devices, _ignore_errors=True)  # on errors: auto and cpu
    # A weak reference: the worker must not keep the form (and so napari's viewer) alive.
    ref = weakref.ref(combo)

    def listed(names: list[str]) -> None:
        if (alive := ref()) is not None:
            unless_closed(partial(_listed, alive, saved, names))

    worker.returned.connect(listed)
    worker.start()


def _listed(combo: ComboBox, saved: str, names: list[str]) -> None:
    combo.choices = names  # a fixed list from now on: reset_choices keeps it
    if combo.value == "auto" and saved in combo.choices:
        combo.value = saved


def after_build(callback: Callable[[], None]) -> None:
    """Call ``callback`` once the event loop runs, i.e. after the form has been built (work
    started there, such as importing torch in a worker, does not delay the form)."""
    QTimer.singleShot(0, partial(unless_closed, callback))


def unless_closed(callback: Callable[[], None]) -> None:
    """Call ``callback``, unless what it updates has been closed meanwhile (a late call)."""
    try:
        callback()
    except RuntimeError as err:  # the form was closed before: its Qt widgets are deleted
        if "deleted" not in str(err):
            raise


class LayerChoices:
    """A ComboBox choices callable: the viewer's layers of one kind, by name."""

    def __init__(self, viewer, kind) -> None:
        self.viewer, self.kind = viewer, kind

    def __call__(self, _widget=None) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, self.kind)]


def on_edit_finished(widgets: Iterable[ValueWidget], callback: Callable[[], None], label) -> None:
    """Call ``callback`` (errors shown in ``label``) when the user has finished editing one of
    ``widgets``: a text field on Return or on leaving it, not per keystroke (a half-typed name
    is no name); a spin box likewise; a choice or a check box at once. A value set by code
    counts at once too."""
    slot = guarded(callback, label)
    for widget in widgets:
        line = _line_edit(widget)
        if line is not None:
            line.editingFinished.connect(partial(_typing_finished, line, slot))
            widget.changed.connect(partial(_changed_unless_typing, line, slot))
            continue
        if isinstance(widget.native, QAbstractSpinBox):
            widget.native.setKeyboardTracking(False)  # valueChanged once typing ends
        widget.changed.connect(partial(_changed, slot))


def _line_edit(widget: ValueWidget) -> QLineEdit | None:
    if isinstance(widget, FileEdit):
        return widget.line_edit.native
    return widget.native if isinstance(widget.native, QLineEdit) else None


def _changed(slot: Callable[[], None], _value=None) -> None:
    slot()


def _changed_unless_typing(line: QLineEdit, slot: Callable[[], None], _value=None) -> None:
    # Qt marks text typed by the user as modified; setText (code, the folder dialog) does not.
    if not line.isModified():
        slot()


def _typing_finished(line: QLineEdit, slot: Callable[[], None]) -> None:
    if line.isModified():  # leaving the field without typing is no edit
        line.setModified(False)
        slot()


def button_row(*widgets) -> Container:
    """Widgets side by side in one row without margins (buttons that belong together)."""
    row = Container(widgets=list(widgets), layout="horizontal", labels=False)
    row.margins = (0, 0, 0, 0)
    return row
