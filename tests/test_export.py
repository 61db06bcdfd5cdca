"""The LMS exporters (autograder/tools/export.py) run as nbgrader's own ``nbgrader export``.

The gradebook is written through nbgrader's API with hand-picked contents, and the CSV files
are checked against the header rows that Canvas and Moodle document for their grade imports
(typed here from the documentation, not taken from the module under test).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

#: Canvas Instructor Guide, "How do I import grades in the Gradebook?": the columns of its
#: gradebook export that an import needs, then the assignments; a "Points Possible" row.
CANVAS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
#: MoodleDocs, "Grade import" / "Grade export": the user columns of the CSV export, then
#: "<activity type>: <name> (Real)" for each grade item.
MOODLE = ["First name", "Last name", "ID number", "Institution", "Department", "Email address"]


def _gradebook(db_url: str) -> None:
    """a1: two test cells worth 1 and 2; a2: one worth 5. Students and their points:

    ada: a1 1 + 2 = 3, a2 4;  ben: a1 1 with a late penalty of 0.5 -> 0.5, nothing for a2;
    cyd: nothing for a1, a2 submitted and scored 0.
    """
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    with Gradebook(db_url) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own autoflush quirk (add_submission)
        for name, cells in (("a1", {"t1": 1, "t2": 2}), ("a2", {"t3": 5})):
            gb.update_or_create_assignment(name)
            gb.update_or_create_notebook(name, name)
            for cell, points in cells.items():
                gb.update_or_create_grade_cell(cell, name, name, max_score=points, cell_type="code")
        gb.add_student("ada", first_name="Ada", last_name="Lovelace", email="ada@example.org")
        gb.add_student("ben", first_name="Ben", last_name="Franklin")
        gb.add_student("cyd")
        given = {("ada", "a1"): {"t1": 1, "t2": 2}, ("ada", "a2"): {"t3": 4},
                 ("ben", "a1"): {"t1": 1, "t2": 0}, ("cyd", "a2"): {"t3": 0}}
        for (student, assignment), scores in given.items():
            gb.add_submission(assignment, student)
            nb = gb.find_submission_notebook(assignment, assignment, student)
            for grade in nb.grades:
                grade.auto_score = scores[grade.name]
            if student == "ben":
                nb.late_submission_penalty = 0.5
        gb.db.commit()


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course directory holding only the gradebook and a config that finds this repository's
    ``autograder`` package, as the course's own nbgrader_config.py does."""
    root = tmp_path_factory.mktemp("export")
    (root / "nbgrader_config.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nc = get_config()\n"
        f"c.CourseDirectory.root = {str(root)!r}\n")
    _gradebook(f"sqlite:///{root / 'gradebook.db'}")
    return root


def export(root: Path, exporter: str, *args: str) -> list[list[str]]:
    """Run ``nbgrader export --exporter=autograder.tools.export.<exporter>``; the CSV's rows."""
    dest = root / f"{exporter}.csv"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "export",
         f"--exporter=autograder.tools.export.{exporter}", f"--to={dest}", *args],
        cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(dest, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_canvas_csv_has_canvas_columns_points_and_blanks(course):
    rows = export(course, "CanvasExport")
    assert rows[0] == [*CANVAS, "a1", "a2"]
    assert rows[1] == ["Points Possible", "", "", "", "", "3", "5"]
    by_login = {row[3]: row for row in rows[2:]}
    assert sorted(by_login) == ["ada", "ben", "cyd"]
    assert by_login["ada"] == ["Lovelace, Ada", "", "", "ada", "", "3", "4"]
    assert by_login["ben"][5:] == ["0.5", ""]  # no submission of a2: blank, not 0
    assert by_login["cyd"][0] == "cyd"  # no name in the gradebook: the id stands in
    assert by_login["cyd"][5:] == ["", "0"]  # submitted and scored 0 stays 0


def test_moodle_csv_has_moodle_columns_points_and_blanks(course):
    rows = export(course, "MoodleExport")
    assert rows[0] == [*MOODLE, "Assignment: a1 (Real)", "Assignment: a2 (Real)"]
    by_id = {row[2]: row for row in rows[1:]}
    assert by_id["ada"] == ["Ada", "Lovelace", "ada", "", "", "ada@example.org", "3", "4"]
    assert by_id["ben"][6:] == ["0.5", ""]
    assert by_id["cyd"][6:] == ["", "0"]
    assert len(rows) == 4


def test_exports_keep_to_the_assignments_and_students_asked_for(course):
    rows = export(course, "CanvasExport", "--ExportPlugin.assignment=['a2']",
                  "--ExportPlugin.student=['ben', 'cyd']")
    assert rows[0] == [*CANVAS, "a2"]
    assert [(row[3], row[5]) for row in rows[2:]] == [("ben", ""), ("cyd", "0")]


def test_canvas_id_column_must_be_a_canvas_id_column(course):
    from nbgrader.api import Gradebook

    from autograder.tools.export import CanvasExport

    plugin = CanvasExport(id_column="Email", to=str(course / "bad.csv"))
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb, pytest.raises(ValueError, match="id_column"):
        plugin.export(gb)
