"""Shared fixtures: the course layout, notebook execution, one demo run in a scratch copy, and
the markers of tests that need the sandbox (``requires_bwrap``) or run nbgrader (``nbgrader``).

Tests that need a system package that is missing here (Debian's ``bubblewrap``, ``postgresql``,
``chromium``: :data:`SYSTEM_PACKAGES`) are skipped with one line each, and the run ends with the
one ``apt-get install`` line that would run them; under ``CI=true`` they fail instead
(:func:`require_system`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.course_dir import (  # noqa: E402
    assignments,
    environ_kept,
    load_config,
    put_tools_on_path,
)

ASSIGNMENTS = assignments(ROOT)

# nbgrader's Gradebook runs `alembic` from PATH; use this environment's copy.
put_tools_on_path()

#: Marks a test that needs the bubblewrap sandbox: skipped where it cannot start (the reason
#: names bubblewrap), failed instead under ``CI=true``. Fixtures call :func:`require_bwrap`.
requires_bwrap = pytest.mark.requires_bwrap


@functools.lru_cache(maxsize=1)
def sandbox_unavailable() -> str | None:
    """Why the bubblewrap sandbox cannot start here, or None when it can."""
    from autograder.kernel.sandbox import SandboxUnavailableError, check_sandbox

    try:
        check_sandbox()
    except SandboxUnavailableError as exc:
        return str(exc).removeprefix("The sandbox for student code cannot start: ").split(
            ". Install bubblewrap")[0]
    return None


def _postgresql_missing() -> str | None:
    from postgres import bindir

    try:
        bindir()
    except FileNotFoundError as exc:
        return str(exc).split(":")[0]
    return None


def _chromium_missing() -> str | None:
    from browser import CHROMIUM

    return None if CHROMIUM.is_file() else f"{CHROMIUM} was not found"


#: Debian packages that some tests need (``.ci/run`` installs them), each with what it is for and
#: a function that says why it cannot be used here (None when it can).
SYSTEM_PACKAGES = {
    "bubblewrap": ("the sandbox for student code", sandbox_unavailable),
    "postgresql": ("a PostgreSQL gradebook", _postgresql_missing),
    "chromium": ("the browser tests", _chromium_missing),
}
#: The words of a skip for a missing system package; the run's last line collects them.
_SKIP_WORDS = "needs the system package "


def in_ci() -> bool:
    """Whether the tests run in CI (``CI=true``), where nothing may be skipped for a package."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_system(package: str) -> None:
    """Skip the calling test or fixture, in one line, when a system package of
    :data:`SYSTEM_PACKAGES` is missing here; under ``CI=true``, where ``.ci/run`` installs it,
    fail instead, so that CI never skips it silently."""
    what, missing = SYSTEM_PACKAGES[package]
    reason = missing()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"needs {package} ({what}), and CI=true forbids skipping: {reason}",
                    pytrace=False)
    pytest.skip(f"{_SKIP_WORDS}{package} ({what}; apt-get install {package}): {reason}")


def require_bwrap() -> None:
    """:func:`require_system` for bubblewrap: the sandbox must be able to start here."""
    require_system("bubblewrap")


_NEEDED = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Remember which system packages tests were skipped for (said last, in
    :func:`pytest_unconfigure`)."""
    reasons = " ".join(str(report.longrepr) for report in terminalreporter.stats.get("skipped", []))
    config.stash[_NEEDED] = [p for p in SYSTEM_PACKAGES if f"{_SKIP_WORDS}{p} " in reasons]


def pytest_unconfigure(config):
    """End the run with the one ``apt-get install`` line that would run the skipped tests."""
    needed = config.stash.get(_NEEDED, [])
    if needed:
        config.get_terminal_writer().line(
            f"Tests were skipped for missing system packages; to run them: "
            f"apt-get install {' '.join(needed)}", yellow=True)


#: Fixtures that run nbgrader (its commands, its Gradebook's migrations), a Jupyter kernel or
#: JupyterLab: every test using one is marked ``nbgrader`` (slow; ``make test-fast`` leaves it
#: out). Tests that run nbgrader by themselves carry ``@pytest.mark.nbgrader``.
NBGRADER_FIXTURES = frozenset({
    "demo_run", "demo_course", "formgrader", "course", "course_template", "rendered", "graded", "kernels",
    "autograded_course", "hostile_run", "scratch", "postgres", "edited_config", "html_graded",
    "kernel",
})

#: Fixtures that grade in the bubblewrap sandbox: every test using one is marked
#: ``requires_bwrap`` (the fixtures may also call :func:`require_bwrap` themselves).
SANDBOX_FIXTURES = frozenset({"graded", "html_graded", "hostile_run", "autograded_course",
                              "scratch", "postgres"})
#: Fixtures that need another system package: every test using one is marked
#: ``requires_system(package)``, checked before any fixture is set up.
SYSTEM_FIXTURES = {"postgres": "postgresql"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if NBGRADER_FIXTURES & used:
            item.add_marker(pytest.mark.nbgrader)
        if SANDBOX_FIXTURES & used:
            item.add_marker(requires_bwrap)
        for fixture in sorted(used & set(SYSTEM_FIXTURES)):
            item.add_marker(pytest.mark.requires_system(SYSTEM_FIXTURES[fixture]))


@pytest.fixture(autouse=True)
def _environ_kept():
    """No test leaves its environment changes to the next one (on an xdist worker, the next is
    any test of any file): servers and terminals started later inherit os.environ."""
    with environ_kept():
        yield


def pytest_runtest_setup(item):
    """Skip (or, in CI, fail) a test whose system packages are missing, before its fixtures."""
    for marker in item.iter_markers("requires_system"):
        require_system(*marker.args)
    if item.get_closest_marker("requires_bwrap"):
        require_bwrap()


def without_bubblewrap(cmd: list[str], cwd: Path, *, env: dict[str, str] | None = None,
                       hide: tuple[str, ...] = ("bwrap",), timeout: float = 900,
                       ) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` as on a machine without bubblewrap (macOS, a container, Binder):
    in a private mount namespace where each program of ``hide`` found on PATH is /dev/null (not
    executable). As root here; elsewhere in a user namespace of one's own."""
    found = [shutil.which(name) for name in hide]
    binds = "".join(f"mount --bind /dev/null {path} && " for path in found if path)
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else [
        "unshare", "--user", "--map-root-user", "--mount"]
    return subprocess.run([*unshare, "--", "sh", "-c", f'{binds}exec "$@"', "sh", *cmd],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def execute_notebook(path: Path, root: Path, allow_errors: bool, timeout: int = 300):
    """Execute a notebook as a student would: kernel cwd = the notebook's folder.

    ``root`` goes first on PYTHONPATH, as nbgrader_config.py arranges for nbgrader's kernels,
    so the hidden tests can import ``autograder``.
    """
    nb = nbformat.read(path, as_version=4)
    with environ_kept():
        os.environ["PYTHONPATH"] = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
        os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend draws figures into outputs
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=allow_errors,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    return nb


def answer_cells(notebook: Path, cell_type: str | None = None) -> dict[str, str]:
    """``{grade_id: source}`` of a source notebook's answer cells (nbgrader ``solution``), in
    order; only those of ``cell_type`` (``"code"``, ``"markdown"``) when given."""
    nb = nbformat.read(notebook, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if nbgrader_meta(c).get("solution") and cell_type in (None, c.cell_type)}


def release_stub(source: str) -> str:
    """What ``nbgrader generate_assignment`` leaves of an answer cell: each solution region
    replaced by the course's ``ClearSolutions.code_stub``, indented as the region was."""
    stub = load_config(ROOT).ClearSolutions.code_stub["python"]
    return re.sub(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION",
                  lambda m: "\n".join(m.group(1) + line for line in stub.splitlines()),
                  source, flags=re.S)


def load_hostile_cases(name: str):
    """Import ``tests/hostile/<name>.py`` as module ``name`` (the hostile-submission fixtures).

    Registered in ``sys.modules`` first: the dataclasses in it look their module up there.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "hostile" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def cell_metadata(grade_id: str, *, grade: bool = False, solution: bool = False,
                  points: int | None = None) -> dict:
    """Cell metadata as nbgrader's create_assignment writes it; a cell is locked unless it is a
    solution cell."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def tracked_files(root: Path) -> list[str]:
    """Files git tracks, plus new files not ignored: what a fresh clone (plus this change) has."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout
    return [line for line in out.splitlines() if line and (root / line).is_file()]


def copy_course(dst: Path) -> Path:
    for rel in tracked_files(ROOT):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return dst


def course_state(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``root`` (Python's byte-code caches left
    out): the state of a course directory, to compare before and after a command."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts}


def seed_instructor_course(root: Path) -> None:
    """Give a course copy an instructor's own state: a gradebook with a student and a graded
    submission, and files in submitted/, autograded/, feedback/, reports/ and grades.csv."""
    from nbgrader.api import Gradebook

    assignment, notebook = next(iter(ASSIGNMENTS.items()))
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id="batchnorm-from-scratch") as gb:
        gb.update_or_create_assignment(assignment)
        gb.add_student("real_student", first_name="Real", last_name="Student")
        gb.add_submission(assignment, "real_student")
    for folder in ("submitted", "autograded", "feedback"):
        target = root / folder / "real_student" / assignment
        target.mkdir(parents=True)
        (target / notebook).write_text('{"cells": [], "metadata": {}, "nbformat": 4, '
                                       '"nbformat_minor": 5}')
    (root / "reports" / assignment).mkdir(parents=True)
    (root / "reports" / assignment / "report.csv").write_text("student,score\nreal_student,1\n")
    (root / "grades.csv").write_text("assignment,student_id,score\n")


@pytest.fixture(scope="session")
def demo_course(tmp_path_factory):
    """A copy of the course with an instructor's own state (:func:`seed_instructor_course`),
    and its :func:`course_state` before the demo runs from it."""
    root = copy_course(tmp_path_factory.mktemp("course"))
    seed_instructor_course(root)
    return root, course_state(root)


@pytest.fixture(scope="session")
def demo_run(demo_course, tmp_path_factory):
    """`python -m autograder.tools.demo` run from a copy of the course (:func:`demo_course`),
    grading in its own scratch course; returns (the demo's course directory, stdout)."""
    course, _ = demo_course
    scratch = tmp_path_factory.mktemp("demo") / "course"
    result = subprocess.run(
        [sys.executable, "-m", "autograder.tools.demo", "--scratch", str(scratch)], cwd=course,
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, (
        f"demo failed (exit {result.returncode})\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return scratch, result.stdout


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (tests/postgres.py), stopped at its end."""
    from postgres import PostgresServer

    require_system("postgresql")
    with PostgresServer() as server:
        yield server


#: Hidden checks of the tests' throw-away assignments (runner, sandbox): hidden test cells are
#: trusted checks run by the grader (autograder/kernel/remote.py), so these assignments need
#: checks of their own, added to a scratch course as an instructor would add one.
FIXTURE_CHECKS = '''"""Hidden checks of the tests' throw-away assignments."""

from autograder.checks.framework import hidden_check

__all__ = ["check_answer", "check_f_at_1", "check_f_at_2"]


@hidden_check("answer", points=1)
def check_answer(g, answer):
    """answer() returns 42.0."""
    with g.part("answer() returns 42.0"):
        g.compare("answer()", g.call(answer), 42.0, rtol=1e-12)


@hidden_check("f", points=1)
def check_f_at_1(g, f):
    """f(1) == 2."""
    with g.part("f(1) == 2"):
        g.compare("f(1)", g.call(f, 1), 2, rtol=0)


@hidden_check("f", points=1)
def check_f_at_2(g, f):
    """f(2) == 3."""
    with g.part("f(2) == 3"):
        g.compare("f(2)", g.call(f, 2), 3, rtol=0)
'''


def add_fixture_checks(root: Path) -> None:
    """Give a scratch course :data:`FIXTURE_CHECKS` as a course's own check file
    (``autograder/checks/fixture.py``, named in ``c.SandboxedExecute.extra_check_files``)."""
    (root / "autograder" / "checks" / "fixture.py").write_text(FIXTURE_CHECKS)
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write('\nc.SandboxedExecute.extra_check_files = '
                 '[str(ROOT / "autograder" / "checks" / "fixture.py")]\n')
