"""``wavegms bench``: latency, memory, accuracy and throughput of every inference path beside
its baseline in one run (the functions are in ``wavegms.bench``)."""

from __future__ import annotations

import argparse
import contextlib

from wavegms.cli.options import BOUNDS, model_name
from wavegms.core.errors import InputError, WaveGMSError


def add_bench(p: argparse.ArgumentParser) -> None:
    """The options of ``wavegms bench``: latency first, then the other measurements."""
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
    _add_workload_options(p)
    _add_train_options(p)
    p.set_defaults(func=run_bench_command)


def _add_workload_options(p: argparse.ArgumentParser) -> None:
    """Options of the measurements beside latency: accuracy, memory, folder, fine-tuning."""
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
        default=None,
        help="epochs of the fine-tuning timing (default: the fine-tune default, 20)",
    )
    p.add_argument(
        "--finetune-baseline",
        action="store_true",
        help="also time the previous defaults (fp32, validated every epoch) and the full schedule",
    )


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """Options of ``--train``, which times training instead of inference."""
    train = p.add_argument_group("training (--train)")
    train.add_argument(
        "--train",
        action="store_true",
        help="time the parts of a training step (today's and each candidate change) instead",
    )
    train.add_argument(
        "--curve",
        nargs="+",
        metavar="CONFIG",
        help="with --train: learning curves of these training configs at the same --budget",
    )
    train.add_argument(
        "--budget",
        default="20m",
        help="budget of each curve in the process's CPU-seconds (fair under load)",
    )
    train.add_argument("--plot", help="with --curve: write the curves to this PNG")


def run_bench_command(args: argparse.Namespace) -> int:
    import torch

    if args.train:
        return _run_train_bench(args)

    from wavegms.bench.latency import format_report, run_bench
    from wavegms.bench.workloads import format_extra, time_folder

    if not args.no_baseline:  # before minutes of timing, not after them
        from wavegms.bench.latency import BASELINE_PURPOSE
        from wavegms.core.extras import require

        require("diffusers", BASELINE_PURPOSE)
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
        _print_rss(args.model)
    if args.score_data:
        from wavegms.bench.accuracy import format_scores, score_paths

        if model is None:
            raise WaveGMSError("--score-data needs --model (random weights score nothing)")
        scores = score_paths(model, args.score_data, backends=backends, calibrate=True)
        print(format_scores(scores, args.score_data))
    folder = None
    if args.folder:
        folder = time_folder(model or _random_model(args.size), args.folder, shape)
    finetunes = _time_finetunes(args) if args.finetune_data else []
    print(format_extra(folder, finetunes))
    return 0


def _time_finetunes(args: argparse.Namespace) -> list:
    """Today's fine-tune defaults, and with --finetune-baseline the baselines beside them."""
    from wavegms.bench.workloads import FINETUNE_BASELINES, time_finetune

    base = model_name(args.model)
    # Not timed: a 1-epoch fine-tune first pays the process's one-time costs (imports,
    # kernel set-up, the optimiser's first step: ~10 s measured), which would otherwise
    # fall on whichever row runs first. One epoch may find nothing yet, and such a model is
    # refused (InputError); a real input error is raised again by the first timed row.
    with contextlib.suppress(InputError):
        time_finetune(args.finetune_data, base, epochs=1, label="warm-up")
    finetunes = [time_finetune(args.finetune_data, base, epochs=args.finetune_epochs)]
    for label, changes in FINETUNE_BASELINES.items() if args.finetune_baseline else ():
        finetunes.append(
            time_finetune(args.finetune_data, base, epochs=args.finetune_epochs, label=label,
                          **changes)
        )  # fmt: skip
    return finetunes


def _print_rss(model: str | None) -> None:
    from wavegms.bench.memory import path_peak_rss_mb

    if not model:
        raise WaveGMSError("--rss needs --model (it is loaded again in fresh processes)")
    rss = path_peak_rss_mb(model)
    print(
        "peak RSS of inference alone (fresh process per path): "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()),
        flush=True,
    )


def _run_train_bench(args: argparse.Namespace) -> int:
    """The parts table (random weights or --model), then the curves of --curve configs."""
    import tempfile
    from pathlib import Path

    import torch

    from wavegms.bench import learning_curve as lc
    from wavegms.bench import training as tb
    from wavegms.training.config import TrainConfig, parse_duration

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _random_model(args.size)
    if args.model:
        from wavegms.store.model_files import load_segmentation_model

        model = load_segmentation_model(args.model, "cpu")
    model.train()
    table = {v.name: tb.time_step_parts(model, v, repeats=args.repeats) for v in tb.step_variants()}
    print(tb.format_parts(table), flush=True)
    if not args.curve:
        return 0
    budget, curves = parse_duration(args.budget), {}
    for path in args.curve:
        config = TrainConfig.from_yaml(path)
        with tempfile.TemporaryDirectory(prefix="wavegms-curve-") as run_dir:
            curves[Path(path).stem] = lc.learning_curve(config, budget, Path(run_dir))
        print(lc.format_curves({Path(path).stem: curves[Path(path).stem]}), flush=True)
    print(lc.format_comparison(curves))
    if args.plot:
        title = f"equal budget {args.budget} each, same seed and validation split"
        print(f"plot: {lc.plot_curves(curves, Path(args.plot), title)}")
    return 0


def _random_model(size: int):
    """A model of the same cost with random weights: timing needs no trained model."""
    from wavegms.net.autoencoders import load_autoencoder
    from wavegms.net.model import ModelConfig, WaveGMS

    return WaveGMS(ModelConfig(image_size=size)).attach(load_autoencoder("taef2"))
