"""CPU-seconds of the two trainable parts of a step, eager against ``torch.compile``.

    python scripts/compile_probe.py ewave|decoder [--batch 4]

``ewave``: E_wave + LMM forward and backward with the latent and alignment losses; ``decoder``:
one head's Dice loss through the frozen decoder, forward and backward. Prints the least of 3
eager calls, the compiled function's first call (the compile) and the least of 3 after it.
CPU-seconds are the process's own, so other work on the machine does not inflate them.
"""

from __future__ import annotations

import argparse
import time

import torch

from wavegms.net.autoencoders import load_autoencoder
from wavegms.store.catalogue import resolve_model
from wavegms.store.model_files import load_model
from wavegms.training.losses import alignment_loss, latent_loss, soft_dice_loss


def least_cpu_seconds(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("ewave", "decoder"))
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    autoencoder = load_autoencoder("taef2", None)
    model = load_model(resolve_model("busi")).float().attach(autoencoder)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch, 3, 224, 224, generator=gen)
    masks = (torch.rand(args.batch, 1, 224, 224, generator=gen) > 0.5).float()
    with torch.no_grad():
        z_mask = autoencoder.encode(masks.expand(-1, 3, -1, -1) * 2 - 1)
        z_image = autoencoder.encode(images * 2 - 1)
    latent = z_mask.clone().requires_grad_(True)

    def ewave(forward) -> None:
        out = forward(images, sample=True)
        (latent_loss(out, z_mask) + alignment_loss(out["z"], z_image)).backward()

    def decoder(decode) -> None:
        soft_dice_loss(decode(latent).float(), masks).backward()

    part, target = (ewave, model) if args.part == "ewave" else (decoder, model.decode_mask)
    print(f"eager {args.part}: {least_cpu_seconds(lambda: part(target)):.2f} CPU-s")
    compiled = torch.compile(target)
    print(f"compile (first call): {least_cpu_seconds(lambda: part(compiled), 1):.1f} CPU-s")
    print(f"compiled {args.part}: {least_cpu_seconds(lambda: part(compiled)):.2f} CPU-s")


if __name__ == "__main__":
    main()
