"""The machinery behind every hidden check: parts, partial credit, diagnoses, the check's record.

A hidden test cell is one line, ``check_x(x)``, whose value is the points earned. nbgrader reads
that value as partial credit (``nbgrader.utils.determine_grade``: a numeric ``execute_result`` is
the cell's score). nbgrader also gives zero to a test cell that writes anything to stderr, so
every call into student code goes through :meth:`Grader.call`, which records warnings and
captures stderr and stdout, and turns them into quoted notes instead.

Usage::

    g = Grader("fit_standardizer", points=3)
    with g.part("matches the population std on a 5x3 example", weight=2):
        mean, scale = g.call(student_fn, X)
        g.compare("scale", scale, ref_scale, rtol=1e-12, mistakes={"M1": (ddof1, "...")})
    return g.finish()

Inside ``g.part(...)`` any exception counts as a failed part, never as a crashed cell:
:class:`Failure` carries our message; ``NotImplementedError`` means the exercise is still empty;
any other exception from student code is reported with its type and (quoted) message.

:meth:`Grader.finish` builds the check's :class:`~autograder.record.CheckRecord` (parts,
diagnoses, notes, carried-forward errors), prints its rendering and returns the score as a
:class:`CheckScore`, a float that carries the record. A check that calls other graded functions
of the notebook declares them (``hidden_check(..., uses=...)``) and gets the error-carried-
forward rule of :mod:`autograder.checks.carried`. This module is the API checks import: the
:class:`Grader` lives in :mod:`autograder.checks.grader` and the shared value helpers in
:mod:`autograder.checks.values`; both are re-exported here.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Mapping

from autograder.checks import carried
from autograder.checks.grader import (  # noqa: F401 - the API checks import from here
    NOTHING_FOR_NOTHING,
    CheckScore,
    Grader,
    PartResult,
)
from autograder.checks.values import (  # noqa: F401 - the API checks import from here
    M10_ADVICE,
    Failure,
    StudentError,
    close,
    companion,
    copy_param,
    fmt,
    is_plain_number,
    kernel_function,
    quiet,
    require_unchanged,
    rng,
    same_value,
    trivial,
    unpack,
)

# The report's text conventions (diagnosis and flag lines) live with the one notebook reader;
# the checks write them.
from autograder.notebooks import DIAGNOSIS, FLAG, diagnoses_in, flag_line, flags_in  # noqa: F401
from autograder.record import quote


def hidden_check(name: str, points: float, uses: tuple[str, ...] | Mapping[str, Callable] = (),
                 composed: Callable | None = None):
    """Turn ``body(g, student_fn)`` into a hidden check ``check(student_fn) -> points earned``.

    The wrapper makes the :class:`Grader`, runs the body, and always prints the report and
    returns a score (a :class:`CheckScore` carrying the record), even if the body itself fails
    outside a part. ``check.points`` is the cell's maximum, which a test compares with the
    notebook's metadata.

    ``uses`` names the other graded functions of the notebook that the graded function calls
    (``("batch_stats", "normalize", "scale_shift")``), by their names in
    :mod:`autograder.reference`, or maps names to reference functions. When the function loses
    points, the body runs again with the student's own callees in ``g.uses``: a part that then
    matches keeps its points, with a note (error carried forward, :mod:`autograder.checks.carried`).
    ``composed(uses, *args)``, when given, is the reference built from ``uses`` as the notebook's
    solution builds it: a check of a function that calls this one uses it to name the callee
    where a mistake this function only carries forward really lives.
    """
    references = carried.references(uses)
    if composed is not None:
        carried.register(name, references, composed)

    def decorate(body):
        def check(student_fn):
            g = Grader(name, points, uses=references)
            g.graded = student_fn
            if not callable(student_fn):
                with g.part(f"{name} is a function"):
                    raise Failure(f"{name} should be a function, got {type(student_fn).__name__}")
                return g.finish()
            # Nothing may reach stderr (nbgrader would score the cell 0): the check's own
            # warnings and output are captured too, not only the student's (see Grader.call).
            stray = io.StringIO()
            with warnings.catch_warnings(record=True), contextlib.redirect_stderr(stray):
                warnings.simplefilter("always")
                try:
                    run(g, body, student_fn)
                    if references and not g.stopped_early and g.lost_points():
                        carried.carry_forward(g, lambda g2: run(g2, body, student_fn),
                                              Grader(name, points))
                except BaseException as exc:
                    if getattr(exc, "kernel_gone", False):
                        g._settle()
                        exc.record = g.record()  # what ran before the kernel went away
                    raise
            return g.finish()

        check.__name__ = body.__name__
        check.__qualname__ = body.__qualname__
        check.__doc__ = body.__doc__
        check.__module__ = body.__module__
        check.points = float(points)
        check.function_name = name
        check.uses = tuple(references)
        carried.CHECKS[name] = check
        return check

    return decorate


def run(g: Grader, body: Callable, student_fn) -> None:
    """Run a check's body; an exception outside any part stops the check (it scores 0)."""
    try:
        body(g, student_fn)
    except Exception as exc:  # outside any part: nothing after it could be earned
        g.stopped_early = f"{type(exc).__name__}: {quote(exc)}"
