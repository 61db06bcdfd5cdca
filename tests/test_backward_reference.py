"""Assignment 03: the reference backward pass, its provided forward, and its hidden checks.

Oracles we did not write: finite differences (a 6th-order centered stencil, below), PyTorch's
autograd for ``BatchNorm1d`` / ``BatchNorm2d``, and the mathematical invariants of a correct dx.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import inspect
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from conftest import release_stub

from autograder import checks as CB
from autograder import reference as R
from autograder.checks.batchnorm_backward import _as64
from autograder.checks.framework import DIAGNOSIS, diagnoses_in
from autograder.reference import batchnorm as R_bn
from autograder.samples import batchnorm_backward as samples
from autograder.samples import unmet_expectations
from course.gradcheck import rel_error

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "source" / "03_batchnorm_backward" / "batchnorm_backward.ipynb"

# 6th-order centered differences: error O(h^6). With h = 1e-2 times the column's std, truncation
# and rounding both stay near 1e-12 relative, so the elementwise relative error against a correct
# dx stays below 1e-9 (measured worst 6e-10 over 100 random cases); the test asks < 1e-8. The plain
# 2nd-order difference with h = 1e-5 is only good to ~5e-8 here (rounding / h), too coarse for it.
_C6 = {3: 1 / 60, 2: -9 / 60, 1: 45 / 60, -1: -45 / 60, -2: 9 / 60, -3: -1 / 60}


def fd6(f, x, dout, h):
    """Gradient of sum(f(x) * dout) by 6th-order centered differences; h broadcasts to x."""
    x = np.array(x, dtype=np.float64)
    h = np.broadcast_to(np.asarray(h, dtype=np.float64), x.shape)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        acc = 0.0
        for k, c in _C6.items():
            x[i] = old + k * h[i]
            acc = acc + c * np.array(f(x), dtype=np.float64)
        x[i] = old
        grad[i] = np.sum(acc * dout) / h[i]
    return grad


def _case(seed, N, D, offset=0.0, eps=1e-5):
    r = np.random.default_rng(seed)
    x = offset + r.uniform(0.5, 4.0, D) * r.normal(size=(N, D))
    gamma = r.uniform(0.5, 2.0, D) * r.choice([-1.0, 1.0], D)
    beta = r.normal(size=D)
    dout = r.normal(size=(N, D))  # non-uniform upstream gradient
    return x, gamma, beta, dout, {"mode": "train", "eps": eps}


def _shapes():
    r = np.random.default_rng(2024)
    cases = [(2, 3, 0.0, 0.5), (2, 1, 5.0, 0.5), (7, 1, 0.0, 1e-5), (5, 4, 1e3, 1e-5)]
    # N = 2: x_hat = +-1 whatever x is, so with a tiny eps dx is ~0 and any relative error is
    # noise; eps = 0.5 makes it a well-conditioned, non-zero gradient.
    for _ in range(16):
        N, D = int(r.integers(3, 12)), int(r.integers(1, 7))
        cases.append((N, D, float(r.choice([0.0, 5.0, 100.0])), 1e-5))
    return cases


@pytest.mark.parametrize("N,D,offset,eps", _shapes())
@pytest.mark.parametrize("backward", [R.batchnorm_backward, R.batchnorm_backward_alt])
def test_reference_backward_agrees_with_finite_differences(backward, N, D, offset, eps):
    x, gamma, beta, dout, bn = _case(N * 100 + D, N, D, offset, eps)
    _, cache = R.batchnorm_forward(x, gamma, beta, dict(bn))
    dx, dgamma, dbeta = backward(dout, cache)
    h = 1e-2 * x.std(axis=0)
    num_dx = fd6(lambda v: R.batchnorm_forward(v, gamma, beta, dict(bn))[0], x, dout, h)
    num_dg = fd6(lambda v: R.batchnorm_forward(x, v, beta, dict(bn))[0], gamma, dout, 1e-2)
    num_db = fd6(lambda v: R.batchnorm_forward(x, gamma, v, dict(bn))[0], beta, dout, 1e-2)
    for name, a, n in (("dx", dx, num_dx), ("dgamma", dgamma, num_dg), ("dbeta", dbeta, num_db)):
        err = rel_error(a, n)
        assert err < 1e-8, f"{backward.__name__} {name}: relative error {err:.2e} at N={N}, D={D}"


@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (1, 2, 3, 4), (3, 1, 2, 1)])
def test_reference_spatial_backward_agrees_with_finite_differences(shape):
    r = np.random.default_rng(sum(shape))
    C = shape[1]
    x = 10.0 + r.uniform(1, 3, (1, C, 1, 1)) * r.normal(size=shape)
    gamma, beta, dout = r.uniform(0.5, 2, C), r.normal(size=C), r.normal(size=shape)
    _, cache = R.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = R.spatial_batchnorm_backward(dout, cache)
    h = 1e-2 * x.std(axis=(0, 2, 3), keepdims=True)
    num = fd6(lambda v: R.spatial_batchnorm_forward(v, gamma, beta, {"mode": "train"})[0], x, dout, h)
    num_dg = fd6(lambda v: R.spatial_batchnorm_forward(x, v, beta, {"mode": "train"})[0], gamma, dout, 1e-2)
    assert rel_error(dx, num) < 1e-8, f"spatial dx: relative error {rel_error(dx, num):.2e}"
    assert rel_error(dgamma, num_dg) < 1e-8
    assert dgamma.shape == dbeta.shape == (C,), "spatial dgamma/dbeta must have shape (C,)"


# --------------------------------------------------------------------------- torch (independent)
def _torch_train_grads(x, gamma, beta, dout, eps=1e-5):
    """(dx, dgamma, dbeta) of ``sum(BatchNorm1d(x) * dout)`` by PyTorch's autograd, train mode."""
    bn = torch.nn.BatchNorm1d(x.shape[1], eps=eps, momentum=0.1, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    xt = torch.tensor(x, requires_grad=True)
    bn.train()
    bn(xt).backward(torch.from_numpy(dout))
    return xt.grad.numpy(), bn.weight.grad.numpy(), bn.bias.grad.numpy()


def _assert_matches_torch(grads, x, gamma, beta, dout, what):
    dx, dgamma, dbeta = grads
    t_dx, t_dgamma, t_dbeta = _torch_train_grads(x, gamma, beta, dout)
    # float64 throughout; the two compute the same sums in a different order (~1e-15 relative).
    np.testing.assert_allclose(dx, t_dx, rtol=1e-9, atol=1e-12, err_msg=f"{what} dx vs torch")
    np.testing.assert_allclose(dgamma, t_dgamma, rtol=1e-10, err_msg=f"{what} dgamma vs torch")
    np.testing.assert_allclose(dbeta, t_dbeta, rtol=1e-10, err_msg=f"{what} dbeta vs torch")


@pytest.mark.parametrize("N,D", [(2, 3), (16, 5), (64, 1)])
def test_reference_backward_matches_torch_batchnorm1d(N, D):
    x, gamma, beta, dout, _ = _case(N + D, N, D, offset=4.0)
    _, cache = R.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    _assert_matches_torch(R.batchnorm_backward(dout, cache), x, gamma, beta, dout, "reference")


@pytest.mark.parametrize("fixed", [R.fixed_backward_inv_n, R.fixed_backward_dvar])
def test_bug_hunt_fixes_match_torch_autograd(fixed):
    """The two bug-hunt fixes against PyTorch's autograd (not against the reference, which is
    the same function), on a non-uniform dout with gamma of both signs."""
    x, gamma, beta, dout, bn = _case(5, 9, 4, offset=3.0)
    _, cache = R.batchnorm_forward(x, gamma, beta, bn)
    _assert_matches_torch(fixed(dout, cache), x, gamma, beta, dout, fixed.__name__)


def test_test_mode_backward_matches_torch_eval():
    x, gamma, beta, dout, _ = _case(11, 6, 3, offset=2.0)
    rm, rv = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.7, 3.0])
    bn = torch.nn.BatchNorm1d(3, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
        bn.running_mean.copy_(torch.from_numpy(rm))
        bn.running_var.copy_(torch.from_numpy(rv))
    bn.eval()
    xt = torch.tensor(x, requires_grad=True)
    bn(xt).backward(torch.from_numpy(dout))
    _, cache = R.batchnorm_forward(x, gamma, beta, {"mode": "test", "running_mean": rm, "running_var": rv})
    dx, dgamma, dbeta = R.batchnorm_backward(dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, err_msg="test-mode dx vs torch eval")
    np.testing.assert_allclose(dgamma, bn.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dbeta, bn.bias.grad.numpy(), rtol=1e-12)


def test_spatial_backward_matches_torch_batchnorm2d():
    r = np.random.default_rng(7)
    x, dout = r.normal(3, 2, (4, 3, 5, 2)), r.normal(size=(4, 3, 5, 2))
    gamma, beta = r.uniform(0.5, 2, 3), r.normal(size=3)
    bn = torch.nn.BatchNorm2d(3, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    xt = torch.tensor(x, requires_grad=True)
    bn(xt).backward(torch.from_numpy(dout))
    _, cache = R.spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = R.spatial_batchnorm_backward(dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg="spatial dx vs torch")
    np.testing.assert_allclose(dgamma, bn.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(dbeta, bn.bias.grad.numpy(), rtol=1e-10)


# --------------------------------------------------------------------------- invariants, dtype
@pytest.mark.parametrize("backward", [R.batchnorm_backward, R.batchnorm_backward_alt])
def test_invariants_of_dx(backward):
    x, gamma, beta, dout, _ = _case(3, 12, 4, offset=50.0)
    bn = {"mode": "train", "eps": 0.0}  # exact invariants need eps = 0
    out, cache = R.batchnorm_forward(x, gamma, beta, dict(bn))
    dx, _, _ = backward(dout, cache)
    scale = np.abs(dx).max()
    assert np.allclose(dx.sum(axis=0), 0, atol=1e-12 * scale * 12), "columns of dx must sum to 0"
    assert np.allclose((dx * cache["x_hat"]).sum(axis=0), 0, atol=1e-12 * scale * 12), (
        "dx must be orthogonal to x_hat column by column")
    out_c, cache_c = R.batchnorm_forward(3.0 * x, gamma, beta, dict(bn))
    dx_c, _, _ = backward(dout, cache_c)
    assert np.allclose(out_c, out, atol=1e-12), "scaling x must leave the output unchanged"
    assert rel_error(3.0 * dx_c, dx) < 1e-10, "scaling x by c must scale dx by 1/c"


@pytest.mark.parametrize("backward", [R.batchnorm_backward, R.batchnorm_backward_alt])
def test_float32_in_float32_out(backward):
    x, gamma, beta, dout, bn = (a.astype(np.float32) if isinstance(a, np.ndarray) else a
                                for a in _case(4, 30, 5))
    _, cache = R.batchnorm_forward(x, gamma, beta, bn)
    for name, g in zip(("dx", "dgamma", "dbeta"), backward(dout, cache), strict=True):
        assert g.dtype == np.float32, f"{name} is {g.dtype}, expected float32"
    ref64 = R.batchnorm_backward(dout.astype(np.float64), _as64(cache))[0]
    assert np.allclose(backward(dout, cache)[0], ref64, rtol=1e-3, atol=1e-4)


def test_backward_leaves_dout_and_cache_unchanged():
    x, gamma, beta, dout, bn = _case(8, 6, 3)
    _, cache = R.batchnorm_forward(x, gamma, beta, bn)
    before_cache, before_dout = copy.deepcopy(cache), dout.copy()
    for fn in (R.batchnorm_backward, R.batchnorm_backward_alt):
        fn(dout, cache)
    assert np.array_equal(dout, before_dout), "dout modified"
    for k, v in before_cache.items():
        assert np.array_equal(cache[k], v), f"cache[{k!r}] modified"


# --------------------------------------------------------------------------- validation
def _valid_cache():
    x, gamma, beta, dout, bn = _case(9, 4, 3)
    return dout, R.batchnorm_forward(x, gamma, beta, bn)[1]


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda d, c: (d[:, :2], c), ValueError, "shape of x"),
        (lambda d, c: (d.ravel(), c), ValueError, "2-D"),
        (lambda d, c: (d, [1, 2]), TypeError, "cache must be"),
        (lambda d, c: (d, {k: v for k, v in c.items() if k != "x_hat"}), ValueError, "x_hat"),
        (lambda d, c: (d.astype(str), c), TypeError, "real numbers"),
    ],
)
def test_backward_rejects_bad_input(make, exc, match):
    dout, cache = _valid_cache()
    for fn in (R.batchnorm_backward, R.batchnorm_backward_alt):
        with pytest.raises(exc, match=match):
            fn(*make(dout, cache))


def test_spatial_backward_rejects_wrong_shape():
    r = np.random.default_rng(0)
    _, cache = R.spatial_batchnorm_forward(r.normal(size=(2, 3, 2, 2)), np.ones(3), np.zeros(3), {"mode": "train"})
    with pytest.raises(ValueError, match="shape"):
        R.spatial_batchnorm_backward(np.ones((2, 3, 2, 3)), cache)
    with pytest.raises(ValueError, match="4-D"):
        R.spatial_batchnorm_backward(np.ones((2, 3)), cache)


def test_numerical_gradient_validates_and_restores_x():
    x = np.random.default_rng(1).normal(size=(3, 2))
    before = x.copy()
    grad = R.numerical_gradient(lambda v: v**3, x, np.full((3, 2), 2.0))
    assert np.array_equal(x, before), "numerical_gradient must restore x exactly"
    assert rel_error(grad, 6 * before**2) < 1e-8
    with pytest.raises(ValueError, match="positive"):
        R.numerical_gradient(np.sin, x, x, h=0.0)
    with pytest.raises(TypeError, match="floating"):
        R.numerical_gradient(np.sin, np.arange(3), np.ones(3))
    with pytest.raises(TypeError, match="callable"):
        R.numerical_gradient(None, x, x)
    with pytest.raises(ValueError, match="dout has shape"):
        R.numerical_gradient(np.sin, x, np.ones(4))


# --------------------------------------------------------------------------- the notebook's copy
PROVIDED = {"_bn_settings", "batchnorm_forward", "_nchw_to_rows", "_rows_to_nchw",
            "spatial_batchnorm_forward"}


def _cells(nb_path=NOTEBOOK):
    nb = nbformat.read(nb_path, as_version=4)
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}


def test_provided_forward_is_identical_to_the_reference():
    """The read-only forward in notebook 03 is a copy that cannot drift from the reference."""
    src = _cells()["provided_forward"].source
    tree = ast.parse(src)
    defs = {n.name: ast.get_source_segment(src, n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert set(defs) == PROVIDED, f"the provided cell defines {sorted(defs)}, expected {sorted(PROVIDED)}"
    for name, text in defs.items():
        ref_src = inspect.getsource(getattr(R_bn, name)).rstrip()
        assert text == ref_src, f"{name} in the notebook differs from autograder.reference.batchnorm.{name}"


def test_hidden_cell_points_equal_check_points():
    for gid, cell in _cells().items():
        if gid and gid.startswith("test_"):
            name = gid.removeprefix("test_")
            check = getattr(CB, f"check_{name}")
            assert cell.metadata["nbgrader"]["points"] == check.points, gid
            assert f"check_{name}({name})" in cell.source.splitlines()[-2], gid


# --------------------------------------------------------------------------- checks vs samples


def _namespace(answers: dict) -> dict:
    """Run the notebook's read-only cells and the student's answer cells (release stubs if absent)."""
    cells = _cells()
    ns: dict = {}
    for gid in ("setup", "provided_forward", "bug_hunt_code"):
        exec(cells[gid].source, ns)
    for gid, cell in cells.items():
        if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        exec(answers.get(gid, release_stub(cell.source)), ns)
    return ns


CHECKED = ["numerical_gradient", "scale_shift_backward", "normalize_backward",
           "batch_stats_backward", "batchnorm_backward", "dx_through_var", "dx_through_mean",
           "batchnorm_backward_alt", "spatial_batchnorm_backward", "fixed_backward_inv_n",
           "fixed_backward_dvar"]


def _grade(student: str, capsys):
    ns = _namespace(samples.STUDENTS[student]["answers"])
    scores, text = {}, ""
    for name in CHECKED:
        scores[name] = getattr(CB, f"check_{name}")(ns[name])
        captured = capsys.readouterr()
        assert captured.err == "", f"{student}/{name} wrote to stderr: {captured.err!r}"
        text += captured.out
    return scores, text


def test_source_solutions_get_full_marks(capsys):
    ns = _namespace({})  # release stubs...
    cells = _cells()
    for name in CHECKED:  # ...replaced by the source's own solutions
        exec(cells[name].source, ns)
        assert getattr(CB, f"check_{name}")(ns[name]) == getattr(CB, f"check_{name}").points, name
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("student", sorted(samples.STUDENTS))
def test_checks_on_sample_students(student, capsys):
    expect = samples.STUDENTS[student]["expect"]
    scores, text = _grade(student, capsys)
    total = sum(scores.values())
    maximum = sum(getattr(CB, f"check_{n}").points for n in CHECKED)
    problems = unmet_expectations(expect, total, maximum, diagnoses_in(text))
    assert not problems, f"{student}: {problems}\n{text}"
    if expect["zero"]:
        assert "not implemented yet" in text


def test_ben_loses_points_only_where_his_normalize_backward_is_used(capsys):
    """ben's one bug (M18 in normalize_backward) costs points there and in the two functions
    that call it, batchnorm_backward and the spatial pass; nowhere else."""
    scores, text = _grade("ben", capsys)
    used = ("normalize_backward", "batchnorm_backward", "spatial_batchnorm_backward")
    assert all(scores[n] < getattr(CB, f"check_{n}").points for n in used), scores
    others = [n for n in CHECKED if n not in used]
    assert all(scores[n] == getattr(CB, f"check_{n}").points for n in others), scores


# --------------------------------------------------------------------------- other mistakes
def _run(check, src, capsys):
    ns = _namespace({})
    exec(src, ns)
    score = check(ns[check.function_name])
    out = capsys.readouterr()
    assert out.err == ""
    return score, out.out


def test_dropped_mean_path_is_diagnosed_m17(capsys):
    src = '''
def batchnorm_backward(dout, cache):
    xh, g, r = cache["x_hat"], cache["gamma"], cache["inv_std"]
    db, dg = dout.sum(0), (dout * xh).sum(0)
    return g * r * (dout - xh * dg / len(dout)), dg, db
'''
    score, out = _run(CB.check_batchnorm_backward, src, capsys)
    assert score < CB.check_batchnorm_backward.points and f"{DIAGNOSIS} M17:" in out, out


def test_per_activation_spatial_sums_are_diagnosed_m13(capsys):
    src = '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    rows = dout.transpose(0, 2, 3, 1).reshape(-1, C)
    dx, _, _ = batchnorm_backward(rows, cache)
    x_hat = cache["x_hat"].reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return dx.reshape(N, H, W, C).transpose(0, 3, 1, 2), (dout * x_hat).sum(0), dout.sum(0)
'''
    ns_src = inspect.getsource(R.batchnorm_backward_alt).replace("batchnorm_backward_alt", "batchnorm_backward")
    ns_src = ns_src.replace("    dout = _backward_inputs(dout, cache)\n", "").replace(
        '    if cache["mode"] == "test":\n        return batchnorm_backward(dout, cache)\n', "")
    score, out = _run(CB.check_spatial_batchnorm_backward, ns_src + src, capsys)
    assert score < CB.check_spatial_batchnorm_backward.points and f"{DIAGNOSIS} M13:" in out, out


def test_x_not_restored_is_diagnosed_m19(capsys):
    src = '''
def numerical_gradient(f, x, dout, h=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        x[i] += h
        plus = f(x).copy()
        x[i] -= 2 * h
        minus = f(x).copy()
        x[i] += h * 1.0000001
        grad[i] = np.sum((plus - minus) * dout) / (2 * h)
    return grad
'''
    score, out = _run(CB.check_numerical_gradient, src, capsys)
    assert score < CB.check_numerical_gradient.points and "not restored" in out and f"{DIAGNOSIS} M19:" in out, out


def test_modified_cache_is_reported(capsys):
    src = '''
def batchnorm_backward_alt(dout, cache):
    xh = cache["x_hat"]
    xh *= 1.0
    cache["gamma"] = cache["gamma"] * 2
    n = len(dout)
    db, dg = dout.sum(0), (dout * xh).sum(0)
    return cache["gamma"] / 2 * cache["inv_std"] / n * (n * dout - db - xh * dg), dg, db
'''
    score, out = _run(CB.check_batchnorm_backward_alt, src, capsys)
    assert score < CB.check_batchnorm_backward_alt.points and "cache['gamma'] was modified" in out and "Diagnosis M10" in out, out


# --------------------------------------------------------------------------- benchmark
def test_benchmark_staged_version_is_correct():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench_batchnorm.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    x, gamma, beta, dout, _ = _case(12, 16, 5, offset=7.0)
    staged = bench.run_staged(x, gamma, beta, dout)
    ref = bench.run_reference(x, gamma, beta, dout)
    for a, b in zip(staged, ref, strict=True):
        assert rel_error(a, b) < 1e-9, "the benchmark's staged baseline must compute the same gradients"


def test_gradient_check_figure_shows_truncation_then_rounding():
    """Notebook 03's log-log figure of the gradient-check error against h: the centered
    difference is best between h = 1e-7 and 1e-3, the one-sided one at a smaller h and with a
    larger error; to the right of each minimum the error follows slope 2 (centered) or 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course.gradcheck import gradient_error
    from course.plots import finish

    ns = {"np": np, "rng": np.random.default_rng(0), "gradient_error": gradient_error,
          "plt": plt, "finish": finish, "GRADING": False}
    exec(_cells()["gradcheck_figure"].source, ns)
    plt.close("all")
    hs, centered, one_sided = ns["hs"], np.array(ns["errors"]["centered"]), np.array(ns["errors"]["one-sided"])
    best_c, best_o = hs[np.argmin(centered)], hs[np.argmin(one_sided)]
    assert 1e-7 < best_c < 1e-3, f"centered minimum at h = {best_c:.1e}"
    assert best_o < best_c and centered.min() < one_sided.min() / 10
    big = hs >= 1e-3  # truncation regime: log-log slopes 2 and 1
    slope_c = np.polyfit(np.log10(hs[big]), np.log10(centered[big]), 1)[0]
    slope_o = np.polyfit(np.log10(hs[big]), np.log10(one_sided[big]), 1)[0]
    assert slope_c == pytest.approx(2.0, abs=0.1) and slope_o == pytest.approx(1.0, abs=0.1)
    small = hs <= 1e-10  # rounding regime: slope -1
    slope_r = np.polyfit(np.log10(hs[small]), np.log10(centered[small]), 1)[0]
    assert slope_r == pytest.approx(-1.0, abs=0.25)


#: What the student derives, as it would read if printed: the local gradients of section 2 and
#: the closed form of section 3, in the spellings of the notebook's maths and of numpy.
GIVEAWAYS = [
    r"(\sigma_B^2+\epsilon)^{-3/2}", r"(\sigma^2+\epsilon)^{-3/2}", r"-\tfrac12 r^3", r"r^3",
    r"N\,\mathrm{dout}", "N * dout -", "inv_std**3", "** -1.5", "**-1.5", "dstd", "dinv_std",
    "sum(dout * x_hat)", "dout.sum(axis=0)", "(dout * x_hat).sum", "dmean / N", "dvar / N",
    "dvar * 2", "2.0 * dvar", "2 * dvar", r"\frac{r}{N}", r"\frac rN",
]


def _student_visible_text(path) -> str:
    """What a student reads before section 5: every cell of the notebook as released, up to the
    bug hunt (whose buggy code shows the formulas, with one mistake each, after the exercises)."""
    cells = nbformat.read(path, as_version=4).cells
    end = next(i for i, c in enumerate(cells)
               if c.metadata.get("nbgrader", {}).get("grade_id") == "bug_hunt_code")
    return "\n".join(c.source for c in cells[:end])


#: The closed form of section 3c, in the spellings it would take in maths and in numpy.
CLOSED_FORM = [r"N\,\mathrm{dout}", r"N\mathrm{dout}", "N * dout", "n * dout", "N * dx_hat",
               r"N\delta", r"N\,\delta"]


def test_nothing_the_student_derives_is_printed_before_the_bug_hunt():
    """Issue 23, item 7: the notebook gives the forward graph and the tools; no local gradient
    and no closed form appears in any cell a student reads before deriving it (docstrings,
    tables, hints, visible tests), only in solutions and mark schemes (removed from release/).
    The closed form appears nowhere in the release, not even in the bug hunt's code."""
    release = ROOT / "release" / "03_batchnorm_backward" / "batchnorm_backward.ipynb"
    text = _student_visible_text(release)
    shown = [g for g in GIVEAWAYS if g in text]
    assert not shown, f"the release shows what the student derives: {shown}"
    everything = "\n".join(c.source for c in nbformat.read(release, as_version=4).cells)
    shown = [g for g in CLOSED_FORM if g in everything]
    assert not shown, f"the release shows the closed form: {shown}"
    source = nbformat.read(NOTEBOOK, as_version=4)
    schemes = [c.source for c in source.cells if "=== BEGIN MARK SCHEME ===" in c.source]
    derivation = next(s for s in schemes if "3c." in s)
    assert r"N\,\mathrm{dout}" in derivation, "the closed form belongs in section 3's mark scheme"


def test_every_derivation_step_is_a_graded_function_with_a_visible_gradient_check():
    """Each stage and path is graded by a hidden check and checked, visibly, against centered
    differences (check_gradient_against_reference) as well as a hand-worked example."""
    cells = _cells()
    for name in ("scale_shift_backward", "normalize_backward", "batch_stats_backward",
                 "dx_through_var", "dx_through_mean"):
        assert f"test_{name}" in cells, name
        visible = cells[f"{name}_visible"].source
        assert "check_gradient_against_reference(" in visible and "check_close(" in visible, name
