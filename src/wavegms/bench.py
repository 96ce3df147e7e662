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


@dataclass
class Timing:
    name: str
    median_ms: float
    min_ms: float
    gflop: float | None = None
    peak_rss_mb: float | None = None
    params_m: float | None = None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far. On Linux it is the memory map's high-water
    mark (VmHWM): ``ru_maxrss`` survives ``execve``, so a fresh process started by a big one
    would report its parent's peak (every path of the bench read the same 1596 MB)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
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


def wavegms_path(
    model, image: np.ndarray, traced: bool = True, backend: str | None = None, calibration=None
):
    """A closure segmenting ``image`` through ``backend`` (default: traced, or eager with
    ``traced=False``), its graph built and its first-call costs paid here. ``calibration``:
    the int8 graph's calibration images (default: the bundled sample)."""
    from wavegms.inference.segmenter import Segmenter

    backend = backend or ("traced" if traced else "eager")
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


def optional_install_mb(packages=("onnxruntime", "onnx", "openvino")) -> dict[str, float]:
    """Installed size on disk (MB) of each optional runtime package found."""
    import importlib.util
    from pathlib import Path

    sizes = {}
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        sizes[name] = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6
    return sizes


def gms_path(size: int):
    from diffusers import AutoencoderKL

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
    if not (isinstance(repeats, int) and repeats >= 1):
        raise InputError(f"repeats must be a whole number of at least 1, not {repeats!r}")
    if len(image_shape) != 2 or not all(isinstance(n, int) and n >= 1 for n in image_shape):
        raise InputError(f"image_shape must be two positive whole numbers, not {image_shape!r}")
    if model is None:
        from wavegms.net.autoencoders import load_autoencoder

        model = WaveGMS(ModelConfig(image_size=size)).attach(load_autoencoder("taef2"))
    model.eval()
    rng = np.random.default_rng(0)
    image = rng.random((*image_shape, 3), dtype=np.float32)
    results = []
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("autoencoder"))
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
    # Interleaved repeats: load that comes and goes hits every path alike.
    times: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    for _, fn, _ in paths:
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn, _ in paths:
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
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
            "onnxruntime and onnx; openvino is installed separately)"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- folder and fine-tune


@dataclass
class FolderTiming:
    images: int
    pipelined_per_s: float  # segment_folder: decoding and writing overlap inference
    sequential_per_s: float  # the same steps and batches, one after another (overlap=False)
    one_at_a_time_per_s: float | None = None  # pipelined, each batch's images one at a time
    backend: str | None = None  # the graph that ran


def _synthetic_folder(folder, n: int, shape: tuple[int, int]) -> None:
    """``n`` speckled grey PNGs of ``shape`` with a bright disc (ultrasound-like sizes)."""
    from wavegms.core.files import write_png

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i in range(n):
        image = rng.gamma(2.0, 40.0, shape).clip(0, 255)
        cy, cx = rng.uniform(0.3, 0.7, 2) * shape
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < (shape[0] / 6) ** 2] *= 0.3
        write_png(folder / f"img_{i:03d}.png", image.astype(np.uint8))


def time_folder(
    model, n: int = 20, shape: tuple[int, int] = (472, 564), backend: str = "auto"
) -> FolderTiming:
    """Images per second for a folder of ``n`` BUSI-sized PNGs through the folder pipeline,
    with and without overlapping decoding and writing with inference: both runs do the very
    same work per image (decode once, model input, batched model, resize back, write); and
    with each batch's images run one at a time instead of side by side. ``backend``: the
    Segmenter's (default ``"auto"``, what ``wavegms segment`` runs)."""
    import tempfile
    from pathlib import Path

    from wavegms.inference.folder import segment_folder
    from wavegms.inference.segmenter import Segmenter

    segmenter = Segmenter(model, device="cpu", backend=backend)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        _synthetic_folder(src, n, shape)
        segment_folder(segmenter, src, Path(tmp) / "warm")  # first-call costs out of the way
        seconds = {}
        for overlap, side_by_side in ((True, True), (False, True), (True, False)):
            segmenter.side_by_side = side_by_side
            start = time.perf_counter()
            out = Path(tmp) / f"overlap_{overlap}_{side_by_side}"
            segment_folder(segmenter, src, out, overlap=overlap)
            seconds[overlap, side_by_side] = time.perf_counter() - start
    return FolderTiming(
        n, n / seconds[True, True], n / seconds[False, True], n / seconds[True, False],
        segmenter.graph_backend or "eager",
    )  # fmt: skip


@dataclass
class FinetuneTiming:
    label: str
    seconds: float
    val_dice: float
    train_images: int
    val_images: int
    epochs: int


def time_finetune(
    data_dir: str, base_model: str, n_images: int = 10, epochs: int = 10, fast: bool = True
) -> FinetuneTiming:
    """Wall time of fine-tuning ``base_model`` on the first ``n_images`` training pairs of
    ``data_dir`` (CPU), from the request to the installed model, by the one ``finetune()``
    that ``wavegms finetune`` and the dock run. The model it installs (under a name of its
    own) is removed again afterwards."""
    import shutil
    import tempfile
    from pathlib import Path

    from wavegms.data.pairs import dataset_pairs
    from wavegms.store.catalogue import model_paths, resolve_model
    from wavegms.training.finetune import FinetuneRequest, finetune

    pairs = dataset_pairs(data_dir, split="train")[:n_images]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pairs"
        for sub in ("images", "masks"):
            (root / sub).mkdir(parents=True)
        for p in pairs:
            shutil.copyfile(p.image, root / "images" / Path(p.image).name)
            shutil.copyfile(p.mask, root / "masks" / Path(p.mask).name)
        name = f"wavegms-bench-{time.strftime('%Y%m%d-%H%M%S')}"
        request = FinetuneRequest(
            str(root), str(resolve_model(base_model)), name, out_dir=str(Path(tmp) / "run"),
            device="cpu", epochs=epochs, fast_cpu=fast,
        )  # fmt: skip
        start = time.perf_counter()
        outcome = finetune(request)
        seconds = time.perf_counter() - start
        if outcome.installed is not None:  # installed by this call, under its own name
            for path in model_paths(outcome.installed):
                path.unlink(missing_ok=True)
    label = "fast CPU schedule" if fast else "full schedule"
    return FinetuneTiming(
        label, seconds, outcome.best_val_dice, outcome.train_images, outcome.val_images, epochs
    )


def format_extra(folder: FolderTiming | None, finetunes: list[FinetuneTiming]) -> str:
    lines = []
    if folder is not None:
        lines += [
            f"folder of {folder.images} images 564x472 (decode, segment, write masks): "
            f"{folder.pipelined_per_s:.2f} images/s pipelined (segment_folder), "
            f"{folder.sequential_per_s:.2f} images/s with the same steps one after another "
            f"({folder.pipelined_per_s / folder.sequential_per_s:.2f}x)",
        ]
        if folder.one_at_a_time_per_s:
            lines.append(
                f"  backend {folder.backend}: a batch's images side by side (one stream per "
                f"thread) {folder.pipelined_per_s:.2f} images/s, one at a time (all threads on "
                f"one image) {folder.one_at_a_time_per_s:.2f} images/s "
                f"({folder.pipelined_per_s / folder.one_at_a_time_per_s:.2f}x)"
            )
    for f in finetunes:
        lines.append(
            f"fine-tune ({f.label}): {f.train_images} train + {f.val_images} validation "
            f"images, {f.epochs} epochs: {f.seconds:.1f} s wall, best validation Dice "
            f"{100 * f.val_dice:.2f}"
        )
    return "\n".join(lines)
