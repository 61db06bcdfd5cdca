"""Two of nbgrader's preprocessors, without the warnings this course's design makes them print
for every student (``nbgrader_config.py`` puts them in place of nbgrader's own).

* :class:`QuietOverwriteCells` (``nbgrader autograde``). A hidden-test cell and a written
  question's cell are locked, and the release holds them without their hidden part (the
  ``BEGIN HIDDEN TESTS`` and ``BEGIN MARK SCHEME`` regions). nbgrader's ``OverwriteCells``
  compares the submitted cell's checksum with the gradebook's, computed with the hidden part, so
  it warns "Attribute 'checksum' for cell ... has changed!" for every such cell of every
  student, and restores it (jupyter/nbgrader#1961). Here a locked cell whose source is exactly
  the gradebook's source with those regions taken out is restored without a warning; any other
  change is still reported and restored by nbgrader.
* :class:`QuietClearMarkScheme` (``nbgrader generate_feedback``). nbconvert's HTML exporter
  configures ``NbConvertBase.display_data_priority`` for every preprocessor it runs; nbgrader's
  ``ClearMarkScheme`` has that attribute but not as a configurable trait, so traitlets warned
  "Config option `display_data_priority` not recognized by `ClearMarkScheme`". It is declared
  configurable here (the value is unused, as in nbgrader).

May import nbgrader and traitlets only; imported by ``nbgrader_config.py`` and the tests.
"""

from __future__ import annotations

import re

from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearMarkScheme, OverwriteCells
from traitlets import List, Unicode

#: The delimiters of the regions the release leaves out of a locked cell (nbgrader_config.py).
_HIDDEN = (("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"), ("BEGIN MARK SCHEME", "END MARK SCHEME"))


def without_hidden_regions(source: str) -> str:
    """``source`` without the lines from a ``BEGIN HIDDEN TESTS`` / ``BEGIN MARK SCHEME`` line
    to its ``END`` line, both included, as nbgrader's ``ClearHiddenTests`` and
    ``ClearMarkScheme`` remove them from the release."""
    for begin, end in _HIDDEN:
        source = re.sub(rf"^[^\n]*{begin}.*?{end}[^\n]*(?:\n|$)", "", source, flags=re.S | re.M)
    return source


def _same_text(a: str, b: str) -> bool:
    """Equal but for trailing white space (nbformat and nbgrader strip it differently)."""
    return [line.rstrip() for line in a.strip().splitlines()] == \
        [line.rstrip() for line in b.strip().splitlines()]


class QuietOverwriteCells(OverwriteCells):
    """``OverwriteCells`` that restores a released locked cell's hidden part without a warning
    (see the module docstring)."""

    def preprocess_cell(self, cell, resources, cell_index):
        """Put the gradebook's source back first when the cell is exactly its released form."""
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if grade_id is not None and meta.get("locked"):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id,
                                                              self.assignment_id)
            except MissingEntry:
                source_cell = None
            if (source_cell is not None and source_cell.locked
                    and source_cell.source != cell.source
                    and without_hidden_regions(source_cell.source) != source_cell.source
                    and _same_text(without_hidden_regions(source_cell.source), cell.source)):
                cell.source = source_cell.source
        return super().preprocess_cell(cell, resources, cell_index)


class QuietClearMarkScheme(ClearMarkScheme):
    """``ClearMarkScheme`` that accepts nbconvert's ``display_data_priority`` setting."""

    display_data_priority = List(Unicode(), help="Set by nbconvert's HTML exporter for every "
                                 "preprocessor; unused here.").tag(config=True)
