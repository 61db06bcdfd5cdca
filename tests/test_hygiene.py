"""Where nbgrader reads and writes stays out of the student's reach, under real ``nbgrader autograde``.

The scratch course of ``tests/test_sandbox.py`` (assignment ``99_sandbox``). ``good`` is graded by
a first call; then one call grades every case of ``tests/hostile/hygiene_cases.py`` and
``zz_after``. Every file of the course outside the new students' autograded folders is recorded
before the second call and compared after it, file by file (content, mode, owner, link target),
and the kernels' temporary folder must be empty afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from conftest import add_fixture_checks, cell_metadata, copy_course, load_hostile_cases
from nbgrader.api import Gradebook
from test_sandbox import ASSIGNMENT, NOTEBOOK, autograded, nbgrader, score, submit

from autograder.kernel import submission
from autograder.notebooks import trusted_flags

cases = load_hostile_cases("hygiene_cases")
STUDENTS = [*cases.KERNEL_CASES, *cases.FOLDER_CASES]
GOOD_ANSWER = cases.GOOD


def source_notebook() -> nbformat.NotebookNode:
    """An answer cell (``standardize``) and two one-point test cells, each a real hidden check."""
    cells = [
        nbformat.v4.new_markdown_cell("Write `standardize(X, mean, scale)`."),
        nbformat.v4.new_code_cell(f"### BEGIN SOLUTION\n{GOOD_ANSWER}### END SOLUTION",
                                  metadata=cell_metadata("answer", solution=True)),
        *(nbformat.v4.new_code_cell(cases.TEST_CELL,
                                    metadata=cell_metadata(gid, grade=True, points=1))
          for gid in ("test_f", "test_g")),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb
HTML_ASSIGNMENT = "98_html"


def snapshot(root: Path, skip: set[Path]) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed) -> (type, mode, uid, gid, content digest
    or link target), leaving out the folders in ``skip``. Iterative, so a deep tree is fine."""
    seen: dict[str, tuple] = {}
    stack = [root]
    while stack:
        here = stack.pop()
        for entry in os.scandir(here):
            path = Path(entry.path)
            if path in skip:
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                what = None
            seen[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                                 st.st_uid, st.st_gid, what)
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
    return seen


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = copy_course(tmp_path_factory.mktemp("hygiene") / "course")
    add_fixture_checks(root)
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(source_notebook(), root / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    result = nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    assert result.returncode == 0, result.stderr
    html_nb = source_notebook()
    html_nb.cells.append(nbformat.v4.new_markdown_cell(
        "YOUR ANSWER HERE", metadata=cell_metadata("written", grade=True, solution=True, points=1)))
    (root / "source" / HTML_ASSIGNMENT).mkdir(parents=True)
    nbformat.write(html_nb, root / "source" / HTML_ASSIGNMENT / f"{NOTEBOOK}.ipynb")
    result = nbgrader(root, "generate_assignment", HTML_ASSIGNMENT, "--force")
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    submit(course, "good", GOOD_ANSWER)
    first = nbgrader(course, "autograde", ASSIGNMENT)
    assert first.returncode == 0, first.stderr
    for name, case in cases.KERNEL_CASES.items():
        submit(course, name, case.answer.replace("COURSE_ROOT", str(course)))
    for name, case in cases.FOLDER_CASES.items():
        submit(course, name, case.answer)
        case.make(course / "submitted" / name / ASSIGNMENT, course)
    submit(course, "zz_after", GOOD_ANSWER)
    skip = {course / "autograded" / s for s in [*STUDENTS, "zz_after"]} | {course / "gradebook.db"}
    before = snapshot(course, skip)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        good_before = gb.find_submission(ASSIGNMENT, "good").score
    tmp = tmp_path_factory.mktemp("kernels")
    run = nbgrader(course, "autograde", ASSIGNMENT, env={"TMPDIR": str(tmp)})
    return {"root": course, "run": run, "before": before, "after": snapshot(course, skip),
            "tmp": tmp, "good_before": good_before}


def test_nothing_outside_the_new_autograded_folders_changed(graded):
    before, after = graded["before"], graded["after"]
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == [], changed[:20]
    assert before["nbgrader_config.py"][0] == stat.S_IFREG


def test_grading_finished_and_the_next_student_was_graded(graded):
    run = graded["run"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RecursionError" not in run.stderr
    assert score(graded["root"], "zz_after") == 2
    assert score(graded["root"], "good") == graded["good_before"] == 2


def test_kernel_text_reaches_the_terminal_without_control_sequences(graded):
    err = graded["run"].stderr
    assert "fd-level-stderr" in err and "fd-level-stdout" in err  # forwarded, cleaned
    assert "PWNED-title" not in err  # inside an OSC sequence: removed with it
    bad = sorted({f"{ord(ch):#x}" for ch in err if (ord(ch) < 32 and ch not in "\n\t")
                  or 0x7f <= ord(ch) <= 0x9f})
    assert bad == [], bad


def test_no_kernel_or_staging_folder_is_left_behind(graded):
    assert sorted(p.name for p in graded["tmp"].iterdir()) == []


@pytest.mark.parametrize("name", list(cases.KERNEL_CASES))
def test_what_the_kernel_plants_stays_in_its_scratch_copy(graded, name):
    root = graded["root"]
    assert score(root, name) == cases.KERNEL_CASES[name].score, graded["run"].stderr[-3000:]
    folder = root / "autograded" / name / ASSIGNMENT
    entries = [(p.name, stat.S_IFMT(p.lstat().st_mode)) for p in folder.iterdir()]
    assert entries == [(f"{NOTEBOOK}.ipynb", stat.S_IFREG)]  # only what nbgrader wrote
    nb = nbformat.read(autograded(root, name), as_version=4)
    assert len(nb.cells) == 4


@pytest.mark.parametrize("name", list(cases.FOLDER_CASES))
def test_submitted_folder_is_sanitized(graded, name):
    case = cases.FOLDER_CASES[name]
    root = graded["root"]
    assert score(root, name) == case.score, graded["run"].stderr[-3000:]
    nb = nbformat.read(autograded(root, name), as_version=4)
    flags = trusted_flags(nb)
    rejected = [reason for kind, reason in flags if kind == submission.REJECTED]
    if case.reason:
        assert len(rejected) == 1 and case.reason in rejected[0], flags
        assert "Submission rejected, graded 0" in nb.cells[0].source
    else:  # forged flags are stripped; what the front door found is said (tampering only)
        assert rejected == [] and {kind for kind, _ in flags} <= {"tampering"}, flags
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids.count("test_f") == 1 and ids.count("test_g") == 1
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_"):
            assert cell.cell_type == "code" and "tags" not in cell.metadata


# -- the pieces, without nbgrader -----------------------------------------------------------


def test_deep_json_is_a_rejection_not_a_recursion_error():
    for depth in (100, 10_000, 1_000_000):
        text = json.dumps({"nbformat": 4, "cells": []})[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
        with pytest.raises(submission.RejectedSubmission, match="nested deeper than 64"):
            submission.parse_notebook(text.encode(), "n.ipynb")


def test_scan_folder_never_opens_or_follows(tmp_path):
    folder = tmp_path / "student" / "a"
    folder.mkdir(parents=True)
    (folder / "ok.py").write_text("x = 1\n")
    assert submission.scan_folder(folder) == {"ok.py": 6}
    os.mkfifo(folder / "pipe")  # opening it would block this test forever
    with pytest.raises(submission.RejectedSubmission, match="pipe is a FIFO"):
        submission.scan_folder(folder)
    (folder / "pipe").unlink()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "student" / "b")
    with pytest.raises(submission.RejectedSubmission, match="b is a symbolic link"):
        submission.scan_folder(tmp_path / "student" / "b")


# -- the configuration is trusted ----------------------------------------------------------

KM_LINE = 'c.Execute.kernel_manager_class = "autograder.kernel.sandbox.SandboxedKernelManager"'
EDITS = {
    "plain_kernel_manager": (KM_LINE, 'c.Execute.kernel_manager_class = '
                                      '"jupyter_client.manager.AsyncKernelManager"'),
    "stock_execute": ("_TRUSTED = {Execute: [SandboxedExecute,", "_TRUSTED = {Execute: [Execute,"),
    "unsandboxed_in_config": (KM_LINE, KM_LINE + "\nc.SandboxedKernelManager.unsandboxed = True"),
    "syntax_error": (KM_LINE, KM_LINE + "\nthis is not python"),
    "raises": (KM_LINE, KM_LINE + "\nraise RuntimeError('broken config')"),
}


@pytest.fixture
def edited_config(course):
    """Edit the scratch course's nbgrader_config.py for one test, then put it back."""
    config = course / "nbgrader_config.py"
    original = config.read_text()

    def edit(name: str) -> None:
        old, new = EDITS[name]
        assert old in original
        config.write_text(original.replace(old, new))

    yield edit
    config.write_text(original)


@pytest.mark.parametrize("name", ["plain_kernel_manager", "stock_execute", "unsandboxed_in_config"])
def test_plain_nbgrader_refuses_a_config_without_the_sandbox(course, edited_config, name):
    submit(course, f"cfg_{name}", GOOD_ANSWER)
    edited_config(name)
    run = nbgrader(course, "autograde", ASSIGNMENT, f"--student=cfg_{name}")
    assert run.returncode != 0
    assert "Refusing to grade" in run.stderr, run.stderr[-2000:]
    assert not (course / "autograded" / f"cfg_{name}").exists()


@pytest.mark.parametrize("name", list(EDITS))
def test_runner_refuses_a_config_it_cannot_trust(course, edited_config, name):
    import subprocess
    import sys

    submit(course, f"run_{name}", GOOD_ANSWER)
    edited_config(name)
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--students", f"run_{name}",
         "--workers", "1", "--root", str(course)],
        cwd=course, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode != 0
    assert "Refusing to grade" in run.stderr, run.stderr[-2000:]
    if name in ("syntax_error", "raises"):
        assert "cannot be loaded" in run.stderr
    assert not (course / "autograded" / f"run_{name}").exists()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert f"run_{name}" not in {s.id for s in gb.students}


# -- what the instructor's browser renders -------------------------------------------------

HOSTILE_OUTPUTS = """\
from IPython.display import HTML, SVG, Javascript, Markdown, display
display(HTML('<script>PWNED(1)</script><img src=x onerror="PWNED(2)"><a href="javascript:PWNED(3)">a</a>'))
display(Markdown('[m](javascript:PWNED(4)) <img src=y onerror=PWNED(5)> <iframe src="javascript:PWNED(6)">'))
display(Javascript('PWNED(7)'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg"><script>PWNED(8)</script></svg>'))
handle = display(HTML('<b>fine</b>'), display_id='d')
handle.update(HTML('<script>PWNED(9)</script><p onmouseover="PWNED(10)">x</p>'))
print('<script>PWNED(11)</script>')
HTML('<body onload="PWNED(12)"><a href=" JaVaScRiPt:PWNED(13)">b</a></body>')
"""
HOSTILE_ANSWER = (
    "<script>PWNED(21)</script> <img src=z onerror=PWNED(22)> [x](javascript:PWNED(23)) "
    "\\[y\\](javascript:PWNED(24)) <a href='JaVaScRiPt:PWNED(25)'>a</a>\n\n"
    "```\n\n[z](javascript:PWNED(26))\n```\n\n<div onclick=PWNED(27)>\n\n*text*\n\n</div>"
)


class _Scripts(HTMLParser):
    """Everything in an HTML page that a browser would run: script bodies, event-handler
    attributes, and javascript:/vbscript:/data: URLs."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or (name in ("href", "src", "action", "formaction")
                                         and value.startswith(("javascript:", "vbscript:",
                                                               "data:text"))):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag in ("iframe", "embed", "object", "svg"):
            self.found.append(f"<{tag}>")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and "PWNED" in data:
            self.found.append(f"<script>{data[:80]}")


def runnable(html: str) -> list[str]:
    parser = _Scripts()
    parser.feed(html)
    return [f for f in parser.found if "pwned" in f.lower()]


@pytest.fixture(scope="module")
def html_graded(course):
    nb = nbformat.read(course / "release" / HTML_ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "answer":
            cell.source = HOSTILE_OUTPUTS + GOOD_ANSWER
        elif gid == "written":
            cell.source = HOSTILE_ANSWER
    folder = course / "submitted" / "html" / HTML_ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{NOTEBOOK}.ipynb")
    run = nbgrader(course, "autograde", HTML_ASSIGNMENT)
    assert run.returncode == 0, run.stderr[-3000:]
    feedback = nbgrader(course, "generate_feedback", HTML_ASSIGNMENT)
    assert feedback.returncode == 0, feedback.stderr[-3000:]
    return course


def test_the_hostile_html_was_really_there(course):
    """The oracle sees the attacks when nothing cleans them (nbconvert's own rendering)."""
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(HOSTILE_ANSWER)])
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert len(runnable(html)) >= 4, runnable(html)


def test_autograded_notebook_holds_no_student_script(html_graded):
    from nbconvert import HTMLExporter

    path = html_graded / "autograded" / "html" / HTML_ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    nb = nbformat.read(path, as_version=4)
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer")
    kinds = {k for out in answer.outputs for k in out.get("data", {})}
    assert kinds <= {"text/plain", "text/html"}, kinds
    assert "&lt;script&gt;PWNED(1)" in json.dumps(answer.outputs)  # shown as text, not run
    for template in ("lab", "classic"):
        html, _ = HTMLExporter(template_name=template).from_notebook_node(nb)
        assert runnable(html) == [], (template, runnable(html))
    with Gradebook(f"sqlite:///{html_graded / 'gradebook.db'}") as gb:
        assert gb.find_submission(HTML_ASSIGNMENT, "html").score == 2


def test_feedback_html_holds_no_student_script(html_graded):
    page = html_graded / "feedback" / "html" / HTML_ASSIGNMENT / f"{NOTEBOOK}.html"
    html = page.read_text()
    assert "PWNED(21)" in html  # the answer is there, as text
    assert runnable(html) == []


# -- the output cap and the grader's memory -----------------------------------------------

BIG_DISPLAY = ("from IPython.display import display\n"
               "display({'text/plain': 'x' * (100 * 2**20)}, raw=True)\n"
               "print('after the big display')\n" + GOOD_ANSWER)
UPDATED_DISPLAY = ("from IPython.display import display\n"
                   "h = display('small', display_id='d')\n"
                   "for _ in range(20):\n"
                   "    h.update('y' * 3 * 2**20)\n"
                   "display('z' * 1000, display_id='d')\n" + GOOD_ANSWER)
#: Runs nbgrader's command line and prints the process's peak resident memory. VmHWM, not
#: getrusage's ru_maxrss: Linux carries the ru_maxrss of the image a process replaced by exec
#: over into the new one, so a grader started by a large process (a pytest worker late in the
#: full suite, at 700 MB) reported that process's size. VmHWM is the peak of this image only.
PEAK_RSS = (
    "import sys\n"
    "from nbgrader.apps.nbgraderapp import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    status = open('/proc/self/status').read()\n"
    "    print('PEAK_RSS_KB', status.split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
)


def peak_rss_mb(stderr: str) -> float:
    """The grading process's own peak resident memory (not its kernels'), in MB."""
    return int(stderr.rsplit("PEAK_RSS_KB ", 1)[1].split()[0]) / 1000


def nbgrader_measured(root: Path, *args: str):
    import subprocess
    import sys

    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                  os.environ["PATH"]])}
    return subprocess.run([sys.executable, "-c", PEAK_RSS, *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def floods(course):
    for name, answer in (("mem_big_display", BIG_DISPLAY), ("mem_update_display", UPDATED_DISPLAY),
                         ("mem_zz_after", GOOD_ANSWER)):
        submit(course, name, answer)
    run = nbgrader_measured(course, "autograde", ASSIGNMENT, "--student=mem_*",
                            "--Execute.timeout=10")
    assert run.returncode == 0, run.stderr[-3000:]
    return course, run


def _answer_cell(course: Path, student: str):
    nb = nbformat.read(autograded(course, student), as_version=4)
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer")


def test_a_100_mib_message_is_refused_and_the_grader_stays_small(floods):
    course, run = floods
    peak = peak_rss_mb(run.stderr)
    print(f"grader peak RSS with a 100 MiB display message: {peak:.0f} MB")
    # the message alone is 105 MB, and receiving and decoding it took about 3.5 times that
    # (300 MiB: 1053 MB without a limit); the relay refuses it before the grader assembles any
    # of it (autograder.kernel.relay), so the grader stays at its ~140 MB baseline
    assert peak < 250, peak
    cell = _answer_cell(course, "mem_big_display")
    kinds = {k for k, _ in trusted_flags({"cells": [cell]})}
    assert kinds == {"refused-output"}, cell.outputs[:2]
    text = json.dumps(cell.outputs)
    assert "xxxxxxxxxx" not in text  # the refused message is never stored
    # ... and only that message: the rest of the cell arrives, the notebook goes on
    assert "after the big display" in text
    assert score(course, "mem_big_display") == 2
    assert score(course, "mem_zz_after") == 2


def test_update_display_is_within_the_cap(floods):
    course, _ = floods
    cell = _answer_cell(course, "mem_update_display")
    assert {k for k, _ in trusted_flags({"cells": [cell]})} == {"output-truncated"}
    assert autograded(course, "mem_update_display").stat().st_size < 3 * 2**20
    assert score(course, "mem_update_display") == 2
