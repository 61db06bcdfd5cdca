"""Reading graded notebooks: grade cells, output text, trusted flags and scores, diagnoses.

One reader serves the runner, the report, the demo and the self-check, so they never disagree
about what a notebook says.

**Trusted metadata.** Flags (``sandbox-off``, ``kernel-died``, ``cell-timeout``, ``tampering``,
``refused-output``, ``rejected-submission``, ...) and the score of every hidden test cell are
written by the trusted grading process into the autograded notebook's metadata under the key
:data:`TRUSTED_KEY`: ``nb.metadata["autograder"]["flags"]`` for the notebook and
``cell.metadata["autograder"]`` (``{"flags": [...], "score": float, "record": {...}}``) for a
cell, where ``record`` is the hidden check's record (:mod:`autograder.record`): its parts,
diagnoses and notes, read with :func:`check_record` and :func:`diagnoses`. Submissions are
stripped of that key before grading (:func:`strip_trusted`), so only the grader can have put it
there. Text in an output that merely looks like ``Flag [kind]: reason`` is only text: nothing
here reads flags from outputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from autograder.record import CheckRecord, from_dict

#: The metadata key (notebook and cell level) that only the trusted grading process writes.
TRUSTED_KEY = "autograder"

#: Prefix of every diagnosis line in a check's report (``Diagnosis M1: ...``).
DIAGNOSIS = "Diagnosis"
_DIAGNOSIS_RE = re.compile(rf"{DIAGNOSIS} (M\d+)")
_KIND_RE = re.compile(r"[a-z][a-z0-9-]*")
# OSC (``ESC ] ... BEL`` or ``ESC ] ... ESC \``, e.g. a window title) first: its ``ESC ]`` would
# otherwise match the two-character form and leave the title text behind.
_ANSI_RE = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


#: Prefix of every flag line: something the instructor must look at (a crash, a timeout, ...),
#: written as ``Flag [kind]: reason`` for people to read. Only :func:`trusted_flags` counts.
FLAG = "Flag"
_FLAG_RE = re.compile(rf"{FLAG} \[([a-z][a-z0-9-]*)\]: ([^\n<]*)")


def flag_line(kind: str, reason: str) -> str:
    """The one-line flag ``Flag [kind]: reason`` for a report or an error output.

    ``kind`` is a short lowercase slug (``"kernel-died"``, ...).

    Raises
    ------
    ValueError
        If ``kind`` is not a lowercase slug.
    """
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise ValueError(f"kind must be a lowercase slug like 'kernel-died', got {kind!r}")
    return f"{FLAG} [{kind}]: {' '.join(reason.split())}"


def flags_in(text: str) -> list[tuple[str, str]]:
    """The ``(kind, reason)`` flag lines in a text, in order, deduplicated. For people and tests
    only: grading decisions read :func:`trusted_flags`, never text."""
    seen: dict[tuple[str, str], None] = {}
    for kind, reason in _FLAG_RE.findall(text):
        seen.setdefault((kind, reason.strip()), None)
    return list(seen)


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours, cursor moves, OSC titles)."""
    return _ANSI_RE.sub("", text)


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` safe to print on a terminal: escape sequences removed (:func:`strip_ansi`), then
    every other control character (C0 but newline and tab, DEL, C1 such as the 8-bit CSI
    ``\\x9b``) replaced by ``?``."""
    return _CONTROL_RE.sub("?", strip_ansi(text))


def joined(value: Any) -> str:
    """A notebook text field: a string, or the list of lines notebook files may store."""
    return "".join(value) if isinstance(value, list) else str(value)


def is_test_cell(cell: Mapping) -> bool:
    """Whether ``cell`` is an autograded test cell: a code cell with nbgrader ``grade`` and not
    ``solution``."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def test_cells(nb: Mapping) -> list:
    """The autograded test cells of a notebook, in order."""
    return [c for c in nb["cells"] if is_test_cell(c)]


def output_text(cells: Iterable[Mapping]) -> str:
    """The text of the cells' outputs, as a reader of the feedback sees it.

    Stream outputs, the ``text/plain`` form of results and displays, and error outputs
    (``ename: evalue`` and the traceback), with terminal escape sequences removed, one output
    per line block. This is the one rule used everywhere (runner, report, demo, self-check).
    """
    parts: list[str] = []
    for cell in cells:
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                parts.append(joined(out.get("text", "")))
            elif kind == "error":
                parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}\n")
                parts.extend(f"{line}\n" for line in out.get("traceback", []))
            else:
                parts.append(joined(out.get("data", {}).get("text/plain", "")))
            parts.append("\n")
    return strip_ansi("".join(parts))


def diagnoses_in(text: str) -> set[str]:
    """The misconception ids (``"M1"``, ...) that a text *shows* (a report, an output, HTML):
    for people and for tests of what is displayed. What a check found is in its record
    (:func:`diagnoses`), which student text can never add to."""
    return set(_DIAGNOSIS_RE.findall(text))


def check_record(cell: Mapping) -> CheckRecord | None:
    """The record the trusted side stored for a hidden test cell (parts, diagnoses, notes,
    carried-forward errors, flags), or None when it stored none (a cell not run, a notebook
    graded before records existed). Read from the cell's trusted metadata only."""
    value = cell.get("metadata", {}).get(TRUSTED_KEY, {})
    return from_dict(value.get("record")) if isinstance(value, dict) else None


def check_records(nb: Mapping) -> dict[str, CheckRecord]:
    """``{grade_id: record}`` of a notebook's hidden test cells that have one, in order."""
    found = {}
    for cell in test_cells(nb):
        record = check_record(cell)
        if record is not None:
            found[str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "?"))] = record
    return found


def diagnoses(nb: Mapping) -> set[str]:
    """The misconception ids the hidden checks of a notebook diagnosed, from their records."""
    return {mk for record in check_records(nb).values() for mk in record.diagnosis_ids}


# ----------------------------------------------------------------------------- trusted metadata
def _trusted(node: Mapping) -> dict:
    meta = node.setdefault("metadata", {})
    value = meta.get(TRUSTED_KEY)
    if not isinstance(value, dict):
        meta[TRUSTED_KEY] = {}
        value = meta[TRUSTED_KEY]  # a NotebookNode stores a converted copy of what it is given
    return value


def add_flag(node: Mapping, kind: str, reason: str) -> tuple[str, str]:
    """Record the flag ``(kind, reason)`` in a notebook's or a cell's trusted metadata.

    Only the trusted grading process calls this. ``kind`` is a lowercase slug such as
    ``"kernel-died"``; ``reason`` is plain words (white space is folded).

    Raises
    ------
    ValueError
        If ``kind`` is not a lowercase slug.
    """
    flag_line(kind, str(reason))  # the same rule for the kind
    flag = (kind, " ".join(str(reason).split()))
    trusted = _trusted(node)
    flags = [list(f) for f in trusted.get("flags", [])]
    if list(flag) not in flags:
        flags.append(list(flag))
    trusted["flags"] = flags
    return flag


def set_score(cell: Mapping, score: float, max_score: float) -> None:
    """Record a hidden test cell's score as computed by the trusted side."""
    trusted = _trusted(cell)
    trusted["score"] = float(score)
    trusted["max_score"] = float(max_score)


def set_record(cell: Mapping, record: dict) -> None:
    """Store a hidden check's record (:meth:`autograder.record.CheckRecord.to_dict`) in the
    cell's trusted metadata; only the trusted side calls this."""
    _trusted(cell)["record"] = record


def trusted_score(cell: Mapping) -> float | None:
    """A test cell's score as the trusted side recorded it, or None when it recorded none."""
    value = cell.get("metadata", {}).get(TRUSTED_KEY, {})
    score = value.get("score") if isinstance(value, dict) else None
    return float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None


def trusted_flags(nb: Mapping) -> list[tuple[str, str]]:
    """Every flag the trusted side recorded in a notebook (notebook level, then cell by cell),
    in order and without repeats."""
    seen: dict[tuple[str, str], None] = {}
    for node in (nb, *nb.get("cells", [])):
        value = node.get("metadata", {}).get(TRUSTED_KEY, {})
        for item in value.get("flags", []) if isinstance(value, dict) else []:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                seen.setdefault((str(item[0]), str(item[1])), None)
    return list(seen)


def strip_trusted(nb: Mapping) -> int:
    """Remove the trusted key from a submitted notebook's metadata (notebook and cells), so that
    a submission cannot bring flags or scores of its own; return how many were removed."""
    removed = 0
    for node in (nb, *nb.get("cells", [])):
        meta = node.get("metadata")
        if isinstance(meta, dict) and TRUSTED_KEY in meta:
            del meta[TRUSTED_KEY]
            removed += 1
    return removed
