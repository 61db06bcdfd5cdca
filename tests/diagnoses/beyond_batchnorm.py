"""Fixtures for notebook 05 (beyond BatchNorm): LayerNorm, GroupNorm and Batch Renorm, forward and
backward.

The backward fixtures read the cache keys the notebook's tables list (the checks hand them the
reference forward pass's cache). Correct alternatives reuse the sample student ada of
``autograder/samples/beyond_batchnorm.py``; the mistakes are small edits of a correct cell, each
with exactly one catalogued mistake.
"""

from __future__ import annotations

from autograder.samples import beyond_batchnorm as samples
from diagnoses import Fixture, alternative, mistake, uncatalogued

_ADA = samples.STUDENTS["ada"]["answers"]


def _edit(function: str, *pairs: tuple[str, str]) -> str:
    """ada's cell for ``function`` with each (old, new) replaced; every old must be there."""
    source = _ADA[function]
    for old, new in pairs:
        if old not in source:
            raise ValueError(f"{function}: {old!r} is not in ada's cell")
        source = source.replace(old, new)
    return source


# ------------------------------------------------------------------ LayerNorm
_LN = "layernorm_forward"
_LN_B = "layernorm_backward"
_LN_M23 = '''
def layernorm_forward(x, gamma, beta, ln_param):
    """LayerNorm that keeps running averages, as BatchNorm does, and uses them in test mode."""
    eps = ln_param.get("eps", 1e-5)
    mode = ln_param.get("mode", "train")
    if mode == "train":
        mu = x.mean(axis=1, keepdims=True)
        var = x.var(axis=1, keepdims=True)
        ln_param["running_mean"] = 0.9 * ln_param.get("running_mean", 0.0) + 0.1 * mu.mean()
        ln_param["running_var"] = 0.9 * ln_param.get("running_var", 1.0) + 0.1 * var.mean()
    else:
        mu, var = ln_param.get("running_mean", 0.0), ln_param.get("running_var", 1.0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, {"x_hat": x_hat}
'''

LAYERNORM = [
    mistake(_LN, "M1", "ddof=1", _edit(_LN, ("np.var(xd, axis=1, keepdims=True)",
                                             "np.var(xd, axis=1, ddof=1, keepdims=True)"))),
    mistake(_LN, "M3", "eps outside the root", _edit(
        _LN, ("1.0 / np.sqrt(var + eps)", "1.0 / (np.sqrt(var) + eps)"))),
    mistake(_LN, "M10", "x centred in place", '''
def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    x -= x.mean(axis=1, keepdims=True)
    x_hat = x / np.sqrt((x**2).mean(axis=1, keepdims=True) + eps)
    return gamma * x_hat + beta, {"x_hat": x_hat}
'''),
    mistake(_LN, "M22", "statistics over the batch axis", samples._CYD_LN),
    mistake(_LN, "M23", "running averages in test mode", _LN_M23),
    mistake(_LN_B, "M10", "dout scaled in place", _edit(
        _LN_B, ('    g = dout * cache["gamma"]\n', '    g = dout\n    g *= cache["gamma"]\n'))),
    mistake(_LN_B, "M15", "dgamma not summed", _edit(
        _LN_B, ('np.einsum("ij,ij->j", dout, x_hat)', "dout * x_hat"))),
    mistake(_LN_B, "M16", "BatchNorm's 1/N kept", _edit(
        _LN_B, ("g.mean(axis=1, keepdims=True)", "g.sum(axis=1, keepdims=True) / g.shape[0]"),
        ("[:, None] / g.shape[1]", "[:, None] / g.shape[0]"))),
    mistake(_LN_B, "M17", "the mean's term dropped", _edit(
        _LN_B, ("(g - g.mean(axis=1, keepdims=True)\n                -", "(g -"))),
    mistake(_LN_B, "M22", "BatchNorm's sums over the batch", _edit(
        _LN_B, ("g.mean(axis=1, keepdims=True)", "g.mean(axis=0, keepdims=True)"),
        ('np.einsum("ij,ij->i", g, x_hat)[:, None] / g.shape[1]',
         "(g * x_hat).mean(axis=0, keepdims=True)"))),
]

# ------------------------------------------------------------------ GroupNorm
_GN = "spatial_groupnorm_forward"
_GN_B = "spatial_groupnorm_backward"
_GN_M24_LAST = '''
def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Channels moved last before grouping."""
    N, C, H, W = x.shape
    if C % G:
        raise ValueError("G must divide C")
    v = x.transpose(0, 2, 3, 1).reshape(N, G, -1)
    x_hat = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-5)
    x_hat = x_hat.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return gamma[:, None, None] * x_hat + beta[:, None, None], {}
'''
_GN_M25 = '''
def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """The affine part applied per group."""
    N, C, H, W = x.shape
    if C % G:
        raise ValueError("G must divide C")
    v = x.reshape(N, G, -1)
    x_hat = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-5)
    out = gamma.reshape(1, G, 1) * x_hat + beta.reshape(1, G, 1)
    return out.reshape(N, C, H, W), {}
'''

GROUPNORM = [
    mistake(_GN, "M1", "ddof=1", _edit(_GN, ("v.var(axis=(2, 3, 4), keepdims=True)",
                                             "v.var(axis=(2, 3, 4), ddof=1, keepdims=True)"))),
    mistake(_GN, "M3", "eps missing", _edit(_GN, ("((v - mu) / np.sqrt(var + eps))",
                                                  "((v - mu) / np.sqrt(var))"))),
    mistake(_GN, "M10", "x centred in place", _edit(
        _GN, ("    x_hat = ((v - mu) /", "    v -= mu\n    x_hat = (v /"))),
    mistake(_GN, "M24", "channels moved last", _GN_M24_LAST),
    mistake(_GN, "M25", "gamma per group", _GN_M25),
    mistake(_GN, "M26", "statistics over the batch too", _edit(
        _GN, ("v.mean(axis=(2, 3, 4), keepdims=True)", "v.mean(axis=(0, 2, 3, 4), keepdims=True)"),
        ("v.var(axis=(2, 3, 4), keepdims=True)", "v.var(axis=(0, 2, 3, 4), keepdims=True)"),
        ("1 / np.sqrt(var.reshape(N, G) + eps)", "1 / np.sqrt(np.repeat(var.reshape(1, G), N, 0) + eps)"))),
    mistake(_GN_B, "M10", "dout scaled in place", _edit(
        _GN_B, ('    g = (dout * cache["gamma"][None, :, None, None]).reshape(N, G, -1)\n',
                '    dout *= cache["gamma"][None, :, None, None]\n    g = dout.reshape(N, G, -1)\n'),
        ('np.einsum("nchw,nchw->c", dout, cache["x_hat"])',
         'np.einsum("nchw,nchw->c", dout / cache["gamma"][None, :, None, None], cache["x_hat"])'),
        ("dout.sum(axis=(0, 2, 3))", "(dout / cache['gamma'][None, :, None, None]).sum(axis=(0, 2, 3))"))),
    mistake(_GN_B, "M15", "dgamma per sample", _edit(
        _GN_B, ('np.einsum("nchw,nchw->c", dout, cache["x_hat"])',
                '(dout * cache["x_hat"]).sum(axis=(2, 3))'))),
    mistake(_GN_B, "M16", "the batch size N for the group's M", _edit(
        _GN_B, ("g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True)",
                "g.sum(-1, keepdims=True) / N - xh * (g * xh).sum(-1, keepdims=True) / N"))),
    mistake(_GN_B, "M17", "the variance's term dropped", _edit(
        _GN_B, (" - xh * (g * xh).mean(-1, keepdims=True))", ")"))),
    mistake(_GN_B, "M24", "strided groups", '''
def spatial_groupnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    G = cache["G"]
    order = np.argsort(np.arange(C) % G, kind="stable")
    g = (dout * cache["gamma"][None, :, None, None])[:, order].reshape(N, G, -1)
    xh = cache["x_hat"][:, order].reshape(N, G, -1)
    inv = cache["inv_std"][..., None]
    dx = inv * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    dx = dx.reshape(N, C, H, W)[:, np.argsort(order)]
    return dx, (dout * cache["x_hat"]).sum(axis=(0, 2, 3)), dout.sum(axis=(0, 2, 3))
'''),
    mistake(_GN_B, "M25", "dgamma per group", _edit(
        _GN_B, ('np.einsum("nchw,nchw->c", dout, cache["x_hat"])',
                '(dout * cache["x_hat"]).reshape(N, G, -1).sum(axis=(0, 2))'),
        ("dout.sum(axis=(0, 2, 3))", "dout.reshape(N, G, -1).sum(axis=(0, 2))"))),
    mistake(_GN_B, "M26", "sums over the batch too", _edit(
        _GN_B, ("g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True)",
                "g.mean((0, 2), keepdims=True) - xh * (g * xh).mean((0, 2), keepdims=True)"))),
]

# ------------------------------------------------------------------ Batch Renorm
_BRN = "batchrenorm_forward"
_BRN_B = "batchrenorm_backward"

BATCHRENORM = [
    mistake(_BRN, "M1", "ddof=1", _edit(_BRN, ("np.var(x, axis=0) + eps", "np.var(x, axis=0, ddof=1) + eps"))),
    mistake(_BRN, "M3", "eps missing", _edit(_BRN, ("np.sqrt(np.var(x, axis=0) + eps)",
                                                    "np.sqrt(np.var(x, axis=0))"))),
    mistake(_BRN, "M10", "x centred in place", _edit(
        _BRN, ("    x_bn = (x - mu) / sd\n", "    x -= mu\n    x_bn = x / sd\n"))),
    mistake(_BRN, "M28", "d clipped to [0, dmax]", samples._BEN_BRN),
    mistake(_BRN, "M28", "no clipping", _edit(
        _BRN, ("np.minimum(np.maximum(sd / sd_run, 1 / rmax), rmax)", "sd / sd_run"),
        ("np.minimum(np.maximum((mu - mu_run) / sd_run, -dmax), dmax)", "(mu - mu_run) / sd_run"))),
    mistake(_BRN, "M29", "running statistics updated first", _edit(
        _BRN, ("    r = np.minimum", "    mu_run = mu_run + m * (mu - mu_run)\n"
                                    "    sd_run = sd_run + m * (sd - sd_run)\n    r = np.minimum"),
        ("brn_param[\"running_mean\"] = mu_run + m * (mu - mu_run)", "brn_param[\"running_mean\"] = mu_run"),
        ("brn_param[\"running_std\"] = sd_run + m * (sd - sd_run)", "brn_param[\"running_std\"] = sd_run"))),
    mistake(_BRN, "M30", "running_std tracks the variance", _edit(
        _BRN, ("sd_run + m * (sd - sd_run)", "sd_run + m * (np.var(x, axis=0) - sd_run)"))),
    mistake(_BRN, "M31", "batch statistics in test mode", _edit(
        _BRN, ("out = gamma * (x - mu_run) / sd_run + beta",
               "out = gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta"))),
    mistake(_BRN_B, "M10", "dout scaled in place", _edit(
        _BRN_B, ('    g = dout * cache["gamma"] * r\n', '    g = dout\n    g *= cache["gamma"] * r\n'),
        ('(dout * cache["x_hat"]).sum(0), dout.sum(0)',
         '(g / (cache["gamma"] * r) * cache["x_hat"]).sum(0), (g / (cache["gamma"] * r)).sum(0)'))),
    mistake(_BRN_B, "M15", "dgamma not summed", _edit(
        _BRN_B, ('(dout * cache["x_hat"]).sum(0), dout.sum(0)', 'dout * cache["x_hat"], dout.sum(0)'))),
    mistake(_BRN_B, "M17", "the mean's path dropped", _edit(
        _BRN_B, ("(n * g - g.sum(0) - x_bn", "(n * g - x_bn"))),
    mistake(_BRN_B, "M27", "gradient through r and d", samples._CYD_BRN_BACK),
]

MISTAKES: list[Fixture] = LAYERNORM + GROUPNORM + BATCHRENORM

ALTERNATIVES: list[Fixture] = [
    *(alternative(fn, "ada: float64 inside, keepdims, einsum", _ADA[fn]) for fn in (
        _LN, _LN_B, _GN, _GN_B, _BRN, _BRN_B)),
    alternative(_LN, "np.std and a division", '''
def layernorm_forward(x, gamma, beta, ln_param):
    if np.shape(gamma) != (x.shape[1],):
        raise ValueError("gamma must have shape (D,)")
    eps = ln_param.get("eps", 1e-5)
    std = np.sqrt(x.std(axis=1, keepdims=True) ** 2 + eps)
    return gamma * ((x - x.mean(axis=1, keepdims=True)) / std) + beta, None
'''),
    alternative(_BRN_B, "staged, r folded into the upstream gradient", '''
def batchrenorm_backward(dout, cache):
    N = dout.shape[0]
    dx_bn = dout * cache["gamma"] * cache["r"]
    inv = cache["inv_std"]
    xmu = cache["x_bn"] / inv
    dvar = -0.5 * inv**3 * (dx_bn * xmu).sum(axis=0)
    dmu = -(dx_bn * inv).sum(axis=0) - 2 * dvar * xmu.mean(axis=0)
    dx = dx_bn * inv + 2 * dvar * xmu / N + dmu / N
    return dx, (dout * cache["x_hat"]).sum(axis=0), dout.sum(axis=0)
'''),
]

UNCATALOGUED: list[Fixture] = [
    uncatalogued(_BRN_B, "dgamma from the uncorrected x_bn", _edit(
        _BRN_B, ('(dout * cache["x_hat"]).sum(0)', '(dout * cache["x_bn"]).sum(0)'))),
]
