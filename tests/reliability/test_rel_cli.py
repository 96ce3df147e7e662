"""The command line given bad arguments, configs and models: one line, exit code 2, in time.

(tests/test_cli_fuzz.py generates many more such inputs; these are the cases found by hand.)
"""

from __future__ import annotations

import pytest
import torch

from wavegms.cli import main
from wavegms.core.errors import WaveGMSError
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.store.catalogue import list_models
from wavegms.store.model_files import save_model

from .cases import case


def refused(capsys, argv: list[str]) -> str:
    """Assert that ``wavegms argv`` is refused in one ``error:`` line; return that line."""
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err, (argv, err)
    assert err.startswith("error: ") and err.count("\n") == 1, (argv, err)
    return err


@case(
    "CLI-BAD-NUMBERS",
    "`finetune --lr inf` (issue #12 saw it install a NaN model), --lr nan, "
    "--epochs ten or 0, --val-fraction 1, `bench --size 0/33 --repeats 0 --threads -1 "
    "--height 0`, `segment --threshold nan`",
    "Exit code 2 and one line naming the option and its range, before any model or data is "
    "read; nothing is trained or installed",
)
def test_bad_numbers(capsys, tiny_dataset, tiny_model_file, tmp_path):
    finetune = ["finetune", "--data", str(tiny_dataset), "--base", "tiny", "--name", "new"]
    finetune += ["--out", str(tmp_path / "run")]
    images = str(tiny_dataset / "images")
    for argv, needle in (
        ([*finetune, "--lr", "inf"], "--lr: must lie in [1e-09, 10], not 'inf'"),
        ([*finetune, "--lr", "nan"], "--lr: must lie in"),
        ([*finetune, "--epochs", "ten"], "--epochs: 'ten' is not a whole number"),
        ([*finetune, "--epochs", "0"], "--epochs: must lie in [1, 1e+06]"),
        ([*finetune, "--val-fraction", "1"], "--val-fraction: must lie in"),
        (["bench", "--size", "0"], "--size: must lie in [8, 4096]"),
        (["bench", "--size", "33"], "--size: must be a multiple of 8"),
        (["bench", "--repeats", "0"], "--repeats: must lie in"),
        (["bench", "--threads", "-1"], "--threads: must lie in [0, 1024]"),
        (["bench", "--height", "0"], "--height: must lie in"),
        (["segment", images, str(tmp_path / "o"), "--threshold", "nan"], "--threshold"),
    ):
        assert needle in refused(capsys, argv), argv
    assert not (tmp_path / "run").exists() and not (tmp_path / "o").exists()
    assert sorted(list_models()) == ["tiny"]


@case(
    "CLI-BAD-NAMES",
    "`--model .`, `--model ''`, a 300-character model name, `--device meta`, "
    "`finetune --name` with 300 characters, a dot ('v1.2' was saved as 'v1'), a space or a "
    "line break, and `train --export bad/name`",
    "Exit code 2 and one line (a line break in a name never splits it), before training "
    "starts; were: ValueError, OSError 'File name too long', NotImplementedError on meta "
    "tensors, or a failed export after the whole training run",
)
def test_bad_names(capsys, tiny_dataset, tiny_model_file, tmp_path):
    images, out = str(tiny_dataset / "images"), str(tmp_path / "o")
    finetune = ["finetune", "--data", str(tiny_dataset), "--base", "tiny"]
    config = tmp_path / "c.yaml"
    config.write_text(f"data_dir: {tiny_dataset}\nimage_size: 32\nepochs: 1\ndevice: cpu\n")
    for argv, needle in (
        (["segment", images, out, "--model", "."], "'.' is not a usable model name: letters"),
        (["segment", images, out, "--model", ""], "'' is not a usable model name"),
        (["segment", images, out, "--model", "x" * 300], "is not a usable model name"),
        (["segment", images, out, "--model", "mine"], "no model named or at 'mine'"),
        (["segment", images, out, "--model", "tiny", "--device", "meta"], "cannot run a model"),
        ([*finetune, "--name", "x" * 300], "1-64 characters"),
        ([*finetune, "--name", "v1.2"], "'v1.2' is not a usable model name"),
        ([*finetune, "--name", "my model"], "is not a usable model name"),
        ([*finetune, "--name", "a\nb"], "'a\\nb' is not a usable model name"),
        (["train", "--config", str(config), "--export", "bad/name"], "not a usable model name"),
    ):
        assert needle in refused(capsys, argv), argv
    assert not (tmp_path / "o").exists() and sorted(list_models()) == ["tiny"]


@case(
    "CLI-BAD-YAML",
    "Training configs that are a list, say `epochs: ten`, `lr: .inf`, `backend: foo` or "
    "`amp: maybe`",
    "Exit code 2 and one line naming the setting (backend: the known ones), before the data "
    "or any model is read",
)
def test_bad_training_configs(capsys, tiny_dataset, tmp_path):
    config = tmp_path / "c.yaml"
    for text, needle in (
        ("- 1\n- 2\n", "must be a mapping of settings"),
        ("epochs: ten\n", "epochs must be a whole number, not 'ten'"),
        ("lr: .inf\n", "lr must lie between"),
        ("backend: foo\n", "backend must be one of taef2, taesd, not 'foo'"),
        ("amp: maybe\n", "amp must be true or false"),
    ):
        body = text if text.startswith("-") else f"data_dir: {tiny_dataset}\n{text}"
        config.write_text(body)
        err = refused(capsys, ["train", "--config", str(config), "--out", str(tmp_path / "r")])
        assert needle in err, (text, err)
    assert not (tmp_path / "r").exists()


@case(
    "CLI-DAMAGED-BASE",
    "`wavegms finetune --base` a model file with NaN weights",
    "Exit code 2 and one line naming the file and tensor, before the training data is read "
    "or a run folder made",
)
def test_damaged_base_model(capsys, tiny_dataset, tmp_path):
    model = WaveGMS(ModelConfig(image_size=32))
    with torch.no_grad():
        next(iter(model.ewave.parameters())).fill_(float("nan"))
    base = save_model(model, tmp_path / "nan")
    argv = ["finetune", "--data", str(tiny_dataset), "--base", str(base), "--name", "new"]
    err = refused(capsys, [*argv, "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert "nan.safetensors holds weights that are not finite" in err
    assert not (tmp_path / "run").exists() and "new" not in list_models()


@case(
    "CLI-USAGE",
    "Usage mistakes: an unknown option, a missing required option, no command, text where a "
    "number goes",
    "One line starting with 'error:' that names the mistake and the --help to read, exit "
    "code 2 (was: argparse's usage block and SystemExit)",
)
def test_usage_errors_are_one_line(capsys):
    for argv, needle in (
        (["models", "--colour"], "unrecognized arguments: --colour"),
        (["finetune", "--data", "d"], "required: --name"),
        ([], "required: command"),
        (["bench", "--width", "wide"], "'wide' is not a whole number"),
    ):
        err = refused(capsys, argv)
        assert needle in err and "--help" in err, (argv, err)


@case(
    "CLI-FRACTIONS",
    "Fractional option values users type: `segment --threshold 0.5` and `0.3`, "
    "`finetune --lr 0.0005 --val-fraction 0.3`, a threshold written 5e-1 (issue 23: every "
    "fraction was refused as 'must be a multiple of 1')",
    "Accepted as written and used: the segment run writes its masks and records the threshold "
    "in results.csv; tests/test_cli_fuzz.py checks every value of every numeric option's range",
)
def test_fractional_values_are_accepted(capsys, tiny_dataset, tiny_model_file, tmp_path):
    import csv

    from wavegms.cli import build_parser

    images = str(tiny_dataset / "images")
    for threshold in ("0.3", "5e-1"):
        out = tmp_path / f"out{threshold}"
        argv = ["segment", images, str(out), "--model", "tiny", "--device", "cpu"]
        assert main([*argv, "--threshold", threshold]) == 0, capsys.readouterr().err
        rows = list(csv.DictReader((out / "results.csv").open()))
        assert len(rows) == 8 and {float(r["threshold"]) for r in rows} == {float(threshold)}
    finetune = ["finetune", "--data", str(tiny_dataset), "--base", "tiny", "--name", "new"]
    args = build_parser().parse_args([*finetune, "--lr", "0.0005", "--val-fraction", "0.3"])
    assert (args.lr, args.val_fraction) == (0.0005, 0.3)


@case(
    "CLI-DASK-CLUSTER",
    "`segment --workers 2` with no loopback network (simulated; `unshare -n` shows it for "
    "real) and where the local cluster fails to start for another reason (LocalCluster "
    "raising), `--scheduler notanaddress`, `--scheduler inproc://x`, `--scheduler tcp://h:1/x`, "
    "and `--workers 64` on a 2-core machine",
    "Exit 2 with one line each, no traceback: no loopback said at once (not after a minute), "
    "the cluster that could not start and how to run without it; the address form dask needs "
    "(tcp://HOST:PORT); the machine's core count and the workers it takes; found before any "
    "model loads (was: 66 lines of chained tracebacks after 63 s, raw ValueErrors, 48 worker "
    "tracebacks)",
)
def test_dask_cluster_problems_are_one_line(capsys, tiny_dataset, tiny_model_file, monkeypatch):
    distributed = pytest.importorskip("distributed")
    images, out = str(tiny_dataset / "images"), str(tiny_dataset.parent / "out")
    segment = ["segment", images, out, "--model", "tiny", "--device", "cpu"]
    for option, needle in (
        (["--scheduler", "notanaddress"], "tcp://HOST:PORT"),
        (["--scheduler", "inproc://x"], "no dask scheduler address"),
        (["--scheduler", "tcp://h:1/x"], "no dask scheduler address"),
    ):
        assert needle in refused(capsys, [*segment, *option])
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    err = refused(capsys, [*segment, "--workers", "64"])
    assert "2 CPU core(s)" in err and "1 to 2" in err

    def no_loopback(*args, **kwargs):
        raise OSError("Timed out trying to connect to tcp://127.0.0.1:40101 after 30 s")

    monkeypatch.setattr(distributed, "LocalCluster", no_loopback)
    err = refused(capsys, [*segment, "--workers", "2"])
    assert "cannot start a local dask cluster of 2 worker(s)" in err
    assert "run without --workers" in err
    monkeypatch.setattr("wavegms.inference.dask_cluster._loopback_works", lambda: False)
    err = refused(capsys, [*segment, "--workers", "2"])
    assert "loopback network (127.0.0.1)" in err and "run without --workers" in err
    assert not (tiny_dataset.parent / "out" / "masks").exists()


@case(
    "CLI-MODELS-DAMAGED",
    "`wavegms models` with a damaged user model (its JSON is not JSON) listed before good ones",
    "Every model is listed: the damaged one with 'damaged, not usable' and why, the good ones "
    "after it; exit 0 (was: the listing stopped at the damaged model)",
)
def test_models_lists_past_a_damaged_model(capsys, tiny_model_file):
    save_model(WaveGMS(ModelConfig(image_size=32)), tiny_model_file.parent / "zeta")
    (tiny_model_file.parent / "alpha.safetensors").write_bytes(b"x")
    (tiny_model_file.parent / "alpha.json").write_text("{ not json")
    capsys.readouterr()
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["alpha", "tiny", "zeta"], lines
    assert "damaged, not usable" in lines[0]


@case(
    "CLI-EXPORT-IMAGE-PLANES",
    "`wavegms export MODEL pkg.zip --image` given a multi-frame DICOM, a 3D NIfTI or a 3-page TIFF",
    "One line: the file holds N planes and the package's test image must be one 2D image "
    "(save the plane as PNG); no package is written (was: '562 channels in the last axis')",
)
def test_export_image_of_several_planes(capsys, tiny_model_file, tmp_path):
    import numpy as np
    import tifffile

    from clinical_files import write_dicom, write_nifti
    from wavegms.export.package_files import example_image

    rng = np.random.default_rng(0)
    files = [
        write_dicom(tmp_path / "cine.dcm", rng.integers(0, 4000, (4, 20, 20), np.uint16)),
        write_nifti(tmp_path / "vol.nii", rng.random((20, 20, 6)).astype(np.float32), (1, 1, 1)),
    ]
    pages = rng.integers(0, 255, (3, 20, 20), np.uint8)
    tifffile.imwrite(tmp_path / "pages.tif", pages, photometric="minisblack")
    files.append(tmp_path / "pages.tif")
    for path, planes in zip(files, (4, 6, 3), strict=True):
        with pytest.raises(WaveGMSError, match=f"holds {planes} planes"):
            example_image(path)
    pytest.importorskip("bioimageio.spec")
    package = tmp_path / "pkg.zip"
    err = refused(capsys, ["export", "tiny", str(package), "--image", str(files[0])])
    assert "holds 4 planes" in err and not package.exists()


@case(
    "CLI-LIBRARY-WARNINGS",
    "Libraries speaking while a command runs: a Python warning from a library module, ONNX "
    "Runtime's quantiser logging advice on the root logger, pydicom logging a note and an error",
    "Each Python warning is one 'warning: <message>' line without the library's source line; "
    "log records below ERROR are dropped, errors are one 'warning:' line; afterwards logging "
    "and warnings are as they were",
)
def test_library_output_is_filtered(capsys):
    import logging
    import warnings

    from wavegms.cli import library_output

    before = (warnings.showwarning, logging.getLogger().handlers[:], logging.getLogger().level)
    with library_output():
        warnings.warn_explicit("odd value", UserWarning, "/lib/site-packages/x.py", 7)
        logging.getLogger().warning("Please consider to run pre-processing before quantization")
        logging.getLogger("pydicom").warning("a note for developers")
        logging.getLogger("pydicom").error("Invalid value for VR DS")
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: odd value", "warning: Invalid value for VR DS"]
    after = (warnings.showwarning, logging.getLogger().handlers[:], logging.getLogger().level)
    assert after == before
