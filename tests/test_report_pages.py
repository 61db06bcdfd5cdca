"""The similarity page and the report's item analysis, opened in headless Chromium (Debian's
``/usr/bin/chromium`` through Playwright, as tests/test_browser.py; nothing is downloaded).

The similarity course is tests/test_similarity.py's (a disguised copy of ada, independent
solutions, the untouched release) plus a student whose code holds markup; the report's course
is a gradebook of 30 students on the real cells of 02, written through nbgrader's API, with
their autograded notebooks carrying the diagnoses. ``BN_SCREENSHOTS=docs`` also writes the
README's two pictures (``docs/similarity.png``, ``docs/item-analysis.png``).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import nbformat
import pytest
from browser import CHROMIUM, CHROMIUM_ARGS
from nbformat.v4 import new_output
from playwright.sync_api import expect, sync_playwright
from test_similarity import ASSIGNMENT, DISGUISED, NOTEBOOK, RELEASE, make_course

from autograder.samples import batchnorm_forward as samples
from autograder.tools import report, similarity

pytestmark = pytest.mark.nbgrader
PICTURES = {"similarity": "similarity.png", "item-analysis": "item-analysis.png"}
#: A student's answer that would run script if the page rendered it as markup.
MARKUP = ('def batch_stats(x):\n    s = "<img src=x onerror=\\"window.pwned=1\\">"\n'
          '    return x.mean(axis=0), x.var(axis=0)\n')

#: More code in trent's cell, so that mallory and trent share part of it, not all.
EXTRA = ('\n\ndef helper(values, weights):\n    total = 0.0\n    for v, w in zip(values, weights):\n'
         '        total += v * w * w - v\n    return total / len(values) + max(weights)\n')


def _shot(locator, folder: Path, name: str) -> None:
    path = folder / PICTURES[name]
    locator.screenshot(path=str(path))
    target = os.environ.get("BN_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / PICTURES[name])


@pytest.fixture(scope="module")
def browser_page():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(60_000)
        yield context.new_page()
        context.close()
        browser.close()


def _item_course(root: Path, n: int = 30) -> Path:
    """A course with the release of 02, a gradebook of ``n`` students on its cells (seeded
    scores; weaker students fail the later cells more often) and autograded notebooks whose test
    cells print the diagnoses."""
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    course = make_course(root, {})
    release = nbformat.read(RELEASE, as_version=4)
    cells = [(c.metadata["nbgrader"]["grade_id"], c.cell_type, c.metadata["nbgrader"]["points"])
             for c in release.cells if c.metadata.get("nbgrader", {}).get("grade")]
    rng = random.Random(0)
    mistakes = {"test_batch_stats": "M1", "test_normalize": "M3", "test_batchnorm_forward": "M7",
                "test_spatial_batchnorm_forward": "M11"}
    stem = NOTEBOOK.removesuffix(".ipynb")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="pages") as gb, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        gb.add_assignment(ASSIGNMENT)
        gb.add_notebook(stem, ASSIGNMENT)
        for name, kind, points in cells:
            gb.add_grade_cell(name, stem, ASSIGNMENT, max_score=points, cell_type=kind)
        for i in range(n):
            student = f"student{i:02d}"
            ability = rng.random()
            gb.add_student(student)
            gb.add_submission(ASSIGNMENT, student)
            nb = nbformat.read(RELEASE, as_version=4)
            by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
            for j, (name, kind, points) in enumerate(cells):
                grade = gb.find_grade(name, stem, ASSIGNMENT, student)
                ok = rng.random() < ability + 0.5 - 0.1 * j
                value = points if ok else round(points * rng.random() * ability, 1)
                if kind == "code":
                    grade.auto_score = value
                    if not ok and name in mistakes:
                        by_id[name].outputs.append(new_output(
                            "stream", name="stdout", text=f"Diagnosis {mistakes[name]}: ...\n"))
                else:
                    grade.manual_score = value
                grade.needs_manual_grade = False
            folder = course / "autograded" / student / ASSIGNMENT
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / NOTEBOOK)
        gb.db.commit()
    return course


def test_similarity_page_shows_shared_code_side_by_side_as_text(browser_page, tmp_path):
    ada = {k: v for k, v in samples.STUDENTS["ada"]["answers"].items()
           if not k.startswith("answer_")}
    course = make_course(tmp_path / "sim", {"ada": ada, "copy_of_ada": DISGUISED,
                                            "mallory": {"batch_stats": MARKUP},
                                            "trent": {"batch_stats": MARKUP + EXTRA},
                                            "untouched": {}})
    result = similarity.compare(ASSIGNMENT, course)
    _, page_path = similarity.write(result, course / "reports" / ASSIGNMENT)
    page = browser_page
    page.goto(page_path.as_uri())
    expect(page.locator("text=What the number measures")).to_be_visible()
    expect(page.locator("#pairs tbody tr").first).to_contain_text("copy_of_ada")
    assert page.locator("mark").count() > 10
    assert page.evaluate("window.pwned") is None  # the student's markup stayed text
    expect(page.locator("pre", has_text="onerror").first).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 1500})
    _shot(page, tmp_path, "similarity")


def test_item_analysis_figure_is_in_the_report(browser_page, tmp_path):
    course = _item_course(tmp_path / "items")
    assert report.main([ASSIGNMENT, "--root", str(course)]) == 0
    page = browser_page
    page.goto((course / "reports" / ASSIGNMENT / "report.html").as_uri())
    rows = page.locator("#items tbody tr")
    expect(rows).to_have_count(6)  # five test cells and the written answer
    figure = page.locator("img[alt^='Heat map']")
    expect(figure).to_be_visible()
    assert page.evaluate("document.querySelector(\"img[alt^='Heat map']\").naturalWidth") > 300
    heading = page.locator("h2", has_text="Item analysis")
    section = page.locator("xpath=//h2[text()='Item analysis']/following-sibling::img[1]")
    heading.scroll_into_view_if_needed()
    _shot(section, tmp_path, "item-analysis")
