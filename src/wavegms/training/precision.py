"""Which parts of a training step run under bf16 autocast, and where.

On CUDA, ``amp`` puts the whole step under bf16. On a CPU, bf16 pays only with bf16 units
(AVX-512-BF16 or AMX, detected at run time by ``core.cpu_features``): there ``cpu_bf16`` runs
the frozen autoencoder (the encodes of the targets and the decoded Dice heads) and
``cpu_bf16_ewave`` the trainable E_wave and LMM in bf16; weights, gradients and the optimiser
stay fp32, and so does the wavelet transform (ptwt rejects bf16). Validation is fp32 on a CPU.
"""

from __future__ import annotations

import torch

from wavegms.core.cpu_features import has_bf16_units
from wavegms.training.config import TrainConfig


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when ``amp``; a no-op context elsewhere."""
    enabled = amp and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def frozen_in_bf16(device: torch.device, config: TrainConfig) -> bool:
    """Whether the frozen autoencoder runs under bf16 on a CPU (``cpu_bf16`` with bf16 units)."""
    return device.type == "cpu" and config.cpu_bf16 and has_bf16_units()


def _step_autocast(device: torch.device, config: TrainConfig, on_cpu: bool):
    """bf16 on CUDA with ``amp``; on a CPU where ``on_cpu`` (the part's setting, with units)."""
    if device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on_cpu)
    return autocast(device, config.amp)


def frozen_autocast(device: torch.device, config: TrainConfig):
    """The autocast for the frozen autoencoder (``cpu_bf16`` on a CPU)."""
    return _step_autocast(device, config, frozen_in_bf16(device, config))


def trainable_autocast(device: torch.device, config: TrainConfig):
    """The autocast for E_wave and the LMM (``cpu_bf16_ewave`` on a CPU)."""
    return _step_autocast(device, config, config.cpu_bf16_ewave and has_bf16_units())
