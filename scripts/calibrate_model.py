"""Store int8 activation ranges in a shipped model's JSON (``wavegms.runtime.calibration``).

    python scripts/calibrate_model.py NAME DATA_DIR [--images 32]

The ranges are measured on seeded images of DATA_DIR's train split (never test images), on
the model as shipped (its fp16 weights), and written beside them; the weights are re-saved
unchanged (fp16 -> fp32 -> fp16 is exact). With them, ``auto`` runs the model in int8 on CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from wavegms.runtime.calibration import METADATA_KEY, calibration_record, dataset_images
from wavegms.store.catalogue import SHIPPED_DIR
from wavegms.store.model_files import load_segmentation_model, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a shipped model's name")
    parser.add_argument("data_dir", type=Path, help="dataset folder with a train split")
    parser.add_argument("--images", type=int, default=32, help="calibration images")
    args = parser.parse_args()
    model = load_segmentation_model(SHIPPED_DIR / args.name, "cpu")
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


if __name__ == "__main__":
    main()
