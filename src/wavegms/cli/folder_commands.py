"""``wavegms segment``, ``evaluate`` and ``rank``: every one a folder run through
``inference.folder.run_folder`` (or its dask variant), or a reading of one's outputs."""

from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

from wavegms.cli.options import BOUNDS, add_model_options, add_overwrite_option, model_name
from wavegms.core.errors import OutputExistsError, WaveGMSError


@contextlib.contextmanager
def flags_for_existing_outputs(*flags: str) -> Iterator[None]:
    """Outputs already there: say it with the options of this command (the library's words
    are for every caller: "allow overwriting")."""
    try:
        yield
    except OutputExistsError as err:
        what = str(err).split(";")[0].split(" (pass ")[0]
        ways = {"--overwrite": "add --overwrite to replace them",
                "--resume": "--resume to finish an interrupted run"}  # fmt: skip
        raise OutputExistsError(
            f"{what}; choose another output folder, or {', or '.join(ways[f] for f in flags)}"
        ) from err


def add_evaluate(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    p.add_argument("--data", required=True, help="folder with images/, masks/ and split.json")
    p.add_argument("--split", default="test", help="split name in the split file")
    p.add_argument("--split-file", help="split JSON (default: <data>/split.json)")
    p.add_argument("--out", help="output folder (default: ./wavegms-eval-<model>-<split>)")
    add_overwrite_option(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.data.pairs import dataset_pairs
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import pair_items
    from wavegms.inference.segmenter import Segmenter

    name = model_name(args.model)
    pairs = dataset_pairs(args.data, args.split_file, args.split)
    out = Path(args.out) if args.out else Path(f"wavegms-eval-{Path(name).stem}-{args.split}")
    segmenter = Segmenter.load(
        name, device=args.device, threshold=args.threshold, backend=args.backend,
        precision=args.precision,
    )  # fmt: skip
    with flags_for_existing_outputs("--overwrite"):
        report = run_folder(
            segmenter, pair_items(pairs), out, threshold=segmenter.threshold,
            batch_size=segmenter.batch_size, overwrite=args.overwrite,
            skip_unreadable=False,  # a score over fewer images than the split would mislead
            progress=TextProgressBar(),
        )  # fmt: skip
    print(f"model {name}, {args.data} split {args.split!r}: {len(pairs)} images")
    print(ran_with(segmenter))
    print(report.summary())
    return 0


def input_formats() -> str:
    """Every file kind ``segment`` reads, from the readers' own lists (torch-free)."""
    from wavegms.data.clinical import CLINICAL_SUFFIXES
    from wavegms.data.images import IMAGE_SUFFIXES

    return (
        f"{' '.join(IMAGE_SUFFIXES)}; DICOM and NIfTI {' '.join(CLINICAL_SUFFIXES)}, "
        "each plane of a stack segmented (DICOM and NIfTI need the clinical extra)"
    )


def add_segment(p: argparse.ArgumentParser) -> None:
    from wavegms.cli.clinical_options import add_clinical_options

    p.add_argument("input", help=f"folder of images ({input_formats()})")
    p.add_argument("output", help="output folder: masks/, soft/, results.csv, lesions.csv")
    add_model_options(p)
    add_overwrite_option(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run into OUTPUT: keep its finished masks, redo the rest",
    )
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument(
        "--workers",
        type=BOUNDS["processes"],
        metavar="N",
        help="spread the images over a local dask cluster of N worker processes",
    )
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="spread the images over the dask cluster at ADDRESS (e.g. tcp://host:8786)",
    )
    add_clinical_options(p)
    p.set_defaults(func=run_segment)


def run_segment(args: argparse.Namespace) -> int:
    from wavegms.cli import clinical_options
    from wavegms.inference.segmenter import Segmenter

    src = Path(args.input)
    if not src.exists():
        raise WaveGMSError(f"input {src} does not exist")
    request = clinical_options.prepare(args, src)  # boxes, spacing, extra: before the model
    with flags_for_existing_outputs("--overwrite", "--resume"):
        if args.workers or args.scheduler:
            report = _segment_on_cluster(args, src)
        else:
            crops, whole = _models(args, request)
            load = functools.partial(
                Segmenter.load, device=args.device, threshold=args.threshold,
                backend=args.backend, precision=args.precision,
            )  # fmt: skip
            segmenter = load(model_name(crops))
            partner = load(whole) if whole else None
            report = clinical_options.segment(request, segmenter, args, partner)
            print(ran_with(segmenter))
            if partner is not None:
                print(ran_with(partner, "each crop averaged with the whole image's soft mask by"))
    print(report.summary())
    clinical_options.finish(request, report, args)
    return 1 if report.skipped and not report.written else 0


def _models(args: argparse.Namespace, request) -> tuple[str | None, str | None]:
    """The model that segments (the crops, with box prompts) and the whole-image model its
    crops are averaged with (box prompts only): ``catalogue.box_models``'s defaults."""
    from wavegms.store.catalogue import box_models

    if request.boxes is None:
        return args.model, None
    return box_models(args.model, args.whole_model)


def _segment_on_cluster(args: argparse.Namespace, src: Path):
    """``segment --workers N | --scheduler ADDRESS``: the folder run on a dask cluster."""
    from wavegms.core.progress import TextProgressBar
    from wavegms.inference.folder_dask import dask_client, local_torch_threads, run_folder_dask
    from wavegms.inference.folder_items import folder_items

    threads = local_torch_threads(args.workers) if args.workers else None
    with dask_client(args.workers, args.scheduler) as client:
        return run_folder_dask(
            model_name(args.model), folder_items(src), args.output, client,
            device=args.device, threshold=args.threshold, torch_threads=threads,
            batch_size=1,  # each image reported as it finishes (the exact graph runs one by one)
            overwrite=args.overwrite, resume=args.resume, progress=TextProgressBar(),
        )  # fmt: skip


def ran_with(segmenter, what: str = "masks by") -> str:
    """One line saying what made the masks: model, its file's sha256, backend, precision
    (int8 said to be not exact, since it was asked for and differs from fp32)."""
    p = segmenter.provenance()
    note = " (not exact: asked for with --precision int8)" if p["precision"] == "int8" else ""
    return (
        f"{what} model {p['model']} (sha256 {p['model_sha256'][:12]}), backend "
        f"{p['backend']}, precision {p['precision']}{note}"
    )


def add_rank(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="output folder of segment/evaluate (results.csv)")
    p.set_defaults(func=run_rank)


def run_rank(args: argparse.Namespace) -> int:
    """The review order of an output folder: most uncertain first, reviewed images left out."""
    from wavegms.core.files import read_json
    from wavegms.inference.review import REVIEW_JSON, read_results, review_order

    out = Path(args.output)
    rows = {row["name"]: row for row in read_results(out)}
    done: set[str] = set()
    if (out / REVIEW_JSON).is_file():
        state = read_json(out / REVIEW_JSON)
        done = {*state.get("accepted", []), *state.get("skipped", [])}
    order = [name for name in review_order(list(rows.values())) if name not in done]
    for rank, name in enumerate(order, 1):
        row = rows[name]
        score = f"  DSC {row['dsc_native']:6.2f}%" if "dsc_native" in row else ""
        print(f"{rank:4d}  {row['uncertainty']:.4f}  {row['mask_area']:>9d} px{score}  {name}")
    if done:
        print(f"({len(done)} image(s) already reviewed are not listed)")
    return 0
