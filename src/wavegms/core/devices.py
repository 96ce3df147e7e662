"""Choosing the compute device by name: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``."""

from __future__ import annotations

import torch

from wavegms.core.errors import InputError


def available_devices() -> list[str]:
    """``auto`` first, then every device this machine has."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *[f"cuda:{i}" for i in range(torch.cuda.device_count())][1:]]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise InputError(f"unknown device {name!r}; choose from {available_devices()}") from err
    if device.type not in ("cpu", "cuda", "mps"):  # e.g. meta: tensors without data
        raise InputError(f"device {name!r} cannot run a model; choose from {available_devices()}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps' was asked for but MPS is not available")
    return device


# torch.OutOfMemoryError is new in torch 2.5; torch.cuda's name for it is older.
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is a device running out of memory (MPS and some CUDA paths raise a
    plain RuntimeError with this text)."""
    text = isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    return isinstance(err, _OUT_OF_MEMORY) or text
