"""The course's main job, end to end: ``make demo`` (``python -m autograder.tools.demo``).

1. Regenerates the files generated from the reference (``autograder/provided.py``), then
   ``release/`` from ``source/`` with ``nbgrader generate_assignment``.
2. Places the sample submissions (``autograder/samples/``) in ``submitted/`` as four demo
   students per assignment, built from the *release* notebooks.
3. Runs ``nbgrader autograde``, ``nbgrader generate_feedback`` and ``nbgrader export``. Where
   the bubblewrap sandbox cannot start (no bubblewrap, macOS, a container without user
   namespaces), the demo grades its own trusted sample submissions without it and says so in
   one line; grading real submissions still refuses to run unsandboxed unless asked
   (``BN_UNSANDBOXED=1``, ``python -m autograder grade --unsandboxed``).
4. Prints a per-student score table with the diagnoses found in each autograded notebook, and
   writes each assignment's grade report (``reports/<assignment>/report.html`` and ``.csv``).

Only nbgrader's own commands touch the gradebook. Demo students have ids ``demo_<name>`` and the
demo regrades only them, so an instructor's real submissions in the same course directory are
left alone.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.course_dir import ROOT, put_tools_on_path, with_tools_on_path
from autograder.course_dir import assignments as course_assignments
from autograder.kernel.sandbox import (
    UNSANDBOXED_ENV,
    SandboxUnavailableError,
    check_sandbox,
    unsandboxed_requested,
)
from autograder.notebooks import diagnoses
from autograder.samples import unmet_expectations
from autograder.tools.provided import write_all as write_provided

DEMO_PREFIX = "demo_"


def load_samples(notebook: str):
    """The sample-submission module for a notebook (``autograder/samples/<stem>.py``)."""
    return importlib.import_module(f"autograder.samples.{Path(notebook).stem}")


def demo_environment() -> dict[str, str]:
    """The environment the demo runs nbgrader in: this Python's tools on PATH and, where the
    sandbox cannot start, ``BN_UNSANDBOXED=1``, announced in one printed line.

    The demo grades only the course's own sample submissions (``autograder/samples/``), which
    are trusted code, so running them without the sandbox puts nothing at risk. Real
    submissions are graded by ``nbgrader autograde`` or the runner, which still refuse.
    """
    env = with_tools_on_path()
    if unsandboxed_requested(env):
        return env
    try:
        check_sandbox()
    except SandboxUnavailableError as exc:
        reason = str(exc).removeprefix("The sandbox for student code cannot start: ")
        reason = reason.split(". Install bubblewrap")[0].rstrip(".")
        env[UNSANDBOXED_ENV] = "1"
        print(f"Sandbox off for the demo ({reason}): it grades only the course's own sample "
              "submissions. To grade in the sandbox, install bubblewrap (Debian/Ubuntu: "
              "`apt-get install bubblewrap`) and run `make demo` again.", flush=True)
    return env


def nbgrader(*args: str, root: Path = ROOT, env: dict[str, str] | None = None) -> None:
    """Run one of nbgrader's own commands from the course root; stop the demo if it fails.

    ``env`` is the environment to run it in (default: this one, with this Python's tools on
    ``PATH``: nbgrader runs ``alembic`` from there).
    """
    exe = Path(sys.executable).parent / "nbgrader"
    cmd = [str(exe) if exe.exists() else "nbgrader", *args]
    env = with_tools_on_path() if env is None else env
    print(f"$ nbgrader {' '.join(args)}", flush=True)
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"nbgrader {args[0]} failed with exit code {result.returncode}")


def build_submission(release_nb: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of the release notebook with the given cells (by nbgrader grade_id) filled in.

    Raises
    ------
    KeyError
        If a sample names a grade_id the release notebook does not have (samples out of date).
    """
    nb = nbformat.read(release_nb, as_version=4)
    by_id = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in nb.cells
        if "nbgrader" in c.metadata and "grade_id" in c.metadata["nbgrader"]
    }
    missing = sorted(set(answers) - set(by_id))
    if missing:
        raise KeyError(f"{release_nb.name} has no cells with grade_id {missing}")
    for grade_id, source in answers.items():
        if not by_id[grade_id].metadata["nbgrader"].get("solution", False):
            raise KeyError(f"{release_nb.name}: cell {grade_id!r} is not an answer cell")
        by_id[grade_id].source = source.strip("\n")
    return nb


def place_submissions(assignments: dict[str, str], root: Path = ROOT) -> list[str]:
    """Write every sample student's notebooks to ``submitted/``; return the student ids."""
    students: set[str] = set()
    for assignment, notebook in assignments.items():
        samples = load_samples(notebook)
        release_nb = root / "release" / assignment / notebook
        for name, sample in samples.STUDENTS.items():
            student = DEMO_PREFIX + name
            students.add(student)
            for sub in ("submitted", "autograded", "feedback"):
                shutil.rmtree(root / sub / student / assignment, ignore_errors=True)
            target = root / "submitted" / student / assignment
            target.mkdir(parents=True)
            nbformat.write(build_submission(release_nb, sample["answers"]), target / notebook)
            (target / "timestamp.txt").write_text("2026-11-20 09:00:00.000000 UTC\n")
    return sorted(students)


@dataclass
class Row:
    student: str
    assignment: str
    auto: float = 0.0
    auto_max: float = 0.0
    manual_max: float = 0.0
    manual_pending: int = 0
    diagnoses: list[str] = field(default_factory=list)


def collect(assignments: dict[str, str], students: list[str], root: Path = ROOT) -> list[Row]:
    """Scores from the gradebook, and diagnoses from the records of the autograded notebooks'
    hidden checks (:func:`autograder.notebooks.diagnoses`)."""
    from nbgrader.api import Gradebook

    put_tools_on_path()  # the Gradebook runs `alembic`
    rows = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in students:
            for assignment, notebook in assignments.items():
                row = Row(student, assignment)
                nb = gb.find_submission_notebook(Path(notebook).stem, assignment, student)
                for grade in nb.grades:
                    if grade.cell_type == "code":
                        row.auto += grade.auto_score or 0.0
                        row.auto_max += grade.max_score
                    else:
                        row.manual_max += grade.max_score
                        row.manual_pending += int(grade.needs_manual_grade)
                graded = nbformat.read(root / "autograded" / student / assignment / notebook, 4)
                row.diagnoses = sorted(diagnoses(graded), key=lambda m: int(m[1:]))
                rows.append(row)
    return rows


def expectation_met(row: Row, expect: dict) -> bool:
    """Whether a demo row agrees with what its sample declares (``expect``)."""
    return not unmet_expectations(expect, row.auto, row.auto_max, set(row.diagnoses))


def print_table(rows: list[Row], assignments: dict[str, str]) -> bool:
    """Print the grade table; return True when every row is as its sample expects."""
    header = f"{'student':<10} {'assignment':<24} {'auto score':>12} {'written':>12}  {'as expected':<11}  diagnoses"
    print("\n" + header + "\n" + "-" * len(header))
    all_ok = True
    for row in rows:
        expect = load_samples(assignments[row.assignment]).STUDENTS[
            row.student.removeprefix(DEMO_PREFIX)
        ]["expect"]
        ok = expectation_met(row, expect)
        all_ok &= ok
        written = (
            f"{row.manual_pending} to grade" if row.manual_pending else f"0 / {row.manual_max:g}"
        )
        print(
            f"{row.student.removeprefix(DEMO_PREFIX):<10} {row.assignment:<24} "
            f"{row.auto:>5g} / {row.auto_max:<4g} {written:>12}  {'yes' if ok else 'NO':<11}  "
            f"{', '.join(row.diagnoses) or '-'}"
        )
    print(
        "\nauto score: hidden autograder tests (partial credit per test cell). written: answers "
        "that wait for manual grading in the Formgrader (an empty answer scores 0 at once).\n"
        "Diagnoses are misconception ids (autograder/MISCONCEPTIONS.md), explained in each student's "
        "feedback: feedback/<student>/<assignment>/*.html"
    )
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release-only", action="store_true", help="only regenerate release/")
    parser.add_argument("--assignment", action="append", metavar="NAME",
                        help="only this assignment (repeatable; default: all of them)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    assignments = course_assignments()
    unknown = sorted(set(args.assignment or ()) - set(assignments))
    if unknown:
        parser.error(f"--assignment must be one of {sorted(assignments)}, got {unknown}")
    if args.assignment:
        assignments = {a: nb for a, nb in assignments.items() if a in args.assignment}
    for path in write_provided():  # files generated from the reference (assignment 04)
        print(f"wrote {path.relative_to(ROOT)}", flush=True)
    for assignment in assignments:
        nbgrader("generate_assignment", assignment, "--force")
    if args.release_only:
        return 0
    students = place_submissions(assignments)
    pattern = f"{DEMO_PREFIX}*"
    env = demo_environment()
    for assignment in assignments:
        nbgrader("autograde", assignment, "--force", f"--student={pattern}", env=env)
    for assignment in assignments:
        nbgrader("generate_feedback", assignment, "--force", f"--student={pattern}")
    nbgrader("export")
    ok = print_table(collect(assignments, students), assignments)
    print()
    from autograder.tools import (
        report,  # the grade report: score histogram, pass rates, mistakes, flags
    )

    for assignment in assignments:
        report.main([assignment, "--root", str(ROOT)])
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s; grades exported to grades.csv.")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
