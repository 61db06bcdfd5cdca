"""The front door: every submission is read here, and only here, before anything grades it.

A submission folder, ``submitted/<student>/<assignment>/``, is the student's: it may hold
symlinks (a copy would follow them into ``source/`` or another student's work), FIFOs (``open``
blocks forever), deep folder chains (``RecursionError`` in a recursive walk), sparse files that
are small on disk and huge when read, deeply nested or oddly typed notebook JSON (``tags:
null``, a list as a cell id, ``outputs`` that are not a list), duplicated or retyped grade
cells, and metadata of its own (``skip-execution`` on a test cell, a forged ``autograder`` key).
Four steps turn it into something nbgrader can grade, each in its own module:

1. :func:`scan` (:mod:`.files`): ``lstat`` only, an iterative walk, the folder rules (no link,
   hard link, FIFO, socket or device; at most :data:`MAX_DEPTH` levels and :data:`MAX_FILES`
   entries). Files are later opened with ``O_NOFOLLOW | O_NONBLOCK`` from folder descriptors
   and checked again with ``fstat``.
2. :func:`classify` (:mod:`.classify`): the verdict of each expected notebook (ok, renamed,
   missing, malformed, wrong assignment), tampered read-only cells, the size rule (apparent size
   and blocks used), the timestamp. It returns a typed :class:`Inspection`; a submission with
   nothing gradable is *rejected* (graded 0 with the reason). Nothing a submission holds makes
   it raise: every error is that submission's reason, never the run's.
3. :func:`repair` (:mod:`.notebook`): grade cells made to match the release notebook.
4. :func:`stage` (:mod:`.stage`): the sanitized copy nbgrader reads.

Who uses it: :class:`SanitizedAutograde` (:mod:`.autograde`; every ``nbgrader autograde``, and
the runner's grading processes), the runner's parent (``classify`` only, to zero what cannot be
graded before dispatch, and ``stage`` for what a Dask job carries) and the self-check (reading,
identifying and staging the learner's notebook). Student ids are literal folder names
(:func:`check_student_id`), never globs, paths or shell words.

May import ``autograder.notebooks``, ``autograder.course_dir`` and the rest of
``autograder.kernel`` (``terminal``, ``trusted_config``); nbgrader and nbformat. Never
``autograder.tools`` or ``autograder.checks``.
"""

from __future__ import annotations

from pathlib import Path

from autograder.kernel.submission.autograde import SanitizedAutograde, install, matches
from autograder.kernel.submission.classify import (
    MALFORMED,
    MAX_JSON_VALUES,
    MISSING,
    OK,
    REJECTED,
    RENAMED,
    WRONG,
    Inspection,
    NotebookVerdict,
    Releases,
    cached_release,
    classify,
    course_releases,
    named_releases,
    repair,
)
from autograder.kernel.submission.files import (
    CHUNK,
    MAX_DEPTH,
    MAX_FILES,
    MAX_NOTEBOOK_BYTES,
    MAX_TOTAL_BYTES,
    FileEntry,
    RejectedSubmission,
    Scan,
    check_student_id,
    copy_regular,
    printable,
    read_path,
    read_regular,
    scan,
    scan_folder,
)
from autograder.kernel.submission.notebook import (
    EXECUTION_TAGS,
    MAX_JSON_DEPTH,
    ReleaseNotebook,
    load_release,
    owner,
    parse_notebook,
    repair_notebook,
    tampering,
)
from autograder.kernel.submission.stage import stage


def inspect(folder: Path, assignment: str, releases: Releases,
            max_file_bytes: int = MAX_TOTAL_BYTES, keep_notebooks: bool = True) -> Inspection:
    """:func:`scan` then :func:`classify` one submission folder (see :func:`classify`)."""
    return classify(scan(Path(folder)), assignment, releases, max_file_bytes, keep_notebooks)


def stage_submission(folder: Path, release_dir: Path, target: Path) -> str | None:
    """Inspect ``folder`` against every notebook of ``release_dir`` and stage it into
    ``target`` (the older one-call API; see :func:`stage`).

    Returns
    -------
    str or None
        Why the submission was rejected, or None.
    """
    release_dir = Path(release_dir)
    assignment = release_dir.name
    releases = {assignment: [load_release(p, assignment)
                             for p in sorted(release_dir.glob("*.ipynb"))]}
    return stage(inspect(folder, assignment, releases), releases, Path(target))


__all__ = [
    "CHUNK", "EXECUTION_TAGS", "MALFORMED", "MAX_DEPTH", "MAX_FILES", "MAX_JSON_DEPTH",
    "MAX_JSON_VALUES", "MAX_NOTEBOOK_BYTES", "MAX_TOTAL_BYTES", "MISSING", "OK", "REJECTED",
    "RENAMED", "WRONG", "FileEntry", "Inspection", "NotebookVerdict", "RejectedSubmission",
    "ReleaseNotebook", "Releases", "SanitizedAutograde", "Scan", "cached_release",
    "check_student_id", "classify", "copy_regular", "course_releases", "inspect", "install",
    "load_release", "matches", "named_releases", "owner", "parse_notebook", "printable", "read_path", "read_regular", "repair",
    "repair_notebook", "scan", "scan_folder", "stage", "stage_submission", "tampering",
]
