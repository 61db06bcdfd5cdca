"""Fixtures for notebook 03 (BatchNorm backward): numerical_gradient, the three stages
(scale_shift_backward, normalize_backward, batch_stats_backward), batchnorm_backward, the two path
terms (dx_through_var, dx_through_mean), batchnorm_backward_alt, spatial_batchnorm_backward and
the two bug-hunt fixes.

The cache is the one of the notebook's read-only forward pass (keys x, mean, xmu, var, std,
inv_std, x_hat, gamma, beta, eps, mode). Sample students of
``autograder/samples/batchnorm_backward.py`` are reused where they hold exactly one mistake or a
correct variant; a fixture that calls the stage functions gets the notebook's correct ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

from autograder.samples import batchnorm_backward as samples
from diagnoses import Fixture, alternative, mistake, uncatalogued

NOTEBOOK = Path(__file__).resolve().parents[2] / "source" / "03_batchnorm_backward" / "batchnorm_backward.ipynb"

_ANSWERS = {sid: s["answers"] for sid, s in samples.STUDENTS.items()}


def _renamed(source: str, old: str, new: str) -> str:
    """The same cell with its function under another exercise's name."""
    return source.replace(f"def {old}(", f"def {new}(")


def _bug_hunt_function(name: str) -> str:
    """The source of one function of the notebook's read-only bug-hunt cell."""
    cell = next(c for c in nbformat.read(NOTEBOOK, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "bug_hunt_code")
    tree = ast.parse(cell.source)
    return next(ast.get_source_segment(cell.source, node) for node in tree.body
                if isinstance(node, ast.FunctionDef) and node.name == name)


#: Bug 1 of the bug hunt as the notebook gives it: the submission of a student who left it in.
_BUGGY_1 = _bug_hunt_function("buggy_backward_1")


MISTAKES: list[Fixture] = [
    # ------------------------------------------------------------------ numerical_gradient
    mistake("numerical_gradient", "M19", "one-sided difference", '''
def numerical_gradient(f, x, dout, h=1e-5):
    grad = np.zeros_like(x)
    base = f(x).copy()
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        grad[i] = np.sum((f(x) - base) * dout) / h
        x[i] = old
    return grad
'''),
    mistake("numerical_gradient", "M19", "x not restored exactly", '''
def numerical_gradient(f, x, dout, h=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        x[i] += h
        plus = f(x).copy()
        x[i] -= 2 * h
        minus = f(x).copy()
        x[i] += h
        grad[i] = np.sum((plus - minus) * dout) / (2 * h)
    return grad
'''),
    mistake("numerical_gradient", "M20", "dout left out", '''
def numerical_gradient(f, x, dout, h=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f(x).copy()
        x[i] = old - h
        minus = f(x).copy()
        x[i] = old
        grad[i] = np.sum(plus - minus) / (2 * h)
    return grad
'''),
    mistake("numerical_gradient", "M10", "1/(2h) folded into dout in place", '''
def numerical_gradient(f, x, dout, h=1e-5):
    dout /= 2 * h
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f(x).copy()
        x[i] = old - h
        minus = f(x).copy()
        x[i] = old
        grad[i] = np.sum((plus - minus) * dout)
    return grad
'''),
    # ------------------------------------------------------------------ scale_shift_backward
    mistake("scale_shift_backward", "M10", "dout scaled in place", '''
def scale_shift_backward(dout, x_hat, gamma):
    dgamma = (dout * x_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dout *= gamma
    return dout, dgamma, dbeta
'''),
    mistake("scale_shift_backward", "M15", "sample cyd: dgamma per sample (published blog code)",
            _ANSWERS["cyd"]["scale_shift_backward"]),
    mistake("scale_shift_backward", "M16", "means over the batch", '''
def scale_shift_backward(dout, x_hat, gamma):
    return dout * gamma, (dout * x_hat).mean(axis=0), dout.mean(axis=0)
'''),
    # ------------------------------------------------------------------ normalize_backward
    mistake("normalize_backward", "M3", "eps outside the square root", '''
def normalize_backward(dx_hat, x, mean, var, eps):
    inv_std = 1.0 / (np.sqrt(var) + eps)
    xmu = x - mean
    dvar = -0.5 * inv_std**3 * (dx_hat * xmu).sum(axis=0)
    return dx_hat * inv_std, -inv_std * dx_hat.sum(axis=0), dvar
'''),
    mistake("normalize_backward", "M10", "x centred in place", '''
def normalize_backward(dx_hat, x, mean, var, eps):
    inv_std = 1.0 / np.sqrt(var + eps)
    x -= mean
    dvar = -0.5 * inv_std**3 * (dx_hat * x).sum(axis=0)
    return dx_hat * inv_std, -inv_std * dx_hat.sum(axis=0), dvar
'''),
    mistake("normalize_backward", "M15", "dmean and dvar per sample", '''
def normalize_backward(dx_hat, x, mean, var, eps):
    inv_std = 1.0 / np.sqrt(var + eps)
    return dx_hat * inv_std, -inv_std * dx_hat, -0.5 * inv_std**3 * dx_hat * (x - mean)
'''),
    mistake("normalize_backward", "M16", "means over the batch", '''
def normalize_backward(dx_hat, x, mean, var, eps):
    inv_std = 1.0 / np.sqrt(var + eps)
    dmean = -inv_std * dx_hat.mean(axis=0)
    dvar = -0.5 * inv_std**3 * (dx_hat * (x - mean)).mean(axis=0)
    return dx_hat * inv_std, dmean, dvar
'''),
    mistake("normalize_backward", "M18", "sample ben: x_hat in dvar", _ANSWERS["ben"]["normalize_backward"]),
    # ------------------------------------------------------------------ batch_stats_backward
    mistake("batch_stats_backward", "M10", "x centred in place", '''
def batch_stats_backward(dmean, dvar, x):
    N = x.shape[0]
    x -= x.mean(axis=0)
    return dmean / N + 2.0 * dvar * x / N
'''),
    mistake("batch_stats_backward", "M16", "sample cyd: 1/D", _ANSWERS["cyd"]["batch_stats_backward"]),
    mistake("batch_stats_backward", "M17", "path through the mean dropped", '''
def batch_stats_backward(dmean, dvar, x):
    return 2.0 * dvar * (x - x.mean(axis=0)) / len(x)
'''),
    # ------------------------------------------------------------------ batchnorm_backward
    mistake("batchnorm_backward", "M10", "dx_hat aliases dout", '''
def batchnorm_backward(dout, cache):
    xmu, inv_std, x_hat, gamma = cache["xmu"], cache["inv_std"], cache["x_hat"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout
    dx_hat *= gamma
    dvar = (dx_hat * xmu).sum(axis=0) * -0.5 * inv_std**3
    dxmu = dx_hat * inv_std + 2.0 * xmu * dvar / N
    return dxmu - dxmu.sum(axis=0) / N, dgamma, dbeta
'''),
    mistake("batchnorm_backward", "M11", "dgamma from x instead of x_hat", '''
def batchnorm_backward(dout, cache):
    x, xmu, inv_std, gamma = cache["x"], cache["xmu"], cache["inv_std"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x).sum(axis=0)
    dx_hat = dout * gamma
    dvar = (dx_hat * xmu).sum(axis=0) * -0.5 * inv_std**3
    dxmu = dx_hat * inv_std + 2.0 * xmu * dvar / N
    return dxmu - dxmu.sum(axis=0) / N, dgamma, dbeta
'''),
    mistake("batchnorm_backward", "M15", "dgamma and dbeta per sample", '''
def batchnorm_backward(dout, cache):
    xmu, inv_std, x_hat, gamma = cache["xmu"], cache["inv_std"], cache["x_hat"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout
    dgamma = dout * x_hat
    dx_hat = dout * gamma
    dvar = (dx_hat * xmu).sum(axis=0) * -0.5 * inv_std**3
    dxmu = dx_hat * inv_std + 2.0 * xmu * dvar / N
    return dxmu - dxmu.sum(axis=0) / N, dgamma, dbeta
'''),
    mistake("batchnorm_backward", "M16", "closed form with 1/D", '''
def batchnorm_backward(dout, cache):
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N, D = dout.shape
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std / D * (N * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta
'''),
    mistake("batchnorm_backward", "M16", "staged with the number of features", '''
def batchnorm_backward(dout, cache):
    xmu, inv_std, x_hat, gamma = cache["xmu"], cache["inv_std"], cache["x_hat"], cache["gamma"]
    n = np.prod(cache["mean"].shape)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dvar = (dx_hat * xmu).sum(axis=0) * -0.5 * inv_std**3
    dxmu = dx_hat * inv_std + 2.0 * xmu * dvar / n
    return dxmu - dxmu.sum(axis=0) / n, dgamma, dbeta
'''),
    mistake("batchnorm_backward", "M17", "path through the mean dropped", '''
def batchnorm_backward(dout, cache):
    xmu, inv_std, x_hat, gamma = cache["xmu"], cache["inv_std"], cache["x_hat"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dvar = (dx_hat * xmu).sum(axis=0) * -0.5 * inv_std**3
    dx = dx_hat * inv_std + 2.0 * xmu * dvar / N
    return dx, dgamma, dbeta
'''),
    mistake("batchnorm_backward", "M17", "stages chained, the direct path dropped", '''
def batchnorm_backward(dout, cache):
    x = cache["x"]
    dx_hat, dgamma, dbeta = scale_shift_backward(dout, cache["x_hat"], cache["gamma"])
    _, dmean, dvar = normalize_backward(dx_hat, x, cache["mean"], cache["var"], cache["eps"])
    return batch_stats_backward(dmean, dvar, x), dgamma, dbeta
'''),
    mistake("batchnorm_backward", "M18", "staged, x_hat in dvar", '''
def batchnorm_backward(dout, cache):
    xmu, inv_std, x_hat, gamma = cache["xmu"], cache["inv_std"], cache["x_hat"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dvar = (dx_hat * x_hat).sum(axis=0) * -0.5 * inv_std**3
    dxmu = dx_hat * inv_std + 2.0 * xmu * dvar / N
    dmean = -dxmu.sum(axis=0)
    return dxmu + dmean / N, dgamma, dbeta
'''),
    # ------------------------------------------------------------------ dx_through_var
    mistake("dx_through_var", "M10", "x_hat scaled in place", '''
def dx_through_var(dx_hat, x_hat, inv_std):
    s = (dx_hat * x_hat).sum(axis=0)
    x_hat *= -inv_std / dx_hat.shape[0]
    return x_hat * s
'''),
    mistake("dx_through_var", "M15", "the sum left out", '''
def dx_through_var(dx_hat, x_hat, inv_std):
    return -(inv_std / dx_hat.shape[0]) * x_hat * (dx_hat * x_hat)
'''),
    mistake("dx_through_var", "M16", "1/D", '''
def dx_through_var(dx_hat, x_hat, inv_std):
    D = dx_hat.shape[1]
    return -(inv_std / D) * x_hat * (dx_hat * x_hat).sum(axis=0)
'''),
    mistake("dx_through_var", "M18", "x_hat kept where x - mean belongs, twice", '''
def dx_through_var(dx_hat, x_hat, inv_std):
    N = dx_hat.shape[0]
    dvar = -0.5 * inv_std**3 * (dx_hat * x_hat).sum(axis=0)
    return 2.0 * dvar * x_hat / N
'''),
    # ------------------------------------------------------------------ dx_through_mean
    mistake("dx_through_mean", "M10", "dx_hat scaled in place", '''
def dx_through_mean(dx_hat, inv_std):
    N = dx_hat.shape[0]
    dx_hat *= -inv_std / N
    return np.tile(dx_hat.sum(axis=0), (N, 1))
'''),
    mistake("dx_through_mean", "M15", "the sum left out", '''
def dx_through_mean(dx_hat, inv_std):
    return -(inv_std / dx_hat.shape[0]) * dx_hat
'''),
    mistake("dx_through_mean", "M16", "1/N left out", '''
def dx_through_mean(dx_hat, inv_std):
    return np.tile(-inv_std * dx_hat.sum(axis=0), (dx_hat.shape[0], 1))
'''),
    # ------------------------------------------------------------------ batchnorm_backward_alt
    mistake("batchnorm_backward_alt", "M10", "N * dout computed in place", '''
def batchnorm_backward_alt(dout, cache):
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = dout
    dx *= N
    dx -= dbeta + x_hat * dgamma
    return gamma * inv_std / N * dx, dgamma, dbeta
'''),
    mistake("batchnorm_backward_alt", "M11", "dgamma from x instead of x_hat", '''
def batchnorm_backward_alt(dout, cache):
    x, x_hat, gamma, inv_std = cache["x"], cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x).sum(axis=0)
    dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta
'''),
    mistake("batchnorm_backward_alt", "M15", "dgamma not summed", '''
def batchnorm_backward_alt(dout, cache):
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = dout * x_hat
    dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta
'''),
    mistake("batchnorm_backward_alt", "M16", "1/D", '''
def batchnorm_backward_alt(dout, cache):
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N, D = dout.shape
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / D) * (N * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta
'''),
    mistake("batchnorm_backward_alt", "M17", "sum(dout) term left out", '''
def batchnorm_backward_alt(dout, cache):
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / N) * (N * dout - x_hat * dgamma)
    return dx, dgamma, dbeta
'''),
    mistake("batchnorm_backward_alt", "M18", "x_hat where x - mu belongs, in (x - mu) form", '''
def batchnorm_backward_alt(dout, cache):
    xmu, x_hat, gamma, inv_std = cache["xmu"], cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    var_term = xmu * inv_std**2 * (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / N) * (N * dout - dbeta - var_term)
    return dx, dgamma, dbeta
'''),
    # ------------------------------------------------------------------ spatial_batchnorm_backward
    mistake("spatial_batchnorm_backward", "M10", "x_hat in the cache reshaped in place", '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    cache["x_hat"] = cache["x_hat"].reshape(N, H, W, C).transpose(0, 3, 1, 2)
    x_hat = cache["x_hat"]
    g = cache["gamma"].reshape(1, C, 1, 1)
    r = cache["inv_std"].reshape(1, C, 1, 1)
    M = N * H * W
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    dx = g * r / M * (M * dout - dbeta.reshape(1, C, 1, 1) - x_hat * dgamma.reshape(1, C, 1, 1))
    return dx, dgamma, dbeta
'''),
    mistake("spatial_batchnorm_backward", "M11", "dgamma from x per channel", '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    rows = dout.transpose(0, 2, 3, 1).reshape(-1, C)
    dx_rows, _, dbeta = batchnorm_backward(rows, cache)
    dgamma = (rows * cache["x"]).sum(axis=0)
    return dx_rows.reshape(N, H, W, C).transpose(0, 3, 1, 2), dgamma, dbeta
'''),
    mistake("spatial_batchnorm_backward", "M13", "sums over N only", '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    rows = dout.transpose(0, 2, 3, 1).reshape(-1, C)
    dx, _, _ = batchnorm_backward(rows, cache)
    x_hat = cache["x_hat"].reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return dx.reshape(N, H, W, C).transpose(0, 3, 1, 2), (dout * x_hat).sum(0), dout.sum(0)
'''),
    mistake("spatial_batchnorm_backward", "M14", "sample cyd: reshape(-1, C)",
            _ANSWERS["cyd"]["spatial_batchnorm_backward"]),
    mistake("spatial_batchnorm_backward", "M15", "dgamma and dbeta per pixel", '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    x_hat = cache["x_hat"].reshape(N, H, W, C).transpose(0, 3, 1, 2)
    g = cache["gamma"].reshape(1, C, 1, 1)
    r = cache["inv_std"].reshape(1, C, 1, 1)
    M = N * H * W
    dbeta = dout
    dgamma = dout * x_hat
    db = dout.sum(axis=(0, 2, 3)).reshape(1, C, 1, 1)
    dg = (dout * x_hat).sum(axis=(0, 2, 3)).reshape(1, C, 1, 1)
    dx = g * r / M * (M * dout - db - x_hat * dg)
    return dx, dgamma, dbeta
'''),
    mistake("spatial_batchnorm_backward", "M16", "1/N with N the number of images", '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    x_hat = cache["x_hat"].reshape(N, H, W, C).transpose(0, 3, 1, 2)
    g = cache["gamma"].reshape(1, C, 1, 1)
    r = cache["inv_std"].reshape(1, C, 1, 1)
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    db, dg = dbeta.reshape(1, C, 1, 1), dgamma.reshape(1, C, 1, 1)
    dx = g * r / N * (N * dout - db - x_hat * dg)
    return dx, dgamma, dbeta
'''),
    mistake("spatial_batchnorm_backward", "M17", "path through the variance dropped", '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    x_hat = cache["x_hat"].reshape(N, H, W, C).transpose(0, 3, 1, 2)
    g = cache["gamma"].reshape(1, C, 1, 1)
    r = cache["inv_std"].reshape(1, C, 1, 1)
    M = N * H * W
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    dx = g * r / M * (M * dout - dbeta.reshape(1, C, 1, 1))
    return dx, dgamma, dbeta
'''),
    mistake("spatial_batchnorm_backward", "M18", "staged per channel, x_hat in dvar", '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    def nchw(rows):
        return rows.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    xmu, x_hat = nchw(cache["xmu"]), nchw(cache["x_hat"])
    g = cache["gamma"].reshape(1, C, 1, 1)
    r = cache["inv_std"].reshape(1, C, 1, 1)
    M = N * H * W
    axes = (0, 2, 3)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    dx_hat = dout * g
    dvar = (dx_hat * x_hat).sum(axis=axes, keepdims=True) * -0.5 * r**3
    dxmu = dx_hat * r + 2.0 * xmu * dvar / M
    return dxmu - dxmu.sum(axis=axes, keepdims=True) / M, dgamma, dbeta
'''),
    # ------------------------------------------------------------------ bug hunt
    mistake("fixed_backward_inv_n", "M16", "bug 1 left in: 1/D",
            _renamed(_BUGGY_1, "buggy_backward_1", "fixed_backward_inv_n")),
    mistake("fixed_backward_inv_n", "M16", "fixed to 1/(N - 1)",
            _renamed(_BUGGY_1, "buggy_backward_1", "fixed_backward_inv_n").replace(
                "1.0 / x.shape[1]", "1.0 / (x.shape[0] - 1)")),
    mistake("fixed_backward_dvar", "M18", "bug 2 left in: x_hat in dvar", '''
def fixed_backward_dvar(dout, cache):
    xmu, inv_std, gamma = cache["xmu"], cache["inv_std"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache["x_hat"]).sum(axis=0)
    dx_hat = dout * gamma
    dvar = -0.5 * inv_std**3 * (dx_hat * cache["x_hat"]).sum(axis=0)
    dmu = -inv_std * dx_hat.sum(axis=0) - 2.0 * dvar * xmu.mean(axis=0)
    dx = dx_hat * inv_std + 2.0 * dvar * xmu / N + dmu / N
    return dx, dgamma, dbeta
'''),
    mistake("fixed_backward_dvar", "M17", "dvar term deleted instead of fixed", '''
def fixed_backward_dvar(dout, cache):
    inv_std, gamma = cache["inv_std"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache["x_hat"]).sum(axis=0)
    dx_hat = dout * gamma
    dmu = -inv_std * dx_hat.sum(axis=0)
    dx = dx_hat * inv_std + dmu / N
    return dx, dgamma, dbeta
'''),
]

# ------------------------------------------------------------------------------ alternatives
ALTERNATIVES: list[Fixture] = [
    alternative("numerical_gradient", "sample ada: np.nditer", _ANSWERS["ada"]["numerical_gradient"]),
    alternative("numerical_gradient", "fresh copies of x, x itself untouched", '''
def numerical_gradient(f, x, dout, h=1e-5):
    grad = np.empty(x.shape)
    for k in range(x.size):
        up, down = x.copy(), x.copy()
        up.flat[k] += h
        down.flat[k] -= h
        grad.flat[k] = np.sum((f(up) - f(down)) * dout) / (2 * h)
    return grad
'''),
    alternative("numerical_gradient", "helper for one entry, flat view of x", '''
def _partial(f, x_flat, x, k, dout, h):
    saved = x_flat[k]
    x_flat[k] = saved + h
    f_plus = np.array(f(x))
    x_flat[k] = saved - h
    f_minus = np.array(f(x))
    x_flat[k] = saved
    return np.sum((f_plus - f_minus) * dout) / (2 * h)


def numerical_gradient(f, x, dout, h=1e-5):
    flat = x.reshape(-1)   # a view: writing into it perturbs x
    return np.array([_partial(f, flat, x, k, dout, h) for k in range(x.size)]).reshape(x.shape)
'''),
    alternative("scale_shift_backward", "sample ada: einsum", _ANSWERS["ada"]["scale_shift_backward"]),
    alternative("scale_shift_backward", "keepdims sums, float32 kept", '''
def scale_shift_backward(dout, x_hat, gamma):
    dgamma = np.sum(dout * x_hat, axis=0, keepdims=True)[0]
    dbeta = np.sum(dout, axis=0, keepdims=True).ravel()
    return (dout * gamma).astype(dout.dtype), dgamma, dbeta
'''),
    alternative("normalize_backward", "sample ada: dvar with x_hat and inv_std**2",
                _ANSWERS["ada"]["normalize_backward"]),
    alternative("normalize_backward", "powers of var + eps, keepdims", '''
def normalize_backward(dx_hat, x, mean, var, eps):
    v = var + eps
    centred = x - mean
    d_mean = -np.sum(dx_hat, axis=0, keepdims=True) / np.sqrt(v)
    d_var = np.sum(dx_hat * centred, axis=0) * -0.5 * v ** -1.5
    return dx_hat / np.sqrt(v), d_mean.reshape(-1), d_var
'''),
    alternative("batch_stats_backward", "sample ada: one expression", _ANSWERS["ada"]["batch_stats_backward"]),
    alternative("batch_stats_backward", "the vanishing term kept", '''
def batch_stats_backward(dmean, dvar, x):
    N = x.shape[0]
    xmu = x - x.mean(axis=0)
    dmean_total = dmean + dvar * (-2.0 * xmu).mean(axis=0)  # var's path through the mean: 0
    return np.broadcast_to(dmean_total / N, x.shape) + dvar * 2.0 * xmu / N
'''),
    alternative("batchnorm_backward", "stages chained, sample ada", _ANSWERS["ada"]["batchnorm_backward"]),
    alternative("dx_through_var", "sample ada: a mean over the batch", _ANSWERS["ada"]["dx_through_var"]),
    alternative("dx_through_var", "staged formula with x - mean recovered", '''
def dx_through_var(dx_hat, x_hat, inv_std):
    N = dx_hat.shape[0]
    xmu = x_hat / inv_std
    dvar = -0.5 * inv_std**3 * (dx_hat * xmu).sum(axis=0)
    return 2.0 * dvar * xmu / N
'''),
    alternative("dx_through_mean", "sample ada: zeros plus a row", _ANSWERS["ada"]["dx_through_mean"]),
    alternative("dx_through_mean", "a read-only broadcast view", '''
def dx_through_mean(dx_hat, inv_std):
    N = dx_hat.shape[0]
    return np.broadcast_to(-inv_std / N * dx_hat.sum(axis=0), dx_hat.shape)
'''),
    alternative("batchnorm_backward", "closed form in the staged exercise", '''
def batchnorm_backward(dout, cache):
    xh, g, r = cache["x_hat"], cache["gamma"], cache["inv_std"]
    m = dout.shape[0]
    db = np.sum(dout, axis=0)
    dg = np.sum(dout * xh, axis=0)
    dx = g * r * (dout - db / m - xh * dg / m)
    return dx, dg, db
'''),
    alternative("batchnorm_backward", "staged from var and eps, other names", '''
def batchnorm_backward(dout, cache):
    x, mu, sigma2, eps = cache["x"], cache["mean"], cache["var"], cache["eps"]
    g = cache["gamma"]
    m = x.shape[0]
    centred = x - mu
    s = np.sqrt(sigma2 + eps)
    xn = centred / s
    d_beta = np.sum(dout, axis=0)
    d_gamma = np.sum(dout * xn, axis=0)
    d_xn = dout * g
    d_sigma2 = np.sum(d_xn * centred, axis=0) * -0.5 * (sigma2 + eps) ** -1.5
    d_mu = -np.sum(d_xn, axis=0) / s + d_sigma2 * np.mean(-2.0 * centred, axis=0)
    d_x = d_xn / s + d_sigma2 * 2.0 * centred / m + d_mu / m
    return d_x, d_gamma, d_beta
'''),
    alternative("batchnorm_backward", "einsum sums, float32 kept", '''
def batchnorm_backward(dout, cache):
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    n = dout.shape[0]
    dbeta = np.einsum("nd->d", dout)
    dgamma = np.einsum("nd,nd->d", dout, x_hat)
    dx = np.einsum("d,nd->nd", gamma * inv_std / n, n * dout - dbeta - x_hat * dgamma)
    return dx.astype(dout.dtype), dgamma, dbeta
'''),
    alternative("batchnorm_backward", "staged with helper functions", '''
def _sum_rows(a):
    return a.sum(axis=0)


def _grad_through_inv_std(d_xhat, xmu, inv_std):
    dinv = _sum_rows(d_xhat * xmu)
    return dinv * -0.5 * inv_std**3   # d inv_std / d var = -0.5 * (var + eps)**-1.5


def batchnorm_backward(dout, cache):
    xmu, inv_std, x_hat, gamma = cache["xmu"], cache["inv_std"], cache["x_hat"], cache["gamma"]
    N = len(dout)
    d_xhat = dout * gamma
    dvar = _grad_through_inv_std(d_xhat, xmu, inv_std)
    dxmu = d_xhat * inv_std + dvar * 2.0 * xmu / N
    dmean = -_sum_rows(dxmu)
    return dxmu + dmean / N, _sum_rows(dout * x_hat), _sum_rows(dout)
'''),
    alternative("batchnorm_backward_alt", "sample ada: einsum", _ANSWERS["ada"]["batchnorm_backward_alt"]),
    alternative("batchnorm_backward_alt", "keepdims and mean instead of sum/N", '''
def batchnorm_backward_alt(dout, cache):
    xh, g, istd = cache["x_hat"], cache["gamma"], cache["inv_std"]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xh).sum(axis=0)
    dx = g * istd * (dout - dout.mean(axis=0, keepdims=True)
                     - xh * (dout * xh).mean(axis=0, keepdims=True))
    return dx, dgamma, dbeta
'''),
    alternative("batchnorm_backward_alt", "in terms of x - mu and var", '''
def batchnorm_backward_alt(dout, cache):
    xmu, var, eps, gamma = cache["xmu"], cache["var"], cache["eps"], cache["gamma"]
    N = dout.shape[0]
    ivar = 1.0 / (var + eps)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xmu).sum(axis=0) * np.sqrt(ivar)
    dx = gamma * np.sqrt(ivar) / N * (N * dout - dbeta - xmu * ivar * (dout * xmu).sum(axis=0))
    return dx, dgamma, dbeta
'''),
    alternative("spatial_batchnorm_backward", "sample ada: moveaxis",
                _ANSWERS["ada"]["spatial_batchnorm_backward"]),
    alternative("spatial_batchnorm_backward", "per-channel axes (0, 2, 3), no reshape of dout", '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    x_hat = cache["x_hat"].reshape(N, H, W, C).transpose(0, 3, 1, 2)
    g = cache["gamma"][None, :, None, None]
    r = cache["inv_std"][None, :, None, None]
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    dx = g * r * (dout - dout.mean(axis=(0, 2, 3), keepdims=True)
                  - x_hat * (dout * x_hat).mean(axis=(0, 2, 3), keepdims=True))
    return dx, dgamma, dbeta
'''),
    alternative("spatial_batchnorm_backward", "channels first: transpose(1, 0, 2, 3)", '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    rows = dout.transpose(1, 0, 2, 3).reshape(C, -1).T     # (N*H*W, C), rows ordered (n, h, w)
    d_rows, dgamma, dbeta = batchnorm_backward(rows, cache)
    return d_rows.T.reshape(C, N, H, W).transpose(1, 0, 2, 3), dgamma, dbeta
'''),
    alternative("fixed_backward_inv_n", "sample ada", _ANSWERS["ada"]["fixed_backward_inv_n"]),
    alternative("fixed_backward_dvar", "sample ada", _ANSWERS["ada"]["fixed_backward_dvar"]),
    alternative("fixed_backward_inv_n", "closed form of batchnorm_backward_alt, renamed",
                _renamed(_ANSWERS["ada"]["batchnorm_backward_alt"], "batchnorm_backward_alt",
                         "fixed_backward_inv_n")),
    alternative("fixed_backward_dvar", "dvar from var and eps", '''
def fixed_backward_dvar(dout, cache):
    xmu, gamma = cache["xmu"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache["x_hat"]).sum(axis=0)
    dx_hat = dout * gamma
    inv_std = (cache["var"] + cache["eps"]) ** -0.5
    dvar = -0.5 * inv_std**3 * (dx_hat * xmu).sum(axis=0)
    dmu = -inv_std * dx_hat.sum(axis=0) - 2.0 * dvar * xmu.mean(axis=0)
    dx = dx_hat * inv_std + 2.0 * dvar * xmu / N + dmu / N
    return dx, dgamma, dbeta
'''),
]

# ------------------------------------------------------------------------------ other mistakes
UNCATALOGUED: list[Fixture] = [
    uncatalogued("scale_shift_backward", "gamma left out of dx_hat", '''
def scale_shift_backward(dout, x_hat, gamma):
    return dout.copy(), (dout * x_hat).sum(axis=0), dout.sum(axis=0)
'''),
    uncatalogued("normalize_backward", "exponent -1/2 in dvar", '''
def normalize_backward(dx_hat, x, mean, var, eps):
    inv_std = 1.0 / np.sqrt(var + eps)
    dvar = -0.5 * inv_std * (dx_hat * (x - mean)).sum(axis=0)
    return dx_hat * inv_std, -inv_std * dx_hat.sum(axis=0), dvar
'''),
    uncatalogued("normalize_backward", "stage 1's term folded into dmean", '''
def normalize_backward(dx_hat, x, mean, var, eps):
    inv_std = 1.0 / np.sqrt(var + eps)
    xmu = x - mean
    dvar = -0.5 * inv_std**3 * (dx_hat * xmu).sum(axis=0)
    dmean = -inv_std * dx_hat.sum(axis=0) + dvar * (-2.0 * xmu).mean(axis=0)
    return dx_hat * inv_std, dmean, dvar
'''),
    uncatalogued("batch_stats_backward", "factor 2 of the variance term left out", '''
def batch_stats_backward(dmean, dvar, x):
    return (dmean + dvar * (x - x.mean(axis=0))) / len(x)
'''),
    uncatalogued("dx_through_var", "sign flipped", '''
def dx_through_var(dx_hat, x_hat, inv_std):
    return (inv_std / len(dx_hat)) * x_hat * (dx_hat * x_hat).sum(axis=0)
'''),
    uncatalogued("dx_through_mean", "one row returned", '''
def dx_through_mean(dx_hat, inv_std):
    return -(inv_std / len(dx_hat)) * dx_hat.sum(axis=0)
'''),
    uncatalogued("batchnorm_backward_alt", "dbeta and dgamma returned in swapped order", '''
def batchnorm_backward_alt(dout, cache):
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)
    return dx, dbeta, dgamma
'''),
    uncatalogued("numerical_gradient", "its own step h = 1e-3 instead of the argument", '''
def numerical_gradient(f, x, dout, h=1e-5):
    step = 1e-3
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + step
        plus = f(x).copy()
        x[i] = old - step
        minus = f(x).copy()
        x[i] = old
        grad[i] = np.sum((plus - minus) * dout) / (2 * step)
    return grad
'''),
]
