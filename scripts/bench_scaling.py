"""Throughput of the folder run: one process vs a local dask cluster of 1 and 2 workers.

Every figure comes from the same run, beside its baseline: the single-process run_folder
(torch using every core), then ``run_folder_dask`` on a LocalCluster of 1, then 2 worker
processes (the cores shared out among them). Each cluster is started and its workers load and
warm up the model before the clock starts, so the figures are steady throughput; cluster
start-up is printed apart. Every run must write every mask (checked).

    python scripts/bench_scaling.py                    # random 224-pixel model, 32 images
    python scripts/bench_scaling.py --model NAME --images 200 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage.io import imsave

BATCH = 8  # images per model call, in every run


def make_images(folder: Path, count: int, shape: tuple[int, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        imsave(folder / f"img{i:04d}.png", (rng.random(shape) * 255).astype(np.uint8))


def random_model(folder: Path, size: int) -> Path:
    import torch

    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.model_files import save_model

    torch.manual_seed(0)
    return save_model(WaveGMS(ModelConfig(image_size=size)), folder / "bench-model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or file (default: random weights)")
    parser.add_argument("--size", type=int, default=224, help="size of the random model")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--height", type=int, default=472)
    parser.add_argument("--width", type=int, default=564)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import torch

    from wavegms.inference.folder import segment_folder
    from wavegms.inference.folder_dask import (
        WorkerModel,
        dask_client,
        local_torch_threads,
        run_folder_dask,
    )
    from wavegms.inference.folder_items import folder_items
    from wavegms.inference.segmenter import Segmenter
    from wavegms.inference.worker_models import warm_up

    with tempfile.TemporaryDirectory(prefix="wavegms-scaling-") as tmp:
        root = Path(tmp)
        model = Path(args.model) if args.model else random_model(root, args.size)
        make_images(root / "in", args.images, (args.height, args.width))
        make_images(root / "warm", 4, (args.height, args.width), seed=1)
        cores = os.cpu_count()
        print(f"{args.images} images {args.height}x{args.width}, {cores} cores, model {model.name}")

        segmenter = Segmenter.load(model, "cpu", batch_size=BATCH)
        segment_folder(segmenter, root / "warm", root / "warm-local")  # traces the graph
        start = time.perf_counter()
        segment_folder(segmenter, root / "in", root / "out-local")
        local = time.perf_counter() - start
        print(f"one process: {local:.2f} s", flush=True)
        rows = [("one process (run_folder)", torch.get_num_threads(), local, 0.0)]
        masks = sorted(p.read_bytes() for p in (root / "out-local" / "masks").iterdir())

        for workers in args.workers:
            threads = local_torch_threads(workers)
            start = time.perf_counter()
            with dask_client(workers=workers) as client:
                client.wait_for_workers(workers)
                # every worker loads and traces the model the timed run will ask for
                ready = WorkerModel(str(model.resolve()), "cpu", BATCH, threads)
                warm_up(client, ready)
                started = time.perf_counter() - start
                start = time.perf_counter()
                run_folder_dask(
                    model, folder_items(root / "in"), root / f"out-{workers}", client,
                    device="cpu", batch_size=BATCH, torch_threads=threads,
                )  # fmt: skip
                seconds = time.perf_counter() - start
                print(f"{workers} worker(s): {seconds:.2f} s", flush=True)
            same = sorted(p.read_bytes() for p in (root / f"out-{workers}" / "masks").iterdir())
            assert len(same) == len(masks), "a distributed run lost masks"
            rows.append((f"dask, {workers} worker(s)", threads, seconds, started))

        base = next((r[2] for r in rows if r[0].startswith("dask, 1 ")), rows[0][2])
        print(f"{'run':<26}{'threads':>8}{'seconds':>9}{'images/s':>10}{'vs 1 worker':>12}")
        for name, threads, seconds, started in rows:
            extra = f"   (cluster start + warm-up {started:.1f} s)" if started else ""
            print(
                f"{name:<26}{threads:>8}{seconds:>9.2f}{args.images / seconds:>10.2f}"
                f"{base / seconds:>11.2f}x{extra}"
            )


if __name__ == "__main__":
    main()
