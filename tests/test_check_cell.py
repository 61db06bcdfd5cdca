"""Check my work, from the notebook: every notebook ends with the standard cells that grade the
learner's saved notebook with the hidden checks and print the report in the notebook; the cell is
harmless in a class release (it says the instructor grades), under nbgrader, and in the source.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENTS, ROOT, copy_course, execute_notebook, nbgrader_meta

from autograder.tools import check_cell
from course import selfcheck
from course.mywork import make_copies

SOURCES = [ROOT / "source" / a / nb for a, nb in ASSIGNMENTS.items()]
RELEASES = [ROOT / "release" / a / nb for a, nb in ASSIGNMENTS.items()]
A02, NB02 = "02_batchnorm_forward", "batchnorm_forward.ipynb"
DDOF1 = '''def batch_stats(x):
    mean = x.mean(axis=0)
    var = x.var(axis=0, ddof=1)
    return mean, var'''


def _same_cell(cell, standard) -> bool:
    """Same type, text and nbgrader metadata (the release adds its checksum and cell type)."""
    meta = {k: v for k, v in nbgrader_meta(cell).items() if k not in ("checksum", "cell_type")}
    return (cell.cell_type, cell.source, meta) == (
        standard.cell_type, standard.source, nbgrader_meta(standard))


@pytest.mark.parametrize("path", SOURCES + RELEASES, ids=lambda p: f"{p.parts[-3]}-{p.parent.name}")
def test_every_notebook_ends_with_the_standard_check_my_work_cells(path):
    """Source notebooks (and so the release, which `make release` makes from them) end with the
    two cells of autograder/tools/check_cell.py; re-apply with `python -m autograder.tools.check_cell`."""
    nb = nbformat.read(path, as_version=4)
    standard = check_cell.ending(path.name)
    assert all(_same_cell(c, s) for c, s in zip(nb.cells[-2:], standard, strict=True)), (
        f"{path} does not end with the standard Check my work cells: "
        "run `python -m autograder.tools.check_cell` and `make release`")
    assert nbgrader_meta(nb.cells[-1])["locked"] and not nbgrader_meta(nb.cells[-1])["grade"]
    assert f'check_my_work("{path.name}")' in nb.cells[-1].source
    assert check_cell.HEADER in nb.cells[0].source, f"{path}: the header's check line is missing"
    assert nb.cells[0].source.count("**How to check your work.**") == 1


def test_the_check_cell_tool_is_idempotent_and_touches_only_its_cells():
    path = SOURCES[1]
    before = nbformat.read(path, as_version=4)
    once = check_cell.apply(nbformat.read(path, as_version=4), path.name)
    twice = check_cell.apply(nbformat.read(path, as_version=4), path.name)
    twice = check_cell.apply(twice, path.name)
    assert nbformat.writes(once) == nbformat.writes(twice)
    assert [c.source for c in once.cells[1:-2]] == [c.source for c in before.cells[1:-2]]
    # an older ending is replaced, not kept beside the new one
    old = nbformat.read(path, as_version=4)
    old.cells[-2:] = [nbformat.v4.new_markdown_cell(check_cell.OLD_HEADING + "\nrun make check")]
    assert nbformat.writes(check_cell.apply(old, path.name)) == nbformat.writes(once)


def test_the_check_cell_holds_no_solution_and_imports_nothing_hidden():
    code = check_cell.ending(NB02)[1].source
    assert "autograder" not in code.replace("# Check my work", "")
    assert "BEGIN SOLUTION" not in code and "HIDDEN" not in code


def _notebook_with(tmp_path: Path, sources: dict[str, str]) -> Path:
    """A copy of 02's release notebook in ``tmp_path`` with answer cells replaced."""
    nb = nbformat.read(ROOT / "release" / A02 / NB02, as_version=4)
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade_id") in sources:
            cell.source = sources[nbgrader_meta(cell)["grade_id"]]
    path = tmp_path / NB02
    nbformat.write(nb, path)
    return path


def test_the_cell_says_so_and_does_nothing_under_nbgrader_in_the_source_and_before_any_answer(
        tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.chdir(tmp_path)
    selfcheck.check_my_work(NB02)
    assert capsys.readouterr().out.strip() == selfcheck.UNDER_NBGRADER
    monkeypatch.delenv("NBGRADER_EXECUTION")
    monkeypatch.chdir(ROOT / "source" / A02)
    selfcheck.check_my_work(NB02)
    assert capsys.readouterr().out.strip() == selfcheck.IN_SOURCE
    # a learner's copy inside a full course (its skeleton), no exercise written yet: nothing
    # to grade, and nothing is started
    full = tmp_path / "full"
    for folder in ("source", "autograder/checks", f"mywork/{A02}"):
        (full / folder).mkdir(parents=True)
    (full / "nbgrader_config.py").write_text("")
    shutil.copyfile(ROOT / "release" / A02 / NB02, full / "mywork" / A02 / NB02)
    monkeypatch.chdir(full / "mywork" / A02)
    selfcheck.check_my_work(NB02)
    out = capsys.readouterr()
    assert out.out.startswith(f"Nothing to check yet in the saved {NB02}"), out
    assert out.err == ""
    with pytest.raises(ValueError, match="notebook must be a notebook's file name"):
        selfcheck.check_my_work("../x.py")


def test_the_notebook_checked_is_the_one_the_server_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    renamed = _notebook_with(tmp_path, {}).rename(tmp_path / "my copy.ipynb")
    monkeypatch.setenv("JPY_SESSION_NAME", str(renamed))
    assert selfcheck.saved_notebook(NB02) == renamed.resolve()
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "gone.ipynb"))
    assert selfcheck.saved_notebook(NB02) == (tmp_path / NB02).resolve()


@pytest.mark.nbgrader
def test_in_a_class_release_the_cell_says_the_instructor_grades(tmp_path):
    """A class release has course/ and release/ but no hidden half: the cell, run in the
    learner's copy with that release's own `course` package, says who grades."""
    klass = tmp_path / "class"
    for folder in ("course", "data", "release"):
        shutil.copytree(ROOT / folder, klass / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    make_copies(klass)
    mine = klass / "mywork" / A02 / NB02
    nb = execute_notebook(mine, klass, allow_errors=True)
    last = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert last.strip() == selfcheck.IN_A_CLASS, nb.cells[-1].outputs


@pytest.mark.nbgrader
def test_in_the_full_course_the_cell_shows_the_diagnosis_and_touches_nothing(tmp_path):
    course = copy_course(tmp_path / "course")
    make_copies(course)
    mine = course / "mywork" / A02 / NB02
    nb = nbformat.read(mine, as_version=4)
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade_id") == "batch_stats":
            cell.source = DDOF1
    nbformat.write(nb, mine)  # saved, as Ctrl+S saves it
    saved = mine.read_bytes()
    ran = execute_notebook(mine, course, allow_errors=True, timeout=900)
    outputs = ran.cells[-1].outputs
    text = "".join(o.get("text", "") for o in outputs)
    assert not [o for o in outputs if o.get("name") == "stderr" or o.output_type == "error"], outputs
    assert text.startswith(f"Checking {NB02} as saved at"), text
    batch_stats = text[text.index("test_batch_stats:"):text.index("test_normalize:")]
    assert "Diagnosis M1" in batch_stats and "yours:" in batch_stats, text
    assert "Total:" in text
    assert mine.read_bytes() == saved
    assert not (course / "gradebook.db").exists() and not (course / "submitted").exists()
