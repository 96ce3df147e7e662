"""The ``wavegms`` command: train, finetune, evaluate, segment, bench, models, export.

Each subcommand is a thin wrapper over a library function. Bad input of any kind (arguments,
configs, model files, images) is printed as one line starting with ``error:`` (exit code 2)
instead of a traceback: every number is checked against its range as it is parsed, names and
paths before torch is imported, models and devices before a model loads.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from wavegms.core.errors import InputError, WaveGMSError
from wavegms.training.finetune import FinetuneRequest  # torch-free: its defaults are the CLI's


def _add_model_args(p: argparse.ArgumentParser, default_model: bool = True) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="model name (see `wavegms models`) or path to a .safetensors model"
        + (" (default: the shipped default)" if default_model else ""),
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threshold", type=BOUNDS["threshold"], default=0.5, help="soft-mask threshold")


@dataclass(frozen=True)
class Bounded:
    """An argparse ``type``: text -> ``kind`` within [low, high] (and a multiple of ``step``),
    else an error naming the range. NaN and infinities are never in range."""

    kind: type
    low: float
    high: float
    step: int = 1

    def __call__(self, text: str) -> float:
        try:
            value = self.kind(text)
        except ValueError:
            what = "a whole number" if self.kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise argparse.ArgumentTypeError(f"must lie in {self.range()}, not {text!r}")
        if value % self.step:
            raise argparse.ArgumentTypeError(f"must be a multiple of {self.step}, not {text!r}")
        return value

    def range(self) -> str:
        return f"[{self.low:g}, {self.high:g}]"


#: The range of every numeric option. Those that are training settings repeat the bounds of
#: ``training.config`` (tests/test_cli.py checks that they agree), so that a typo is refused
#: here, before torch is imported, rather than after a model has loaded.
BOUNDS: dict[str, Bounded] = {
    "threshold": Bounded(float, 0.0, 1.0),
    "epochs": Bounded(int, 1, 1_000_000),
    "lr": Bounded(float, 1e-9, 10.0),
    "batch_size": Bounded(int, 1, 65_536),
    "val_fraction": Bounded(float, 0.01, 0.99),
    "size": Bounded(int, 8, 4096, step=8),  # as a model's image_size: 1/8-resolution latents
    "side": Bounded(int, 1, 16_384),
    "repeats": Bounded(int, 1, 10_000),
    "threads": Bounded(int, 0, 1024),
    "folder": Bounded(int, 0, 10_000),
    "processes": Bounded(int, 1, 1024),  # DDP ranks (train) or dask workers (segment)
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (:class:`InputError`), like every
    other error of the command, instead of a usage block and ``SystemExit``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see `{self.prog} --help`)")


def _model_name(arg: str | None) -> str:
    from wavegms.store.catalogue import default_model

    name = arg or default_model()
    if name is None:
        raise WaveGMSError("no model is installed yet: train one with `wavegms train`")
    return name


def cmd_train(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.training.config import TrainConfig, parse_duration
    from wavegms.training.trainer import train

    budget = parse_duration(args.time_budget) if args.time_budget is not None else None
    config = TrainConfig.from_yaml(
        args.config,
        data_dir=args.data,
        out_dir=args.out,
        epochs=args.epochs,
        device="cuda" if args.device is None and args.gpus else args.device,
        init_model=args.init_model,
        time_budget_s=budget,
    )
    from wavegms.training import distributed

    processes = args.gpus or args.processes or distributed.torchrun_world()
    if distributed.torchrun_world() < 2 or distributed.torchrun_rank() == 0:  # rank 0 speaks
        print(f"run folder: {config.run_dir()} (running again resumes from the last epoch)")
        if budget is not None:
            print(f"time budget {budget:g} s: the epochs are counted once the first are timed")
        if processes > 1:
            print(
                f"DDP over {processes} processes: {config.batch_size} images per process and "
                f"step ({processes * config.batch_size} in all), learning rate {config.lr:g} "
                "as configured (see docs/scaling.md)"
            )
    if distributed.torchrun_world() > 1:
        result = distributed.train_torchrun(config, show_progress=True)
        if result is None:  # not rank 0: rank 0 reports and exports
            return 0
    elif processes > 1:
        result = distributed.train_processes(config, processes, show_progress=True)
    else:
        result = train(config, progress=TextProgressBar())
    state = "stopped" if result.cancelled else "finished"
    print(
        f"{state} after {result.epochs_done} epoch(s); best validation Dice "
        f"{100 * result.best_val_dice:.2f}; best model: {result.best_model}"
    )
    if args.export and result.best_model is not None:
        from wavegms.training.finetune import install_model

        target = install_model(result.run_dir, args.export)
        print(f"saved as model {args.export!r}: {target}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.data.pairs import dataset_pairs
    from wavegms.inference.folder import run_folder
    from wavegms.inference.folder_items import pair_items
    from wavegms.inference.segmenter import Segmenter

    name = _model_name(args.model)
    pairs = dataset_pairs(args.data, args.split_file, args.split)
    out = Path(args.out) if args.out else Path(f"wavegms-eval-{Path(name).stem}-{args.split}")
    segmenter = Segmenter.load(name, device=args.device, threshold=args.threshold)
    report = run_folder(
        segmenter,
        pair_items(pairs),
        out,
        threshold=segmenter.threshold,
        batch_size=segmenter.batch_size,
        overwrite=args.overwrite,
        skip_unreadable=False,  # a score over fewer images than the split would mislead
        progress=TextProgressBar(),
    )
    print(f"model {name}, {args.data} split {args.split!r}: {len(pairs)} images")
    print(report.summary())
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.inference.folder import segment_folder
    from wavegms.inference.segmenter import Segmenter

    src = Path(args.input)
    if not src.exists():
        raise WaveGMSError(f"input {src} does not exist")
    if args.workers or args.scheduler:
        report = _segment_on_cluster(args, src)
        print(report.summary())
        return 1 if report.skipped and not report.written else 0
    segmenter = Segmenter.load(
        _model_name(args.model), device=args.device, threshold=args.threshold
    )
    report = segment_folder(
        segmenter, src, args.output, overwrite=args.overwrite, resume=args.resume,
        progress=TextProgressBar(),
    )  # fmt: skip
    print(report.summary())
    return 1 if report.skipped and not report.written else 0


def _segment_on_cluster(args: argparse.Namespace, src: Path):
    """``segment --workers N | --scheduler ADDRESS``: the folder run on a dask cluster."""
    from wavegms.core.progress import TextProgressBar
    from wavegms.inference.folder_dask import dask_client, local_torch_threads, run_folder_dask
    from wavegms.inference.folder_items import folder_items

    threads = local_torch_threads(args.workers) if args.workers else None
    with dask_client(args.workers, args.scheduler) as client:
        return run_folder_dask(
            _model_name(args.model), folder_items(src), args.output, client,
            device=args.device, threshold=args.threshold, torch_threads=threads,
            overwrite=args.overwrite, resume=args.resume, progress=TextProgressBar(),
        )  # fmt: skip


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from wavegms.bench import format_extra, format_report, run_bench, time_finetune, time_folder

    if args.threads:
        torch.set_num_threads(args.threads)
    model = None
    if args.model:
        from wavegms.store.model_files import load_segmentation_model

        model = load_segmentation_model(args.model, "cpu")
    shape = (args.height, args.width)
    backends = tuple(b for b in args.backends.split(",") if b) if args.backends else None
    results = run_bench(
        model, args.size, shape, args.repeats, baseline=not args.no_baseline, backends=backends,
        calibration_dir=args.score_data,
    )  # fmt: skip
    print(format_report(results, args.size, shape), flush=True)
    if args.rss:
        from wavegms.bench_paths import path_peak_rss_mb

        if not args.model:
            raise WaveGMSError("--rss needs --model (it is loaded again in fresh processes)")

        rss = path_peak_rss_mb(args.model)
        print(
            "peak RSS of inference alone (fresh process per path): "
            + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()),
            flush=True,
        )
    if args.score_data:
        from wavegms.bench_paths import format_scores, score_paths

        if model is None:
            raise WaveGMSError("--score-data needs --model (random weights score nothing)")
        print(
            format_scores(
                score_paths(model, args.score_data, backends=backends, calibrate=True),
                args.score_data,
            )
        )
    folder = None
    if args.folder:
        if model is None:
            from wavegms.net.autoencoders import load_autoencoder
            from wavegms.net.model import ModelConfig, WaveGMS

            model = WaveGMS(ModelConfig(image_size=args.size)).attach(load_autoencoder("taef2"))
        folder = time_folder(model, args.folder, shape)
    finetunes = []
    if args.finetune_data:
        base = _model_name(args.model)
        finetunes.append(time_finetune(args.finetune_data, base, epochs=args.finetune_epochs))
        if args.finetune_baseline:
            finetunes.append(
                time_finetune(args.finetune_data, base, epochs=args.finetune_epochs, fast=False)
            )
    print(format_extra(folder, finetunes))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from wavegms.store.catalogue import list_models, read_config, shipped_models

    models = list_models()
    if not models:
        print("no models installed; train one with `wavegms train --config ...`")
    shipped = shipped_models()
    for name, path in models.items():
        meta = read_config(path).get("metadata", {})
        kind = "shipped" if name in shipped else "user"
        score = meta.get("val_dice")
        extra = f" val Dice {100 * score:.1f}" if isinstance(score, float) else ""
        print(f"{name:<20} {kind:<8}{extra}  {path}")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
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


def cmd_finetune(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.training.finetune import finetune

    request = FinetuneRequest(
        data_dir=args.data,
        base_model=_model_name(args.base),
        new_name=args.name,
        out_dir=args.out,
        device=args.device,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        val_fraction=args.val_fraction,
        augment=not args.no_augment,
        fast_cpu=not args.full_schedule,
    )
    outcome = finetune(request, progress=TextProgressBar())
    state = "stopped" if outcome.cancelled else "finished"
    print(f"{state} after {outcome.epochs_done} epoch(s) in {outcome.run_dir}")
    if outcome.installed is None:
        raise WaveGMSError("no epoch finished: no model was saved")
    print(
        f"best validation Dice {100 * outcome.best_val_dice:.2f} (epoch {outcome.best_epoch}, "
        f"{outcome.val_images} validation images); saved as model {args.name!r} "
        f"({outcome.installed})"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.export.bioimageio import export_bioimageio

    path = export_bioimageio(
        args.model, args.package, image=args.image, overwrite=args.overwrite,
        progress=TextProgressBar(),
    )  # fmt: skip
    print(f"wrote the bioimage.io package of model {args.model!r} to {path}")
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where the help text already says what happens
    without it (no default value, or a flag that is off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def check_args(args: argparse.Namespace) -> None:
    """Argument errors found before any model is loaded or training starts (numbers were
    checked as they were parsed): the cheap ones first (paths, the name of a new model, the
    input folder's images), then the ones that need torch (the device, model names, last the
    whole model to train from), so a typo is reported at once rather than after torch and
    the model load, and a damaged base model before the data is loaded."""
    for key in ("input", "output", "out", "data", "config", "split_file", "finetune_data"):
        value = getattr(args, key, None)
        if value is None:
            continue
        flag = key if key in ("input", "output") else "--" + key.replace("_", "-")
        if not value.strip():  # "" would mean the current folder
            raise InputError(f"{flag} must name a file or folder, not {value!r}")
        if key in ("data", "split_file", "finetune_data") and not Path(value).exists():
            raise InputError(f"{flag} {value} does not exist")  # found now, not after a load
    out = getattr(args, "output", None) or getattr(args, "out", None)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise WaveGMSError(f"output {out} is a file; name a folder (new or existing)")
    if args.command == "segment":
        check_input_images(Path(args.input))
    if args.command == "export":  # the package's name and the example image, before a load
        from wavegms.export.bioimageio import check_output_path

        check_output_path(args.package, args.overwrite)
        if args.image is not None and not Path(args.image).is_file():
            raise InputError(f"--image {args.image} is not a file")
    new_name = getattr(args, "name", None) or getattr(args, "export", None)
    if new_name is not None:  # refused now, not after minutes of training
        from wavegms.store.catalogue import check_new_model_name

        check_new_model_name(new_name)
    device = getattr(args, "device", None)
    if device and device != "auto":
        from wavegms.core.devices import resolve_device

        resolve_device(device)
    for name in ("model", "base", "init_model"):
        model = getattr(args, name, None)
        if model is not None:  # "" too: an empty name is a mistake, not "the default"
            from wavegms.store.catalogue import resolve_model

            path = resolve_model(model)
            if name != "model":  # a damaged base is found now, not after the data is loaded
                from wavegms.store.model_files import load_model

                load_model(path)


def _holds_images(folder: Path) -> bool:
    from wavegms.data.images import list_images

    try:
        return bool(list_images(folder))
    except OSError:  # a folder we may not read is not the one the user meant
        return False


def check_input_images(folder: Path) -> None:
    """The input of ``segment`` holds at least one readable image; otherwise one line saying
    what it holds instead (a dataset root's ``images/`` folder, other files, nothing)."""
    from wavegms.data.clinical import CLINICAL_SUFFIXES
    from wavegms.data.images import IMAGE_SUFFIXES, list_images, read_image

    if not folder.exists():
        raise WaveGMSError(f"input {folder} does not exist")
    if not folder.is_dir():
        raise WaveGMSError(f"input {folder} is not a folder; segment takes a folder of images")
    try:
        images = list_images(folder)
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as err:
        raise WaveGMSError(f"cannot read input folder {folder}: {err.strerror}") from err
    first_reason = None
    for image in images:  # usually the first one reads: one decode, not the whole folder
        try:
            read_image(image)
            return
        except WaveGMSError as err:
            first_reason = first_reason or str(err)
    if images:
        raise WaveGMSError(
            f"none of the {len(images)} image files in {folder} is readable: {first_reason}"
        )
    with_images = [p for p in entries if p.is_dir() and _holds_images(p)]
    if with_images:
        guess = next((p for p in with_images if p.name == "images"), with_images[0])
        raise WaveGMSError(
            f"no images in {folder}; it holds a folder {guess.name}/ with images — "
            f"did you mean {guess}?"
        )
    held = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries[:5])
    more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
    kinds = " ".join(IMAGE_SUFFIXES + CLINICAL_SUFFIXES)
    what = f"it holds {held}{more}" if entries else "it is empty"
    raise WaveGMSError(f"no images ({kinds}) in {folder}; {what}")


def build_parser() -> argparse.ArgumentParser:
    from wavegms import __version__

    parser = Parser(prog="wavegms", description="Wave-GMS medical image segmentation")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=summary, description=summary, formatter_class=HelpFormatter
        )

    p = command("train", "train or fine-tune (resumes an interrupted run)")
    p.add_argument("--config", required=True, help="YAML training config, e.g. configs/busi.yaml")
    p.add_argument("--data", help="override data_dir (folder with images/, masks/, split.json)")
    p.add_argument("--out", help="run folder (default: <user data dir>/runs/<name>)")
    p.add_argument("--epochs", type=BOUNDS["epochs"], help="override the number of epochs")
    p.add_argument("--device", help="override the device")
    p.add_argument("--init-model", help="start from this model (fine-tuning)")
    p.add_argument("--export", metavar="NAME", help="save the best model as a user model NAME")
    p.add_argument(
        "--time-budget",
        metavar="TIME",
        help="wall-clock budget, e.g. 90s, 8m, 1.5h or seconds: the run fits its epochs to it",
    )
    ranks = p.add_mutually_exclusive_group()
    ranks.add_argument(
        "--processes",
        type=BOUNDS["processes"],
        metavar="N",
        help="DDP on N processes of this machine (gloo on CPU; batch_size is per process)",
    )
    ranks.add_argument(
        "--gpus", type=BOUNDS["processes"], metavar="N", help="DDP on N GPUs, one process each"
    )
    p.set_defaults(func=cmd_train)

    p = command("finetune", "fine-tune a model on a folder of corrected pairs")
    p.add_argument("--data", required=True, help="folder with images/ and masks/ (all used)")
    p.add_argument("--name", required=True, help="name of the new model (must be new)")
    p.add_argument("--base", help="model to start from (default: the shipped default)")
    p.add_argument("--out", help="run folder (default: a new one in the user data folder)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument(
        "--epochs", type=BOUNDS["epochs"], default=FinetuneRequest.epochs, help="training epochs"
    )
    p.add_argument("--lr", type=BOUNDS["lr"], default=FinetuneRequest.lr, help="learning rate")
    p.add_argument(
        "--batch-size",
        type=BOUNDS["batch_size"],
        default=FinetuneRequest.batch_size,
        help="pairs per step",
    )
    p.add_argument(
        "--val-fraction",
        type=BOUNDS["val_fraction"],
        default=FinetuneRequest.val_fraction,
        help="share of the pairs kept aside to pick the best epoch",
    )
    p.add_argument("--no-augment", action="store_true", help="train on the pairs as they are")
    p.add_argument(
        "--full-schedule",
        action="store_true",
        help="on CPU too: targets encoded every batch, Dice through the decoder (slower)",
    )
    p.set_defaults(func=cmd_finetune)

    p = command("evaluate", "score a model on a dataset split (CSV + PNG masks)")
    _add_model_args(p)
    p.add_argument("--data", required=True, help="folder with images/, masks/ and split.json")
    p.add_argument("--split", default="test", help="split name in the split file")
    p.add_argument("--split-file", help="split JSON (default: <data>/split.json)")
    p.add_argument("--out", help="output folder (default: ./wavegms-eval-<model>-<split>)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_evaluate)

    p = command("segment", "segment every image of a folder")
    p.add_argument("input", help="folder of images (png, jpg, bmp, tif)")
    p.add_argument("output", help="output folder: masks/, soft/ and results.csv")
    _add_model_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
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
    p.set_defaults(func=cmd_segment)

    p = command("bench", "inference latency and memory vs a GMS-sized path")
    p.add_argument("--model", help="model to time (default: random weights, same cost)")
    p.add_argument("--size", type=BOUNDS["size"], default=224, help="model input size (pixels)")
    p.add_argument("--height", type=BOUNDS["side"], default=472, help="input image height")
    p.add_argument("--width", type=BOUNDS["side"], default=564, help="input image width")
    p.add_argument(
        "--repeats", type=BOUNDS["repeats"], default=10, help="timed runs per measurement"
    )
    p.add_argument(
        "--threads", type=BOUNDS["threads"], default=2, help="torch threads (0: torch default)"
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the GMS-sized path")
    p.add_argument(
        "--backends",
        help="paths beside eager, comma-separated: traced,onnx,openvino,int8 (default: all)",
    )
    p.add_argument("--score-data", help="dataset folder (BUSI): test-split DSC/HD95 of every path")
    p.add_argument(
        "--rss", action="store_true", help="peak RSS of each path alone, in fresh processes"
    )
    p.add_argument(
        "--folder", type=BOUNDS["folder"], default=20, help="images in the folder test (0: skip)"
    )
    p.add_argument("--finetune-data", help="dataset folder: time fine-tuning on 10 of its pairs")
    p.add_argument(
        "--finetune-epochs",
        type=BOUNDS["epochs"],
        default=10,
        help="epochs of the fine-tuning timing",
    )
    p.add_argument(
        "--finetune-baseline", action="store_true", help="also time the full (slow) schedule"
    )
    p.set_defaults(func=cmd_bench)

    p = command("rank", "print an output folder's review order, most uncertain first")
    p.add_argument("output", help="output folder of segment/evaluate (results.csv)")
    p.set_defaults(func=cmd_rank)

    p = command("models", "list shipped and user models")
    p.set_defaults(func=cmd_models)

    p = command("export", "write a model as a package to share (bioimage.io model zip)")
    p.add_argument("model", help="model name (see `wavegms models`) or path to a .safetensors")
    p.add_argument("package", metavar="OUT", help="package file to write, ending in .zip")
    p.add_argument("--format", choices=["bioimageio"], default="bioimageio", help="format")
    p.add_argument(
        "--image",
        help="image the package's test tensors and cover are made of (default: the shipped "
        "synthetic ultrasound sample)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing package")
    p.set_defaults(func=cmd_export)
    return parser


def one_line(text: str) -> str:
    """``text`` with its line breaks made spaces: a path or name the user typed may hold some,
    and an error must stay one line."""
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 done, 2 bad input or a path the system
    refuses, 130 interrupted). Errors are one line starting with ``error:``."""
    try:
        args = build_parser().parse_args(argv)
        check_args(args)
        return args.func(args)
    except WaveGMSError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # a path the system refuses (too long, no permission, a loop)
        where = f"{err.filename}: " if err.filename is not None else ""
        print(f"error: {one_line(where + (err.strerror or str(err)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
