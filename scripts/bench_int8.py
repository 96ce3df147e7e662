"""int8 variants of the exported graph: speed and test DSC/HD95 beside fp32, in one run.

    python scripts/bench_int8.py --model busi --data ../shared/data/busi \
        --variants sample7,sample8,data7,data8,data8_x224 --calibration 32

A variant is ``<calibration><weight bits>[_x224|_xdec]``: calibration ``sample`` (the bundled
sample image and its mirror, the library default), ``aug`` (that image cropped, mirrored and
gamma-changed: 30 images) or ``data`` (``--calibration`` training images of ``--data``);
weights 7-bit (``reduce_range``) or 8-bit; ``_x224`` keeps the decoder's 224x224 stages in
fp32, ``_xdec`` the whole decoder. Times are ms per 224 graph call (ONNX Runtime, interleaved
repeats); scores come from the one folder job (``run_folder``) on the test split.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wavegms.data.pairs import dataset_pairs
from wavegms.inference.folder import run_folder
from wavegms.inference.folder_items import pair_items
from wavegms.runtime.calibration import calibration_batches, dataset_images, sample_images
from wavegms.runtime.onnx_graph import cached_onnx
from wavegms.runtime.onnx_session import OnnxSoftMask
from wavegms.runtime.quantize import quantize_onnx
from wavegms.store.catalogue import model_paths, resolve_model
from wavegms.store.model_files import load_segmentation_model


class GraphPredictor:
    """What run_folder needs (image_size, predict_soft) around one graph."""

    def __init__(self, graph, size: int) -> None:
        self.graph, self.image_size = graph, size

    def predict_soft(self, images: list[np.ndarray]) -> np.ndarray:
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
        return np.concatenate(
            [self.graph(batch[i : i + 1])[:, 0].numpy() for i in range(len(batch))]
        )


def augmented(image: np.ndarray) -> list[np.ndarray]:
    """30 variants of one image: 5 crops x mirrored or not x 3 gammas."""
    img = image.astype(np.float32)
    img = img / 255.0 if img.max() > 1 else img
    h, w = img.shape[:2]
    crops = [img, img[: 3 * h // 4, : 3 * w // 4], img[h // 4 :, w // 4 :]]
    crops += [img[: 3 * h // 4, w // 4 :], img[h // 4 :, : 3 * w // 4]]
    return [
        np.ascontiguousarray(view**gamma)
        for crop in crops
        for view in (crop, crop[:, ::-1])
        for gamma in (0.7, 1.0, 1.4)
    ]


def variant_settings(name: str, convs: list[str], data: str, n: int):
    source, _, keep = name.partition("_")
    bits = int(source[-1])
    images = {"sample": sample_images, "aug": lambda: augmented(sample_images()[0])}.get(
        source[:-1], lambda: dataset_images(data, n)
    )()
    stages = {"x224": (14, 15, 16), "xdec": tuple(range(40))}.get(keep, ())
    exclude = [c for c in convs if any(f"/decoder/decoder.{k}/" in c for k in stages)]
    return images, bits == 7, exclude


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="busi")
    parser.add_argument("--data", default="../shared/data/busi")
    parser.add_argument("--variants", default="sample7,data7,data8")
    parser.add_argument("--calibration", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnx

    model = load_segmentation_model(args.model, "cpu")
    size = model.config.image_size
    fp32 = cached_onnx(model, model_paths(resolve_model(args.model))[0])
    convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    tmp = Path(tempfile.mkdtemp(prefix="wavegms-int8-"))
    graphs = {"fp32": OnnxSoftMask(fp32)}
    for name in args.variants.split(","):
        images, reduce_range, exclude = variant_settings(name, convs, args.data, args.calibration)
        out = quantize_onnx(
            fp32, tmp / f"{name}.onnx", calibration_batches(images, size),
            reduce_range=reduce_range, exclude=exclude,
        )  # fmt: skip
        print(f"{name}: {len(images)} calibration images, {len(exclude)} convs fp32", flush=True)
        graphs[name] = OnnxSoftMask(out)
    x = torch.rand(1, 3, size, size)
    times: dict[str, list[float]] = {name: [] for name in graphs}
    for graph in graphs.values():
        graph(x)
    for _ in range(args.repeats):
        for name, graph in graphs.items():
            start = time.perf_counter()
            graph(x)
            times[name].append((time.perf_counter() - start) * 1000)
    items = pair_items(dataset_pairs(args.data, split="test"))
    base = None
    for name, graph in graphs.items():
        report = run_folder(GraphPredictor(graph, size), items, tmp / name, skip_unreadable=False)
        dsc, hd95 = report.scores["dsc_224"][0], report.scores["hd95_224"][0]
        base = dsc if base is None else base
        print(
            f"{name:<12} median {statistics.median(times[name]):7.1f} ms  min "
            f"{min(times[name]):7.1f}  DSC {dsc:6.2f}  HD95 {hd95:6.2f}  "
            f"({dsc - base:+.2f} vs fp32, {report.written} images)",
            flush=True,
        )


if __name__ == "__main__":
    main()
