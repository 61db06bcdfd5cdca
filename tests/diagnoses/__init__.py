"""Fixture submissions for ``tests/test_diagnoses.py``: one small student function per known
mistake (``autograder/MISCONCEPTIONS.md``, M1..M21) and per correct alternative.

Each fixture is the source of one answer cell, written as a student would write it. It runs in
the namespace of the notebook's own solution cells (and, for notebook 03, its read-only provided
forward pass), so a function that calls ``batchnorm_forward`` or ``fit_standardizer`` gets the
correct one unless the fixture defines its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fixture:
    """One submission of one graded function.

    Attributes
    ----------
    function : str
        The graded function (the name the answer cell defines and the check grades).
    mistake : str or None
        ``"M7"`` for a submission with exactly that mistake; None for a correct alternative or
        for a mistake outside the catalogue (see :func:`uncatalogued`).
    name : str
        A short description, unique per function and mistake (the test id).
    source : str
        The answer cell's code.
    also : tuple of str
        Other ids the same code necessarily shows, e.g. M3 for a missing eps that also divides a
        zero variance by zero (M5). Empty for almost every fixture; ``why`` says why when not.
    why : str
        The reason for ``also``.
    other : bool
        True for a wrong submission whose mistake is in no catalogue entry.
    """

    function: str
    mistake: str | None
    name: str
    source: str
    also: tuple[str, ...] = ()
    why: str = ""
    other: bool = False

    @property
    def id(self) -> str:
        kind = self.mistake or ("other" if self.other else "correct")
        return f"{self.function}-{kind}-{self.name}"


def mistake(function: str, mk: str, name: str, source: str, *, also: tuple[str, ...] = (),
            why: str = "") -> Fixture:
    """A submission of ``function`` with exactly the mistake ``mk`` (plus ``also``, see Fixture)."""
    if also and not why:
        raise ValueError(f"{function}/{mk}/{name}: 'also' {also} needs a reason in 'why'")
    return Fixture(function, mk, name, source, tuple(also), why)


def alternative(function: str, name: str, source: str) -> Fixture:
    """A correct submission of ``function`` that differs from the reference solution."""
    return Fixture(function, None, name, source)


def uncatalogued(function: str, name: str, source: str) -> Fixture:
    """A wrong submission whose mistake is in no catalogue entry: it must lose points and be
    named by no catalogue id (a wrong name would send the student after the wrong fix)."""
    return Fixture(function, None, name, source, other=True)
