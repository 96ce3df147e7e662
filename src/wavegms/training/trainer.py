"""The training engine: one loop for the command line and the napari fine-tune dock.

A run lives in one folder: ``last.safetensors`` (everything needed to resume exactly: weights,
optimiser moments, RNG states, and in its header the epoch and history, also written to
``last.json`` for reading), ``best.safetensors`` + ``best.json``
(the model with the best validation Dice, an ordinary model file) and ``history.json``. Every
file is written atomically, so stopping or killing a run at any moment leaves the previous
checkpoint intact; running the same config again resumes from the last completed epoch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from wavegms.core.devices import resolve_device
from wavegms.core.errors import Cancelled, InputError, ModelFileError
from wavegms.core.files import (
    atomic_write,
    ensure_folder,
    read_json,
    remove_stale_temporaries,
    write_json,
)
from wavegms.core.progress import CancelToken, ProgressCallback, check_cancel, report
from wavegms.data.pairs import InMemoryDataset, carve_validation, dataset_pairs
from wavegms.net.autoencoders import load_autoencoder
from wavegms.net.lmm import SUPERVISED_HEADS
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.store import model_files as model_io
from wavegms.store.paths import runs_dir
from wavegms.training.augment import AugmentConfig, augment_batch
from wavegms.training.losses import alignment_loss, latent_loss, segmentation_loss

STATE_VERSION = 1
STATE_KEY = "wavegms_train_state"  # the resume state's key in last.safetensors' header


@dataclass
class TrainConfig:
    """Everything a run depends on. Loaded from YAML (``configs/*.yaml``) or built in code."""

    data_dir: str
    name: str = "wavegms"
    out_dir: str | None = None  # default: <user data dir>/runs/<name>
    split_file: str | None = None  # default: <data_dir>/split.json if present, else all pairs
    split: str = "train"
    val_fraction: float = 0.1
    image_size: int = 224
    backend: str = "taef2"
    backend_path: str | None = None
    init_model: str | None = None  # fine-tune from this model (name or path)
    epochs: int = 100
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: int = 5
    seed: int = 2333
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA; ignored elsewhere
    augment: bool = True
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    seg_heads: tuple[str, ...] = SUPERVISED_HEADS  # heads decoded for the Dice loss
    seg_every: int = 1  # decode for the Dice loss every N-th batch (the decoder dominates CPU cost)
    # CPU schedule: >0 precomputes the frozen encoder's targets for this many views of each
    # training image once (view 0 unaugmented, the rest augmented) and samples a view per
    # image per epoch, instead of encoding every augmented batch twice.
    cached_views: int = 0
    align_weight: float = 1.0
    checkpoint_every: int = 1
    max_batches_per_epoch: int | None = None  # cap for smoke tests and short schedules

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> TrainConfig:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise InputError(f"cannot read training config {path}: {err}") from err
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"unknown training setting(s): {', '.join(unknown)}")
        raw = dict(raw)
        if isinstance(raw.get("augmentation"), dict):
            raw["augmentation"] = AugmentConfig(**raw["augmentation"])
        if "seg_heads" in raw:
            raw["seg_heads"] = tuple(raw["seg_heads"] or ())
        config = cls(**raw)
        config.validate()
        return config

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.seg_every < 1:
            raise InputError("epochs, batch_size and seg_every must be at least 1")
        if self.cached_views < 0:
            raise InputError("cached_views must be 0 (targets computed online) or more")
        if not 0 < self.val_fraction < 1:
            raise InputError("val_fraction must be between 0 and 1")
        if self.image_size % 8:
            raise InputError("image_size must be a multiple of 8")
        bad = set(self.seg_heads) - set(SUPERVISED_HEADS)
        if bad:
            raise InputError(f"seg_heads must be among {SUPERVISED_HEADS}, not {sorted(bad)}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["seg_heads"] = list(self.seg_heads)
        return d

    def run_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else runs_dir() / self.name


@dataclass
class TrainResult:
    run_dir: Path
    best_model: Path | None
    best_val_dice: float
    epochs_done: int
    history: list[dict]
    cancelled: bool = False


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
    ) -> None:
        config.validate()
        self.config = config
        self.progress = progress
        self.cancel = cancel
        self.device = resolve_device(config.device)
        self.run_dir = config.run_dir()
        self.generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        self.train_set, self.val_set = self._datasets()
        self.model = self._model()
        self.params = list(self.model.ewave.parameters()) + list(self.model.lmm.parameters())
        self._check_trainable()
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, weight_decay=config.weight_decay
        )
        self.epoch = 0
        self.history: list[dict] = []
        self.best_val_dice = -1.0
        self.views: dict[str, torch.Tensor] | None = None

    # -- set-up ------------------------------------------------------------------------------
    def _datasets(self) -> tuple[InMemoryDataset, InMemoryDataset]:
        c = self.config
        pairs = dataset_pairs(c.data_dir, c.split_file, c.split)
        if len(pairs) < 2:
            raise InputError(f"need at least 2 image/mask pairs to train, found {len(pairs)}")
        train_names, val_names = carve_validation([p.name for p in pairs], c.val_fraction, c.seed)
        by_name = {p.name: p for p in pairs}
        load = [
            InMemoryDataset([by_name[n] for n in names], c.image_size, progress=self.progress)
            for names in (train_names, val_names)
        ]
        return load[0], load[1]

    def _model(self) -> WaveGMS:
        c = self.config
        autoencoder = load_autoencoder(c.backend, c.backend_path)
        if c.init_model:
            from wavegms.store.catalogue import resolve_model

            model = model_io.load_model(resolve_model(c.init_model))
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

    # -- frozen targets ----------------------------------------------------------------------
    @torch.no_grad()
    def _encode_targets(self, images: torch.Tensor, masks: torch.Tensor):
        ae = self.model.autoencoder
        with self._autocast():
            z_image = ae.encode(images * 2 - 1).float()
            z_mask = ae.encode(masks.expand(-1, 3, -1, -1) * 2 - 1).float()
        return z_image, z_mask

    def _cached_views(self) -> dict[str, torch.Tensor]:
        """Views and their targets, computed once per run folder (deterministic from the seed,
        with a generator of its own so the training RNG stream is the same either way)."""
        path = self.run_dir / f"views{self.config.cached_views}.safetensors"
        if path.exists():
            return load_file(path)
        c, n = self.config, len(self.train_set)
        gen = torch.Generator().manual_seed(c.seed + 1)
        chunks: dict[str, list[torch.Tensor]] = {
            "image": [],
            "mask": [],
            "z_image": [],
            "z_mask": [],
        }
        total = c.cached_views * n
        for view in range(c.cached_views):
            for indices in torch.arange(n).split(c.batch_size):
                check_cancel(self.cancel)
                images = self.train_set.images[indices].float().div_(255)
                masks = self.train_set.masks[indices].float()
                if view > 0 and c.augment:
                    images, masks = augment_batch(images, masks, c.augmentation, generator=gen)
                z_image, z_mask = self._encode_targets(
                    images.to(self.device), masks.to(self.device)
                )
                chunks["image"].append(images.mul(255).round().to(torch.uint8))
                chunks["mask"].append(masks.to(torch.uint8))
                chunks["z_image"].append(z_image.half().cpu())
                chunks["z_mask"].append(z_mask.half().cpu())
                done = view * n + int(indices[-1]) + 1
                report(self.progress, "targets", done, total, "encoding frozen targets")
        views = {k: torch.cat(v) for k, v in chunks.items()}
        atomic_write(path, lambda t: save_file(views, t), ".safetensors")
        return views

    # -- one epoch ---------------------------------------------------------------------------
    def _batch(self, indices: torch.Tensor):
        """(images, masks, z_image, z_mask) on the device; targets None when computed online."""
        if self.views is not None:
            view = torch.randint(
                self.config.cached_views, (len(indices),), generator=self.generator
            )
            rows = view * len(self.train_set) + indices
            v = self.views
            images = v["image"][rows].float().div_(255)
            masks = v["mask"][rows].float()
            targets = v["z_image"][rows].float(), v["z_mask"][rows].float()
            return tuple(t.to(self.device) for t in (images, masks, *targets))
        images = self.train_set.images[indices].float().div_(255)
        masks = self.train_set.masks[indices].float()
        if self.config.augment:
            images, masks = augment_batch(
                images, masks, self.config.augmentation, generator=self.generator
            )
        return images.to(self.device), masks.to(self.device), None, None

    def _autocast(self):
        enabled = self.config.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _step(self, images, masks, z_image, z_mask, decode: bool) -> dict[str, float]:
        if z_image is None:
            z_image, z_mask = self._encode_targets(images, masks)
        with self._autocast():
            out = self.model(images, sample=True)
            l_lm = latent_loss(out, z_mask)
            l_align = alignment_loss(out["z"], z_image)
            l_seg = (
                segmentation_loss(out, masks, self.model.decode_mask, self.config.seg_heads)
                if self.config.seg_heads and decode
                else torch.zeros((), device=self.device)
            )
            loss = l_seg + l_lm + self.config.align_weight * l_align
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
            group["lr"] = c.lr * lr_factor(self.epoch, c.epochs, c.warmup_epochs)
        order = torch.randperm(len(self.train_set), generator=self.generator)
        batches = list(order.split(c.batch_size))
        if c.max_batches_per_epoch:
            batches = batches[: c.max_batches_per_epoch]
        totals: dict[str, float] = {}
        for i, indices in enumerate(batches, start=1):
            check_cancel(self.cancel)
            decode = (i - 1) % c.seg_every == 0
            losses = self._step(*self._batch(indices), decode=decode)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v * len(indices)
            report(self.progress, "batch", i, len(batches), metrics={"loss": losses["loss"]})
        seen = sum(len(b) for b in batches)
        return {k: v / seen for k, v in totals.items()}

    @torch.no_grad()
    def validate(self) -> float:
        """Mean Dice (threshold 0.5, model size) over the validation images."""
        self.model.eval()
        dices = []
        for indices in torch.arange(len(self.val_set)).split(self.config.batch_size):
            images = self.val_set.images[indices].float().div_(255).to(self.device)
            masks = self.val_set.masks[indices].to(self.device).bool()
            with self._autocast():
                pred = self.model.predict_soft(images).float() > 0.5
            inter = (pred & masks).sum((1, 2, 3)).float()
            total = (pred.sum((1, 2, 3)) + masks.sum((1, 2, 3))).float()
            dices += torch.where(total > 0, 2 * inter / total.clamp(min=1), 1.0).tolist()
        return sum(dices) / len(dices)

    # -- checkpoints -------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.trainable_state_dict().items()}
        opt = self.optimizer.state_dict()
        for idx, state in opt["state"].items():
            for key, value in state.items():
                tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().cpu()
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        tensors = {k: v.contiguous().cpu() for k, v in tensors.items()}
        meta = {
            "state_version": STATE_VERSION,
            "epoch": self.epoch,
            "best_val_dice": self.best_val_dice,
            "history": self.history,
            "config": self.config.to_dict(),
            "param_groups": opt["param_groups"],
        }
        # The resume state also travels inside the weights file, so that one atomic write
        # holds the whole checkpoint: a run killed between the two files still resumes
        # consistently. last.json is for people (and for versions that only read it).
        header = {STATE_KEY: json.dumps(meta)}
        atomic_write(
            self.run_dir / "last.safetensors", lambda t: save_file(tensors, t, metadata=header)
        )
        write_json(self.run_dir / "last.json", meta)

    def _read_checkpoint(self) -> tuple[dict, dict[str, torch.Tensor]] | None:
        """(resume state, tensors) of ``last.*``, or None if the run has no checkpoint yet."""
        meta_path, weights = self.run_dir / "last.json", self.run_dir / "last.safetensors"
        if not weights.exists():
            return None
        try:
            with safe_open(weights, "pt") as f:
                header = f.metadata() or {}
            tensors = load_file(weights)
        except (SafetensorError, OSError) as err:
            raise ModelFileError(
                f"the checkpoint {weights} is damaged ({err}); delete last.safetensors and "
                "last.json in that folder to start the run again"
            ) from err
        if STATE_KEY in header:
            return json.loads(header[STATE_KEY]), tensors
        if meta_path.exists():  # a checkpoint written before the state moved into it
            return read_json(meta_path), tensors
        return None

    def resume(self) -> bool:
        """Load ``last.*`` from the run folder if present; True if a run was resumed."""
        checkpoint = self._read_checkpoint()
        if checkpoint is None:
            return False
        meta, tensors = checkpoint
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state, strict=False)
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, key = k.split(".", 2)
                state.setdefault(int(idx), {})[key] = v
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        self.generator.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        self.epoch = meta["epoch"]
        self.best_val_dice = meta["best_val_dice"]
        self.history = meta["history"]
        return True

    def _save_best(self, val_dice: float) -> None:
        meta = {
            "name": self.config.name,
            "epoch": self.epoch,
            "val_dice": val_dice,
            "train_images": len(self.train_set),
            "val_images": len(self.val_set),
            "data_dir": str(self.config.data_dir),
            "config": self.config.to_dict(),
        }
        model_io.save_model(self.model, self.run_dir / "best", metadata=meta, overwrite=True)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        c = self.config
        ensure_folder(self.run_dir, "run folder")
        # A run killed while saving leaves a temporary file; its previous checkpoint is whole.
        remove_stale_temporaries(self.run_dir)
        self.resume()
        if c.cached_views and self.epoch < c.epochs:
            try:
                self.views = self._cached_views()
            except Cancelled:
                return self._result(cancelled=True)
        cancelled = False
        while self.epoch < c.epochs:
            start = time.perf_counter()
            try:
                losses = self._train_epoch()
            except Cancelled:
                cancelled = True  # the last completed epoch's checkpoint stays as it was
                break
            val_dice = self.validate()
            self.epoch += 1
            row = {"epoch": self.epoch, **losses, "val_dice": val_dice}
            row["lr"] = self.optimizer.param_groups[0]["lr"]
            row["seconds"] = time.perf_counter() - start
            self.history.append(row)
            if val_dice > self.best_val_dice:
                self.best_val_dice = val_dice
                self._save_best(val_dice)
            if self.epoch % c.checkpoint_every == 0 or self.epoch == c.epochs:
                self._save_checkpoint()
                write_json(self.run_dir / "history.json", self.history)
            metrics = {"loss": losses["loss"], "val_dice": val_dice}
            report(self.progress, "epoch", self.epoch, c.epochs, metrics=metrics)
        return self._result(cancelled)

    def _result(self, cancelled: bool) -> TrainResult:
        best = model_io.model_paths(self.run_dir / "best")[0]
        return TrainResult(
            self.run_dir,
            best if best.exists() else None,
            self.best_val_dice,
            self.epoch,
            self.history,
            cancelled,
        )


def train(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Train (or resume) the run described by ``config``."""
    return Trainer(config, progress, cancel).run()
