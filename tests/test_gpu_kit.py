"""The GPU training kit: the pack (scripts/gpu_pack.py) and the run's bookkeeping
(scripts/gpu_train.py). The run itself needs minutes; it is rehearsed by hand on CPU
(docs/gpu_training.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wavegms.core.errors import InputError
from wavegms.data.pairs import dataset_pairs
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.store.model_files import save_model
from wavegms.training.dataset import InMemoryDataset

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SIZE = 32


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpu_pack():
    return load_script("gpu_pack")


@pytest.fixture(scope="module")
def gpu_train():
    return load_script("gpu_train")


def smooth_picture(rng, height: int, width: int, colour: bool) -> np.ndarray:
    """A gradient with a disk and mild noise: photo-like, so JPEG behaves as on real images."""
    yy, xx = np.mgrid[:height, :width] / max(height, width)
    cy, cx = rng.uniform(0.3, 0.6, 2)
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 < 0.05
    base = 0.3 + 0.4 * xx + 0.2 * yy - 0.2 * disk + 0.02 * rng.standard_normal((height, width))
    tint = rng.uniform(0.7, 1.0, 3) if colour else np.ones(3)
    picture = np.clip(base[..., None] * tint, 0, 1)
    return np.round(picture * 255).astype(np.uint8)


@pytest.fixture
def toy_source(tmp_path) -> Path:
    """Four training pairs (two grey, two colour, of different sizes) and two test pairs."""
    root = tmp_path / "toy"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    names = [f"case_{i}" for i in range(6)]
    for i, name in enumerate(names):
        height, width = (40 + 4 * i, 52 - 2 * i)
        picture = smooth_picture(rng, height, width, colour=i % 2 == 1)
        Image.fromarray(picture[..., 0] if i % 2 == 0 else picture).save(
            root / "images" / f"{name}.{'png' if i % 2 == 0 else 'jpg'}"
        )
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : height // 2, width // 3 : 2 * width // 3] = 255
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    (root / "split.json").write_text(json.dumps({"train": names[:4], "test": names[4:]}))
    return root


def test_pack_holds_the_training_split_as_training_sees_it(gpu_pack, toy_source, tmp_path):
    out = tmp_path / "pack"
    manifest = gpu_pack.make_pack(out, {"toy": toy_source}, size=SIZE, wheels=False)

    packed = out / "toy"
    split = json.loads((packed / "split.json").read_text())
    assert split == {"train": ["case_0", "case_1", "case_2", "case_3"]}  # no test names
    stems = {p.stem for p in (packed / "images").iterdir()}
    assert stems == {p.stem for p in (packed / "masks").iterdir()} == set(split["train"])
    assert not (out / "taef2").exists()  # the package carries TAEF2 itself
    entry = manifest["datasets"]["toy"]
    assert (entry["png_images"], entry["jpeg_images"]) == (2, 2)
    assert json.loads((out / "pack.json").read_text()) == manifest

    # The trainer reads the pack as an ordinary dataset folder, and its loader's tensors equal
    # those it makes from the original files (grey: exactly; colour: within the JPEG limit).
    packed_set = InMemoryDataset(dataset_pairs(packed), SIZE)
    source_set = InMemoryDataset(dataset_pairs(toy_source), SIZE)
    assert packed_set.names == source_set.names == split["train"]
    assert torch.equal(packed_set.masks, source_set.masks)
    levels = (packed_set.images.int() - source_set.images.int()).abs()
    grey = [i for i, n in enumerate(packed_set.names) if (packed / "images" / f"{n}.png").exists()]
    colour = [i for i in range(len(packed_set)) if i not in grey]
    assert len(grey) == len(colour) == 2
    assert levels[grey].max() == 0
    assert levels[colour].float().mean((1, 2, 3)).max() <= gpu_pack.JPEG_MEAN_LIMIT
    assert entry["jpeg_max_abs_diff"] == levels[colour].max()


def test_pack_never_replaces_a_folder_it_did_not_make(gpu_pack, toy_source, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not a pack"):
        gpu_pack.make_pack(mine, {"toy": toy_source}, size=SIZE, wheels=False)
    assert (mine / "notes.txt").read_text() == "keep"

    out = tmp_path / "pack"
    gpu_pack.make_pack(out, {"toy": toy_source}, size=SIZE, wheels=False)
    with pytest.raises(InputError, match="--replace"):
        gpu_pack.make_pack(out, {"toy": toy_source}, size=SIZE, wheels=False)
    again = gpu_pack.make_pack(out, {"toy": toy_source}, size=SIZE, wheels=False, replace=True)
    assert again["datasets"]["toy"]["train_pairs"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "pack", "toy"]


def test_pack_stops_when_jpeg_changes_images_too_much(gpu_pack, toy_source, tmp_path):
    with pytest.raises(gpu_pack.WaveGMSError, match="jpeg-quality"):
        gpu_pack.make_pack(
            tmp_path / "pack", {"toy": toy_source}, size=SIZE, jpeg_quality=1, wheels=False
        )
    assert not (tmp_path / "pack").exists()
    assert not any(p.name.startswith(".pack") for p in tmp_path.iterdir())


def test_wheel_pins_satisfy_pyproject(gpu_pack):
    from packaging.specifiers import SpecifierSet

    wanted = gpu_pack.requirements()
    for name, version in gpu_pack.WHEELS.items():
        assert version in SpecifierSet(wanted[name.lower()])


def test_facts_come_from_the_history(gpu_train, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    history = [{"epoch": 1, "seconds": 3.0}, {"epoch": 2, "seconds": 1.0}]
    (run_dir / "history.json").write_text(json.dumps(history))
    best = {"epoch": 2, "val_dice": 0.5, "train_images": 10, "val_images": 2}
    save_model(WaveGMS(ModelConfig(image_size=SIZE)), run_dir / "best", metadata=best)
    run = gpu_train.Run("toy", "configs/gpu_busi.yaml", "toy", started=100.0, ended=130.0)

    facts = gpu_train.run_facts(run, run_dir)
    assert facts["epochs"] == 2
    assert facts["images_per_s"] == 5.0  # 2 epochs x 10 images in 4 s
    assert facts["epoch_s_mean"] == 2.0
    assert facts["wall_s"] == 30.0
    assert (facts["best_val_dice"], facts["best_epoch"]) == (0.5, 2)


def test_copy_back_brings_the_best_model_and_history(gpu_train, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "out" / "toy"
    run_dir.mkdir()
    for name in ("best.safetensors", "best.json", "history.json", "last.safetensors"):
        (run_dir / name).write_text(name)
    gpu_train.copy_back(run_dir, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(gpu_train.RESULT_FILES)
    assert (out / "best.json").read_text() == "best.json"


def test_gpu_configs_ask_for_the_papers_objective():
    from wavegms.training.config import TrainConfig

    for name in ("gpu_busi", "gpu_kvasir_seg"):
        config = TrainConfig.from_yaml(SCRIPTS.parent / "configs" / f"{name}.yaml")
        assert config.seg_heads == ("level2", "level1", "out")
        assert (config.batch_size, config.lr, config.device) == (12, 0.002, "cuda")
        assert config.augment and config.cached_views == 0 and config.seg_every == 1


def run_kit(gpu_pack, source: Path, tmp_path: Path, **settings: str):
    """scripts/gpu_train.py on a pack of ``source`` (as "busi"), with OUT and RUNS in tmp."""
    pack = tmp_path / "pack"
    gpu_pack.make_pack(pack, {"busi": source}, size=SIZE, wheels=False)
    env = dict(os.environ, OUT=str(tmp_path / "out"), PACK=str(pack), RUNS=str(tmp_path / "runs"))
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "gpu_train.py")],
        cwd=SCRIPTS.parent,
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_failing_smoke_step_stops_the_command_before_training(gpu_pack, toy_source, tmp_path):
    done = run_kit(gpu_pack, toy_source, tmp_path, DEVICE="nonsense")
    assert done.returncode == 3, done.stderr
    out = tmp_path / "out"
    facts = json.loads((out / "gpu_facts.json").read_text())
    assert "unknown device 'nonsense'" in facts["smoke_error"]
    assert "runs" not in facts
    assert "unknown device 'nonsense'" in (out / "train_log.txt").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["gpu_facts.json", "train_log.txt"]
    assert not (tmp_path / "runs" / "busi").exists()


def test_a_bad_budget_is_a_one_line_error(gpu_pack, toy_source, tmp_path):
    done = run_kit(gpu_pack, toy_source, tmp_path, BUDGET="soon")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: BUDGET: time budget 'soon' is not a positive duration such as 90s, 8m, 1.5h or 300"
    ]
