"""Validate works everywhere: without bubblewrap, a learner's own notebook is validated without the
sandbox (their own code on their own machine) and nbgrader reports "Success!" or the failing
cells; other people's work still refuses. Sandboxed or not, a kernel keeps its libraries' caches
in folders of its own.

The machine without bubblewrap is this one with ``bwrap`` hidden in a private mount namespace
(``conftest.without_bubblewrap``), as on macOS, in a container or on Binder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, answer_cells, copy_course, without_bubblewrap

from autograder.course_dir import with_tools_on_path
from autograder.kernel.availability import VALIDATE_UNSANDBOXED_NOTE, validating_own_notebook
from autograder.kernel.bwrap import PRIVATE_DIRS, private_dirs_env
from autograder.tools.demo import build_submission

A01, NB01 = "01_standardization", "standardization.ipynb"
NBGRADER = str(Path(sys.executable).parent / "nbgrader")
#: What an instructor's message looks like: none of it may reach a learner's Validate.
INSTRUCTOR_WORDS = ("BN_UNSANDBOXED", "--unsandboxed", "SandboxUnavailableError")
#: The instructor's answers to 01 (solution markers removed): every exercise and question.
SOLVED = {gid: "\n".join(ln for ln in src.splitlines() if "### " not in ln)
          for gid, src in answer_cells(ROOT / "source" / A01 / NB01).items()}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return copy_course(tmp_path_factory.mktemp("validate-course"))


def _learner_notebook(course: Path, folder: Path, **replace: str) -> Path:
    """A learner's copy of 01 with every exercise solved, then ``replace``'s cells."""
    answers = {**SOLVED, **replace}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NB01
    nbformat.write(build_submission(course / "release" / A01 / NB01, answers), path)
    return path


def _validate(course: Path, path: Path):
    return without_bubblewrap([NBGRADER, "validate", str(path)], course,
                              env=with_tools_on_path(), timeout=600)


@pytest.mark.nbgrader
def test_validate_without_bubblewrap_says_success_on_a_correct_notebook(course):
    path = _learner_notebook(course, course / "mywork" / A01)
    result = _validate(course, path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Success! Your notebook passes all the tests." in result.stdout, out
    assert not [w for w in (*INSTRUCTOR_WORDS, "Traceback") if w in out], out
    said = [line for line in out.splitlines() if "sandbox" in line]
    assert len(said) == 1 and VALIDATE_UNSANDBOXED_NOTE in said[0], said


@pytest.mark.nbgrader
def test_validate_without_bubblewrap_names_the_failing_cell_of_a_mistaken_notebook(course):
    mistake = ("def standardize(X, mean, scale):\n"
               "    return (X - mean) ** 2 / scale\n")  # M12: the numerator squared
    path = _learner_notebook(course, course / "mywork" / A01, standardize=mistake)
    result = _validate(course, path)
    out = result.stdout + result.stderr
    assert result.stdout.startswith("VALIDATION FAILED ON"), out
    # the first failing cell is the visible test of standardize, with its own message
    first = result.stdout.split("The following cell failed:")[1]
    assert first.lstrip().startswith("# Visible test"), first
    assert "Z_small = standardize(X_small, mu, s)" in first and "Z is wrong" in first, first
    assert not [w for w in INSTRUCTOR_WORDS if w in out], out


@pytest.mark.nbgrader
def test_validating_other_peoples_work_still_refuses_without_bubblewrap(course):
    path = _learner_notebook(course, course / "submitted" / "someone" / A01)
    result = _validate(course, path)
    out = result.stdout + result.stderr
    assert "Success!" not in result.stdout, out
    assert "bubblewrap is missing" in out, out
    assert VALIDATE_UNSANDBOXED_NOTE not in out


def test_only_validation_of_a_notebook_outside_the_submission_folders_may_go_unsandboxed(tmp_path):
    root = tmp_path / "course"
    validate = {"NBGRADER_EXECUTION": "validate"}
    assert validating_own_notebook(root / "mywork" / A01, root, validate)
    assert validating_own_notebook(tmp_path / "elsewhere", root, validate)
    assert validating_own_notebook(root / "release" / A01, root, validate)
    for folder in ("submitted", "autograded", "feedback"):
        assert not validating_own_notebook(root / folder / "s" / A01, root, validate), folder
    assert not validating_own_notebook(root / "mywork", root, {"NBGRADER_EXECUTION": "autograde"})
    assert not validating_own_notebook(root / "mywork", root, {})
    # a symbolic link into submitted/ is judged by where it leads
    (root / "submitted" / "s").mkdir(parents=True)
    (tmp_path / "link").symlink_to(root / "submitted" / "s")
    assert not validating_own_notebook(tmp_path / "link", root, validate)


def test_private_dirs_are_below_the_given_folder_and_cover_the_libraries_caches():
    env = private_dirs_env(Path("/tmp"))
    assert env["MPLCONFIGDIR"] == "/tmp/matplotlib" and env["XDG_CACHE_HOME"] == "/tmp/cache"
    assert {"MPLCONFIGDIR", "IPYTHONDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"} <= set(env)
    assert all(Path(v).parent == Path("/tmp") for v in env.values())
    with pytest.raises(ValueError, match="base must be an absolute path"):
        private_dirs_env(Path("relative"))


PROBE = ("import json, os, sys\n"
         f"names = {sorted(PRIVATE_DIRS)!r}\n"
         "seen = {v: os.environ.get(v) for v in names}\n"
         "seen['bytecode'] = not sys.dont_write_bytecode\n"
         "seen['fonts'] = sorted(os.listdir(os.environ['MPLCONFIGDIR']))\n"
         "print('PROBE', json.dumps(seen))")


@pytest.mark.nbgrader
def test_an_unsandboxed_kernel_gets_private_library_folders_seeded_with_the_font_cache(tmp_path):
    """Without the sandbox too (BN_UNSANDBOXED, a learner's Validate, the self-check), the
    kernel's libraries write below a private folder of its own, seeded with the grader's font
    cache, which is removed with the kernel; the grader's HOME is not where they write. Nor does
    Python write bytecode beside the course's modules (course/__pycache__): the guard would
    charge that write to the cell that imported them (forbidden-file, the check scored 0)."""
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    from autograder.course_dir import ROOT
    from autograder.kernel.sandbox import SandboxedKernelManager, matplotlib_font_caches

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    os.environ["BN_UNSANDBOXED"] = "1"  # conftest restores os.environ after the test
    os.environ["PYTHONPATH"] = str(ROOT)
    client = NotebookClient(nb, kernel_name="python3", timeout=120,
                            kernel_manager_class=SandboxedKernelManager,
                            resources={"metadata": {"path": str(tmp_path)}})
    run_sync(client.async_execute)()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    seen = json.loads(text.split("PROBE ", 1)[1])
    folders = {Path(seen[v]).parent for v in PRIVATE_DIRS}
    assert len(folders) == 1, seen
    private = folders.pop()
    assert private.name.startswith("bn-kernel-") and private.parent == Path("/tmp"), private
    assert seen["fonts"] == [p.name for p in matplotlib_font_caches()], seen
    assert seen["fonts"], "the grader's font cache was not built before the kernel started"
    assert seen["bytecode"] is False, "the unsandboxed kernel writes bytecode into the course"
    assert not private.exists(), "the kernel's private folder outlived it"
    shutil.rmtree(private, ignore_errors=True)
