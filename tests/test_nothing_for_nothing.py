"""Nothing for nothing: a function that computes nothing earns nothing on any hidden check.

Every hidden check of the course (``autograder.checks.__all__``) is run against a table of stubs
(``pass``, ``return None``, ``return 0, 0, 0``, zeros, a constant or random values of exactly the
shape and dtype of the reference's output, the input returned unchanged, and functions that raise,
``KeyboardInterrupt`` and ``SystemExit`` included), against the reference's own values in types
that are not plain numbers (complex, masked, object and string arrays, an ndarray subclass that
overrides ``__array_ufunc__``), and against every public function of ``course/`` wrapped to look
like the graded function. Each must score exactly 0, and no exception may escape a check.

The checks are called here with plain Python callables; under nbgrader the same check code calls
the student's function in the kernel (autograder/kernel/remote.py), so the result is the same.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import autograder.checks as checks
import autograder.reference as ref
import course

#: The reference function each check's graded function is modelled on (its output's shape).
REFERENCE_OF = {
    "fixed_backward_inv_n": "batchnorm_backward",
    "fixed_backward_dvar": "batchnorm_backward",
}

CHECKS = {name: getattr(checks, name) for name in checks.__all__}


def _reference(check) -> object | None:
    name = check.function_name
    return getattr(ref, REFERENCE_OF.get(name, name), None)


def _shaped(value, fill):
    """``value`` with every array (and float) leaf replaced by ``fill(leaf)``."""
    if isinstance(value, np.ndarray):
        return fill(value)
    if isinstance(value, (float, np.floating)):
        return fill(np.asarray(value))  # a 0-d array: a float would turn it back into a float
    if isinstance(value, tuple):
        return tuple(_shaped(v, fill) for v in value)
    if isinstance(value, list):
        return [_shaped(v, fill) for v in value]
    if isinstance(value, dict):
        return {k: _shaped(v, fill) for k, v in value.items()}
    return value


def _like_reference(check, fill):
    """A stub returning the reference's output structure, every array replaced by ``fill``."""
    reference = _reference(check)

    def stub(*args):
        if reference is None:
            return None
        try:
            out = reference(*copy.deepcopy(args))  # a copy: the stub writes nothing back
        except Exception:
            return None
        return _shaped(out, fill)

    return stub


_RNG = np.random.default_rng(2026)


def _first_array(args):
    return next((a for a in args if isinstance(a, np.ndarray)), None)


STUBS = {
    "pass": lambda check: (lambda *args: None),
    "return 0, 0, 0": lambda check: (lambda *args: (0, 0, 0)),
    "zeros of the right shape": lambda check: _like_reference(check, np.zeros_like),
    "a constant of the right shape": lambda check: _like_reference(
        check, lambda a: np.full_like(a, 0.5)),
    "random of the right shape": lambda check: _like_reference(
        check, lambda a: _RNG.normal(size=a.shape).astype(a.dtype)),
    "the input unchanged": lambda check: (lambda *args: _first_array(args)),
    "raises ValueError": lambda check: (lambda *args: (_ for _ in ()).throw(ValueError("no"))),
    "raises KeyboardInterrupt": lambda check: (
        lambda *args: (_ for _ in ()).throw(KeyboardInterrupt())),
    "raises SystemExit": lambda check: (lambda *args: (_ for _ in ()).throw(SystemExit(0))),
}


def _score(check, fn, capsys) -> float:
    fn.__name__ = check.function_name
    score = check(fn)
    out = capsys.readouterr()
    assert out.err == "", out.err[:300]
    return score, out.out


@pytest.mark.parametrize("stub", sorted(STUBS))
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_every_stub_scores_zero_on_every_check(name, stub, capsys):
    check = CHECKS[name]
    score, report = _score(check, STUBS[stub](check), capsys)
    assert score == 0.0, f"{stub} scored {score} on {name}:\n{report}"


class Overriding(np.ndarray):
    """An ndarray subclass that answers every ufunc with the values it wants."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return np.zeros(np.broadcast_shapes(*(np.shape(i) for i in inputs)))


NOT_PLAIN = {
    "complex (values + 7j)": lambda a: a + 7j,
    "complex with no imaginary part": lambda a: a.astype(np.complex128),
    "masked array": lambda a: np.ma.masked_array(a, mask=np.zeros(a.shape, bool)),
    "object array": lambda a: a.astype(object),
    "string array": lambda a: a.astype(str),
    "ndarray subclass overriding __array_ufunc__": lambda a: np.asarray(a).view(Overriding),
}


@pytest.mark.parametrize("kind", sorted(NOT_PLAIN))
@pytest.mark.parametrize("name", sorted(n for n in CHECKS if _reference(CHECKS[n]) is not None))
def test_the_right_values_in_a_type_that_is_not_plain_numbers_score_zero(name, kind, capsys):
    check = CHECKS[name]
    score, report = _score(check, _like_reference(check, NOT_PLAIN[kind]), capsys)
    assert score == 0.0, f"{kind} scored {score} on {name}:\n{report}"


def _course_functions():
    """Every public function of every module of ``course/``."""
    found = {}
    for info in pkgutil.iter_modules(course.__path__):
        module = importlib.import_module(f"course.{info.name}")
        for fname, fn in vars(module).items():
            if (inspect.isfunction(fn) and not fname.startswith("_")
                    and fn.__module__ == module.__name__):
                found[f"course.{info.name}.{fname}"] = fn
    return found


COURSE_FUNCTIONS = _course_functions()


def test_course_publishes_functions_to_wrap():
    """The wrapper test below sees course/'s public API (so it cannot pass by finding none)."""
    assert len(COURSE_FUNCTIONS) >= 20, sorted(COURSE_FUNCTIONS)
    assert "course.gradcheck.numerical_gradient_array" not in COURSE_FUNCTIONS


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_no_function_of_course_answers_a_graded_exercise(name, capsys):
    """course/ is published on day one: a wrapper around any of its public functions, called
    with the graded function's arguments, scores 0 on every hidden check."""
    check = CHECKS[name]
    earned = {}
    for fname, fn in COURSE_FUNCTIONS.items():
        def wrapper(*args, _fn=fn):
            try:
                return _fn(*args)
            except Exception:
                return None

        score, _ = _score(check, wrapper, capsys)
        if score:
            earned[fname] = score
    assert not earned, f"course/ functions that score on {name}: {earned}"


def _in_namespace(fn, namespace: dict):
    """``fn`` as a function of a notebook whose other functions are ``namespace``'s."""
    import types

    return types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__,
                              fn.__closure__)


CALLERS = sorted(n for n in CHECKS if CHECKS[n].uses)


def test_the_checks_with_callees_are_the_chains_of_the_notebooks():
    assert {CHECKS[n].function_name: set(CHECKS[n].uses) for n in CALLERS} == {
        "standardize_splits": {"fit_standardizer", "standardize"},
        "batchnorm_forward": {"batch_stats", "normalize", "scale_shift"},
        "spatial_batchnorm_forward": {"batchnorm_forward"},
        "spatial_batchnorm_backward": {"batchnorm_backward"},
        "mode_accuracies": {"affine_bn_relu_forward"},
    }


@pytest.mark.parametrize("stub", sorted(STUBS))
@pytest.mark.parametrize("name", CALLERS)
def test_a_stub_earns_nothing_carried_forward_from_stub_callees(name, stub, capsys):
    """Error carried forward never pays a stub: a stub graded function in a notebook whose
    callees are stubs of the same kind (shaped like their own references) scores 0."""
    check = CHECKS[name]
    namespace: dict = {"np": np}
    by_function = {CHECKS[n].function_name: CHECKS[n] for n in CHECKS}
    for callee in check.uses:
        fn = STUBS[stub](by_function[callee])
        fn.__name__ = callee
        namespace[callee] = _in_namespace(fn, namespace)
    graded = _in_namespace(STUBS[stub](check), namespace)
    score, report = _score(check, graded, capsys)
    assert score == 0.0, f"{stub} with {stub} callees scored {score} on {name}:\n{report}"
    assert not score.record.carried
