"""The ``wavegms`` command: train, finetune, evaluate, segment, bench, rank, models, export.

Each subcommand is a thin wrapper over a library function. Bad input of any kind (arguments,
configs, model files, images) is printed as one line starting with ``error:`` (exit code 2)
instead of a traceback: every number is checked against its range as it is parsed
(``options``), names and paths before torch is imported, models and devices before a model
loads (``checks``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator

from wavegms.cli.checks import check_args
from wavegms.cli.parser import build_parser
from wavegms.core.errors import WaveGMSError

__all__ = ["build_parser", "main"]


def one_line(text: str) -> str:
    """``text`` with its line breaks made spaces: a path or name the user typed may hold some,
    and an error must stay one line."""
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


class _LibraryLog(logging.Handler):
    """Library log records as the command shows them: errors as one ``warning:`` line each,
    the rest (ONNX Runtime's quantiser logs its advice on the root logger, pydicom its notes
    on its own) dropped: they are for the libraries' developers, not for a user of ours."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            print(f"warning: {one_line(record.getMessage())}", file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one line, ``warning: <message>``, without the library's source
    line that the default format adds."""
    print(f"warning: {one_line(str(message))}", file=sys.stderr)


@contextlib.contextmanager
def library_output() -> Iterator[None]:
    """While a command runs: warnings one line each, library log records filtered
    (:class:`_LibraryLog`); everything as it was afterwards (``main`` runs in tests too)."""
    root = logging.getLogger()
    handler, level = _LibraryLog(), root.level
    quieted = {name: logging.getLogger(name) for name in ("pydicom", "onnxruntime")}
    levels = {name: log.level for name, log in quieted.items()}
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
        for log in quieted.values():
            log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            for name, log in quieted.items():
                log.setLevel(levels[name])


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 done, 2 bad input or a path the system
    refuses, 130 interrupted). Errors are one line starting with ``error:``."""
    with library_output():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
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
