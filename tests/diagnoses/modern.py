"""Fixtures for notebook 06 (modern normalization): RMSNorm forward and backward, the residual
block forward and backward, and BatchNorm folding.

The backward fixtures read the cache keys the notebook's tables list (the checks hand them the
reference forward pass's cache). Correct alternatives reuse the sample student ada of
``autograder/samples/modern_normalization.py``; the mistakes are small edits of her cells, each
with exactly one catalogued mistake. The block fixtures call the notebook's own (correct)
``rmsnorm_forward`` and ``rmsnorm_backward``, as a student's block calls theirs.
"""

from __future__ import annotations

from autograder.samples import modern_normalization as samples
from diagnoses import alternative, mistake, uncatalogued

_ADA = samples.STUDENTS["ada"]["answers"]


def _edit(function: str, *pairs: tuple[str, str]) -> str:
    """ada's cell for ``function`` with each (old, new) replaced; every old must be there."""
    source = _ADA[function]
    for old, new in pairs:
        if old not in source:
            raise ValueError(f"{function}: {old!r} is not in ada's cell")
        source = source.replace(old, new)
    return source


# ------------------------------------------------------------------ RMSNorm
_F, _B = "rmsnorm_forward", "rmsnorm_backward"
_ADA_INV = 'inv = 1.0 / np.sqrt(np.einsum("...j,...j->...", xd, xd) / xd.shape[-1] + eps)'

RMSNORM = [
    mistake(_F, "M3", "eps outside the root", _edit(_F, (
        _ADA_INV, 'inv = 1.0 / (np.sqrt(np.einsum("...j,...j->...", xd, xd) / xd.shape[-1]) + eps)'))),
    mistake(_F, "M10", "x divided in place", '''
def rmsnorm_forward(x, gamma, rms_param):
    eps = rms_param.get("eps", 1e-6)
    inv = 1.0 / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True) + eps)
    x *= inv.astype(x.dtype)
    return (x * gamma).astype(x.dtype), {"x_hat": x, "inv_rms": inv[..., 0], "gamma": gamma}
'''),
    mistake(_F, "M33", "the mean subtracted", samples._BEN_RMS),
    mistake(_F, "M34", "mean square over the batch", _edit(_F, (
        _ADA_INV, "inv = 1.0 / np.sqrt(np.mean(xd * xd, axis=0, keepdims=True) + eps)"),
        ("x_hat = xd * inv[..., None]", "x_hat = xd * inv"))),
    mistake(_F, "M35", "float16 in float16", samples._CYD_RMS),
    mistake(_B, "M10", "dout scaled in place", _edit(
        _B, ('    g = dout * cache["gamma"]\n', '    g = dout\n    g *= cache["gamma"]\n'),
        ("(dout * x_hat).reshape", "(g / cache[\"gamma\"] * x_hat).reshape"))),
    mistake(_B, "M15", "dgamma not summed", _edit(
        _B, ("dgamma = (dout * x_hat).reshape(-1, D).sum(axis=0)", "dgamma = dout * x_hat"))),
    mistake(_B, "M17", "the path through the RMS dropped", _edit(
        _B, ('dx = r * (g - x_hat * np.einsum("...j,...j->...", g, x_hat)[..., None] / D)',
             "dx = r * g"))),
    mistake(_B, "M33", "LayerNorm's mean term kept", _edit(
        _B, ("dx = r * (g - x_hat", "dx = r * (g - g.mean(axis=-1, keepdims=True) - x_hat"))),
    mistake(_B, "M34", "the projection summed over the batch", _edit(
        _B, ('np.einsum("...j,...j->...", g, x_hat)[..., None] / D',
             "np.mean(g * x_hat, axis=0, keepdims=True)"))),
]

# ------------------------------------------------------------------ residual block
_BF, _BB = "residual_block_forward", "residual_block_backward"

BLOCK = [
    mistake(_BF, "M10", "the sum written into x", _edit(
        _BF, ('    s = x + cache["a"] @ w2 + b2\n',
              '    x += cache["a"] @ w2 + b2\n    s = x\n'),
        ('cache = {"placement": placement, "x": x,', 'cache = {"placement": placement, "x": x.copy(),'))),
    mistake(_BF, "M36", "the skip after the norm", samples._CYD_BLOCK),
    mistake(_BF, "M37", "placements swapped", _ADA[_BF].replace('placement == "pre"',
                                                               'placement == "post"')),
    mistake(_BB, "M10", "the skip gradient added into dout", _edit(
        _BB, ("    grads = (d_sum + d_z, ", "    d_sum += d_z\n    grads = (d_sum, "),
        ("d_sum.sum(0), dgamma)", "(d_sum - d_z).sum(0), dgamma)"),
        ("cache[\"a\"].T @ d_sum,", "cache[\"a\"].T @ (d_sum - d_z),"))),
    mistake(_BB, "M15", "db2 not summed", _edit(_BB, ("d_sum.sum(0), dgamma)", "d_sum, dgamma)"))),
    mistake(_BB, "M36", "the backward of a normalized skip", _edit(
        _BB, ('        d_z, dgamma = rmsnorm_backward(d_z, cache["norm_cache"])\n',
              '        d_z, dgamma = rmsnorm_backward(d_z + d_sum, cache["norm_cache"])\n'
              '        d_z = d_z - d_sum  # dx = RMSNorm backward of (dz + dout) alone\n'))),
    mistake(_BB, "M37", "placements swapped", _edit(
        _BB, ('pre = cache["placement"] == "pre"', 'pre = cache["placement"] == "post"'))),
    mistake(_BB, "M38", "the skip gradient dropped", samples._CYD_BLOCK_BACK),
]

# ------------------------------------------------------------------ folding
_FO = "fold_batchnorm"

FOLD = [
    mistake(_FO, "M3", "eps left out", _edit(_FO, ("np.sqrt(running_var + eps)", "np.sqrt(running_var)"))),
    mistake(_FO, "M10", "eps added into running_var", _edit(
        _FO, ("    s = gamma / np.sqrt(running_var + eps)\n",
              "    running_var += eps\n    s = gamma / np.sqrt(running_var)\n"))),
    mistake(_FO, "M39", "b not folded", samples._CYD_FOLD),
    mistake(_FO, "M40", "rows of w scaled", _edit(_FO, ("w * s[None, :]", "w * s[:, None]"))),
]

MISTAKES = RMSNORM + BLOCK + FOLD

ALTERNATIVES = [
    *(alternative(fn, "ada", _ADA[fn]) for fn in (_F, _B, _BF, _BB, _FO)),
    alternative(_F, "linalg.norm, float32 for float16 only", '''
def rmsnorm_forward(x, gamma, rms_param):
    work = x.astype(np.float32) if x.dtype == np.float16 else x
    rms = np.linalg.norm(work, axis=-1, keepdims=True) / np.sqrt(work.shape[-1])
    inv = 1 / np.sqrt(rms**2 + rms_param.get("eps", 1e-6))
    if np.shape(gamma) != (x.shape[-1],):
        raise ValueError("gamma has the wrong shape")
    return (work * inv * gamma).astype(x.dtype), {}
'''),
    alternative(_B, "sums written out", '''
def rmsnorm_backward(dout, cache):
    x_hat, gamma = cache["x_hat"], cache["gamma"]
    D = x_hat.shape[-1]
    r = cache["inv_rms"][..., None]
    g = dout * gamma
    proj = np.sum(g * x_hat, axis=-1, keepdims=True)
    dgamma = np.sum(dout * x_hat, axis=tuple(range(dout.ndim - 1)))
    return r * g - r * x_hat * proj / D, dgamma
'''),
    alternative(_FO, "a loop over the units", '''
def fold_batchnorm(w, b, gamma, beta, running_mean, running_var, eps):
    M = w.shape[1]
    if np.shape(running_var) != (M,):
        raise ValueError("running_var must have one value per unit")
    w_f, b_f = np.empty_like(w), np.empty_like(b)
    for j in range(M):
        s = gamma[j] / np.sqrt(running_var[j] + eps)
        w_f[:, j] = w[:, j] * s
        b_f[j] = (b[j] - running_mean[j]) * s + beta[j]
    return w_f, b_f
'''),
]

UNCATALOGUED = [
    uncatalogued(_BF, "ReLU after the second affine layer too", _edit(
        _BF, ('    s = x + cache["a"] @ w2 + b2\n', '    s = x + np.maximum(cache["a"] @ w2 + b2, 0)\n'))),
    uncatalogued(_FO, "running_mean not subtracted", _edit(
        _FO, ("(beta + s * (b - running_mean))", "(beta + s * b)"))),
]
