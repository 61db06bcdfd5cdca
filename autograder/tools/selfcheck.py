"""``python -m autograder check NOTEBOOK [--html FILE]``: the self-check of one notebook.

A self-learner (on Binder, or a laptop with the full repository) grades their own notebook the
way the instructor's ``nbgrader autograde`` would: same hidden checks, same diagnoses, same
points. Nothing of the course directory changes:

1. The notebook is read (never written) through the front door (:mod:`autograder.kernel.
   submission`: a regular file, within the size and JSON limits, oddly typed metadata cleaned)
   and recognized by its graded cells among the course's own release notebooks, the one
   ``nbgrader_config.ASSIGNMENTS`` names per assignment (any file name works; other files in
   ``release/``, where a learner may keep copies or broken drafts, are never read). Locked cells
   that were edited or deleted are restored from the release, as the instructor's grading
   would, and the output says so.
2. A scratch copy of what grading needs is made in a temporary folder (``nbgrader_config.py``,
   ``course/``, ``autograder/``, ``data/``, ``source/<assignment>``) with the repaired notebook
   staged as ``submitted/self-check/<assignment>/<notebook>``.
3. One child process runs nbgrader's own commands there, in process, so nbgrader is imported
   once: ``generate_assignment`` (which builds the scratch gradebook from ``source/``),
   ``autograde``, and ``generate_feedback`` when ``--html`` is given. The course's own
   ``gradebook.db``, ``submitted/``, ``autograded/`` and ``feedback/`` are never opened.
4. The autograded notebook's test cells are read with :mod:`autograder.notebooks`: each hidden
   check's record (:func:`~autograder.notebooks.check_record`), never its printed text, gives
   the points, the parts passed, partial and failed, each diagnosis with the student's value
   beside the expected one, and the errors carried forward; written answers are listed as
   graded by a person.

Student code runs in the bubblewrap sandbox when it can start here
(:func:`autograder.kernel.sandbox.check_sandbox`); otherwise without it (``BN_UNSANDBOXED=1``),
which is said in one line: it is the learner's own code on their own machine.

Exit status: 0 at full marks on the autograded cells of an untampered notebook, 1 otherwise,
2 when the notebook cannot be graded (a one-line message, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.course_dir import ROOT
from autograder.notebooks import check_record, test_cells, trusted_flags, trusted_score
from autograder.record import FAILED, PARTIAL, PASSED
from autograder.record import render as render_record

#: What a course copy without the hidden half (a class release) gets.
FULL_REPOSITORY = ("self-check needs the full course repository (for example on Binder); "
                   "in a class, your instructor grades")
#: The nbgrader student id of the self-check's one submission (in the scratch copy only).
STUDENT = "self-check"
#: The one line printed when the sandbox cannot start here.
UNSANDBOXED_NOTE = ("note: bubblewrap's sandbox is not available here, so your notebook runs "
                    "without it: this is your own code on your own machine.")
#: Course folders (besides source/ and release/ of the assignment) that grading needs.
COPIED = ("course", "autograder", "data")
#: The notebook to check, copied into the scratch folder (the child reads only this copy).
INCOMING = "incoming.ipynb"
#: What the child leaves in the scratch folder for the parent: the SelfCheck as JSON.
RESULT = "selfcheck.json"
#: Seconds the child process may take (nbgrader's own per-cell timeout is 60 s).
CHILD_TIMEOUT = 900

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


class SelfCheckError(Exception):
    """The notebook cannot be self-checked; the message is one line for the learner."""


@dataclass
class TestCellResult:
    """One hidden test cell of the autograded notebook."""

    grade_id: str
    score: float
    points: float
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    diagnoses: list[tuple[str, str]] = field(default_factory=list)  # (id, explanation)
    report: str = ""
    partial: list[str] = field(default_factory=list)
    #: "4 of 6 parts passed, 1 partial, 1 failed" (every part counted once).
    summary: str = ""


@dataclass
class SelfCheck:
    """What the self-check found: per test cell, the written answers, and notes."""

    notebook: str
    assignment: str
    filename: str  # the released notebook's file name
    cells: list[TestCellResult]
    written: list[tuple[str, float]]  # (grade_id, points) graded by a person
    notes: list[str]
    flags: list[tuple[str, str]]
    restored: bool
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(c.score for c in self.cells)

    @property
    def points(self) -> float:
        return sum(c.points for c in self.cells)

    @property
    def full_marks(self) -> bool:
        return abs(self.score - self.points) < 1e-9


# ----------------------------------------------------------------------------- input
def require_full_course(root: Path) -> None:
    """Raise :class:`SelfCheckError` unless ``root`` holds the hidden half of the course
    (``autograder/checks/``, ``source/``, ``nbgrader_config.py``)."""
    needed = (root / "autograder" / "checks", root / "source", root / "nbgrader_config.py")
    if not all(p.exists() for p in needed):
        raise SelfCheckError(FULL_REPOSITORY)


def read_notebook_bytes(path: Path) -> bytes:
    """The bytes of the learner's notebook at ``path``, read through the front door
    (:func:`autograder.kernel.submission.read_path`: ``O_NOFOLLOW | O_NONBLOCK`` after an
    ``lstat``, so a FIFO never blocks; a link the learner made to their own file is resolved
    first), up to the notebook size limit.

    Raises
    ------
    SelfCheckError
        If it does not exist, is not a regular file, is too large or cannot be read.
    """
    from autograder.kernel.submission import MAX_NOTEBOOK_BYTES, RejectedSubmission, read_path

    path = Path(os.path.realpath(path))
    try:
        return read_path(path, MAX_NOTEBOOK_BYTES)
    except FileNotFoundError:
        raise SelfCheckError(f"{path} does not exist or is not a file") from None
    except (OSError, RejectedSubmission) as exc:
        raise SelfCheckError(f"{path.name} cannot be checked: {exc}") from None


def identify(path: Path, root: Path, name: str):
    """Read the notebook at ``path`` (called ``name``) and find the released notebook it is a
    copy of, by its graded cells (at least half of the release's), among the course's own
    (:func:`autograder.kernel.submission.named_releases`).

    Returns
    -------
    (nb, release, notes)
        The notebook repaired against the release (deleted locked cells put back, grade cells'
        metadata restored), its :class:`~autograder.kernel.submission.ReleaseNotebook`, and one
        line per edited or deleted locked cell (nbgrader grades the instructor's version).

    Raises
    ------
    SelfCheckError
        If the file is not a readable notebook or is none of the course's.
    """
    from autograder.kernel.submission import (
        RejectedSubmission,
        named_releases,
        owner,
        parse_notebook,
        repair_notebook,
        tampering,
    )

    try:
        nb = parse_notebook(read_notebook_bytes(path), name)
    except RejectedSubmission as exc:
        detail = str(exc).replace("is not a notebook (not JSON", "is not a notebook: malformed JSON")
        raise SelfCheckError(f"{name} is not a readable notebook ({detail})") from None
    releases = [r for found in named_releases(root).values() for r in found]
    reference = owner(nb, releases)
    if reference is None:
        raise SelfCheckError(
            f"{name} is not one of the course's notebooks (release/<assignment>/<notebook> as "
            "nbgrader_config.ASSIGNMENTS names it): self-check grades your copy of a released "
            "notebook")
    notes = [f"restored: {reason}" for kind, reason in tampering(nb, reference)]
    return repair_notebook(nb, reference.notebook), reference, notes


def sandbox_available() -> bool:
    """Whether student code can run in the bubblewrap sandbox here (and is not turned off)."""
    from autograder.kernel.sandbox import (
        SandboxUnavailableError,
        check_sandbox,
        unsandboxed_requested,
    )

    if unsandboxed_requested():
        return False
    try:
        check_sandbox()
    except SandboxUnavailableError:
        return False
    return True


# ----------------------------------------------------------------------------- grading (parent)
def make_scratch(root: Path, scratch: Path) -> Path:
    """Copy the course's grading machinery (config, ``course/``, ``autograder/``, ``data/``)
    from ``root`` into ``scratch``; the assignment's ``source/`` and ``release/`` folders follow
    once the notebook is identified (:func:`grade_here`)."""
    shutil.copy2(root / "nbgrader_config.py", scratch / "nbgrader_config.py")
    for name in COPIED:
        if (root / name).is_dir():
            shutil.copytree(root / name, scratch / name, ignore=_IGNORED)
    return scratch


def run_child(scratch: Path, root: Path, name: str, feedback: bool) -> dict:
    """Run :func:`child_main` in a new Python process started in ``scratch`` (so it imports the
    scratch copy of ``autograder/``, and nbgrader loads the scratch ``nbgrader_config.py``).

    Raises
    ------
    SelfCheckError
        If the child fails (the last line of nbgrader's log says why) or times out.
    """
    bindir = str(Path(sys.executable).parent)
    # nbgrader runs `alembic` and kernels from PATH; PYTHONPATH would bring another autograder/
    env = {**os.environ, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}
    env.pop("PYTHONPATH", None)
    code = "import sys; from autograder.tools.selfcheck import child_main; child_main(sys.argv[1:])"
    cmd = [sys.executable, "-c", code, str(root), name, "1" if feedback else "0"]
    try:
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SelfCheckError(f"grading took longer than {CHILD_TIMEOUT} s and was stopped") from None
    result = scratch / RESULT
    if not result.is_file():
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "[ERROR]" in ln or "Error" in ln] or lines
        raise SelfCheckError("nbgrader could not grade the notebook: "
                             + (errors[-1] if errors else f"exit code {proc.returncode}"))
    return json.loads(result.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- grading (child)
def child_main(argv: list[str]) -> None:
    """The child's entry point: ``ROOT NAME FEEDBACK``; writes :data:`RESULT` in the current
    directory (the scratch copy): a :class:`SelfCheck` as JSON, or ``{"error": message}``."""
    root, name, feedback = Path(argv[0]), argv[1], argv[2] == "1"
    try:
        data = grade_here(root, Path.cwd(), name, feedback)
    except SelfCheckError as exc:
        data = {"error": str(exc)}
    (Path.cwd() / RESULT).write_text(json.dumps(data), encoding="utf-8")


def grade_here(root: Path, scratch: Path, name: str, feedback: bool) -> dict:
    """Identify the notebook :data:`INCOMING`, lay out the scratch course, grade it with
    nbgrader, and read the autograded notebook (the child's work)."""
    import nbformat

    nb, reference, notes = identify(scratch / INCOMING, root, name)
    # the instructor's source only: generate_assignment makes the scratch release from it, so
    # no file of a learner's release folder reaches the grading
    shutil.copytree(root / "source" / reference.assignment,
                    scratch / "source" / reference.assignment, ignore=_IGNORED)
    if not sandbox_available():
        os.environ["BN_UNSANDBOXED"] = "1"  # nbgrader's kernel manager reads it
        notes.insert(0, UNSANDBOXED_NOTE)
    filename = f"{reference.name}.ipynb"
    submitted = scratch / "submitted" / STUDENT / reference.assignment
    submitted.mkdir(parents=True)
    nbformat.write(nb, submitted / filename)
    run_nbgrader_here(reference.assignment, STUDENT, feedback)
    graded = nbformat.read(scratch / "autograded" / STUDENT / reference.assignment / filename, 4)
    return asdict(read_result(graded, name, reference.assignment, filename, notes))


def _alembic_head() -> str:
    """The newest revision of nbgrader's gradebook schema, asked of alembic in process.

    nbgrader 0.9.6 stamps a new gradebook with this revision by running ``alembic heads`` in a
    subprocess (``nbgrader.api.get_alembic_version``): 2.4 s of CPU, more than the rest of the
    self-check's gradebook work. alembic's own API gives the same answer (tested) in 0.1 s.
    """
    import nbgrader
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
    return ScriptDirectory.from_config(config).get_current_head()


def run_nbgrader(steps: list[list[str]]) -> None:
    """Run nbgrader commands (``["autograde", "02_batchnorm_forward", "--force"]``, ...) in this
    process, one after the other, in the current directory, as ``nbgrader`` on the command line
    runs them; nbgrader is imported once.

    Raises
    ------
    SystemExit
        When a command fails (nbgrader's own way of failing).
    """
    import nbgrader.api
    from jupyter_core.application import NoStart
    from nbgrader.apps import NbGraderApp

    nbgrader.api.get_alembic_version = _alembic_head
    for args in steps:
        app = NbGraderApp.instance()
        try:
            app.initialize(args)
            app.start()
        except NoStart:  # how a Jupyter application says that its subcommand has finished
            pass
        finally:
            app.reset()


def run_nbgrader_here(assignment: str, student: str, feedback: bool) -> None:
    """nbgrader's ``generate_assignment`` (which fills the scratch gradebook from ``source/``),
    ``autograde`` (and ``generate_feedback``) for one student, in the current directory."""
    steps = [["generate_assignment", assignment, "--force"],
             ["autograde", assignment, "--force", f"--student={student}"]]
    if feedback:
        steps.append(["generate_feedback", assignment, "--force", f"--student={student}"])
    run_nbgrader(steps)


def cell_score(cell) -> float:
    """A test cell's score: the trusted side's record, else nbgrader's own ``determine_grade``
    (the one place to change when every score is recorded in the trusted metadata)."""
    score = trusted_score(cell)
    if score is None:
        from nbgrader.utils import determine_grade

        score = determine_grade(cell)[0]
    return float(score or 0.0)


def parse_cell(cell) -> TestCellResult:
    """Points, parts and diagnoses of one autograded test cell, from the record its hidden check
    left in the trusted metadata (:func:`autograder.notebooks.check_record`); nothing is read
    back from the printed output, which student text could imitate."""
    meta = cell["metadata"]["nbgrader"]
    result = TestCellResult(meta.get("grade_id", "?"), cell_score(cell), float(meta.get("points", 0)))
    record = check_record(cell)
    if record is None:  # not run (a kernel that died before it): the trusted side said why
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        result.report = "\n".join(f"{o.get('ename', '')}: {o.get('evalue', '')}" for o in errors) \
            or "this check left no record (it did not run)"
        result.summary = "no parts ran"
        return result
    for part in record.parts:
        {PASSED: result.passed, PARTIAL: result.partial, FAILED: result.failed}[part.status].append(
            part.name)
    explained = {d.id: d.explanation for d in reversed(record.diagnoses) if d.id}
    result.diagnoses = [(mk, explained[mk]) for mk in record.diagnosis_ids]
    result.summary = record.summary()
    result.report = "\n".join(render_record(record).splitlines()[1:])  # the title line is ours below
    return result


def read_result(graded_nb, notebook: str, assignment: str, filename: str,
                notes: list[str]) -> SelfCheck:
    """The :class:`SelfCheck` of an autograded notebook."""
    written = [
        (c.metadata.nbgrader.get("grade_id", "?"), float(c.metadata.nbgrader.get("points", 0)))
        for c in graded_nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "markdown"
    ]
    flags = [f for f in trusted_flags(graded_nb) if f[0] != "sandbox-off"]
    cells = [parse_cell(c) for c in test_cells(graded_nb)]
    return SelfCheck(notebook, assignment, filename, cells, written, notes, flags, restored=any(n.startswith("restored") for n in notes))


def self_check(path: Path, html: Path | None = None, root: Path = ROOT) -> SelfCheck:
    """Grade the notebook at ``path`` as ``nbgrader autograde`` would, in a scratch copy.

    Parameters
    ----------
    path : Path
        A student's copy of one of ``release/*/*.ipynb`` (any name). Never modified.
    html : Path, optional
        Where to write nbgrader's feedback HTML.
    root : Path
        The full course repository.

    Returns
    -------
    SelfCheck

    Raises
    ------
    SelfCheckError
        For anything that keeps the notebook from being graded (one line for the learner).
    """
    start = time.perf_counter()
    path = Path(path)
    require_full_course(root)
    if importlib.util.find_spec("nbgrader") is None:
        raise SelfCheckError(f"nbgrader is not installed for {sys.executable}: run `make check "
                             "NB=...`, or activate the course's environment (.venv) first")
    data = read_notebook_bytes(path)
    try:
        json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SelfCheckError(f"{path.name} is not a notebook: malformed JSON ({exc})") from None
    with tempfile.TemporaryDirectory(prefix="bn-selfcheck-") as tmp:
        scratch = make_scratch(root, Path(tmp))
        (scratch / INCOMING).write_bytes(data)
        data = run_child(scratch, root, path.name, html is not None)
        if "error" in data:
            raise SelfCheckError(data["error"])
        if html is not None:
            stem = Path(data["filename"]).stem
            feedback = scratch / "feedback" / STUDENT / data["assignment"] / f"{stem}.html"
            Path(html).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(feedback, html)
    data["cells"] = [TestCellResult(**c) for c in data["cells"]]
    result = SelfCheck(**data)
    result.seconds = time.perf_counter() - start
    return result


# ----------------------------------------------------------------------------- output
def render(result: SelfCheck) -> str:
    """The self-check's report, as printed."""
    lines = [f"Self-check of {result.notebook} (assignment {result.assignment}), graded as "
             "nbgrader autograde grades it."]
    lines += [f"{note}" for note in result.notes]
    if any(cell.partial for cell in result.cells):
        lines.append("Parts: [ok  ] passed, [part] partial credit (some of its points), [FAIL] "
                     "failed.")
    for cell in result.cells:
        summary = cell.summary or "no parts ran"
        lines += ["", f"{cell.grade_id}: {cell.score:g} / {cell.points:g} points ({summary})"]
        lines += [ln if ln.startswith("  ") else f"  {ln}" for ln in cell.report.splitlines()]
        if cell.diagnoses:
            lines.append("  diagnosed: " + ", ".join(m for m, _ in cell.diagnoses)
                         + " (explained in autograder/MISCONCEPTIONS.md)")
    if result.written:
        lines.append("")
        lines += [f"{gid}: {pts:g} points, graded by a person" for gid, pts in result.written]
    lines += [f"Flag [{kind}]: {reason}" for kind, reason in result.flags]
    written = sum(p for _, p in result.written)
    lines += ["", f"Total: {result.score:g} / {result.points:g} points on the autograded cells"
              + (f" (+ {written:g} points of written answers, graded by a person)" if written else "")
              + f". Checked in {result.seconds:.1f} s."]
    if result.restored:
        lines.append("Locked cells were restored from the release, so this is not your notebook "
                     "as it stands: undo the edits to those cells.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder check",
        description="Grade one notebook the way nbgrader autograde would, with the hidden "
                    "checks and their diagnoses, without touching the course's gradebook.")
    parser.add_argument("notebook", type=Path, help="your notebook, e.g. release/02_batchnorm_forward/batchnorm_forward.ipynb")
    parser.add_argument("--html", type=Path, help="also write nbgrader's feedback HTML here")
    args = parser.parse_args(argv)
    try:
        result = self_check(args.notebook, html=args.html)
    except SelfCheckError as exc:
        print(f"self-check: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug of the self-check, in one line rather than a traceback
        print(f"self-check failed ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
        return 3
    print(render(result))
    return 0 if result.full_marks and not result.restored else 1


if __name__ == "__main__":
    raise SystemExit(main())
