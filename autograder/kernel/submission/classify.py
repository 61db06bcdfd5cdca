"""The front door's middle steps: what a scanned submission is (:func:`classify`) and its
notebooks made gradable (:func:`repair`), as a typed :class:`Inspection`.

:func:`classify` decides, for each notebook the assignment expects, whether it can be graded
(``ok``, or ``renamed`` from a copy such as ``tiny (1).ipynb``) or not (``missing``,
``malformed``, ``wrong-assignment``), which other files are copied (the size rule), and what
the submission time is. A submission with no gradable notebook, or that breaks a rule of the
scan, is **rejected**: graded 0 with the reason (:data:`REJECTED`). Every finding is a flag
``(kind, reason)``; nothing here raises for anything a submission holds.

The size rule (:func:`_size_rule`), the same on every path: a file counts with the larger of
its apparent size and its disk use; one larger than the per-file limit (nbgrader's
``CourseDirectory.max_file_size``, at most :data:`MAX_TOTAL_BYTES`) is left out, and so is any
file that would take the files kept past :data:`MAX_TOTAL_BYTES`; each is flagged
``large-file``. Notebooks count first.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.kernel.submission.files import (
    MAX_NOTEBOOK_BYTES,
    MAX_TIMESTAMP_BYTES,
    MAX_TOTAL_BYTES,
    TIMESTAMP,
    FileEntry,
    MiB,
    RejectedSubmission,
    Scan,
    printable,
    read_regular,
)
from autograder.kernel.submission.notebook import (
    Flag,
    ReleaseNotebook,
    graded_cells,
    load_release,
    owner,
    parse_notebook,
    repair_notebook,
    tampering,
)

#: The flag kind of a rejected submission.
REJECTED = "rejected-submission"
#: JSON values (``,``, ``[`` and ``{`` counted in the bytes) a notebook may hold: parsing costs
#: about 60 bytes of memory per value, so this bounds a 20 MiB notebook at about 120 MB.
MAX_JSON_VALUES = 2_000_000
#: Verdicts of an expected notebook.
OK, RENAMED, MISSING, MALFORMED, WRONG = "ok", "renamed", "missing", "malformed", "wrong-assignment"
#: Files left out by the size rule that get a flag each (the rest get one between them).
_LISTED = 5

#: ``{assignment: [its release notebooks]}``: what the course names (see :func:`course_releases`).
Releases = dict[str, list[ReleaseNotebook]]


@dataclass
class NotebookVerdict:
    """What became of one notebook the assignment expects.

    Attributes
    ----------
    name : str
        The release notebook's name (without ``.ipynb``).
    status : str
        ``ok``, ``renamed``, ``missing``, ``malformed`` or ``wrong-assignment``.
    source : str or None
        The submitted file it was read from (``"tiny (1).ipynb"``), if any.
    notebook : NotebookNode or None
        The parsed notebook when gradable (repaired once :func:`repair` ran); None otherwise,
        and None after :func:`classify` with ``keep_notebooks=False``.
    """

    name: str
    status: str
    source: str | None = None
    notebook: nbformat.NotebookNode | None = field(default=None, repr=False)

    @property
    def gradable(self) -> bool:
        return self.status in (OK, RENAMED)


@dataclass
class Inspection:
    """One submission, inspected by the front door.

    Attributes
    ----------
    folder : Path
        ``submitted/<student>/<assignment>``.
    assignment : str
        The assignment graded.
    notebooks : dict of str to NotebookVerdict
        One verdict per notebook the assignment expects, in order.
    files : list of FileEntry
        The other files that are copied for grading (the size rule applied).
    flags : list of (kind, reason)
        Every finding, for the instructor; the rejection last.
    timestamp : datetime or None
        The submission time from ``timestamp.txt`` (None when absent, empty or not a date).
    timestamp_text : str or None
        Its text, copied for nbgrader when it parsed.
    rejected : str or None
        Why nothing of the submission is graded (it scores 0), or None.
    repaired : bool
        Whether :func:`repair` ran.
    """

    folder: Path
    assignment: str
    notebooks: dict[str, NotebookVerdict] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    timestamp: dt.datetime | None = None
    timestamp_text: str | None = None
    rejected: str | None = None
    repaired: bool = False

    @property
    def gradable(self) -> bool:
        """Whether nbgrader has something of the student's to grade."""
        return self.rejected is None

    @property
    def problem(self) -> str:
        """Why the submission is not gradable (empty when it is)."""
        return self.rejected or ""

    def reject(self, reason: str, flag: bool = True) -> None:
        """Refuse the whole submission (it scores 0) for ``reason``, with the
        :data:`REJECTED` flag unless ``flag`` is False (nothing was submitted to refuse)."""
        self.rejected = printable(reason)
        if flag:
            self.flags.append((REJECTED, f"the submission was not graded: {self.rejected}"))


# ----------------------------------------------------------------------------- the releases
_CACHE: dict[tuple, ReleaseNotebook] = {}


def cached_release(path: Path, assignment: str) -> ReleaseNotebook:
    """:func:`~autograder.kernel.submission.notebook.load_release`, read again only when the
    file changed (a grading process inspects one student after another)."""
    st = os.stat(path)
    key = (str(path), assignment, st.st_mtime_ns, st.st_size, st.st_ino)
    if key not in _CACHE:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = load_release(path, assignment)
    return _CACHE[key]


def course_releases(coursedir) -> Releases:
    """The release notebooks of every assignment in the course's gradebook.

    Only the notebooks the gradebook names (``release/<assignment>/<notebook>.ipynb``, as
    ``nbgrader generate_assignment`` recorded them) are read: any other file in a release
    folder is never taken for the course's. An assignment whose release cannot be read is
    left out (it may not be released yet).

    Parameters
    ----------
    coursedir : nbgrader.coursedir.CourseDirectory
        Its ``db_url``, ``course_id``, ``release_directory`` and ``root`` are used.
    """
    from nbgrader.api import Gradebook

    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        names = {a.name: sorted(n.name for n in a.notebooks) for a in gb.assignments}
    releases: Releases = {}
    for assignment, notebooks in names.items():
        folder = Path(coursedir.format_path(coursedir.release_directory, ".", assignment))
        found = []
        for name in notebooks:
            try:
                found.append(cached_release(folder / f"{name}.ipynb", assignment))
            except (OSError, ValueError):
                continue
        releases[assignment] = found
    return releases


def named_releases(root: Path) -> Releases:
    """``{assignment: [its release notebook]}`` of the course at ``root`` as
    ``nbgrader_config.ASSIGNMENTS`` names them (``release/<assignment>/<notebook>``): what the
    self-check trusts, which has no gradebook. One that cannot be read is left out; no other
    file of a release folder is ever read."""
    from autograder.course_dir import assignments

    releases: Releases = {}
    for assignment, filename in assignments(root).items():
        try:
            releases[assignment] = [cached_release(Path(root) / "release" / assignment / filename,
                                                   assignment)]
        except (OSError, ValueError):
            continue
    return releases


# ----------------------------------------------------------------------------- classify
def classify(scan: Scan, assignment: str, releases: Releases,
             max_file_bytes: int = MAX_TOTAL_BYTES, keep_notebooks: bool = True) -> Inspection:
    """What a scanned submission is (see the module text).

    Parameters
    ----------
    scan : Scan
        :func:`~autograder.kernel.submission.files.scan` of ``submitted/<student>/<assignment>``.
    assignment : str
        The assignment graded; ``releases[assignment]`` are the notebooks it expects.
    releases : dict of str to list of ReleaseNotebook
        Every assignment's release notebooks (:func:`course_releases`), to recognize renamed,
        wrong-assignment and tampered notebooks.
    max_file_bytes : int
        The per-file size limit, bytes (nbgrader's ``max_file_size`` is in kilobytes).
    keep_notebooks : bool
        Keep the parsed notebooks in the verdicts (needed by :func:`repair`).

    Returns
    -------
    Inspection
        Never raises for anything the submission holds.

    Raises
    ------
    ValueError
        If ``releases`` has no notebook of ``assignment`` (the course's problem, not a student's).
    """
    expected = releases.get(assignment) or []
    if not expected:
        raise ValueError(f"no release notebook of assignment {assignment!r} can be read; run "
                         f"`nbgrader generate_assignment {assignment} --force`")
    result = Inspection(scan.folder, assignment)
    if not scan.exists:
        reason = f"nothing submitted ({scan.folder} does not exist)"
        result.flags.append(("missing-notebook", reason))
        result.reject(reason, flag=False)
        return result
    if scan.problem:
        result.reject(scan.problem)
        return result
    stamp = next((e for e in scan.files if e.rel == TIMESTAMP), None)
    candidates = [e for e in scan.files if "/" not in e.rel and e.rel.endswith(".ipynb")]
    others = [e for e in scan.files if e is not stamp and e not in candidates]
    result.files = _size_rule(candidates, others, min(max_file_bytes, MAX_TOTAL_BYTES),
                              result.flags)
    if stamp is not None:
        _read_timestamp(scan.folder, stamp, result)
    parsed, broken = _parse(scan.folder, candidates, result.flags)
    _match(parsed, broken, assignment, releases, result)
    for verdict in result.notebooks.values():
        if verdict.gradable:
            reference = next(r for r in expected if r.name == verdict.name)
            result.flags.extend(tampering(verdict.notebook, reference))
            if not keep_notebooks:
                verdict.notebook = None
    if not any(v.gradable for v in result.notebooks.values()):
        bad = [reason for kind, reason in result.flags
               if kind in ("missing-notebook", "malformed-notebook", "wrong-assignment")]
        result.reject("; ".join(bad) or "no notebook to grade")
    return result


def _size_rule(notebooks: list[FileEntry], others: list[FileEntry], per_file: int,
               flags: list[Flag]) -> list[FileEntry]:
    """The files of ``others`` kept under the size rule (see the module text)."""
    total = sum(min(e.footprint, MAX_NOTEBOOK_BYTES) for e in notebooks)
    kept, left = [], []
    for entry in others:
        size = f"{printable(entry.rel, 200)} ({entry.footprint / 1e6:.0f} MB)"
        if entry.footprint > per_file:
            left.append((entry, f"{size} is over the size limit of one file "
                                f"({per_file / 1e6:.0f} MB); not copied for grading"))
        elif total + entry.footprint > MAX_TOTAL_BYTES:
            left.append((entry, f"{size} would take the submission past its limit "
                                f"({MAX_TOTAL_BYTES // MiB} MiB); not copied for grading"))
        else:
            total += entry.footprint
            kept.append(entry)
    flags += [("large-file", reason) for _, reason in left[:_LISTED]]
    if len(left) > _LISTED:
        rest = sum(e.footprint for e, _ in left[_LISTED:])
        flags.append(("large-file", f"{len(left) - _LISTED} more files ({rest / 1e6:.0f} MB in "
                                    "all) not copied for grading"))
    return kept


def _read_timestamp(folder: Path, entry: FileEntry, result: Inspection) -> None:
    """``result.timestamp`` from ``timestamp.txt``, or a ``bad-timestamp`` flag. nbgrader's own
    reader calls ``CourseDirectory.fail``, which does not exist, on a date it cannot parse
    (nbgrader 0.9.6): the file is never given to it unless it parses."""
    from nbgrader.utils import parse_utc

    what = "is too large"
    if entry.size <= MAX_TIMESTAMP_BYTES:
        try:
            text = read_regular(folder, entry, MAX_TIMESTAMP_BYTES).decode("utf-8").strip()
            if text:
                result.timestamp, result.timestamp_text = parse_utc(text), text
            return
        except (RejectedSubmission, OSError):
            what = "could not be read"
        except (UnicodeDecodeError, ValueError, OverflowError, TypeError):
            what = "is not a date"
    result.flags.append(("bad-timestamp", f"{TIMESTAMP} {what}; graded as if the submission "
                                          "had no time"))
    result.timestamp = result.timestamp_text = None


def _parse(folder: Path, candidates: list[FileEntry], flags: list[Flag]):
    """``({stem: notebook}, {stem: why not})`` of the submitted ``*.ipynb`` files."""
    parsed, broken = {}, {}
    for entry in candidates:
        stem = entry.rel[: -len(".ipynb")]
        repairs: list[str] = []
        try:
            if entry.footprint > MAX_NOTEBOOK_BYTES:
                raise RejectedSubmission(f"{entry.rel} is larger than {MAX_NOTEBOOK_BYTES // MiB} MiB")
            data = read_regular(folder, entry, MAX_NOTEBOOK_BYTES)
            if data.count(b",") + data.count(b"[") + data.count(b"{") > MAX_JSON_VALUES:
                raise RejectedSubmission(f"{entry.rel} holds more than {MAX_JSON_VALUES:,} JSON values")
            parsed[stem] = parse_notebook(data, entry.rel, repairs)
        except RejectedSubmission as exc:
            broken[stem] = printable(str(exc), 300)
        except OSError as exc:
            broken[stem] = f"{entry.rel} could not be read ({printable(exc.strerror or exc)})"
        except Exception as exc:  # noqa: BLE001 - whatever a file does is its submission's reason
            broken[stem] = printable(f"{entry.rel} could not be parsed ({type(exc).__name__}: "
                                     f"{exc})", 300)
        if repairs and stem in parsed:
            flags.append(("repaired-notebook", f"{printable(entry.rel, 200)}: "
                                               + "; ".join(sorted(set(repairs))[:5])))
    return parsed, broken


def _match(parsed: dict, broken: dict, assignment: str, releases: Releases,
           result: Inspection) -> None:
    """One verdict per expected notebook (see the module text), with its flag."""
    expected = releases[assignment]
    others = [r for a, rs in releases.items() if a != assignment for r in rs]
    unknown = {stem: nb for stem, nb in parsed.items() if stem not in {r.name for r in expected}}
    flags = result.flags
    for ref in expected:
        name = ref.name
        if name in parsed:
            theirs = owner(parsed[name], others)
            if theirs is not None and not _matches(parsed[name], ref):
                flags.append(("wrong-assignment", f"{name}.ipynb holds the notebook of assignment "
                                                  f"{theirs.assignment}, not {assignment}"))
                result.notebooks[name] = NotebookVerdict(name, WRONG, f"{name}.ipynb")
            else:
                result.notebooks[name] = NotebookVerdict(name, OK, f"{name}.ipynb", parsed[name])
            continue
        if name in broken:
            flags.append(("malformed-notebook", f"{name}.ipynb is not a readable notebook: "
                                                f"{broken[name]}"))
            result.notebooks[name] = NotebookVerdict(name, MALFORMED, f"{name}.ipynb")
            continue
        match = max((stem for stem, nb in unknown.items() if _matches(nb, ref)),
                    key=lambda s: (len(ref.grade_ids & set(graded_cells(unknown[s]))), s),
                    default=None)
        if match is not None:
            flags.append(("renamed-notebook", f"{printable(match, 200)}.ipynb graded as "
                                              f"{name}.ipynb (its cells are {name}'s)"))
            result.notebooks[name] = NotebookVerdict(name, RENAMED, f"{match}.ipynb",
                                                     unknown.pop(match))
            continue
        owners = {stem: owner(nb, others) for stem, nb in unknown.items()}
        wrong = sorted({o.assignment for o in owners.values() if o is not None})
        if wrong:
            found = ", ".join(f"{printable(s, 100)}.ipynb" for s, o in owners.items() if o)
            flags.append(("wrong-assignment", f"{found} belongs to assignment {', '.join(wrong)}, "
                                              f"not {assignment}; {name}.ipynb is missing"))
            result.notebooks[name] = NotebookVerdict(name, WRONG)
        else:
            seen = sorted([*unknown, *(s for s in broken if s not in {r.name for r in expected})])
            found = ", ".join(f"{printable(s, 100)}.ipynb" for s in seen[:10]) or "no notebook"
            flags.append(("missing-notebook", f"{name}.ipynb is missing (found {found})"))
            result.notebooks[name] = NotebookVerdict(name, MISSING)


def _matches(nb, ref: ReleaseNotebook) -> bool:
    """Whether ``nb`` holds at least half of ``ref``'s grade cells."""
    return bool(ref.grade_ids) and 2 * len(ref.grade_ids & set(graded_cells(nb))) >= len(ref.grade_ids)


# ----------------------------------------------------------------------------- repair
def repair(inspection: Inspection, releases: Releases) -> Inspection:
    """Make each gradable notebook of ``inspection`` match its release notebook
    (:func:`~autograder.kernel.submission.notebook.repair_notebook`), in place; return it."""
    if inspection.repaired:
        return inspection
    by_name = {r.name: r for r in releases[inspection.assignment]}
    for verdict in inspection.notebooks.values():
        if verdict.gradable:
            if verdict.notebook is None:
                raise ValueError("repair needs the notebooks: classify(..., keep_notebooks=True)")
            verdict.notebook = repair_notebook(verdict.notebook, by_name[verdict.name].notebook)
    inspection.repaired = True
    return inspection
