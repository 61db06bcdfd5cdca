"""Hostile submissions against where nbgrader reads and writes, each with its expected score.

The assignment is ``99_sandbox`` of ``tests/test_sandbox.py`` (an answer cell ``f``, two
one-point test cells ``test_f`` and ``test_g``). Two kinds of case:

- **kernel** cases are an answer cell whose code, run in the sandboxed kernel, plants things in
  its working folder for nbgrader to trip over: its own notebook replaced by a symlink to the
  course config, links into ``source/`` and the gradebook, FIFOs, a deep folder chain, folders
  without permissions. The answer is otherwise correct, so the score is 2.
- **folder** cases change the submitted folder itself before grading (``make(folder, course)``):
  links, FIFOs, hard links, deep folders, deeply nested JSON, duplicated or retyped test cells,
  ``skip-execution`` tags. ``rejected`` cases score 0 with the ``rejected-submission`` flag and
  ``reason`` in the notebook's trusted metadata; repaired ones are graded normally.

``COURSE_ROOT`` in an answer is replaced by the course directory on the host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GOOD = "def f(x):\n    return x + 1\n"
WRONG = "def f(x):\n    return x\n"
NOTEBOOK = "sandbox.ipynb"


@dataclass(frozen=True)
class KernelCase:
    answer: str
    score: float = 2


@dataclass(frozen=True)
class FolderCase:
    make: Callable[[Path, Path], None]
    score: float
    reason: str = ""  # in the rejected-submission flag; empty: not rejected
    answer: str = GOOD


KERNEL_CASES: dict[str, KernelCase] = {
    "plant_links": KernelCase(
        "import os\n"
        "os.remove('sandbox.ipynb')\n"
        "os.symlink('COURSE_ROOT/nbgrader_config.py', 'sandbox.ipynb')\n"
        "for name, target in [('gb.db', '../../../gradebook.db'), ('src', '../../../source'),\n"
        "                     ('cfg.py', 'COURSE_ROOT/nbgrader_config.py'),\n"
        "                     ('timestamp.txt', '../../../source/99_sandbox/sandbox.ipynb'),\n"
        "                     ('other', '../../good/99_sandbox')]:\n"
        "    os.symlink(target, name)\n" + GOOD
    ),
    "plant_fifos": KernelCase(
        "import os\n"
        "os.remove('sandbox.ipynb')\n"
        "for name in ('sandbox.ipynb', 'timestamp.txt', 'data.csv'):\n"
        "    os.mkfifo(name)\n" + GOOD
    ),
    "plant_deep_tree": KernelCase(
        "import os\n"
        "here = os.getcwd()\n"
        "for _ in range(1500):\n"
        "    os.mkdir('d')\n"
        "    os.chdir('d')\n"
        "open('bottom.txt', 'w').write('deep')\n"
        "os.symlink('COURSE_ROOT/gradebook.db', 'gb.db')\n"
        "os.mkfifo('fifo')\n"
        "os.chdir(here)\n" + GOOD
    ),
    "plant_locked_folders": KernelCase(
        "import os\n"
        "os.makedirs('locked/inner')\n"
        "open('locked/inner/f.txt', 'w').write('x')\n"
        "os.chmod('locked/inner', 0)\n"
        "os.chmod('locked', 0)\n" + GOOD
    ),
}


def _notebook(folder: Path) -> dict:
    return json.loads((folder / NOTEBOOK).read_text())


def _save(folder: Path, nb: dict) -> None:
    (folder / NOTEBOOK).write_text(json.dumps(nb))


def _cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def symlink(folder: Path, course: Path) -> None:
    (folder / "grades.db").symlink_to(course / "gradebook.db")


def notebook_symlink(folder: Path, course: Path) -> None:
    (folder / NOTEBOOK).unlink()
    (folder / NOTEBOOK).symlink_to(course / "source" / "99_sandbox" / NOTEBOOK)


def fifo(folder: Path, course: Path) -> None:
    os.mkfifo(folder / "data.csv")


def fifo_timestamp(folder: Path, course: Path) -> None:
    os.mkfifo(folder / "timestamp.txt")


def hard_link(folder: Path, course: Path) -> None:
    os.link(folder / NOTEBOOK, folder / "copy.txt")


def deep_folder(folder: Path, course: Path) -> None:
    deep = folder.joinpath(*["d"] * 30)
    deep.mkdir(parents=True)
    (deep / "x.py").write_text("x = 1\n")


def many_files(folder: Path, course: Path) -> None:
    for i in range(600):
        (folder / f"f{i}.txt").write_text("x")


def deep_json(folder: Path, course: Path) -> None:
    text = (folder / NOTEBOOK).read_text()
    depth = 100_000
    deep = '"metadata": {"x": ' + "[" * depth + "]" * depth + ","
    (folder / NOTEBOOK).write_text(text.replace('"metadata": {', deep, 1))


def moderately_deep_json(folder: Path, course: Path) -> None:
    nb = _notebook(folder)
    value: object = 1
    for _ in range(200):  # within json's recursion limit, above the notebook depth limit
        value = [value]
    nb["metadata"]["x"] = value
    _save(folder, nb)


def not_json(folder: Path, course: Path) -> None:
    (folder / NOTEBOOK).write_text('{"cells": [')


def duplicate_test_cell(folder: Path, course: Path) -> None:
    nb = _notebook(folder)
    copy = json.loads(json.dumps(_cell(nb, "test_f")))
    copy["source"] = "assert True"
    copy.pop("id", None)
    nb["cells"].append(copy)
    _save(folder, nb)


def skipped_tests(folder: Path, course: Path) -> None:
    """A wrong answer; the test cells tagged skip-execution, one of them turned into markdown."""
    nb = _notebook(folder)
    for gid in ("test_f", "test_g"):
        _cell(nb, gid)["metadata"]["tags"] = ["skip-execution"]
    cell = _cell(nb, "test_g")
    cell["cell_type"] = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    _save(folder, nb)


def deleted_test_cell(folder: Path, course: Path) -> None:
    nb = _notebook(folder)
    nb["cells"].remove(_cell(nb, "test_g"))
    _save(folder, nb)


def forged_trusted(folder: Path, course: Path) -> None:
    """A wrong answer whose notebook and cells claim trusted scores."""
    nb = _notebook(folder)
    nb["metadata"]["autograder"] = {"flags": [["sandbox-off", "forged"]]}
    for gid in ("test_f", "test_g"):
        _cell(nb, gid)["metadata"]["autograder"] = {"score": 1.0, "max_score": 1.0}
    _save(folder, nb)


FOLDER_CASES: dict[str, FolderCase] = {
    "sub_symlink": FolderCase(symlink, 0, "grades.db is a symbolic link"),
    "sub_notebook_symlink": FolderCase(notebook_symlink, 0, "sandbox.ipynb is a symbolic link"),
    "sub_fifo": FolderCase(fifo, 0, "data.csv is a FIFO"),
    "sub_fifo_timestamp": FolderCase(fifo_timestamp, 0, "timestamp.txt is a FIFO"),
    "sub_hard_link": FolderCase(hard_link, 0, "is a hard link (2 names)"),
    "sub_deep_folder": FolderCase(deep_folder, 0, "folders deep"),
    "sub_many_files": FolderCase(many_files, 0, "more than 500 files"),
    "sub_deep_json": FolderCase(deep_json, 0, "nested deeper than 64 levels"),
    "sub_deep_json_200": FolderCase(moderately_deep_json, 0, "nested deeper than 64 levels"),
    "sub_not_json": FolderCase(not_json, 0, "is not a notebook (not JSON"),
    "sub_duplicate_test_cell": FolderCase(duplicate_test_cell, 0, answer=WRONG),
    "sub_skipped_tests": FolderCase(skipped_tests, 0, answer=WRONG),
    "sub_deleted_test_cell": FolderCase(deleted_test_cell, 2),
    "sub_forged_trusted": FolderCase(forged_trusted, 0, answer=WRONG),
}
