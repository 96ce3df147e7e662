"""The Python API given what it may not expect: torch tensors, a model whose output is not
finite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavegms.core.errors import NONFINITE_SOFT, WaveGMSError
from wavegms.inference.folder import run_folder
from wavegms.inference.folder_items import folder_items
from wavegms.inference.segmenter import Segmenter

from .cases import case


@case(
    "IMG-TORCH-TENSOR",
    "Segmenter.segment given torch tensors: float32 with requires_grad, bfloat16, float16, "
    "uint8 (were: RuntimeError 'requires grad' and TypeError 'BFloat16')",
    "The masks of the same values as a NumPy array",
)
def test_torch_tensors(segmenter):
    rng = np.random.default_rng(0)
    image = rng.random((2, 24, 20)).astype(np.float32)
    for tensor in (
        torch.from_numpy(image).requires_grad_(True),
        torch.from_numpy(image).bfloat16(),
        torch.from_numpy(image).half(),
        torch.from_numpy((image * 255).astype(np.uint8)),
    ):
        same = tensor.detach().float().numpy()  # the tensor's own values (bf16 rounded)
        if tensor.dtype == torch.uint8:
            same = same.astype(np.uint8)
        binary, soft = segmenter.segment(tensor)
        expected_binary, expected_soft = segmenter.segment(same)
        assert binary.shape == (2, 24, 20)
        np.testing.assert_array_equal(binary, expected_binary)
        np.testing.assert_array_equal(soft, expected_soft)


class NaNOnSome:
    """Wraps a predictor: the soft masks of the images chosen by ``bad`` are NaN."""

    def __init__(self, segmenter: Segmenter, bad):
        self.predict, self.bad = segmenter.predict_soft, bad
        self.image_size = segmenter.image_size
        self.seen = 0

    def predict_soft(self, images):
        soft = self.predict(images)
        for i in range(len(soft)):
            if self.bad(self.seen + i):
                soft[i, 3, 4] = np.nan
        self.seen += len(soft)
        return soft


@case(
    "IMG-NONFINITE-OUTPUT",
    "A model whose soft mask holds NaN for one image (a damaged model that passed the load "
    "checks), in Segmenter.segment and in a folder run",
    "segment raises WaveGMSError 'not finite ... no mask is made' naming the plane, never a "
    "mask; the folder run skips that image with the reason and writes the others",
)
def test_non_finite_output(segmenter, tiny_dataset, tmp_path, monkeypatch):
    second_is_nan = NaNOnSome(segmenter, lambda i: i == 1)
    monkeypatch.setattr(segmenter, "predict_soft", second_is_nan.predict_soft)
    stack = np.random.default_rng(0).random((3, 20, 20))
    with pytest.raises(WaveGMSError, match=r"^plane 1: .*not finite.*no mask is made"):
        segmenter.segment(stack)
    monkeypatch.undo()

    wrapped = NaNOnSome(segmenter, lambda i: i == 1)
    items = folder_items(tiny_dataset / "images")
    report = run_folder(wrapped, items, tmp_path / "out", batch_size=3)
    assert report.skipped == [(items[1].image.name, NONFINITE_SOFT)]
    assert len(report.masks) == len(items) - 1
    assert not (tmp_path / "out" / "masks" / f"{items[1].name}.png").exists()


@case(
    "IMG-RAGGED",
    "Segmenter.segment and to_rgb01 given nested lists of uneven rows ([[1, 2, 3], [4, 5]]) "
    "and a list of arrays of different shapes",
    "InputError 'no array of pixels ... rows of equal length' (was: NumPy's raw ValueError "
    "'inhomogeneous shape'); the model never runs",
)
def test_ragged_lists(segmenter):
    from wavegms.core.errors import InputError
    from wavegms.data.intensities import to_rgb01

    ragged = ([[1, 2, 3], [4, 5]], [np.zeros((4, 4)), np.zeros((5, 5))])
    for image in ragged:
        with pytest.raises(InputError, match="no array of pixels"):
            segmenter.segment(image)
        with pytest.raises(InputError, match="rows of equal length"):
            to_rgb01(image)
