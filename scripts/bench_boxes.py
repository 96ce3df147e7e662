"""Box prompts against whole-image segmentation, MedSAM's protocol, on one split of a dataset.

    python scripts/bench_boxes.py --data ../shared/data/busi --split train \
        --margins 0,0.05,0.1,0.2,0.3,0.5          # tune on train
    python scripts/bench_boxes.py --data ../shared/data/busi --split test \
        --margins 1.5 --box-model busi-box        # the one test run of box mode's default

Each image's box is the bounding box of its ground-truth mask, every side moved outwards by a
uniform random 0-20 pixels (``--jitter``, fixed ``--seed``; the same boxes for every
setting), clipped to the image. Images whose mask is empty have no box and are left out (and
counted). Scores are the native-size DSC of ``wavegms evaluate`` (``scoring.metrics.score``
of the mask at the image's size against the ground truth), mean over images, in %. Rows:
``whole`` (the whole image, as ``wavegms evaluate``), ``whole|box`` and ``whole|largest``
(that mask cut to the box, or its largest part inside the box: what the box alone is worth),
and ``m=<margin> <view> keep=<keep>`` for each margin, each view (the crop's soft mask alone,
or averaged with a whole image's: ``segment_boxes(whole=...)``) and each of
:data:`wavegms.inference.boxes.KEEP`. With ``--box-model`` the crops are segmented by that
model (a crop-aware one): ``boxwhole`` is its whole-image score, ``crop+whole`` averages its
crop with --model's whole image, ``crop+boxwhole`` with its own. Every mask is thresholded at
--model's threshold. The row ``box mode`` is
:func:`~wavegms.inference.boxes.segment_boxes` itself at its defaults (margin, keep), crops by
--box-model (else --model), each averaged with --model's whole image: what ``wavegms segment
--box`` gives when no model is named, where --model and --box-model are
``catalogue.box_models()``'s pair (busi, busi-box; the derived row it equals is marked
``<- box mode's default``). ``--validation`` scores only the validation images carved from
the split's names (for choosing settings on images that no model trained on that split has
seen).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from wavegms.data.images import read_image
from wavegms.data.intensities import intensity_range
from wavegms.data.masks import read_mask
from wavegms.data.pairs import carve_validation, dataset_pairs
from wavegms.inference.boxes import (
    DEFAULT_KEEP,
    DEFAULT_MARGIN,
    KEEP,
    BoxWarning,
    check_box,
    clip_box,
    jittered_box,
    keep_part,
    segment_boxes,
    segment_crop,
)
from wavegms.inference.segmenter import Segmenter
from wavegms.scoring.metrics import score
from wavegms.store.catalogue import box_models

#: the derived row that box mode's default computes (with busi-box's crops, busi's whole image)
DEFAULT_ROW = f"m={DEFAULT_MARGIN:g} crop+whole keep={DEFAULT_KEEP}"

VAL_FRACTION, VAL_SEED = 0.1, 2333  # the validation split of every shipped config


def box_mask(box: list[float], shape: tuple[int, int]) -> np.ndarray:
    """The pixels of a box inside the image."""
    row0, row1, col0, col1 = clip_box(check_box(box), shape)
    inside = np.zeros(shape, bool)
    inside[row0:row1, col0:col1] = True
    return inside


def dsc(pred: np.ndarray, truth: np.ndarray) -> float:
    return 100.0 * score(pred, truth)["dsc"]


def views_of(whole_soft, box_whole_soft) -> list[tuple[str, object]]:
    """The soft masks a crop's is averaged with: the whole image's by --model and, where a
    --box-model is given, by that model too (``+boxwhole``)."""
    views = [("crop+whole", whole_soft)]
    if box_whole_soft is not None:
        views.append(("crop+boxwhole", box_whole_soft))
    return views


class Known:
    """A whole-image partner for ``segment_boxes`` that answers with a soft mask already
    computed by the same model for the same image (deterministic: no second inference)."""

    def __init__(self, soft: np.ndarray) -> None:
        self.soft = soft

    def segment(self, image):
        return None, self.soft


def score_image(segmenter, image, truth, box, margins, box_segmenter=None) -> dict[str, float]:
    """Every row's DSC for one image: one whole-image and one crop inference per margin,
    every variant derived from those soft masks (as ``segment_boxes`` derives it), and the
    ``box mode`` row from ``segment_boxes`` itself (one more crop inference). The crops
    are segmented by ``box_segmenter`` where given (its whole-image row: ``boxwhole``)."""
    threshold = segmenter.threshold
    inside = box_mask(box, truth.shape)
    whole, whole_soft = segmenter.segment(image)
    out = {"whole": dsc(whole, truth)}
    for keep in ("box", "largest"):
        out[f"whole|{keep}"] = dsc(keep_part(whole, inside, keep), truth)
    box_whole_soft = None
    if box_segmenter is not None:
        box_whole, box_whole_soft = box_segmenter.segment(image)
        out["boxwhole"] = dsc(box_whole, truth)
    cropper = box_segmenter or segmenter
    value_range = intensity_range(image)
    for margin in margins:
        crop = segment_crop(cropper, image, check_box(box), margin, value_range)
        views = [("crop", crop.soft)]
        for view, other in views_of(whole_soft, box_whole_soft):
            views.append((view, (crop.soft + other[crop.rows, crop.cols]) / 2))
        for view, soft in views:
            pasted = np.zeros(truth.shape, bool)
            pasted[crop.rows, crop.cols] = soft > threshold
            for keep in KEEP:
                name = f"m={margin:g} {view} keep={keep}"
                out[name] = dsc(keep_part(pasted, inside, keep), truth)
    made = segment_boxes(cropper, image, [box], threshold=threshold, whole=Known(whole_soft))
    out["box mode"] = dsc(made.labels > 0, truth)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--model", default="busi")
    parser.add_argument("--box-model", help="the model that segments the crops (default: --model)")
    parser.add_argument("--backend", default="onnx", help="onnx: exact fp32 (the default here)")
    parser.add_argument("--margins", default="0.1", help="comma-separated shares of the box")
    parser.add_argument("--jitter", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--validation",
        action="store_true",
        help="only the validation images a training run carves from this split (10 %%, seed "
        "2333): images the models trained on that split never saw",
    )
    parser.add_argument(
        "--sample", type=int, default=0, help="N images drawn with --seed (0: all, in order)"
    )
    parser.add_argument("--json", help="write the per-row means here")
    return parser.parse_args()


def report_rows(args: argparse.Namespace, rows: list[dict[str, float]], empty: int) -> None:
    """Each row's mean and spread, its gain over ``whole``; box mode's default row marked
    where --model and --box-model are the pair box mode runs with no model named."""
    means = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    stds = {key: float(np.std([r[key] for r in rows])) for key in rows[0]}
    default = tuple(box_models()) == (args.box_model or args.model, args.model)
    print(f"  box mode: segment_boxes, crops by {args.box_model or args.model}, each averaged "
          f"with {args.model}'s whole image, margin {DEFAULT_MARGIN:g}, keep {DEFAULT_KEEP}"
          f"{' (box mode without a named model)' if default else ''}")  # fmt: skip
    for key, mean in means.items():
        gain = mean - means["whole"]
        mark = "  <- box mode's default" if default and key == DEFAULT_ROW else ""
        print(f"  {key:24s} DSC {mean:6.2f} ± {stds[key]:5.2f}   {gain:+6.2f} vs whole{mark}")
    if args.json:
        found = {"n": len(rows), "empty": empty, "mean": means, "std": stds}
        if default:
            found["default_row"] = DEFAULT_ROW
        with open(args.json, "w") as f:
            json.dump(found, f, indent=1)


def main() -> None:
    args = parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    segmenter = Segmenter.load(args.model, device="cpu", backend=args.backend)
    box_segmenter = None
    if args.box_model:
        box_segmenter = Segmenter.load(args.box_model, device="cpu", backend=args.backend)
    pairs = dataset_pairs(args.data, split=args.split)
    if args.validation:
        _, held_out = carve_validation([p.name for p in pairs], VAL_FRACTION, VAL_SEED)
        pairs = [p for p in pairs if p.name in set(held_out)]
    rng = np.random.default_rng(args.seed)
    if args.sample:
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), args.sample, replace=False))]
    rows: list[dict[str, float]] = []
    empty, start = 0, time.perf_counter()
    for pair in pairs:
        truth = read_mask(pair.mask)
        if not truth.any():
            empty += 1
            continue
        box = jittered_box(truth, rng, args.jitter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BoxWarning)  # jitter past the border: clipped
            image = read_image(pair.image)
            rows.append(score_image(segmenter, image, truth, box, margins, box_segmenter))
    crops_by = f", crops by {args.box_model}" if args.box_model else ""
    print(f"{args.model}{crops_by} ({segmenter.graph_backend or 'eager'}) on {args.data} split "
          f"{args.split}: {len(rows)} images with a lesion ({empty} with an empty mask left "
          f"out), jitter 0-{args.jitter} px, seed {args.seed}, "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    report_rows(args, rows, empty)


if __name__ == "__main__":
    main()
