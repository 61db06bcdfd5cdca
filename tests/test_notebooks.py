"""Source and release notebooks execute as a student or instructor would (nbclient)."""

from __future__ import annotations

import re

import nbformat
import pytest
from conftest import ASSIGNMENTS, ROOT, execute_notebook, nbgrader_meta

import autograder.checks

SOURCES = [ROOT / "source" / a / nb for a, nb in ASSIGNMENTS.items()]
RELEASES = [ROOT / "release" / a / nb for a, nb in ASSIGNMENTS.items()]
CHECK_CALL = re.compile(r"^from autograder\.checks import (\w+); \1\((\w+)\)$", re.M)


def _ids(paths):
    return [p.parent.name for p in paths]


def _hidden_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and nbgrader_meta(c).get("grade")]


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
def test_source_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: a code cell has outputs; run `make strip`"
            )


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
def test_hidden_cells_are_one_call_worth_their_check_points(path):
    nb = nbformat.read(path, as_version=4)
    hidden = _hidden_cells(nb)
    assert hidden, f"{path.name} has no hidden test cells"
    for cell in hidden:
        meta = nbgrader_meta(cell)
        body = re.search(r"### BEGIN HIDDEN TESTS\n(.*)\n### END HIDDEN TESTS\s*$", cell.source, re.S)
        assert body, f"{meta['grade_id']}: the cell must end with a hidden-test region"
        m = CHECK_CALL.fullmatch(body.group(1).strip())
        assert m, f"{meta['grade_id']}: the hidden region must be one line calling autograder.checks"
        check = getattr(autograder.checks, m.group(1))
        assert check.points == meta["points"], (
            f"{meta['grade_id']}: cell is worth {meta['points']} but {m.group(1)} scores out of {check.points}"
        )


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
def test_written_questions_have_a_mark_scheme(path):
    nb = nbformat.read(path, as_version=4)
    questions = [c for c in nb.cells if "=== BEGIN MARK SCHEME ===" in c.source]
    answers = [c for c in nb.cells if c.cell_type == "markdown" and nbgrader_meta(c).get("grade")]
    assert questions and answers, f"{path.name} needs at least one manually graded written question"
    for q in questions:
        assert nbgrader_meta(q).get("locked"), "a rubric must sit in a locked cell (restored when grading)"
        assert "=== END MARK SCHEME ===" in q.source


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
@pytest.mark.nbgrader  # runs the notebook in a Jupyter kernel
def test_source_notebook_runs_and_every_test_passes(path):
    nb = execute_notebook(path, ROOT, allow_errors=False)
    for cell in _hidden_cells(nb):
        meta = nbgrader_meta(cell)
        results = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert not any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs), (
            f"{meta['grade_id']} wrote to stderr, which nbgrader scores as 0"
        )
        assert results, f"{meta['grade_id']} returned no score"
        score = float(results[-1]["data"]["text/plain"])
        report = "".join(o.get("text", "") for o in cell.outputs)
        assert score == meta["points"], f"{meta['grade_id']}: {score}/{meta['points']}\n{report}"


@pytest.mark.parametrize("path", RELEASES, ids=_ids(RELEASES))
@pytest.mark.nbgrader  # runs the notebook in a Jupyter kernel
def test_release_notebook_fails_only_with_not_implemented(path):
    nb = execute_notebook(path, ROOT, allow_errors=True)
    errors = [
        (i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
        for o in c.outputs if o.output_type == "error"
    ]
    assert errors, "the untouched release should stop at the first empty exercise"
    for i, err in errors:
        assert err.ename == "NotImplementedError", (
            f"cell {i} of {path.name} failed with {err.ename}: {err.evalue}"
        )


REDUCED = [p for p in SOURCES if p.parent.name[:2] in ("01", "02", "03")]


def _graded_outputs(nb) -> dict[str, str]:
    return {
        nbgrader_meta(c)["grade_id"]: "".join(
            o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in c.outputs
        )
        for c in _hidden_cells(nb)
    }


@pytest.mark.nbgrader  # runs each notebook twice
@pytest.mark.parametrize("path", REDUCED, ids=_ids(REDUCED))
def test_graded_results_do_not_depend_on_the_grading_mode(path, monkeypatch):
    """Issue 15 §3: under NBGRADER_EXECUTION=autograde, 01-03 skip their demos and figures, and
    every hidden test cell prints exactly what it prints as a student runs the notebook."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    student = execute_notebook(path, ROOT, allow_errors=False)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    graded = execute_notebook(path, ROOT, allow_errors=False)
    assert _graded_outputs(graded) == _graded_outputs(student)
    skipped = [c for c in graded.cells if c.cell_type == "code" and any(
        "skipped while grading" in o.get("text", "") for o in c.outputs)]
    assert skipped, f"{path.name} skips nothing while grading"
    figures = [o for c in graded.cells if c.cell_type == "code" for o in c.outputs
               if o.output_type == "display_data"]
    assert not figures, f"{path.name} draws {len(figures)} figures while grading"


# --------------------------------------------------------------------------- the header pattern
#: The header of a notebook (CONTRIBUTING.md, "The header of a notebook"): every notebook follows it.
PATTERNED = list(SOURCES)
HEADINGS = ["**You will learn to**", "**Prerequisites.**", "**Time.**", "**How to run the checks.**",
            "**When graded.**", "| exercise | points |"]
STANDARD_CHECKS = (
    "Run the cells from top to bottom (*Run → Run All Cells*). Each exercise is one function in a "
    "cell marked `# YOUR CODE HERE`: replace the line `raise NotImplementedError(...)` with your "
    "code. The cell right after it is a *visible test*: it runs your function on a small example "
    "worked out by hand and prints `ok ...` for every value it checked, or shows your value next to "
    "the expected one. The next cell is a *hidden test*, empty in your copy, which the autograder "
    "runs: it gives the points and names common mistakes. Before you submit, use *Kernel → Restart "
    "Kernel and Run All Cells* and check that every visible test prints only `ok` lines.")
ROW = re.compile(r"^\| (.+?) \| (\*\*)?(\d+(?:\.\d+)?)(\*\*)? \|$", re.M)


@pytest.mark.parametrize("path", PATTERNED, ids=_ids(PATTERNED))
def test_header_follows_the_pattern_and_its_points_table_is_true(path):
    """Title, headings in order, the standard paragraph word for word, a time of at most 90
    minutes, and a points table whose rows are the graded cells, in order, with their points."""
    nb = nbformat.read(path, as_version=4)
    header = nb.cells[0].source
    number = path.parent.name[:2]
    assert re.match(rf"# Assignment {number} — \S", header), header.splitlines()[0]
    at = [header.find(h) for h in HEADINGS]
    assert -1 not in at and at == sorted(at), dict(zip(HEADINGS, at, strict=True))
    assert STANDARD_CHECKS in " ".join(header.split()), "the standard 'How to run the checks' paragraph"
    minutes = int(re.search(r"\*\*Time\.\*\* About (\d+) minutes", header).group(1))
    assert minutes <= 90, f"{minutes} minutes: more than 90 of honest work"
    rows = ROW.findall(header[header.index("| exercise | points |"):])
    *graded_rows, total = rows
    assert total[0] == "**total**" and total[1] == "**", total
    graded = [c for c in nb.cells if nbgrader_meta(c).get("grade")]
    assert len(graded_rows) == len(graded), ([r[0] for r in graded_rows],
                                             [nbgrader_meta(c)["grade_id"] for c in graded])
    for (label, _, points, _), cell in zip(graded_rows, graded, strict=True):
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code":
            assert label == f"`{meta['grade_id'].removeprefix('test_')}`", (label, meta["grade_id"])
        else:
            assert re.fullmatch(r"written question( \d+)?: .+", label), label
        assert float(points) == meta["points"], (label, points, meta["points"])
    assert float(total[2]) == sum(nbgrader_meta(c)["points"] for c in graded), total
