"""The paper's training augmentations on torch tensors, batch-wise, on any device.

They run on images already in [0, 1]. This is the point of the module: the reference code
jittered [0, 255] floats whose result clipped to [0, 1], so about a fifth of its training
images went nearly black (DESIGN section 6).

Per sample, in this order (the albumentations pipeline of the paper):

1. horizontal flip (p ``hflip``), vertical flip (p ``vflip``);
2. rotation by a random multiple of 90 degrees (p ``rot90``; k in 0..3 as in albumentations'
   ``RandomRotate90``). A non-square batch can only take k in {0, 2}, which keep the shape;
3. colour jitter on the image only (p ``jitter_p``): brightness, contrast, saturation factors
   drawn from ``[1 - x, 1 + x]`` and a hue shift from ``[-hue, hue]`` turns of the colour
   circle, applied in that fixed order (torchvision/albumentations shuffle the order; the
   difference is second-order for factors this small). Hue is a rotation of the chroma plane
   in YIQ space: one 3x3 matrix, no HSV round trip; it keeps luma exactly where an HSV hue
   shift does not, and like HSV it leaves grey pixels grey;
4. shift-scale-rotate (p ``ssr_p``): shift up to ``shift`` of the width/height, scale from
   ``[1 - scale, 1 + scale]``, rotation up to ``rotate_deg`` degrees about the centre, as one
   affine sampling grid + ``grid_sample`` for the affected samples: bilinear for images, nearest for
   masks (which therefore stay exactly binary). Borders are filled by **reflection**: it is
   what albumentations' ``ShiftScaleRotate`` does by default (``BORDER_REFLECT_101``), so the
   training distribution matches the paper's, and it adds no black wedges the model could
   learn as a cue. Image and mask are reflected alike, so labels stay consistent.

Every random number comes from the ``generator`` passed in (drawn on the generator's device, in
one fixed layout), so a seeded generator reproduces a run exactly, whichever ops are enabled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from wavegms.core.errors import InputError

# ITU-R BT.601 luma, used for grey levels (contrast, saturation) and YIQ (hue).
_LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)

# Columns of the per-sample uniform draws (one torch.rand call per batch).
_HFLIP, _VFLIP, _ROT, _ROT_K, _JIT, _BRI, _CON, _SAT, _HUE = range(9)
_SSR, _DX, _DY, _SCALE, _ANGLE = range(9, 14)
_N_DRAWS = 14


@dataclass
class AugmentConfig:
    """Probabilities and magnitudes of the paper's augmentations (defaults: DESIGN section 6)."""

    hflip: float = 0.5
    vflip: float = 0.5
    rot90: float = 0.5
    jitter_p: float = 0.2
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.1
    ssr_p: float = 0.4
    shift: float = 0.15
    scale: float = 0.1
    rotate_deg: float = 20.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = float(getattr(self, f.name))
            if not math.isfinite(value) or value < 0:
                raise InputError(f"augmentation setting {f.name} must be >= 0, got {value}")
        for name in ("hflip", "vflip", "rot90", "jitter_p", "ssr_p"):
            if getattr(self, name) > 1:
                raise InputError(
                    f"probability {name} must lie in [0, 1], got {getattr(self, name)}"
                )
        for name in ("brightness", "contrast", "saturation", "scale"):
            if getattr(self, name) >= 1:
                raise InputError(
                    f"{name} must be below 1 (factors in [1-x, 1+x]), got {getattr(self, name)}"
                )
        if self.hue > 0.5:
            raise InputError(f"hue must lie in [0, 0.5] turns, got {self.hue}")


def _check(images: torch.Tensor, masks: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise InputError("augment_batch takes torch tensors")
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise InputError(f"images must be floating point in [0, 1], got {images.dtype}")
    expected = (images.shape[0], 1, *images.shape[2:])
    if tuple(masks.shape) != expected:
        raise InputError(f"masks must have shape {expected}, got {tuple(masks.shape)}")
    if masks.device != images.device:
        raise InputError(f"images are on {images.device} but masks on {masks.device}")


def _uniform(u: torch.Tensor, limit: float) -> torch.Tensor:
    """Map U(0,1) draws to U(-limit, limit)."""
    return (2.0 * u - 1.0) * limit


def _colour_jitter(x: torch.Tensor, u: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Jitter a (n,3,H,W) batch in [0,1] with its (n, _N_DRAWS) uniform draws."""
    n, _, h, w = x.shape
    dtype, device = x.dtype, x.device
    luma = torch.tensor(_LUMA, dtype=dtype, device=device)

    bri = (1.0 + _uniform(u[:, _BRI], cfg.brightness)).to(dtype).view(n, 1, 1, 1)
    x = (x * bri).clamp_(0.0, 1.0)

    # Contrast blends with the mean grey level; mean(grey) = luma . per-channel means.
    con = (1.0 + _uniform(u[:, _CON], cfg.contrast)).to(dtype).view(n, 1, 1)
    mean = (x.mean(dim=(2, 3)) @ luma).view(n, 1, 1)

    # Saturation (blend with grey) and hue (YIQ chroma rotation) are linear: one 3x3 matrix.
    sat = (1.0 + _uniform(u[:, _SAT], cfg.saturation)).to(dtype).view(n, 1, 1)
    eye = torch.eye(3, dtype=dtype, device=device)
    to_grey = luma.view(1, 3).expand(3, 3)  # every row = luma
    m_sat = sat * eye + (1.0 - sat) * to_grey

    theta = _uniform(u[:, _HUE], cfg.hue).to(dtype) * (2.0 * math.pi)
    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.zeros(n, 3, 3, dtype=dtype, device=device)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2] = cos, -sin
    rot[:, 2, 1], rot[:, 2, 2] = sin, cos
    yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)
    to_yiq = yiq.to(dtype=dtype, device=device)
    from_yiq = torch.linalg.inv(yiq).to(dtype=dtype, device=device)
    m = from_yiq @ rot @ to_yiq @ m_sat  # (n,3,3)

    # Contrast folded into the same pass: M (c x + (1-c) mean 1) = c M x + (1-c) mean M 1.
    # This skips the clamp torchvision applies between contrast and saturation; with factors
    # within 10% the values it would clip are rare and the final clamp catches them.
    bias = (1.0 - con) * mean * m.sum(dim=2, keepdim=True)  # (n,3,1)
    out = torch.baddbmm(bias, con * m, x.reshape(n, 3, h * w))
    return out.view(n, 3, h, w).clamp_(0.0, 1.0)


def _affine_grid(u: torch.Tensor, cfg: AugmentConfig, height: int, width: int) -> torch.Tensor:
    """The (n,H,W,2) ``grid_sample`` grid (output -> input coordinates) of n samples.

    Same result as ``F.affine_grid(theta, align_corners=False)`` but built by broadcasting,
    which is about twice as fast on CPU.
    """
    n = u.shape[0]
    dx = _uniform(u[:, _DX], cfg.shift)
    dy = _uniform(u[:, _DY], cfg.shift)
    scale = 1.0 + _uniform(u[:, _SCALE], cfg.scale)
    angle = _uniform(u[:, _ANGLE], cfg.rotate_deg) * (math.pi / 180.0)
    # The forward map is p_out = s R(a) p_in + t in pixel units about the centre; grid_sample
    # needs the inverse, R(-a)/s (p_out - t). Normalised coordinates scale x by 2/W and y by
    # 2/H, so the off-diagonal terms pick up the aspect ratio and a shift of dx widths is 2*dx.
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    a00, a01 = cos, sin * (height / width)
    a10, a11 = -sin * (width / height), cos
    tx, ty = 2.0 * dx, 2.0 * dy
    b0 = -(a00 * tx + a01 * ty)
    b1 = -(a10 * tx + a11 * ty)

    def col(v: torch.Tensor) -> torch.Tensor:
        return v.view(n, 1, 1)

    # pixel centres in normalised coordinates (align_corners=False)
    xs = ((torch.arange(width, device=u.device, dtype=u.dtype) * 2 + 1) / width - 1).view(1, 1, -1)
    ys = ((torch.arange(height, device=u.device, dtype=u.dtype) * 2 + 1) / height - 1).view(
        1, -1, 1
    )
    gx = col(a00) * xs + col(a01) * ys + col(b0)
    gy = col(a10) * xs + col(a11) * ys + col(b1)
    return torch.stack([gx, gy], dim=-1)


def _chosen(u_host: torch.Tensor, col: int, p: float, device: torch.device) -> torch.Tensor | None:
    """Indices (on ``device``) of the samples whose host draw in ``col`` is below p."""
    idx = (u_host[:, col] < p).nonzero().squeeze(1)
    return idx.to(device) if idx.numel() else None


def _flip_and_rotate(x: torch.Tensor, u_host: torch.Tensor, cfg: AugmentConfig) -> None:
    """Steps 1 and 2, in place on the (B,4,H,W) image+mask tensor ``x``."""
    device = x.device
    h, w = x.shape[-2:]
    idx = _chosen(u_host, _HFLIP, cfg.hflip, device)
    if idx is not None:
        x[idx] = x[idx].flip(-1)
    idx = _chosen(u_host, _VFLIP, cfg.vflip, device)
    if idx is not None:
        x[idx] = x[idx].flip(-2)

    rotate = u_host[:, _ROT] < cfg.rot90
    if h == w:
        k = (u_host[:, _ROT_K] * 4).long().clamp_(max=3)
    else:  # a quarter turn would swap H and W; only a half turn keeps the batch's shape
        k = (u_host[:, _ROT_K] * 2).long().clamp_(max=1) * 2
    for kk in (1, 2, 3):
        idx = (rotate & (k == kk)).nonzero().squeeze(1)
        if idx.numel():
            idx = idx.to(device)
            x[idx] = torch.rot90(x[idx], kk, dims=(-2, -1))


def _shift_scale_rotate(
    x: torch.Tensor, idx: torch.Tensor, u: torch.Tensor, cfg: AugmentConfig
) -> None:
    """Step 4 on the samples ``idx`` of ``x`` (in place), with their draws ``u``."""
    sub = x[idx]
    grid = _affine_grid(u, cfg, x.shape[-2], x.shape[-1]).to(x.dtype)
    img = F.grid_sample(
        sub[:, :3], grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    msk = F.grid_sample(
        sub[:, 3:], grid, mode="nearest", padding_mode="reflection", align_corners=False
    )
    x[idx] = torch.cat([img, msk], dim=1)


@torch.no_grad()
def augment_batch(
    images: torch.Tensor,
    masks: torch.Tensor,
    cfg: AugmentConfig | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch: images (B,3,H,W) float in [0,1], masks (B,1,H,W) in {0,1}.

    Returns new tensors (the inputs are not modified) on the input device: images in the
    input dtype clamped to [0,1], masks in their input dtype with exactly the input's two
    values. Random decisions are per sample and all come from ``generator`` (the global torch
    RNG when it is None).
    """
    cfg = cfg or AugmentConfig()
    _check(images, masks)
    b = images.shape[0]
    if b == 0:
        return images.clone(), masks.clone()
    device, dtype = images.device, images.dtype

    gen_device = generator.device if generator is not None else torch.device("cpu")
    # One draw per batch in a fixed layout: the same seed gives the same decisions whatever
    # the config enables, and the same on CPU and GPU. The per-sample yes/no decisions are taken
    # on the host copy, so a CUDA batch needs no device-to-host sync per op; the magnitudes go
    # to the device once (B x 14 numbers).
    u = torch.rand(b, _N_DRAWS, generator=generator, device=gen_device, dtype=torch.float64)
    u_host = u.to("cpu", torch.float32)
    u_dev = u_host.to(device)

    # Image and mask in one tensor, so flips and rotations move both in one op (and a copy:
    # the in-place indexed writes below must never touch the caller's tensors).
    x = torch.cat([images, masks.to(dtype)], dim=1)
    _flip_and_rotate(x, u_host, cfg)

    idx = _chosen(u_host, _JIT, cfg.jitter_p, device)
    if idx is not None:
        x[idx, :3] = _colour_jitter(x[idx, :3], u_dev[idx], cfg)

    idx = _chosen(u_host, _SSR, cfg.ssr_p, device)
    if idx is not None:
        _shift_scale_rotate(x, idx, u_dev[idx], cfg)

    out_images = x[:, :3].clamp(0.0, 1.0)
    out_masks = x[:, 3:].to(masks.dtype).contiguous()
    return out_images, out_masks
