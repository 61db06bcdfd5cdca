"""The front door's last step: the sanitized copy nbgrader grades (:func:`stage`).

An accepted submission is staged as its repaired notebooks (under the release's names), the
files the size rule kept (copied a chunk at a time from descriptors that follow no link) and
``timestamp.txt`` when it parsed. A rejected one is staged as the release notebooks, each
opening with a one-line note, so nbgrader records a 0 for every cell and the run goes on; the
reason is flagged in the autograded notebook afterwards
(:class:`~autograder.kernel.submission.autograde.SanitizedAutograde`). A file that changed
between the scan and the copy rejects the submission there and then.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat

from autograder.kernel.submission.classify import Inspection, Releases, repair
from autograder.kernel.submission.files import (
    TIMESTAMP,
    RejectedSubmission,
    copy_regular,
    printable,
)


def stage(inspection: Inspection, releases: Releases, target: Path) -> str | None:
    """Write the sanitized copy of one inspected submission into ``target``.

    Parameters
    ----------
    inspection : Inspection
        From :func:`~autograder.kernel.submission.classify.classify` (with the notebooks kept);
        repaired here if it was not yet. Updated when the copy finds the submission changed.
    releases : dict of str to list of ReleaseNotebook
        As given to ``classify``.
    target : Path
        A folder that does not exist yet (``<staging root>/<student>/<assignment>``).

    Returns
    -------
    str or None
        Why the submission was rejected (``target`` then holds the release notebooks), or None.

    Raises
    ------
    FileExistsError
        If ``target`` exists.
    """
    target.mkdir(parents=True, exist_ok=False)
    if inspection.gradable:
        try:
            _stage_accepted(inspection, releases, target)
        except RejectedSubmission as exc:
            inspection.reject(str(exc))
        except OSError as exc:  # vanished or unreadable meanwhile
            inspection.reject(f"the submission could not be read ({printable(exc.strerror or exc)})")
        except Exception as exc:  # noqa: BLE001 - never the run's error, always this student's
            inspection.reject(f"the submission could not be staged ({type(exc).__name__}: {exc})")
        else:
            return None
        _clear(target)
    _stage_rejected(inspection, releases, target)
    return inspection.rejected


def _stage_accepted(inspection: Inspection, releases: Releases, target: Path) -> None:
    repair(inspection, releases)
    for name, verdict in inspection.notebooks.items():
        if verdict.gradable:  # a missing one is zeroed by nbgrader itself
            nbformat.write(verdict.notebook, target / f"{name}.ipynb")
    for entry in inspection.files:
        limit = entry.footprint
        copy_regular(inspection.folder, entry, target / entry.rel, limit)
    _write_timestamp(inspection, target)


def _write_timestamp(inspection: Inspection, target: Path) -> None:
    if inspection.timestamp_text is not None:
        (target / TIMESTAMP).write_text(inspection.timestamp_text + "\n", encoding="utf-8")


def _clear(target: Path) -> None:
    for entry in list(target.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _stage_rejected(inspection: Inspection, releases: Releases, target: Path) -> None:
    """The release notebooks, each opening with the reason; the timestamp when it parsed."""
    reason = inspection.rejected or ""
    note = "".join(ch if ch.isalnum() or ch in " .,:;-_/()'" else f"&#{ord(ch)};" for ch in reason)
    for ref in releases[inspection.assignment]:
        nb = copy.deepcopy(ref.notebook)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(
            f"**Submission rejected, graded 0:** {note}. The release notebook was graded instead."))
        nbformat.write(nb, target / f"{ref.name}.ipynb")
    _write_timestamp(inspection, target)
