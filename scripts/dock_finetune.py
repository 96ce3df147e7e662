"""A default fine-tune from the napari dock, as a user makes it: 5 BUSI training pairs added
with "Add to training set", base model chosen, every other field left as it is, Fine-tune.

Prints the wall time from the press to the result, the dock's status line (the epoch kept
and the validation images it was chosen on) and what the plot marks. Needs a display
(headless: ``xvfb-run -a python scripts/dock_finetune.py``). Everything goes to a temporary
user folder (``WAVEGMS_HOME``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from napari_sandbox import busi_folder, sandboxed_viewer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="busi", help="base model name or path")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--data", type=Path, help="BUSI folder (default $WAVEGMS_DATA/busi)")
    args = parser.parse_args(argv)
    root, split = busi_folder(args.data)
    names = split["train"][: args.pairs]
    with sandboxed_viewer(args.model, "base", "wavegms-dock-ft-") as (app, viewer, _):
        from wavegms.data.images import read_image
        from wavegms.data.masks import read_mask
        from wavegms.napari.finetune import FinetuneWidget

        widget = FinetuneWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Fine-tune")
        for n in names:
            image = viewer.add_image(read_image(root / "images" / f"{n}.png"), name=n)
            labels = viewer.add_labels(read_mask(root / "masks" / f"{n}.png").astype("uint8"))
            widget.image.value, widget.labels_layer.value = image, labels
            widget.add_button.native.click()
        widget.base_model.value = "base"
        request = widget.form_request()
        started = time.monotonic()
        widget.run_button.native.click()
        estimates, seen = [], -1  # what the dock says as each epoch ends
        while widget.busy or started + 1 > time.monotonic():
            app.processEvents()
            epochs = len(widget.plot.epochs)
            if epochs != seen and "left" in widget.status.value:
                seen = epochs
                estimates.append((round(time.monotonic() - started), widget.status.value))
            time.sleep(0.01)
        wall = time.monotonic() - started
        r = request
        print(f"request: epochs {r.epochs}, batch {r.batch_size}, lr {r.lr}, val_fraction "
              f"{r.val_fraction}, augment {r.augment}, fast_cpu {r.fast_cpu}, "
              f"name {r.new_name!r}, device {r.device}")  # fmt: skip
        print(f"pairs: {len(names)} BUSI training pairs")
        for at, text in estimates:
            print(f"at {at} s the dock said: {text}")
        print(f"wall time: {wall:.1f} s (press to result)")
        print(f"status: {widget.status.value}")
        print(f"plot marks epoch {widget.plot.chosen} on {widget.plot.val_images} val images")


if __name__ == "__main__":
    main()
