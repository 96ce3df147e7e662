"""napari timings for the Segment widget (run under a display, e.g. `xvfb-run -a`).

    xvfb-run -a .venv/bin/python scripts/bench_napari.py [--model busi] [--image PATH]

Prints, side by side in one run:
- napari start-up (new process: import napari, open a viewer) with the plugin enabled and with
  it disabled through npe2 (the baseline), medians of 3;
- opening the Segment dock (imports the widget module, lists models);
- click Segment -> labels layer on the canvas, first time (model load included) and then with
  the model loaded (median of 5), for a 564x472 grey image (or --image): on an image without
  a mask layer (the layer is added) and again on the same image (its data replaced);
- with --finetune-data DIR: the fine-tune dock driven as a user would: N corrected pairs from
  DIR's training split added with "Add to training set", then "Fine-tune" (child process) to
  the new model selectable in the Segment widget, wall time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np

START_CODE = """
import time, sys
start = time.perf_counter()
import napari
from npe2 import PluginManager
if sys.argv[1] == "disabled":
    PluginManager.instance().disable("napari-wavegms")
viewer = napari.Viewer(show=True)
from qtpy.QtWidgets import QApplication
QApplication.processEvents()
print(time.perf_counter() - start)
viewer.close()
"""


def startup_seconds(state: str, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", START_CODE, state], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def click_to_layer(viewer, widget, layer, new_layer: bool = True) -> float:
    """Seconds from the click to the labels layer drawn (events processed); ``new_layer``:
    the image's mask layer removed first, so that the click adds one."""
    from qtpy.QtWidgets import QApplication

    name = f"{layer.name} mask"
    if new_layer and name in viewer.layers:
        viewer.layers.remove(name)
        QApplication.processEvents()
    widget.image.value = layer
    start = time.perf_counter()
    widget.run_button.native.click()
    while widget.busy or name not in viewer.layers:
        QApplication.processEvents()
        time.sleep(0.001)
    QApplication.processEvents()  # the paint of the new layer
    return time.perf_counter() - start


def dock_finetune(viewer, segment, data_dir: str, model: str, n: int, epochs: int) -> None:
    """Collect ``n`` pairs in the dock, fine-tune, and report the wall time and the result."""
    from qtpy.QtWidgets import QApplication

    from wavegms.data.images import read_image
    from wavegms.data.masks import read_mask
    from wavegms.data.pairs import dataset_pairs

    _, dock = viewer.window.add_plugin_dock_widget("napari-wavegms", "Fine-tune")
    dock.project.value = "bench"
    for pair in dataset_pairs(data_dir, split="train")[:n]:
        image = viewer.add_image(read_image(pair.image), name=pair.name)
        labels = viewer.add_labels(read_mask(pair.mask).astype(np.uint8), name=f"{pair.name} fix")
        dock.image.value, dock.labels_layer.value = image, labels
        dock.add_button.native.click()
    dock.base_model.value = model
    dock.device.value = "cpu"
    dock.epochs.value = epochs
    dock.new_name.value = f"{model}-bench-{int(time.time())}"
    start = time.perf_counter()
    dock.run_button.native.click()
    while dock.busy:
        QApplication.processEvents()
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    dice = max(dock.plot.dices) if dock.plot.dices else float("nan")
    print(
        f"fine-tune dock: {len(dock.pairs.choices)} pairs, {epochs} epochs, cpu: "
        f"{seconds:.1f} s from the click to the installed model"
    )
    print(f"  best validation Dice {100 * dice:.2f}; status: {dock.status.value}")
    print(f"  Segment widget now offers and selects: {segment.model.value!r}")


def click_breakdown(viewer, widget, layer, repeats: int) -> None:
    """Where the click -> labels time goes, each step timed alone in this process (medians):
    the model call the job makes (``Segmenter.segment``), drawing a labels layer of the result
    (added once, then its data replaced, as a repeated click does), and napari's share of the
    click (worker start, layer, progress bar, events) as the difference. (Adding and
    removing a probe layer in a loop crashed Mesa's software GL under xvfb, so the probe layer
    stays.)"""
    from qtpy.QtWidgets import QApplication

    click_s = [click_to_layer(viewer, widget, layer) for _ in range(repeats)]
    segmenter = widget.slot.loaded.segmenter
    data = np.asarray(layer.data)
    model_s, results = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        binary, _ = segmenter.segment(data)
        model_s.append(time.perf_counter() - start)
        results.append(binary.astype(np.uint8))
    start = time.perf_counter()
    probe = viewer.add_labels(results[0], name="breakdown probe")
    QApplication.processEvents()
    add_s = time.perf_counter() - start
    draw_s = []
    for labels in results:
        start = time.perf_counter()
        probe.data = labels.copy()
        QApplication.processEvents()
        draw_s.append(time.perf_counter() - start)
    model, draw, click = (statistics.median(t) for t in (model_s, draw_s, click_s))
    ran = segmenter.graph_backend or "eager"
    print(f"  click -> labels, step by step (median of {repeats}, backend {ran}):")
    print(f"    model call (Segmenter.segment, resize in and out, threshold): {model:.3f} s")
    print(f"    labels layer: first add + draw {add_s:.3f} s, data replaced + draw {draw:.3f} s")
    print(f"    napari's share of the click (click minus model call): {click - model:+.3f} s")
    print(f"    whole click: {click:.3f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="busi")
    parser.add_argument("--image", help="image file (default: a synthetic 564x472 image)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--finetune-data", help="dataset folder for the fine-tune dock timing")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--no-startup", action="store_true", help="skip the start-up timing (6 processes)"
    )
    args = parser.parse_args()

    if not args.no_startup:
        enabled, disabled = startup_seconds("enabled"), startup_seconds("disabled")
        print("napari start-up (import + viewer shown), median of 3 fresh processes:")
        print(
            f"  plugin enabled {enabled:.2f} s, plugin disabled {disabled:.2f} s "
            f"(difference {enabled - disabled:+.2f} s)"
        )

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    if args.image:
        from wavegms.data.images import read_image

        data = read_image(args.image)
    else:
        data = (np.random.default_rng(0).random((472, 564)) * 255).astype(np.uint8)
    layer = viewer.add_image(data, name="scan")
    QApplication.processEvents()
    start = time.perf_counter()
    _, widget = viewer.window.add_plugin_dock_widget("napari-wavegms", "Segment")
    QApplication.processEvents()
    print(f"open the Segment dock: {time.perf_counter() - start:.2f} s")
    widget.model.value = args.model
    widget.device.value = "cpu"
    first = click_to_layer(viewer, widget, layer)
    again = [click_to_layer(viewer, widget, layer) for _ in range(args.repeats)]
    same = [click_to_layer(viewer, widget, layer, False) for _ in range(args.repeats)]
    print(f"Segment {data.shape[1]}x{data.shape[0]} (model {args.model}, cpu):")
    print(f"  first click right after the dock opened (model load included): {first:.2f} s")
    print(
        f"  model loaded, new mask layer, median of {args.repeats}: "
        f"{statistics.median(again):.3f} s (min {min(again):.3f} s)"
    )
    print(
        f"  model loaded, same image again (layer data replaced), median of {args.repeats}: "
        f"{statistics.median(same):.3f} s (min {min(same):.3f} s)"
    )
    click_breakdown(viewer, widget, layer, args.repeats)
    if args.finetune_data:
        dock_finetune(viewer, widget, args.finetune_data, args.model, args.pairs, args.epochs)
    viewer.close()


if __name__ == "__main__":
    main()
