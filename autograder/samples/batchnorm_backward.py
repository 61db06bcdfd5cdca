"""Sample submissions for assignment 03 (the BatchNorm backward pass).

ada: complete and correct, in her own style (``np.nditer`` in the numerical gradient, einsum
sums, dvar written with x_hat and inv_std**2, means where the 1/N sums are, ``np.moveaxis`` for
the spatial layout).
ben: one typical mistake, x_hat in place of (x - mu) in normalize_backward's dvar (M18); his
batchnorm_backward and spatial pass, which call it, inherit it.
cyd: several mistakes: a one-sided difference that ignores dout (M19, M20), dgamma left per sample
in scale_shift_backward as a published blog post has it (M15), 1/D in batch_stats_backward (M16),
channels mixed by a bare reshape (M14); the closed form and bug 1 not attempted.
dee: the untouched release notebook.
"""

NOTEBOOK = "batchnorm_backward.ipynb"

_ADA_NUMGRAD = '''
def numerical_gradient(f, x, dout, h=1e-5):
    """Centered differences of sum(f(x) * dout), one entry of x at a time."""
    grad = np.zeros_like(x, dtype=float)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        saved = x[idx].copy()
        x[idx] = saved + h
        up = f(x).copy()
        x[idx] = saved - h
        down = f(x).copy()
        x[idx] = saved
        grad[idx] = ((up - down) * dout).sum() / (2 * h)
    return grad
'''

_ADA_SCALE_SHIFT = '''
def scale_shift_backward(dout, x_hat, gamma):
    """gamma and beta touch every row of their column: sum over the batch."""
    return dout * gamma, np.einsum("ij,ij->j", dout, x_hat), np.einsum("ij->j", dout)
'''

_ADA_NORMALIZE = '''
def normalize_backward(dx_hat, x, mean, var, eps):
    """Three partial derivatives of (x - mean) * r, with r = (var + eps)**-0.5."""
    r = (var + eps) ** -0.5
    xh = (x - mean) * r
    dmean = -r * np.einsum("ij->j", dx_hat)
    dvar = -0.5 * r**2 * np.einsum("ij,ij->j", dx_hat, xh)  # (x - mean) * r**3 = x_hat * r**2
    return dx_hat * r, dmean, dvar
'''

_ADA_STATS = '''
def batch_stats_backward(dmean, dvar, x):
    """Every row gets 1/n of dmean, and dvar times d var / d x = 2 (x - mean) / n."""
    n = len(x)
    return (dmean + 2 * dvar * (x - x.mean(axis=0))) / n
'''

_ADA_BACKWARD = '''
def batchnorm_backward(dout, cache):
    """My three stages, last one first."""
    c = cache
    d_xh, d_g, d_b = scale_shift_backward(dout, c["x_hat"], c["gamma"])
    d_direct, d_mu, d_var = normalize_backward(d_xh, c["x"], c["mean"], c["var"], c["eps"])
    return d_direct + batch_stats_backward(d_mu, d_var, c["x"]), d_g, d_b
'''

_ADA_VAR_PATH = '''
def dx_through_var(dx_hat, x_hat, inv_std):
    """1/N times a sum is a mean."""
    return -inv_std * x_hat * np.mean(dx_hat * x_hat, axis=0)
'''

_ADA_MEAN_PATH = '''
def dx_through_mean(dx_hat, inv_std):
    return np.zeros_like(dx_hat) - inv_std * dx_hat.mean(axis=0)
'''

_ADA_ALT = '''
def batchnorm_backward_alt(dout, cache):
    """Closed form, with einsum for the column sums."""
    xh = cache["x_hat"]
    n = len(dout)
    dbeta = np.einsum("ij->j", dout)
    dgamma = np.einsum("ij,ij->j", dout, xh)
    dx = cache["gamma"] * cache["inv_std"] / n * (n * dout - dbeta - xh * dgamma)
    return dx, dgamma, dbeta
'''

_ADA_SPATIAL = '''
def spatial_batchnorm_backward(dout, cache):
    """Channels last, reuse the 2-D backward, channels back."""
    n, c, h, w = dout.shape
    rows = np.moveaxis(dout, 1, -1).reshape(-1, c)
    dx_rows, dgamma, dbeta = batchnorm_backward(rows, cache)
    return np.moveaxis(dx_rows.reshape(n, h, w, c), -1, 1), dgamma, dbeta
'''


def _fixed(name: str, body: str) -> str:
    return f"def {name}(dout, cache):\n{body}"


_FIX_INV_N = _fixed("fixed_backward_inv_n", '''    x, mean, inv_std, gamma = cache["x"], cache["mean"], cache["inv_std"], cache["gamma"]
    inv_n = 1.0 / x.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache["x_hat"]).sum(axis=0)
    dx_hat = dout * gamma
    dmean = -inv_std * dx_hat.sum(axis=0)
    dvar = -0.5 * inv_std**3 * (dx_hat * (x - mean)).sum(axis=0)
    dx = dx_hat * inv_std + (dmean + 2.0 * dvar * (x - mean)) * inv_n
    return dx, dgamma, dbeta
''')
_FIX_DVAR = _fixed("fixed_backward_dvar", '''    xmu, inv_std, gamma = cache["xmu"], cache["inv_std"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * cache["x_hat"]).sum(axis=0)
    dx_hat = dout * gamma
    dvar = -0.5 * inv_std**3 * (dx_hat * xmu).sum(axis=0)
    dmu = -inv_std * dx_hat.sum(axis=0) - 2.0 * dvar * xmu.mean(axis=0)
    dx = dx_hat * inv_std + 2.0 * dvar * xmu / N + dmu / N
    return dx, dgamma, dbeta
''')

_ADA_WRITTEN = {
    "answer_bug_inv_n": "inv_n is 1/D, the number of features, so the two terms that come back through "
                        "the mean and the variance are N/D = 1.5 times too big (the direct term is "
                        "fine) and the columns of dx stop summing to 0. With N = D the factor is 1, "
                        "so the bug is invisible.",
    "answer_bug_dvar": "x_hat is (x - mu)/sqrt(var + eps), so the variance term is divided by the "
                       "std (3 here). When var + eps = 1 the two are equal and the check passes.",
}

# ben: careful stages, except that normalize_backward's dvar uses x_hat (seed 000's slip).
_BEN_NORMALIZE = '''
def normalize_backward(dx_hat, x, mean, var, eps):
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    dx = dx_hat * inv_std
    dmean = -inv_std * dx_hat.sum(axis=0)
    dvar = -0.5 * inv_std**3 * (dx_hat * x_hat).sum(axis=0)
    return dx, dmean, dvar
'''
_BEN_BACKWARD = '''
def batchnorm_backward(dout, cache):
    x = cache["x"]
    dx_hat, dgamma, dbeta = scale_shift_backward(dout, cache["x_hat"], cache["gamma"])
    dx, dmean, dvar = normalize_backward(dx_hat, x, cache["mean"], cache["var"], cache["eps"])
    return dx + batch_stats_backward(dmean, dvar, x), dgamma, dbeta
'''

# cyd: one-sided differences without dout; dgamma per sample; 1/D; bare reshape.
_CYD_NUMGRAD = '''
def numerical_gradient(f, x, dout, h=1e-5):
    grad = np.zeros_like(x)
    fx = f(x).copy()
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        grad[i] = (f(x) - fx).sum() / h
        x[i] = old
    return grad
'''
_CYD_SCALE_SHIFT = '''
def scale_shift_backward(dout, x_hat, gamma):
    dbeta = dout.sum(axis=0)
    dgamma = dout * x_hat
    return dout * gamma, dgamma, dbeta
'''
_CYD_STATS = '''
def batch_stats_backward(dmean, dvar, x):
    N, D = x.shape
    return dmean / D + 2 * dvar * (x - x.mean(axis=0)) / D
'''
_CYD_SPATIAL = '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    dx, dgamma, dbeta = batchnorm_backward(dout.reshape(-1, C), cache)
    return dx.reshape(N, C, H, W), dgamma, dbeta
'''

_ADA_STAGES = {
    "scale_shift_backward": _ADA_SCALE_SHIFT,
    "normalize_backward": _ADA_NORMALIZE,
    "batch_stats_backward": _ADA_STATS,
    "batchnorm_backward": _ADA_BACKWARD,
    "dx_through_var": _ADA_VAR_PATH,
    "dx_through_mean": _ADA_MEAN_PATH,
    "batchnorm_backward_alt": _ADA_ALT,
}

STUDENTS = {
    "ada": {
        "answers": {
            "numerical_gradient": _ADA_NUMGRAD,
            **_ADA_STAGES,
            "spatial_batchnorm_backward": _ADA_SPATIAL,
            "fixed_backward_inv_n": _FIX_INV_N,
            "fixed_backward_dvar": _FIX_DVAR,
            **_ADA_WRITTEN,
        },
        "expect": {"full_marks": True, "zero": False, "diagnoses": []},
    },
    "ben": {
        "answers": {
            "numerical_gradient": _ADA_NUMGRAD,
            **_ADA_STAGES,
            "normalize_backward": _BEN_NORMALIZE,
            "batchnorm_backward": _BEN_BACKWARD,
            "spatial_batchnorm_backward": _ADA_SPATIAL,
            "fixed_backward_inv_n": _FIX_INV_N,
            "fixed_backward_dvar": _FIX_DVAR,
        },
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M18"]},
    },
    "cyd": {
        "answers": {
            "numerical_gradient": _CYD_NUMGRAD,
            "scale_shift_backward": _CYD_SCALE_SHIFT,
            "normalize_backward": _ADA_NORMALIZE,
            "batch_stats_backward": _CYD_STATS,
            "batchnorm_backward": _BEN_BACKWARD,
            "spatial_batchnorm_backward": _CYD_SPATIAL,
            "fixed_backward_dvar": _FIX_DVAR,
        },
        "expect": {
            "full_marks": False,
            "zero": False,
            "diagnoses": ["M14", "M15", "M16", "M19", "M20"],
        },
    },
    "dee": {"answers": {}, "expect": {"full_marks": False, "zero": True, "diagnoses": []}},
}
