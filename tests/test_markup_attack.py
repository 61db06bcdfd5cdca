"""Script in the Formgrader through output metadata (issue 19 §3), graded and opened for real.

Assignment 02 in a scratch copy of the course. ``mallory`` submits ada's complete, correct answers
(the demo's sample) with the lines of ``tests/hostile/markup_cases.py`` appended to one answer
cell: outputs whose metadata nbconvert's classic template turned into a live ``onerror`` that
writes a file into the course root through the Jupyter contents API. ``honest`` submits the same
code without those lines, ``zz_next`` after them. ``nbgrader autograde`` grades these three;
``python -m autograder grade`` then grades ``mallory_r`` and ``zz_next_r`` (the same two
submissions) through the runner.

Then a real JupyterLab server (tests/browser.py) serves a copy of the course and Debian's
Chromium, driven by Playwright, opens the Formgrader page of each hostile submission, and the
feedback page from ``nbgrader generate_feedback``. What would show that the student's script ran:
its console message, ``window.__markup_attack``, a ``PUT`` to ``/api/contents/``, the file in the
course root, or any other change there. Two more pages of that copy test the layers one at a
time: the template on outputs whose metadata was put back by hand (as if nothing had cleaned it),
and the Content-Security-Policy on a ``text/html`` output with an inline handler (as if the HTML
sanitizer had missed it). A second server, on a copy with the fix disabled (nbgrader's own
templates, no sanitizer in the feedback), shows that the same watchers see the attack when it
works: the script runs and the file is written (HTTP 201), as the issue observed.

MathJax's CDN is answered by a stub script (the machine is offline), so that the policy's
allowance for it is exercised and the Formgrader's own JavaScript runs to its end.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, env_with_venv, jupyter_lab, run_nbgrader
from conftest import copy_course, load_hostile_cases, requires_bwrap
from nbformat.v4 import new_output

from autograder.kernel.sanitize_html import UNSAFE_MARKUP
from autograder.notebooks import trusted_flags
from autograder.tools.demo import build_submission, load_samples

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
from playwright.sync_api import sync_playwright  # noqa: E402

pytestmark = [pytest.mark.nbgrader, requires_bwrap]

cases = load_hostile_cases("markup_cases")
ASSIGNMENT, NOTEBOOK = "02_batchnorm_forward", "batchnorm_forward.ipynb"
STEM = Path(NOTEBOOK).stem
TRICKED_CELL = "batchnorm_forward"  # the answer cell the lines are appended to
WRITTEN_ANSWER = "answer_test_mode"  # 02's manually graded cell
BY_NBGRADER = {"honest": False, "mallory": True, "zz_next": False}  # student -> tricked
BY_RUNNER = {"mallory_r": True, "zz_next_r": False}
#: Watches the page's Content-Security-Policy violations from before its first script.
WATCH = ("window.__violations = [];"
         "document.addEventListener('securitypolicyviolation',"
         " function (e) { window.__violations.push(e.violatedDirective); });")
#: What the test answers for MathJax's CDN: enough MathJax for formgrade.js to finish.
MATHJAX_STUB = ("window.__mathjax_stub = true;"
                "window.MathJax = Object.assign(window.MathJax || {}, {Hub: {Queue: function () {},"
                " Startup: {signal: {Interest: function (f) { f('End'); }}}}});")
MATHJAX_CDN = re.compile(r"^https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/")


# ----------------------------------------------------------------------------- grading
def submit(root: Path, student: str, tricked: bool) -> None:
    answers = dict(load_samples(NOTEBOOK).STUDENTS["ada"]["answers"])
    if tricked:
        answers[TRICKED_CELL] += "\n" + cases.TRICK
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(build_submission(root / "release" / ASSIGNMENT / NOTEBOOK, answers),
                   folder / NOTEBOOK)


@pytest.fixture(scope="module")
def attacked(tmp_path_factory) -> Path:
    """The course after both grading paths and the feedback of the nbgrader-graded attacker."""
    root = copy_course(tmp_path_factory.mktemp("markup") / "course")
    for student, tricked in BY_NBGRADER.items():
        submit(root, student, tricked)
    run_nbgrader(root, [["generate_assignment", ASSIGNMENT, "--force"],
                        ["autograde", ASSIGNMENT]])
    for student, tricked in BY_RUNNER.items():
        submit(root, student, tricked)
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--workers", "1",
         "--students", *BY_RUNNER], cwd=root, env=env_with_venv(), capture_output=True,
        text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    run_nbgrader(root, [["generate_feedback", ASSIGNMENT, "--student=mallory"]])
    return root


def autograded(root: Path, student: str) -> nbformat.NotebookNode:
    return nbformat.read(root / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)


def scores(root: Path) -> dict[str, tuple[float, float]]:
    """Each student's score and the assignment's autograded points, from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {s.student.id: (s.score, s.max_code_score)
                for s in gb.find_assignment(ASSIGNMENT).submissions}


@pytest.mark.parametrize("student", ["mallory", "mallory_r"])
def test_autograded_outputs_hold_no_student_markup(attacked, student):
    nb = autograded(attacked, student)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == TRICKED_CELL)
    shown = [o for o in cell.outputs if o.get("data", {}) in [d for d, _ in cases.DISPLAYS]]
    assert len(shown) == len(cases.DISPLAYS), "the trick's outputs are not in the notebook"
    for out in (o for c in nb.cells for o in c.get("outputs", [])):
        metadata = out.get("metadata", {})
        sizes = [where[k] for where in (metadata, *metadata.values()) if isinstance(where, dict)
                 for k in ("width", "height") if k in where]
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sizes), sizes
        for key in ("filenames", "isolated", "anything"):
            assert key not in str(list(metadata.items())), metadata
    kinds = [kind for kind, _ in trusted_flags(nb)]
    assert kinds.count(UNSAFE_MARKUP) == 1, trusted_flags(nb)


def test_honest_work_is_not_flagged(attacked):
    for student in ("honest", "zz_next", "zz_next_r"):
        assert UNSAFE_MARKUP not in [k for k, _ in trusted_flags(autograded(attacked, student))]


def test_the_trick_scores_no_more_and_the_next_student_is_graded(attacked):
    graded = scores(attacked)
    honest, max_score = graded["honest"]
    # ada's answers: every autograded point (the demo's expectation); the written answer waits
    assert honest == max_score > 0, graded
    for student in ("mallory", "mallory_r"):
        assert graded[student][0] <= honest, graded
    for student in ("zz_next", "zz_next_r"):
        assert graded[student] == (honest, max_score), graded


# ----------------------------------------------------------------------------- the browser
def add_outputs(root: Path, student: str, outputs: list) -> None:
    """Append ``outputs`` to the tricked cell of ``student``'s autograded notebook by hand."""
    path = root / "autograded" / student / ASSIGNMENT / NOTEBOOK
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == TRICKED_CELL)
    cell.outputs.extend(outputs)
    nbformat.write(nb, path)


def uncleaned_outputs() -> list:
    """The trick's outputs with their metadata as the kernel sent it."""
    return [new_output("display_data", data=data, metadata=metadata)
            for data, metadata in cases.DISPLAYS]


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (but the gradebook, which the Formgrader writes) -> digest."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.name.startswith("gradebook.db")}


def submission_id(root: Path, student: str) -> str:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return gb.find_submission_notebook(STEM, ASSIGNMENT, student).id


@pytest.fixture(scope="module")
def served(attacked, tmp_path_factory):
    """A copy of the graded course served by JupyterLab: ``zz_next`` with the trick's outputs as
    the kernel sent them, ``honest`` with an inline handler in an HTML output (both by hand), and
    the feedback of ``zz_next`` generated from that (the sanitizer cleans it again)."""
    root = tmp_path_factory.mktemp("served") / "course"
    shutil.copytree(attacked, root, symlinks=True)
    add_outputs(root, "zz_next", uncleaned_outputs())
    add_outputs(root, "honest", [new_output("display_data",
                                            data={"text/html": cases.INLINE_HANDLER_HTML})])
    run_nbgrader(root, [["generate_feedback", ASSIGNMENT, "--student=zz_next"]])
    with jupyter_lab(root, tmp_path_factory.mktemp("served-lab")) as lab:
        yield lab


#: The fix disabled in a course copy: nbgrader's own templates, and no sanitizer in the feedback.
UNFIXED = """
import nbgrader as _nbgrader
c.HTMLExporter.extra_template_basedirs = [
    str(Path(_nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates")]
c.GenerateFeedback.preprocessors = [p for p in c.GenerateFeedback.preprocessors
                                    if p is not SanitizeStudentHTML]
"""


@pytest.fixture(scope="module")
def unfixed(attacked, tmp_path_factory):
    """A copy of the graded course with the fix disabled, ``zz_next`` holding the trick's outputs
    as the kernel sent them, served by JupyterLab."""
    root = tmp_path_factory.mktemp("unfixed") / "course"
    shutil.copytree(attacked, root, symlinks=True)
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write(UNFIXED)
    add_outputs(root, "zz_next", uncleaned_outputs())
    run_nbgrader(root, [["generate_feedback", ASSIGNMENT, "--student=zz_next"]])
    with jupyter_lab(root, tmp_path_factory.mktemp("unfixed-lab")) as lab:
        yield lab


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _answer(route) -> None:
    """MathJax's CDN gets the stub; nothing else leaves the machine."""
    if MATHJAX_CDN.match(route.request.url):
        route.fulfill(status=200, content_type="text/javascript", body=MATHJAX_STUB)
    elif route.request.url.startswith(("http://127.0.0.1:", "file://")):
        route.continue_()
    else:
        route.abort()


@contextmanager
def browsing(chromium, lab=None):
    """A browser context logged in to ``lab`` as the instructor is (JupyterLab's page sets the
    session and ``_xsrf`` cookies), watching policy violations."""
    context = chromium.new_context()
    try:
        context.add_init_script(WATCH)
        context.route("**/*", _answer)
        if lab is not None:
            assert context.request.get(lab.lab_url("lab")).ok
            assert "_xsrf" in {c["name"] for c in context.cookies()}
        yield context
    finally:
        context.close()


@dataclass
class Visit:
    """What a page did: console messages, uncaught errors, PUTs to the contents API (and their
    answers), policy violations, whether the student's script and MathJax's stub ran."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    puts: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    attack_ran: bool = False
    mathjax_ran: bool = False

    @property
    def attacked(self) -> bool:
        return (self.attack_ran or bool(self.puts)
                or any(cases.MARKER in m for m in self.console + self.errors))


def visit(context, url: str, page=None) -> tuple[Visit, object]:
    """Open ``url`` and watch it until its load event (every image loaded or failed, and its
    handlers run) and, on the server, until a request the test sends after that is answered:
    any request the page sent before is seen by then."""
    page = page or context.new_page()
    seen = Visit()
    page.on("console", lambda m: seen.console.append(m.text))
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    page.on("request", lambda r: seen.puts.append(r.url)
            if r.method == "PUT" and "/api/contents/" in r.url else None)
    page.on("response", lambda r: seen.answers.append(r.status)
            if r.request.method == "PUT" and "/api/contents/" in r.url else None)
    page.goto(url)
    if url.startswith("http"):
        assert page.evaluate("() => fetch('/api/status').then(r => r.status)") == 200
    seen.violations = page.evaluate("window.__violations")
    seen.attack_ran = page.evaluate("window.__markup_attack === true")
    seen.mathjax_ran = page.evaluate("window.__mathjax_stub === true")
    return seen, page


def formgrader_url(lab, student: str) -> str:
    return f"{lab.url}formgrader/submissions/{submission_id(lab.root, student)}"


def feedback_url(lab, student: str) -> str:
    return (lab.root / "feedback" / student / ASSIGNMENT / f"{STEM}.html").as_uri()


def test_without_the_fix_the_script_runs_and_writes_into_the_course(unfixed, chromium):
    """The watchers see the attack when nothing stops it (the issue's observation)."""
    with browsing(chromium, unfixed) as context:
        page = context.new_page()
        with page.expect_console_message(lambda m: f"{cases.MARKER}-status-" in m.text):
            seen, _ = visit(context, formgrader_url(unfixed, "zz_next"), page)
        assert seen.attack_ran and seen.puts and seen.attacked
        assert f"{cases.MARKER}-status-201" in seen.console, seen.console
        assert (unfixed.root / cases.WRITTEN).read_text() == "written by a student"
        feedback, _ = visit(context, feedback_url(unfixed, "zz_next"))
        assert feedback.attack_ran and cases.MARKER in feedback.console


@pytest.mark.parametrize("student", ["mallory", "mallory_r", "zz_next"])
def test_formgrader_page_runs_no_script_of_the_submission(served, chromium, student):
    """mallory and mallory_r as graded (nbgrader, runner); zz_next with the trick's metadata put
    back by hand: the course's template alone keeps it text."""
    before = snapshot(served.root)
    with browsing(chromium, served) as context:
        seen, page = visit(context, formgrader_url(served, student))
        assert not seen.attacked, seen
        assert seen.errors == [] and seen.violations == [], seen  # the Formgrader's own JS ran
        assert seen.mathjax_ran and page.evaluate("typeof toggle_name") == "function"
        assert page.locator("img[src^='data:image/png']").count() >= 2  # the outputs are there
        # the Formgrader works: a manual score is saved through its API
        score = page.locator(".nbgrader_cell", has=page.locator(f"#{WRITTEN_ANSWER}"))
        with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url
                                  and r.request.method == "PUT") as response:
            score.locator("input.score").fill("1")
            score.locator("input.score").press("Tab")
        assert response.value.ok
    assert not (served.root / cases.WRITTEN).exists()
    assert snapshot(served.root) == before


def test_the_policy_stops_an_inline_handler_the_sanitizer_missed(served, chromium):
    with browsing(chromium, served) as context:
        seen, page = visit(context, formgrader_url(served, "honest"))
        assert page.locator("img[onerror]").count() == 1  # the handler is in the page...
        assert "script-src-attr" in seen.violations, seen  # ...and the browser refused to run it
        assert not seen.attacked, seen
    assert not (served.root / cases.WRITTEN).exists()


@pytest.mark.parametrize("student", ["mallory", "zz_next"])
def test_feedback_page_runs_no_script_of_the_submission(attacked, served, chromium, student):
    """mallory's feedback as generated; zz_next's generated from the metadata put back by hand."""
    root = attacked if student == "mallory" else served.root
    page_file = root / "feedback" / student / ASSIGNMENT / f"{STEM}.html"
    assert "Content-Security-Policy" in page_file.read_text()
    with browsing(chromium) as context:
        seen, page = visit(context, page_file.as_uri())
        assert not seen.attacked, seen
        assert seen.errors == [] and seen.violations == [], seen
        assert seen.mathjax_ran  # the page's own scripts ran under the policy
        assert page.evaluate("window.MathJax.tex2jax.processEscapes") is True
        assert page.locator("img[src^='data:image/png']").count() >= 2
    assert os.listdir(root / "feedback" / student / ASSIGNMENT) == [f"{STEM}.html"]
