"""The benchmark's measurements run end to end on tiny inputs (the numbers themselves are
measured by `wavegms bench`, not asserted here)."""

from __future__ import annotations

from wavegms.bench import format_extra, time_finetune, time_folder
from wavegms.store.model_files import load_segmentation_model


def test_folder_timing_runs_both_paths(tiny_model_file):
    model = load_segmentation_model("tiny", "cpu")
    timing = time_folder(model, n=3, shape=(40, 50))
    assert timing.images == 3
    assert timing.pipelined_per_s > 0 and timing.sequential_per_s > 0
    assert "3 images" in format_extra(timing, [])


def test_finetune_timing_uses_the_fine_tune_schedule(tiny_dataset, tiny_model_file):
    timing = time_finetune(str(tiny_dataset), "tiny", n_images=5, epochs=1)
    assert (timing.train_images, timing.val_images, timing.epochs) == (4, 1, 1)
    assert timing.seconds > 0 and 0 <= timing.val_dice <= 1
    assert "4 train + 1 validation" in format_extra(None, [timing])
