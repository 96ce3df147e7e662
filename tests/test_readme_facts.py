"""What the README states about the package is true of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8").replace("\n", " ")
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}


@pytest.mark.shipped
def test_the_number_of_shipped_models():
    from wavegms.store.catalogue import shipped_models

    shipped = shipped_models()
    assert f"ships {NUMBERS[len(shipped)]} trained models" in README
    for name in shipped:
        assert f"| `{name}`" in README  # a row in the table of shipped models


def test_segment_help_lists_every_input_format(capsys):
    from wavegms.cli import main
    from wavegms.data.clinical import CLINICAL_SUFFIXES
    from wavegms.data.images import IMAGE_SUFFIXES

    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for suffix in IMAGE_SUFFIXES + CLINICAL_SUFFIXES:
        assert suffix in text, suffix
    assert "DICOM" in text and "NIfTI" in text


def test_the_readmes_output_folder_is_ignored_by_git():
    # the examples' output folders, not the placeholders (IN OUT) of the usage lines
    folders = set(re.findall(r"wavegms segment \S+ ([a-z][\w.-]*)[\s`]", README))
    ignored = (REPO / ".gitignore").read_text().split()
    assert folders and all(f"{folder}/" in ignored for folder in folders), folders


def test_links_to_model_cards_resolve():
    for link in re.findall(r"\]\(([^)]*model_cards/[^)]*)\)", README):
        assert (REPO / link).is_file(), link
