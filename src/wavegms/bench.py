"""Inference benchmark: Wave-GMS against a GMS-sized path, side by side in one process.

Wave-GMS path: array -> resize -> E_wave (mean) -> LMM -> tiny decoder -> soft mask -> resize
back -> threshold. GMS-sized path: SD-VAE encoder -> LMM (4 channels) -> SD-VAE decoder, built
with diffusers' ``AutoencoderKL`` in the Stable Diffusion configuration (random weights: the
timing does not depend on them).
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from .model import ModelConfig, WaveGMS, latent_to_mask

SD_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
}


@dataclass
class Timing:
    name: str
    median_ms: float
    min_ms: float
    gflop: float | None = None
    peak_rss_mb: float | None = None
    params_m: float | None = None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if platform.system() != "Darwin" else rss / 2**20


def time_call(fn, repeats: int, warmup: int = 1) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def count_gflop(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def cpu_peak_gflops(threads: int) -> float | None:
    """fp32 peak: threads x clock x 32 FLOP/cycle (two 8-wide AVX2 FMA units); None if the
    clock is unknown. A ceiling for the 'fraction of peak' figure, not a measured number."""
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
    except OSError:
        return None
    return threads * max(mhz) / 1000 * 32 if mhz else None


def wavegms_path(model, image: np.ndarray):
    from .predict import Segmenter

    segmenter = Segmenter(model, device="cpu")
    return lambda: segmenter.segment(image, rgb=True)


def gms_path(size: int):
    from diffusers import AutoencoderKL

    from .lmm import LatentMappingModel

    vae = AutoencoderKL(**SD_VAE_CONFIG).eval().requires_grad_(False)
    lmm = LatentMappingModel(4).eval()
    x = torch.rand(1, 3, size, size) * 2 - 1

    @torch.inference_mode()
    def run():
        z = vae.encode(x).latent_dist.mode()
        return latent_to_mask(vae.decode(lmm(z)["out"]).sample) > 0.5

    params = sum(p.numel() for p in vae.parameters()) + sum(p.numel() for p in lmm.parameters())
    return run, params


def run_bench(
    model=None, size: int = 224, image_shape=(472, 564), repeats: int = 10, baseline: bool = True
) -> list[Timing]:
    """Median per-image latency (batch 1) of each path; prints nothing."""
    if model is None:
        from .autoencoders import load_autoencoder

        model = WaveGMS(ModelConfig(image_size=size)).attach(load_autoencoder("taef2"))
    model.eval()
    rng = np.random.default_rng(0)
    image = rng.random((*image_shape, 3), dtype=np.float32)
    results = []
    fn = wavegms_path(model, image)
    med, low = time_call(fn, repeats)
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("autoencoder"))
    results.append(Timing("Wave-GMS", med, low, count_gflop(fn), peak_rss_mb(), params / 1e6))
    if baseline:
        fn, params = gms_path(size)
        med, low = time_call(fn, max(2, repeats // 5))
        results.append(Timing("GMS-sized", med, low, count_gflop(fn), peak_rss_mb(), params / 1e6))
    return results


def format_report(results: list[Timing], size: int, image_shape) -> str:
    threads = torch.get_num_threads()
    peak = cpu_peak_gflops(threads)
    lines = [
        f"machine: {platform.processor() or platform.machine()}, {threads} torch threads, "
        f"torch {torch.__version__}",
        f"input: {image_shape[1]}x{image_shape[0]} RGB array -> binary mask "
        f"(model size {size}), batch 1, median of repeats",
        f"{'path':<10} {'median ms':>10} {'min ms':>8} {'GFLOP':>7} {'GFLOP/s':>8} "
        f"{'of peak':>8} {'params M':>9} {'peak RSS MB':>12}",
    ]
    for t in results:
        rate = t.gflop / (t.median_ms / 1000) if t.gflop else float("nan")
        frac = f"{100 * rate / peak:.1f}%" if peak else "n/a"
        lines.append(
            f"{t.name:<10} {t.median_ms:>10.1f} {t.min_ms:>8.1f} {t.gflop:>7.2f} {rate:>8.1f} "
            f"{frac:>8} {t.params_m:>9.2f} {t.peak_rss_mb:>12.0f}"
        )
    if len(results) == 2:
        ratio = results[1].median_ms / results[0].median_ms
        lines.append(f"speed-up of Wave-GMS over the GMS-sized path: {ratio:.1f}x")
    if peak:
        lines.append(
            f"CPU fp32 peak assumed: {peak:.0f} GFLOP/s ({threads} x clock x 32 FLOP/cycle)"
        )
    lines.append(
        "peak RSS is the process peak when the path finished (the GMS row includes Wave-GMS's)"
    )
    return "\n".join(lines)
