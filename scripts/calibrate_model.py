"""Store int8 activation ranges in a shipped model's JSON (``wavegms.runtime.calibration``).

    python scripts/calibrate_model.py NAME DATA_DIR [--images 32]
    python scripts/calibrate_model.py NAME --check-only   # add the int8 check to stored ranges

The ranges are measured on seeded images of DATA_DIR's train split (never test images), on
the model as shipped (its fp16 weights), and written beside them; the weights are re-saved
unchanged (fp16 -> fp32 -> fp16 is exact). With them, ``--precision int8`` runs the model in
int8 on CPU. ``--check-only`` measures the int8 graph of the stored ranges against fp32 on the
sample images and records that (``check``) in the JSON alone, the weights file untouched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from wavegms.runtime.calibration import METADATA_KEY, dataset_images
from wavegms.runtime.quantize import calibration_record
from wavegms.store.catalogue import SHIPPED_DIR
from wavegms.store.model_files import load_segmentation_model, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a shipped model's name")
    parser.add_argument("data_dir", type=Path, nargs="?", help="dataset with a train split")
    parser.add_argument("--images", type=int, default=32, help="calibration images")
    parser.add_argument("--check-only", action="store_true", help="record the int8 check only")
    args = parser.parse_args()
    model = load_segmentation_model(SHIPPED_DIR / args.name, "cpu")
    if args.check_only:
        add_check(args.name, model)
        return
    if args.data_dir is None:
        parser.error("DATA_DIR is needed unless --check-only")
    before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    images = dataset_images(args.data_dir, n=args.images)
    source = f"{len(images)} seeded images of the train split of {args.data_dir.name}"
    with torch.no_grad():
        record = calibration_record(model, images, source)
    metadata = {**model.metadata, METADATA_KEY: record}
    path = save_model(model, SHIPPED_DIR / args.name, metadata=metadata, half=True, overwrite=True)
    after = load_segmentation_model(path, "cpu").trainable_state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights changed"
    print(f"{path}: int8 ranges of {len(record['ranges'])} tensors from {source}")


def add_check(name: str, model) -> None:
    """Record the int8 check of the stored ranges in the model's JSON (weights untouched)."""
    from wavegms.core.files import read_json, write_json
    from wavegms.runtime.calibration import stored_ranges
    from wavegms.runtime.onnx_graph import cached_onnx
    from wavegms.runtime.quantize import ranges_check

    ranges = stored_ranges(model.metadata)
    if ranges is None:
        raise SystemExit(f"{name} carries no usable int8 ranges")
    check = ranges_check(model, cached_onnx(model), ranges)
    path = SHIPPED_DIR / f"{name}.json"
    config = read_json(path)
    config["metadata"][METADATA_KEY]["check"] = check
    write_json(path, config)
    print(f"{path}: int8 check {check:.6f} (mean |int8 - fp32| on the sample images)")


if __name__ == "__main__":
    main()
