"""Convert the original TAEF2 checkpoints (.pth) into the fp16 safetensors shipped in the package.

    python scripts/convert_taef2.py [/path/to/folder/with/taef2_*.pth]

The source folder defaults to ``$WAVEGMS_TAEF2``. Each source file must match its pinned sha256
and is unpickled with ``weights_only=True`` (tensors only, never code). Writes into
``src/wavegms/weights/taef2/``: ``taef2_encoder.safetensors``, ``taef2_decoder.safetensors``
(the tensors unchanged: fp16, original keys), ``LICENSE`` (the source's licence under a
line naming the converted files) and ``SOURCE.json`` (repository, commit, sha256 of every
source and written file). If the written sha256 changed, update the ``.safetensors``
entries of ``SHA256`` in ``wavegms/net/autoencoders/taef2.py`` (the loader refuses files it
does not pin).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from wavegms.core.files import atomic_write, write_json, write_text
from wavegms.net.autoencoders.taef2 import BUNDLED_DIR, COMMIT, HALVES, REPOSITORY, SHA256


def load_original(file: Path) -> dict[str, torch.Tensor]:
    data = file.read_bytes()  # hashed and unpickled from the same bytes
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[file.name]:
        sys.exit(f"{file}: sha256 {digest} is not the pinned {SHA256[file.name]}")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    # contiguous: safetensors stores plain buffers; the fp16 values stay exactly as they are
    return {key: tensor.contiguous() for key, tensor in state.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=os.environ.get("WAVEGMS_TAEF2"))
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR)
    args = parser.parse_args()
    if not args.source:
        sys.exit("name the folder with taef2_encoder.pth and taef2_decoder.pth (or WAVEGMS_TAEF2)")
    source = Path(args.source)
    record: dict = {"repository": REPOSITORY, "commit": COMMIT, "licence": "MIT", "files": {}}
    for half in HALVES:
        original = source / f"taef2_{half}.pth"
        target = args.out / f"taef2_{half}.safetensors"
        state = load_original(original)
        atomic_write(target, lambda tmp, state=state: save_file(state, str(tmp)))
        record["files"][target.name] = {
            "source": original.name,
            "source_sha256": SHA256[original.name],
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
            "dtype": "float16",
        }
        print(f"{target}: {record['files'][target.name]['sha256']}")
    # The original licence text, under a line that says which files it covers here.
    notice = (
        f"The files taef2_encoder.safetensors and taef2_decoder.safetensors in this folder are a\n"
        f"conversion (same fp16 tensors) of taef2_encoder.pth and taef2_decoder.pth from\n"
        f"{REPOSITORY}\nat commit {COMMIT}, distributed under this licence:\n\n"
    )
    write_text(args.out / "LICENSE", notice + (source / "LICENSE").read_text())
    write_json(args.out / "SOURCE.json", record)
    print(f"wrote {args.out / 'SOURCE.json'}")


if __name__ == "__main__":
    main()
