"""nbgrader's ``Autograde``, reading every submission through the front door:
:class:`SanitizedAutograde`, installed for ``nbgrader autograde`` by ``nbgrader_config.py``
(:func:`install`); the runner's grading processes run the same app class with the same config.

Why a subclass: nbgrader 0.9.6 reads the submission in four places, all through
``_format_source`` / ``coursedir.submitted_directory``: ``init_notebooks`` (glob),
``init_destination`` and ``init_assignment`` (``timestamp.txt``, ``shutil.copy`` of every other
file, the missing-notebook check) and the sanitize pass of ``convert_single_notebook``; and its
``init_notebooks`` uses each folder it globbed as a glob again (student ``*`` took everyone's
notebooks). The
exporter (``c.Autograde.exporter_class``) only sees the notebooks, after the file copies and the
timestamp read have already followed links or blocked on FIFOs; a ``pre_convert_hook`` runs after
``init_destination`` and is told only the glob, not the student. :class:`SanitizedAutograde`
finds the submissions itself (a listing of ``submitted/``, never a glob of the filesystem),
stages every one (scan, classify, repair, stage) before any of them is graded, and points
``submitted_directory`` at the staging root (an absolute path, which nbgrader's
``format_path`` supports) for the rest of the run, so all four readers see the sanitized copy.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
from nbgrader.converters import Autograde
from nbgrader.converters.base import NbGraderException

from autograder.kernel.submission.classify import Inspection, classify, course_releases
from autograder.kernel.submission.files import printable, scan
from autograder.kernel.submission.stage import stage
from autograder.kernel.terminal import protect_log
from autograder.kernel.trusted_config import UntrustedConfigError, check_config
from autograder.notebooks import add_flag


def matches(name: str, pattern: str) -> bool:
    """Whether a folder ``name`` matches nbgrader's ``--student`` / assignment ``pattern`` as
    ``glob`` would (``*`` never matches a leading dot); ``glob.escape`` makes any id literal."""
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, pattern)


class SanitizedAutograde(Autograde):
    """nbgrader's ``Autograde``, reading every submission from a sanitized staging copy.

    It first refuses to run unless the configuration still names the sandbox
    (:func:`autograder.kernel.trusted_config.check_config`). ``init_notebooks`` lists the
    submissions, inspects and stages each one (:func:`inspect` and
    :func:`~autograder.kernel.submission.stage.stage`) into a private temporary folder, and
    grades from there; the staging folder is removed when the run ends. A rejected submission
    is logged with its reason and graded from the release notebooks (every test scores 0); the
    flags of each inspection are recorded in its autograded notebooks.
    """

    def start(self) -> None:
        protect_log(self.log)
        try:
            check_config(self.config)
        except UntrustedConfigError as exc:
            self.log.error("%s", exc)
            raise NbGraderException(str(exc)) from exc
        original = self.coursedir.submitted_directory
        self._staging: Path | None = None
        try:
            super().start()
        finally:
            self.coursedir.submitted_directory = original
            if self._staging is not None:
                shutil.rmtree(self._staging, ignore_errors=True)

    def _submissions(self) -> list[tuple[str, str, Path]]:
        """``(student, assignment, folder)`` of every submission this run grades, from a listing
        of ``submitted/`` matched against ``--student`` and the assignment id."""
        cd = self.coursedir
        probe = Path(cd.format_path(cd.submitted_directory, "S", "A"))
        if probe.parts[-2:] != ("S", "A"):
            raise NbGraderException("SanitizedAutograde needs CourseDirectory.directory_structure "
                                    "to end with {student_id}/{assignment_id}")
        top = probe.parent.parent
        found = []
        students = sorted(p.name for p in top.iterdir()) if top.is_dir() else []
        for student in students:
            if not matches(student, cd.student_id):
                continue
            base = top / student
            if base.is_symlink():  # a link where a student's folder should be: its scan refuses it
                assignments = [cd.assignment_id] if not any(c in cd.assignment_id for c in "*?[") else []
            elif not base.is_dir():  # a stray file in submitted/ is nobody's submission
                continue
            else:
                assignments = sorted(p.name for p in base.iterdir()
                                     if matches(p.name, cd.assignment_id))
            found += [(student, a, base / a) for a in assignments]
        return found

    def init_notebooks(self) -> None:
        self._staging = Path(tempfile.mkdtemp(prefix="bn-staging-"))
        self._inspections: dict[tuple[str, str], Inspection] = {}
        releases = course_releases(self.coursedir)
        for student, assignment, folder in self._submissions():
            if not releases.get(assignment):
                continue  # not in the gradebook: nbgrader says so below
            try:
                inspection = classify(scan(folder), assignment, releases,
                                      int(self.coursedir.max_file_size) * 1000)
            except ValueError as exc:
                raise NbGraderException(str(exc)) from exc
            reason = stage(inspection, releases, self._staging / student / assignment)
            self._inspections[(student, assignment)] = inspection
            if reason is not None:
                self.log.warning("Rejected submission of %s for %s, graded 0: %s",
                                 printable(student, 100), printable(assignment, 100), reason)
        self.coursedir.submitted_directory = str(self._staging)
        self._list_staged()

    def _list_staged(self) -> None:
        """nbgrader's ``self.assignments`` (staged folder -> its notebooks) from a listing of the
        staging folder. nbgrader's own ``init_notebooks`` globs each folder it globbed, so a
        student called ``*`` was graded with every student's notebooks (and nobody after)."""
        self.assignments, self.notebooks = {}, []
        for student, assignment in sorted(self._inspections):
            folder = self._staging / student / assignment
            found = sorted(str(folder / name) for name in os.listdir(folder)
                           if name.endswith(".ipynb")
                           and matches(name[: -len(".ipynb")], self.coursedir.notebook_id))
            if found:
                self.assignments[str(folder)] = found
            else:
                self.log.warning("No notebooks were matched in %s", printable(str(folder)))
        if not self.assignments:
            msg = (f"No notebooks were matched for assignment {self.coursedir.assignment_id!r} "
                   f"and student {self.coursedir.student_id!r}")
            self.log.error(msg)
            raise NbGraderException(msg)

    def convert_single_notebook(self, notebook_filename: str) -> None:
        """nbgrader's sanitize-and-autograde of one notebook; the inspection's flags are then
        recorded in the autograded notebook (the Execute step clears trusted metadata it did
        not write itself)."""
        super().convert_single_notebook(notebook_filename)
        rel = Path(notebook_filename).resolve().relative_to(self._staging.resolve())
        student, assignment = rel.parts[0], rel.parts[1]
        inspection = self._inspections.get((student, assignment))
        if inspection is None or not inspection.flags:
            return
        dest = Path(self._format_dest(assignment, student)) / rel.name
        nb = nbformat.read(dest, as_version=4)
        for kind, reason in inspection.flags:
            add_flag(nb, kind, reason)
        nbformat.write(nb, dest)


def install() -> None:
    """Make ``nbgrader autograde`` (and the runner's workers, which run the same converter) use
    :class:`SanitizedAutograde`. nbgrader 0.9.6 has no setting for the converter class, so
    ``nbgrader_config.py`` calls this: the app looks ``Autograde`` up in its module when it
    starts, after the config is loaded."""
    import nbgrader.apps.autogradeapp as app
    import nbgrader.converters as converters

    app.Autograde = SanitizedAutograde
    converters.Autograde = SanitizedAutograde
