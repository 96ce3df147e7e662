"""The ``@case`` marker: each reliability test states the case it tries and what must happen.

``scripts/reliability_table.py`` reads these markers (as literal strings, without importing
the tests) and writes ``docs/reliability.md``; ``test_rel_docs.py`` fails when that file is
out of date, so the documentation cannot drift from the tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

#: case id prefix -> the heading it is listed under (in this order)
AREAS = {
    "IMG": "Input images (library)",
    "GUI": "napari widgets",
    "FILE": "Files and folders",
    "MASK": "Masks for fine-tuning",
    "MODEL": "Model files",
    "FAULT": "Faults",
    "RUN": "Runs, resumes and output folders",
    "CLI": "Command line",
}

CASE_ID = re.compile(r"^(?P<area>[A-Z]+)(-[A-Z0-9]+)+$")

#: case id -> (module, test name), filled as test modules are imported
REGISTERED: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class Case:
    id: str
    tried: str  # the input or event, in a few words
    expected: str  # what the user gets instead of a crash or lost work


def case(case_id: str, tried: str, expected: str) -> Callable:
    """Declare that the decorated test proves one case. Arguments must be literal strings."""
    match = CASE_ID.match(case_id)
    if not match or match["area"] not in AREAS:
        raise ValueError(f"bad case id {case_id!r}: AREA-NAME with AREA one of {list(AREAS)}")
    if not tried.strip() or not expected.strip():
        raise ValueError(f"case {case_id}: say what is tried and what is expected")

    def mark(test: Callable) -> Callable:
        if hasattr(test, "reliability_case"):
            raise ValueError(f"{test.__name__}: one case per test")
        where = (test.__module__, test.__name__)
        if REGISTERED.setdefault(case_id, where) != where:
            raise ValueError(f"case id {case_id} is used twice: {REGISTERED[case_id]}, {where}")
        test.reliability_case = Case(case_id, tried, expected)
        return test

    return mark
