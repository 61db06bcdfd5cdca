"""Grades out to the LMS: nbgrader export plugins writing Canvas's and Moodle's grade-import CSV.

Used as nbgrader's own exporters, from the course root::

    nbgrader export --exporter=autograder.tools.export.CanvasExport --to=canvas.csv
    nbgrader export --exporter=autograder.tools.export.MoodleExport --to=moodle.csv

Both write one row per student in nbgrader's gradebook and one column per assignment, holding
the points nbgrader gives the submission (its ``score`` less the late penalty, never below 0, as
nbgrader's own CSV export computes it). A student with no submission of an assignment gets an
empty cell, not 0: Canvas and Moodle then leave that grade as it is, where a 0 would overwrite
it. ``--ExportPlugin.assignment`` / ``--ExportPlugin.student`` restrict the export as for
nbgrader's CSV exporter.

* **Canvas** ("Import grades in the Gradebook", Canvas Instructor Guide): the header of Canvas's
  own gradebook export, ``Student,ID,SIS User ID,SIS Login ID,Section``, then one column per
  assignment; the second row, ``Points Possible``, gives each assignment's maximum. Canvas
  identifies a student by ``ID``, ``SIS User ID`` or ``SIS Login ID``: nbgrader's student id goes
  into :attr:`CanvasExport.id_column` (``SIS Login ID`` by default). An assignment column whose
  name Canvas does not know creates that assignment on import.
* **Moodle** ("Grade import", MoodleDocs: the import file format is the export format): the
  header of Moodle's CSV grade export, ``First name,Last name,ID number,Institution,Department,
  Email address``, then ``Assignment: NAME (Real)`` per assignment. On import, map from ``ID
  number`` (nbgrader's student id) to ``useridnumber``, or from ``Email address`` to
  ``useremail``. Moodle's export also ends with ``Last downloaded from this course``, a
  timestamp used to warn about newer grades; it is optional on import and not written.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin
from traitlets import Unicode

#: Canvas's gradebook columns before the assignments (its gradebook export's header).
CANVAS_HEADER = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
#: Moodle's grade export columns before the grade items.
MOODLE_HEADER = ("First name", "Last name", "ID number", "Institution", "Department", "Email address")


def points(gradebook: Gradebook, assignment: str, student: str) -> str:
    """The student's points on ``assignment`` as the LMS should read them, or ``""`` when the
    student submitted nothing (no submission in the gradebook).

    The points are nbgrader's: ``max(0, score - late_submission_penalty)`` (nbgrader's
    ``CsvExportPlugin``), printed without trailing zeros (``9.5``, ``10``).
    """
    try:
        submission = gradebook.find_submission(assignment, student)
    except MissingEntry:
        return ""
    value = max(0.0, submission.score - (submission.late_submission_penalty or 0.0))
    return f"{round(value, 6):g}"


class _LmsExport(ExportPlugin):
    """The rows common to both formats; subclasses give the header and a student's own cells."""

    default_file = "grades.csv"

    def _selected(self, items: Iterable, wanted: list) -> list:
        names = {str(w) for w in wanted}
        return [item for item in items if not names or (getattr(item, "name", None) or item.id) in names]

    def header(self, assignments: list) -> list[str]:
        raise NotImplementedError

    def student_cells(self, student) -> list[str]:
        raise NotImplementedError

    def extra_rows(self, assignments: list) -> list[list[str]]:
        return []

    def export(self, gradebook: Gradebook) -> None:
        """Write the CSV to ``--to`` (default :attr:`default_file`)."""
        dest = self.to or self.default_file
        assignments = self._selected(gradebook.assignments, self.assignment)
        students = sorted(self._selected(gradebook.students, self.student), key=lambda s: s.id)
        self.log.info("Exporting %d students x %d assignments to %s", len(students),
                      len(assignments), dest)
        with open(dest, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(self.header(assignments))
            writer.writerows(self.extra_rows(assignments))
            for student in students:
                writer.writerow([*self.student_cells(student),
                                 *(points(gradebook, a.name, student.id) for a in assignments)])


class CanvasExport(_LmsExport):
    """Canvas gradebook import CSV (see the module docstring)."""

    default_file = "canvas_grades.csv"
    id_column = Unicode("SIS Login ID", help="Canvas column that holds nbgrader's student id: "
                        "'SIS Login ID', 'SIS User ID' or 'ID'.").tag(config=True)

    def header(self, assignments: list) -> list[str]:
        if self.id_column not in CANVAS_HEADER[1:4]:
            raise ValueError(f"id_column must be one of {CANVAS_HEADER[1:4]}, got {self.id_column!r}")
        return [*CANVAS_HEADER, *(a.name for a in assignments)]

    def extra_rows(self, assignments: list) -> list[list[str]]:
        return [["Points Possible", "", "", "", "", *(f"{a.max_score:g}" for a in assignments)]]

    def student_cells(self, student) -> list[str]:
        names = [n for n in (student.last_name, student.first_name) if n]
        cells = dict.fromkeys(CANVAS_HEADER, "")
        cells["Student"] = ", ".join(names) or student.id
        cells[self.id_column] = student.id
        return list(cells.values())


class MoodleExport(_LmsExport):
    """Moodle grade import CSV (see the module docstring)."""

    default_file = "moodle_grades.csv"

    def header(self, assignments: list) -> list[str]:
        return [*MOODLE_HEADER, *(f"Assignment: {a.name} (Real)" for a in assignments)]

    def student_cells(self, student) -> list[str]:
        return [student.first_name or "", student.last_name or "", student.id, "", "",
                student.email or ""]
