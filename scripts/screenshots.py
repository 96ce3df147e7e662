"""Render screenshots of the napari plugin into docs/screenshots/.

Runs the real napari window, so it needs a display; on a headless machine use a virtual one:

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py --model busi
    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py --random-model

With ``--four-docks``: all four docks open at 1280x800 (Segment above, the others tabified
below it), a shot per raised tab (``four_docks_1280x800_<dock>.png``), and whether each
primary button (Segment, Fine-tune, Accept, the folder's Segment) is in sight unscrolled.
Otherwise, at 1280x800 and 1600x1000 it writes ``docks_<size>.png`` (Segment and Fine-tune docked
together: a Segment result on a BUSI test image and fine-tuning mid-run, with its progress,
time left and plot) and ``batch_<size>.png`` (the batch panel docked, mid-run), and prints
the window and canvas sizes of each, flagging a broken layout (canvas under half the window's
width, window grown past its size). Everything the run collects or trains
goes to a temporary user folder (``WAVEGMS_HOME``), never to the user's own models or
settings. BUSI is looked for in ``--data`` (default ``$WAVEGMS_DATA/busi`` or
``<repo>/../shared/data/busi``); without it the plugin's synthetic sample image is used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or path (default: the default model)")
    parser.add_argument(
        "--random-model", action="store_true", help="use a random-weight 64x64 model"
    )
    parser.add_argument("--data", type=Path, help="BUSI folder (images/, masks/, split.json)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--pairs", type=int, default=6, help="pairs for the fine-tune shot")
    parser.add_argument("--shot-after", type=int, default=1, help="epochs before the shot")
    parser.add_argument("--batch-images", type=int, default=24, help="images in the batch run")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per wait")
    parser.add_argument(
        "--four-docks", action="store_true", help="only the four docks at 1280x800 (issue 25)"
    )
    return parser.parse_args(argv)


def model_files(args) -> tuple[str, list[Path]]:
    """(name, [weights, config]) of the model to show, resolved in the user's own folders."""
    if args.random_model:
        return "random", []
    from wavegms.store.catalogue import default_model, model_paths, resolve_model

    name = args.model or default_model()
    if not name:
        sys.exit("no model installed: pass --model PATH or --random-model")
    weights = resolve_model(name)
    return weights.stem, list(model_paths(weights))


def install_model(name: str, files: list[Path]) -> None:
    from wavegms.store.paths import user_models_dir

    target = user_models_dir()
    target.mkdir(parents=True, exist_ok=True)
    if not files:  # a random-weight model, valid but untrained
        import torch

        from wavegms.net.model import ModelConfig, WaveGMS
        from wavegms.store.model_files import save_model

        torch.manual_seed(0)
        meta = {"note": "random weights, for screenshots only"}
        save_model(WaveGMS(ModelConfig(image_size=64)), target / name, metadata=meta)
        return
    for source in files:
        shutil.copyfile(source, target / f"{name}{source.suffix}")


def pairs(root: Path, names: list[str]) -> list[tuple[Path, Path]]:
    return [(root / "images" / f"{n}.png", root / "masks" / f"{n}.png") for n in names]


def dataset(args) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(test pairs, train pairs) as (image, mask) paths; the sample image if no BUSI."""
    default = Path(os.environ.get("WAVEGMS_DATA", REPO.parent / "shared" / "data")) / "busi"
    root = args.data or default
    if (root / "split.json").is_file():
        split = json.loads((root / "split.json").read_text())
        test = pairs(root, split["test"][: args.batch_images])
        return test, pairs(root, split["train"][: args.pairs])
    sample = REPO / "sample_data"
    pair = (sample / "images" / "ultrasound.png", sample / "masks" / "ultrasound.png")
    return [pair], [pair] * max(2, args.pairs)


def wait(app, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the plugin did not finish in time")
        app.processEvents()
        time.sleep(0.02)


def settle(app, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


SIZES = ((1280, 800), (1600, 1000))  # the smallest supported window, and a common one


def new_viewer(napari, title: str, size: tuple[int, int]):
    viewer = napari.Viewer(show=True, title=title)
    viewer.window._qt_window.resize(*size)
    return viewer


def layout_check(viewer, size: tuple[int, int], app) -> str:
    """The window and canvas sizes after the shot; raises if the layout broke (the canvas
    under half the window's width, or the window grown past the screen size asked for)."""
    settle(app)
    window = viewer.window._qt_window
    canvas = viewer.window._qt_viewer.canvas.native
    line = (
        f"window {window.width()}x{window.height()} (asked {size[0]}x{size[1]}), canvas "
        f"{canvas.width()}x{canvas.height()}"
    )
    broken = canvas.width() < window.width() / 2 or window.width() > size[0] + 2
    if broken or window.height() > size[1] + 2:
        print(f"LAYOUT BROKEN: {line}")  # the shot is still taken, to see why
    return line


def shot_docks(napari, app, args, model: str, test_pairs, train_pairs, size) -> str:
    """Segment and Fine-tune docked together, the Segment result shown, fine-tuning running."""
    from wavegms.data.images import read_image
    from wavegms.data.masks import read_mask

    viewer = new_viewer(napari, "Wave-GMS: Segment + Fine-tune", size)
    _, segment = viewer.window.add_plugin_dock_widget("napari-wavegms", "Segment")
    _, widget = viewer.window.add_plugin_dock_widget("napari-wavegms", "Fine-tune")
    widget.project.value = f"screenshots-{size[0]}"
    widget.project.native.editingFinished.emit()
    for image_path, mask_path in train_pairs:
        image = viewer.add_image(read_image(image_path), name=f"{image_path.stem}")
        labels = viewer.add_labels(read_mask(mask_path).astype("uint8"), name="lesion")
        widget.image.value, widget.labels_layer.value = image, labels
        widget.add_button.native.click()
        image.visible = labels.visible = False
    image_path, _ = test_pairs[0]
    shown = viewer.add_image(read_image(image_path), name=image_path.stem)
    segment.model.value = model
    segment.image.value = shown
    segment.run_button.native.click()
    wait(app, lambda: not segment.busy, args.timeout)
    viewer.layers[f"{image_path.stem} mask"].contour = 2
    viewer.reset_view()
    widget.base_model.value = model
    widget.epochs.value = args.shot_after + 20
    widget.batch_size.value = 2
    widget.run_button.native.click()
    done = args.shot_after
    wait(
        app, lambda: len(widget.plot.epochs) >= done and "left" in widget.status.value, args.timeout
    )
    settle(app)
    name = f"docks_{size[0]}x{size[1]}.png"
    line = layout_check(viewer, size, app)
    viewer.screenshot(str(args.out / name), canvas_only=False)
    widget.cancel_button.native.click()
    wait(app, lambda: not widget.busy, args.timeout)
    viewer.close()
    return f"{name}: {line}"


def shot_batch(napari, app, args, model: str, test_pairs, work: Path, size) -> str:
    """The batch panel docked beside the canvas, mid-run (then cancelled)."""
    from wavegms.napari.batch import open_batch_dialog

    folder = work / f"batch-{size[0]}"
    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i, (image_path, mask_path) in enumerate(test_pairs):
        shutil.copyfile(image_path, images / f"{image_path.stem}_{i}.png")
        shutil.copyfile(mask_path, masks / f"{image_path.stem}_{i}.png")
    viewer = new_viewer(napari, "Wave-GMS: batch", size)
    from wavegms.data.images import read_image

    viewer.add_image(read_image(test_pairs[0][0]), name=test_pairs[0][0].stem)
    panel = open_batch_dialog(viewer)
    panel.input_dir.value, panel.gt_dir.value = images, masks
    panel.output_dir.value = folder / "out"
    panel.model.value = model
    panel.run_button.native.click()
    third = max(2, len(test_pairs) // 3)

    def part_way() -> bool:
        last = panel.progress.last
        return not panel.busy or (
            last is not None and last.stage == "evaluate" and last.done >= third
        )

    wait(app, part_way, args.timeout)
    settle(app, 0.2)
    name = f"batch_{size[0]}x{size[1]}.png"
    line = layout_check(viewer, size, app)
    viewer.screenshot(str(args.out / name), canvas_only=False)
    panel.cancel_button.native.click()
    wait(app, lambda: not panel.busy, args.timeout)
    line += f"; then: {panel.status.value}"
    viewer.close()
    return f"{name}: {line}"


#: Each dock's primary button, which must be in sight without scrolling (issue 25).
PRIMARY = {"Segment": "run_button", "Fine-tune": "run_button", "Review results": "accept_button",
           "Segment a folder": "run_button"}  # fmt: skip


def in_sight(button) -> bool:
    """Whether the whole button is drawn: not scrolled away, clipped or hidden."""
    native = button.native
    return native.isVisible() and native.visibleRegion().boundingRect().size() == native.size()


def shot_four_docks(napari, app, args, model: str, size) -> list[str]:
    """All four docks at once: Segment above, the other three tabified below it; a shot with
    each tab raised, and whether each primary button is in sight."""
    viewer = new_viewer(napari, "Wave-GMS: four docks", size)
    viewer.open_sample("napari-wavegms", "ultrasound")
    docks = {}
    for i, name in enumerate(PRIMARY):
        docks[name] = viewer.window.add_plugin_dock_widget("napari-wavegms", name, tabify=i > 1)
    docks["Segment"][1].model.value = model
    settle(app, 2.0)  # napari raises the last dock added once the event loop runs
    lines = []
    for name in list(PRIMARY)[1:]:
        docks[name][0].show()
        docks[name][0].raise_()
        settle(app, 1.0)
        seen = {n: in_sight(getattr(w, PRIMARY[n])) for n, (_, w) in docks.items()}
        shot = f"four_docks_{size[0]}x{size[1]}_{name.replace(' ', '_').lower()}.png"
        viewer.screenshot(str(args.out / shot), canvas_only=False)
        line = layout_check(viewer, size, app)
        shown = [n for n in ("Segment", name) if seen[n]]
        lines.append(f"{shot}: {line}; primary buttons in sight: {', '.join(shown) or 'none'}")
        if len(shown) < 2:
            lines[-1] += "  <- A PRIMARY BUTTON IS OUT OF SIGHT"
    for _, widget in docks.values():
        widget.shutdown() if hasattr(widget, "shutdown") else None
    viewer.close()
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    name, files = model_files(args)
    test_pairs, train_pairs = dataset(args)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wavegms-screens-") as tmp:
        os.environ["WAVEGMS_HOME"] = str(Path(tmp) / "home")  # keep the user's folders clean
        install_model(name, files)
        import napari
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance() or napari.qt.get_qapp()
        lines = shot_four_docks(napari, app, args, name, SIZES[0]) if args.four_docks else []
        for size in SIZES if not args.four_docks else ():
            lines.append(shot_docks(napari, app, args, name, test_pairs, train_pairs, size))
            lines.append(shot_batch(napari, app, args, name, test_pairs, Path(tmp), size))
    for line in lines:
        print(args.out / line)


if __name__ == "__main__":
    main()
