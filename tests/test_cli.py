"""The `wavegms` command line, end to end on tiny data."""

from __future__ import annotations

import csv

import pytest

from wavegms.cli import main
from wavegms.store.catalogue import list_models


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "finetune", "evaluate", "segment", "bench", "models"):
        assert command in out


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
    # The fast CPU schedule cached two views (plain + augmented) of the 6 training pairs.
    from safetensors.torch import load_file

    views = load_file(tmp_path / "r" / "views2.safetensors")
    assert views["image"].shape[0] == 2 * 6
    assert main(args) == 2  # the name is taken now: refused, nothing overwritten
    assert "exists" in capsys.readouterr().err
