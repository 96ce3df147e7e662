#!/usr/bin/env bash
# Run lint and the whole test suite, setting up first when needed (scripts/setup.sh --if-needed:
# a fresh clone, or pyproject.toml / setup.sh changed since the last setup). Tests need no
# network. Research datasets (BUSI, Kvasir-SEG) are read from WAVEGMS_DATA, default
# ../shared/data; without them the tests marked `data` are skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --if-needed
export WAVEGMS_DATA="${WAVEGMS_DATA:-$(cd .. && pwd)/shared/data}"
unset QT_QPA_PLATFORM  # napari needs a real (virtual) X server: pytest-xvfb starts one
.venv/bin/ruff check src tests scripts
.venv/bin/ruff format --check src tests scripts
# Both cores (pytest-xdist): one worker per core, at most 4 (each holds torch and napari);
# WAVEGMS_TEST_WORKERS=N sets the count, 0 runs in this one process. Whole files go to one
# worker (--dist loadfile), so a file's module fixtures (a built wheel, a dask cluster) are
# made once; files are dealt out in the order tests/conftest.py gives them, the slowest first
# (--no-loadscope-reorder), and each worker runs torch on cores/workers threads. Each worker
# has its own virtual X server (pytest-xvfb) and temporary folders.
workers="${WAVEGMS_TEST_WORKERS:-$(nproc)}"
if [ "$workers" -gt 4 ]; then workers=4; fi
.venv/bin/python -m pytest -q -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
