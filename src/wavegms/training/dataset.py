"""The training and validation images of a run, loaded once into memory as uint8 tensors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wavegms.core.errors import InputError
from wavegms.core.progress import CancelToken, ProgressCallback, check_cancel, report
from wavegms.data.pairs import Pair, carve_validation, dataset_pairs, load_pair
from wavegms.training.config import TrainConfig


class InMemoryDataset(torch.utils.data.Dataset):
    """All pairs loaded once, resized to ``size x size``, held as uint8 tensors.

    uint8 keeps memory at a quarter of float32 (880 Kvasir pairs at 224: about 130 MB).
    ``__getitem__`` gives ``(image float32 3xSxS in [0,1], mask float32 1xSxS in {0,1})``;
    ``.images`` (N,3,S,S), ``.masks`` (N,1,S,S, values 0/1) and ``.names`` give whole-tensor
    access, e.g. to move the whole set to the GPU once.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        size: int,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        if int(size) < 1:
            raise InputError(f"size must be a positive number of pixels, got {size}")
        self.size = int(size)
        self.pairs: list[Pair] = list(pairs)  # where the images came from (crop views reread)
        self.names: list[str] = [p.name for p in pairs]
        n = len(pairs)
        self.images = torch.empty((n, 3, self.size, self.size), dtype=torch.uint8)
        self.masks = torch.empty((n, 1, self.size, self.size), dtype=torch.uint8)
        report(progress, "load", 0, n, "loading images")
        for i, pair in enumerate(pairs):
            check_cancel(cancel)
            image, mask = load_pair(pair, self.size)
            self.images[i] = torch.from_numpy(
                np.round(image * 255.0).astype(np.uint8).transpose(2, 0, 1)
            )
            self.masks[i, 0] = torch.from_numpy(mask.astype(np.uint8))
            report(progress, "load", i + 1, n, pair.name)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].to(torch.float32) / 255.0
        mask = self.masks[index].to(torch.float32)
        return image, mask


def train_and_validation(
    config: TrainConfig, progress: ProgressCallback | None = None
) -> tuple[InMemoryDataset, InMemoryDataset]:
    """The run's pairs, split into training and validation by the config's seed, loaded.

    Loading is not cancellable: a Stop pressed meanwhile ends the run at its first batch, as
    a run that was stopped (not as an error)."""
    pairs = dataset_pairs(config.data_dir, config.split_file, config.split)
    if len(pairs) < 2:
        raise InputError(f"need at least 2 image/mask pairs to train, found {len(pairs)}")
    names = [p.name for p in pairs]
    train_names, val_names = carve_validation(names, config.val_fraction, config.seed)
    by_name = {p.name: p for p in pairs}
    train, val = (
        InMemoryDataset([by_name[n] for n in chosen], config.image_size, progress)
        for chosen in (train_names, val_names)
    )
    return train, val
