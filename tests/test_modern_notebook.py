"""Notebook 06 executed as ``nbgrader autograde`` runs it (nbclient, ``NBGRADER_EXECUTION``: the
reduced configuration), with every experiment's qualitative claim asserted for every seed.

The claims are those the notebook's text makes; each is checked on the numbers the notebook
itself computed (a cell appended at the end prints them as JSON), seed by seed, so that a claim
the reduced runs do not support fails here rather than misleading a student. Timing is reported,
never asserted (speed is measured by benchmarks, not tests).
"""

from __future__ import annotations

import json
import os

import nbformat
import numpy as np
import pytest
from conftest import ROOT, nbgrader_meta
from nbclient import NotebookClient

pytestmark = pytest.mark.nbgrader  # runs notebook 06 in a Jupyter kernel

SOURCE = ROOT / "source" / "06_modern_normalization" / "modern_normalization.ipynb"
MARK = "RESULTS "

DUMP = r'''
import json as _json

def _fold_error(dtype):
    net = E.trained_bn_net(data, CFG, BN, seed=0, dtype=dtype)
    folded = E.fold_network(net, fold_batchnorm)
    a, b = net.loss(data["X_test"]), folded.loss(data["X_test"])
    return {"rel": float(np.max(np.abs(a - b)) / np.max(np.abs(a))),
            "same": bool(np.array_equal(a.argmax(1), b.argmax(1)))}

_results = {
    "reduced": E.running_under_nbgrader(), "seeds": list(CFG.seeds),
    "grad_norms": {n: {str(L): g.tolist() for L, g in d.items()} for n, d in grad_norms.items()},
    "warm": {f"{n}|{w}": [r.test_acc for r in rs] for (n, w), rs in warm.items()},
    "best": best,
    "zero": {f"{L}|{g0}": {"first": [r.loss_history[0] for r in rs],
                           "reach": [E.steps_to(r, 0.8) for r in rs],
                           "final": [r.test_acc for r in rs]} for (L, g0), rs in zero.items()},
    "si": {str(wd): {"w": [r.trace["w_norm"] for r in rs],
                     "cos": [float(np.max(np.abs(r.trace["cos"]))) for r in rs]}
           for wd, rs in si.items()},
    "si_lr": CFG.si_lr,
    "scaling": {"product": (scaling["grad_norm"] * scaling["w_norm"]).tolist(),
                "cos": np.abs(scaling["cos"]).max().item()},
    "fold": {"float64": _fold_error(np.float64), "float32": _fold_error(np.float32)},
}
print("RESULTS " + _json.dumps(_results))
'''


@pytest.fixture(scope="module")
def graded_run():
    """The source notebook run as nbgrader's autograde runs it, with the results printed."""
    nb = nbformat.read(SOURCE, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(DUMP))
    env_before = dict(os.environ)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), env_before.get("PYTHONPATH", "")])
    os.environ.pop("MPLBACKEND", None)
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(SOURCE.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    assert MARK in text, f"the results dump printed nothing:\n{text[:500]}"
    return nb, json.loads(text.split(MARK, 1)[1])


def test_the_run_is_the_reduced_one_over_at_least_three_seeds(graded_run):
    _, res = graded_run
    assert res["reduced"] and len(res["seeds"]) >= 3


def test_every_hidden_check_gives_full_marks_under_autograde(graded_run):
    nb, _ = graded_run
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("grade"):
            score = [o for o in cell.outputs if o.output_type == "execute_result"][-1]
            assert float(score["data"]["text/plain"]) == meta["points"], meta["grade_id"]


def test_post_norm_gradients_grow_towards_the_output_and_pre_norm_gradients_do_not(graded_run):
    _, res = graded_run
    for L, rows in res["grad_norms"]["post-norm"].items():
        for seed, g in zip(res["seeds"], rows, strict=True):
            assert g[-1] > g[0], f"post-norm, {L} blocks, seed {seed}: last {g[-1]:.3f} <= first {g[0]:.3f}"
    for L, rows in res["grad_norms"]["pre-norm"].items():
        for seed, g in zip(res["seeds"], rows, strict=True):
            assert g[-1] < g[0], f"pre-norm, {L} blocks, seed {seed}: last {g[-1]:.3f} >= first {g[0]:.3f}"


def test_post_norm_needs_warmup_at_this_learning_rate_and_pre_norm_does_not(graded_run):
    _, res = graded_run
    w = res["warm"]
    for i, seed in enumerate(res["seeds"]):
        post_cold, post_warm = w["post-norm|False"][i], w["post-norm|True"][i]
        assert post_cold < 0.3, f"seed {seed}: post-norm trained without warm-up ({post_cold:.3f})"
        assert post_warm > post_cold + 0.2, f"seed {seed}: warm-up did not rescue post-norm"
        for warmed in ("False", "True"):
            pre = w[f"pre-norm|{warmed}"][i]
            assert pre > 0.85, f"seed {seed}: pre-norm (warm-up {warmed}) reached only {pre:.3f}"


def test_without_normalization_the_highest_stable_learning_rate_is_lower(graded_run):
    _, res = graded_run
    best = res["best"]
    for i, seed in enumerate(res["seeds"]):
        none = best["no normalization"][i]
        assert 0 < none <= 0.03, f"seed {seed}: no normalization stable up to {none}"
        for name in ("RMSNorm (yours)", "LayerNorm"):
            assert best[name][i] >= 3 * none, f"seed {seed}: {name} only up to {best[name][i]}"


def test_zero_gamma_starts_lower_helps_32_blocks_and_does_not_speed_up_8(graded_run):
    _, res = graded_run
    z = res["zero"]
    for i, seed in enumerate(res["seeds"]):
        for L in ("8", "32"):
            assert z[f"{L}|0.0"]["first"][i] < z[f"{L}|1.0"]["first"][i], (L, seed)
        deep0, deep1 = z["32|0.0"]["reach"][i], z["32|1.0"]["reach"][i]
        assert 0 <= deep0 < deep1, f"seed {seed}: 32 blocks, gamma 0 after {deep0}, gamma 1 after {deep1}"
        flat0, flat1 = z["8|0.0"]["reach"][i], z["8|1.0"]["reach"][i]
        assert flat0 >= flat1 >= 0, f"seed {seed}: 8 blocks, gamma 0 after {flat0}, gamma 1 after {flat1}"


def test_scale_invariance_orthogonal_gradient_growing_norm_and_weight_decay(graded_run):
    _, res = graded_run
    product = np.array(res["scaling"]["product"])
    assert np.ptp(product, axis=1).max() / product.mean() < 1e-4, "||g|| ||W1|| is not constant"
    assert res["scaling"]["cos"] < 1e-5
    plain, decayed = res["si"]["0.0"], next(v for k, v in res["si"].items() if k != "0.0")
    for i, seed in enumerate(res["seeds"]):
        w0, wd = np.array(plain["w"][i]), np.array(decayed["w"][i])
        assert max(plain["cos"][i], decayed["cos"][i]) < 1e-4, f"seed {seed}: gradient not orthogonal"
        assert np.all(np.diff(w0) >= 0), f"seed {seed}: ||W1|| shrank without weight decay"
        assert wd[-1] < w0[-1], f"seed {seed}: weight decay did not keep ||W1|| smaller"
        assert res["si_lr"] / wd[-1] ** 2 > res["si_lr"] / w0[-1] ** 2


def test_the_folded_network_equals_the_unfolded_one_to_rounding(graded_run):
    _, res = graded_run
    assert res["fold"]["float64"]["rel"] < 1e-12 and res["fold"]["float64"]["same"]
    assert res["fold"]["float32"]["rel"] < 1e-5 and res["fold"]["float32"]["same"]
