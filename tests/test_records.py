"""Check results as data (issue 20): the record, its rendering, and student text in it.

Every hidden check returns its score with a :class:`autograder.record.CheckRecord`. Nothing the
student's code prints, warns or raises can add a part, a diagnosis or points to it: student
text is quoted on one line and capped, so that it can never start a line of the rendering, and
the record stays small however much the student's code writes (issue 19: warnings once made a
49 MiB notebook).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest
from rendering import logical_lines

import autograder.checks as checks
from autograder.checks.framework import Grader, hidden_check
from autograder.notebooks import check_record, check_records, diagnoses, set_record
from autograder.record import (
    FAILED,
    MAX_STUDENT_TEXT,
    PARTIAL,
    PASSED,
    CheckRecord,
    from_dict,
    quote,
    render,
)

#: What a hostile student's text imitates: report lines (issue 20's first defect).
FORGED = ("f: 9 / 9 points\n  [ok  ] every part passed\n      Diagnosis M20: planted\n"
          "Diagnosis M31: planted too\nFlag [tampering]: planted flag\n")


@hidden_check("square", points=3)
def check_square(g, fn):
    with g.part("squares 2", weight=2):
        g.compare("square(2)", g.call(fn, 2.0), 4.0, rtol=1e-12,
                  mistakes={"M99": (2.0, "returned x instead of x**2")})
    with g.part("squares each of [1, 2, 3]", each=True):
        for v in (1.0, 2.0, 3.0):
            g.compare(f"square({v:g})", g.call(fn, v), v * v, rtol=1e-12)


def _quietly(check, fn):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        score = check(fn)
    return score, out.getvalue()


def test_a_check_returns_its_score_with_a_record_that_the_rendering_prints():
    score, printed = _quietly(check_square, lambda x: x if x == 3.0 else x * x)
    record = score.record
    assert float(score) == record.score == 2.67  # (2 + 1 * 2/3) of the weight 3, times 3 points
    assert [p.status for p in record.parts] == [PASSED, PARTIAL]  # 2 of 3 squares
    assert record.parts[1].points_earned == pytest.approx(2 / 3, abs=1e-4)
    assert printed == render(record)
    assert "[part] squares each of [1, 2, 3] (partial: 0.667 of its 1 points)" in printed
    assert record.summary() == "1 of 2 parts passed, 1 partial"
    compared = record.parts[1].compared
    assert [c.matched for c in compared] == [True, True, False]
    assert compared[2].yours == "[3.]" and compared[2].expected == "[9.]"


def test_a_diagnosis_is_data_with_the_part_that_named_it():
    score, printed = _quietly(check_square, lambda x: x)
    record = score.record
    assert [(d.id, d.label, d.part) for d in record.diagnoses] == [("M99", "M99", "squares 2")]
    assert record.diagnosis_ids == ["M99"]
    assert record.diagnoses[0].explanation == "returned x instead of x**2"
    assert "      Diagnosis M99: returned x instead of x**2" in printed.splitlines()


def test_the_record_survives_json_and_malformed_data_reads_as_none():
    score, _ = _quietly(check_square, lambda x: x)
    data = json.loads(json.dumps(score.record.to_dict()))
    assert from_dict(data) == score.record
    assert from_dict({**data, "version": 999}) is None and from_dict("text") is None
    broken = from_dict({**data, "parts": [{"name": 5, "status": "excellent"}, "junk"],
                        "score": "9"})
    assert broken.score == 0.0 and broken.parts[0].name == "" and broken.parts[0].status == FAILED


def test_notebooks_reads_records_from_trusted_metadata_only():
    score, printed = _quietly(check_square, lambda x: x)
    cell = {"cell_type": "code", "source": "", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": printed + FORGED}],
        "metadata": {"nbgrader": {"grade": True, "solution": False, "grade_id": "t"}}}
    forged = {**score.record.to_dict(), "diagnoses": [
        {"id": "M1", "label": "M1", "explanation": "x", "part": "squares 2"}]}
    nb = {"cells": [cell]}
    assert check_record(cell) is None and diagnoses(nb) == set()  # text is never read
    set_record(cell, forged)
    assert check_record(cell).diagnosis_ids == ["M1"] and diagnoses(nb) == {"M1"}
    assert list(check_records(nb)) == ["t"]


def test_quote_makes_student_text_one_capped_escaped_line():
    text = quote("a\nb\x1b[31m\u2028" + "x" * 1000)
    assert "\n" not in text and "\x1b" not in text and "\u2028" not in text
    assert text.startswith("'a\\nb\\x1b[31m\\u2028") and text.endswith("(1009 characters, cut)")
    assert len(text) < MAX_STUDENT_TEXT + 60

    class Hostile:
        def __str__(self):
            raise RuntimeError("no")

    assert quote(Hostile()) == "'<a Hostile whose text could not be read>'"


def _hostile(kind: str):
    """A student function that prints, warns or raises report-like text (and huge text)."""
    def fn(*args, **kwargs):
        print(FORGED * 3)
        warnings.warn(FORGED + "W" * 2_000_000, UserWarning, stacklevel=1)
        for i in range(200):  # many different warnings: capped in number too
            warnings.warn(f"{FORGED} number {i}", RuntimeWarning, stacklevel=1)
        if kind == "raises":
            raise ValueError(FORGED + "E" * 1_000_000)
        if kind == "returns text":
            return FORGED
        return None
    return fn


@pytest.mark.parametrize("kind", ["raises", "returns None", "returns text"])
@pytest.mark.parametrize("name", sorted(checks.__all__))
def test_student_text_never_adds_a_part_a_diagnosis_or_points(name, kind):
    check = getattr(checks, name)
    fn = _hostile(kind)
    fn.__name__ = check.function_name
    plain = _quietly(check, lambda *a: None)[0].record  # the same check on a silent stub
    score, printed = _quietly(check, fn)
    record = score.record
    assert score == 0 and not record.diagnoses and not record.carried
    assert [p.name for p in record.parts] == [p.name for p in plain.parts]
    assert all(p.status == FAILED for p in record.parts)
    forged_starts = [ln for ln in logical_lines(printed) if ln.startswith(("Diagnosis", "[ok", "Flag",
                                                                    "f: 9"))]
    assert not forged_starts, forged_starts
    assert len(json.dumps(record.to_dict())) < 64_000, "the record must stay small"
    assert len(printed) < 64_000


def test_notes_are_capped_in_number_and_length():
    g = Grader("f", 1)
    with g.part("p"):
        for i in range(100):
            g.note(f"note {i} " + "y" * 5_000)
    record = g.record()
    assert len(record.parts[0].notes) == 20 and all(len(n) < 2_100 for n in record.parts[0].notes)
    assert record.notes == ["80 more notes of the same kind are not shown"]


def test_long_lines_wrap_inside_the_box():
    record = CheckRecord("f", 2, 1, notes=["word " * 60])
    record.parts = _quietly(check_square, lambda x: x)[0].record.parts
    lines = render(record).splitlines()
    assert all(len(ln) <= 100 for ln in lines), max(lines, key=len)
    assert sum(ln.startswith("  note: word") for ln in lines) == 1  # one note, wrapped


def test_explained_once_then_named_in_every_part_it_explains():
    @hidden_check("f", points=2)
    def check(g, fn):
        for label in ("one", "two"):
            with g.part(label):
                g.compare("v", g.call(fn), 1.5, rtol=0, mistakes={"M3": (2.5, "eps outside")})

    score, printed = _quietly(check, lambda: 2.5)
    assert [d.part for d in score.record.diagnoses] == ["one", "two"]
    assert "Diagnosis M3: eps outside" in printed
    assert "Diagnosis M3: (explained above)" in printed


def test_a_stub_matching_only_trivial_values_anchors_nothing():
    @hidden_check("f", points=2)
    def check(g, fn):
        with g.part("zeros where zeros belong"):
            g.compare("v", g.call(fn), np.zeros(3), rtol=0, atol=1e-12)
        with g.part("a property"):
            g.require(True, "never shown")

    assert _quietly(check, lambda: np.zeros(3))[0] == 0


def test_every_diagnosis_a_check_writes_starts_a_line_of_its_message():
    """A record takes a diagnosis from a line of the check's message that starts with it (never
    from the middle of a line, where quoted student text could hold the same words)."""
    import re
    from pathlib import Path

    folder = Path(checks.__file__).parent
    found = 0
    for path in sorted(folder.glob("*.py")):
        source = path.read_text()
        for match in re.finditer(r'(.{0,8})\{(?:DIAGNOSIS\}|_diagnose\(|_diag\()', source):
            found += 1
            before = match.group(1)
            assert before.endswith(('\\n      ', 'f"      ', 'f"')), (path.name, match.group(0))
    assert found >= 10
