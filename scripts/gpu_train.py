"""The GPU training run: a CUDA smoke step, then BUSI and Kvasir-SEG trained at once.

Started by ``scripts/gpu_train.sh`` (which installs the carried wheels, puts ``src`` on the
path and prints ``nvidia-smi``). Settings come from the environment:

- ``OUT``: the folder whose files come back (required); run folders never live in it.
- ``DEVICE``: ``cuda`` (default), or ``cpu`` for a rehearsal on a machine without a GPU.
- ``BUDGET``: training time of each run, e.g. ``7m`` (default), ``60s``.
- ``PACK``: the folder made by ``scripts/gpu_pack.py`` (default ``gpu_pack``).
- ``RUNS``: parent of the run folders (default ``/tmp/wavegms_gpu_runs``).
- ``END_BY``: seconds after the start by which everything has ended (default 510, so that the
  whole command ends inside one 10-minute call with 1.5 minutes to spare).
- ``COPY_EVERY``: seconds between copies of each run's best model into ``OUT`` (default 30).
- ``SMOKE_LIMIT``: seconds the smoke step may take before the command gives up (default 240).
- ``CONFIG_OVERRIDES``: a YAML mapping applied to both configs, e.g. ``{image_size: 64}`` for
  a CPU rehearsal that must finish epochs within a minute.

Eight files at most come back, two folders deep at most, and this run leaves all eight:
``OUT/<run>/best.safetensors``, ``best.json`` and ``history.json`` for each run (copied every
``COPY_EVERY`` seconds, so a run cut short still returns its best model),
``OUT/gpu_facts.json`` (speed, memory, epochs, wall time) and ``OUT/train_log.txt``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from wavegms.core.errors import InputError
from wavegms.core.files import atomic_write, write_json, write_text
from wavegms.training.config import parse_duration

#: the files of a run folder that come back
RESULT_FILES = ("best.safetensors", "best.json", "history.json")

#: seconds a run may go on after its budget before the kit stops it (the trainer plans its
#: epochs to end inside the budget; this covers an epoch slower than planned)
GRACE_S = 45.0

#: seconds kept at the end for the last copies and the facts
FINAL_S = 20.0

#: the exit code when the smoke step fails: nothing is trained then
SMOKE_FAILED = 3

#: images of the smoke step's random dataset: 13 training images (one batch of 12) + 1 validation
SMOKE_IMAGES = 14


@dataclass
class Run:
    """One training process: its name in ``OUT``, its config and its pack folder."""

    name: str
    config: str
    dataset: str
    process: subprocess.Popen | None = None
    started: float = 0.0
    ended: float | None = None
    stopped_by_kit: bool = False
    peak_gpu_mib: float = 0.0
    log: Path = field(default=Path())


def plan() -> list[Run]:
    return [
        Run("busi", "configs/gpu_busi.yaml", "busi"),
        Run("kvasir-seg", "configs/gpu_kvasir_seg.yaml", "kvasir_seg"),
    ]


def config_file(run: Run, runs_root: Path, overrides: dict) -> Path:
    """The run's config file, or a copy next to the run folders with ``overrides`` applied."""
    if not overrides:
        return Path(run.config)
    raw = yaml.safe_load(Path(run.config).read_text(encoding="utf-8"))
    path = runs_root / f"{run.name}.yaml"
    write_text(path, yaml.safe_dump({**raw, **overrides}, sort_keys=False))
    return path


def parse_overrides(text: str) -> dict:
    try:
        overrides = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise SystemExit(f"error: CONFIG_OVERRIDES is not YAML: {err}") from err
    if not isinstance(overrides, dict):
        raise SystemExit(f"error: CONFIG_OVERRIDES must be a mapping, got {text!r}")
    return overrides


def log(message: str) -> None:
    print(f"[gpu_train {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------- smoke step


def make_random_pairs(folder: Path, count: int, size: int = 224) -> None:
    """Noise images with random rectangles as masks, as an ordinary dataset folder."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    names = [f"random_{i}" for i in range(count)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            folder / "images" / f"{name}.png"
        )
        mask = np.zeros((size, size), np.uint8)
        top, left = rng.integers(0, size // 2, 2)
        mask[top : top + size // 3, left : left + size // 3] = 255
        Image.fromarray(mask).save(folder / "masks" / f"{name}.png")
    write_json(folder / "split.json", {"train": names})


def smoke(config_path: Path, device: str, folder: Path) -> dict:
    """One training step of the GPU config's full objective at batch 12 on random data (bf16
    autocast on CUDA, as the config asks), then the validation forward in eval mode."""
    import torch

    from wavegms.training.config import TrainConfig
    from wavegms.training.trainer import train

    shutil.rmtree(folder, ignore_errors=True)
    make_random_pairs(folder / "data", SMOKE_IMAGES)
    config = TrainConfig.from_yaml(
        config_path,
        data_dir=str(folder / "data"),
        out_dir=str(folder / "run"),
        device=device,
        epochs=1,
        warmup_epochs=1,
        max_batches_per_epoch=1,
    )
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start
    row = result.history[-1]
    if not all(math.isfinite(row[k]) for k in ("loss", "seg", "latent", "align")):
        raise RuntimeError(f"the smoke step's losses are not finite: {row}")
    facts = {
        "seconds": round(seconds, 2),
        "batch_size": config.batch_size,
        "seg_heads": list(config.seg_heads),
        "losses": {k: row[k] for k in ("loss", "seg", "latent", "align")},
        "torch": torch.__version__,
    }
    if cuda:
        facts["gpu"] = torch.cuda.get_device_name()
        facts["peak_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        torch.cuda.empty_cache()
    return facts


def smoke_child(config_path: str, device: str, folder: str) -> int:
    """The smoke step as a child process (``gpu_train.py smoke CONFIG DEVICE FOLDER``), so
    that a CUDA call that hangs can be given up on, and the runs start on a clean GPU."""
    facts = smoke(Path(config_path), device, Path(folder))
    write_json(Path(folder) / "smoke.json", facts)
    return 0


def run_smoke(config: Path, device: str, folder: Path, limit_s: float) -> dict:
    """The smoke step's facts; raises RuntimeError with the reason if it fails or hangs."""
    command = [sys.executable, __file__, "smoke", str(config), device, str(folder)]
    errors = folder.with_name(f"{folder.name}.log")
    try:
        with errors.open("w") as stderr:
            done = subprocess.run(command, timeout=limit_s, stderr=stderr)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the smoke step did not end within {limit_s:.0f} s") from None
    if done.returncode != 0:
        raise RuntimeError(
            f"the smoke step failed (exit code {done.returncode}):\n{log_tail(errors, 30)}"
        )
    return json.loads((folder / "smoke.json").read_text())


# ------------------------------------------------------------------------------------ runs


def launch(run: Run, config: Path, pack: Path, runs_root: Path, device: str, budget: str) -> None:
    run_dir = runs_root / run.name
    run.log = runs_root / f"{run.name}.log"
    command = [
        *(sys.executable, "-m", "wavegms", "train", "--config", str(config)),
        *("--data", str(pack / run.dataset), "--out", str(run_dir), "--device", device),
        *("--time-budget", budget),
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The runs share the CPU cores (data, augmentation, Python overhead) evenly.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
    log(f"{run.name}: {' '.join(command)}")
    with run.log.open("w") as out:
        run.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    run.started = time.time()


def stamps(folder: Path) -> list[float | None]:
    return [(folder / n).stat().st_mtime if (folder / n).exists() else None for n in RESULT_FILES]


def copy_back(run_dir: Path, target: Path) -> None:
    """Copy a run's best model and history into ``target``, each file atomically; copy again
    if the trainer wrote a new best model meanwhile, so weights and JSON belong together."""
    for _ in range(3):
        before = stamps(run_dir)
        for name in RESULT_FILES:
            source = run_dir / name
            if source.is_file():
                atomic_write(target / name, lambda tmp, s=source: shutil.copyfile(s, tmp))
        if stamps(run_dir) == before:
            return


def gpu_memory_mib() -> float | None:
    """Memory in use on the GPU (all processes), or None without nvidia-smi."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return float(done.stdout.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def stop(runs: list[Run]) -> None:
    """SIGTERM, then SIGKILL after 15 s; every file the trainer writes is atomic, so the last
    best model and checkpoint stay whole."""
    for run in runs:
        if run.process and run.process.poll() is None:
            log(f"{run.name}: stopping at the kit's deadline")
            run.stopped_by_kit = True
            run.process.send_signal(signal.SIGTERM)
    for run in runs:
        if run.process:
            try:
                run.process.wait(15)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait()


# ------------------------------------------------------------------------------------ facts


def run_facts(run: Run, run_dir: Path) -> dict:
    """Epochs, epoch seconds and images/s from the trainer's history; the best model's Dice."""
    end = run.ended or time.time()
    facts: dict = {
        "exit_code": run.process.returncode if run.process else None,
        "stopped_by_kit": run.stopped_by_kit,
        "wall_s": round(end - run.started, 1) if run.started else None,
        "peak_gpu_memory_used_mib_all_processes": run.peak_gpu_mib or None,
    }
    best_path, history_path = run_dir / "best.json", run_dir / "history.json"
    # the trainer's facts about the best model sit in the model file's "metadata"
    best = json.loads(best_path.read_text())["metadata"] if best_path.is_file() else {}
    history = json.loads(history_path.read_text()) if history_path.is_file() else []
    seconds = [row["seconds"] for row in history if "seconds" in row]
    images = best.get("train_images")
    facts.update(
        epochs=len(history),
        best_val_dice=best.get("val_dice"),
        best_epoch=best.get("epoch"),
        train_images=images,
        val_images=best.get("val_images"),
        epoch_s_mean=round(sum(seconds) / len(seconds), 3) if seconds else None,
        # training images per second of epoch time (the epoch's validation included)
        images_per_s=round(images * len(seconds) / sum(seconds), 1) if seconds and images else None,
    )
    return facts


def write_facts(out: Path, facts: dict, runs: list[Run], runs_root: Path) -> None:
    facts["runs"] = {run.name: run_facts(run, runs_root / run.name) for run in runs if run.started}
    speeds = [r["images_per_s"] for r in facts["runs"].values() if r["images_per_s"]]
    facts["images_per_s_all_runs"] = round(sum(speeds), 1) if speeds else None
    facts["wall_s"] = round(time.time() - facts["started"], 1)
    write_json(out / "gpu_facts.json", facts)


def log_tail(path: Path, lines: int = 60) -> str:
    """The last lines of a log, progress-bar redraws (carriage returns) split into lines."""
    if not path.is_file():
        return ""
    text = path.read_text(errors="replace").replace("\r", "\n")
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def write_log(out: Path, runs: list[Run], smoke_text: str) -> None:
    parts = [f"== smoke step\n{smoke_text}"]
    parts += [f"== {run.name} ({run.log})\n{log_tail(run.log)}" for run in runs if run.started]
    write_text(out / "train_log.txt", "\n\n".join(parts) + "\n")


# ------------------------------------------------------------------------------------ main


def main() -> int:
    started = time.time()
    if not os.environ.get("OUT"):
        raise SystemExit("error: set OUT to the folder whose files come back")
    out = Path(os.environ["OUT"])
    device = os.environ.get("DEVICE", "cuda")
    budget_text = os.environ.get("BUDGET", "7m")
    try:
        budget_s = parse_duration(budget_text)
    except InputError as err:
        raise SystemExit(f"error: BUDGET: {err}") from None
    pack = Path(os.environ.get("PACK", "gpu_pack"))
    runs_root = Path(os.environ.get("RUNS", "/tmp/wavegms_gpu_runs"))
    end_by = started + float(os.environ.get("END_BY", "510")) - FINAL_S
    copy_every = float(os.environ.get("COPY_EVERY", "30"))
    if not (pack / "pack.json").is_file():
        raise SystemExit(f"error: {pack} is not a pack: run scripts/gpu_pack.py first")
    if runs_root.resolve().is_relative_to(out.resolve()):
        raise SystemExit("error: RUNS must not lie inside OUT (only 8 files come back)")
    os.environ.setdefault("WAVEGMS_HOME", str((runs_root / "home").resolve()))
    overrides = parse_overrides(os.environ.get("CONFIG_OVERRIDES", ""))
    runs_root.mkdir(parents=True, exist_ok=True)
    runs = plan()
    configs = {run.name: config_file(run, runs_root, overrides) for run in runs}
    facts: dict = {"started": started, "device": device, "budget_s": budget_s}
    facts["config_overrides"] = overrides

    log(f"smoke step on {device} (batch 12, full objective)")
    smoke_limit = float(os.environ.get("SMOKE_LIMIT", "240"))
    try:
        facts["smoke"] = run_smoke(configs[runs[0].name], device, runs_root / "smoke", smoke_limit)
    except RuntimeError as err:  # the lease must not be spent training on a broken device
        log(str(err))
        facts["smoke_error"] = str(err)
        write_json(out / "gpu_facts.json", facts)
        write_log(out, [], str(err))
        return SMOKE_FAILED
    smoke_text = json.dumps(facts["smoke"])
    log(f"smoke step passed: {smoke_text}")

    for run in runs:
        launch(run, configs[run.name], pack, runs_root, device, budget_text)
    stop_at = min(max(r.started for r in runs) + budget_s + GRACE_S, end_by)
    next_copy = time.time() + copy_every
    while any(r.process and r.process.poll() is None for r in runs):
        time.sleep(1)
        now = time.time()
        used = gpu_memory_mib() if device.startswith("cuda") else None
        for run in runs:
            if run.process and run.process.poll() is None:
                run.peak_gpu_mib = max(run.peak_gpu_mib, used or 0.0)
            elif run.ended is None:
                run.ended = now
                log(f"{run.name}: ended with exit code {run.process.returncode}")
        if now >= next_copy:
            for run in runs:
                copy_back(runs_root / run.name, out / run.name)
            write_facts(out, facts, runs, runs_root)
            next_copy = now + copy_every
        if now >= stop_at:
            stop(runs)
    for run in runs:
        run.ended = run.ended or time.time()
        copy_back(runs_root / run.name, out / run.name)
    write_facts(out, facts, runs, runs_root)
    write_log(out, runs, smoke_text)
    log(f"facts: {json.dumps(facts['runs'])}")
    crashed = [r.name for r in runs if r.process.returncode != 0 and not r.stopped_by_kit]
    no_model = [r.name for r in runs if not (out / r.name / "best.safetensors").is_file()]
    for what, names in (("failed", crashed), ("left no best model", no_model)):
        if names:
            log(f"{what}: {', '.join(names)} (see train_log.txt)")
    return 1 if crashed or no_model else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["smoke"]:
        sys.exit(smoke_child(*sys.argv[2:5]))
    sys.exit(main())
