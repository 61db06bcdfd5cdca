"""Error carried forward (issue 20), with the checks called directly on a notebook's namespace.

A mistake costs points once, in the graded function that holds it: a caller right on the
student's own callee keeps full marks and its record names the callee and the mistake; a
mistake written again inline is charged where it is written; nothing is carried forward from a
stub, so carried-forward never gives a stub points. The same scenarios are graded for real by
nbgrader in ``tests/test_carried_nbgrader.py``.
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from chains import ALT_BY_PATHS, DDOF1, M18_DVAR, SCENARIOS, Scenario, answers, hidden_checks

import autograder.checks as checks
from autograder import reference as ref
from autograder.checks import carried
from course.layers import affine_backward, affine_forward, relu_backward, relu_forward


def namespace(sources: dict[str, str]) -> dict:
    """The student's notebook: the setup cell's names, then the answer cells run in order."""
    ns = {"np": np, "copy": copy, "affine_forward": affine_forward, "affine_backward": affine_backward,
          "relu_forward": relu_forward, "relu_backward": relu_backward,
          "batchnorm_forward": ref.batchnorm_forward, "batchnorm_backward": ref.batchnorm_backward}
    for grade_id, source in sources.items():
        exec(compile(source, f"<{grade_id}>", "exec"), ns)  # noqa: S102 - our fixtures
    return ns


def grade(scenario_or_sources, assignment: str | None = None) -> dict:
    """``{graded function: score with its record}`` of every hidden check of the notebook."""
    if isinstance(scenario_or_sources, Scenario):
        assignment = scenario_or_sources.assignment
        scenario_or_sources = answers(scenario_or_sources)
    ns = namespace(scenario_or_sources)
    scores = {}
    for _, name in hidden_checks(assignment):
        check = getattr(checks, name)
        with contextlib.redirect_stdout(io.StringIO()):
            scores[check.function_name] = check(ns[check.function_name])
    return scores


def _points(function: str) -> float:
    return next(getattr(checks, n).points for n in checks.__all__
                if getattr(checks, n).function_name == function)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_a_mistake_costs_points_only_where_it_lives(scenario):
    scores = grade(scenario)
    for function, score in scores.items():
        if function in scenario.lose:
            assert score < _points(function), (scenario.id, function, score)
        else:
            assert score == _points(function), (scenario.id, function, score,
                                                score.record.diagnosis_ids)
    for caller, (callee, mistake) in scenario.notes.items():
        record = scores[caller].record
        named = [c for c in record.carried if c.callee == callee]
        assert named and mistake in named[0].mistakes, (caller, record.carried)
        assert f"`{callee}`, whose mistake ({mistake}" in named[0].note
        assert not record.diagnosis_ids, f"{caller} names the callee's mistake again"
    for function in scenario.lose:  # the mistake is named where it lives
        assert not scores[function].record.carried


def test_the_ddof1_notebook_of_issue_20():
    scores = grade(DDOF1)
    assert {f: float(s) for f, s in scores.items()} == {
        "batch_stats": 0.9, "normalize": 2.0, "scale_shift": 1.0, "batchnorm_forward": 6.0,
        "spatial_batchnorm_forward": 3.0}  # 12.9 / 14 (6.09 / 14 before issue 20)
    note = scores["batchnorm_forward"].record.carried[0].note
    assert note == ("uses your `batch_stats`, whose mistake (M1) is marked there; no second "
                    "deduction")
    spatial = scores["spatial_batchnorm_forward"].record.carried[0]
    assert spatial.through == ["batchnorm_forward"] and spatial.callee == "batch_stats"


def _without_carrying(monkeypatch, sources, assignment):
    with monkeypatch.context() as m:
        m.setattr(carried, "carry_forward", lambda *a, **k: None)
        return grade(sources, assignment)


def _edit(scenario_edits: dict, assignment: str) -> dict:
    return answers(Scenario("edited", assignment, scenario_edits, frozenset()))


#: (assignment, the callee's mistake and the caller writing it again inline, the caller, its id)
INLINE = {
    # batchnorm_forward computes ddof=1 itself instead of calling its batch_stats
    "02 batch_stats ddof=1": ("02_batchnorm_forward", {
        "batch_stats": DDOF1.edits["batch_stats"],
        "batchnorm_forward": ("mean, var = batch_stats(x)",
                              "mean, var = x.mean(axis=0), x.var(axis=0, ddof=1)")},
        "batchnorm_forward", "M1"),
    # batchnorm_backward differentiates the normalization itself, with x_hat in dvar, instead
    # of calling its normalize_backward
    "03 normalize_backward M18": ("03_batchnorm_backward", {
        "normalize_backward": M18_DVAR,
        "batchnorm_backward": (
            '    dx_direct, dmean, dvar = normalize_backward(dx_hat, x, cache["mean"], cache["var"], '
            'cache["eps"])',
            '    inv_std = 1.0 / np.sqrt(cache["var"] + cache["eps"])\n'
            '    dx_direct, dmean = dx_hat * inv_std, -inv_std * dx_hat.sum(axis=0)\n'
            '    dvar = -0.5 * inv_std**3 * (dx_hat * cache["x_hat"]).sum(axis=0)')},
        "batchnorm_backward", "M18"),
}


@pytest.mark.parametrize("case", sorted(INLINE))
def test_the_callee_mistake_written_again_inline_is_charged_in_the_caller(monkeypatch, case):
    """The caller writes its callee's mistake itself instead of calling its (equally wrong)
    callee: it did not call the callee, so nothing is carried forward."""
    assignment, edits, caller, mistake = INLINE[case]
    sources = _edit(edits, assignment)
    scores = grade(sources, assignment)
    baseline = _without_carrying(monkeypatch, sources, assignment)
    score = scores[caller]
    assert score == baseline[caller] < _points(caller) and not score.record.carried
    assert mistake in score.record.diagnosis_ids


#: (03 edits: a callee's mistake, and the caller that calls it dropping a path (M17); the callee,
#: its mistake, the caller)
ON_TOP = {
    "batchnorm_backward": ({
        "normalize_backward": M18_DVAR,
        "batchnorm_backward": ("dx = dx_direct + batch_stats_backward(dmean, dvar, x)",
                               "dx = batch_stats_backward(dmean, dvar, x)")},
        "normalize_backward", "M18"),
    "batchnorm_backward_alt": ({
        "dx_through_var": ("N = dx_hat.shape[0]", "N = dx_hat.shape[1]"),
        "batchnorm_backward_alt": (ALT_BY_PATHS[0], ALT_BY_PATHS[1].replace(
            " + dx_through_mean(dx_hat, inv_std)", ""))},
        "dx_through_var", "M16"),
}


@pytest.mark.parametrize("caller", sorted(ON_TOP))
def test_a_caller_mistake_on_top_of_a_callee_mistake_is_named_in_the_caller(caller):
    """03: a callee has a mistake and the caller, which calls it, also drops a path (M17). The
    first is charged in the callee, the second in the caller, whose diagnosis is found on the
    student's own callees (on the references it would match no catalogued dx), and nothing is
    forgiven there."""
    edits, callee, mistake = ON_TOP[caller]
    scores = grade(_edit(edits, "03_batchnorm_backward"), "03_batchnorm_backward")
    assert scores[callee] < _points(callee)
    assert mistake in scores[callee].record.diagnosis_ids
    score = scores[caller]
    assert score < _points(caller) and not score.record.carried
    assert "M17" in score.record.diagnosis_ids, score.record.parts
    assert mistake not in score.record.diagnosis_ids, "the callee's mistake is named again"


@pytest.mark.parametrize("stub", ["zeros and ones", "the input returned", "None"])
def test_nothing_is_carried_forward_from_a_stub_callee(monkeypatch, stub):
    body = {"zeros and ones": "return np.zeros(x.shape[1]), np.ones(x.shape[1])",
            "the input returned": "return x, x",
            "None": "return None"}[stub]
    sources = _edit({"batch_stats": ("    mean = x.mean(axis=0)\n    var = ((x - mean) ** 2).mean(axis=0)\n"
                                     "    return mean, var", f"    {body}")},
                    "02_batchnorm_forward")
    scores = grade(sources, "02_batchnorm_forward")
    baseline = _without_carrying(monkeypatch, sources, "02_batchnorm_forward")
    assert scores["batch_stats"] == 0
    for caller in ("batchnorm_forward", "spatial_batchnorm_forward"):
        assert scores[caller] == baseline[caller] < _points(caller), (caller, scores[caller])
        assert not scores[caller].record.carried


def test_a_stub_caller_on_stub_callees_scores_zero():
    stubs = {name: f"def {name}(*args):\n    return np.zeros(3), {{}}\n" for name in
             ("batch_stats", "normalize", "scale_shift", "batchnorm_forward",
              "spatial_batchnorm_forward")}
    assert all(s == 0 for s in grade(stubs, "02_batchnorm_forward").values())


def test_a_self_consistency_part_needs_an_output_that_matched_the_reference():
    """Issue 19: a backward pass returning zeros, with a forward pass that returns zeros once
    the backward has been called, agrees with finite differences of that forward pass. Without
    a part that matched the reference, that agreement earns nothing (it was 2.5 / 5)."""
    sources = answers(Scenario("x", "04_experiments", {}, frozenset()))
    sources["affine_bn_relu_forward"] = sources["affine_bn_relu_forward"].replace(
        "    return out, (fc_cache, bn_cache, relu_cache)",
        "    if SWITCHED:\n        out = np.zeros_like(out)\n"
        "    return out, (fc_cache, bn_cache, relu_cache)")
    sources["affine_bn_relu_backward"] = (
        "def affine_bn_relu_backward(dout, cache):\n"
        "    global SWITCHED\n    SWITCHED = True\n"
        "    fc, bn_cache, _ = cache\n"
        "    x, w = fc[0], fc[1]\n"
        "    return (np.zeros_like(x), np.zeros_like(w), np.zeros(w.shape[1]),\n"
        "            np.zeros_like(bn_cache['gamma']), np.zeros_like(bn_cache['gamma']))\n")
    ns = namespace({"switch": "SWITCHED = False\n", **sources})
    with contextlib.redirect_stdout(io.StringIO()):
        score = checks.check_affine_bn_relu_backward(ns["affine_bn_relu_backward"])
    assert score == 0, score.record.parts
    # the trick did fire: both sides agree (they are both zeros), and that alone earns nothing
    fd = next(p for p in score.record.parts if "finite differences" in p.name)
    assert fd.compared and all(c.matched for c in fd.compared), fd
    assert fd.status == "failed" and "earns its weight only together" in fd.findings[-1].lines[0]


def test_a_value_written_back_never_raises_the_score():
    """Issue 19: batchnorm_forward with M8 (test mode on batch statistics) that also writes
    bn_param['eps'] = 1e14 back scored 4.64 / 6 against 4.09 / 6 without it; the float32 part
    read the written-back dict. The reference now never reads a value the student wrote."""
    base = answers(Scenario("x", "02_batchnorm_forward", {}, frozenset()))
    m8 = base["batchnorm_forward"].replace("        mean, var = running_mean, running_var",
                                           "        mean, var = batch_stats(x)")
    trick = m8.replace('    x_hat = normalize(x, mean, var, eps)',
                       '    x_hat = normalize(x, mean, var, eps)\n    bn_param["eps"] = 1e14')
    honest = grade({**base, "batchnorm_forward": m8}, "02_batchnorm_forward")
    tricked = grade({**base, "batchnorm_forward": trick}, "02_batchnorm_forward")
    assert honest["batchnorm_forward"] < 6
    assert tricked["batchnorm_forward"] <= honest["batchnorm_forward"]


def test_running_statistics_updated_in_place_are_m32_and_cost_points_once():
    base = answers(Scenario("x", "02_batchnorm_forward", {}, frozenset()))
    inplace = base["batchnorm_forward"].replace(
        '        bn_param["running_mean"] = (1 - momentum) * running_mean + momentum * mean\n'
        '        bn_param["running_var"] = (1 - momentum) * running_var + momentum * var * N / (N - 1)',
        "        running_mean *= 1 - momentum\n        running_mean += momentum * mean\n"
        "        running_var *= 1 - momentum\n        running_var += momentum * var * N / (N - 1)\n"
        '        bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var')
    assert inplace != base["batchnorm_forward"]
    scores = grade({**base, "batchnorm_forward": inplace}, "02_batchnorm_forward")
    record = scores["batchnorm_forward"].record
    assert record.diagnosis_ids == ["M32"]
    assert [p.status for p in record.parts].count("failed") == 1, record.parts
    # the values are right: the spatial forward that calls it loses nothing
    assert scores["spatial_batchnorm_forward"] == 3
