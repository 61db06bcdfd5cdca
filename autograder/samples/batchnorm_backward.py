"""Sample submissions for assignment 03 (the BatchNorm backward pass).

ada: complete and correct, in her own style (the closed form inside ``batchnorm_backward``,
``np.nditer`` in the numerical gradient, ``np.moveaxis`` for the spatial layout).
ben: one typical mistake, x_hat in place of (x - mu) in dvar (M18).
cyd: several mistakes: a one-sided difference that ignores dout (M19, M20), 1/D in the backward
(M16), channels mixed by a bare reshape (M14), and bug 1 left unfixed (M15).
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

_ADA_BACKWARD = '''
def batchnorm_backward(dout, cache):
    """I went straight to the closed form."""
    xh, g, r = cache["x_hat"], cache["gamma"], cache["inv_std"]
    m = dout.shape[0]
    db = np.sum(dout, axis=0)
    dg = np.sum(dout * xh, axis=0)
    dx = g * r * (dout - db / m - xh * dg / m)
    return dx, dg, db
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


_FIX_DGAMMA = _fixed("fixed_backward_dgamma", '''    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = inv_std / N * (N * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, dgamma, dbeta
''')
_FIX_INV_N = _fixed("fixed_backward_inv_n", '''    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = x_hat.shape[0]
    inv_n = 1.0 / x_hat.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * inv_n * (N * dout - dbeta - x_hat * dgamma)
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
    "answer_bug_dgamma": "gamma multiplies every row, so its gradient is the sum over the batch of "
                         "dout_i * x_hat_i; without the sum there is one row per sample, (N, D). dx "
                         "uses gamma, not dgamma, so it still passes.",
    "answer_bug_inv_n": "Dividing by D instead of N scales all of dx by N/D = 1.5, and a constant "
                        "factor k gives relative error (k-1)/(k+1) = 0.2 in every entry. With N = D "
                        "the factor is 1, so the bug is invisible.",
    "answer_bug_dvar": "x_hat is (x - mu)/sqrt(var + eps), so the variance term is divided by the "
                       "std (3 here). When var + eps = 1 the two are equal and the check passes.",
}

# ben: a careful staged backward, except dvar uses x_hat (seed 000's slip).
_BEN_BACKWARD = '''
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
'''

# cyd: one-sided differences without dout; 1/D; bare reshape; bug 1 copied unchanged.
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
_CYD_BACKWARD = '''
def batchnorm_backward(dout, cache):
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N, D = dout.shape
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std / D * (N * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta
'''
_CYD_SPATIAL = '''
def spatial_batchnorm_backward(dout, cache):
    N, C, H, W = dout.shape
    dx, dgamma, dbeta = batchnorm_backward(dout.reshape(-1, C), cache)
    return dx.reshape(N, C, H, W), dgamma, dbeta
'''
_CYD_FIX_DGAMMA = _fixed("fixed_backward_dgamma", '''    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = dout * x_hat
    dx_hat = dout * gamma
    dx = inv_std / N * (N * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, dgamma, dbeta
''')

STUDENTS = {
    "ada": {
        "answers": {
            "numerical_gradient": _ADA_NUMGRAD,
            "batchnorm_backward": _ADA_BACKWARD,
            "batchnorm_backward_alt": _ADA_ALT,
            "spatial_batchnorm_backward": _ADA_SPATIAL,
            "fixed_backward_dgamma": _FIX_DGAMMA,
            "fixed_backward_inv_n": _FIX_INV_N,
            "fixed_backward_dvar": _FIX_DVAR,
            **_ADA_WRITTEN,
        },
        "expect": {"full_marks": True, "zero": False, "diagnoses": []},
    },
    "ben": {
        "answers": {
            "numerical_gradient": _ADA_NUMGRAD,
            "batchnorm_backward": _BEN_BACKWARD,
            "batchnorm_backward_alt": _ADA_ALT,
            "spatial_batchnorm_backward": _ADA_SPATIAL,
            "fixed_backward_dgamma": _FIX_DGAMMA,
            "fixed_backward_inv_n": _FIX_INV_N,
            "fixed_backward_dvar": _FIX_DVAR,
        },
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M18"]},
    },
    "cyd": {
        "answers": {
            "numerical_gradient": _CYD_NUMGRAD,
            "batchnorm_backward": _CYD_BACKWARD,
            "spatial_batchnorm_backward": _CYD_SPATIAL,
            "fixed_backward_dgamma": _CYD_FIX_DGAMMA,
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
