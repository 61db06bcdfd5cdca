"""The student's, the self-learner's and the instructor's workflows in a real browser.

A real JupyterLab server (with nbgrader's lab extension and Formgrader) runs in a scratch copy of
the course, whose gradebook is built as ``make release`` builds it and holds one autograded
sample submission; Debian's chromium, driven by Playwright, does what a person would do.

The tests of this module run in order on one browser page: the student makes a mistake
(``test_1``), the self-learner checks that saved notebook in a terminal (``test_2``), the student
fixes it (``test_3``), and the instructor grades (``test_4``). They wait on page state, never on
time. Screenshots of the key steps go to the artifact folder (``BN_ARTIFACTS``, or a pytest
temporary folder, printed); ``BN_SCREENSHOTS=docs`` (``make screenshots``) also refreshes the
README's two pictures there.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, jupyter_lab, run_nbgrader
from conftest import copy_course

from autograder.course_dir import assignments
from autograder.tools.demo import build_submission, load_samples

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.requires_system("chromium")  # Debian's, driven by Playwright
expect.set_options(timeout=60_000)  # page state on a busy 2-core machine; cells get CELL_TIMEOUT

ASSIGNMENT, NOTEBOOK = "02_batchnorm_forward", "batchnorm_forward.ipynb"
NB_PATH = f"release/{ASSIGNMENT}/{NOTEBOOK}"
GRADED_STUDENT = "ben"  # the sample whose autograded submission the instructor opens (M7)
WRITTEN = "answer_test_mode"  # the written answer of 02 that a person grades
MISTAKE = '''def batch_stats(x):
    mean = x.mean(axis=0)
    var = x.var(axis=0, ddof=1)
    return mean, var'''
FIXED = MISTAKE.replace("ddof=1", "ddof=0")
#: Cells of the release notebook (by nbgrader grade_id) the student fills in after the fix, with
#: the instructor's answers.
OTHER_ANSWERS = ("normalize", "scale_shift", "batchnorm_forward", "spatial_batchnorm_forward",
                 WRITTEN)
CELL_TIMEOUT = 120_000  # ms: one cell, or one validation of the whole notebook, on a busy machine
README_PICTURES = {"visible-test": "visible-test.png", "formgrader": "formgrader-diagnosis.png"}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("BN_ARTIFACTS") or tmp_path_factory.mktemp("browser-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course copy with every assignment generated (as ``make release``) and one sample
    submission of 02 autograded by nbgrader."""
    root = copy_course(tmp_path_factory.mktemp("browser-course"))
    answers = load_samples(NOTEBOOK).STUDENTS[GRADED_STUDENT]["answers"]
    folder = root / "submitted" / GRADED_STUDENT / ASSIGNMENT
    folder.mkdir(parents=True)
    build = build_submission(root / NB_PATH, answers)
    import nbformat

    nbformat.write(build, folder / NOTEBOOK)
    steps = [["generate_assignment", a, "--force"] for a in assignments(root)]
    steps.append(["autograde", ASSIGNMENT, "--force", f"--student={GRADED_STUDENT}"])
    run_nbgrader(root, steps)
    return root


@pytest.fixture(scope="module")
def lab(course, tmp_path_factory):
    with jupyter_lab(course, tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.goto(lab.lab_url())
        expect(page.locator(".jp-DirListing-content")).to_be_visible()
        yield page
        context.close()
        browser.close()


# ----------------------------------------------------------------------------- page helpers
def shot(page, artifacts: Path, name: str, locator=None) -> Path:
    """Screenshot the page (or one element) as ``<name>.png``; README pictures are copied to
    ``BN_SCREENSHOTS`` when it is set."""
    path = artifacts / f"{name}.png"
    (locator or page).screenshot(path=str(path))
    target = os.environ.get("BN_SCREENSHOTS")
    if target and name in README_PICTURES:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / README_PICTURES[name])
    return path


def notebook(page):
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook")


def cell(page, grade_id: str):
    """The notebook cell whose nbgrader grade_id is ``grade_id`` (found by its position in the
    release notebook: the cells are all in the page, windowing is off)."""
    return notebook(page).locator(".jp-Cell").nth(_index(grade_id))


def _cell_count() -> int:
    """How many cells the release notebook has: every one is in the page (no windowing)."""
    import nbformat

    from autograder.course_dir import ROOT

    return len(nbformat.read(ROOT / NB_PATH, as_version=4).cells)


def _index(grade_id: str) -> int:
    import nbformat

    from autograder.course_dir import ROOT

    nb = nbformat.read(ROOT / NB_PATH, as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    return ids.index(grade_id)


def type_into(page, grade_id: str, code: str) -> None:
    """Replace the source of a cell through its editor, as typing (or pasting) would; a rendered
    markdown cell is opened for editing with a double click first."""
    target = cell(page, grade_id)
    if "jp-MarkdownCell" in (target.get_attribute("class") or ""):
        target.locator(".jp-RenderedMarkdown").dblclick()
    editor = target.locator(".cm-content")
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(code)
    expect(editor).to_contain_text(code.splitlines()[0])


def run(page, grade_id: str) -> None:
    """Run one cell with Shift+Enter and wait until the kernel has finished it."""
    target = cell(page, grade_id)
    target.locator(".jp-InputArea-prompt").click()
    prompt = target.locator(".jp-InputArea-prompt")
    before = prompt.inner_text()
    page.keyboard.press("Shift+Enter")
    expect(prompt).not_to_have_text(before, timeout=CELL_TIMEOUT)
    expect(prompt).to_have_text(re.compile(r"\[\d+\]"), timeout=CELL_TIMEOUT)


def output(page, grade_id: str) -> str:
    return cell(page, grade_id).locator(".jp-OutputArea").inner_text()


def save(page, notebook: Path, contains: str) -> None:
    """Save with Ctrl+S and wait until the file on disk holds ``contains`` (what was typed)."""
    page.keyboard.press("ControlOrMeta+s")
    expect(page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")).to_have_count(0)
    deadline = time.monotonic() + CELL_TIMEOUT / 1000
    while contains not in notebook.read_text(encoding="utf-8"):  # the event: the file is written
        if time.monotonic() > deadline:
            pytest.fail(f"{notebook} was not saved with {contains!r} after Ctrl+S")
        time.sleep(0.1)


def validate(page, artifacts: Path, name: str) -> tuple[str, str]:
    """Click nbgrader's Validate button; return the dialog's kind ("error" or "success") and
    text, and close the dialog."""
    page.locator(".jp-NotebookPanel:visible jp-button.validate-button").click()
    dialog = page.locator(".nbgrader-ErrorDialog, .nbgrader-SuccessDialog")
    expect(dialog).to_have_count(1, timeout=CELL_TIMEOUT)
    kind = "error" if "nbgrader-ErrorDialog" in (dialog.get_attribute("class") or "") else "success"
    text = dialog.inner_text()
    shot(page, artifacts, name)
    dialog.locator("button.jp-Dialog-button").first.click()
    expect(dialog).to_have_count(0)
    return kind, text


def instructor_solution(grade_id: str) -> str:
    """The instructor's answer to a cell (``source/``, solution markers removed): a complete,
    correct answer that the visible tests accept."""
    import nbformat

    from autograder.course_dir import ROOT

    nb = nbformat.read(ROOT / "source" / ASSIGNMENT / NOTEBOOK, as_version=4)
    source = next(c.source for c in nb.cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(ln for ln in source.splitlines()
                     if ln.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def _numbers(line: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", line)])


# ----------------------------------------------------------------------------- the workflows
def test_1_student_reads_the_visible_test_message(page, artifacts, lab):
    for name in NB_PATH.split("/"):  # release, 02_batchnorm_forward, batchnorm_forward.ipynb
        listing = page.locator(".jp-DirListing-content")
        listing.locator(".jp-DirListing-itemText").get_by_text(name, exact=True).dblclick()
    expect(notebook(page).locator(".jp-Cell")).to_have_count(_cell_count())
    # the kernel is connected and idle (a cell run before that would not run)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=CELL_TIMEOUT)
    run(page, "setup")
    type_into(page, "batch_stats", MISTAKE)
    run(page, "batch_stats")
    run(page, "batch_stats_visible")
    text = output(page, "batch_stats_visible")
    lines = [ln.strip() for ln in text.splitlines()]  # the message's own lines, not the traceback's
    yours = next(ln for ln in lines if ln.startswith("yours:"))
    expected = next(ln for ln in lines if ln.startswith("expected:"))
    assert lines.index(expected) == lines.index(yours) + 1  # side by side
    x = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]])  # the visible test's batch
    assert "var (divided by N = 3" in text and "is wrong" in text
    np.testing.assert_allclose(_numbers(yours), np.var(x, axis=0, ddof=1), rtol=1e-6)  # [4, 12]
    np.testing.assert_allclose(_numbers(expected), np.var(x, axis=0), rtol=1e-6)
    shot(page, artifacts, "visible-test", cell(page, "batch_stats_visible"))
    save(page, lab.root / NB_PATH, "x.var(axis=0, ddof=1)")
    kind, dialog = validate(page, artifacts, "validate-failed")
    assert kind == "error" and "The following cell failed" in dialog, dialog
    assert 'check_close("var (divided by N = 3' in dialog  # the failing visible test
    assert "yours:" in dialog and "expected:" in dialog, dialog  # and its message


def test_2_self_learner_reads_the_diagnosis_in_a_terminal(page, artifacts, lab):
    # a screen tall enough for the whole report (xterm keeps only the visible rows in the page)
    page.set_viewport_size({"width": 1400, "height": 2400})
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile("^File$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^New$")).hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Terminal$")).click()
    terminal = page.locator(".jp-Terminal:visible")
    expect(terminal).to_be_visible()
    terminal.click()
    page.keyboard.type(f"python -m autograder check {NB_PATH}; echo self-check exit=$?\n")
    screen = terminal.locator(".xterm-accessibility-tree, .xterm-rows").first
    expect(screen).to_contain_text(re.compile(r"self-check exit=\d"), timeout=CELL_TIMEOUT)
    shot(page, artifacts, "terminal-self-check")
    text = screen.inner_text()
    page.set_viewport_size({"width": 1400, "height": 1000})
    assert "self-check exit=1" in text, text
    assert "Self-check of batchnorm_forward.ipynb" in text, text  # the top of the report is there
    batch_stats = text[text.index("test_batch_stats:"):text.index("test_normalize:")]
    assert "Diagnosis M1" in batch_stats and "yours:" in batch_stats and "expected:" in batch_stats


def test_3_student_fixes_it_and_validation_passes(page, artifacts, lab):
    page.locator(".lm-TabBar-tab", has_text=NOTEBOOK).click()
    type_into(page, "batch_stats", FIXED)
    run(page, "batch_stats")
    run(page, "batch_stats_visible")
    text = output(page, "batch_stats_visible")
    assert "is wrong" not in text and "Error" not in text
    assert "ok  var" in text and "ok  x is unchanged" in text or "ok  x" in text
    shot(page, artifacts, "visible-test-passed", cell(page, "batch_stats_visible"))
    for grade_id in OTHER_ANSWERS:
        type_into(page, grade_id, instructor_solution(grade_id))
    save(page, lab.root / NB_PATH, "x.var(axis=0, ddof=0)")
    kind, dialog = validate(page, artifacts, "validate-passed")
    assert kind == "success" and "passes all the tests" in dialog, dialog


def test_4_instructor_grades_in_the_formgrader(page, artifacts, course):
    from nbgrader.api import Gradebook

    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
    page.locator('#jp-mainmenu-nbgrader li[data-command="nbgrader:open-formgrader"]').click()
    frame = page.frame_locator("iframe[src*='formgrader']")
    table = frame.locator("#main-table")
    for name in assignments(course):
        expect(table).to_contain_text(name)
    shot(page, artifacts, "formgrader-assignments")
    frame.get_by_role("link", name="Manual Grading").click()
    frame.get_by_role("link", name=ASSIGNMENT, exact=True).click()
    frame.get_by_role("link", name=Path(NOTEBOOK).stem, exact=True).click()
    frame.locator("td a", has_text=re.compile("Submission #1|" + GRADED_STUDENT)).first.click()
    diagnosis = frame.locator(".output_subarea, .jp-OutputArea-output", has_text="Diagnosis M7").first
    expect(diagnosis).to_be_visible(timeout=CELL_TIMEOUT)
    diagnosis.scroll_into_view_if_needed()
    # the report wraps inside its box: no line of it runs off the right edge (issue 20)
    overflow = diagnosis.evaluate("e => [...e.querySelectorAll('pre')].map("
                                  "p => p.scrollWidth - p.clientWidth)")
    assert overflow and max(overflow) <= 1, overflow
    shot(page, artifacts, "formgrader")
    score = frame.locator(".nbgrader_cell", has=frame.locator(f"#{WRITTEN}")).locator("input.score")
    with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url
                              and r.request.method == "PUT") as response:
        score.fill("1.5")
        score.press("Tab")
    assert response.value.ok
    shot(page, artifacts, "formgrader-manual-score")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grade = gb.find_grade(WRITTEN, Path(NOTEBOOK).stem, ASSIGNMENT, GRADED_STUDENT)
        assert grade.manual_score == 1.5
        assert not grade.needs_manual_grade
