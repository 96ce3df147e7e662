"""Runs and output folders: inputs are never written over, one run per output folder, an
interrupted folder run resumes, a training run resumes only what it was started with."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from skimage.io import imsave

from wavegms.cli import main
from wavegms.core.errors import InputError, OutputExistsError
from wavegms.core.lock import LOCK_NAME, StaleLockWarning
from wavegms.core.progress import CancelToken
from wavegms.inference.folder import run_folder, segment_folder
from wavegms.inference.folder_items import folder_items

from .cases import case

MODEL = ["--model", "tiny", "--device", "cpu"]


def snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def study(tmp_path):
    """study/images and study/masks (ground truth), three small pairs, and split.json."""
    root = tmp_path / "study"
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    names = ["p0", "p1", "p2"]
    for name in names:
        imsave(root / "images" / f"{name}.png", (rng.random((20, 24)) * 255).astype(np.uint8))
        mask = np.zeros((20, 24), np.uint8)
        mask[5:15, 6:18] = 255
        imsave(root / "masks" / f"{name}.png", mask)
    (root / "split.json").write_text(json.dumps({"test": names}))
    return root


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@case(
    "RUN-SEGMENT-INTO-STUDY",
    "`wavegms segment study/images study --overwrite`: its masks/ would be the ground truth",
    "exit 2, one line: the output must lie outside the folders read; study/masks unchanged",
)
def test_segment_into_the_study_folder_is_refused(study, tiny_model_file, capsys):
    truth = snapshot(study / "masks")
    args = ["segment", str(study / "images"), str(study), "--overwrite", *MODEL]
    assert main(args) == 2
    assert "outside" in one_error_line(capsys)
    assert snapshot(study / "masks") == truth and not (study / "soft").exists()


@case(
    "RUN-EVALUATE-INTO-DATA",
    "`wavegms evaluate --data D --out D --overwrite` (the output's masks/ is D/masks)",
    "exit 2, one line naming the overlap; the ground-truth masks are byte-identical",
)
def test_evaluate_into_its_data_folder_is_refused(study, tiny_model_file, capsys):
    truth = snapshot(study / "masks")
    args = ["evaluate", "--data", str(study), "--out", str(study), "--overwrite", *MODEL]
    assert main(args) == 2
    assert "differ" in one_error_line(capsys)
    assert snapshot(study / "masks") == truth and not (study / "results.csv").exists()


@case(
    "RUN-HIDDEN-OVERLAP",
    "An output folder whose masks/ is a symbolic link to the ground truth, or given by a "
    "relative path through `..`",
    "InputError before any work, with or without overwrite: real paths are compared",
)
def test_overlap_behind_a_link_or_relative_path_is_refused(study, segmenter, tmp_path, monkeypatch):
    truth = snapshot(study / "masks")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "masks").symlink_to(study / "masks")
    items = folder_items(study / "images")
    with pytest.raises(InputError, match="differ"):
        run_folder(segmenter, items, linked, overwrite=True)
    monkeypatch.chdir(study / "images")
    with pytest.raises(InputError, match="differ"):
        segment_folder(segmenter, ".", "../../study", overwrite=True)
    assert snapshot(study / "masks") == truth and not (linked / "soft").exists()


@case(
    "RUN-FOLDER-IN-USE",
    "A second run into an output folder while another live process's run holds it",
    "OutputExistsError naming the other run's process, host and start; nothing written",
)
def test_an_output_folder_in_use_is_refused(study, segmenter, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    other = {"pid": os.getppid(), "host": socket.gethostname(), "started": time.time()}
    (out / LOCK_NAME).write_text(json.dumps(other))
    with pytest.raises(OutputExistsError, match=f"in use by process {os.getppid()} on"):
        segment_folder(segmenter, study / "images", out)
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


@case(
    "RUN-STALE-LOCK",
    "An output folder locked by a run that died (its process is gone, same host)",
    "the lock is taken over with a warning naming the dead process; the run completes and "
    "removes its lock",
)
def test_a_dead_runs_lock_is_taken_over(study, segmenter, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    record = {"pid": dead.pid, "host": socket.gethostname(), "started": time.time()}
    (out / LOCK_NAME).write_text(json.dumps(record))
    with pytest.warns(StaleLockWarning, match=f"process {dead.pid}"):
        report = segment_folder(segmenter, study / "images", out)
    assert report.written == 3 and not (out / LOCK_NAME).exists()


@case(
    "RUN-RESUME-FOLDER",
    "`wavegms segment IN OUT --resume` after a run stopped after its first image (and a "
    "second image left with only its soft mask)",
    "finished masks kept untouched, the rest segmented, results.csv over every image; "
    "without --resume the folder is refused as existing",
)
def test_an_interrupted_folder_run_resumes(study, tiny_model_file, tmp_path, capsys):
    from wavegms.inference.segmenter import Segmenter

    token = CancelToken()

    def stop_after_first(progress) -> None:
        if progress.done >= 1:
            token.cancel()

    out = tmp_path / "out"
    segmenter = Segmenter.load("tiny", device="cpu", batch_size=1)
    part = segment_folder(segmenter, study / "images", out, progress=stop_after_first, cancel=token)
    assert part.cancelled and part.written == 1
    kept = (out / "masks" / "p0.png").stat().st_mtime_ns
    shutil.copyfile(out / "soft" / "p0.png", out / "soft" / "p1.png")  # p1 half written
    args = ["segment", str(study / "images"), str(out), *MODEL]
    assert main(args) == 2 and "already exist" in one_error_line(capsys)
    assert main([*args, "--resume"]) == 0
    assert "1 of them kept" in capsys.readouterr().out
    assert (out / "masks" / "p0.png").stat().st_mtime_ns == kept
    segment_folder(segmenter, study / "images", tmp_path / "whole")
    for name in ("p0", "p1", "p2"):
        for sub in ("masks", "soft"):
            assert (out / sub / f"{name}.png").read_bytes() == (
                tmp_path / "whole" / sub / f"{name}.png"
            ).read_bytes(), (sub, name)
    assert (out / "results.csv").read_bytes() == (tmp_path / "whole" / "results.csv").read_bytes()
    assert not (out / LOCK_NAME).exists()


def train_config(data, out, **kw):
    from wavegms.training.config import TrainConfig

    base = dict(
        data_dir=str(data), out_dir=str(out), image_size=32, epochs=1, batch_size=2,
        val_fraction=0.34, warmup_epochs=1, seg_heads=("out",), device="cpu",
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


@case(
    "RUN-RESUME-OTHER-DATA",
    "`wavegms train` again with the same run folder but another data folder (or other "
    "settings, e.g. the learning rate)",
    "InputError naming what differs and how to start fresh (another --out, or delete the "
    "folder); the checkpoint is byte-identical",
)
def test_a_run_folder_resumes_only_what_it_was_started_with(tiny_dataset, tmp_path):
    from wavegms.training.trainer import train

    run = tmp_path / "run"
    train(train_config(tiny_dataset, run))
    before = snapshot(run)
    other = tmp_path / "other"
    shutil.copytree(tiny_dataset, other)
    for sub in ("images", "masks"):
        (other / sub / "case_0.png").unlink()
    (other / "split.json").unlink()
    with pytest.raises(
        InputError, match="different data folder, split, training/validation"
    ) as err:
        train(train_config(other, run, split=None))
    assert "--out" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="different lr;"):
        train(train_config(tiny_dataset, run, lr=1e-2))
    assert snapshot(run) == before


@case(
    "RUN-FINETUNE-OTHER-NAME",
    "`wavegms finetune --out RUN --name b` where RUN holds the fine-tuning of model a",
    "InputError: the run folder holds a run started with a different name; no model b is "
    "installed and model a is untouched",
)
def test_finetune_into_another_models_run_folder_is_refused(
    tiny_dataset, tmp_path, tiny_model_file
):
    from wavegms.store.paths import user_models_dir
    from wavegms.training.finetune import FinetuneRequest, finetune

    run = tmp_path / "run"
    request = FinetuneRequest(
        data_dir=str(tiny_dataset), base_model="tiny", new_name="a", out_dir=str(run),
        device="cpu", epochs=1, batch_size=4, augment=False,
    )  # fmt: skip
    finetune(request)
    installed = snapshot(user_models_dir())
    request.new_name = "b"
    with pytest.raises(InputError, match="different name"):
        finetune(request)
    assert snapshot(user_models_dir()) == installed


@case(
    "RUN-MODEL-NAME-DOT",
    "A new model named `busi.v2` (fine-tune, train --export), beside a model busi",
    "InputError stating the name rule (letters, digits, - and _; no dots) before any "
    "training; a model file named x.v2 maps to x.v2.safetensors, never x.safetensors",
)
def test_a_model_name_with_a_dot_is_refused(tiny_model_file, tmp_path):
    from wavegms.store.catalogue import model_paths
    from wavegms.store.reservations import check_new_model_name
    from wavegms.training.finetune import FinetuneRequest, finetune

    request = FinetuneRequest(data_dir=str(tmp_path), base_model="tiny", new_name="tiny.v2")
    with pytest.raises(InputError, match="no dots"):
        finetune(request)
    for bad in ("", "-x", "a b", "x" * 65, "../x", "é"):
        with pytest.raises(InputError, match="letters, digits"):
            check_new_model_name(bad)
    assert model_paths(tmp_path / "busi.v2")[0].name == "busi.v2.safetensors"


@case(
    "RUN-MODEL-IN-CWD",
    "Model files `tiny.safetensors` + `tiny.json` (or the default's name) in the current "
    "working folder",
    "the name resolves to the user (or shipped) model only; the working folder's file loads "
    "only when given as a path (./tiny.safetensors)",
)
def test_model_files_in_the_working_folder_never_replace_a_named_model(
    tiny_model_file, tmp_path, monkeypatch
):
    from wavegms.core.errors import ModelFileError
    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.catalogue import resolve_model
    from wavegms.store.model_files import save_model

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    save_model(WaveGMS(ModelConfig(image_size=32)), cwd / "tiny")
    save_model(WaveGMS(ModelConfig(image_size=32)), cwd / "other")
    monkeypatch.chdir(cwd)
    assert resolve_model("tiny") == tiny_model_file
    assert resolve_model("./tiny.safetensors").resolve() == cwd / "tiny.safetensors"
    assert resolve_model("other.safetensors").resolve() == cwd / "other.safetensors"
    with pytest.raises(ModelFileError, match=r"no model named or at 'other'.*as a path"):
        resolve_model("other")


@case(
    "RUN-STALE-VIEWS",
    "A CPU run (cached target views) stopped before its first checkpoint, then started again "
    "in the same run folder on other images",
    "The saved views are recognised as made from other images (a fingerprint in their "
    "header), encoded again with a warning, and never trained on",
)
def test_views_of_other_images_are_not_reused(tiny_dataset, tmp_path):
    from wavegms.data.pairs import find_pairs
    from wavegms.training.config import TrainConfig
    from wavegms.training.dataset import InMemoryDataset
    from wavegms.training.targets import CachedViews

    config = TrainConfig(data_dir=str(tiny_dataset), image_size=32, cached_views=2, device="cpu")
    pairs = find_pairs(tiny_dataset / "images", tiny_dataset / "masks")

    def views(chosen):
        dataset = InMemoryDataset(chosen, 32)
        return CachedViews(dataset, config, _Encoder(), "cpu", None, run_dir=tmp_path)

    first = views(pairs[:4])
    first.prepare(None, None)
    again = views(pairs[:4])
    again.prepare(None, None)  # same images: the saved views are reused as they are
    assert all(torch_equal(first.views[k], again.views[k]) for k in first.views)
    other = views(pairs[4:])
    with pytest.warns(UserWarning, match="made from other training images"):
        other.prepare(None, None)
    assert not torch_equal(other.views["image"], first.views["image"])
    assert other.fingerprint() != first.fingerprint()


class _Encoder:
    """A stand-in frozen encoder (the views' caching is under test, not the encoder)."""

    def encode(self, x):
        import torch

        return torch.nn.functional.avg_pool2d(x, 8).repeat(1, 2, 1, 1)


def torch_equal(a, b) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.equal(a, b))
