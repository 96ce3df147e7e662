"""Property: whatever bad input a subcommand is given, `wavegms` answers with exit code 2 and
exactly one line on stderr starting with ``error:``, never a traceback.

Each test takes an otherwise valid command line and spoils one part of it: a number out of
range (NaN and infinities included) or no number at all, an odd name or path, a broken YAML
config, or a damaged model file. The bad value must be refused before any training or model
load starts, so every example takes milliseconds; where the error names what was wrong (the
option, the setting), that is checked too, so a bad value that slipped through and failed
later for another reason would still be caught.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wavegms.cli import build_parser, main
from wavegms.cli.options import Bounded
from wavegms.store.catalogue import NAME_PATTERN
from wavegms.training.config import _NUMBERS


def fuzz(examples: int) -> settings:
    """Hypothesis settings: ``examples`` per test (per subcommand where parametrised), sized
    so that the whole file runs well under a minute on a loaded two-core machine."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same examples on every run: a regression test, never flaky
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Text as a command line can carry it: no NUL, no lone surrogates.
ARG_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
ODD_NAMES = st.one_of(
    st.sampled_from(["", ".", "..", "/", "x" * 300, "a\nb", "evil.pt", "m.pth", "-", " "]),
    ARG_TEXT.filter(lambda t: not t.startswith("-")),
)


def run_cli(capsys, argv: list[str]) -> str:
    """Run ``wavegms argv`` in this process; assert the one-line refusal; return the line."""
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, argv
    assert code == 2, (argv, out, err)
    assert err.endswith("\n") and err.count("\n") == 1, (argv, err)
    assert err.startswith("error: "), (argv, err)
    return err


def out_of_range(bounds: Bounded) -> st.SearchStrategy[str]:
    """Text that ``bounds`` must refuse: not a number, NaN/inf, outside the range, a fraction
    for a whole number, a whole number off the step."""
    outside = st.one_of(
        st.floats(max_value=bounds.low, allow_infinity=True),
        st.floats(min_value=bounds.high, allow_infinity=True),
    ).filter(lambda v: not bounds.low <= v <= bounds.high)
    texts = [
        st.sampled_from(["nan", "inf", "-inf", "NaN", "", " ", "ten", "1,5", "0x10", "[1]"]),
        outside.map(repr),
        ARG_TEXT.filter(lambda t: not _is_number(t)),
    ]
    if bounds.kind is int:
        low, high = int(bounds.low), int(bounds.high)
        texts.append(
            st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)).map(str)
        )
        texts.append(st.floats(bounds.low, bounds.high).filter(lambda v: v != int(v)).map(repr))
    if bounds.step > 1:
        off_step = st.integers(int(bounds.low), int(bounds.high)).filter(lambda v: v % bounds.step)
        texts.append(off_step.map(str))
    return st.one_of(texts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def numeric_options(command: str) -> list[tuple[str, Bounded]]:
    """(flag, bounds) of every numeric option of ``command``, read from the parser itself so
    that a new option is fuzzed without anyone remembering to add it here."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = [
        (action.option_strings[0], action.type)
        for action in sub.choices[command]._actions
        if isinstance(action.type, Bounded)
    ]
    numeric = [a for a in sub.choices[command]._actions if a.type in (int, float)]
    assert not numeric, f"{command}: numeric options without bounds: {numeric}"
    return found


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    """A folder of two small images, a dataset with a split, a valid tiny model, a new name."""
    from skimage.io import imsave

    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.model_files import save_model

    root = tmp_path_factory.mktemp("fuzz")
    for sub in ("data/images", "data/masks"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        imsave(root / f"data/images/c{i}.png", rng.integers(0, 255, (16, 16), np.uint8))
        imsave(root / f"data/masks/c{i}.png", (rng.random((16, 16)) > 0.5).astype(np.uint8) * 255)
    (root / "data/split.json").write_text(json.dumps({"train": ["c0", "c1"], "test": ["c2"]}))
    model = save_model(WaveGMS(ModelConfig(image_size=32)), root / "models/tiny")
    fine = {"data_dir": str(root / "data"), "epochs": 1, "device": "cpu"}
    (root / "fine.yaml").write_text(yaml.safe_dump(fine))
    return {
        "root": str(root),
        "images": str(root / "data/images"),
        "data": str(root / "data"),
        "model": str(model),
        "out": str(root / "out"),
    }


def valid_argv(command: str, places: dict[str, str]) -> list[str]:
    """A command line for ``command`` that would run (the fuzz spoils one part of it)."""
    model, data = places["model"], places["data"]
    argvs = {
        "train": f"train --config {places['root']}/fine.yaml",
        "finetune": f"finetune --data {data} --name new --base {model} --device cpu",
        "evaluate": f"evaluate --data {data} --model {model} --device cpu --out {places['out']}",
        "segment": f"segment {places['images']} {places['out']} --model {model} --device cpu",
        "bench": f"bench --model {model} --folder 0 --threads 0 --no-baseline",
        "models": "models",
    }
    return argvs[command].split()  # the temporary paths hold no spaces


def with_option(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag`` set to ``value`` (replaced if present), written ``flag=value``
    so that a value starting with ``-`` stays a value."""
    if flag in argv:
        i = argv.index(flag)
        argv = argv[:i] + argv[i + 2 :]
    return [*argv, f"{flag}={value}"]


@pytest.mark.parametrize("command", ["train", "finetune", "evaluate", "segment", "bench"])
@fuzz(40)
@given(data=st.data())
def test_numbers_out_of_range_are_refused(command, data, places, capsys):
    flag, bounds = data.draw(st.sampled_from(numeric_options(command)))
    value = data.draw(out_of_range(bounds))
    err = run_cli(capsys, with_option(valid_argv(command, places), flag, value))
    assert flag in err


def in_range(bounds: Bounded) -> st.SearchStrategy[str]:
    """Text that ``bounds`` must accept: every value of its range, written as users write it
    (``0.5``, ``5e-4``, ``1``), fractions included for a number, multiples of the step for a
    whole number, and both ends of the range."""
    if bounds.kind is int:
        low = -(-int(bounds.low) // bounds.step)  # the first multiple of the step in range
        multiples = st.integers(low, int(bounds.high) // bounds.step).map(lambda k: k * bounds.step)
        return st.one_of(multiples, st.sampled_from([low * bounds.step])).map(str)
    values = st.floats(bounds.low, bounds.high, allow_nan=False, allow_infinity=False)
    ends = st.sampled_from([bounds.low, bounds.high])
    written = st.sampled_from([repr, str, "{:g}".format, "{:.3e}".format, "{:.4f}".format])
    return (
        st.tuples(st.one_of(values, ends), written)
        .map(lambda vw: vw[1](vw[0]))
        .filter(
            lambda t: bounds.low <= float(t) <= bounds.high  # rounding in the format stays in range
        )
    )


@pytest.mark.parametrize("command", ["train", "finetune", "evaluate", "segment", "bench"])
@fuzz(40)
@given(data=st.data())
def test_numbers_in_range_are_accepted(command, data, places):
    """Issue 23 item 1: `--threshold 0.5`, `--lr 0.0005` and `--val-fraction 0.3` were refused
    (the whole-number step applied to fractions). Every value of every numeric option's range
    must parse, to the value written."""
    flag, bounds = data.draw(st.sampled_from(numeric_options(command)))
    value = data.draw(in_range(bounds))
    args = build_parser().parse_args(with_option(valid_argv(command, places), flag, value))
    parsed = getattr(args, flag.lstrip("-").replace("-", "_"))
    assert type(parsed) is bounds.kind and parsed == bounds.kind(value), (flag, value)


def test_every_numeric_option_is_tried_with_a_fraction(places):
    """The property above draws from every option; make sure the fractional ones exist and
    that the cases the issue names parse."""
    cases = {("segment", "--threshold"): "0.5", ("finetune", "--lr"): "0.0005"}
    cases[("finetune", "--val-fraction")] = "0.3"
    for (command, flag), value in cases.items():
        assert flag in dict(numeric_options(command))
        args = build_parser().parse_args(with_option(valid_argv(command, places), flag, value))
        assert getattr(args, flag.lstrip("-").replace("-", "_")) == float(value)


@fuzz(30)
@given(argv=st.lists(ARG_TEXT, min_size=1, max_size=4))
def test_models_refuses_any_argument(argv, places, capsys):
    run_cli(capsys, ["models", *[f"--x{a}" if a.startswith("-") else a for a in argv]])


NAMED = {  # command -> options that name a model, a path or a device
    "train": ["--config", "--init-model", "--export", "--device", "--out", "--data"],
    "finetune": ["--data", "--name", "--base", "--device", "--out"],
    "evaluate": ["--data", "--model", "--split", "--split-file", "--device", "--out"],
    "segment": ["--model", "--device"],
    "bench": ["--model"],
}


def missing_or_odd(flag: str, places: dict[str, str]) -> st.SearchStrategy[str]:
    """Values that must be refused for ``flag``: odd names, paths that do not exist."""
    missing = st.just(str(Path(places["root"]) / "no" / "such"))
    if flag == "--split":  # an odd split name; the two real ones are excluded
        return ODD_NAMES.filter(lambda t: t not in ("train", "test"))
    if flag == "--device":  # the real names; cuda and mps are refused only on some machines
        return ODD_NAMES.filter(lambda t: t.split(":")[0] not in ("auto", "cpu", "cuda", "mps"))
    if flag == "--out":  # a missing folder is made: only empty names, files, overlong names
        return st.sampled_from(["", " ", "\t", "x" * 300, places["model"]])
    if flag in ("--name", "--export"):  # a usable new name would start training
        return ODD_NAMES.filter(lambda t: not NAME_PATTERN.fullmatch(t))
    return st.one_of(ODD_NAMES, missing)


@pytest.mark.parametrize("command", list(NAMED))
@fuzz(40)
@given(data=st.data())
def test_odd_names_and_missing_paths_are_refused(command, data, places, capsys):
    flag = data.draw(st.sampled_from(NAMED[command]))
    value = data.draw(missing_or_odd(flag, places))
    run_cli(capsys, with_option(valid_argv(command, places), flag, value))


@pytest.mark.parametrize("command", ["segment", "evaluate"])
@fuzz(25)
@given(data=st.data())
def test_odd_input_and_output_folders_are_refused(command, data, places, capsys):
    value = data.draw(st.one_of(ODD_NAMES, st.just(places["model"])))  # a file, not a folder
    argv = valid_argv(command, places)
    if command == "segment":
        position = data.draw(st.sampled_from([1, 2]))
        if position == 2:  # an output folder is made where it is missing; a file is refused
            value = places["model"]
        argv[position] = value
    else:
        argv = with_option(argv, "--data", value)
    run_cli(capsys, argv)


def _valid_number(value: object, kind: type, low: float, high: float) -> bool:
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not (whole or (kind is float and isinstance(value, float))):
        return False
    return math.isfinite(value) and low <= value <= high


BAD_VALUES = st.one_of(
    st.sampled_from(["ten", "", [], {}, [1, 2], True, "nan", "1e999"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
)


@st.composite
def bad_training_configs(draw, data_dir: str) -> tuple[object, str | None]:
    """(YAML document, the setting the error must name, or None) that must be refused."""
    good = {"data_dir": data_dir, "epochs": 1, "device": "cpu"}
    kind = draw(st.sampled_from(["number", "flag", "text", "unknown", "top"]))
    if kind == "top":  # a YAML that is not a mapping
        return draw(st.one_of(st.lists(st.integers()), st.integers(), ARG_TEXT)), None
    if kind == "unknown":
        key = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1))
        return {**good, key + "_x": 1}, key + "_x"  # no setting ends in _x
    if kind == "flag":
        key = draw(st.sampled_from(["amp", "augment"]))
        return {**good, key: draw(st.sampled_from([1, "yes please", None, [], 0.5]))}, key
    if kind == "text":
        key = draw(st.sampled_from(["name", "backend", "device", "split", "init_model"]))
        bad = ["", "taef3", "sd", 1] if key == "backend" else [1, 2.5, [], {}, ""]
        return {**good, key: draw(st.sampled_from(bad))}, key
    key = draw(st.sampled_from(sorted(_NUMBERS)))
    kind_, low, high = _NUMBERS[key]
    value = draw(BAD_VALUES.filter(lambda v: not _valid_number(v, kind_, low, high)))
    return {**good, key: value}, key


@fuzz(80)
@given(data=st.data())
def test_bad_training_configs_are_refused(data, places, capsys):
    document, setting = data.draw(bad_training_configs(places["data"]))
    config = Path(places["root"]) / "bad.yaml"
    config.write_text(yaml.safe_dump(document))
    err = run_cli(capsys, ["train", "--config", str(config)])
    if setting is not None:
        assert setting in err


_copies = itertools.count()


@st.composite
def damaged_models(draw, source: str) -> Path:
    """A copy of the tiny model with its config, its weights or its values damaged."""
    from safetensors.torch import load_file, save_file

    weights = Path(source)
    config = json.loads(weights.with_suffix(".json").read_text())
    target = weights.parent / f"damaged{next(_copies)}"
    config_text = json.dumps(config)
    data = weights.read_bytes()
    kind = draw(st.sampled_from(["model section", "config text", "truncated", "non-finite"]))
    if kind == "model section":
        key = draw(st.sampled_from(["latent_channels", "image_size", "backend", "other"]))
        bad = {
            "latent_channels": st.one_of(
                st.integers().filter(lambda v: v != 32), st.sampled_from(["32", 32.0, None, []])
            ),
            "image_size": st.one_of(
                st.integers(max_value=0),
                st.integers(min_value=4097),
                st.integers(1, 4096).filter(lambda v: v % 8),
                st.sampled_from(["224", 224.5, None, True]),
            ),
            "backend": st.one_of(ARG_TEXT.filter(lambda t: t not in ("taef2", "taesd")), st.none()),
            "other": st.integers(),
        }[key]
        config["model"][key] = draw(bad)
        config_text = json.dumps(config)
    elif kind == "config text":
        config_text = draw(
            st.one_of(
                st.integers(0, len(config_text) - 1).map(lambda n: config_text[:n]),
                st.sampled_from(["[]", "null", "", '{"format": "wavegms-model"}']),
                st.sampled_from([99, "1", None]).map(
                    lambda v: json.dumps({**config, "format_version": v})
                ),
            )
        )
    elif kind == "truncated":
        data = data[: draw(st.integers(0, len(data) - 1))]
    else:
        state = load_file(weights)
        key = draw(st.sampled_from(sorted(k for k, v in state.items() if v.is_floating_point())))
        value = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        state[key].view(-1)[draw(st.integers(0, state[key].numel() - 1))] = value
        save_file(state, target.with_suffix(".safetensors"))
        data = target.with_suffix(".safetensors").read_bytes()
    target.with_suffix(".safetensors").write_bytes(data)
    target.with_suffix(".json").write_text(config_text)
    return target.with_suffix(".safetensors")


@pytest.mark.parametrize("command", ["segment", "evaluate", "finetune", "bench"])
@fuzz(25)
@given(data=st.data())
def test_damaged_model_files_are_refused(command, data, places, capsys):
    model = data.draw(damaged_models(places["model"]))
    flag = "--base" if command == "finetune" else "--model"
    run_cli(capsys, with_option(valid_argv(command, places), flag, str(model)))
