"""Measuring primitives of ``wavegms bench``: a path's timing record, median and best of repeated
calls, FLOPs counted by torch, the CPU's fp32 peak, a process's peak memory, install sizes."""

from __future__ import annotations

import platform
import resource
import statistics
import time
from dataclasses import dataclass


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
