"""Malicious files for the safety tests: pickles that create a marker file when loaded."""

from __future__ import annotations

import pickle
from pathlib import Path


class Payload:
    """Unpickling this object creates ``marker``: a stand-in for code hidden in a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def write_payload(path: Path, marker: Path, torch_format: bool = True) -> Path:
    """A malicious file at ``path``: ``torch.save`` (zip + pickle) or a bare pickle."""
    if torch_format:
        import torch

        torch.save({"state_dict": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))
    return path
