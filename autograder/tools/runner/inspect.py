"""What the runner finds in a submission before grading it: :func:`inspect_submission`.

The runner has no intake of its own. It asks the front door (:mod:`autograder.kernel.submission`)
to scan and classify each submission, only to decide before dispatch who is zeroed (nothing
gradable, or a rule broken: a link, a FIFO, a folder too deep, a malformed or missing notebook)
and which flags runs.json lists. The notebooks are not kept: the grading process reads the
submission again through the same front door (:class:`~autograder.kernel.submission.
SanitizedAutograde`), which repairs and stages it. Nothing here opens, parses, repairs or copies
a file.
"""

from __future__ import annotations

from pathlib import Path

from autograder.kernel.submission import (
    Inspection,
    ReleaseNotebook,
    Releases,
    course_releases,
    inspect,
)

Flag = tuple[str, str]


def release_notebooks(coursedir) -> Releases:
    """``{assignment: [release notebooks]}`` of every assignment in the course's gradebook
    (:func:`autograder.kernel.submission.course_releases`)."""
    return course_releases(coursedir)


def inspect_submission(folder: Path, assignment: str, releases: Releases,
                       max_file_size_kb: int) -> Inspection:
    """The front door's verdict on one submission folder, without its notebooks.

    Parameters
    ----------
    folder : Path
        ``submitted/<student>/<assignment>``.
    assignment : str
        The assignment being graded.
    releases : dict of str to list of ReleaseNotebook
        :func:`release_notebooks`.
    max_file_size_kb : int
        nbgrader's ``CourseDirectory.max_file_size`` (kilobytes): the size rule's per-file limit.

    Returns
    -------
    Inspection
        ``gradable``, ``problem``, ``flags`` and ``timestamp`` are what the runner uses.
    """
    return inspect(folder, assignment, releases, int(max_file_size_kb) * 1000,
                   keep_notebooks=False)


__all__ = ["Flag", "Inspection", "ReleaseNotebook", "inspect_submission", "release_notebooks"]
