"""Optional libraries: a missing one is one line naming the extra that installs it, the same
way for every optional import."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from wavegms.core.extras import EXTRA_OF, MissingExtraError, require

REPO = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml itself")


def test_every_extra_named_exists_in_pyproject_and_lists_its_module():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for module, extra in EXTRA_OF.items():
        assert extra in extras, (module, extra)
        names = " ".join(extras[extra]).lower().replace("_", "-")
        distribution = {"dask": "dask", "distributed": "dask[distributed]"}.get(module, module)
        assert distribution.split("[")[0] in names, (module, extra)


def test_a_missing_module_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(MissingExtraError) as err:
        require("diffusers", "the taesd backend")
    assert str(err.value) == (
        "the taesd backend needs diffusers, which is not installed: "
        "pip install 'napari-wavegms[taesd]'"
    )
    assert isinstance(err.value, ImportError)  # fallbacks that expect ImportError still work


def test_bench_without_diffusers_is_one_error_line_before_any_timing(monkeypatch, capsys):
    from wavegms.cli import main

    monkeypatch.setitem(sys.modules, "diffusers", None)
    assert main(["bench", "--repeats", "1", "--folder", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: the GMS-sized baseline")
    assert "--no-baseline" in err and "napari-wavegms[taesd]" in err


def test_the_taesd_backend_without_diffusers_names_the_extra(monkeypatch):
    from wavegms.net.autoencoders.taesd import load_taesd

    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(MissingExtraError, match=r"napari-wavegms\[taesd\]"):
        load_taesd()
