"""Grades out to the LMS: nbgrader export plugins writing CSV files that Canvas and Moodle import
as they are.

Used as nbgrader's own exporters, from the course root::

    nbgrader export --exporter=autograder.tools.export.CanvasExport --to=canvas.csv
    nbgrader export --exporter=autograder.tools.export.MoodleExport --to=moodle.csv

The points are nbgrader's (its ``score`` less the late penalty, never below 0, as nbgrader's own
CSV export computes them). ``--assignment=02_batchnorm_forward`` chooses the assignments;
without it, every assignment with at least one submission in the gradebook (the graded ones).
``--ExportPlugin.student`` restricts the students as for nbgrader's CSV exporter. Every cell is
neutralized against CSV injection (:mod:`autograder.tools.csv_safe`).

**Canvas** (Gradebook > Import; the rules of Canvas's importer, ``app/models/gradebook_importer.rb``
in instructure/canvas-lms, are quoted where they are used). The header is Canvas's own
gradebook export's: ``Student,ID,SIS User ID,SIS Login ID,Section``, then one column per
assignment, named ``Title (id)`` with the Canvas assignment id from
``c.CanvasExport.assignment_ids = {"02_batchnorm_forward": 1234}``: Canvas finds the assignment
by that id. Without an id the column is the assignment's exact Canvas title, from
``c.CanvasExport.assignment_titles`` (default: nbgrader's name), which Canvas matches by equality;
a title it does not know creates a new assignment. The second row is ``Points Possible``.
nbgrader's student id goes into :attr:`CanvasExport.id_column` (``SIS Login ID`` by default).
A student who submitted none of the exported assignments is left out (Canvas leaves a student
who is not in the file as they are); a blank cell (submitted another exported assignment but
not this one) is a change to "no grade" for Canvas, so the export warns when it writes one.

**Moodle** (Grades > Import > CSV file; the rules of ``grade/import/csv/classes/load_data.php``
in moodle/moodle). The header is Moodle's grade export's, ``First name,Last name,ID number,
Institution,Department,Email address``, then ``Assignment: NAME (Real)``. Moodle looks every row
up by the column chosen under *Map from* (``ID number`` -> ``useridnumber`` or ``Email address``
-> ``useremail``): a value it does not know aborts the whole import (``usermappingerror``), and a
blank one makes it keep the previous row's student. So only students of the instructor's roster
are written: nbgrader's student table with a value in :attr:`MoodleExport.map_from` (the ID
number is nbgrader's ``lms_user_id``, the email its ``email``, both set by
``nbgrader db student import``); students created only by grading are left out, with a warning
naming them. An empty cell in a mapped grade column becomes "No grade" (``finalgrade = null``),
so by default each file holds one assignment and only the students who submitted it
(``--to=moodle.csv`` with two assignments writes ``moodle_<assignment>.csv`` for each).
"""

from __future__ import annotations

import re
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin
from traitlets import Bool, Dict, Enum, Int, Unicode

from autograder.tools.csv_safe import SafeWriter

#: Canvas's gradebook columns before the assignments (its gradebook export's header).
CANVAS_HEADER = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
#: Moodle's grade export columns before the grade items.
MOODLE_HEADER = ("First name", "Last name", "ID number", "Institution", "Department", "Email address")
#: Canvas reads a column ``Title (123)`` as the assignment with id 123 (``Assignment.title_and_id``).
_TITLE_AND_ID = re.compile(r"^(.*)\s+\((\d+)\)$")


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


def graded_assignments(gradebook: Gradebook) -> list:
    """The gradebook's assignments that have at least one submission, in the gradebook's order."""
    return [a for a in gradebook.assignments if a.submissions]


class _LmsExport(ExportPlugin):
    """What both formats share: choosing assignments and students, and writing one file."""

    default_file = "grades.csv"

    def _selected_assignments(self, gradebook: Gradebook) -> list:
        wanted = [str(a) for a in self.assignment]
        if not wanted:
            return graded_assignments(gradebook)
        known = {a.name: a for a in gradebook.assignments}
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise ValueError(f"--assignment names assignments the gradebook does not have: "
                             f"{unknown}; it has {sorted(known)}")
        return [known[name] for name in wanted]

    def _students(self, gradebook: Gradebook) -> list:
        wanted = {str(s) for s in self.student}
        return sorted((s for s in gradebook.students if not wanted or s.id in wanted),
                      key=lambda s: s.id)

    def _write(self, dest: Path, rows: list[list[str]]) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "w", newline="", encoding="utf-8") as fh:
            SafeWriter(fh).writerows(rows)
        self.log.info("Wrote %s (%d rows)", dest, len(rows))


class CanvasExport(_LmsExport):
    """Canvas gradebook import CSV (see the module docstring)."""

    default_file = "canvas_grades.csv"
    id_column = Unicode("SIS Login ID", help="Canvas column that holds nbgrader's student id: "
                        "'SIS Login ID', 'SIS User ID' or 'ID'.").tag(config=True)
    assignment_ids = Dict(value_trait=Int(), help="Canvas assignment id of each nbgrader "
                          "assignment, e.g. {'02_batchnorm_forward': 1234}: the column is then "
                          "'Title (1234)', which Canvas matches by id.").tag(config=True)
    assignment_titles = Dict(value_trait=Unicode(), help="Exact Canvas title of each nbgrader "
                             "assignment (default: its nbgrader name); used in the column name, "
                             "and matched by Canvas when no id is given.").tag(config=True)

    def column(self, name: str) -> str:
        """The column header of assignment ``name``: ``Title (id)``, or the exact title.

        Raises
        ------
        ValueError
            If a title without an id ends like ``(123)``: Canvas would read that as an id.
        """
        title = self.assignment_titles.get(name, name)
        if name in self.assignment_ids:
            return f"{title} ({self.assignment_ids[name]})"
        if _TITLE_AND_ID.match(title):
            raise ValueError(f"the Canvas title {title!r} of {name} ends like an id '(123)'; "
                             "give its id in c.CanvasExport.assignment_ids instead")
        self.log.warning("No Canvas id for %s (c.CanvasExport.assignment_ids): Canvas matches the "
                         "column by its exact title %r, and creates a new assignment if it has "
                         "none with that title", name, title)
        return title

    def export(self, gradebook: Gradebook) -> None:
        """Write the CSV to ``--to`` (default :attr:`default_file`).

        Raises
        ------
        ValueError
            For an ``id_column`` that is not one of Canvas's id columns, or an unknown assignment.
        """
        if self.id_column not in CANVAS_HEADER[1:4]:
            raise ValueError(f"id_column must be one of {CANVAS_HEADER[1:4]}, got {self.id_column!r}")
        assignments = self._selected_assignments(gradebook)
        # gradebook_importer.rb, row_has_student_headers? and update_column_count: "Student" then
        # "ID", then "SIS User ID" and "SIS Login ID"; the last identity column is "Section".
        rows = [[*CANVAS_HEADER, *(self.column(a.name) for a in assignments)],
                # check_for_non_student_row: a row whose first cell includes "Points Possible"
                # describes the assignments (process_pp), it is no student.
                ["Points Possible", "", "", "", "", *(f"{a.max_score:g}" for a in assignments)]]
        blanks = []
        for student in self._students(gradebook):
            scores = [points(gradebook, a.name, student.id) for a in assignments]
            if not any(scores):
                continue  # a student missing from the file is left as they are (missing_students)
            blanks += [f"{student.id} ({a.name})" for a, s in zip(assignments, scores, strict=True) if not s]
            names = [n for n in (student.last_name, student.first_name) if n]
            cells = dict.fromkeys(CANVAS_HEADER, "")
            cells["Student"] = ", ".join(names) or student.id
            cells[self.id_column] = student.id
            rows.append([*cells.values(), *scores])
        if blanks:
            # no_change_to_value?: a blank beside an existing score is a change to no score
            self.log.warning("Blank cells (no submission) clear a grade entered in Canvas: %s. "
                             "Export one assignment per file to avoid them.", ", ".join(blanks))
        self._write(Path(self.to or self.default_file), rows)


class MoodleExport(_LmsExport):
    """Moodle grade import CSV (see the module docstring)."""

    default_file = "moodle_grades.csv"
    map_from = Enum(["ID number", "Email address"], default_value="ID number",
                    help="The column Moodle's import maps users from: 'ID number' (map to "
                    "useridnumber; nbgrader's lms_user_id) or 'Email address' (map to "
                    "useremail). Students without a value in it are left out.").tag(config=True)
    one_assignment_per_file = Bool(True, help="One file per assignment, holding only the "
                                   "students who submitted it, so that no grade cell is empty "
                                   "(Moodle reads an empty cell as 'No grade').").tag(config=True)

    def roster(self, gradebook: Gradebook) -> list:
        """The students Moodle can find: those with a value in :attr:`map_from`; the others are
        named in a warning."""
        key = "lms_user_id" if self.map_from == "ID number" else "email"
        students = self._students(gradebook)
        kept = [s for s in students if (getattr(s, key) or "").strip()]
        left = [s.id for s in students if s not in kept]
        if left:
            self.log.warning("Left out of the Moodle file (no %s, so not on the roster; Moodle "
                             "would abort the import on them): %s", self.map_from, ", ".join(left))
        return kept

    def rows(self, gradebook: Gradebook, assignments: list, students: list) -> list[list[str]]:
        """Header and one row per student of ``students`` who submitted one of ``assignments``."""
        rows = [[*MOODLE_HEADER, *(f"Assignment: {a.name} (Real)" for a in assignments)]]
        for student in students:
            scores = [points(gradebook, a.name, student.id) for a in assignments]
            if any(scores):
                rows.append([student.first_name or "", student.last_name or "",
                             student.lms_user_id or "", "", "", student.email or "", *scores])
        return rows

    def export(self, gradebook: Gradebook) -> None:
        """Write one CSV per assignment (``--to`` itself when there is one), or all in one file
        when ``one_assignment_per_file`` is False."""
        dest = Path(self.to or self.default_file)
        assignments = self._selected_assignments(gradebook)
        students = self.roster(gradebook)
        if not self.one_assignment_per_file or len(assignments) <= 1:
            rows = self.rows(gradebook, assignments, students)
            if any("" in row[len(MOODLE_HEADER):] for row in rows[1:]):
                self.log.warning("Empty grade cells in %s: Moodle sets those grades to 'No grade' "
                                 "(finalgrade = null)", dest)
            self._write(dest, rows)
            return
        for assignment in assignments:
            self._write(dest.with_name(f"{dest.stem}_{assignment.name}{dest.suffix}"),
                        self.rows(gradebook, [assignment], students))

