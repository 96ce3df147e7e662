"""The `wavegms` command line, end to end on tiny data."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from wavegms import __version__
from wavegms.cli import build_parser, main
from wavegms.store.catalogue import list_models


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "finetune", "evaluate", "segment", "bench", "models"):
        assert command in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"wavegms {__version__}"


def test_every_option_has_help_and_shows_its_default():
    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    for name, parser in subparsers.choices.items():
        text = " ".join(parser.format_help().split())  # unwrapped
        for action in parser._actions:
            assert action.help, f"{name} {action.dest} has no help text"
            if action.default not in (None, False, argparse.SUPPRESS):
                assert f"(default: {action.default})" in text, f"{name} {action.dest}"


# Each case exits 2 with a one-line error before torch is imported (so it takes about a second,
# not the tens of seconds of loading torch and a model).
CHEAP_ERRORS = {
    "output is a file": (["segment", "{images}", "{file}"], "is a file"),
    "threshold": (["segment", "{images}", "{out}", "--threshold", "1.5"], "[0, 1]"),
    "evaluate threshold": (["evaluate", "--data", "{root}", "--threshold", "-0.1"], "[0, 1]"),
    "empty folder": (["segment", "{empty}", "{out}"], "it is empty"),
    "dataset root": (["segment", "{root}", "{out}"], "did you mean {root}/images?"),
    "no images": (["segment", "{other}", "{out}"], "it holds notes.txt"),
    "unreadable": (["segment", "{broken}", "{out}"], "none of the 1 image files"),
}


def test_argument_errors_come_before_torch_is_imported(tiny_dataset, tmp_path):
    places = {"images": tiny_dataset / "images", "root": tiny_dataset, "out": tmp_path / "o"}
    for name in ("empty", "other", "broken"):
        places[name] = tmp_path / name
        places[name].mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not an image")
    (tmp_path / "broken" / "scan.png").write_text("not a PNG")
    places["file"] = tmp_path / "other" / "notes.txt"
    cases = {
        case: ([arg.format(**places) for arg in argv], needle.format(**places))
        for case, (argv, needle) in CHEAP_ERRORS.items()
    }
    script = (
        "import contextlib, io, json, sys\n"
        "from wavegms.cli import main\n"
        "results = {}\n"
        "for case, argv in json.loads(sys.argv[1]).items():\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        results[case] = [main(argv), err.getvalue()]\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'results': results}))\n"
    )
    argvs = json.dumps({case: argv for case, (argv, _) in cases.items()})
    run = subprocess.run(
        [sys.executable, "-c", script, argvs], capture_output=True, text=True, check=True
    )
    report = json.loads(run.stdout)
    for case, (_, needle) in cases.items():
        code, err = report["results"][case]
        assert code == 2 and needle in err and err.count("\n") == 1, (case, err)
    assert not report["torch"]
    assert not places["out"].exists()


def test_model_and_device_errors_come_before_the_model_loads(
    tiny_dataset, tmp_path, capsys, monkeypatch
):
    images, out = str(tiny_dataset / "images"), str(tmp_path / "o")
    assert main(["segment", images, out, "--model", "nope"]) == 2
    assert "no model named or at 'nope'" in capsys.readouterr().err
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["segment", images, out, "--device", "cuda"]) == 2
    assert "no CUDA GPU is available" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_train_then_evaluate_then_segment(tiny_dataset, tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        f"data_dir: {tiny_dataset}\nname: tiny-run\nimage_size: 32\nepochs: 1\nbatch_size: 2\n"
        "val_fraction: 0.34\nwarmup_epochs: 1\nseg_heads: [out]\ndevice: cpu\n"
    )
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "--export", "mine"]) == 0
    assert (run / "best.safetensors").is_file()
    assert "saved as model 'mine'" in capsys.readouterr().out

    out = tmp_path / "eval"
    args = ["evaluate", "--model", "mine", "--data", str(tiny_dataset), "--out", str(out)]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["name"] for r in rows] == ["case_6", "case_7", "mean", "std"]
    assert "HD95" in capsys.readouterr().out
    assert main(args) == 2  # outputs exist: refused without --overwrite
    assert "exist" in capsys.readouterr().err

    seg = tmp_path / "seg"
    assert main(["segment", str(tiny_dataset / "images"), str(seg), "--model", "mine"]) == 0
    assert len(list((seg / "masks").glob("*.png"))) == 8
    assert len(list((seg / "soft").glob("*.png"))) == 8
    assert len((seg / "results.csv").read_text().splitlines()) == 1 + 8


def test_clear_errors_for_bad_paths(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read training config" in capsys.readouterr().err
    assert main(["evaluate", "--model", "nope", "--data", str(tmp_path)]) == 2


def test_finetune_makes_a_new_model_and_leaves_the_base_alone(
    tiny_dataset, tiny_model_file, tmp_path, capsys
):
    base = tiny_model_file.read_bytes()
    args = ["finetune", "--data", str(tiny_dataset), "--base", "tiny", "--name", "mine"]
    args += ["--epochs", "2", "--batch-size", "2", "--device", "cpu", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "finished after 2 epoch(s)" in out and "saved as model 'mine'" in out
    assert "mine" in list_models() and tiny_model_file.read_bytes() == base
    # The fast CPU schedule cached two views (plain + augmented) of the training pairs: the
    # 8 pairs less the validation images the best epoch is chosen on.
    from safetensors.torch import load_file

    from wavegms.training.finetune import MIN_VAL_IMAGES

    views = load_file(tmp_path / "r" / "views2.safetensors")
    assert views["image"].shape[0] == 2 * (8 - MIN_VAL_IMAGES)
    assert main(args) == 2  # the name is taken now: refused, nothing overwritten
    assert "exists" in capsys.readouterr().err


def test_option_bounds_lie_within_the_training_settings():
    """The CLI refuses a training number before torch is imported; it may never accept one
    that the training config (the final word) would refuse."""
    from wavegms.cli.options import BOUNDS
    from wavegms.training.config import _NUMBERS

    for name in ("epochs", "lr", "batch_size", "val_fraction"):
        kind, low, high = _NUMBERS[name]
        bounds = BOUNDS[name]
        assert bounds.kind is kind and low <= bounds.low <= bounds.high <= high, name
    assert BOUNDS["size"].low >= _NUMBERS["image_size"][1] and BOUNDS["size"].step == 8


def test_backend_choices_are_the_segmenters():
    from wavegms.cli.options import BACKENDS, PRECISIONS
    from wavegms.inference import segmenter

    assert BACKENDS == segmenter.BACKENDS and PRECISIONS == segmenter.PRECISIONS


def test_precision_int8_reaches_the_segmenter_and_is_refused_for_workers(
    tiny_model_file, tmp_path, monkeypatch, capsys
):
    """``--precision int8`` is passed on (and printed with the run); dask workers run the
    exact default only."""
    from wavegms.cli import main
    from wavegms.inference import segmenter as module

    asked = []
    real_load = module.Segmenter.load

    def load(*args, **kwargs):
        asked.append(kwargs.get("precision"))
        return real_load(*args, **{**kwargs, "precision": "fp32"})  # the run itself: exact

    monkeypatch.setattr(module.Segmenter, "load", load)
    src = tmp_path / "in"
    src.mkdir()
    from skimage.io import imsave

    imsave(src / "a.png", (np.random.default_rng(0).random((20, 24)) * 255).astype(np.uint8))
    out = tmp_path / "out"
    assert main(["segment", str(src), str(out), "--model", "tiny", "--precision", "int8"]) == 0
    assert asked == ["int8"]
    assert "masks by model tiny (sha256 " in capsys.readouterr().out
    code = main(
        ["segment", str(src), str(tmp_path / "o2"), "--workers", "2", "--precision", "int8"]
    )
    assert code == 2 and "workers run exact" in capsys.readouterr().err
