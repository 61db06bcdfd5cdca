"""Sample submissions used by the demo and the tests; see CONTRIBUTING.md.

Each module here (named after a notebook) defines ``NOTEBOOK`` and ``STUDENTS``; every student
declares what grading must find in ``expect``. :func:`unmet_expectations` is the one judge of
that, for the demo's table and for the tests alike.

Imports only the standard library: samples are data, read by ``autograder.tools.demo`` and
the tests; nothing in ``checks/`` or ``kernel/`` may import them.
"""

from __future__ import annotations


def unmet_expectations(expect: dict, score: float, max_score: float, diagnoses: set[str]) -> list[str]:
    """What a graded sample got that its ``expect`` rules out; empty when all is as expected.

    Parameters
    ----------
    expect : dict
        ``{"full_marks": bool, "zero": bool, "diagnoses": [ids]}`` from a sample.
    score, max_score : float
        Points from the autograded cells, and their maximum.
    diagnoses : set of str
        Misconception ids the hidden checks recorded (``autograder.notebooks.diagnoses``).
    """
    problems = []
    if expect.get("full_marks"):
        if score != max_score:
            problems.append(f"expected full marks, got {score:g}/{max_score:g}")
        if diagnoses:
            problems.append(f"a correct submission was diagnosed with {sorted(diagnoses)}")
    elif score >= max_score:
        problems.append(f"has mistakes but got full marks ({score:g}/{max_score:g})")
    if expect.get("zero") and score != 0:
        problems.append(f"expected 0 points, got {score:g}")
    if not expect.get("zero") and score == 0:
        problems.append("expected some points, got 0")
    missing = set(expect.get("diagnoses", [])) - diagnoses
    if missing:
        problems.append(f"missing diagnoses {sorted(missing)} (found {sorted(diagnoses)})")
    return problems
