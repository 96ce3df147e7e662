"""Latency of every inference path: Wave-GMS against a GMS-sized path, side by side in one process.

Wave-GMS path: array -> resize -> E_wave (mean) -> LMM -> tiny decoder -> soft mask -> resize
back -> threshold. GMS-sized path: SD-VAE encoder -> LMM (4 channels) -> SD-VAE decoder, built
with diffusers' ``AutoencoderKL`` in the Stable Diffusion configuration (random weights: the
timing does not depend on them).
"""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np
import torch

from wavegms.bench.measure import (
    Timing,
    count_gflop,
    cpu_peak_gflops,
    optional_install_mb,
    peak_rss_mb,
    time_call,
)
from wavegms.core.errors import InputError
from wavegms.net.model import ModelConfig, WaveGMS, latent_to_mask

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


def wavegms_path(model, image: np.ndarray, backend: str = "traced", calibration=None):
    """A closure segmenting ``image`` through ``backend``, its graph built and its
    first-call costs paid here. ``calibration``: the int8 graph's calibration images (default:
    the bundled sample)."""
    from wavegms.inference.segmenter import Segmenter

    segmenter = Segmenter(model, device="cpu", backend=backend, calibration=calibration)
    segmenter.segment(image, rgb=True)  # builds the graph (once per loaded model)
    ran = segmenter.graph_backend or "eager"
    if ran != backend:
        raise InputError(f"the {backend} path could not be built (it fell back to {ran})")
    return lambda: segmenter.segment(image, rgb=True)


#: The int8 row calibrated on the scored dataset's training images (``calibration_dir``).
INT8_DATA = "int8 data"
#: The rows of ``wavegms bench`` after "WG eager": (row name, Segmenter backend).
PATHS = (
    ("traced", "traced"),
    ("onnx", "onnx"),
    ("openvino", "openvino"),
    ("onnx int8", "int8"),
)


def bench_paths(
    backends: tuple[str, ...] | None = None, calibration_dir: str | None = None, model=None
):
    """(row name, backend, int8 calibration images or None) of each path after eager. The
    :data:`INT8_DATA` row only for a model that carries no int8 ranges of its own (with them,
    "onnx int8" is already calibrated on its training images)."""
    from wavegms.runtime.calibration import stored_ranges

    rows = [(n, b, None) for n, b in PATHS if backends is None or b in backends]
    carried = stored_ranges(getattr(model, "metadata", None) or {}) is not None
    if calibration_dir and not carried and (backends is None or "int8" in backends):
        from wavegms.runtime.calibration import dataset_images

        rows.append((INT8_DATA, "int8", dataset_images(calibration_dir)))
    return rows


def rewritten_gflop(model) -> float:
    """GFLOP of the exactly rewritten soft-mask path (what the ONNX graphs execute) at the
    model size, for one image, without the resizing around it."""
    from wavegms.runtime.soft_mask import SoftMaskPath

    size = model.config.image_size
    path = SoftMaskPath(model)
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        return count_gflop(lambda: path(x))


#: What the GMS-sized baseline is, for the one-line error when diffusers is missing.
BASELINE_PURPOSE = "the GMS-sized baseline of `wavegms bench` (--no-baseline leaves it out)"


def gms_path(size: int):
    from wavegms.core.extras import require

    AutoencoderKL = require("diffusers", BASELINE_PURPOSE).AutoencoderKL
    from wavegms.net.lmm import LatentMappingModel

    vae = AutoencoderKL(**SD_VAE_CONFIG).eval().requires_grad_(False)
    lmm = LatentMappingModel(4).eval()
    x = torch.rand(1, 3, size, size) * 2 - 1

    @torch.inference_mode()
    def run():
        z = vae.encode(x).latent_dist.mode()
        return latent_to_mask(vae.decode(lmm(z)["out"]).sample) > 0.5

    params = sum(p.numel() for p in vae.parameters()) + sum(p.numel() for p in lmm.parameters())
    return run, params


def _check_bench_args(repeats: int, image_shape) -> None:
    """One-line errors for a bad repeat count or image shape, before any model is built."""
    if not (isinstance(repeats, int) and repeats >= 1):
        raise InputError(f"repeats must be a whole number of at least 1, not {repeats!r}")
    if len(image_shape) != 2 or not all(isinstance(n, int) and n >= 1 for n in image_shape):
        raise InputError(f"image_shape must be two positive whole numbers, not {image_shape!r}")


def _runnable_paths(model, image: np.ndarray, backends, calibration_dir) -> list[tuple]:
    """(name, call, GFLOP) of eager and then of each requested path that can run here;
    prints the ones it skips."""
    eager = wavegms_path(model, image, backend="eager")
    gflop = count_gflop(eager)  # the traced graph runs the same operations
    exact = rewritten_gflop(model) + gflop - count_gflop(lambda: model.predict_soft(_at(model)))
    paths = [("WG eager", eager, gflop)]
    for name, backend, calibration in bench_paths(backends, calibration_dir, model):
        try:
            fn = wavegms_path(model, image, backend=backend, calibration=calibration)
        except (ImportError, InputError) as err:  # an optional runtime not installed
            print(f"{name}: skipped ({err})")
            continue
        paths.append((name, fn, gflop if backend == "traced" else exact))
    return paths


def _time_interleaved(paths: list[tuple], repeats: int) -> dict[str, list[float]]:
    """Milliseconds of each of ``repeats`` calls of each path, by path name."""
    # Interleaved repeats: load that comes and goes hits every path alike.
    times: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    for _, fn, _ in paths:
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn, _ in paths:
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def run_bench(
    model=None,
    size: int = 224,
    image_shape=(472, 564),
    repeats: int = 10,
    baseline: bool = True,
    backends: tuple[str, ...] | None = None,
    calibration_dir: str | None = None,
) -> list[Timing]:
    """Median per-image latency (batch 1) of each path, from end to end (array in, mask out),
    with eager first and the paths timed in turn. ``backends``: which of :data:`PATHS` to
    time (default all installed). ``calibration_dir``: a dataset folder; adds the int8 path
    calibrated on its training images (row :data:`INT8_DATA`). Prints only which paths it
    skipped."""
    _check_bench_args(repeats, image_shape)
    if model is None:
        from wavegms.net.autoencoders import load_autoencoder

        model = WaveGMS(ModelConfig(image_size=size)).attach(load_autoencoder("taef2"))
    model.eval()
    rng = np.random.default_rng(0)
    image = rng.random((*image_shape, 3), dtype=np.float32)
    results = []
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("autoencoder"))
    paths = _runnable_paths(model, image, backends, calibration_dir)
    times = _time_interleaved(paths, repeats)
    for name, _, flop in paths:
        t = times[name]
        results.append(
            Timing(name, statistics.median(t), min(t), flop, peak_rss_mb(), params / 1e6)
        )
    if baseline:
        fn, params = gms_path(size)
        med, low = time_call(fn, max(2, repeats // 5))
        results.append(Timing("GMS-sized", med, low, count_gflop(fn), peak_rss_mb(), params / 1e6))
    return results


def _at(model) -> torch.Tensor:
    size = model.config.image_size
    return torch.zeros(1, 3, size, size)


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
    by_name = {t.name: t for t in results}
    eager, gms = by_name.get("WG eager"), by_name.get("GMS-sized")
    lines.append(
        "WG eager: eager PyTorch; traced: TorchScript graph (wavegms.runtime.traced); onnx: "
        "ONNX Runtime on the exactly rewritten graph (wavegms.runtime.onnx_graph); openvino: "
        "OpenVINO on that graph, fp32 (wavegms.runtime.openvino_session); onnx int8: "
        "its int8 quantisation (wavegms.runtime.quantize, not exact) with the activation ranges "
        "the model carries (wavegms.runtime.calibration), else calibrated on the bundled sample; "
        f"{INT8_DATA}: calibrated on 32 training images of --score-data"
    )
    for t in results:
        if t.name in ("WG eager", "GMS-sized"):
            continue
        ratios = [f"{eager.median_ms / t.median_ms:.2f}x eager"] if eager else []
        if gms:
            ratios.append(f"{gms.median_ms / t.median_ms:.1f}x the GMS-sized path")
        lines.append(f"speed-up of {t.name}: {', '.join(ratios)}")
    if peak:
        lines.append(
            f"CPU fp32 peak assumed: {peak:.0f} GFLOP/s ({threads} x clock x 32 FLOP/cycle)"
        )
    lines.append(
        "peak RSS is the process peak when the path finished (each row includes the rows above)"
    )
    sizes = optional_install_mb()
    if sizes:
        installed = ", ".join(f"{k} {v:.0f} MB" for k, v in sizes.items())
        lines.append(
            f"optional runtime install size: {installed} (the cpu-fast extra installs "
            "onnxruntime and onnx, the openvino extra openvino)"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- folder and fine-tune
