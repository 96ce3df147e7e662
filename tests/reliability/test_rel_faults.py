"""Faults: Stop during fine-tuning, processes killed while writing, out of memory, no network."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from wavegms.core.errors import OutputWriteError, ReducedBatchWarning, WaveGMSError
from wavegms.core.files import atomic_write
from wavegms.core.progress import CancelToken
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.store import model_files as model_io
from wavegms.store.catalogue import model_paths
from wavegms.training.config import TrainConfig
from wavegms.training.trainer import train

from .cases import case

REPO = Path(__file__).resolve().parents[2]


def config(data, run, **changes) -> TrainConfig:
    """A training run that takes about a second per epoch on one CPU thread."""
    settings = dict(
        data_dir=str(data), out_dir=str(run), image_size=32, epochs=1, batch_size=2,
        val_fraction=0.34, warmup_epochs=1, seg_heads=("out",), device="cpu", augment=False,
    )  # fmt: skip
    return TrainConfig(**{**settings, **changes})


def snapshot(folder: Path) -> dict[str, bytes]:
    """The contents of a folder's files, hidden (temporary) ones excepted."""
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def hidden(folder: Path) -> list[str]:
    """Temporary and partial files: atomic writes and downloads give them a leading dot."""
    return sorted(p.name for p in folder.rglob(".*"))


def run_and_get_killed(code: str) -> None:
    """Run ``code`` in a fresh Python that kills itself with SIGKILL (no clean-up runs)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


@case(
    "FAULT-STOP-TRAINING",
    "Stop pressed in the middle of the second epoch of a fine-tuning run",
    "The run ends as cancelled after 1 epoch; last checkpoint byte-identical to the end of "
    "epoch 1; best model loadable; base model untouched; no temporary files",
)
def test_stop_during_fine_tuning(tiny_dataset, tmp_path, tiny_model_file):
    base = model_paths(tiny_model_file)
    base_before = [p.read_bytes() for p in base]
    run = tmp_path / "run"
    train(config(tiny_dataset, run, init_model="tiny"))
    after_epoch_1 = snapshot(run)
    cancel = CancelToken()

    def stop_after_one_batch(report):
        if report.stage == "batch" and report.done == 1:
            cancel.cancel()

    result = train(
        config(tiny_dataset, run, init_model="tiny", epochs=2), stop_after_one_batch, cancel
    )
    assert result.cancelled and result.epochs_done == 1
    assert snapshot(run) == after_epoch_1
    assert model_io.load_model(result.best_model).metadata["epoch"] == 1
    assert [p.read_bytes() for p in base] == base_before
    assert hidden(run) == []


@case(
    "FAULT-STOP-EARLY",
    "Stop pressed before the first epoch of a fine-tuning ends (wavegms.finetune)",
    "No model is installed, the user's models are unchanged and the base model is untouched",
)
def test_stop_before_the_first_epoch(tiny_dataset, tmp_path, tiny_model_file):
    from wavegms.store.paths import user_models_dir
    from wavegms.training.finetune import FinetuneRequest, finetune

    models_before = snapshot(user_models_dir())
    request = FinetuneRequest(
        data_dir=str(tiny_dataset), base_model="tiny", new_name="mine",
        out_dir=str(tmp_path / "run"), device="cpu", epochs=1, batch_size=2,
    )  # fmt: skip
    cancel = CancelToken()
    cancel.cancel()
    outcome = finetune(request, cancel=cancel)
    assert outcome.cancelled and outcome.epochs_done == 0 and outcome.installed is None
    assert snapshot(user_models_dir()) == models_before


@case(
    "FAULT-WRITE-FAILS",
    "A model save whose write fails halfway (disk full), and a write interrupted by Ctrl+C",
    "OutputWriteError naming the file and the reason; the previous file byte-identical and "
    "still loadable; no temporary file left",
)
def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    torch.manual_seed(0)
    path = model_io.save_model(WaveGMS(ModelConfig(image_size=32)), tmp_path / "m")
    before = snapshot(tmp_path)

    def half_then_disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half of the tensors")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_io, "save_file", half_then_disk_full)
    with pytest.raises(OutputWriteError, match=r"m\.safetensors: no space left on device"):
        model_io.save_model(WaveGMS(ModelConfig(image_size=32)), path, overwrite=True)
    assert snapshot(tmp_path) == before and hidden(tmp_path) == []

    def interrupted(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert snapshot(tmp_path) == before and hidden(tmp_path) == []
    model_io.load_model(path)


@case(
    "FAULT-KILL-CHECKPOINT",
    "The process is killed (SIGKILL) in the middle of overwriting a training checkpoint",
    "The previous checkpoint is byte-identical; running the same config again removes the "
    "leftover temporary file and resumes from it",
)
def test_killed_while_writing_a_checkpoint(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(config(tiny_dataset, run))
    before = snapshot(run)
    run_and_get_killed(
        f"""
        import os, signal
        from pathlib import Path
        from wavegms.core.files import atomic_write

        def write(tmp):
            tmp.write_bytes(b"the first half of a new checkpoint")
            os.kill(os.getpid(), signal.SIGKILL)

        atomic_write(Path({str(run / "last.safetensors")!r}), write)
        """
    )
    assert snapshot(run) == before
    assert [name.startswith(".last.safetensors.") for name in hidden(run)] == [True]
    batches = []
    result = train(config(tiny_dataset, run), progress=lambda r: batches.append(r.stage))
    assert result.epochs_done == 1 and "batch" not in batches  # resumed, nothing retrained
    assert hidden(run) == [] and snapshot(run) == before


@case(
    "FAULT-KILL-BETWEEN-FILES",
    "A run dies after writing a checkpoint's weights but before its last.json",
    "Resuming continues from the checkpoint that was written (its state is inside the weights "
    "file), not from an older epoch with newer weights",
)
def test_killed_between_the_checkpoint_files(tiny_dataset, tmp_path, monkeypatch):
    from wavegms.training import checkpoint as train_module

    run = tmp_path / "run"
    train(config(tiny_dataset, run))
    real_write_json = train_module.write_json

    class Killed(BaseException):
        pass

    def dies_at_last_json(path, obj):
        if Path(path).name == "last.json":
            raise Killed
        return real_write_json(path, obj)

    monkeypatch.setattr(train_module, "write_json", dies_at_last_json)
    with pytest.raises(Killed):
        train(config(tiny_dataset, run, epochs=2))
    monkeypatch.undo()
    assert json.loads((run / "last.json").read_text())["epoch"] == 1  # the older file
    stages = []
    result = train(config(tiny_dataset, run, epochs=2), progress=lambda r: stages.append(r.stage))
    assert result.epochs_done == 2 and len(result.history) == 2
    assert "batch" not in stages  # epoch 2 was not trained a second time


@case(
    "FAULT-KILL-PAIR",
    "napari is killed (SIGKILL) while a corrected image/mask pair is being written",
    "The training set's manifest and earlier pairs are byte-identical; tidy() (run before "
    "fine-tuning) removes the half-written pair; adding works again",
)
def test_killed_while_adding_a_pair(tmp_path):
    from wavegms.training.training_set import TrainingSet

    pairs = TrainingSet("proj")
    first = pairs.add(np.full((20, 24), 90, np.uint8), np.ones((20, 24), np.uint8), "first")
    before = {d: snapshot(pairs.root / d) for d in ("images", "masks")}
    manifest = (pairs.root / "manifest.json").read_bytes()
    run_and_get_killed(
        """
        import os, signal
        import numpy as np
        from skimage import io as skio
        from wavegms.training.training_set import TrainingSet

        real_imsave = skio.imsave

        def imsave(fname, arr, **kwargs):
            real_imsave(fname, arr, **kwargs)
            if "/masks/" in str(fname):  # the new pair's mask: half written, then killed
                with open(fname, "r+b") as f:
                    f.truncate(20)
                os.kill(os.getpid(), signal.SIGKILL)

        skio.imsave = imsave
        TrainingSet("proj").add(np.zeros((20, 24), np.uint8), np.ones((20, 24), np.uint8), "new")
        """
    )
    assert (pairs.root / "manifest.json").read_bytes() == manifest
    assert pairs.entries() == [first]
    assert len(list((pairs.root / "masks").iterdir())) == 2  # the pair's leftovers are there
    pairs.tidy()
    assert {d: snapshot(pairs.root / d) for d in ("images", "masks")} == before
    assert hidden(pairs.root / "masks") == []
    assert pairs.add(np.zeros((20, 24), np.uint8), np.ones((20, 24), np.uint8), "new").mask_area


def fail_large_batches(segmenter, monkeypatch, largest: int) -> list[int]:
    """Make the model raise CUDA's out-of-memory error for batches above ``largest``."""
    # Out of memory is the GPU case, where the eager model runs batches (the traced graph is
    # the CPU path and runs one image at a time).
    segmenter.traced = False
    real = segmenter.model.predict_soft
    sizes: list[int] = []

    def forward(batch):
        sizes.append(len(batch))
        if len(batch) > largest:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(batch)

    monkeypatch.setattr(segmenter.model, "predict_soft", forward)
    return sizes


def images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((20, 24, 3)).astype(np.float32) for _ in range(n)]


@case(
    "FAULT-OOM",
    "(GPU) out of memory at batch size 8 (simulated: the model raises torch.OutOfMemoryError "
    "above 2 images)",
    "The batch size is halved with a ReducedBatchWarning until it fits; the same soft masks",
)
def test_out_of_memory_retries_smaller_batches(segmenter, monkeypatch):
    segmenter.traced = False  # the eager path, as on a GPU (see fail_large_batches)
    expected = segmenter.predict_soft(images(7))
    segmenter.batch_size = 8
    sizes = fail_large_batches(segmenter, monkeypatch, largest=2)
    with pytest.warns(ReducedBatchWarning) as warned:
        got = segmenter.predict_soft(images(7))
    assert [str(w.message).split("; ")[-1] for w in warned] == [
        "going on with batch size 4",
        "going on with batch size 2",
    ]
    assert sizes == [7, 4, 2, 2, 2, 1] and segmenter.batch_size == 2
    np.testing.assert_allclose(got, expected, atol=1e-5)
    binary, _ = segmenter.segment(np.stack(images(5))[..., 0])  # later calls use the new size
    assert binary.shape == (5, 20, 24) and max(sizes[6:]) <= 2


@case(
    "FAULT-OOM-ONE",
    "Out of memory even for one image",
    "WaveGMSError 'out of memory ... even for a single image; ... choose the device cpu' "
    "(no endless retry)",
)
def test_out_of_memory_for_one_image(segmenter, monkeypatch):
    sizes = fail_large_batches(segmenter, monkeypatch, largest=0)
    with pytest.warns(ReducedBatchWarning), pytest.raises(WaveGMSError, match="single image"):
        segmenter.predict_soft(images(3))
    assert sizes == [3, 2, 1]


@case(
    "FAULT-NO-NETWORK",
    "TAEF2 weights needed, WAVEGMS_TAEF2 unset, and no network (sockets blocked)",
    "the TAEF2 shipped in the package loads (sha256-checked) without any network attempt; "
    "a named folder without the files: WeightsNotFoundError naming the folder and the files",
)
def test_no_network_for_the_weights(tmp_path, monkeypatch):
    from wavegms.core.errors import WeightsNotFoundError
    from wavegms.net.autoencoders import load_autoencoder

    monkeypatch.delenv("WAVEGMS_TAEF2", raising=False)
    attempts: list[tuple] = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert load_autoencoder("taef2").latent_channels == 32
    assert attempts == []
    with pytest.raises(WeightsNotFoundError, match=r"not found in .*nowhere.*must hold"):
        load_autoencoder("taef2", tmp_path / "nowhere")
