"""``wavegms train`` and ``wavegms finetune``: thin over ``training.trainer.train`` (with its
DDP variants) and ``training.finetune.finetune``."""

from __future__ import annotations

import argparse

from wavegms.cli.options import BOUNDS, model_name
from wavegms.core.errors import InputError, WaveGMSError
from wavegms.training.finetune import FinetuneRequest  # torch-free: its defaults are the CLI's


def add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML training config, e.g. configs/busi.yaml")
    p.add_argument("--data", help="override data_dir (folder with images/, masks/, split.json)")
    p.add_argument("--out", help="run folder (default: <user data dir>/runs/<name>)")
    p.add_argument("--epochs", type=BOUNDS["epochs"], help="override the number of epochs")
    p.add_argument("--device", help="override the device")
    p.add_argument("--init-model", help="start from this model (fine-tuning)")
    p.add_argument("--export", metavar="NAME", help="save the best model as a user model NAME")
    p.add_argument(
        "--carry",
        metavar="FILE",
        help="a checkpoint carried in the repository (e.g. checkpoints/busi.safetensors): the "
        "run starts from it when the run folder is behind it, and rewrites it after each epoch",
    )
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
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.training import distributed
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
    processes = args.gpus or args.processes or distributed.torchrun_world()
    if args.carry and processes > 1:
        raise InputError("--carry runs in one process: leave out --processes/--gpus/torchrun")
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
        result = train(config, progress=_carrying(TextProgressBar(), args.carry, config))
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


def _carrying(progress, carried: str | None, config):
    """``progress``, which also rewrites the carried checkpoint after every epoch, once the
    run folder was seeded from it where it was behind; ``progress`` alone without one."""
    if carried is None:
        return progress
    from pathlib import Path

    from wavegms.training import carry

    path, run_dir = Path(carried), config.run_dir()
    if carry.seed_run(path, run_dir):
        print(f"run folder seeded from {carry.carried_summary(path)}")

    def report(p) -> None:
        progress(p)
        if p.stage == "epoch":
            carry.write_carried(run_dir, path)

    return report


def add_finetune(p: argparse.ArgumentParser) -> None:
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
    p.set_defaults(func=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.training.finetune import finetune

    request = FinetuneRequest(
        data_dir=args.data,
        base_model=model_name(args.base),
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
