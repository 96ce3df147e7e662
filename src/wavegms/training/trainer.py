"""The training loop: epochs, validation, best model, progress, Stop.

One loop for the command line, the napari fine-tune dock and the benchmark. Its step
(``step``), schedule (``schedule``), weight average (``ema``), data (``dataset``), targets
(``targets``), files (``run_state``, ``checkpoint``) and settings (``config``) live in modules
of their own. Running the same config again resumes from the last completed epoch, on the
same loss curve. Given the :class:`~wavegms.training.ranks.Ranks` of a DDP run, the same
loop runs as one rank of it (the few places that differ say ``ranks``).
"""

from __future__ import annotations

import contextlib
import time
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
from wavegms.training import checkpoint, run_state
from wavegms.training.config import TrainConfig
from wavegms.training.dataset import train_and_validation
from wavegms.training.ema import WeightAverage
from wavegms.training.precision import autocast
from wavegms.training.progressive import low_res_phase, train_size, with_low_res
from wavegms.training.result import TrainResult, result_of
from wavegms.training.schedule import EpochTimes, budget_plan, clock, lr_factor, rewarm_factor
from wavegms.training.step import TrainStep
from wavegms.training.targets import frozen_targets

if TYPE_CHECKING:
    from wavegms.training.ranks import Ranks

__all__ = ["TrainResult", "Trainer", "train"]  # TrainResult lives in training.result


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
        self.budget_clock = time.process_time if config.budget_cpu else clock
        self.started = self.budget_clock()  # loading data is part of a time budget
        self.config, self.progress, self.cancel = config, progress, cancel
        self.device = resolve_device(config.device)
        self.run_dir = config.run_dir()
        self.generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.train_set, self.val_set = train_and_validation(config, progress)
        self.base_weights: Path | None = None  # the init model's file, if fine-tuning
        self.model = self._model()
        forward = ranks.wrap(self.model) if ranks else self.model  # DDP averages grads
        self.identity = checkpoint.run_identity(
            config.to_dict(), self.train_set.names, self.val_set.names, self.base_weights
        )
        self.params = list(self.model.ewave.parameters()) + list(self.model.lmm.parameters())
        self._check_trainable()
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, weight_decay=config.weight_decay
        )
        self.average = WeightAverage(self.model, config.ema_decay) if config.ema_decay else None
        self.step = TrainStep(
            self.model, forward, self.optimizer, config, self.device, cancel, self.average
        )
        full = frozen_targets(
            config, self.train_set, self.model.autoencoder, self.device, self.generator,
            self.run_dir,
        )  # fmt: skip
        self.targets = with_low_res(config, full)
        self.epoch = 0
        self.history: list[dict] = []
        self.best_val_dice = -1.0
        self.planned_epochs: int | None = None  # fixed by a time budget, kept on resume
        self.rewarm_steps = 0  # > 0 after resuming without optimiser moments
        self.steps_this_session = 0

    # -- set-up ------------------------------------------------------------------------------
    def _model(self) -> WaveGMS:
        c = self.config
        autoencoder = load_autoencoder(c.backend, c.backend_path)
        if c.channels_last:  # a convolution's output takes its weights' layout
            autoencoder.to(memory_format=torch.channels_last)
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

    def evaluated(self) -> contextlib.AbstractContextManager:
        """The weights that are validated, selected and saved as the best model: the average
        when the run keeps one, the trained weights otherwise."""
        return self.average.applied() if self.average else contextlib.nullcontext()

    # -- one epoch ---------------------------------------------------------------------------
    def _set_lr(self, epoch_factor: float) -> None:
        factor = epoch_factor * rewarm_factor(self.steps_this_session, self.rewarm_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * factor

    def _epoch_batches(self) -> list[torch.Tensor]:
        c = self.config
        if self.ranks:  # this rank's part of the epoch (DistributedSampler)
            order = self.ranks.epoch_order(self.train_set, c.seed, self.epoch)
        else:
            order = torch.randperm(len(self.train_set), generator=self.generator)
        batches = list(order.split(c.batch_size))
        return batches[: c.max_batches_per_epoch] if c.max_batches_per_epoch else batches

    def _train_epoch(self) -> dict[str, float]:
        c = self.config
        self.model.train()
        epoch_factor = lr_factor(self.epoch, self.total_epochs, c.warmup_epochs)
        batches = self._epoch_batches()
        self.targets.at_epoch(self.epoch)  # the low-res epochs' batches are at the low size
        totals: dict[str, float] = {}
        for i, indices in enumerate(batches, start=1):
            check_cancel(self.cancel)
            self._set_lr(epoch_factor)
            losses = self.step(self.targets.batch(indices), decode=(i - 1) % c.seg_every == 0)
            self.steps_this_session += 1
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
            # fp32 on a CPU, bf16 settings or not: the exact model is what is selected
            with autocast(self.device, self.config.amp):
                pred = self.model.predict_soft(images).float() > 0.5
            inter = (pred & masks).sum((1, 2, 3)).float()
            total = (pred.sum((1, 2, 3)) + masks.sum((1, 2, 3))).float()
            dices += torch.where(total > 0, 2 * inter / total.clamp(min=1), 1.0).tolist()
        return sum(dices) / len(dices)

    # -- checkpoints (run_state) -------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        if self.writes:
            run_state.save(self)

    def resume(self) -> bool:
        """Load ``last.*`` from the run folder if present (see :func:`run_state.restore`)."""
        return run_state.restore(self)

    # -- the loop ----------------------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        """The run's length: ``epochs``, or fewer once a time budget has fixed it."""
        return self.planned_epochs or self.config.epochs

    def _fit_budget(self, row: dict, times: EpochTimes) -> bool:
        """Once the first full-size epochs of this session are timed (or sooner, when the next
        epoch would not fit), fix the number of epochs to what fits the time budget left; the
        decision is recorded in ``row``. True when it decided now."""
        budget = self.config.time_budget_s
        if budget is None or self.planned_epochs is not None:
            return False
        elapsed = self.budget_clock() - self.started
        planned = budget_plan(budget, elapsed, times, self.epoch, self.config.epochs)
        if planned is None:
            return False
        self.planned_epochs = planned
        row["planned_epochs"] = planned
        row["budget_seconds_per_epoch"] = times.per_epoch()
        return True

    def _prepare(self) -> bool:
        """Tidy the run folder, resume, cache the targets; False when Stop came first."""
        first = self.ranks.main_first() if self.ranks else contextlib.nullcontext()
        with first:  # in a DDP run rank 0 tidies the folder before any rank reads it
            if self.writes:
                ensure_folder(self.run_dir, "run folder")
                # A run killed while saving leaves a temporary file; its last checkpoint is whole.
                remove_stale_temporaries(self.run_dir)
            if self.resume() and self.writes:
                run_state.restore_best(self)
        self.targets.at_epoch(self.epoch)  # a run resumed after its low-res epochs skips them
        if self.epoch >= self.total_epochs:
            return True
        try:
            # in a DDP run rank 0 caches the views (CachedViews) before the others read them
            with self.ranks.main_first() if self.ranks else contextlib.nullcontext():
                self.targets.prepare(self.progress, self.cancel)
        except Cancelled:
            return False
        return True

    def _one_epoch(self) -> dict:
        """Train one epoch and validate it when due (the first, every ``val_every``-th and the
        last: a Stop after the first has a model to keep); its row (raises Cancelled on Stop)."""
        start, cpu_start = clock(), time.process_time()
        losses = self._train_epoch()
        row = {"epoch": self.epoch + 1, **losses}
        if self.config.low_res_size is not None:  # only then: other runs' rows stay as they were
            row["train_size"] = train_size(self.config, self.epoch)
        if row["epoch"] in (1, self.total_epochs) or row["epoch"] % self.config.val_every == 0:
            with self.evaluated():
                row["val_dice"] = self.validate()
        self.epoch += 1
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row["seconds"] = clock() - start
        row["cpu_seconds"] = time.process_time() - cpu_start  # the learning-curve axis
        return row

    def run(self) -> TrainResult:
        if not self._prepare():
            return self._result(cancelled=True)
        cancelled = False
        times = EpochTimes(self.budget_clock())
        while self.epoch < self.total_epochs:
            low_res = low_res_phase(self.config, self.epoch)
            try:
                row = self._one_epoch()
            except Cancelled:
                # The epoch is not counted: the best model and the last checkpoint stay
                # those of the last completed epoch.
                cancelled = True
                break
            self.history.append(row)
            if row.get("val_dice", -1.0) > self.best_val_dice:
                self.best_val_dice = row["val_dice"]
                with self.evaluated():
                    if self.writes:
                        run_state.save_best(self, row["val_dice"])
            times.add(self.budget_clock(), low_res)
            decided = self._fit_budget(row, times)
            if self.ranks:  # one clock decides for every rank
                self.planned_epochs = self.ranks.from_main(self.planned_epochs)
            last = self.epoch == self.total_epochs
            if decided or last or self.epoch % self.config.checkpoint_every == 0:
                self._save_checkpoint()
            metrics = {k: row[k] for k in ("loss", "val_dice") if k in row}
            report(self.progress, "epoch", self.epoch, self.total_epochs, metrics=metrics)
        return self._result(cancelled)

    def _result(self, cancelled: bool) -> TrainResult:
        return result_of(self, cancelled)


def train(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Train (or resume) the run described by ``config``."""
    return Trainer(config, progress, cancel).run()
