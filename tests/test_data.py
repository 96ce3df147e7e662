"""Tests of wavegms.data: splits, validation carving, pairing, loading, in-memory datasets."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from wavegms.core.errors import Cancelled, ImageReadError, InputError
from wavegms.core.files import write_png
from wavegms.core.progress import CancelToken, Progress
from wavegms.data.pairs import (
    Pair,
    carve_validation,
    dataset_pairs,
    find_pairs,
    load_pair,
    load_split,
)
from wavegms.training.dataset import InMemoryDataset


def _make_dataset(
    root: Path,
    names: list[str],
    h: int = 20,
    w: int = 30,
    image_suffix: str = ".png",
    split: dict | None = None,
) -> Path:
    """A tiny dataset folder: gradient RGB images and a rectangle mask per name."""
    from skimage import io as skio

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        img[..., 1] = 10 * i
        skio.imsave(root / "images" / f"{name}{image_suffix}", img, check_contrast=False)
        mask = np.zeros((h, w), bool)
        mask[h // 4 : h // 2, w // 4 : w // 2] = True
        write_png(root / "masks" / f"{name}.png", mask)
    if split is not None:
        (root / "split.json").write_text(json.dumps(split))
    return root


# ----------------------------------------------------------------------------------- load_split


def test_load_split_good(tmp_path: Path) -> None:
    p = tmp_path / "split.json"
    p.write_text(json.dumps({"train": ["a", "b.png"], "test": ["c"]}))
    assert load_split(p) == {"train": ["a", "b"], "test": ["c"]}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[1, 2]", "JSON object"),
        ("{}", "JSON object"),
        ('{"train": "a"}', "list of non-empty strings"),
        ('{"train": [1]}', "list of non-empty strings"),
        ('{"train": [""]}', "list of non-empty strings"),
        ('{"train": ["a", "a"]}', "twice: a"),
        ('{"train": ["a", "b"], "test": ["b"]}', "both split 'train' and split 'test': b"),
        ("{oops", "not valid JSON"),
    ],
)
def test_load_split_rejects(tmp_path: Path, content: str, needle: str) -> None:
    p = tmp_path / "split.json"
    p.write_text(content)
    with pytest.raises(InputError, match=needle) as info:
        load_split(p)
    assert "split.json" in str(info.value)


def test_load_split_missing_and_pickle(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_split(tmp_path / "none.json")
    pkl = tmp_path / "split.pkl"
    pkl.write_bytes(b"\x80\x04K\x01.")  # a valid pickle: it must not even be opened
    with pytest.raises(InputError, match="pickle"):
        load_split(pkl)


# ------------------------------------------------------------------------------ carve_validation


def test_carve_validation_basic() -> None:
    names = [f"n{i:03d}" for i in range(100)]
    train, val = carve_validation(names, 0.1, seed=2333)
    assert len(val) == 10 and len(train) == 90
    assert sorted(train + val) == names
    assert not set(train) & set(val)
    assert train == sorted(train) and val == sorted(val)


def test_carve_validation_deterministic_and_order_free() -> None:
    names = [f"img_{i}" for i in range(50)]
    shuffled = names[:]
    random.Random(1).shuffle(shuffled)
    a = carve_validation(names, 0.2, seed=7)
    random.seed(123)
    torch.manual_seed(123)
    np.random.seed(123)
    b = carve_validation(shuffled, 0.2, seed=7)
    random.seed(999)  # global RNG state has no influence
    c = carve_validation(tuple(names), 0.2, seed=7)
    assert a == b == c
    assert carve_validation(names, 0.2, seed=8) != a


def test_carve_validation_stable_when_names_are_added() -> None:
    names = [f"x{i}" for i in range(200)]
    _, val = carve_validation(names, 0.1, seed=1)
    _, val_more = carve_validation([*names, "extra1", "extra2"], 0.1, seed=1)
    assert len(set(val) & set(val_more)) >= len(val) - 2


def test_carve_validation_small_lists() -> None:
    assert carve_validation([], 0.1, 0) == ([], [])
    assert carve_validation(["a"], 0.1, 0) == (["a"], [])
    train, val = carve_validation(["a", "b"], 0.01, 0)
    assert len(val) == 1 and len(train) == 1
    train, val = carve_validation(["a", "b", "c"], 0.99, 0)
    assert len(train) == 1 and len(val) == 2  # training keeps at least one


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_carve_validation_bad_fraction(fraction: float) -> None:
    with pytest.raises(InputError, match="between 0 and 1"):
        carve_validation(["a", "b"], fraction, 0)


def test_carve_validation_duplicates() -> None:
    with pytest.raises(InputError, match="twice: a"):
        carve_validation(["a", "a", "b"], 0.5, 0)


# ----------------------------------------------------------------------------------- find_pairs


def test_find_pairs_mixed_suffixes(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["b", "a"], image_suffix=".jpg")
    pairs = find_pairs(root / "images", root / "masks")
    assert [p.name for p in pairs] == ["a", "b"]
    assert pairs[0] == Pair("a", root / "images" / "a.jpg", root / "masks" / "a.png")


def test_find_pairs_names_order_and_missing(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a", "b", "c"])
    pairs = find_pairs(root / "images", root / "masks", ["c", "a"])
    assert [p.name for p in pairs] == ["c", "a"]
    with pytest.raises(InputError, match=r"2 have no image .*: x, y") as info:
        find_pairs(root / "images", root / "masks", ["a", "x", "y"])
    assert "have no mask" in str(info.value)
    (root / "masks" / "c.png").unlink()
    with pytest.raises(InputError, match=r"1 have no mask .*: c"):
        find_pairs(root / "images", root / "masks", ["a", "c"])


def test_find_pairs_mismatch_reported(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a", "b", "c"])
    (root / "masks" / "b.png").unlink()
    write_png(root / "masks" / "z.png", np.zeros((4, 4), bool))
    with pytest.raises(InputError) as info:
        find_pairs(root / "images", root / "masks")
    msg = str(info.value)
    assert "3 images" in msg and "3 masks" in msg
    assert "1 images have no mask: b" in msg
    assert "1 masks have no image: z" in msg


def test_find_pairs_duplicate_stem_and_empty(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a"])
    (root / "images" / "a.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="share the name 'a'"):
        find_pairs(root / "images", root / "masks")
    empty = tmp_path / "e"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    with pytest.raises(InputError, match="no images"):
        find_pairs(empty / "images", empty / "masks")


# -------------------------------------------------------------------------------- dataset_pairs


def test_dataset_pairs(tmp_path: Path) -> None:
    root = _make_dataset(
        tmp_path / "ds", ["a", "b", "c"], split={"train": ["a", "c"], "test": ["b"]}
    )
    assert [p.name for p in dataset_pairs(root)] == ["a", "c"]
    assert [p.name for p in dataset_pairs(root, split="test")] == ["b"]
    assert [p.name for p in dataset_pairs(root, split=None)] == ["a", "b", "c"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"train": ["b"]}))
    assert [p.name for p in dataset_pairs(root, other)] == ["b"]
    with pytest.raises(
        InputError, match=r"'val' is not in the split file; it has \['test', 'train'\]"
    ):
        dataset_pairs(root, split="val")


def test_dataset_pairs_bad_layout(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        dataset_pairs(tmp_path / "missing")
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="no 'masks' subfolder"):
        dataset_pairs(tmp_path)
    (tmp_path / "masks").mkdir()
    with pytest.raises(InputError, match=r"split\.json"):
        dataset_pairs(tmp_path)  # default split file missing


# ------------------------------------------------------------------------------------ load_pair


def test_load_pair_native_and_resized(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a"], h=20, w=30)
    (pair,) = find_pairs(root / "images", root / "masks")
    image, mask = load_pair(pair, None)
    assert image.shape == (20, 30, 3) and image.dtype == np.float32
    assert mask.shape == (20, 30) and mask.dtype == bool
    assert image[0, -1, 0] == pytest.approx(1.0) and image[0, 0, 0] == 0.0
    assert mask.sum() == (10 - 5) * (15 - 7)

    image, mask = load_pair(pair, 16)
    assert image.shape == (16, 16, 3) and image.dtype == np.float32
    assert mask.shape == (16, 16) and mask.dtype == bool
    assert image.min() >= 0.0 and image.max() <= 1.0
    # the red gradient still runs left to right after resizing
    assert image[8, 0, 0] < 0.2 and image[8, -1, 0] > 0.8
    # nearest-neighbour keeps the rectangle where it was (rows 4..8, cols 4..8 of 16)
    ys, xs = np.nonzero(mask)
    assert 3 <= ys.min() <= 4 and 7 <= ys.max() <= 8
    assert 3 <= xs.min() <= 5 and 7 <= xs.max() <= 8


def test_load_pair_shape_mismatch(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a"], h=20, w=30)
    write_png(root / "masks" / "a.png", np.zeros((10, 30), bool), overwrite=True)
    (pair,) = find_pairs(root / "images", root / "masks")
    with pytest.raises(InputError) as info:
        load_pair(pair, 16)
    msg = str(info.value)
    assert "a.png" in msg and "30x20" in msg and "30x10" in msg


def test_load_pair_unreadable_image(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a"])
    (root / "images" / "a.png").write_text("garbage")
    (pair,) = find_pairs(root / "images", root / "masks")
    with pytest.raises(ImageReadError, match=r"a\.png"):
        load_pair(pair, 8)


# ------------------------------------------------------------------------------ InMemoryDataset


def test_in_memory_dataset(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a", "b", "c"])
    pairs = find_pairs(root / "images", root / "masks")
    reports: list[Progress] = []
    ds = InMemoryDataset(pairs, 16, progress=reports.append)

    assert len(ds) == 3 and ds.names == ["a", "b", "c"]
    assert ds.images.shape == (3, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.masks.shape == (3, 1, 16, 16) and ds.masks.dtype == torch.uint8
    assert set(ds.masks.unique().tolist()) == {0, 1}

    image, mask = ds[1]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert mask.shape == (1, 16, 16) and mask.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    # same content as load_pair, up to uint8 quantisation
    ref_img, ref_mask = load_pair(pairs[1], 16)
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), ref_img, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(mask[0].numpy().astype(bool), ref_mask)
    # green channel encodes the index: 10 * i / 255
    assert ds.images[2, 1].float().mean().item() == pytest.approx(20, abs=1)

    assert [(r.stage, r.done, r.total) for r in reports] == [
        ("load", 0, 3),
        ("load", 1, 3),
        ("load", 2, 3),
        ("load", 3, 3),
    ]
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    batch_images, batch_masks = next(iter(loader))
    assert batch_images.shape == (2, 3, 16, 16) and batch_masks.shape == (2, 1, 16, 16)


def test_in_memory_dataset_cancel_and_bad_size(tmp_path: Path) -> None:
    root = _make_dataset(tmp_path, ["a", "b"])
    pairs = find_pairs(root / "images", root / "masks")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        InMemoryDataset(pairs, 8, cancel=token)
    with pytest.raises(InputError, match="size"):
        InMemoryDataset(pairs, 0)


# ------------------------------------------------------------------------------------ real data


@pytest.mark.data
def test_real_busi_split(data_root: Path) -> None:
    busi = data_root / "busi"
    if not busi.is_dir():
        pytest.skip(f"BUSI data not found at {busi}")
    split = load_split(busi / "split.json")
    assert len(split["train"]) == 517
    assert len(split["test"]) == 130
    train = dataset_pairs(busi, split="train")
    test = dataset_pairs(busi, split="test")
    assert [p.name for p in train] == split["train"]
    assert [p.name for p in test] == split["test"]
    for p in [*train, *test]:
        assert p.image.is_file() and p.mask.is_file()
    # one real pair loads to the expected shapes and a non-empty mask
    image, mask = load_pair(train[0], 64)
    assert image.shape == (64, 64, 3) and mask.shape == (64, 64) and mask.any()
