"""``wavegms bench --train``: what a training step costs, part by part, for today's step and
each candidate change side by side; and equal-budget learning curves of two configurations.

The parts are those a step is made of (DESIGN.md section 10): data and augmentation, the
frozen encodes of image and mask (the targets), E_wave + LMM forward and backward with the
latent and alignment losses, one decoded head forward and backward (the Dice loss through the
frozen decoder), and the optimiser. Each is timed on the same random batch at the model size;
a configuration's step cost follows from them (a config with cached views skips the encodes,
``seg_every`` k decodes every k-th batch).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from wavegms.bench.measure import time_call
from wavegms.core.cpu_features import has_bf16_units

PARTS = ("data + augmentation", "frozen encodes", "E_wave + LMM fwd/bwd", "decoded head fwd/bwd",
         "optimizer")  # fmt: skip


@dataclass
class StepVariant:
    """A candidate change of the step's arithmetic (its losses and schedule unchanged)."""

    name: str
    bf16: bool = False  # the frozen autoencoder under bf16 autocast (CPU bf16 units)
    channels_last: bool = False  # the frozen autoencoder's tensors in NHWC
    bf16_ewave: bool = False  # E_wave and the LMM under bf16 autocast too (cpu_bf16_ewave)


def step_variants() -> list[StepVariant]:
    """Today's step, then each change this CPU can run (bf16 only with bf16 units)."""
    variants = [StepVariant("fp32 (today)"), StepVariant("channels_last AE", channels_last=True)]
    if has_bf16_units():
        variants += [
            StepVariant("bf16 AE", bf16=True),
            StepVariant("bf16 + channels_last AE", bf16=True, channels_last=True),
            StepVariant("bf16 AE + E_wave", bf16=True, bf16_ewave=True),
        ]
    return variants


def _frozen(variant: StepVariant):
    if variant.bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _layout(x: torch.Tensor, variant: StepVariant) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if variant.channels_last else x


def time_step_parts(
    model, variant: StepVariant, batch: int = 8, repeats: int = 3
) -> dict[str, float]:
    """Seconds per image of each part of a training step on a random batch at model size."""
    from wavegms.training.augment import AugmentConfig, augment_batch
    from wavegms.training.losses import alignment_loss, latent_loss, soft_dice_loss

    size, ae = model.config.image_size, model.autoencoder
    ae.to(memory_format=torch.channels_last if variant.channels_last else torch.contiguous_format)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=gen)
    masks = (torch.rand(batch, 1, size, size, generator=gen) > 0.5).float()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    with torch.no_grad(), _frozen(variant):
        z_image = ae.encode(_layout(images * 2 - 1, variant)).float()
        z_mask = ae.encode(_layout(masks.expand(-1, 3, -1, -1) * 2 - 1, variant)).float()

    def data() -> None:
        augment_batch(images, masks, AugmentConfig(), generator=gen)

    def encodes() -> None:
        with torch.no_grad(), _frozen(variant):
            ae.encode(_layout(images * 2 - 1, variant))
            ae.encode(_layout(masks.expand(-1, 3, -1, -1) * 2 - 1, variant))

    def trainable() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.bf16_ewave):
            out = model(images, sample=True)
            loss = latent_loss(out, z_mask) + alignment_loss(out["z"], z_image)
        loss.backward()

    latent = z_mask.clone().requires_grad_(True)

    def decoded() -> None:
        with _frozen(variant):
            soft = model.decode_mask(_layout(latent, variant)).float()
        soft_dice_loss(soft, masks).backward()

    def step() -> None:
        optimizer.step()

    parts = (data, encodes, trainable, decoded, step)
    timed = zip(PARTS, parts, strict=True)
    seconds = {name: time_call(fn, repeats)[0] / 1000 / batch for name, fn in timed}
    ae.to(memory_format=torch.contiguous_format)
    optimizer.zero_grad(set_to_none=True)
    return seconds


def step_seconds(parts: dict[str, float], cached_views: int, seg_every: int, heads: int) -> float:
    """Seconds per image of a configuration's average step, from its parts."""
    encodes = 0.0 if cached_views else parts["frozen encodes"]
    decode = heads * parts["decoded head fwd/bwd"] / seg_every
    fixed = parts["data + augmentation"] if not cached_views else 0.0
    return fixed + encodes + parts["E_wave + LMM fwd/bwd"] + decode + parts["optimizer"]


def format_parts(table: dict[str, dict[str, float]]) -> str:
    """Images per second of each part (rows) for each variant (columns)."""
    names = list(table)
    width = max(22, *(len(n) + 2 for n in names))
    head = f"{'part (images/s)':<24}" + "".join(f"{n:>{width}}" for n in names)
    lines = [head]
    for part in PARTS:
        cells = "".join(f"{1 / table[n][part]:>{width}.1f}" for n in names)
        lines.append(f"{part:<24}{cells}")
    return "\n".join(lines)
