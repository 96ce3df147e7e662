"""What this CPU can do, read at run time (never assumed from the machine we built on).

bf16 autocast on a CPU pays only where the CPU has bf16 dot-product units (AVX-512-BF16 or
AMX); elsewhere oneDNN emulates bf16 and it is slower than fp32. Linux lists the units in
``/proc/cpuinfo``; other systems report nothing here, and the callers stay in fp32.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The flags of the first processor in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_bf16_units() -> bool:
    """True when the CPU computes bf16 natively (AVX-512-BF16 or AMX)."""
    return any(flag in cpu_flags() for flag in BF16_FLAGS)
