"""The grading machinery itself: partial credit, captured output, never a crash."""

import sys
import warnings

import numpy as np
import pytest

from autograder.checks.framework import (
    Failure,
    Grader,
    close,
    diagnoses_in,
    hidden_check,
    quiet,
    require_unchanged,
    unpack,
)


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


def test_a_check_that_stops_early_is_reported_not_raised_and_keeps_no_points(capsys):
    @hidden_check("f", points=2)
    def buggy(g, fn):
        with g.part("first"):
            g.compare("v", fn(), 0.0, rtol=0)
            g._current.anchored += 1  # as if a real output had matched
        warnings.warn("from the check", UserWarning, stacklevel=1)
        raise RuntimeError("check bug")

    # the part it reached passed, but the parts it never reached could not be earned
    score = buggy(lambda: 0.0)
    assert score == 0.0
    out = capsys.readouterr()
    assert "The check stopped early (RuntimeError: 'check bug')" in out.out and out.err == ""
    assert score.record.stopped == "RuntimeError: 'check bug'"
    assert [p.status for p in score.record.parts] == ["passed"]
    assert score.record.parts[0].points_earned == 0.0


def test_a_part_that_compares_nothing_earns_only_beside_a_matching_output(capsys):
    @hidden_check("f", points=2)
    def check(g, fn):
        with g.part("output"):
            g.compare("v", fn(), 1.0, rtol=0)
        with g.part("property"):
            g.require(True, "never shown")

    assert check(lambda: 1.0) == 2.0
    assert check(lambda: 0.0) == 0.0  # a stub: the property alone earns nothing
    assert "earns its weight only together with an output" in capsys.readouterr().out


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


def test_shared_helpers_unpack_unchanged_close_quiet():
    assert unpack((1, 2), 2, "a, b") == (1, 2)
    for bad in (3, (1, 2, 3), "ab"):
        try:
            unpack(bad, 2, "mean, scale")
        except Failure as exc:
            assert "expected a tuple (mean, scale)" in str(exc)
        else:
            raise AssertionError(f"unpack accepted {bad!r}")
    require_unchanged("x", np.ones(2), np.ones(2))
    try:
        require_unchanged("x", np.ones(2), np.zeros(2))
    except Failure as exc:
        assert "x was modified" in str(exc) and diagnoses_in(str(exc)) == {"M10"}
    else:
        raise AssertionError("a modified input passed")
    assert not close("text", 1.0, 1e-9) and not close(np.ones(2), np.ones(3), 1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quiet() must not warn even when warnings are errors
        assert np.isinf(quiet(lambda: np.float64(1.0) / 0.0))


def test_expect_raises(capsys):
    def strict(x):
        raise ValueError("x must be 2-D")

    def lenient(x):
        return x

    def empty(x):
        raise NotImplementedError()

    g = Grader("f", 3)
    with g.part("raises"):
        g.expect_raises(ValueError, strict, 1, what="1-D x")
    with g.part("returns"):
        g.expect_raises(ValueError, lenient, 1, what="1-D x", hint="Check x.ndim.")
    with g.part("empty"):
        g.expect_raises(ValueError, empty, 1, what="1-D x")
    passed = [r.passed for r in g.results]
    assert passed == [True, False, False]
    assert "1-D x: expected ValueError, but your function returned 1. Check x.ndim." in g.results[1].messages
    assert "not implemented yet" in g.results[2].messages[0]


def test_flag_lines_are_found_again_in_text_and_html():
    from autograder.checks.framework import flag_line, flags_in

    line = flag_line("kernel-died", "the kernel died\n  (SIGSEGV)")
    assert line == "Flag [kernel-died]: the kernel died (SIGSEGV)", line
    html = f"<pre>ok\n{line}\n</pre><p>{flag_line('reference-access', 'imported it')}</p>{line}"
    assert flags_in(html) == [("kernel-died", "the kernel died (SIGSEGV)"),
                              ("reference-access", "imported it")]
    assert flags_in("Flag: nothing here, Diagnosis M1: x") == []
    with pytest.raises(ValueError, match="kind"):
        flag_line("Kernel Died", "x")
