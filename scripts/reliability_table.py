"""Write docs/reliability.md, the table of reliability cases, from the tests that prove them.

Every reliability test carries ``@case("ID", "case tried", "expected behaviour")`` (see
``tests/reliability/cases.py``). This script reads those markers with ``ast`` (it imports
neither the tests nor torch) and writes one table row per case, naming the test.

    .venv/bin/python scripts/reliability_table.py          # rewrite docs/reliability.md
    .venv/bin/python scripts/reliability_table.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = Path("docs/reliability.md")
CASES_MODULE = Path("tests/reliability/cases.py")
SOURCES = ("tests/reliability/test_*.py", "tests/napari/test_reliability_*.py")
NOT_CASES = ("tests/reliability/test_rel_docs.py",)  # tests of this table itself
COMMAND = (
    "OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/reliability "
    "tests/napari/test_reliability_gui.py"
)


@dataclass(frozen=True)
class Row:
    id: str
    tried: str
    expected: str
    test: str  # path::function


class CaseError(Exception):
    """A marker the table cannot be built from (not literal, duplicated, missing)."""


def areas(repo: Path = REPO) -> dict[str, str]:
    """The ``AREAS`` dict of tests/reliability/cases.py (id prefix -> heading)."""
    tree = ast.parse((repo / CASES_MODULE).read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "AREAS":
            return ast.literal_eval(node.value)
    raise CaseError(f"{CASES_MODULE} defines no AREAS")


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def rows_in(path: Path, repo: Path = REPO) -> list[Row]:
    """The cases declared in one test file; every top-level test must declare exactly one."""
    rel = path.relative_to(repo).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rows = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
            continue
        marks = [
            d
            for d in node.decorator_list
            if isinstance(d, ast.Call) and _decorator_name(d.func) == "case"
        ]
        if len(marks) != 1:
            raise CaseError(f"{rel}::{node.name} needs exactly one @case(...), has {len(marks)}")
        try:
            args = [ast.literal_eval(a) for a in marks[0].args]
        except ValueError as err:
            raise CaseError(f"{rel}::{node.name}: @case arguments must be literals") from err
        if len(args) != 3 or marks[0].keywords or not all(isinstance(a, str) for a in args):
            raise CaseError(f"{rel}::{node.name}: use @case(id, tried, expected), all strings")
        rows.append(Row(args[0], args[1], args[2], f"{rel}::{node.name}"))
    return rows


def collect(repo: Path = REPO) -> list[Row]:
    """Every case of the suite, by area (in AREAS order), then in the order of the sources."""
    skip = {repo / p for p in NOT_CASES}
    files = sorted({p for pattern in SOURCES for p in repo.glob(pattern)} - skip)
    rows = [row for path in files for row in rows_in(path, repo)]
    order = list(areas(repo))
    seen: dict[str, str] = {}
    for row in rows:
        area = row.id.split("-")[0]
        if area not in order:
            raise CaseError(f"{row.test}: case id {row.id} has an unknown area {area!r}")
        if row.id in seen:
            raise CaseError(f"case id {row.id} is used by {seen[row.id]} and {row.test}")
        seen[row.id] = row.test
    return sorted(rows, key=lambda r: order.index(r.id.split("-")[0]))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(rows: list[Row], area_names: dict[str, str]) -> str:
    lines = [
        "# Reliability and safety",
        "",
        "What napari-wavegms does with bad input, faults and untrusted files. Every case below",
        "is a test in the normal pytest run. This file is generated from those tests by",
        "`scripts/reliability_table.py`: do not edit it by hand;",
        "`tests/reliability/test_rel_docs.py` fails when it is out of date.",
        "",
        f"{len(rows)} cases. Run them with:",
        "",
        "```bash",
        COMMAND,
        "```",
    ]
    for prefix, heading in area_names.items():
        part = [r for r in rows if r.id.split("-")[0] == prefix]
        if not part:
            continue
        lines += ["", f"## {heading}", ""]
        lines += ["| id | case tried | expected behaviour | test |", "|---|---|---|---|"]
        lines += [f"| {r.id} | {_cell(r.tried)} | {_cell(r.expected)} | `{r.test}` |" for r in part]
    return "\n".join(lines) + "\n"


def table(repo: Path = REPO) -> str:
    """The text docs/reliability.md must hold."""
    return render(collect(repo), areas(repo))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, exit 1 if stale")
    args = parser.parse_args(argv)
    rows = collect()
    text = render(rows, areas())
    path = REPO / DOC
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            print(f"{DOC} is out of date: run python scripts/reliability_table.py")
            return 1
        print(f"{DOC} is up to date")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}: {len(rows)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
