"""Render screenshots of the napari plugin into docs/screenshots/.

Runs the real napari window, so it needs a display; on a headless machine use a virtual one:

    xvfb-run -a python scripts/screenshots.py --model busi
    xvfb-run -a python scripts/screenshots.py --model /path/to/tiny.safetensors
    xvfb-run -a python scripts/screenshots.py --random-model     # no trained model yet

Writes ``segment.png`` (the Segment widget's result on a BUSI test image), ``finetune.png``
(the fine-tune dock mid-training with its plot) and ``batch.png`` (the batch panel after a
scored run). Everything the run collects or trains goes to a temporary user folder
(``WAVEGMS_HOME``), never to the user's own models or settings. BUSI is looked for in
``--data`` (default ``$WAVEGMS_DATA/busi`` or ``<repo>/../shared/data/busi``); without it
the plugin's synthetic sample image is used.
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
    parser.add_argument("--shot-after", type=int, default=2, help="epochs before the shot")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per wait")
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
        return pairs(root, split["test"][:4]), pairs(root, split["train"][: args.pairs])
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


def new_viewer(napari, title: str):
    viewer = napari.Viewer(show=True, title=title)
    viewer.window.resize(1500, 950)
    return viewer


def shot_segment(napari, app, args, model: str, test_pairs) -> None:
    from wavegms.data.images import read_image, read_mask

    viewer = new_viewer(napari, "Wave-GMS: Segment")
    image_path, mask_path = test_pairs[0]
    viewer.add_image(read_image(image_path), name=image_path.stem)
    truth = viewer.add_labels(read_mask(mask_path).astype("uint8"), name="ground truth")
    truth.contour, truth.visible = 2, False
    _, widget = viewer.window.add_plugin_dock_widget("napari-wavegms", "Segment")
    widget.model.value = model
    widget.soft_mask.value = True
    widget.image.value = viewer.layers[image_path.stem]
    widget.run_button.native.click()
    wait(app, lambda: not widget.busy, args.timeout)
    viewer.layers[f"{image_path.stem} soft mask"].visible = False
    viewer.layers[f"{image_path.stem} mask"].contour = 2
    truth.visible = True
    truth.colormap = napari.utils.colormaps.label_colormap(seed=0.9)
    settle(app)
    viewer.screenshot(str(args.out / "segment.png"), canvas_only=False)
    viewer.close()


def shot_finetune(napari, app, args, model: str, train_pairs) -> None:
    from wavegms.data.images import read_image, read_mask

    viewer = new_viewer(napari, "Wave-GMS: Fine-tune")
    _, widget = viewer.window.add_plugin_dock_widget("napari-wavegms", "Fine-tune")
    widget.project.value = "screenshots"
    for i, (image_path, mask_path) in enumerate(train_pairs):
        image = viewer.add_image(read_image(image_path), name=f"{image_path.stem}")
        mask = read_mask(mask_path).astype("uint8")
        labels = viewer.add_labels(mask, name=f"{image_path.stem} lesion")
        widget.image.value, widget.labels_layer.value = image, labels
        widget.add_button.native.click()
        if i < len(train_pairs) - 1:
            image.visible = labels.visible = False
    viewer.reset_view()
    widget.base_model.value = model
    widget.epochs.value = args.shot_after + 20
    widget.batch_size.value = 2
    widget.new_model.value = f"{model}-finetuned"
    widget.train_button.native.click()
    wait(app, lambda: len(widget.plot.epochs) >= args.shot_after, args.timeout)
    settle(app)
    viewer.screenshot(str(args.out / "finetune.png"), canvas_only=False)
    widget.stop_button.native.click()
    wait(app, lambda: not widget.training, args.timeout)
    viewer.close()


def shot_batch(napari, app, args, model: str, test_pairs, work: Path) -> None:
    from wavegms.napari.batch import open_batch_dialog

    images, masks = work / "batch" / "images", work / "batch" / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i, (image_path, mask_path) in enumerate(test_pairs):
        name = f"{image_path.stem}_{i}" if len(set(test_pairs)) < len(test_pairs) else None
        shutil.copyfile(image_path, images / f"{name or image_path.stem}.png")
        shutil.copyfile(mask_path, masks / f"{name or image_path.stem}.png")
    (images / "notes.png").write_text("not an image: listed as skipped")
    (masks / "notes.png").write_text("not an image")
    viewer = new_viewer(napari, "Wave-GMS: batch")
    panel = open_batch_dialog(viewer)
    panel.input_dir.value, panel.gt_dir.value = images, masks
    panel.output_dir.value = work / "batch" / "out"
    panel.model.value = model
    panel.run_button.native.click()
    wait(app, lambda: not panel.busy, args.timeout)
    window = panel.native.parent()
    window.resize(560, 620)
    settle(app)
    window.grab().save(str(args.out / "batch.png"))
    viewer.close()


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
        shot_segment(napari, app, args, name, test_pairs)
        shot_finetune(napari, app, args, name, train_pairs)
        shot_batch(napari, app, args, name, test_pairs, Path(tmp))
    for png in ("segment.png", "finetune.png", "batch.png"):
        print(args.out / png)


if __name__ == "__main__":
    main()
