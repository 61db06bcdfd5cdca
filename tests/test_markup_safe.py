"""Output metadata and the Formgrader/feedback templates never turn student values into markup
(issue 19 §3): the cleaner of ``autograder/kernel/sanitize_html.py`` on hostile, nested, odd and
huge metadata, and the course's templates rendered by nbconvert on a notebook nothing cleaned.

The browser half (the Formgrader and the feedback page of a hostile submission in Chromium,
graded through nbgrader and the runner) is ``tests/test_markup_attack.py``.
"""

from __future__ import annotations

import base64
import copy
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import nbgrader
import pytest
from conftest import cell_metadata, load_hostile_cases
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from traitlets.config import Config

from autograder.course_dir import ROOT, load_config
from autograder.kernel.sanitize_html import (
    MAX_DIMENSION,
    UNSAFE_MARKUP,
    SanitizeStudentHTML,
    clean_code_cell,
    clean_output_metadata,
)
from autograder.notebooks import trusted_flags

cases = load_hostile_cases("markup_cases")
#: A 1x1 PNG: honest image data.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
       "rkJggg==")
NBGRADER_TEMPLATES = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"


# ----------------------------------------------------------------------------- the cleaner
def honest_metadata() -> list[tuple[dict, dict]]:
    """``(data, metadata)`` as IPython itself formats honest outputs: a retina matplotlib figure,
    an ``Image`` with every option, a collapsed ``JSON`` view."""
    import matplotlib
    import matplotlib.pyplot as plt
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import retina_figure
    from IPython.display import JSON, Image

    matplotlib.use("agg")
    fig = plt.figure(figsize=(2, 1))
    plt.plot([0, 1], [1, 0])
    png, figure_md = retina_figure(fig, base64=True)
    plt.close(fig)
    formatter = InteractiveShell.instance().display_formatter
    image = Image(data=base64.b64decode(PNG), width=120, height=80.5, unconfined=True, alt="a plot")
    return [({"image/png": png}, {"image/png": figure_md}),
            formatter.format(image),
            formatter.format(JSON({"a": [1, 2]}, expanded=True, root="values"))]


@pytest.mark.parametrize("index", range(3))
def test_honest_metadata_is_kept_as_ipython_wrote_it(index):
    data, metadata = honest_metadata()[index]
    assert metadata, "IPython gave no metadata: the oracle has changed"
    clean, problems = clean_output_metadata(copy.deepcopy(metadata), set(data))
    assert (clean, problems) == (metadata, [])


@pytest.mark.parametrize("data, metadata", cases.DISPLAYS, ids=["width", "height", "alt", "isolated"])
def test_the_attack_metadata_keeps_no_student_markup(data, metadata):
    clean, problems = clean_output_metadata(copy.deepcopy(metadata), set(data))
    kept = [(key, value) for where in (clean, *(v for v in clean.values() if isinstance(v, dict)))
            for key, value in where.items() if not isinstance(value, dict)]
    for key, value in kept:
        if key in ("width", "height"):
            assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
        elif key != "alt":  # alt is text, which the templates escape inside quotes
            assert "onerror" not in repr(value), (key, value)
    assert problems, "the removal was not reported"
    assert not any("onerror" in p or "eval" in p for p in problems), problems  # our words only


@pytest.mark.parametrize("value", [
    "1 onerror=alert(1)", "100", None, True, False, [100], {"px": 100}, -1, MAX_DIMENSION + 1,
    10**400, -10**400, float("inf"), float("-inf"), float("nan"),
])
def test_a_width_that_is_not_a_size_is_dropped(value):
    for metadata in ({"image/png": {"width": value, "height": 5}}, {"width": value, "height": 5}):
        clean, problems = clean_output_metadata(metadata, {"image/png"})
        flat = clean.get("image/png", clean)
        assert flat == {"height": 5} and len(problems) == 1, (value, clean, problems)


@pytest.mark.parametrize("value", [0, 1, 640, 0.5, MAX_DIMENSION])
def test_a_width_that_is_a_size_is_kept(value):
    assert clean_output_metadata({"image/png": {"width": value}}, {"image/png"}) == (
        {"image/png": {"width": value}}, [])


@pytest.mark.parametrize("metadata", [[], "width=1", 3, 2.5, b"x", ("width", 1), {1, 2}])
def test_metadata_that_is_not_a_dict_becomes_empty(metadata):
    clean, problems = clean_output_metadata(metadata, {"image/png"})
    assert clean == {} and problems == ["metadata that is not a dict"]


def test_no_metadata_is_no_problem():
    assert clean_output_metadata(None, {"image/png"}) == ({}, [])
    assert clean_output_metadata({}, {"image/png"}) == ({}, [])


def test_nested_and_deep_metadata_is_dropped_without_recursion():
    deep: dict = {}
    node = deep
    for _ in range(100_000):  # far past Python's recursion limit
        node["x"] = {}
        node = node["x"]
    metadata = {"image/png": {"width": deep, "alt": deep, "deep": deep}, "deep": deep,
                "image/png+": deep, 7: deep, ("a",): 1}
    clean, problems = clean_output_metadata(metadata, {"image/png"})
    assert clean == {}
    assert len(problems) == 6, problems  # every entry but image/png+ (no such output) is reported


def test_mimetype_metadata_that_is_not_a_dict_is_dropped():
    clean, problems = clean_output_metadata({"image/png": "width=1 onerror=x", "width": 3},
                                            {"image/png"})
    assert clean == {"width": 3} and problems == ["image/png metadata that is not a dict"]


def test_metadata_of_a_mimetype_the_output_does_not_have_is_dropped_silently():
    # the sanitizer dropped image/svg+xml; its metadata belongs to nothing that is rendered
    clean, problems = clean_output_metadata({"image/svg+xml": {"width": "1 onerror=x"}},
                                            {"text/plain"})
    assert (clean, problems) == ({}, [])


def test_huge_values_are_dropped_and_reported_briefly():
    huge = "x" * (50 * 2**20)
    metadata = {"image/png": {"alt": huge, "width": huge}, huge: huge,
                **{f"k{i}": i for i in range(100_000)}}
    clean, problems = clean_output_metadata(metadata, {"image/png"})
    assert clean == {}
    assert max(len(p) for p in problems) < 100  # a key name or a count, never the value


def test_clean_returns_copies_not_the_students_objects():
    inner = {"width": 3, "alt": "a"}
    clean, _ = clean_output_metadata({"image/png": inner}, {"image/png"})
    assert clean["image/png"] == inner and clean["image/png"] is not inner


def test_execution_counts_must_be_integers():
    cell = new_code_cell("1", execution_count=3, outputs=[
        new_output("execute_result", data={"text/plain": "1"}, execution_count=3)])
    assert clean_code_cell(cell) == [] and cell.execution_count == 3
    cell.execution_count = "<script>x</script>"
    cell.outputs[0].execution_count = True
    problems = clean_code_cell(cell)
    assert cell.execution_count is None and cell.outputs[0].execution_count is None
    assert len(problems) == 2


def _hostile_notebook() -> nbformat.NotebookNode:
    """An answer cell with the attack's outputs, as the kernel sent them (nothing cleaned), and
    a test cell with an honest plot."""
    outputs = [new_output("display_data", data=copy.deepcopy(data), metadata=copy.deepcopy(md))
               for data, md in cases.DISPLAYS]
    plot_data, plot_md = honest_metadata()[0]
    return new_notebook(cells=[
        new_code_cell("def f(): ...", metadata=cell_metadata("answer", solution=True),
                      outputs=outputs, execution_count=1),
        new_code_cell("check(f)", metadata=cell_metadata("test_f", grade=True, points=2),
                      outputs=[new_output("display_data", data=plot_data, metadata=plot_md)],
                      execution_count=2),
    ])


def test_sanitizer_flags_the_cell_and_leaves_its_score_alone():
    nb = _hostile_notebook()
    honest_cell = copy.deepcopy(nb.cells[1])
    nbgrader_before = [copy.deepcopy(c.metadata["nbgrader"]) for c in nb.cells]
    nb, _ = SanitizeStudentHTML().preprocess(nb, {})
    flags = trusted_flags(nb)
    assert [kind for kind, _ in flags] == [UNSAFE_MARKUP]
    assert flags[0][1].startswith("cell 0 (answer): ") and "onerror" not in flags[0][1]
    assert [c.metadata["nbgrader"] for c in nb.cells] == nbgrader_before  # points, grade: as they were
    assert nb.cells[1] == honest_cell  # an honest plot is neither changed nor flagged
    alt = cases.DISPLAYS[2][1]["image/png"]["alt"]  # text: the templates escape it in quotes
    assert [o.metadata for o in nb.cells[0].outputs] == [{}, {}, {"image/png": {"alt": alt}}, {}]


def test_autograde_and_feedback_both_run_the_cleaner():
    """Before the autograded notebook is saved, and again for the feedback (nbgrader_config.py)."""
    config = load_config(ROOT)
    for steps in (config.Autograde.autograde_preprocessors, config.GenerateFeedback.preprocessors):
        assert any(isinstance(s, type) and issubclass(s, SanitizeStudentHTML) for s in steps), steps


# ----------------------------------------------------------------------------- the templates
class _Page(HTMLParser):
    """What a browser could run in a page: event-handler attributes, script URLs, and every
    ``<script>`` with its nonce; plus the Content-Security-Policy ``<meta>`` elements and the
    ``width``/``height`` attributes of images."""

    def __init__(self, html: str):
        super().__init__()
        self.handlers: list[str] = []
        self.scripts: list[str | None] = []
        self.csp: list[str] = []
        self.sizes: list[str] = []
        self.first_in_head: str | None = None
        self._in_head = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs_d = dict(attrs)
        if self._in_head and self.first_in_head is None:
            self.first_in_head = f"{tag} {attrs_d.get('http-equiv', '')}"
        self._in_head = self._in_head or tag == "head"
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith("javascript:"):
                self.handlers.append(f"<{tag} {name}={value!r}>")
        if tag == "script":
            self.scripts.append(attrs_d.get("nonce"))
        if tag == "meta" and (attrs_d.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp.append(attrs_d.get("content") or "")
        if tag == "img":
            self.sizes += [attrs_d[k] for k in ("width", "height") if k in attrs_d]


def _resources() -> dict:
    """What the Formgrader's handler and generate_feedback give the templates."""
    return {"nbgrader": {"notebook": "nb", "score": 1, "max_score": 2, "late_penalty": 0},
            "base_url": "", "notebook_id": "nb", "submission_id": "s1", "assignment_id": "a",
            "index": 0, "total": 1, "notebook_path": "autograded/x/a/nb.ipynb", "student": "x"}


def render(nb, template: str, course: bool = True) -> str:
    """``nb`` as the Formgrader (``formgrade``) or the feedback (``feedback``) renders it, with
    the course's configuration (``course=True``) or nbgrader's own templates."""
    config = Config()
    config.HTMLExporter.merge(load_config(ROOT).get("HTMLExporter", Config()))
    if not course:
        config.HTMLExporter.extra_template_basedirs = [str(NBGRADER_TEMPLATES)]
    config.HTMLExporter.template_name = template
    css = NBGRADER_TEMPLATES.parent / "static" / "node_modules" / "bootstrap" / "dist" / "css"
    config.HTMLExporter.extra_template_paths = [str(css)]  # as generate_feedback sets it
    html, _ = HTMLExporter(config=config).from_notebook_node(nb, resources=_resources())
    return html


def _audit_notebook() -> nbformat.NotebookNode:
    """The attack's notebook plus other values a student sets that the templates write: cell
    tags and ``alt``, a grade cell's id, the notebook's title and lexer (all valid nbformat)."""
    nb = _hostile_notebook()
    nb.cells[0].metadata["tags"] = ['"><img src=x onerror=alert(1)>', "' onmouseover='alert(2)"]
    nb.cells[0].metadata["alt"] = '" onerror="alert(3)'
    nb.cells[1].metadata["nbgrader"]["grade_id"] = '"><img src=x onerror=alert(4)>'
    nb.cells.append(new_markdown_cell("a written answer",
                                      metadata=cell_metadata("answer_q", grade=True, solution=True,
                                                             points=1)))
    nb.metadata["title"] = "</title><script>alert(5)</script>"
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "html"}
    for cell in nb.cells:  # the scores nbgrader's GetGrades gives the feedback
        if cell.metadata["nbgrader"]["grade"]:
            cell.metadata["nbgrader"]["score"] = 0
    return nb


@pytest.mark.parametrize("template", ["formgrade", "feedback"])
def test_nbgraders_own_template_makes_the_attack_live(template):
    """The oracle: with nbgrader's templates, the same notebook has live handlers."""
    page = _Page(render(_audit_notebook(), template, course=False))
    assert any("onerror" in h and "eval(atob(" in h for h in page.handlers), page.handlers
    assert page.csp == []


@pytest.mark.parametrize("template", ["formgrade", "feedback"])
def test_course_template_writes_no_student_markup(template):
    page = _Page(render(_audit_notebook(), template))
    assert page.handlers == []
    assert all(re.fullmatch(r"\d+(\.\d+)?", size) for size in page.sizes), page.sizes
    assert "alert(5)" not in render(_audit_notebook(), template)  # the title is not used


@pytest.mark.parametrize("template", ["formgrade", "feedback"])
def test_course_template_opens_with_a_policy_that_only_its_own_scripts_pass(template):
    nb = _audit_notebook()
    page = _Page(render(nb, template))
    assert page.first_in_head == "meta Content-Security-Policy"  # before anything it governs
    assert len(page.csp) == 1
    nonce = re.search(r"script-src 'nonce-([0-9a-f]{32})'", page.csp[0]).group(1)
    assert "'unsafe-inline'" not in page.csp[0] and "'unsafe-eval'" not in page.csp[0]
    assert "object-src 'none'" in page.csp[0] and "base-uri 'none'" in page.csp[0]
    assert page.scripts and set(page.scripts) == {nonce}
    again = _Page(render(nb, template))
    assert again.csp[0] != page.csp[0]  # a fresh nonce for every page


# ----------------------------------------------------------------------------- attachments
def _written_answer(source: str, attachments) -> nbformat.NotebookNode:
    cell = new_markdown_cell(source, metadata=cell_metadata("answer_q", grade=True, solution=True,
                                                            points=1))
    cell.metadata["nbgrader"]["score"] = 0  # as nbgrader's GetGrades gives the feedback
    nb = new_notebook(cells=[cell])
    nb.cells[0]["attachments"] = attachments  # after new_notebook, which validates
    return nb


def test_a_pasted_picture_in_a_written_answer_is_shown():
    """JupyterLab stores a picture pasted into a markdown cell as an attachment; nbconvert's
    renderer, given no attachments, raised InvalidNotebook and the student's grading stopped."""
    nb = _written_answer("My plot:\n\n![image.png](attachment:image.png)",
                         {"image.png": {"image/png": PNG}})
    nb, _ = SanitizeStudentHTML().preprocess(nb, {})
    assert f'src="data:image/png;base64,{PNG}"' in nb.cells[0].source
    page = render(nb, "feedback")
    assert f'src="data:image/png;base64,{PNG}"' in page and _Page(page).handlers == []


@pytest.mark.parametrize("attachments", [
    {}, {"image.png": {"image/svg+xml": "PHN2Zy8+"}}, {"image.png": {"text/html": "PGI+"}},
    {"image.png": {"image/png": 'AAAA" onerror="x'}}, {"image.png": "not a bundle"},
    ["not", "a", "dict"], None,
])
def test_an_attachment_that_is_missing_or_not_an_image_is_not_shown(attachments):
    nb = _written_answer("![a](attachment:image.png) and <b>text</b>", attachments)
    nb, _ = SanitizeStudentHTML().preprocess(nb, {})
    source = nb.cells[0].source
    assert "<b>text</b>" in source and "data:" not in source, source
    assert "onerror" not in source
    kept = nb.cells[0].get("attachments")
    assert all(set(bundle) == {"image/png"} for bundle in (kept or {}).values()), kept


@pytest.mark.parametrize("html, kept", [
    (f'<img src="data:image/png;base64,{PNG}">', True),
    ('<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">', True),
    ('<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">', False),
    ('<img src=" data:text/html;base64,PHNjcmlwdD4=">', False),
    ('<img src="DATA:image/png;base64,AAAA">', False),
    ('<img src="data:image/png;base64,AAAA" onerror="alert(1)">', True),  # the src, no handler
    ('<a href="data:image/png;base64,AAAA">a</a>', False),
    ('<a href="data:text/html,<script>alert(1)</script>">a</a>', False),
])
def test_only_raster_images_may_be_data_urls(html, kept):
    from autograder.kernel.sanitize_html import clean_html

    cleaned = clean_html(html)
    assert ("data:" in cleaned) is kept, cleaned
    assert _Page(cleaned).handlers == []
