"""Let a tox environment use the dependencies of an environment that already has them, so that
``tox`` runs offline: writes a ``.pth`` file into the running (tox) environment naming the
site-packages of PYTHON (default: the project's ``.venv``, made by ``scripts/setup.sh``).

    python scripts/tox_deps.py [PYTHON]

Only the dependencies come from there: the tox environment puts this checkout's ``src`` first on
its path (tox.ini), and a path entry in a ``.pth`` file does not run that environment's own
``.pth`` files, so its editable install of another checkout is not seen.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    python = sys.argv[1] if len(sys.argv) > 1 else str(repo / ".venv" / "bin" / "python")
    if not Path(python).is_file():
        raise SystemExit(
            f"no python at {python}: run `bash scripts/setup.sh` first (it makes .venv), "
            "or name an environment with the test dependencies in WAVEGMS_DEPS"
        )
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    pth = Path(sysconfig.get_paths()["purelib"]) / "wavegms-deps.pth"
    pth.write_text(site + "\n")
    print(f"{pth}: dependencies from {site}")


if __name__ == "__main__":
    main()
