"""Copy a training run's best model into the package as a shipped model (fp16).

    python scripts/ship_model.py RUN_DIR NAME

The file is re-saved by the project's own model_io (never hand-edited); its metadata gains the
run's history so the model card can be checked against it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wavegms.core.files import read_json
from wavegms.store.catalogue import SHIPPED_DIR
from wavegms.store.model_files import load_model, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    model = load_model(args.run_dir / "best")
    history = read_json(args.run_dir / "history.json")
    meta = {
        **model.metadata,
        "history": history,
        "train_wall_seconds": sum(row["seconds"] for row in history),
    }
    # Paths on the training machine say nothing to users (and may name private folders).
    meta.pop("data_dir", None)
    for key in ("data_dir", "out_dir", "init_model", "backend_path"):
        if meta.get("config", {}).get(key) is not None:
            meta["config"][key] = Path(meta["config"][key]).name
    path = save_model(
        model, SHIPPED_DIR / args.name, metadata=meta, half=True, overwrite=args.overwrite
    )
    print(f"shipped {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
