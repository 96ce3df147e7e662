"""What every command's options share: checked numbers, one-line usage errors, help that shows
defaults, the model options, and the model a command runs when none is named."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from wavegms.core.errors import InputError, WaveGMSError


@dataclass(frozen=True)
class Bounded:
    """An argparse ``type``: text -> ``kind`` within [low, high] (a whole number: also a
    multiple of ``step``), else an error naming the range. NaN and infinities are never in
    range. ``step`` applies to whole numbers only: a fraction is never "off the step"."""

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
        if self.kind is int and value % self.step:
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


#: ``Segmenter(backend=...)``, torch-free (tests/test_cli.py checks it against the segmenter's).
BACKENDS = ("auto", "eager", "traced", "onnx", "openvino", "int8")
#: ``Segmenter(precision=...)``, torch-free, likewise.
PRECISIONS = ("fp32", "int8")


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (:class:`InputError`), like every
    other error of the command, instead of a usage block and ``SystemExit``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see `{self.prog} --help`)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where the help text already says what happens
    without it (no default value, or a flag that is off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--device`` and ``--threshold``: the options of every command that runs a
    model on images."""
    p.add_argument(
        "--model",
        default=None,
        help="model name (see `wavegms models`) or path to a .safetensors model "
        "(default: the shipped default)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threshold", type=BOUNDS["threshold"], default=0.5, help="soft-mask threshold")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="how the model runs on CPU: auto is onnx (ONNX Runtime, exact fp32) where it is "
        "installed, else eager (plain PyTorch); traced is TorchScript; all exact, except int8 "
        "(the same as --precision int8)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32 gives the exact answer; int8 is faster on CPU but not exact (masks differ "
        "slightly; needs ONNX Runtime)",
    )


def add_overwrite_option(p: argparse.ArgumentParser, what: str = "existing outputs") -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {what}")


def model_name(arg: str | None) -> str:
    """The model a command runs: the one named, else the installed default."""
    from wavegms.store.catalogue import default_model

    name = arg or default_model()
    if name is None:
        raise WaveGMSError("no model is installed yet: train one with `wavegms train`")
    return name
