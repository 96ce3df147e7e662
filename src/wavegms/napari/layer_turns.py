"""Adding a napari layer in short turns of the event loop, so that the window never freezes.

Inside ``viewer.layers.append`` napari builds, on the GUI thread and in one go, the layer's
vispy visual, its Qt controls, the visuals of its visible overlays (a labels layer's polygon and
brush-stroke outlines: about half of a labels layer's cost) and the controls of the layer it then
selects. Here the layer is appended with those overlays hidden and without being selected; each
overlay is shown again, and the layer selected, in a later turn, with timers and paint events
handled in between. napari builds an overlay's visual when it becomes visible, so a few
milliseconds later the viewer holds what ``viewer.add_labels`` would have made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from qtpy.QtCore import QTimer

from wavegms.napari.fields import unless_closed

#: A real timer (not 0 ms, which Qt queues ahead of due timers and paint events): what is due
#: runs first, and each step of :func:`in_turns` has a turn of its own.
TURN_MS = 1


def in_turns(steps: Iterable[Callable[[], None]]) -> None:
    """Run ``steps`` one per turn of the event loop, in order (from the next turn on)."""
    pending = list(steps)

    def step() -> None:
        if pending:
            unless_closed(pending.pop(0))
        if pending:
            QTimer.singleShot(TURN_MS, step)

    if pending:
        QTimer.singleShot(TURN_MS, step)


def add_layer(viewer, layer, then: Callable[[], None] | None = None):
    """Append ``layer`` to ``viewer`` now; show its overlays and select it in the turns after
    (then call ``then``). Returns ``layer``."""
    overlays = getattr(layer, "_overlays", {})  # napari's own; absent: built as usual
    hidden = [overlay for overlay in overlays.values() if overlay.visible]
    for overlay in hidden:
        overlay.visible = False
    layers = viewer.layers
    selected = layers.selection.active
    activates = getattr(layers, "_activate_on_insert", True)
    layers._activate_on_insert = False
    try:
        layers.append(layer)
    finally:
        layers._activate_on_insert = activates
    steps = [partial(_show, overlay) for overlay in hidden]
    if activates:
        steps.append(partial(_select, viewer, layer, selected))
    in_turns([*steps, *([then] if then is not None else [])])
    return layer


def _show(overlay) -> None:
    overlay.visible = True


def _select(viewer, layer, selected_before) -> None:
    """Select ``layer`` as napari would have on adding it, unless the user (or the plugin)
    chose another layer meanwhile or it is gone."""
    if layer in viewer.layers and viewer.layers.selection.active is selected_before:
        viewer.layers.selection.active = layer
