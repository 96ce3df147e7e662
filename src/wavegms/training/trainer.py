"""The training loop: epochs, learning-rate schedule, validation, best model, progress, Stop.

One loop for the command line, the napari fine-tune dock and the benchmark. What it trains on
(``dataset``), where its targets come from (``targets``), what it writes (``checkpoint``) and
what it depends on (``config``) live in modules of their own. Running the same config again
resumes from the last completed epoch, on the same loss curve. Given the
:class:`~wavegms.training.ranks.Ranks` of a DDP run, the same loop runs as one rank of
it (the few places that differ say ``ranks``).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from wavegms.core.devices import resolve_device
from wavegms.core.errors import Cancelled, InputError
from wavegms.core.files import ensure_folder, remove_stale_temporaries
from wavegms.core.progress import CancelToken, ProgressCallback, check_cancel, report
from wavegms.net.autoencoders import load_autoencoder
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.store import model_files
from wavegms.training import checkpoint
from wavegms.training.config import TrainConfig
from wavegms.training.dataset import train_and_validation
from wavegms.training.losses import alignment_loss, latent_loss, segmentation_loss
from wavegms.training.targets import Batch, autocast, frozen_targets

if TYPE_CHECKING:
    from wavegms.training.ranks import Ranks

BUDGET_MEASURED_EPOCHS = 2  # epochs timed before a time budget fixes the number of epochs
BUDGET_MARGIN = 0.95  # share of the remaining budget planned for (epochs vary a little)


def clock() -> float:
    """Seconds on a monotonic clock (one place, so tests can run a budget on a fake clock)."""
    return time.perf_counter()


@dataclass
class TrainResult:
    run_dir: Path
    best_model: Path | None  # None: no epoch ended
    best_val_dice: float  # -1 when no epoch ended
    epochs_done: int
    history: list[dict]
    cancelled: bool
    best_epoch: int  # 1-based epoch of the best model (0 if none)
    train_images: int
    val_images: int


def lr_factor(epoch: int, epochs: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` epochs, then cosine to 0 by the last epoch (per epoch)."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    span = max(1, epochs - warmup)
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / span))


class Trainer:
    """Builds data, model and optimiser from a config; ``run()`` trains with resume."""

    def __init__(
        self,
        config: TrainConfig,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        ranks: Ranks | None = None,
    ) -> None:
        config.validate()
        self.ranks = ranks  # None: one process; else this rank of a DDP run
        self.writes = ranks is None or ranks.main  # only rank 0 writes the run folder
        self.started = clock()  # a time budget counts from here: loading data is part of it
        self.config = config
        self.progress = progress
        self.cancel = cancel
        self.device = resolve_device(config.device)
        self.run_dir = config.run_dir()
        self.generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.train_set, self.val_set = train_and_validation(config, progress)
        self.base_weights: Path | None = None  # the init model's file, if fine-tuning
        self.model = self._model()
        self.forward = ranks.wrap(self.model) if ranks else self.model  # DDP averages grads
        self.identity = checkpoint.run_identity(
            config.to_dict(), self.train_set.names, self.val_set.names, self.base_weights
        )
        self.params = list(self.model.ewave.parameters()) + list(self.model.lmm.parameters())
        self._check_trainable()
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, weight_decay=config.weight_decay
        )
        self.targets = frozen_targets(
            config, self.train_set, self.model.autoencoder, self.device, self.generator,
            self.run_dir,
        )  # fmt: skip
        self.epoch = 0
        self.history: list[dict] = []
        self.best_val_dice = -1.0
        self.planned_epochs: int | None = None  # fixed by a time budget, kept on resume

    # -- set-up ------------------------------------------------------------------------------
    def _model(self) -> WaveGMS:
        c = self.config
        autoencoder = load_autoencoder(c.backend, c.backend_path)
        if c.init_model:
            from wavegms.store.catalogue import resolve_model

            self.base_weights = resolve_model(c.init_model)
            model = model_files.load_model(self.base_weights)
            if model.config.backend != c.backend or model.config.image_size != c.image_size:
                raise InputError(
                    f"init model {c.init_model} was trained with {model.config}; the run asks "
                    f"for backend {c.backend!r} at {c.image_size}"
                )
        else:
            model = WaveGMS(ModelConfig(c.backend, autoencoder.latent_channels, c.image_size))
        return model.attach(autoencoder).to(self.device)

    def _check_trainable(self) -> None:
        trainable = {id(p) for p in self.model.parameters() if p.requires_grad}
        if trainable != {id(p) for p in self.params}:
            raise RuntimeError("only E_wave and the LMM may be trainable")

    # -- one epoch ---------------------------------------------------------------------------
    def _step(self, batch: Batch, decode: bool) -> dict[str, float]:
        c = self.config
        with autocast(self.device, c.amp):
            out = self.forward(batch.images, sample=True)
            check_cancel(self.cancel)  # before the segmentation loss decodes (the dearest part)
            l_lm = latent_loss(out, batch.z_mask)
            l_align = alignment_loss(out["z"], batch.z_image)
            l_seg = (
                segmentation_loss(out, batch.masks, self.model.decode_mask, c.seg_heads)
                if c.seg_heads and decode
                else torch.zeros((), device=self.device)
            )
            loss = l_seg + l_lm + c.align_weight * l_align
        # Stop acts within a fraction of a batch: the backward pass costs about as much as
        # the forward one, and a step cut here leaves the weights as the last step made them.
        check_cancel(self.cancel)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {
            "loss": loss.item(),
            "seg": l_seg.item(),
            "latent": l_lm.item(),
            "align": l_align.item(),
        }

    def _train_epoch(self) -> dict[str, float]:
        c = self.config
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = c.lr * lr_factor(self.epoch, self.total_epochs, c.warmup_epochs)
        if self.ranks:  # this rank's part of the epoch (DistributedSampler)
            order = self.ranks.epoch_order(self.train_set, c.seed, self.epoch)
        else:
            order = torch.randperm(len(self.train_set), generator=self.generator)
        batches = list(order.split(c.batch_size))
        if c.max_batches_per_epoch:
            batches = batches[: c.max_batches_per_epoch]
        totals: dict[str, float] = {}
        for i, indices in enumerate(batches, start=1):
            check_cancel(self.cancel)
            decode = (i - 1) % c.seg_every == 0
            losses = self._step(self.targets.batch(indices), decode=decode)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v * len(indices)
            report(self.progress, "batch", i, len(batches), metrics={"loss": losses["loss"]})
        seen = sum(len(b) for b in batches)
        means = {k: v / seen for k, v in totals.items()}
        return self.ranks.average(means) if self.ranks else means

    @torch.no_grad()
    def validate(self) -> float:
        """Mean Dice (threshold 0.5, model size) over the validation images."""
        self.model.eval()
        dices = []
        for indices in torch.arange(len(self.val_set)).split(self.config.batch_size):
            check_cancel(self.cancel)  # Stop need not wait for the whole validation
            images = self.val_set.images[indices].float().div_(255).to(self.device)
            masks = self.val_set.masks[indices].to(self.device).bool()
            with autocast(self.device, self.config.amp):
                pred = self.model.predict_soft(images).float() > 0.5
            inter = (pred & masks).sum((1, 2, 3)).float()
            total = (pred.sum((1, 2, 3)) + masks.sum((1, 2, 3))).float()
            dices += torch.where(total > 0, 2 * inter / total.clamp(min=1), 1.0).tolist()
        return sum(dices) / len(dices)

    # -- checkpoints -------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        if not self.writes:
            return
        rng = {"rng.generator": self.generator.get_state(), "rng.torch": torch.get_rng_state()}
        if self.device.type == "cuda":  # the model's latent sampling draws on the GPU
            rng["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "epoch": self.epoch,
            "best_val_dice": self.best_val_dice,
            "history": self.history,
            "planned_epochs": self.planned_epochs,
            "config": self.config.to_dict(),
            checkpoint.IDENTITY_KEY: self.identity,
        }
        checkpoint.save_last(self.run_dir, self.model, self.optimizer, rng, state)
        checkpoint.write_history(self.run_dir, self.history)

    def resume(self) -> bool:
        """Load ``last.*`` from the run folder if present; True if a run was resumed. A run
        folder started with other data, settings or base model is refused."""
        state = checkpoint.read_state(self.run_dir)
        if state is None:
            return False
        checkpoint.check_identity(self.run_dir, state, self.identity)
        loaded = checkpoint.load_last(self.run_dir, self.model, self.optimizer)
        if loaded is None:
            return False
        meta, rng = loaded
        self.generator.set_state(rng["rng.generator"])
        torch.set_rng_state(rng["rng.torch"])
        if self.device.type == "cuda" and "rng.cuda" in rng:
            torch.cuda.set_rng_state(rng["rng.cuda"], self.device)
        self.epoch = meta["epoch"]
        self.best_val_dice = meta["best_val_dice"]
        self.history = meta["history"]
        self.planned_epochs = meta.get("planned_epochs")
        return True

    def _save_best(self, val_dice: float) -> None:
        if not self.writes:
            return
        meta = {
            "name": self.config.name,
            "epoch": self.epoch,
            "val_dice": val_dice,
            "train_images": len(self.train_set),
            "val_images": len(self.val_set),
            "data_dir": str(self.config.data_dir),
            "config": self.config.to_dict(),
        }
        checkpoint.save_best(self.run_dir, self.model, meta)

    # -- the loop ----------------------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        """The run's length: ``epochs``, or fewer once a time budget has fixed it."""
        return self.planned_epochs or self.config.epochs

    def _fit_budget(self, row: dict, epochs_timed: int, loop_seconds: float) -> bool:
        """Once the first epochs of this session are timed (or sooner, when the next epoch
        would not fit), fix the number of epochs to what fits the time budget left; the
        decision is recorded in ``row``. True when it decided now."""
        budget = self.config.time_budget_s
        if budget is None or self.planned_epochs is not None:
            return False
        per_epoch = loop_seconds / epochs_timed  # excludes loading and target caching
        left = budget - (clock() - self.started)
        fits = BUDGET_MARGIN * left / per_epoch if per_epoch > 0 else math.inf
        if epochs_timed < BUDGET_MEASURED_EPOCHS and fits >= 1:
            return False
        more = self.config.epochs if math.isinf(fits) else max(0, math.floor(fits))
        self.planned_epochs = min(self.config.epochs, self.epoch + more)
        row["planned_epochs"] = self.planned_epochs
        row["budget_seconds_per_epoch"] = per_epoch
        return True

    def run(self) -> TrainResult:
        c = self.config
        first = self.ranks.main_first() if self.ranks else contextlib.nullcontext()
        with first:  # in a DDP run rank 0 tidies the folder before any rank reads it
            if self.writes:
                ensure_folder(self.run_dir, "run folder")
                # A run killed while saving leaves a temporary file; its last checkpoint is whole.
                remove_stale_temporaries(self.run_dir)
            self.resume()
        if self.epoch < self.total_epochs:
            try:
                # in a DDP run rank 0 caches the views (CachedViews) before the others read them
                with self.ranks.main_first() if self.ranks else contextlib.nullcontext():
                    self.targets.prepare(self.progress, self.cancel)
            except Cancelled:
                return self._result(cancelled=True)
        cancelled = False
        loop_start, epochs_timed = clock(), 0
        while self.epoch < self.total_epochs:
            start = clock()
            try:
                losses = self._train_epoch()
                val_dice = self.validate()
            except Cancelled:
                # The epoch is not counted: the best model and the last checkpoint stay
                # those of the last completed epoch.
                cancelled = True
                break
            self.epoch += 1
            row = {"epoch": self.epoch, **losses, "val_dice": val_dice}
            row["lr"] = self.optimizer.param_groups[0]["lr"]
            row["seconds"] = clock() - start
            self.history.append(row)
            epochs_timed += 1
            if val_dice > self.best_val_dice:
                self.best_val_dice = val_dice
                self._save_best(val_dice)
            decided = self._fit_budget(row, epochs_timed, clock() - loop_start)
            if self.ranks:  # one clock decides for every rank
                self.planned_epochs = self.ranks.from_main(self.planned_epochs)
            last = self.epoch == self.total_epochs
            if decided or last or self.epoch % c.checkpoint_every == 0:
                self._save_checkpoint()
            metrics = {"loss": losses["loss"], "val_dice": val_dice}
            report(self.progress, "epoch", self.epoch, self.total_epochs, metrics=metrics)
        return self._result(cancelled)

    def _result(self, cancelled: bool) -> TrainResult:
        # The best epoch is the first to reach the best Dice (later ties do not replace it).
        best_epoch = next(
            (row["epoch"] for row in self.history if row["val_dice"] == self.best_val_dice), 0
        )
        return TrainResult(
            run_dir=self.run_dir,
            best_model=checkpoint.best_model_path(self.run_dir),
            best_val_dice=self.best_val_dice,
            epochs_done=self.epoch,
            history=self.history,
            cancelled=cancelled,
            best_epoch=best_epoch,
            train_images=len(self.train_set),
            val_images=len(self.val_set),
        )


def train(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Train (or resume) the run described by ``config``."""
    return Trainer(config, progress, cancel).run()
