"""Qt-free parts of the plugin: persisted settings and the fine-tuning training set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wavegms.core.errors import InputError, MaskWarning
from wavegms.napari.settings import (
    BatchSettings,
    FinetuneSettings,
    SegmentChoices,
    load_settings,
    save_settings,
    settings_path,
)
from wavegms.training.training_set import TrainingSet


def test_settings_round_trip_and_tolerate_bad_files():
    assert load_settings(SegmentChoices) == SegmentChoices()  # no file yet
    save_settings(SegmentChoices(model="m", device="cpu", threshold=0.25, soft_mask=True))
    save_settings(BatchSettings(input_dir="/in"))
    assert load_settings(SegmentChoices).threshold == 0.25
    assert load_settings(BatchSettings).input_dir == "/in"
    data = json.loads(settings_path().read_text())
    assert set(data) == {"segment", "batch"}
    # an older file: the request's values flat in the section
    data["finetune"] = {"epochs": "many", "lr": 1, "unknown": 3, "augment": False}
    settings_path().write_text(json.dumps(data))
    finetune = load_settings(FinetuneSettings).request
    assert finetune.epochs == FinetuneSettings().request.epochs  # wrong type: default kept
    assert finetune.lr == 1.0 and finetune.augment is False
    data["finetune"] = {"project": "p", "request": {"epochs": 3, "seed": "x", "lr": 0.01}}
    settings_path().write_text(json.dumps(data))
    finetune = load_settings(FinetuneSettings)
    assert finetune.project == "p" and (finetune.request.epochs, finetune.request.lr) == (3, 0.01)
    assert finetune.request.seed == FinetuneSettings().request.seed
    settings_path().write_text("{ not json")
    assert load_settings(SegmentChoices) == SegmentChoices()


def test_a_saved_precision_is_one_of_the_choices_else_exact():
    save_settings(SegmentChoices(precision="int8"))
    assert load_settings(SegmentChoices).precision == "int8"  # the user's choice, kept
    for hand_edited in ("int4", "INT8", 8):
        settings_path().write_text(json.dumps({"segment": {"precision": hand_edited}}))
        assert load_settings(SegmentChoices).precision == "fp32", hand_edited


def test_training_set_add_remove_tidy(wavegms_home):
    pairs = TrainingSet("proj-1")
    rgb = np.random.default_rng(0).random((12, 10, 4)).astype(np.float32)
    labels = np.zeros((12, 10), np.int32)
    labels[2:5, 3:6] = 7
    entry = pairs.add(rgb, labels, source="my scan")
    assert entry.name == "my_scan_001" and entry.mask_area == 9
    with pytest.raises(InputError, match="already in the training set as 'my_scan_001'"):
        pairs.add(rgb, labels, source="my scan")  # the same pair twice: refused
    labels[6:8, 1:3] = 7
    with pytest.warns(MaskWarning, match="same image is already .* 'my_scan_001' with other"):
        assert pairs.add(rgb, labels, source="my scan").name == "my_scan_002"
    with pytest.warns(MaskWarning, match="are empty"):
        pairs.add(rgb[..., 0], np.zeros((12, 10), np.uint8), source="blank")
    pairs.remove(["blank_001"])
    assert (wavegms_home / "data" / "finetune" / "proj-1" / "images" / "my_scan_001.png").is_file()
    (pairs.images_dir / "orphan.png").write_bytes(b"left by a crash")
    pairs.tidy()
    assert not (pairs.images_dir / "orphan.png").exists()
    pairs.remove(["my_scan_001"])
    assert pairs.names() == ["my_scan_002"]
    from wavegms.data.pairs import dataset_pairs

    assert [p.name for p in dataset_pairs(pairs.root, split=None)] == ["my_scan_002"]
    with pytest.raises(InputError, match="differ in size"):
        pairs.add(rgb, labels[:5], source="x")
    with pytest.raises(InputError, match="project name"):
        TrainingSet("../escape")


def test_time_left_from_the_rate_since_the_first_report():
    from wavegms.core.progress import Eta

    now = [100.0]
    eta = Eta(clock=lambda: now[0])
    assert eta.update(0.1) is None  # the clock starts here: setup is not part of the rate
    now[0] = 110.0
    assert eta.update(0.1) is None  # no progress yet, no estimate
    now[0] = 120.0
    assert eta.update(0.3) == pytest.approx(70.0)  # 0.2 in 20 s: 0.7 left takes 70 s
