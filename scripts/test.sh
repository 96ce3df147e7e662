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
.venv/bin/python -m pytest -q "$@"
