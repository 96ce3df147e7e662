"""Folder throughput of each exact CPU backend in one run, side by side against one at a time.

    python scripts/bench_folder_backends.py --model busi --images 20 --backends onnx,openvino

Each row is ``wavegms.bench.workloads.time_folder`` (the one folder job, ``run_folder``) with that
Segmenter backend; compare rows within one run only (other load moves them all).
"""

from __future__ import annotations

import argparse

import torch

from wavegms.bench.workloads import format_extra, time_folder
from wavegms.store.model_files import load_segmentation_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="busi")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default="onnx,openvino")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_segmentation_model(args.model, "cpu")
    for backend in args.backends.split(","):
        timing = time_folder(model, args.images, backend=backend)
        if timing.backend != backend:
            print(f"{backend}: not run (it fell back to {timing.backend})")
            continue
        print(format_extra(timing, []), flush=True)


if __name__ == "__main__":
    main()
