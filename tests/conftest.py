"""Shared fixtures: the course layout, notebook execution, and one demo run in a scratch copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.tools.demo import load_assignments  # noqa: E402

ASSIGNMENTS = load_assignments(ROOT)

# nbgrader's Gradebook runs `alembic` from PATH; use this environment's copy.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def execute_notebook(path: Path, root: Path, allow_errors: bool, timeout: int = 300):
    """Execute a notebook as a student would: kernel cwd = the notebook's folder.

    ``root`` goes first on PYTHONPATH, as nbgrader_config.py arranges for nbgrader's kernels,
    so the hidden tests can import ``autograder``.
    """
    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root), env_before.get("PYTHONPATH", "")])
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend draws figures into outputs
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=allow_errors,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return nb


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


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`python -m autograder.tools.demo` in a scratch copy of the course; returns (root, stdout)."""
    root = copy_course(tmp_path_factory.mktemp("course"))
    result = subprocess.run(
        [sys.executable, "-m", "autograder.tools.demo"], cwd=root, capture_output=True, text=True,
        timeout=900,
    )
    assert result.returncode == 0, (
        f"demo failed (exit {result.returncode})\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return root, result.stdout


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (tests/postgres.py), stopped at its end."""
    from postgres import PostgresServer

    with PostgresServer() as server:
        yield server
