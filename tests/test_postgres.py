"""A real PostgreSQL gradebook (tests/postgres.py), graded into by the runner on Dask.

The big test grades 40 submissions of assignment 01, built from its demo samples, on a
``local:2`` Dask cluster into PostgreSQL, and compares every score and every output with a
sequential ``nbgrader autograde`` into SQLite of the same sample answers.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import nbformat
import psutil
from conftest import add_fixture_checks, copy_course
from test_runner import _outputs, nbgrader

from autograder.tools import runner
from autograder.tools.demo import build_submission, load_samples

ASSIGNMENT, NOTEBOOK = "01_standardization", "standardization.ipynb"
SUBMISSIONS = 40


def scores_at(db_url: str) -> dict[str, dict[str, float | None]]:
    """``{student: {cell: auto_score}}`` of assignment 01, through nbgrader's API."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        return {
            sub.student.id: {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
            for sub in gb.find_assignment(ASSIGNMENT).submissions
        }


def use_database(root: Path, db_url: str) -> None:
    """Point the course's nbgrader_config.py at ``db_url``, as an instructor would."""
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.CourseDirectory.db_url = {db_url!r}\n")


def write_submission(root: Path, student: str, answers: dict) -> None:
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nb = build_submission(root / "release" / ASSIGNMENT / NOTEBOOK, answers)
    nbformat.write(nb, folder / NOTEBOOK)
    (folder / "timestamp.txt").write_text("2026-11-20 09:00:00.000000 UTC\n")


def test_server_is_throwaway_on_a_socket_and_unprivileged(postgres):
    import psycopg

    with psycopg.connect(host=str(postgres.socket), user="postgres", dbname="postgres") as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == ""  # no TCP at all
        assert conn.execute("SHOW unix_socket_directories").fetchone()[0] == str(postgres.socket)
        assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL")
    pid = int((postgres.data / "postmaster.pid").read_text().split()[0])
    expected = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert psutil.Process(pid).uids().real == expected
    assert (postgres.bin / "pg_ctl").is_file()


def test_nbgrader_creates_its_gradebook_in_postgres(postgres, tmp_path):
    from nbgrader.api import Gradebook
    from sqlalchemy import create_engine, inspect

    url = postgres.create_database("fresh")
    with Gradebook(url) as gb:
        gb.add_student("ada")
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"student", "assignment", "submitted_assignment", "grade", "alembic_version"} <= tables
    with Gradebook(url) as gb:
        assert [s.id for s in gb.students] == ["ada"]


def test_forty_submissions_on_dask_into_postgres_equal_sequential_sqlite(postgres, tmp_path,
                                                                          monkeypatch):
    samples = load_samples(NOTEBOOK).STUDENTS
    names = sorted(samples)
    sequential = copy_course(tmp_path / "sqlite")
    add_fixture_checks(sequential)
    nbgrader(sequential, "generate_assignment", ASSIGNMENT, "--force")
    for name in names:
        write_submission(sequential, name, samples[name]["answers"])
    nbgrader(sequential, "autograde", ASSIGNMENT, "--force")

    root = copy_course(tmp_path / "postgres")
    add_fixture_checks(root)
    url = postgres.create_database("forty")
    use_database(root, url)
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    assert not (root / "gradebook.db").exists()  # nbgrader really uses PostgreSQL
    students = {f"s{i:03d}": names[i % len(names)] for i in range(SUBMISSIONS)}
    for student, sample in students.items():
        write_submission(root, student, samples[sample]["answers"])
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("AUTOGRADER_SCRATCH", str(scratch))
    report = runner.grade(ASSIGNMENT, root, scheduler="local:2", progress=False)

    assert {s: r["status"] for s, r in report["students"].items()} == dict.fromkeys(students, "graded")
    expected, got = scores_at(f"sqlite:///{sequential / 'gradebook.db'}"), scores_at(url)
    assert sorted(got) == sorted(students)
    assert len({sum(v or 0 for v in s.values()) for s in expected.values()}) > 1  # samples differ
    for student, sample in students.items():
        assert got[student] == expected[sample], student
        mine = _outputs(root / "autograded" / student / ASSIGNMENT / NOTEBOOK, root)
        theirs = _outputs(sequential / "autograded" / sample / ASSIGNMENT / NOTEBOOK, sequential)
        # tracebacks name the course's files (IPython shortens the kernel's $HOME, /tmp, to ~):
        # under the worker's scratch course, and under the sequential course, which _outputs has
        # already cut down to <its parent>/COURSE
        mine = re.sub(r"~?[\w./-]*?/scratch/autograder-\d+-\d+/[0-9a-f]+", "COURSE", mine)
        theirs = re.sub(r"~?[\w./-]*?/COURSE", "COURSE", theirs)
        assert mine == theirs, student
