"""The ``wavegms`` command: train, finetune, evaluate, segment, bench, rank, models, export.

Each subcommand is a thin wrapper over a library function. Bad input of any kind (arguments,
configs, model files, images) is printed as one line starting with ``error:`` (exit code 2)
instead of a traceback: every number is checked against its range as it is parsed
(``options``), names and paths before torch is imported, models and devices before a model
loads (``checks``).
"""

from __future__ import annotations

import sys

from wavegms.cli.checks import check_args
from wavegms.cli.parser import build_parser
from wavegms.core.errors import WaveGMSError

__all__ = ["build_parser", "main"]


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
