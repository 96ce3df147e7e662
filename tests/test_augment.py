"""Tests of wavegms.augment: the paper's augmentations on [0, 1] torch tensors."""

from __future__ import annotations

import pytest
import torch

from wavegms.core.errors import InputError
from wavegms.training.augment import AugmentConfig, augment_batch

OFF = dict(hflip=0.0, vflip=0.0, rot90=0.0, jitter_p=0.0, ssr_p=0.0)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(
    b: int = 4, h: int = 32, w: int = 32, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    images = torch.rand(b, 3, h, w, generator=g)
    masks = (torch.rand(b, 1, h, w, generator=g) > 0.7).float()
    return images, masks


def _image_from_mask(masks: torch.Tensor) -> torch.Tensor:
    """A grey image equal to the mask, so geometric consistency can be checked pixel-wise."""
    return masks.expand(-1, 3, -1, -1).clone()


def test_all_off_is_identity_and_returns_copies() -> None:
    images, masks = _batch()
    out_i, out_m = augment_batch(images, masks, AugmentConfig(**OFF), _gen())
    assert torch.equal(out_i, images) and torch.equal(out_m, masks)
    assert out_i.data_ptr() != images.data_ptr() and out_m.data_ptr() != masks.data_ptr()


def test_inputs_not_modified() -> None:
    images, masks = _batch()
    keep_i, keep_m = images.clone(), masks.clone()
    cfg = AugmentConfig(hflip=1, vflip=1, rot90=1, jitter_p=1, ssr_p=1)
    augment_batch(images, masks, cfg, _gen())
    assert torch.equal(images, keep_i) and torch.equal(masks, keep_m)


def test_shapes_dtypes_range_and_binary_masks() -> None:
    images, masks = _batch(b=6)
    cfg = AugmentConfig(jitter_p=1.0, ssr_p=1.0, brightness=0.5, contrast=0.5)
    out_i, out_m = augment_batch(images, masks, cfg, _gen(3))
    assert out_i.shape == images.shape and out_i.dtype == torch.float32
    assert out_m.shape == masks.shape and out_m.dtype == torch.float32
    assert out_i.min() >= 0.0 and out_i.max() <= 1.0
    assert set(out_m.unique().tolist()) <= {0.0, 1.0}
    assert out_m.sum() > 0


def test_hflip_and_vflip_exact() -> None:
    images, masks = _batch()
    out_i, out_m = augment_batch(images, masks, AugmentConfig(**{**OFF, "hflip": 1.0}), _gen())
    assert torch.equal(out_i, images.flip(-1)) and torch.equal(out_m, masks.flip(-1))
    out_i, out_m = augment_batch(images, masks, AugmentConfig(**{**OFF, "vflip": 1.0}), _gen())
    assert torch.equal(out_i, images.flip(-2)) and torch.equal(out_m, masks.flip(-2))


def test_rot90_is_a_quarter_turn_multiple_applied_to_both() -> None:
    images, masks = _batch(b=16)
    out_i, out_m = augment_batch(images, masks, AugmentConfig(**{**OFF, "rot90": 1.0}), _gen(5))
    ks = []
    for i in range(16):
        k = next(k for k in range(4) if torch.equal(out_i[i], torch.rot90(images[i], k, (-2, -1))))
        assert torch.equal(out_m[i], torch.rot90(masks[i], k, (-2, -1)))
        ks.append(k)
    assert len(set(ks)) >= 3  # several different turns drawn per sample


def test_rot90_non_square_keeps_shape() -> None:
    images, masks = _batch(b=8, h=16, w=24)
    out_i, out_m = augment_batch(images, masks, AugmentConfig(**{**OFF, "rot90": 1.0}), _gen(1))
    assert out_i.shape == images.shape and out_m.shape == masks.shape
    for i in range(8):
        assert torch.equal(out_i[i], images[i]) or torch.equal(out_i[i], images[i].flip(-1, -2))


def test_per_sample_decisions() -> None:
    images, masks = _batch(b=32)
    out_i, _ = augment_batch(images, masks, AugmentConfig(**{**OFF, "hflip": 0.5}), _gen(2))
    flipped = [torch.equal(out_i[i], images[i].flip(-1)) for i in range(32)]
    assert 4 < sum(flipped) < 28


def test_reproducible_with_generator() -> None:
    images, masks = _batch(b=8)
    cfg = AugmentConfig(jitter_p=0.5, ssr_p=0.5)
    a = augment_batch(images, masks, cfg, _gen(42))
    b = augment_batch(images, masks, cfg, _gen(42))
    c = augment_batch(images, masks, cfg, _gen(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # the global RNG is not used when a generator is given
    torch.manual_seed(0)
    d = augment_batch(images, masks, cfg, _gen(42))
    torch.manual_seed(1)
    e = augment_batch(images, masks, cfg, _gen(42))
    assert torch.equal(d[0], e[0])


def test_geometry_consistent_between_image_and_mask() -> None:
    masks = torch.zeros(8, 1, 64, 64)
    masks[:, :, 20:44, 16:40] = 1.0
    images = _image_from_mask(masks)
    cfg = AugmentConfig(jitter_p=0.0, ssr_p=1.0, rot90=0.5)
    out_i, out_m = augment_batch(images, masks, cfg, _gen(9))
    # the (bilinear) image and (nearest) mask agree except on a thin boundary
    agree = ((out_i[:, :1] > 0.5).float() == out_m).float().mean()
    assert agree > 0.97
    assert torch.equal(out_i[:, 0], out_i[:, 1])  # grey stays grey
    assert not torch.equal(out_m, masks)  # something actually moved


def test_ssr_shift_direction_and_magnitude() -> None:
    # shift only: a fixed shift of 0.15 width must move a block right or left by ~0.15 * W
    masks = torch.zeros(16, 1, 40, 40)
    masks[:, :, 15:25, 15:25] = 1.0
    cfg = AugmentConfig(**{**OFF, "ssr_p": 1.0, "scale": 0.0, "rotate_deg": 0.0})
    _, out_m = augment_batch(_image_from_mask(masks), masks, cfg, _gen(4))
    for m in out_m[:, 0]:
        ys, xs = torch.nonzero(m, as_tuple=True)
        area = m.sum().item()
        # reflection padding may add mirrored parts near borders; the block itself stays 10x10
        assert area >= 100 - 20
        assert abs(xs.float().mean().item() - 19.5) <= 0.15 * 40 + 1
        assert abs(ys.float().mean().item() - 19.5) <= 0.15 * 40 + 1


def test_ssr_scale_and_rotation_keep_area_plausible() -> None:
    masks = torch.zeros(16, 1, 64, 64)
    masks[:, :, 24:40, 24:40] = 1.0
    cfg = AugmentConfig(**{**OFF, "ssr_p": 1.0, "shift": 0.0})
    _, out_m = augment_batch(_image_from_mask(masks), masks, cfg, _gen(6))
    areas = out_m.sum(dim=(1, 2, 3)) / 256.0
    assert ((areas > 0.9**2 - 0.1) & (areas < 1.1**2 + 0.1)).all()
    assert not torch.equal(out_m, masks)


def test_jitter_only_touches_images_and_keeps_brightness() -> None:
    images = torch.full((8, 3, 16, 16), 0.8)
    images[:, 0] = 0.9
    masks = torch.zeros(8, 1, 16, 16)
    masks[:, :, 4:8] = 1
    cfg = AugmentConfig(**{**OFF, "jitter_p": 1.0})
    out_i, out_m = augment_batch(images, masks, cfg, _gen(0))
    assert torch.equal(out_m, masks)
    assert not torch.equal(out_i, images)
    # the reference code's defect: jitter must never blacken a bright image
    means = out_i.mean(dim=(1, 2, 3))
    assert (means > 0.6).all() and (means < 1.0).all()
    assert (out_i - images).abs().max() < 0.4


def test_jitter_leaves_grey_images_grey() -> None:
    g = _gen(1)
    grey = torch.rand(6, 1, 16, 16, generator=g).expand(-1, 3, -1, -1).clone()
    masks = torch.zeros(6, 1, 16, 16)
    cfg = AugmentConfig(**{**OFF, "jitter_p": 1.0}, hue=0.5, saturation=0.9)
    out_i, _ = augment_batch(grey, masks, cfg, _gen(2))
    assert torch.allclose(out_i[:, 0], out_i[:, 1], atol=1e-5)
    assert torch.allclose(out_i[:, 1], out_i[:, 2], atol=1e-5)


def test_hue_rotation_changes_colour_keeps_luma() -> None:
    img = torch.zeros(4, 3, 8, 8)
    # a weakly saturated colour, so no channel leaves [0, 1] (the clamp would change luma)
    img[:, 0] = 0.55
    img[:, 1] = 0.45
    img[:, 2] = 0.4
    cfg = AugmentConfig(
        **{**OFF, "jitter_p": 1.0}, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.2
    )
    out, _ = augment_batch(img, torch.zeros(4, 1, 8, 8), cfg, _gen(3))
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((out * luma).sum(1), (img * luma).sum(1), atol=1e-4)
    assert (out - img).abs().amax(dim=(1, 2, 3)).min() > 1e-3


def test_mask_dtypes_preserved() -> None:
    images, masks = _batch()
    cfg = AugmentConfig(ssr_p=1.0)
    _, out_b = augment_batch(images, masks.bool(), cfg, _gen())
    assert out_b.dtype == torch.bool
    _, out_u = augment_batch(images, masks.to(torch.uint8) * 255, cfg, _gen())
    assert out_u.dtype == torch.uint8 and set(out_u.unique().tolist()) <= {0, 255}


def test_float64_and_empty_batch() -> None:
    images, masks = _batch()
    out_i, out_m = augment_batch(images.double(), masks.double(), AugmentConfig(ssr_p=1), _gen())
    assert out_i.dtype == torch.float64 and out_m.dtype == torch.float64
    e_i, e_m = augment_batch(torch.zeros(0, 3, 8, 8), torch.zeros(0, 1, 8, 8), None, _gen())
    assert e_i.shape == (0, 3, 8, 8) and e_m.shape == (0, 1, 8, 8)


def test_default_config_matches_paper() -> None:
    c = AugmentConfig()
    assert (c.hflip, c.vflip, c.rot90) == (0.5, 0.5, 0.5)
    assert (c.jitter_p, c.brightness, c.contrast, c.saturation, c.hue) == (0.2, 0.1, 0.1, 0.1, 0.1)
    assert (c.ssr_p, c.shift, c.scale, c.rotate_deg) == (0.4, 0.15, 0.1, 20.0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"hflip": 1.5}, "hflip"),
        ({"ssr_p": -0.1}, "ssr_p"),
        ({"scale": 1.0}, "scale"),
        ({"hue": 0.6}, "hue"),
        ({"rotate_deg": float("nan")}, "rotate_deg"),
    ],
)
def test_config_validation(kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        AugmentConfig(**kwargs)


@pytest.mark.parametrize(
    ("images", "masks", "needle"),
    [
        (torch.rand(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), r"\(B, 3, H, W\)"),
        (torch.rand(3, 8, 8), torch.zeros(1, 8, 8), r"\(B, 3, H, W\)"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 1, 8, 8), "floating"),
        (torch.rand(2, 3, 8, 8), torch.zeros(2, 1, 8, 9), r"\(2, 1, 8, 8\)"),
        (torch.rand(2, 3, 8, 8), torch.zeros(3, 1, 8, 8), r"\(2, 1, 8, 8\)"),
    ],
)
def test_bad_inputs(images: torch.Tensor, masks: torch.Tensor, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        augment_batch(images, masks, AugmentConfig(), _gen())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu() -> None:
    images, masks = _batch(b=8)
    cfg = AugmentConfig(jitter_p=0.5, ssr_p=0.5)
    cpu = augment_batch(images, masks, cfg, _gen(7))
    gpu = augment_batch(images.cuda(), masks.cuda(), cfg, _gen(7))
    assert gpu[0].is_cuda and gpu[1].is_cuda
    assert torch.allclose(gpu[0].cpu(), cpu[0], atol=1e-4)
    assert (gpu[1].cpu() != cpu[1]).float().mean() < 0.01
