"""autograder/tools/quiet.py: the released form of every locked cell with hidden content is
recognized (so nbgrader's checksum warning is not printed for it), and nothing else is."""

from __future__ import annotations

import nbformat
import pytest
from conftest import ASSIGNMENTS, ROOT

from autograder.tools.quiet import QuietClearMarkScheme, _same_text, without_hidden_regions


def _locked_hidden_cells():
    for assignment, notebook in ASSIGNMENTS.items():
        source = nbformat.read(ROOT / "source" / assignment / notebook, as_version=4)
        release = nbformat.read(ROOT / "release" / assignment / notebook, as_version=4)
        released = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in release.cells}
        for cell in source.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("locked") and without_hidden_regions(cell.source) != cell.source:
                yield assignment, meta["grade_id"], cell.source, released[meta["grade_id"]]


CELLS = list(_locked_hidden_cells())


def test_every_assignment_has_cells_with_hidden_content():
    assert {a for a, *_ in CELLS} == set(ASSIGNMENTS)


@pytest.mark.parametrize(("assignment", "grade_id", "source", "released"), CELLS,
                         ids=[f"{a}-{g}" for a, g, *_ in CELLS])
def test_the_released_form_is_the_source_without_its_hidden_regions(assignment, grade_id,
                                                                     source, released):
    # released/ is what nbgrader's ClearHiddenTests and ClearMarkScheme made of source/
    assert _same_text(without_hidden_regions(source), released)
    assert "BEGIN HIDDEN TESTS" not in without_hidden_regions(source)
    assert "BEGIN MARK SCHEME" not in without_hidden_regions(source)
    tampered = released + "\nprint('edited')"
    assert not _same_text(without_hidden_regions(source), tampered)  # still reported


def test_clear_mark_scheme_accepts_nbconverts_display_data_priority():
    from traitlets.config import Config

    config = Config({"NbConvertBase": {"display_data_priority": ["text/html"]}})
    assert "display_data_priority" in QuietClearMarkScheme.class_trait_names(config=True)
    assert QuietClearMarkScheme(config=config).display_data_priority == ["text/html"]
