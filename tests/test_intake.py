"""The front door (``autograder/kernel/submission/``), graded for real through every path.

Each case of tests/hostile/intake_cases.py is one student of the throw-away assignment ``tiny``
(tests/test_runner.py), beside ``alice`` (correct), ``bob`` (wrong), ``stub`` (the release
notebook, unanswered), a student whose id is ``*`` and ``zz_after`` (correct, graded last). The
same submissions are graded by plain ``nbgrader autograde``, by ``python -m autograder grade``
(the process pool) and, for the cases that touch it, by ``--scheduler local:2`` (Dask), each in
its own copy of the course and in a child process whose descendants' peak memory is measured
(``RUSAGE_CHILDREN``). For every path and case: the score is no higher than the honest twin's
(the same code without the trick), nothing outside the students' own output changed, the run
went on to ``zz_after``, and the grader's peak memory stayed under 500 MB.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import load_hostile_cases, require_bwrap
from test_hygiene import snapshot
from test_runner import make_course

from autograder.course_dir import with_tools_on_path
from autograder.kernel import submission
from autograder.notebooks import trusted_flags

cases = load_hostile_cases("intake_cases")

#: The grader's peak resident memory allowed, MB (an honest run takes about 135 MB).
PEAK_MB = 500
#: Everyone graded besides the cases.
OTHERS = {"alice": cases.CORRECT, "bob": "def answer():\n    return 41.0", "stub": None,
          "*": "def answer():\n    return 41.0", "zz_after": cases.CORRECT}
#: The cases graded on Dask too: the ones whose files the Dask client reads.
DASK_CASES = ("sparse_files", "link_to_source")
#: Runs a command and prints the peak resident memory of its largest descendant (kilobytes).
MEASURE = ("import resource, subprocess, sys\n"
           "code = subprocess.run(sys.argv[1:]).returncode\n"
           "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
           "print(f'PEAK_CHILDREN_KB {peak}', file=sys.stderr)\n"
           "sys.exit(code)\n")


def student(name: str) -> str:
    return f"case_{name}"


def populate(root: Path, release, names) -> None:
    for who, answer in OTHERS.items():
        cases._write(root / "submitted" / who / "tiny", cases.answered(release, answer))
    for name in names:
        cases.CASES[name].build(root / "submitted" / student(name) / "tiny", root, release)


def measured(root: Path, *command: str) -> tuple[subprocess.CompletedProcess, float]:
    """``command`` run in ``root``, and the peak memory of the grading processes, in MB."""
    env = with_tools_on_path({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    run = subprocess.run([sys.executable, "-c", MEASURE, *command], cwd=root, env=env,
                         capture_output=True, text=True, timeout=1800)
    peak = int(run.stderr.rsplit("PEAK_CHILDREN_KB ", 1)[1].split()[0]) / 1000
    return run, peak


def scores(root: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.find_assignment("tiny").submissions}


def changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def remove_tree(top: Path) -> None:
    """Delete a folder tree without recursion: pytest's own clean-up of old temporary folders
    (``shutil.rmtree``, recursive in Python 3.11) would raise RecursionError on the deep case."""
    stack = [str(top)]
    while stack:
        here = stack[-1]
        entries = list(os.scandir(here))
        folders = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)
        if folders:
            stack += folders
        else:
            os.rmdir(stack.pop())


def _state(root: Path) -> dict:
    """The course outside what a run may write: the students' autograded folders, the
    gradebook, the runner's reports/ and Python's caches."""
    skip = {root / "autograded", root / "gradebook.db", root / "reports"}
    return {k: v for k, v in snapshot(root, skip).items() if "__pycache__" not in k}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course with ``tiny`` generated, to copy for each path."""
    require_bwrap()
    return make_course(tmp_path_factory.mktemp("intake") / "base")


def _graded(course, tmp_path_factory, label: str, names, *command: str) -> dict:
    base, release = course
    root = tmp_path_factory.mktemp(label) / "course"
    shutil.copytree(base, root, symlinks=True)
    populate(root, release["tiny"], names)
    before = _state(root)
    run, peak = measured(root, *command)
    print(f"{label}: grader peak {peak:.0f} MB")
    report = root / "reports" / "tiny" / "runs.json"
    return {"root": root, "run": run, "peak": peak, "before": before, "after": _state(root),
            "scores": scores(root), "names": list(names),
            "report": json.loads(report.read_text()) if report.is_file() else None}


def _without_deep_folders(graded: dict) -> None:
    deep = graded["root"] / "submitted" / student("deep_folders")
    if deep.exists():
        remove_tree(deep)


@pytest.fixture(scope="module")
def by_nbgrader(course, tmp_path_factory):
    graded = _graded(course, tmp_path_factory, "nbgrader", cases.CASES,
                     str(Path(sys.executable).parent / "nbgrader"), "autograde", "tiny")
    yield graded
    _without_deep_folders(graded)


@pytest.fixture(scope="module")
def by_runner(course, tmp_path_factory):
    graded = _graded(course, tmp_path_factory, "runner", cases.CASES, sys.executable, "-m",
                     "autograder", "grade", "tiny", "--workers", "2", "--root", ".")
    yield graded
    _without_deep_folders(graded)


@pytest.fixture(scope="module")
def by_dask(course, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("dask-scratch")
    os.environ["AUTOGRADER_SCRATCH"] = str(scratch)  # the LocalCluster's workers inherit it
    try:
        return _graded(course, tmp_path_factory, "dask", DASK_CASES, sys.executable, "-m",
                       "autograder", "grade", "tiny", "--scheduler", "local:2", "--root", ".")
    finally:
        del os.environ["AUTOGRADER_SCRATCH"]


PATHS = ["by_nbgrader", "by_runner", "by_dask"]


def _flags(graded: dict, name: str) -> list[tuple[str, str]]:
    """What the path reports for a case: runs.json's flags, or the autograded notebook's."""
    if graded["report"] is not None:
        return [tuple(f) for f in graded["report"]["students"][student(name)]["flags"]]
    path = graded["root"] / "autograded" / student(name) / "tiny" / "tiny.ipynb"
    return trusted_flags(nbformat.read(path, as_version=4))


@pytest.mark.nbgrader
@pytest.mark.parametrize("path", PATHS)
def test_the_run_finished_and_graded_everyone_after(path, request):
    graded = request.getfixturevalue(path)
    assert graded["run"].returncode == 0, graded["run"].stderr[-3000:]
    assert "Traceback" not in graded["run"].stdout
    got = graded["scores"]
    assert got["zz_after"] == got["alice"] == 1.0 and got["bob"] == 0.0, got
    assert set(map(student, graded["names"])) <= set(got), got


@pytest.mark.nbgrader
@pytest.mark.parametrize("path", PATHS)
def test_nothing_outside_the_students_output_changed(path, request):
    graded = request.getfixturevalue(path)
    assert changed(graded["before"], graded["after"]) == []


@pytest.mark.nbgrader
@pytest.mark.parametrize("path", PATHS)
def test_the_graders_peak_memory_stays_under_500_mb(path, request):
    graded = request.getfixturevalue(path)
    assert graded["peak"] < PEAK_MB, graded["peak"]


@pytest.mark.nbgrader
@pytest.mark.parametrize(("name", "path"), [(name, path) for path in PATHS for name in cases.CASES
                                            if path != "by_dask" or name in DASK_CASES])
def test_no_trick_scores_above_its_honest_twin(path, name, request):
    graded = request.getfixturevalue(path)
    case = cases.CASES[name]
    got = graded["scores"][student(name)]
    honest = {"stub": graded["scores"]["stub"], "correct": graded["scores"]["alice"],
              None: 0.0}[case.honest]
    assert got <= honest, (got, honest)
    flags = _flags(graded, name)
    reasons = " | ".join(reason for _, reason in flags)
    assert case.reason in reasons, flags
    rejected = [reason for kind, reason in flags if kind == submission.REJECTED]
    if case.rejected:
        assert got == 0.0 and len(rejected) == 1, flags
    else:  # repaired, then graded as the honest twin
        assert got == honest and rejected == [], flags
    if graded["report"] is not None:
        status = graded["report"]["students"][student(name)]["status"]
        assert status == ("failed" if case.rejected else "graded")


def test_a_link_to_the_solutions_never_reaches_an_autograded_notebook(by_nbgrader, by_runner):
    """What the links pointed at (the instructor's solution, alice's notebook) was never read."""
    for graded in (by_nbgrader, by_runner):
        for name in ("link_to_source", "link_to_other"):
            for path in (graded["root"] / "autograded" / student(name)).rglob("*.ipynb"):
                assert "return 42.0" not in path.read_text(), path


def test_sparse_files_are_measured_by_apparent_size(by_nbgrader, by_runner, by_dask):
    """One 99 MB file fits the submission's 100 MiB; the other nine are left out, on every path."""
    for graded in (by_nbgrader, by_runner, by_dask):
        kept = graded["root"] / "autograded" / student("sparse_files") / "tiny"
        assert sorted(p.name for p in kept.glob("big*.bin")) == ["big0.bin"], graded["root"]
        assert (kept / "big0.bin").stat().st_size == cases.SPARSE_BYTES


def test_a_student_id_is_never_a_glob_or_a_path(by_runner):
    """``--students '*'`` grades the student called ``*``, nobody else; a path is refused."""
    root = by_runner["root"]
    others = {s: (root / "autograded" / s / "tiny" / "tiny.ipynb").stat().st_mtime_ns
              for s in ("alice", "bob", "zz_after")}
    run, _ = measured(root, sys.executable, "-m", "autograder", "grade", "tiny", "--students",
                      "*", "--workers", "1", "--root", ".")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((root / "reports" / "tiny" / "runs.json").read_text())
    assert list(report["students"]) == ["*"] and report["students"]["*"]["status"] == "graded"
    assert {s: (root / "autograded" / s / "tiny" / "tiny.ipynb").stat().st_mtime_ns
            for s in others} == others
    assert scores(root)["*"] == 0.0
    for bad in ("../submitted/alice", "..", "a/b"):
        run = subprocess.run([sys.executable, "-m", "autograder", "grade", "tiny", "--students",
                              bad, "--root", str(root)], capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 2 and "a student id must be one folder name" in run.stderr


# -- the pieces, without nbgrader ------------------------------------------------------------


@pytest.fixture
def releases(tmp_path) -> dict:
    """The ``tiny`` release of tests/test_runner.py, loaded as the front door loads it."""
    from test_runner import tiny_source

    nb = tiny_source()
    for cell in nb.cells:  # what generate_assignment leaves of the solution and hidden test
        if cell.metadata["nbgrader"]["grade_id"] == "answer":
            cell.source = "def answer():\n    raise NotImplementedError()"
        if cell.metadata["nbgrader"]["grade_id"] == "test_answer":
            cell.source = "# hidden test"
    path = tmp_path / "release" / "tiny" / "tiny.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return {"tiny": [submission.load_release(path, "tiny")]}


@pytest.mark.parametrize("name", list(cases.CASES))
def test_each_case_is_classified_without_blocking_or_raising(tmp_path, releases, name):
    """The front door alone, in this process: a FIFO would block it, 1,100 folders would raise
    RecursionError in a recursive walk, odd JSON would raise TypeError."""
    case = cases.CASES[name]
    release = releases["tiny"][0].notebook
    root = tmp_path / "course"
    (root / "source" / "tiny").mkdir(parents=True)
    nbformat.write(release, root / "source" / "tiny" / "tiny.ipynb")
    cases._write(root / "submitted" / "alice" / "tiny", cases.answered(release, cases.CORRECT))
    folder = root / "submitted" / student(name) / "tiny"
    case.build(folder, root, release)
    inspection = submission.inspect(folder, "tiny", releases)
    assert inspection.gradable is not case.rejected, inspection.flags
    assert case.reason in " | ".join(r for _, r in inspection.flags)
    target = tmp_path / "staged" / student(name) / "tiny"
    assert submission.stage(inspection, releases, target) == inspection.rejected
    staged = nbformat.read(target / "tiny.ipynb", as_version=4)
    nbformat.validate(staged)
    assert all(c.get("outputs", []) == [] for c in staged.cells)
    remove_tree(folder)


def test_student_ids_are_one_literal_folder_name():
    for good in ("alice", "*", "[a-z]", "o'brien", "a b"):
        assert submission.check_student_id(good) == good
    for bad in ("", ".", "..", "a/b", "../x", "a\x00b", "a\nb", None, 3):
        with pytest.raises(ValueError, match="student id"):
            submission.check_student_id(bad)
    assert submission.matches("*", "[*]") and not submission.matches("alice", "[*]")
    assert not submission.matches(".hidden", "*")


def test_the_size_rule_counts_apparent_size_and_blocks_used(tmp_path, releases):
    release = releases["tiny"][0].notebook
    folder = tmp_path / "submitted" / "s" / "tiny"
    cases._write(folder, cases.answered(release, cases.CORRECT))
    with open(folder / "sparse.bin", "wb") as fh:  # 150 MB apparent, no disk used
        fh.truncate(150 * 10**6)
    with open(folder / "dense.bin", "wb") as fh:  # 2 MB on disk
        fh.write(b"x" * 2 * 10**6)
    with open(folder / "reserved.bin", "wb") as fh:  # 0 bytes long, 3 MiB of disk reserved
        libc = ctypes.CDLL(None, use_errno=True)
        keep_size = 1  # FALLOC_FL_KEEP_SIZE, linux/falloc.h
        assert libc.fallocate(fh.fileno(), keep_size, ctypes.c_long(0),
                              ctypes.c_long(3 * 2**20)) == 0, os.strerror(ctypes.get_errno())
    sparse, reserved = os.stat(folder / "sparse.bin"), os.stat(folder / "reserved.bin")
    assert sparse.st_blocks * 512 < 10**6 and reserved.st_size == 0  # both tricks took
    inspection = submission.inspect(folder, "tiny", releases, max_file_bytes=int(2.5e6))
    assert [e.rel for e in inspection.files] == ["dense.bin"]
    reasons = " | ".join(r for _, r in inspection.flags)
    assert "sparse.bin (150 MB) is over the size limit" in reasons  # by apparent size
    assert "reserved.bin (3 MB) is over the size limit" in reasons  # by blocks used
    small = submission.inspect(folder, "tiny", releases, max_file_bytes=10**6)
    assert small.files == []  # 2 MB written is over a 1 MB limit


def test_a_timestamp_that_is_not_a_date_is_said_and_never_given_to_nbgrader(tmp_path, releases):
    from nbgrader.utils import parse_utc

    release = releases["tiny"][0].notebook
    folder = tmp_path / "submitted" / "s" / "tiny"
    cases._write(folder, cases.answered(release, cases.CORRECT))
    good = submission.inspect(folder, "tiny", releases)
    assert good.timestamp == parse_utc(cases.TIMESTAMP.strip()) and good.flags == []
    (folder / "timestamp.txt").write_text("not a date\n")
    bad = submission.inspect(folder, "tiny", releases)
    assert bad.gradable and bad.timestamp is None
    assert [kind for kind, _ in bad.flags] == ["bad-timestamp"]
    submission.stage(bad, releases, tmp_path / "staged")
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == ["tiny.ipynb"]
