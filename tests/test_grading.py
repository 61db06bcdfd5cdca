"""The grading machinery itself: partial credit, captured output, never a crash."""

import sys
import warnings

import numpy as np

from autograder.grading import Failure, Grader, diagnoses_in, hidden_check


@hidden_check("square", points=3)
def check_square(g, fn):
    with g.part("squares 2", weight=2):
        g.compare("square(2)", g.call(fn, 2.0), 4.0, rtol=1e-12,
                  mistakes={"M99": (2.0, "returned x instead of x**2")})
    with g.part("squares -1"):
        g.compare("square(-1)", g.call(fn, -1.0), 1.0, rtol=1e-12)


def test_partial_credit_is_the_weighted_fraction(capsys):
    assert check_square(lambda x: x * x) == 3.0
    # passes only the weight-1 part: 3 * 1/3
    assert check_square(lambda x: 1.0) == 1.0
    out = capsys.readouterr()
    assert "[FAIL] squares 2" in out.out and out.err == ""


def test_a_known_mistake_is_named(capsys):
    assert check_square(lambda x: x) == 0.0
    out = capsys.readouterr().out
    assert diagnoses_in(out) == {"M99"} and "returned x instead of x**2" in out


def test_student_warnings_prints_and_exceptions_never_reach_stderr(capsys):
    def noisy(x):
        print("debug", file=sys.stderr)
        warnings.warn("careful", RuntimeWarning, stacklevel=1)
        return np.float64(x) / 0.0

    assert check_square(noisy) == 0.0
    out = capsys.readouterr()
    assert out.err == ""
    assert "RuntimeWarning" in out.out and "wrote to stderr" in out.out

    def broken(x):
        raise KeyError("oops")

    assert check_square(broken) == 0.0
    out = capsys.readouterr()
    assert "raised KeyError" in out.out and out.err == ""


def test_not_implemented_and_non_callables(capsys):
    def empty(x):
        raise NotImplementedError()

    assert check_square(empty) == 0.0
    assert "not implemented yet" in capsys.readouterr().out
    assert check_square(None) == 0.0
    assert "should be a function" in capsys.readouterr().out


def test_a_bug_in_the_check_itself_is_reported_not_raised(capsys):
    @hidden_check("f", points=2)
    def buggy(g, fn):
        with g.part("first"):
            pass
        warnings.warn("from the check", UserWarning, stacklevel=1)
        raise RuntimeError("check bug")

    assert buggy(lambda: 0) == 2.0  # the only part passed; the crash after it is a note
    out = capsys.readouterr()
    assert "the check stopped early (RuntimeError: check bug)" in out.out and out.err == ""


def test_compare_rejects_wrong_shapes_and_nan():
    g = Grader("f", 1)
    with g.part("shape"):
        g.compare("v", np.ones((2, 1)), np.ones(2), rtol=1e-9)
    with g.part("nan"):
        g.compare("v", np.array([np.nan, 1.0]), np.ones(2), rtol=1e-9)
    with g.part("require"):
        g.require(False, "custom message")
    messages = [m for r in g.results for m in r.messages]
    assert not any(r.passed for r in g.results)
    assert "shape (2, 1), expected (2,)" in messages[0]
    assert "nan/inf" in messages[1] and messages[2] == "custom message"
    assert isinstance(Failure("x"), AssertionError)
