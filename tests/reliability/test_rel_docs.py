"""docs/reliability.md is generated from the suite's @case markers and must match them."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

from .cases import REGISTERED

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table_script():
    spec = importlib.util.spec_from_file_location(
        "reliability_table", REPO / "scripts" / "reliability_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_doc_matches_the_tests(table_script):
    expected = table_script.table(REPO)
    current = (REPO / table_script.DOC).read_text(encoding="utf-8")
    assert current == expected, (
        "docs/reliability.md is out of date with the @case markers of the reliability tests: "
        "run `.venv/bin/python scripts/reliability_table.py` and commit the result"
    )


def test_every_case_is_found_by_the_table(table_script):
    """The table's reading of the sources agrees with the markers Python actually applied."""
    rows = {row.id: row.test for row in table_script.collect(REPO)}
    here = Path(__file__).parent
    for path in sorted(here.glob("test_rel_*.py")):
        importlib.import_module(f"{__package__}.{path.stem}")
    ours = {cid: where for cid, where in REGISTERED.items() if where[0].startswith(__package__)}
    assert ours, "no reliability case was registered"
    for cid, (module, name) in ours.items():
        assert cid in rows, f"{module}.{name} declares {cid}, missing from the table"
        assert rows[cid].endswith(f"/{module.split('.')[-1]}.py::{name}"), (cid, rows[cid])
    assert len(rows) >= len(ours)


def test_table_rejects_bad_markers(table_script, tmp_path):
    (tmp_path / "tests" / "reliability").mkdir(parents=True)
    (tmp_path / "tests" / "reliability" / "cases.py").write_text('AREAS = {"IMG": "Images"}\n')
    bad = tmp_path / "tests" / "reliability" / "test_x.py"
    bad.write_text("def test_without_a_case():\n    pass\n")
    with pytest.raises(table_script.CaseError, match="exactly one @case"):
        table_script.collect(tmp_path)
    bad.write_text(
        '@case("IMG-A", "x", "y")\ndef test_a():\n    pass\n\n'
        '@case("IMG-A", "x", "y")\ndef test_b():\n    pass\n'
    )
    with pytest.raises(table_script.CaseError, match="used by"):
        table_script.collect(tmp_path)
    bad.write_text('ID = "IMG-A"\n@case(ID, "x", "y")\ndef test_a():\n    pass\n')
    with pytest.raises(table_script.CaseError, match="literals"):
        table_script.collect(tmp_path)
