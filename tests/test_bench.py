"""The benchmark's measurements run end to end on tiny inputs (the numbers themselves are
measured by `wavegms bench`, not asserted here)."""

from __future__ import annotations

import json

from wavegms.bench.workloads import format_extra, time_finetune, time_folder
from wavegms.store.model_files import load_segmentation_model


def test_folder_timing_runs_both_paths(tiny_model_file):
    model = load_segmentation_model("tiny", "cpu")
    timing = time_folder(model, n=3, shape=(40, 50))
    assert timing.images == 3
    assert timing.pipelined_per_s > 0 and timing.sequential_per_s > 0
    assert timing.one_at_a_time_per_s > 0 and timing.backend in ("onnx", "openvino", "traced")
    text = format_extra(timing, [])
    assert "3 images" in text and f"backend {timing.backend}: " in text


def test_finetune_timing_uses_the_fine_tune_schedule(tiny_dataset, tiny_model_file):
    timing = time_finetune(str(tiny_dataset), "tiny", n_images=5, epochs=1)
    # 5 pairs: 3 to choose the best epoch on (never a single image), 2 to train on
    assert (timing.train_images, timing.val_images, timing.epochs) == (2, 3, 1)
    assert timing.seconds > 0 and 0 <= timing.val_dice <= 1
    assert "2 train + 3 validation" in format_extra(None, [timing])
    assert timing.label == "defaults"


def test_finetune_baselines_change_only_fields_the_request_has(tiny_dataset, tiny_model_file):
    import dataclasses

    from wavegms.bench.workloads import FINETUNE_BASELINES
    from wavegms.training.finetune import FinetuneRequest

    fields = {f.name: f.default for f in dataclasses.fields(FinetuneRequest)}
    for changes in FINETUNE_BASELINES.values():
        assert changes and all(fields[k] != v for k, v in changes.items()), changes
    label, changes = next(iter(FINETUNE_BASELINES.items()))
    timing = time_finetune(str(tiny_dataset), "tiny", n_images=5, epochs=1, label=label, **changes)
    assert (timing.label, timing.epochs, timing.train_images) == (label, 1, 2)


def test_bench_times_every_path_beside_eager_and_scores_them(tiny_dataset, tiny_model_file):
    from wavegms.bench.accuracy import format_scores, score_paths
    from wavegms.bench.latency import format_report, run_bench

    model = load_segmentation_model("tiny", "cpu")
    results = run_bench(model, 32, (30, 40), repeats=1, baseline=False, backends=("onnx",))
    assert [t.name for t in results] == ["WG eager", "onnx"]
    eager, onnx = results
    assert onnx.gflop < eager.gflop  # the exactly rewritten decoder does less work
    assert "speed-up of onnx" in format_report(results, 32, (30, 40))
    scores = score_paths(model, str(tiny_dataset), backends=("onnx",))
    assert [(s.name, s.images) for s in scores] == [("WG eager", 2), ("onnx", 2)]
    assert abs(scores[0].dsc - scores[1].dsc) < 0.1  # an exact path scores as eager does
    assert "vs eager" in format_scores(scores, str(tiny_dataset))


def test_peak_rss_is_measured_per_path_in_a_fresh_process(tiny_model_file):
    from wavegms.bench.memory import path_peak_rss_mb

    rss = path_peak_rss_mb("tiny", backends=("eager",))
    assert set(rss) == {"eager"} and 50 < rss["eager"] < 5000


def test_a_fresh_process_reports_its_own_peak_not_its_parents():
    """ru_maxrss survives execve: a child started by a big process must not report the
    parent's peak as its own."""
    import subprocess
    import sys

    import numpy as np

    from wavegms.bench.measure import peak_rss_mb

    block = np.ones(400 * 2**20, np.uint8)  # touched: 400 MB resident in this process
    code = "from wavegms.bench.measure import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout)  # fmt: skip
    assert block.sum() == block.size and peak_rss_mb() > child + 300


def test_the_int8_path_calibrated_on_the_data_is_added_with_its_training_images(tiny_dataset):
    from wavegms.bench.latency import INT8_DATA, bench_paths

    assert [row[:2] for row in bench_paths(("onnx",), str(tiny_dataset))] == [("onnx", "onnx")]
    rows = bench_paths(("int8",), str(tiny_dataset))
    assert [row[:2] for row in rows] == [("onnx int8", "int8"), (INT8_DATA, "int8")]
    assert rows[0][2] is None and len(rows[1][2]) == 6  # the 6 training images of the folder


def test_bench_times_the_fine_tune_defaults_beside_each_baseline(tiny_dataset, tiny_model_file):
    import argparse

    from wavegms.bench.workloads import FINETUNE_BASELINES
    from wavegms.cli.bench_command import _time_finetunes

    args = argparse.Namespace(
        model="tiny", finetune_data=str(tiny_dataset), finetune_epochs=1, finetune_baseline=True
    )
    rows = _time_finetunes(args)  # the untimed warm-up is not among the rows
    assert [r.label for r in rows] == ["defaults", *FINETUNE_BASELINES]
    assert all(r.epochs == 1 and r.seconds > 0 for r in rows)


def test_curve_comparison_reads_the_time_to_the_reference_best():
    from wavegms.bench.learning_curve import format_comparison, time_to_reach

    ref = [(100.0, 0.2), (200.0, 0.4)]
    fast = [(50.0, 0.3), (80.0, 0.45), (400.0, 0.5)]  # sooner to 0.4, but stops later
    slow = [(300.0, 0.1)]
    assert time_to_reach(fast, 0.4) == 80.0 and time_to_reach(slow, 0.4) is None
    lines = format_comparison({"ref": ref, "fast": fast, "slow": slow, "none": []}).splitlines()
    assert lines[0] == "against ref: its best validation Dice 40.00 at 200 CPU-s"
    assert lines[1].startswith("ref: best 40.00, 720.0 Dice points per CPU-hour (1.00x)")
    # 0.5 in 400 s is fewer points per hour (0.62x) though it got to 0.4 2.5x sooner
    assert lines[2] == (
        "fast: best 50.00, 450.0 Dice points per CPU-hour (0.62x), reached it at 80 CPU-s (2.50x)"
    )
    assert lines[3].endswith("never reached it") and lines[4] == "none: no epoch ended"
    assert "no epoch ended" in format_comparison({"ref": [], "fast": fast})
    flat = format_comparison({"ref": [(100.0, 0.0)], "fast": fast}).splitlines()
    assert (
        flat[2]
        == "fast: best 50.00, 450.0 Dice points per CPU-hour, reached it at 50 CPU-s (2.00x)"
    )


def test_a_learning_curve_is_validation_dice_against_cpu_seconds(tiny_dataset, tmp_path):
    from wavegms.bench.learning_curve import learning_curve
    from wavegms.training.config import TrainConfig

    config = TrainConfig(
        data_dir=str(tiny_dataset), image_size=32, epochs=2, batch_size=2, val_fraction=0.34,
        warmup_epochs=1, seg_heads=("out",), device="cpu",
    )  # fmt: skip
    curve = learning_curve(config, 3600.0, tmp_path / "run")
    assert len(curve) == 2  # one point per epoch, the budget being ample
    seconds, dices = zip(*curve, strict=True)
    assert 0 < seconds[0] < seconds[1] and all(0.0 <= d <= 1.0 for d in dices)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["val_dice"] for row in history] == list(dices)
