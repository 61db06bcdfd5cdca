"""The record of one hidden check, as data: parts, diagnoses, notes, carried-forward errors, flags.

A hidden check (``autograder/checks/``) produces one :class:`CheckRecord`. The trusted grading
process stores it, as JSON, in the hidden test cell's trusted metadata beside the score
(``cell.metadata["autograder"]["record"]``, :func:`autograder.notebooks.set_record`); the cell's
printed output is one rendering of it (:func:`render`). Everything that reports a check (the
report, the self-check, the demo, the tests) reads the record through
:func:`autograder.notebooks.check_record`, never the printed text.

**Student text.** What a student's code prints, warns or raises, and the text of a value it
returns, enters a record only through :func:`quote`: on one line, escaped like a Python string
literal, and capped at :data:`MAX_STUDENT_TEXT` characters. It can therefore never start a line
of the rendering, and the record's parts, diagnoses and score are fields the check filled in,
never text read back. The number of notes is capped too (:data:`MAX_NOTES` per check and per
part, :data:`MAX_COMPARED` compared values per part), so a record stays a few kilobytes however
much the student's code writes (issue 19: warnings once made a 49 MiB notebook).

Imports the standard library only: ``autograder.notebooks`` (the one notebook reader) reads
records with it.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Bumped when a field changes meaning; :func:`from_dict` reads this version only.
VERSION = 1
#: A part's status: all of its weight earned, some of it, none.
PASSED, PARTIAL, FAILED = "passed", "partial", "failed"
STATUSES = (PASSED, PARTIAL, FAILED)
#: The mark of each status at the start of a part's line in the rendering (as before records).
MARKS = {PASSED: "[ok  ]", PARTIAL: "[part]", FAILED: "[FAIL]"}
#: Characters of one piece of student text kept (an exception's message, a warning, a print).
MAX_STUDENT_TEXT = 300
#: Notes kept per check and per part; compared values kept per part.
MAX_NOTES = 20
MAX_COMPARED = 20
#: Lines kept per finding, and characters per line of the check's own text.
MAX_FINDING_LINES = 12
MAX_LINE = 2_000
#: Columns of the rendering: long lines wrap, so that they stay inside their box in the feedback
#: page and the Formgrader (a ``<pre>`` there does not wrap).
WIDTH = 100
#: How a rendering names a diagnosis line (``Diagnosis M1: ...``).
DIAGNOSIS = "Diagnosis"
_ID = re.compile(r"M\d+")
_DIAGNOSIS_LINE = re.compile(rf"^\s*{DIAGNOSIS} ([^:\n]{{1,60}}): (.*)$")


def quote(text: Any, limit: int = MAX_STUDENT_TEXT) -> str:
    """Student text as a record may hold it: one line, escaped, capped.

    Parameters
    ----------
    text : object
        What the student's code wrote (``str`` of anything else is taken).
    limit : int
        Characters of ``text`` kept; a longer text is cut and says how long it was.

    Returns
    -------
    str
        A Python string literal (``repr``): quotes around it, every newline, control character
        and non-printable character escaped, so it is one line of plain characters.
    """
    if not isinstance(text, str):
        try:
            text = str(text)
        except Exception:  # noqa: BLE001 - a student's __str__ may raise anything
            text = f"<a {type(text).__name__} whose text could not be read>"
    body = repr(text[:limit])
    return body + (f" ... ({len(text)} characters, cut)" if len(text) > limit else "")


def one_line(text: Any, limit: int = MAX_LINE) -> str:
    """The check's own text made one line: newlines and control characters become spaces, and
    it is capped at ``limit`` characters (a value's rendering can be long)."""
    text = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", str(text))
    return text if len(text) <= limit else text[:limit] + " ..."


def mistake_id(label: str) -> str:
    """The catalogue id of a diagnosis label (``"M3"`` for ``"M3 (outside)"``), or ``""`` for a
    label outside the catalogue (``"gamma/beta swapped"``, ``"order"``)."""
    head = label.split(" ", 1)[0]
    return head if _ID.fullmatch(head) else ""


# ----------------------------------------------------------------------------- the data
@dataclass
class Compared:
    """One comparison of a part: what was compared, the student's value and the expected one as
    short text, and whether they matched (within the check's tolerance)."""

    what: str
    matched: bool
    yours: str = ""
    expected: str = ""


@dataclass
class Finding:
    """Why a part lost points, in the check's words: its lines (the first says what is wrong,
    then ``yours:``/``expected:``), and the label of the diagnosis it names, if any."""

    lines: list[str]
    diagnosis: str = ""


@dataclass
class Diagnosis:
    """A known mistake named by a part: its catalogue id (``""`` for a mistake specific to one
    exercise), its label as shown, the explanation, and the part that named it."""

    id: str
    label: str
    explanation: str
    part: str


@dataclass
class Carried:
    """An error carried forward: the graded function this one calls (``callee``), whose mistake
    shows in this function's output and is marked where it lives; ``mistakes`` are the ids the
    reference-only comparison saw, ``parts`` the parts that kept their points."""

    callee: str
    mistakes: list[str]
    parts: list[str]
    #: The callees in between, when the mistake reached this function through another one
    #: (``["batchnorm_forward"]`` for spatial_batchnorm_forward and batch_stats's mistake).
    through: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        """The sentence the student reads."""
        which = f" ({', '.join(self.mistakes)})" if self.mistakes else ""
        chain = "".join(f"`{name}`, which uses your " for name in self.through)
        return (f"uses your {chain}`{self.callee}`, whose mistake{which} is marked there; no "
                "second deduction")


@dataclass
class Part:
    """One weighted part of a check.

    ``earned`` is in the part's own ``weight`` units; ``points`` and ``points_earned`` are the
    same in the cell's points. ``carried`` names the callees whose mistake this part forgave.
    """

    name: str
    weight: float
    earned: float
    points: float
    points_earned: float
    status: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared: list[Compared] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)


@dataclass
class CheckRecord:
    """Everything one hidden check found.

    ``stopped`` says why the check ended before its last part (it then scores 0), ``zeroed`` why
    the grader set the score to 0 afterwards (a zeroing flag), ``empty`` that the function still
    raises NotImplementedError everywhere. ``flags`` are ``[kind, reason]`` pairs raised while
    the check ran (also in the cell's ``flags``).
    """

    function: str
    points: float
    score: float
    parts: list[Part] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    carried: list[Carried] = field(default_factory=list)
    flags: list[list[str]] = field(default_factory=list)
    stopped: str = ""
    zeroed: str = ""
    empty: bool = False
    version: int = VERSION

    # -- summaries ------------------------------------------------------------------------
    def count(self, status: str) -> int:
        """How many parts have ``status`` (:data:`PASSED`, :data:`PARTIAL` or :data:`FAILED`)."""
        return sum(p.status == status for p in self.parts)

    @property
    def diagnosis_ids(self) -> list[str]:
        """The catalogue ids named, in order of first appearance, without repeats."""
        return list(dict.fromkeys(d.id for d in self.diagnoses if d.id))

    def summary(self) -> str:
        """``"4 of 6 parts passed, 1 partial, 1 failed"``: every part counted once."""
        if not self.parts:
            return "no parts ran"
        counts = [f"{self.count(PASSED)} of {len(self.parts)} parts passed"]
        counts += [f"{self.count(s)} {s}" for s in (PARTIAL, FAILED) if self.count(s)]
        return ", ".join(counts)

    def to_dict(self) -> dict:
        """The record as JSON-ready data (what the cell's metadata holds)."""
        return asdict(self)


# ----------------------------------------------------------------------------- reading back
def _str(value: Any, limit: int = MAX_LINE) -> str:
    return one_line(value, limit) if isinstance(value, str) else ""


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _strs(value: Any, limit: int) -> list[str]:
    return [_str(v) for v in value[:limit] if isinstance(v, str)] if isinstance(value, list) else []


def _build(cls, data: Any):
    """A ``cls`` from a dict, keeping only its fields, each checked for its type."""
    if not isinstance(data, dict):
        return None
    kw: dict[str, Any] = {}
    for f in fields(cls):
        value = data.get(f.name)
        kind = str(f.type)
        if kind == "str":
            kw[f.name] = _str(value)
        elif kind == "float":
            kw[f.name] = _num(value)
        elif kind in ("bool",):
            kw[f.name] = value is True
        elif kind == "int":
            kw[f.name] = int(_num(value))
        elif kind == "list[str]":
            kw[f.name] = _strs(value, 200)
        elif kind == "list[Finding]":
            kw[f.name] = _list(Finding, value)
        elif kind == "list[Compared]":
            kw[f.name] = _list(Compared, value)
        elif kind == "list[Part]":
            kw[f.name] = _list(Part, value)
        elif kind == "list[Diagnosis]":
            kw[f.name] = _list(Diagnosis, value)
        elif kind == "list[Carried]":
            kw[f.name] = _list(Carried, value)
        elif kind == "list[list[str]]":
            kw[f.name] = [[_str(a), _str(b)] for a, b in (v for v in value if isinstance(v, list)
                                                          and len(v) == 2)] \
                if isinstance(value, list) else []
    return cls(**kw)


def _list(cls, value: Any) -> list:
    items = [_build(cls, v) for v in value[:500]] if isinstance(value, list) else []
    return [item for item in items if item is not None]


def from_dict(data: Any) -> CheckRecord | None:
    """The :class:`CheckRecord` that :meth:`CheckRecord.to_dict` gave ``data`` for, or None when
    ``data`` is not one (another version, or not a dict). Fields of the wrong type read as
    empty; the record is never trusted more than the metadata it came from."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    record = _build(CheckRecord, data)
    for part in record.parts:
        if part.status not in STATUSES:
            part.status = FAILED
    return record


# ----------------------------------------------------------------------------- rendering
def _wrap(line: str, width: int = WIDTH) -> list[str]:
    """``line`` wrapped at ``width`` columns, continuation lines indented under its text (under
    the value, for a ``yours:``/``expected:`` line)."""
    if len(line) <= width:
        return [line]
    indent = len(line) - len(line.lstrip(" "))
    head = re.match(r"\s*(yours|expected|before|after):\s+", line)
    hang = head.end() if head else indent + 2
    return textwrap.wrap(line, width, subsequent_indent=" " * min(hang, width // 2),
                         break_on_hyphens=False) or [line]


def _part_lines(part: Part, explanations: dict[tuple[str, str], str],
                explained: set[tuple[str, str]]) -> list[str]:
    head = f"  {MARKS[part.status]} {part.name}"
    if part.status == PARTIAL:
        head += f" (partial: {part.points_earned:.3g} of its {part.points:.3g} points)"
    if part.carried:
        head += f" (error carried forward from your {', '.join(part.carried)})"
    lines = [head]
    for finding in part.findings:
        lines += [f"      {ln}" for ln in finding.lines]
        if finding.diagnosis:
            text = explanations.get((part.name, finding.diagnosis), "")
            if (finding.diagnosis, text) in explained:
                lines.append(f"      {DIAGNOSIS} {finding.diagnosis}: (explained above)")
            else:
                explained.add((finding.diagnosis, text))
                lines.append(f"      {DIAGNOSIS} {finding.diagnosis}: {text}")
    lines += [f"      {note}" for note in part.notes]
    return lines


def closing_line(record: CheckRecord) -> str:
    """The last line of a rendering: why the check scores 0 when it stopped, that nothing is
    implemented yet, or that no known mistake explains a lost point; ``""`` otherwise."""
    if record.stopped:
        return f"The check stopped early ({record.stopped}), so it scores 0."
    if record.empty:
        return "Nothing to grade yet: the function still raises NotImplementedError."
    lost = [p for p in record.parts if p.status != PASSED]
    if record.score < record.points and lost and not any(f.diagnosis for p in lost
                                                         for f in p.findings):
        return "No known mistake explains this; compare your values with the expected ones above."
    return ""


def render(record: CheckRecord) -> str:
    """The record as the student reads it in the cell's output (and the feedback page).

    ``[ok  ]``, ``[part]`` (partial credit, said in words) and ``[FAIL]`` mark each part; a
    diagnosis is explained once and called "(explained above)" in later parts; lines wrap at
    :data:`WIDTH` columns.
    """
    lines = [f"{record.function}: {record.score:g} / {record.points:g} points"]
    explained: set[tuple[str, str]] = set()
    explanations = {(d.part, d.label): d.explanation for d in record.diagnoses}
    for part in record.parts:
        lines += _part_lines(part, explanations, explained)
    lines += [f"  note: {c.note}." for c in record.carried]
    lines += [f"  note: {note}" for note in record.notes]
    closing = closing_line(record)
    if closing:
        lines.append(f"  {closing}")
    if record.zeroed:
        lines.append(f"  This check scores 0: {record.zeroed}. The instructor will review it.")
    lines += [f"  Flag [{kind}]: {reason}" for kind, reason in record.flags]
    return "\n".join(w for line in lines for w in _wrap(line)) + "\n"


def parse_finding(message: str) -> tuple[Finding, str]:
    """A :class:`Finding` and its diagnosis's explanation (``""`` when it names none), from a
    failure message the *check* wrote: its lines, where a line that starts with ``Diagnosis
    <label>: <explanation>`` is the diagnosis. Student text in the message is already quoted on
    one line (:func:`quote`), so it can never start a line."""
    lines: list[str] = []
    label = explanation = ""
    for raw in str(message).splitlines():
        match = _DIAGNOSIS_LINE.match(raw)
        if match and not label:
            label, explanation = match.group(1).strip(), one_line(match.group(2).strip())
        elif raw.strip():
            lines.append(one_line(raw.strip() if not lines else _dedent(raw.rstrip())))
    return Finding(lines[:MAX_FINDING_LINES], label), explanation


def _dedent(line: str) -> str:
    """A continuation line of a failure message without the message's own 6-space indent (the
    rendering puts it back), keeping any further indent."""
    return line[6:] if line.startswith("      ") else line.strip()
