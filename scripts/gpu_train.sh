#!/usr/bin/env bash
# The one command for the lent GPU machine, run from the repository root with the pack carried:
#   bash scripts/gpu_train.sh
# Environment: OUT (required), DEVICE=cuda, BUDGET=7m, PACK=gpu_pack, PYTHON=python3; more in
# scripts/gpu_train.py. A CPU rehearsal on a tiny pack (see docs/gpu_training.md):
#   DEVICE=cpu BUDGET=60s PACK=gpu_pack_tiny OUT=/tmp/kit_out bash scripts/gpu_train.sh
set -euo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
PACK=${PACK:-gpu_pack}
PYTHON=${PYTHON:-python3}
export PACK OUT PYTHONUNBUFFERED=1

# Packages that machine lacks travel as wheels; they go to a folder of their own, never into
# the system's site-packages, and only where they are missing.
if ! "$PYTHON" -c "import ptwt, pywt, platformdirs" 2>/dev/null; then
    SITE=/tmp/wavegms_site
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$PACK"/wheels/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "no nvidia-smi on this machine"; fi
mkdir -p "$OUT"
exec "$PYTHON" scripts/gpu_train.py
