"""Layers added in short turns of the event loop (``napari.layer_turns``) end as
``viewer.add_labels`` leaves them: overlays shown, the new layer selected, unless the user
chose another layer meanwhile."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.napari


def _visible_overlays(layer) -> dict[str, bool]:
    return {name: overlay.visible for name, overlay in layer._overlays.items()}


def test_a_layer_added_in_turns_ends_as_add_labels_leaves_it(make_napari_viewer, qtbot):
    from napari.layers import Labels

    from wavegms.napari.layer_turns import add_layer

    viewer = make_napari_viewer()
    reference = viewer.add_labels(np.zeros((16, 16), np.uint8), name="reference")
    done = []
    layer = add_layer(
        viewer, Labels(np.zeros((16, 16), np.uint8), name="turns"), lambda: done.append(True)
    )
    assert layer in viewer.layers and viewer.layers.selection.active is reference
    assert not any(_visible_overlays(layer).values())  # shown in the turns that follow
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    assert _visible_overlays(layer) == _visible_overlays(reference)
    assert any(_visible_overlays(layer).values())  # the labels outlines napari draws
    assert viewer.layers.selection.active is layer


def test_a_layer_chosen_meanwhile_stays_chosen(make_napari_viewer, qtbot):
    from napari.layers import Labels

    from wavegms.napari.layer_turns import add_layer

    viewer = make_napari_viewer()
    first = viewer.add_labels(np.zeros((16, 16), np.uint8), name="first")
    other = viewer.add_labels(np.zeros((16, 16), np.uint8), name="other")
    done = []
    layer = add_layer(
        viewer, Labels(np.zeros((16, 16), np.uint8), name="turns"), lambda: done.append(True)
    )
    viewer.layers.selection.active = first  # the user clicks another layer in between
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    assert viewer.layers.selection.active is first
    assert layer in viewer.layers and other in viewer.layers
