"""``wavegms segment``'s clinical options: box prompts (``--box``, ``--boxes``), the pixel
spacing (``--spacing``) and the output formats (``--format``), and the steps they add to a
segment run: checked before the model loads, the box run, ``lesions.csv`` and the masks in
the geometry of their DICOM or NIfTI sources."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from wavegms.core.errors import InputError, WaveGMSError


def _checked(parse):
    """An argparse ``type`` whose one-line InputError becomes argparse's usage error."""

    def convert(text: str):
        try:
            return parse(text)
        except InputError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = parse.__name__
    return convert


def parse_spacing(text: str) -> tuple[float, float]:
    """``"0.1"`` (square pixels) or ``"0.1,0.2"`` (row, column) in mm."""
    from wavegms.scoring.lesions import check_spacing

    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"--spacing takes mm per pixel, ROW[,COL], not {text!r}") from None
    return check_spacing(values * 2 if len(values) == 1 else values)


def add_clinical_options(p: argparse.ArgumentParser) -> None:
    from wavegms.cli.options import Bounded
    from wavegms.inference.boxes import DEFAULT_KEEP, DEFAULT_MARGIN, KEEP, parse_box
    from wavegms.inference.source_geometry import FORMATS, parse_formats
    from wavegms.store.catalogue import NO_WHOLE

    p.add_argument(
        "--box", action="append", type=_checked(parse_box), metavar="X0,Y0,X1,Y1",
        help="segment inside this box (pixels; repeat for more lesions, label k per box); "
        "the same boxes for every image",
    )  # fmt: skip
    p.add_argument("--boxes", metavar="FILE", help="CSV of boxes: image,x0,y0,x1,y1 per row")
    p.add_argument(
        "--box-margin", type=Bounded(float, 0.0, 10.0), default=DEFAULT_MARGIN,
        help="context around each box, as a share of its size per side",
    )  # fmt: skip
    p.add_argument(
        "--whole-model", metavar="NAME",
        help="with boxes: the model whose whole-image soft mask each crop's is averaged with, "
        f"or {NO_WHOLE} for the crops alone (default: busi when neither --model nor this is "
        "given and busi-box segments the crops; none when --model is given)",
    )  # fmt: skip
    p.add_argument(
        "--box-keep", choices=KEEP, default=DEFAULT_KEEP,
        help="what is kept of each crop's mask: the largest part inside the box, all of it "
        "inside the box, the parts touching the box, or the whole crop",
    )  # fmt: skip
    p.add_argument(
        "--spacing", type=_checked(parse_spacing), metavar="MM[,MM]",
        help="mm per pixel (row,column) for images whose file gives none (DICOM and NIfTI "
        "files keep their own); lesions.csv and results.csv then give mm",
    )  # fmt: skip
    p.add_argument(
        "--format", type=_checked(parse_formats), default=",".join(FORMATS),
        help="outputs beside the PNG masks (always written): nifti (NIfTI masks of NIfTI "
        "inputs, source affine), dcm (DICOM SEG of DICOM inputs); e.g. png,nifti",
    )  # fmt: skip


@dataclass
class SegmentRequest:
    """A segment run's images and boxes, checked before the model loads."""

    items: list
    boxes: object = None  # list of boxes for all images, a dict by image name, or None


def prepare(args: argparse.Namespace, src: Path) -> SegmentRequest:
    """The images of the input folder, their spacing, the boxes; the clinical extra checked
    for DICOM and NIfTI inputs: all before the model loads."""
    from wavegms.inference.box_folder import boxes_by_item, read_boxes_file
    from wavegms.inference.folder_items import folder_items
    from wavegms.inference.source_geometry import require_extra

    items = folder_items(src)
    require_extra([item.image for item in items], args.format)
    if args.spacing is not None:
        items = [
            item if item.spacing else dataclasses.replace(item, spacing=args.spacing)
            for item in items
        ]
    if args.box and args.boxes:
        raise InputError("give boxes either with --box or with --boxes, not both")
    boxes = read_boxes_file(Path(args.boxes)) if args.boxes else args.box
    if boxes:
        if args.resume or getattr(args, "workers", None) or getattr(args, "scheduler", None):
            raise InputError("box prompts run in this process, without --resume or a cluster")
        boxes_by_item(items, boxes)  # names that are no image of the input: refused now
    elif args.whole_model is not None:
        raise InputError("--whole-model goes with box prompts (--box or --boxes)")
    return SegmentRequest(items, boxes)


def segment(request: SegmentRequest, segmenter, args: argparse.Namespace, whole=None):
    """The run itself: inside the boxes (each crop averaged with ``whole``'s soft mask of the
    whole image, where given), or the ordinary folder run of the whole images."""
    from wavegms.core.progress import TextProgressBar

    if request.boxes:
        from wavegms.inference.box_folder import run_box_folder

        return run_box_folder(
            segmenter, request.items, request.boxes, Path(args.output), whole=whole,
            margin=args.box_margin, keep=args.box_keep, overwrite=args.overwrite,
            progress=TextProgressBar(),
        )  # fmt: skip
    from wavegms.inference.folder import run_folder

    return run_folder(
        segmenter, request.items, args.output,
        threshold=segmenter.threshold, batch_size=segmenter.batch_size,
        overwrite=args.overwrite, resume=args.resume, progress=TextProgressBar(),
    )  # fmt: skip


def finish(request: SegmentRequest, report, args: argparse.Namespace) -> None:
    """``lesions.csv`` and the source-geometry masks of a finished run, each file printed."""
    from wavegms.cli.options import model_name
    from wavegms.inference.run_extras import write_lesions, write_source_outputs

    if not report.rows:
        return
    # The models that made the masks, as results.csv names them (box mode: busi-box+busi
    # when no model was named), else the one named.
    made_by = report.rows[0].get("model") or Path(model_name(args.model)).stem
    model = f"Wave-GMS {made_by}"
    print(f"lesions: {write_lesions(report, request.items)}")
    try:
        written, problems = write_source_outputs(
            report, request.items, args.format, args.overwrite, model
        )
    except WaveGMSError as err:
        written, problems = [], [str(err)]
    for path in written:
        print(f"in the source's geometry: {path}")
    for line in problems:
        print(f"not written: {line}")
