"""The ``wavegms`` command: train, finetune, evaluate, segment, bench, models.

Each subcommand is a thin wrapper over a library function; errors the user can fix are printed
as one clear line (exit code 2) instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wavegms.core.errors import WaveGMSError
from wavegms.training.finetune import FinetuneRequest  # torch-free: its defaults are the CLI's


def _add_model_args(p: argparse.ArgumentParser, default_model: bool = True) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="model name (see `wavegms models`) or path to a .safetensors model"
        + (" (default: the shipped default)" if default_model else ""),
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threshold", type=float, default=0.5, help="soft-mask threshold")


def _model_name(arg: str | None) -> str:
    from wavegms.store.catalogue import default_model

    name = arg or default_model()
    if name is None:
        raise WaveGMSError("no model is installed yet: train one with `wavegms train`")
    return name


def cmd_train(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.training.trainer import TrainConfig, train

    config = TrainConfig.from_yaml(
        args.config,
        data_dir=args.data,
        out_dir=args.out,
        epochs=args.epochs,
        device=args.device,
        init_model=args.init_model,
    )
    print(f"run folder: {config.run_dir()} (running again resumes from the last epoch)")
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
    from wavegms.inference.folder import pair_items, run_folder
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
    segmenter = Segmenter.load(
        _model_name(args.model), device=args.device, threshold=args.threshold
    )
    report = segment_folder(
        segmenter, src, args.output, overwrite=args.overwrite, progress=TextProgressBar()
    )
    print(report.summary())
    return 1 if report.skipped and not report.written else 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from wavegms.bench import format_extra, format_report, run_bench, time_finetune, time_folder

    if args.threads:
        torch.set_num_threads(args.threads)
    model = None
    if args.model:
        from wavegms.store.catalogue import load_segmentation_model

        model = load_segmentation_model(args.model, "cpu")
    shape = (args.height, args.width)
    results = run_bench(model, args.size, shape, args.repeats, baseline=not args.no_baseline)
    print(format_report(results, args.size, shape), flush=True)
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
    from wavegms.store.catalogue import list_models, shipped_models
    from wavegms.store.model_files import read_config

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
    result, installed = finetune(request, progress=TextProgressBar())
    state = "stopped" if result.cancelled else "finished"
    print(f"{state} after {result.epochs_done} epoch(s) in {result.run_dir}")
    if installed is None:
        raise WaveGMSError("no epoch finished: no model was saved")
    print(
        f"best validation Dice {100 * result.best_val_dice:.2f}; saved as model "
        f"{args.name!r} ({installed})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavegms", description="Wave-GMS medical image segmentation"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train or fine-tune (resumes an interrupted run)")
    p.add_argument("--config", required=True, help="YAML training config, e.g. configs/busi.yaml")
    p.add_argument("--data", help="override data_dir (folder with images/, masks/, split.json)")
    p.add_argument("--out", help="run folder (default: <user data dir>/runs/<name>)")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--device", help="override the device")
    p.add_argument("--init-model", help="start from this model (fine-tuning)")
    p.add_argument("--export", metavar="NAME", help="save the best model as a user model NAME")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="fine-tune a model on a folder of corrected pairs")
    p.add_argument("--data", required=True, help="folder with images/ and masks/ (all used)")
    p.add_argument("--name", required=True, help="name of the new model (must be new)")
    p.add_argument("--base", help="model to start from (default: the shipped default)")
    p.add_argument("--out", help="run folder (default: a new one in the user data folder)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--epochs", type=int, default=FinetuneRequest.epochs)
    p.add_argument("--lr", type=float, default=FinetuneRequest.lr)
    p.add_argument("--batch-size", type=int, default=FinetuneRequest.batch_size)
    p.add_argument("--val-fraction", type=float, default=FinetuneRequest.val_fraction)
    p.add_argument("--no-augment", action="store_true", help="train on the pairs as they are")
    p.add_argument(
        "--full-schedule",
        action="store_true",
        help="on CPU too: targets encoded every batch, Dice through the decoder (slower)",
    )
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("evaluate", help="score a model on a dataset split (CSV + PNG masks)")
    _add_model_args(p)
    p.add_argument("--data", required=True, help="folder with images/, masks/ and split.json")
    p.add_argument("--split", default="test", help="split name in the split file (default test)")
    p.add_argument("--split-file", help="split JSON (default: <data>/split.json)")
    p.add_argument("--out", help="output folder (default: ./wavegms-eval-<model>-<split>)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("segment", help="segment every image of a folder")
    p.add_argument("input", help="folder of images (png, jpg, bmp, tif)")
    p.add_argument("output", help="output folder: masks/, soft/ and results.csv")
    _add_model_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("bench", help="inference latency and memory vs a GMS-sized path")
    p.add_argument("--model", help="model to time (default: random weights, same cost)")
    p.add_argument("--size", type=int, default=224, help="model input size")
    p.add_argument("--height", type=int, default=472, help="input image height")
    p.add_argument("--width", type=int, default=564, help="input image width")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="torch threads (0: torch default)")
    p.add_argument("--no-baseline", action="store_true", help="skip the GMS-sized path")
    p.add_argument("--folder", type=int, default=20, help="images in the folder test (0: skip)")
    p.add_argument("--finetune-data", help="dataset folder: time fine-tuning on 10 of its pairs")
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument(
        "--finetune-baseline", action="store_true", help="also time the full (slow) schedule"
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("models", help="list shipped and user models")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WaveGMSError as err:
        print(f"wavegms {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wavegms {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
