#!/usr/bin/env bash
# Issue 14's figures, from a fresh clone of this repository's committed HEAD:
#  1. offline first run: the README's main command with WAVEGMS_TAEF2 unset and no network
#     (`unshare -n`, needs root) segments the sample with the TAEF2 bundled in the package;
#     the wheel's size with the bundled TAEF2 weights and without them;
#  2. the bioimage.io package of `busi` passes bioimageio.core's test (both weight formats) and
#     its ONNX output equals the project's own soft mask on a BUSI test image.
# Usage: bash scripts/check_fit_the_field.sh [PYTHON]   (default: .venv/bin/python)
# The wheels are built with `python -m build` (its isolated build fetches hatchling once).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-$repo/.venv/bin/python}
data=${WAVEGMS_DATA:-$repo/../shared/data}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
echo "fresh clone of $(git -C "$work/clone" log --oneline -1)"

echo "== 1. offline first run (WAVEGMS_TAEF2 unset, unshare -n) =="
(
  cd "$work/clone"
  env -u WAVEGMS_TAEF2 WAVEGMS_HOME="$work/home" PYTHONPATH="$work/clone/src" \
    unshare -n "$py" -m wavegms.cli segment sample_data/images "$work/out" --model busi
)
echo "masks written: $(ls "$work/out/masks")"; cat "$work/out/results.csv"

echo "== 1. wheel size with and without the bundled TAEF2 weights =="
cp -r "$work/clone" "$work/without"
rm "$work/without"/src/wavegms/weights/taef2/*.safetensors "$work/without"/src/wavegms/weights/taef2/SOURCE.json
for variant in clone without; do
  "$py" -m build --wheel --outdir "$work/wheels-$variant" "$work/$variant" >"$work/build-$variant.log" 2>&1 \
    || { cat "$work/build-$variant.log"; exit 1; }
done
with=$(stat -c %s "$work"/wheels-clone/*.whl)
without=$(stat -c %s "$work"/wheels-without/*.whl)
echo "wheel with TAEF2: $with bytes; without: $without bytes; TAEF2 adds $((with - without)) bytes"

echo "== 2. bioimage.io package of busi =="
WAVEGMS_HOME="$work/home" PYTHONPATH="$work/clone/src" OUT="$work/busi.bioimageio.zip" DATA="$data" \
  "$py" - <<'EOF'
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime
from bioimageio.core import test_model

from wavegms.data.images import read_image
from wavegms.data.preprocess import model_input
from wavegms.export.bioimageio import export_bioimageio
from wavegms.inference.segmenter import Segmenter

busi = Path(os.environ["DATA"]) / "busi"
name = json.loads((busi / "split.json").read_text())["test"][0]
image_path = next((busi / "images").glob(f"{name}.*"))
start = time.perf_counter()
package = export_bioimageio("busi", os.environ["OUT"], image=image_path)
print(f"exported {package} ({package.stat().st_size} bytes) in {time.perf_counter() - start:.1f} s")
summary = test_model(package, devices=["cpu"])
for detail in summary.details:
    print(f"  {detail.status:>7}  {detail.name}")
print(f"bioimageio.core test_model: {summary.status}")

image = read_image(image_path)
ours = Segmenter.load("busi", device="cpu").predict_soft([image])[0]
with zipfile.ZipFile(package) as z:
    onnx_bytes = z.read("weights.onnx")
session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
x = model_input(image, 224).transpose(2, 0, 1)[None]
onnx_soft = session.run(None, {session.get_inputs()[0].name: x})[0][0, 0]
diff = np.abs(onnx_soft - ours).max()
same = ((onnx_soft > 0.5) == (ours > 0.5)).mean()
print(f"BUSI {image_path.name}: packaged ONNX vs Segmenter soft mask: max |diff| {diff:.2e}; "
      f"binary masks agree on {100 * same:.3f} % of pixels")
assert summary.status == "passed" and diff < 1e-3
EOF
