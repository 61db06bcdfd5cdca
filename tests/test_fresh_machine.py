"""A fresh machine: an empty HOME (no matplotlib font cache, no IPython profile) and no
bubblewrap. The demo grades 04's samples as they expect: matplotlib's font cache is built by the
grader before any kernel starts, and each kernel keeps its libraries' caches in folders of its
own, so neither ``fc-list`` nor a write to ``~/.cache/matplotlib`` is charged to a student (it
was: a correct 04 scored 9/12, flagged ``subprocess`` and ``forbidden-file``).
"""

from __future__ import annotations

import sys

import pytest
from conftest import copy_course, without_bubblewrap

from autograder.course_dir import with_tools_on_path
from autograder.kernel.bwrap import PRIVATE_DIRS
from autograder.tools.demo import load_samples

A04, NB04 = "04_experiments", "experiments.ipynb"


@pytest.mark.nbgrader
def test_a_fresh_machine_with_an_empty_home_grades_04_as_expected(tmp_path):
    root = copy_course(tmp_path / "course")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in with_tools_on_path().items() if k not in PRIVATE_DIRS}
    env["HOME"] = str(home)
    demo = without_bubblewrap([sys.executable, "-m", "autograder.tools.demo", "--assignment", A04],
                              root, env=env)
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()[1:2] == [A04]}
    students = load_samples(NB04).STUDENTS
    assert sorted(rows) == sorted(students), out
    assert all(" yes " in row for row in rows.values()), "\n".join(rows.values())
    full = [name for name, s in students.items() if s["expect"].get("full_marks")]
    for name in full:
        score = rows[name].split()[2:5]  # "12 / 12"
        assert score[0] == score[2], rows[name]
    assert "Flag [forbidden-file]" not in out and "Flag [subprocess]" not in out
    assert sorted(p.name for p in (home / ".cache" / "matplotlib").glob("fontlist-v*.json")), (
        "the grader did not build matplotlib's font cache before the kernels started")
