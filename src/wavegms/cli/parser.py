"""The ``wavegms`` argument parser: one subcommand per job, each defined with its runner in the
module of its kind (training, folders, bench, models)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from wavegms.cli.bench_command import add_bench
from wavegms.cli.folder_commands import add_evaluate, add_rank, add_segment
from wavegms.cli.model_commands import add_export, add_models
from wavegms.cli.options import HelpFormatter, Parser
from wavegms.cli.training_commands import add_finetune, add_train

#: (name, one-line summary, the function that adds its options and its runner), in help order.
COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None]], ...] = (
    ("train", "train or fine-tune (resumes an interrupted run)", add_train),
    ("finetune", "fine-tune a model on a folder of corrected pairs", add_finetune),
    ("evaluate", "score a model on a dataset split (CSV + PNG masks)", add_evaluate),
    ("segment", "segment every image of a folder", add_segment),
    ("bench", "inference latency and memory vs a GMS-sized path", add_bench),
    ("rank", "print an output folder's review order, most uncertain first", add_rank),
    ("models", "list shipped and user models", add_models),
    ("export", "write a model as a package to share (bioimage.io model zip)", add_export),
)


def build_parser() -> argparse.ArgumentParser:
    from wavegms import __version__

    parser = Parser(prog="wavegms", description="Wave-GMS medical image segmentation")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, summary, add_options in COMMANDS:
        add_options(
            sub.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter)
        )
    return parser
