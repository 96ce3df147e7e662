"""Cancel/Stop latency of the napari forms: Segment, the batch panel and Fine-tune (target 1 s).

Drives the real widgets in a napari window (needs a display; headless:
``xvfb-run -a python scripts/bench_cancel.py``), each job started on BUSI data with the
shipped model, Cancel/Stop pressed mid-run, and prints per form:

- ``form idle``: from the press to the form ready again and saying what happened;
- ``work ended``: to the work itself having stopped (the worker thread off the CPU, the
  training process ended), beside the time one unit of that work takes (a plane, an image, a
  batch), which is what a cancellation checked between units can cost at most (Fine-tune:
  Stop is pressed three times, at different points of a step, and the worst is shown);
- what the form reported, and for the batch panel whether the count matches the files on disk.

Everything goes to a temporary user folder (``WAVEGMS_HOME``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from napari_sandbox import busi_folder, sandboxed_viewer

TARGET_S = 1.0


def wait(app, condition, timeout: float = 900) -> float:
    """Process events until ``condition()``; the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the form did not get there in time")
        app.processEvents()
        time.sleep(0.005)
    return time.monotonic() - start


def record(widget, stage: str, times: list[float]) -> None:
    """Append the time of each ``stage`` report the form shows (either backend)."""
    show = widget.progress.show

    def recording(report) -> None:
        if report.stage == stage:
            times.append(time.monotonic())
        show(report)

    widget.progress.show = recording


def row(form: str, idle: float, ended: float, unit: float, unit_name: str, said: str) -> str:
    ok = "ok" if idle <= TARGET_S else "OVER"
    return (
        f"{form:<10} form idle {idle:6.2f} s ({ok}, target {TARGET_S:g} s) | work ended "
        f"{ended:6.2f} s | one {unit_name} {unit:5.2f} s | said: {said}"
    )


def bench_segment(app, viewer, model: str, root: Path, names: list[str]) -> str:
    import numpy as np

    from wavegms.data.images import read_image
    from wavegms.napari.segment import SegmentWidget

    planes = [read_image(root / "images" / f"{n}.png") for n in names]
    size = min(p.shape[0] for p in planes), min(p.shape[1] for p in planes)
    stack = np.stack([p[: size[0], : size[1]] if p.ndim == 2 else p[: size[0], : size[1], 0]
                      for p in planes])  # fmt: skip
    widget = SegmentWidget(viewer)
    widget.model.value = model
    layer = viewer.add_image(stack, name="stack")
    widget.image.value = layer
    wait(app, lambda: widget.loaded is not None)  # warmed up, as after the form has opened
    reports: list[float] = []
    record(widget, "segment", reports)
    widget.run_button.native.click()
    wait(app, lambda: widget.progress.last is not None and widget.progress.last.stage == "segment")
    pressed = time.monotonic()
    widget.cancel_button.native.click()
    idle = wait(app, lambda: not widget.busy)
    said = widget.status.value
    wait(app, lambda: not widget.slot._lock.locked())
    ended = time.monotonic() - pressed
    unit = float(np.median(np.diff(reports))) if len(reports) > 2 else float("nan")
    return row("Segment", idle, ended, unit, "plane batch", said)


def bench_batch(app, viewer, model: str, root: Path, names: list[str], work: Path) -> str:
    from wavegms.napari.batch import BatchWidget

    images, out = work / "batch" / "images", work / "batch" / "out"
    images.mkdir(parents=True)
    for n in names:
        shutil.copyfile(root / "images" / f"{n}.png", images / f"{n}.png")
    widget = BatchWidget(viewer)
    widget.input_dir.value, widget.output_dir.value = images, out
    widget.model.value = model
    times: list[float] = []
    record(widget, "segment", times)
    widget.run_button.native.click()
    wait(app, lambda: widget.progress.last is not None and widget.progress.last.done >= 4)
    pressed = time.monotonic()
    widget.cancel_button.native.click()
    idle = wait(app, lambda: not widget.busy)
    ended = time.monotonic() - pressed
    on_disk = len(list((out / "masks").glob("*.png")))
    said = f"{widget.status.value} [masks on disk: {on_disk}]"
    unit = (times[-1] - times[1]) / max(1, len(times) - 2)
    return row("batch", idle, ended, unit, "image", said)


def bench_finetune(app, viewer, model: str, root: Path, names: list[str]) -> str:
    """Stop pressed at three points of a training step (a tenth, four tenths and seven tenths
    of the time from one batch report to the next, validation included), a new run each."""
    import statistics

    from wavegms.data.images import read_image
    from wavegms.data.masks import read_mask
    from wavegms.napari.finetune import FinetuneWidget

    widget = FinetuneWidget(viewer)
    for n in names:
        image = viewer.add_image(read_image(root / "images" / f"{n}.png"), name=n)
        labels = viewer.add_labels(read_mask(root / "masks" / f"{n}.png").astype("uint8"))
        widget.image.value, widget.labels_layer.value = image, labels
        widget.add_button.native.click()
    widget.base_model.value = model
    idles, ends, units, said = [], [], [], ""
    for fraction in (0.1, 0.4, 0.7):
        widget.epochs.value, widget.batch_size.value = 50, 2
        batches: list[float] = []
        record(widget, "batch", batches)
        widget.run_button.native.click()
        wait(app, lambda: len(widget.plot.epochs) >= 1 and len(batches) >= 2)  # noqa: B023
        unit = batches[-1] - batches[-2]
        process = widget.job.process
        wait(app, lambda: time.monotonic() >= batches[-1] + fraction * unit)  # noqa: B023
        pressed = time.monotonic()
        widget.cancel_button.native.click()
        idles.append(wait(app, lambda: not widget.busy))
        process.wait(60)
        ends.append(time.monotonic() - pressed)
        units.append(unit)
        said = widget.status.value
        widget.progress.show = type(widget.progress).show.__get__(widget.progress)  # unrecord
    widget.shutdown()
    each = ", ".join(f"{t:.2f}" for t in idles)
    return row(
        "Fine-tune", max(idles), max(ends), statistics.median(units), "batch (+ epoch end)",
        f"{said} [each Stop, form idle: {each} s; the worst of three is shown]",
    )  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="busi", help="model name or path")
    parser.add_argument("--data", type=Path, help="BUSI folder (default $WAVEGMS_DATA/busi)")
    args = parser.parse_args(argv)
    root, split = busi_folder(args.data)
    with sandboxed_viewer(args.model, "bench", "wavegms-cancel-") as (app, viewer, tmp):
        lines = [
            bench_segment(app, viewer, "bench", root, split["test"][:24]),
            bench_batch(app, viewer, "bench", root, split["test"][:24], tmp),
            bench_finetune(app, viewer, "bench", root, split["train"][:5]),
        ]
    print("\n".join(lines))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
