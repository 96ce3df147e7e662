"""Replay the correction loop in a real napari window on a few BUSI images and print the
mean DSC of the masks on disk against the true masks after every step (issue 25).

The part ``replay`` of the correction study (``scripts/correction_study.py``; its helpers are
reused): the "Segment a folder" panel segments ``--images`` BUSI test images with ``busi``;
the "Review results" dock shows them most uncertain first; a simulated user paints the true
mask over each shown mask and clicks Accept (``--accept`` of them); "Fine-tune now" trains on
the accepted pairs less a held-out share, and the dock adopts the new model only when it is
better on the held-out pairs (else the user, here, keeps the current one: no step may lower
the DSC unless the user chooses so); the images not yet reviewed are then segmented again.
``--rounds`` repeats accept and fine-tune. Everything goes under ``--out`` (its own
``WAVEGMS_HOME``); needs a display (``xvfb-run -a``):

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/correction_replay.py --out /tmp/replay
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from correction_study import _mean

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=None, help="default: $WAVEGMS_DATA/busi")
    parser.add_argument("--model", default="busi")
    parser.add_argument("--images", type=int, default=16, help="BUSI test images to review")
    parser.add_argument("--accept", type=int, default=8, help="images accepted per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--adopt", action="store_true",
        help="take a model the dock recommends (then Undo batch); default: keep the current",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, help="default: the Fine-tune dock's")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per wait")
    return parser.parse_args(argv)


def prepare(args) -> tuple[Path, Path]:
    """The first ``--images`` BUSI test images and their masks, copied under ``--out``."""
    root = args.data or Path(os.environ.get("WAVEGMS_DATA", REPO.parent / "shared/data")) / "busi"
    names = json.loads((root / "split.json").read_text())["test"][: args.images]
    images, truth = args.out / "images", args.out / "truth"
    for folder in (images, truth):
        folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(root / "images" / f"{name}.png", images / f"{name}.png")
        shutil.copyfile(root / "masks" / f"{name}.png", truth / f"{name}.png")
    return images, truth


def mean_dsc(out: Path, truth: Path) -> float:
    """The mean DSC (%) of ``OUT/masks`` against the true masks (what is on disk now)."""
    from wavegms.data.masks import read_mask
    from wavegms.scoring.metrics import dice

    rows = [
        {"dsc": 100.0 * dice(read_mask(mask), read_mask(truth / mask.name))}
        for mask in sorted((out / "masks").glob("*.png"))
    ]
    return _mean(rows, "dsc")


class Replay:
    def __init__(self, app, args, truth: Path, out: Path) -> None:
        self.app, self.args, self.truth, self.out = app, args, truth, out
        self.step = 0
        self.last = None

    def wait(self, condition, what: str, dock=None) -> None:
        deadline = time.monotonic() + self.args.timeout
        while not condition():
            if time.monotonic() > deadline:
                state = "" if dock is None else (
                    f" (the dock: phase {dock.phase!r}, busy {dock.busy}, "
                    f"status {dock.status.value!r})"
                )  # fmt: skip
                raise TimeoutError(f"timed out waiting for {what}{state}")
            self.app.processEvents()
            time.sleep(0.02)

    def report(self, what: str, chose: bool = False) -> float:
        value = mean_dsc(self.out, self.truth)
        fell = self.last is not None and value < self.last - 1e-9
        flag = " (LOWER" + (", the user's choice)" if chose else ", NOT CHOSEN)") if fell else ""
        print(f"step {self.step:2d}  mean DSC {value:6.2f}%  {what}{flag}", flush=True)
        self.step, self.last = self.step + 1, value
        return value


def segment_folder(replay: Replay, viewer, images: Path, truth: Path) -> None:
    _, panel = viewer.window.add_plugin_dock_widget("napari-wavegms", "Segment a folder")
    panel.input_dir.value, panel.output_dir.value = images, replay.out
    panel.gt_dir.value, panel.model.value = truth, replay.args.model
    panel.run_button.native.click()
    replay.wait(lambda: not panel.busy, "the folder run")
    replay.report(f"segmented {len(list(images.glob('*.png')))} images with {replay.args.model}")


def accept_some(replay: Replay, review, viewer, n: int) -> None:
    from wavegms.data.masks import read_mask
    from wavegms.napari.review_jobs import MASK

    for _ in range(n):
        replay.wait(lambda: review.current is not None and MASK in viewer.layers, "an image")
        shown = review.current
        if shown in review.session.state.accepted:
            return  # every image is reviewed
        true = read_mask(replay.truth / f"{shown}.png").astype("uint8")
        viewer.layers[MASK].data = true  # the user's correction: the lesion as it is
        review.accept_button.native.click()
        replay.wait(lambda s=shown: s in review.session.state.accepted, "the Accept")
        replay.wait(lambda s=shown: review.current != s or review.session.next() is None, "next")
        replay.report(f"accepted {shown} (corrected)")


def finetune_round(replay: Replay, review) -> None:
    review.run_button.native.click()
    replay.wait(lambda: (review.phase != "finetuning" and not review.busy) or
                review.adoption.asking, "the fine-tune and comparison", review)  # fmt: skip
    replay.wait(lambda: review.phase == "" or review.adoption.asking, "its end", review)
    if not review.adoption.asking:
        print(f"        {review.status.value}", flush=True)
        return
    print(f"        the dock asks: {review.adoption.text.value}", flush=True)
    if replay.args.adopt and "' is better:" in review.adoption.text.value:
        review.adoption.adopt_button.native.click()  # the user takes the recommendation
        replay.wait(lambda: not review.busy and review.phase == "", "the re-segment")
        replay.report(f"the user adopted {review.session.state.model}; the rest segmented again")
        review.undo_button.native.click()  # and, if it lowered the masks, undoes it
        replay.wait(lambda: not review.busy, "the undo")
        replay.report("the user undid the batch (Undo batch)")
        return
    review.adoption.decline_button.native.click()  # the user keeps the current model
    replay.wait(lambda: not review.session.state.candidate, "the decline")
    replay.report("the user kept the current model")


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["WAVEGMS_HOME"] = str(args.out / "home")  # the user's own folders stay clean
    images, truth = prepare(args)
    out = args.out / "results"
    if out.exists():
        shutil.rmtree(out)
    import dataclasses

    import napari
    from qtpy.QtWidgets import QApplication

    from wavegms.napari.settings import FinetuneSettings, load_settings, save_settings

    if args.epochs:
        settings = load_settings(FinetuneSettings)
        settings.request = dataclasses.replace(settings.request, epochs=args.epochs)
        save_settings(settings)
    viewer = napari.Viewer(show=True, title="Wave-GMS correction replay")
    viewer.window._qt_window.resize(1280, 800)
    app = QApplication.instance()
    replay = Replay(app, args, truth, out)
    segment_folder(replay, viewer, images, truth)
    _, review = viewer.window.add_plugin_dock_widget("napari-wavegms", "Review results")
    review.out_dir.value, review.images_dir.value, review.gt_dir.value = out, images, truth
    review.model.value = args.model
    review.open_button.native.click()
    for _ in range(args.rounds):
        accept_some(replay, review, viewer, args.accept)
        finetune_round(replay, review)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
