"""How the cached views' frozen targets change with the encoder's arithmetic and layout.

    python scripts/bf16_targets_probe.py [--data ../shared/data/busi] [--images 32]

Encodes the first N training images and masks of a dataset at 224 with TAEF2 in fp32, fp32
NHWC (channels_last), bf16 and bf16 NHWC (bf16 autocast: meant for CPUs with bf16 units),
printing the CPU-seconds of this process (1 thread) and each latent's distance from fp32; then
whether the bf16 mask latents decode to the same masks as the fp32 ones (what the LMM's latent
target has to carry). docs/training.md quotes its output.
"""

from __future__ import annotations

import argparse
import time

import torch

from wavegms.net.autoencoders import load_autoencoder
from wavegms.training.dataset import InMemoryDataset, dataset_pairs


def encode(ae, batches: list[torch.Tensor], bf16: bool, nhwc: bool) -> tuple[float, torch.Tensor]:
    """(CPU-seconds, latents) of encoding ``batches`` in the given arithmetic and layout."""
    ae.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
    start = time.process_time()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = torch.cat([ae.encode(b).float() for b in batches])
    ae.to(memory_format=torch.contiguous_format)
    return time.process_time() - start, out


def decoded_dice(ae, a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean Dice between the masks that latents ``a`` and ``b`` decode to (fp32 decoder)."""
    with torch.no_grad():
        ma = torch.cat([ae.decode(z).mean(1) > 0 for z in a.split(8)])
        mb = torch.cat([ae.decode(z).mean(1) > 0 for z in b.split(8)])
    inter = (ma & mb).sum((1, 2)).float()
    total = (ma.sum((1, 2)) + mb.sum((1, 2))).float().clamp(min=1)
    return (2 * inter / total).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/busi")
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = InMemoryDataset(dataset_pairs(args.data, None, "train")[: args.images], 224, None)
    images = (data.images.float() / 255 * 2 - 1).split(8)
    masks = (data.masks.float().expand(-1, 3, -1, -1) * 2 - 1).split(8)
    ae = load_autoencoder("taef2", None)
    reference = {}
    for bf16, nhwc in ((False, False), (False, True), (True, False), (True, True)):
        encode(ae, images[:1], bf16, nhwc)  # first call: oneDNN picks its kernels
        seconds, z_images = encode(ae, images, bf16, nhwc)
        more, z_masks = encode(ae, masks, bf16, nhwc)
        reference = reference or {"image": z_images, "mask": z_masks}
        errors = [
            ((z - reference[k]).norm() / reference[k].norm()).item()
            for k, z in (("image", z_images), ("mask", z_masks))
        ]
        print(
            f"{'bf16' if bf16 else 'fp32'} {'NHWC' if nhwc else 'NCHW'}: {seconds + more:.2f} "
            f"CPU-s for {args.images} views; latents off fp32 by {errors[0]:.1%} (images), "
            f"{errors[1]:.1%} (masks)"
        )
        if bf16 and not nhwc:
            dice = decoded_dice(ae, z_masks, reference["mask"])
            print(f"  bf16 mask latents decode to the fp32 ones' masks at Dice {dice:.4f}")


if __name__ == "__main__":
    main()
