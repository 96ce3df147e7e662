#!/usr/bin/env bash
# Set up a fresh machine: Debian packages for Qt under a virtual X server, a virtual
# environment in .venv with the CPU build of torch, and this package with its test extras.
# With --if-needed it does nothing when .venv was set up by this same setup.sh for this same
# pyproject.toml (a stamp in .venv holds their hash, written once setup has succeeded).
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.venv/.wavegms-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d" " -f1)
if [ "${1:-}" = "--if-needed" ] && [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

# Qt's xcb platform plugin and Xvfb (napari tests run on a virtual X server).
debs=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0
      libxcb-xkb1 libxcb-randr0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1
      libfontconfig1 libdbus-1-3 libglib2.0-0)
missing=()
for d in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "ok installed" || missing+=("$d")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "warning: missing Debian packages (napari tests need them): ${missing[*]}" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Exactly this torch: it is a CPU wheel on local disk here; a looser request pulls a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
echo "$want" > "$stamp"
