"""The npe2 manifest is installed, valid and points at importable code; nothing heavy is
imported when napari reads it; the sample data contribution works."""

from __future__ import annotations

import importlib
import importlib.resources
import subprocess
import sys

import numpy as np
import pytest

npe2 = pytest.importorskip("npe2")


def test_manifest_is_installed_and_valid():
    manifest = npe2.PluginManifest.from_distribution("napari-wavegms")
    assert manifest.name == "napari-wavegms"
    assert (importlib.resources.files("wavegms") / "napari.yaml").is_file()
    contributions = manifest.contributions
    assert {w.display_name for w in contributions.widgets} == {
        "Segment",
        "Fine-tune",
        "Review results",
        "Segment in boxes",
        "Lesion measurements",
        "Segment a folder",  # in the plugin's menu, not under Layers > Segment (issue 25)
    }
    assert [s.key for s in contributions.sample_data] == ["ultrasound"]
    assert not contributions.menus


def test_every_python_name_resolves():
    manifest = npe2.PluginManifest.from_distribution("napari-wavegms")
    names = [c.python_name for c in manifest.contributions.commands]
    assert names and all(n.startswith("wavegms.napari.") for n in names)
    for name in names:
        module, attribute = name.split(":")
        assert callable(getattr(importlib.import_module(module), attribute)), name


def test_widget_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import wavegms.napari.segment, wavegms.napari.finetune, wavegms.napari.batch\n"
        "import wavegms.napari.sample, wavegms.napari.review\n"
        "import wavegms.napari.boxes, wavegms.napari.measure_dock\n"
        "heavy = ('torch', 'wavegms.inference.segmenter', 'wavegms.training.trainer')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sample_data():
    from wavegms.napari.sample import REFERENCE_COLOUR, ultrasound

    (image, image_meta, image_kind), (mask, mask_meta, mask_kind) = ultrasound()
    assert mask_meta["name"] == "ultrasound lesion"
    # the reference has its own colour, never the red of a predicted mask (issue 25)
    assert mask_meta["colormap"][1] == REFERENCE_COLOUR != "red"
    assert (image_kind, mask_kind) == ("image", "labels")
    assert image.shape == mask.shape == (256, 256)
    assert image.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert image[mask == 1].mean() < image[(mask == 0) & (image > 0)].mean()  # dark lesion
    assert image_meta["name"] == "ultrasound"


@pytest.mark.napari
def test_napari_opens_the_contributions(make_napari_viewer, tiny_model):
    from napari._app_model import get_app_model

    from wavegms.napari.batch import BatchWidget
    from wavegms.napari.finetune import FinetuneWidget
    from wavegms.napari.segment import SegmentWidget

    viewer = make_napari_viewer()
    _, segment = viewer.window.add_plugin_dock_widget("napari-wavegms", "Segment")
    _, finetune = viewer.window.add_plugin_dock_widget("napari-wavegms", "Fine-tune")
    assert isinstance(segment, SegmentWidget) and isinstance(finetune, FinetuneWidget)
    # the window closing napari is the one watched while training (no private attributes)
    finetune.close_guard.watch(finetune.native.window())
    assert finetune.close_guard.window is viewer.window._qt_window
    viewer.open_sample("napari-wavegms", "ultrasound")
    assert [layer.name for layer in viewer.layers] == ["ultrasound", "ultrasound lesion"]
    assert segment.image.value is viewer.layers["ultrasound"]
    assert finetune.labels_layer.value is viewer.layers["ultrasound lesion"]

    # The folder panel is in the plugin's own menu (a widget), not under Layers > Segment.
    app = get_app_model()
    items = app.menus.get_menu("napari/layers/segment")
    assert "napari-wavegms.batch" not in [getattr(i, "command", i).id for i in items]
    dock, panel = viewer.window.add_plugin_dock_widget("napari-wavegms", "Segment a folder")
    assert isinstance(panel, BatchWidget) and not dock.isFloating()  # docked
    again = viewer.window.add_plugin_dock_widget("napari-wavegms", "Segment a folder")
    assert again[1] is panel  # no second panel
