"""Fixtures of the reliability suite: malicious pickle payloads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .payloads import write_payload

# One OpenMP thread: the suite shares a small machine with other work (see tests/napari).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def payload(tmp_path) -> tuple[Path, Path]:
    """(a malicious ``evil.pt``, the marker file it would create when unpickled)."""
    import torch

    # The payload is live: a plain torch.load of such a file really runs it (else the tests
    # would prove nothing).
    probe = tmp_path / "probe"
    torch.load(write_payload(tmp_path / "probe.pt", probe), weights_only=False)
    assert probe.exists()
    marker = tmp_path / "PWNED"
    return write_payload(tmp_path / "evil.pt", marker), marker
