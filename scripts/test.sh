#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run lint and the whole test suite. No network needed by tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Shared research files live beside the project and are never copied into it.
export WAVEGMS_TAEF2="${WAVEGMS_TAEF2:-$(cd .. && pwd)/shared/weights/taef2}"
export WAVEGMS_DATA="${WAVEGMS_DATA:-$(cd .. && pwd)/shared/data}"
unset QT_QPA_PLATFORM  # napari needs a real (virtual) X server: pytest-xvfb starts one
.venv/bin/ruff check src tests scripts
.venv/bin/ruff format --check src tests scripts
.venv/bin/python -m pytest -q "$@"
