"""A run's checkpoint that travels in the repository, so that training outlives the machine.

Training takes many hours and the machine running it may be replaced with only the repository
kept. ``last.*`` of a run folder (weights, optimiser moments, RNG) is too large to commit after
every epoch, so a *carried* checkpoint keeps what learning needs, in one safetensors file of a
few MB: the trained weights and the weight average in fp16, the best model so far (fp16, only
when it is not the last epoch's), the RNG states, and in its header the resume state
(epoch, history, best Dice, the run's identity). The optimiser's moments are left out: a run
seeded from it starts AdamW afresh and re-warms its learning rate over the first steps
(``schedule.REWARM_STEPS``). Its identity is checked on resume like any checkpoint's: a
carried file never continues a run with other data or settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from wavegms.core.errors import ModelFileError
from wavegms.core.files import atomic_write, read_json, write_json
from wavegms.store.catalogue import model_paths
from wavegms.training import checkpoint

BEST = "best."  # tensor prefix of the best model's weights


def carried_state(path: Path) -> dict | None:
    """The resume state in a carried file's header, or None when there is no such file."""
    if not path.is_file():
        return None
    try:
        with safe_open(path, "pt") as f:
            header = f.metadata() or {}
        return json.loads(header[checkpoint.STATE_KEY])
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise ModelFileError(f"the carried checkpoint {path} is damaged ({err})") from err


def write_carried(run_dir: Path, dest: Path) -> Path | None:
    """Write ``dest`` from the run folder's ``last.*`` and ``best.*``; None (nothing written)
    when the run has no checkpoint yet."""
    state = checkpoint.read_state(run_dir)
    if state is None:
        return None
    tensors = load_file(run_dir / "last.safetensors")
    kept = {
        k: v.half() if v.is_floating_point() else v
        for k, v in tensors.items()
        if k.startswith(("model.", "ema.", "rng."))
    }
    state = {**state, "moments": False}
    best_weights, best_config = model_paths(run_dir / "best")
    best_epoch = next(
        (r["epoch"] for r in state["history"] if r["val_dice"] == state["best_val_dice"]), 0
    )
    if best_weights.is_file() and best_epoch != state["epoch"]:
        kept.update({BEST + k: v.half() for k, v in load_file(best_weights).items()})
        state["best_config"] = read_json(best_config)
    header = {checkpoint.STATE_KEY: json.dumps(state)}
    kept = {k: v.contiguous() for k, v in kept.items()}
    atomic_write(dest, lambda t: save_file(kept, t, metadata=header), ".safetensors")
    return dest


def seed_run(carried: Path, run_dir: Path) -> bool:
    """Make the run folder's ``last.*`` (and ``best.*``) from a carried checkpoint when the
    folder has no checkpoint or an older one; True when it did. The identity is checked when
    the trainer resumes, as for any checkpoint."""
    state = carried_state(carried)
    if state is None:
        return False
    local = checkpoint.read_state(run_dir)
    if local is not None and local["epoch"] >= state["epoch"]:
        return False
    tensors = load_file(carried)
    run_dir.mkdir(parents=True, exist_ok=True)
    best = {k[len(BEST) :]: v for k, v in tensors.items() if k.startswith(BEST)}
    if best:
        weights, config = model_paths(run_dir / "best")
        atomic_write(weights, lambda t: save_file(best, t), ".safetensors")
        best_config = {**state.pop("best_config"), "dtype": "float16"}
        write_json(config, best_config)
    last = {
        k: v.float() if v.is_floating_point() and not k.startswith("rng.") else v
        for k, v in tensors.items()
        if not k.startswith(BEST)
    }
    header = {checkpoint.STATE_KEY: json.dumps(state)}
    atomic_write(
        run_dir / "last.safetensors", lambda t: save_file(last, t, metadata=header), ".safetensors"
    )
    write_json(run_dir / "last.json", state)
    checkpoint.write_history(run_dir, state["history"])
    return True


def carried_summary(path: Path) -> str:
    """One line on a carried checkpoint: epoch, best validation Dice, size."""
    state = carried_state(path)
    if state is None:
        return f"{path}: none"
    size = path.stat().st_size / 2**20
    return (
        f"{path}: epoch {state['epoch']}, best validation Dice "
        f"{100 * state['best_val_dice']:.2f}, {size:.1f} MB"
    )
