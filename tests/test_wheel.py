"""The wheel carries everything the package reads: built from this checkout and installed into
a fresh virtual environment offline (dependencies from the running environment, no index), it
holds the checkout's package files byte for byte and reads its data through importlib.resources;
its export of the shipped model equals the checkout's, file for file (the model card included).

The build and install take seconds; the export comparison (two exports of the 224-pixel model,
minutes on a busy 2-core machine) is marked ``wheel`` so that it can be chosen or left out."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("hatchling", reason="builds the wheel offline with the hatchling backend")
pytest.importorskip("bioimageio.core", reason="exports need the bioimageio extra")
pytestmark = pytest.mark.shipped

#: Exports a model with no network, as an offline machine would, to argv[2].
EXPORT = """
import sys, httpx
def refuse(*args, **kwargs):
    raise httpx.ConnectError("offline")
httpx.request = httpx.stream = refuse
import wavegms
from wavegms.export.bioimageio import export_bioimageio
print(wavegms.__file__)
export_bioimageio(sys.argv[1], sys.argv[2])
"""


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = out.glob("napari_wavegms-*.whl")
    return wheel


def fresh_venv(folder: Path, wheel: Path) -> Path:
    """A new environment holding only the wheel; its dependencies come from this one's
    site-packages (a path entry, so this checkout's editable install is not seen)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return python


def export_with(python: Path, out: Path, env: dict[str, str], cwd: Path) -> tuple[str, dict]:
    run = subprocess.run(
        [python, "-c", EXPORT, "busi", str(out)],
        capture_output=True, text=True, env=env, cwd=cwd, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    with zipfile.ZipFile(out) as z:
        return run.stdout.strip().splitlines()[0], {n: z.read(n) for n in z.namelist()}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel) -> Path:
    """The python of a fresh environment with the wheel of this checkout installed."""
    return fresh_venv(tmp_path_factory.mktemp("wheel") / "venv", wheel)


def test_the_readme_gives_the_wheels_size(wheel):
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (stated,) = re.findall(r"the wheel is (\d+(?:\.\d+)?) MB", readme.replace("\n", " "))
    assert abs(float(stated) - wheel.stat().st_size / 1e6) < 0.15, wheel.stat().st_size


#: Run in the fresh environment: where the package is and what its resources read.
RESOURCES = """
import hashlib, pathlib, wavegms
from wavegms.package_data import model_card, sample_image_files
root = pathlib.Path(wavegms.__file__).parent
print(root)
for f in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
    print(f.relative_to(root).as_posix(), hashlib.sha256(f.read_bytes()).hexdigest())
print("card", model_card("busi").splitlines()[0])
print("samples", [f.name for f in sample_image_files()])
"""


def test_the_wheel_holds_the_package_files_and_reads_its_data(installed, tmp_path):
    import hashlib

    run = subprocess.run(
        [installed, "-c", RESOURCES], capture_output=True, text=True, cwd=tmp_path, check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    lines = run.stdout.splitlines()
    assert lines[0].startswith(str(installed.parents[1]))  # the installed copy, not this one
    assert lines[-2] == "card # Model card: `busi`" and lines[-1] == "samples ['ultrasound.png']"
    got = dict(line.split() for line in lines[1:-2])
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "src/wavegms"], capture_output=True, text=True,
        check=True,
    ).stdout.split()  # fmt: skip
    src = REPO / "src" / "wavegms"
    expected = {
        (REPO / f).relative_to(src).as_posix(): hashlib.sha256((REPO / f).read_bytes()).hexdigest()
        for f in tracked
        if (REPO / f).is_file()
    }
    assert got == expected


@pytest.mark.wheel
def test_the_wheels_export_equals_the_checkouts(installed, tmp_path):
    python = installed
    home = {"WAVEGMS_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WAVEGMS_HOME")}
    outside = tmp_path / "elsewhere"  # not the checkout: nothing is read from it by accident
    outside.mkdir()
    installed, from_wheel = export_with(python, tmp_path / "wheel.zip", {**base, **home}, outside)
    assert installed.startswith(str(python.parents[1]))  # the wheel's copy ran
    env = {**base, **home, "PYTHONPATH": str(REPO / "src")}
    cloned, from_clone = export_with(Path(sys.executable), tmp_path / "clone.zip", env, outside)
    assert cloned.startswith(str(REPO / "src"))
    assert sorted(from_wheel) == sorted(from_clone)
    differ = [name for name in from_clone if from_wheel[name] != from_clone[name]]
    assert not differ, differ
    assert b"# Model card: `busi`" in from_wheel["README.md"]  # the card travelled
