"""Render screenshots of the "Review results" dock into docs/screenshots/ (the pattern of
``scripts/screenshots.py``: the real napari window, a virtual display on a headless machine):

    xvfb-run -a python scripts/review_screenshots.py --model busi

Segments the first ``--images`` BUSI test images with ground truth (so the table shows DSC,
IoU and HD95), opens them in the dock and writes ``review_table.png`` (the table, most
uncertain first, the first image shown as a labels layer ready to paint) and
``review_loop.png`` (mid-review: two images accepted, one skipped, the soft mask shown and
"Fine-tune now" running). Everything goes to a temporary user folder (``WAVEGMS_HOME``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import REPO, install_model, model_files, new_viewer, settle, wait


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or path (default: the default model)")
    parser.add_argument("--random-model", action="store_true", help="random-weight model")
    parser.add_argument("--data", type=Path, help="BUSI folder (images/, masks/, split.json)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--images", type=int, default=12, help="test images to review")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per wait")
    return parser.parse_args(argv)


def segment(model: str, root: Path, n: int, work: Path) -> tuple[Path, Path, Path]:
    """The first ``n`` test pairs copied to work/ and segmented there, scored."""
    import shutil

    from wavegms.data.pairs import dataset_pairs
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import pair_items
    from wavegms.inference.segmenter import Segmenter

    images, masks, out = work / "images", work / "masks", work / "out"
    images.mkdir(parents=True)
    masks.mkdir()
    for pair in dataset_pairs(root, split="test")[:n]:
        shutil.copyfile(pair.image, images / pair.image.name)
        shutil.copyfile(pair.mask, masks / pair.mask.name)
    from wavegms.data.pairs import find_pairs

    run_folder(Segmenter.load(model, device="cpu"), pair_items(find_pairs(images, masks)), out)
    return images, masks, out


def main(argv=None) -> None:
    args = parse_args(argv)
    name, files = model_files(args)
    root = args.data or Path(os.environ.get("WAVEGMS_DATA", REPO.parent / "shared" / "data"))
    root = root / "busi" if (root / "busi").is_dir() else root
    if not (root / "split.json").is_file():
        sys.exit(f"no BUSI folder at {root}: pass --data")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wavegms-review-shots-") as tmp:
        os.environ["WAVEGMS_HOME"] = str(Path(tmp) / "home")  # keep the user's folders clean
        install_model(name, files)
        images, masks, out = segment(name, root, args.images, Path(tmp))
        import napari
        from qtpy.QtWidgets import QApplication

        from wavegms.data.masks import read_mask
        from wavegms.napari.review_jobs import MASK, SOFT
        from wavegms.napari.settings import FinetuneSettings, load_settings, save_settings

        app = QApplication.instance() or napari.qt.get_qapp()
        viewer = new_viewer(napari, "Wave-GMS: review results")
        _, widget = viewer.window.add_plugin_dock_widget("napari-wavegms", "Review results")
        widget.out_dir.value, widget.images_dir.value, widget.gt_dir.value = out, images, masks
        widget.model.value = name
        widget.open_button.native.click()
        first = widget.names()[0]
        wait(app, lambda: widget.current == first, args.timeout)
        viewer.reset_view()
        settle(app, 1.0)
        viewer.screenshot(str(args.out / "review_table.png"), canvas_only=False)

        for step in ("accept", "skip", "accept"):  # the ground truth stands in for a correction
            shown = widget.current
            if step == "accept":
                viewer.layers[MASK].data = read_mask(masks / f"{shown}.png").astype("uint8")
            getattr(widget, f"{step}_button").native.click()
            wait(app, lambda shown=shown: widget.current not in (None, shown), args.timeout)
        widget.soft_button.native.click()
        wait(app, lambda: SOFT in viewer.layers, args.timeout)
        viewer.layers[MASK].contour = 2
        settings = load_settings(FinetuneSettings)
        settings.request.epochs = 2
        save_settings(settings)
        widget.run_button.native.click()
        wait(app, lambda: "fine-tuning" in widget.status.value or not widget.busy, 60)
        settle(app, 3.0)
        viewer.screenshot(str(args.out / "review_loop.png"), canvas_only=False)
        widget.shutdown()
        state = json.loads((out / "review.json").read_text())
        print(f"accepted {state['accepted']}, skipped {state['skipped']}")
        viewer.close()
    for png in ("review_table.png", "review_loop.png"):
        print(args.out / png)


if __name__ == "__main__":
    main()
