"""Sample submissions for assignment 02 (``batchnorm_forward.ipynb``); see CONTRIBUTING.md.

Each answer is the full source of one answer cell (grade_id = the function's name, or
``answer_<q>`` for a written answer). The cells run after the notebook's setup cell, so ``np``
is available, as it is for a student.
"""

NOTEBOOK = "batchnorm_forward.ipynb"

# --------------------------------------------------------------------------- ada: correct, own style
_ADA_BATCH_STATS = '''
def batch_stats(x):
    """Column means and biased variances of x (N, D) -> two arrays of shape (D,)."""
    n = x.shape[0]
    mu = x.sum(axis=0) / n
    centred = x - mu
    return mu, (centred * centred).sum(axis=0) / n
'''

_ADA_NORMALIZE = '''
def normalize(x, mean, var, eps):
    """(x - mean) / sqrt(var + eps), shapes (N, D), (D,), (D,) -> (N, D)."""
    inv = 1.0 / np.sqrt(var + eps)
    return (x - mean) * inv
'''

_ADA_SCALE_SHIFT = '''
def scale_shift(x_hat, gamma, beta):
    """Per-feature affine map, (N, D) -> (N, D)."""
    return np.add(np.multiply(x_hat, gamma), beta)
'''

# Ada computes in float64 and casts back, stores new running arrays of the dtype the old ones
# had (never updating the caller's arrays in place: M32) and keeps a lean cache.
_ADA_BN = '''
def batchnorm_forward(x, gamma, beta, bn_param):
    """BatchNorm1d forward. x (N, D), gamma/beta (D,), bn_param dict -> out (N, D), cache."""
    mode = bn_param.get("mode")
    if mode not in {"train", "test"}:
        raise ValueError(f"mode must be 'train' or 'test', not {mode!r}")
    n, d = x.shape
    eps = bn_param.get("eps", 1e-5)
    m = bn_param.get("momentum", 0.1)
    if "running_mean" not in bn_param:
        bn_param["running_mean"] = np.zeros(d, dtype=x.dtype)
    if "running_var" not in bn_param:
        bn_param["running_var"] = np.ones(d, dtype=x.dtype)
    xd = x.astype(np.float64)
    if mode == "train":
        if n == 1:
            raise ValueError("need at least two samples per feature in train mode")
        mu = xd.mean(axis=0)
        var = xd.var(axis=0)
        rm, rv = bn_param["running_mean"], bn_param["running_var"]
        bn_param["running_mean"] = ((1 - m) * rm + m * mu).astype(rm.dtype)
        bn_param["running_var"] = ((1 - m) * rv + m * var * n / (n - 1)).astype(rv.dtype)
    else:
        mu = np.asarray(bn_param["running_mean"], dtype=np.float64)
        var = np.asarray(bn_param["running_var"], dtype=np.float64)
    x_hat = (xd - mu) / np.sqrt(var + eps)
    out = (gamma * x_hat + beta).astype(x.dtype)
    return out, {"x_hat": x_hat, "gamma": gamma, "inv_std": 1 / np.sqrt(var + eps)}
'''

_ADA_SPATIAL = '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """BatchNorm2d forward: x (N, C, H, W), gamma/beta (C,) -> out (N, C, H, W), cache."""
    n, c, h, w = x.shape
    rows = np.moveaxis(x, 1, -1).reshape(-1, c)
    out_rows, cache = batchnorm_forward(rows, gamma, beta, bn_param)
    return np.moveaxis(out_rows.reshape(n, h, w, c), -1, 1), cache
'''

_ADA_WRITTEN = """
With batch statistics at test time the output for one example would depend on which other
examples happen to share its batch, so the same image could get different predictions, and
the prediction would not be a deterministic function of the input. With a single test sample
the batch variance is 0 and the mean is the sample itself, so x_hat would be 0 for every input:
the layer would output beta whatever the input. The running averages estimate the statistics
of the whole training population, which is what the later layers were trained to expect.
"""

# --------------------------------------------------------------------------- ben: one mistake (M7)
_BEN_BN = '''
def batchnorm_forward(x, gamma, beta, bn_param):
    """BatchNorm forward; updates the running statistics in train mode."""
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.1)
    D = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.ones(D, dtype=x.dtype))
    if mode == "train":
        if x.shape[0] < 2:
            raise ValueError("train mode needs N >= 2")
        mean, var = batch_stats(x)
        x_hat = normalize(x, mean, var, eps)
        # the variance used for normalizing is reused for the running average (M7)
        bn_param["running_mean"] = (1 - momentum) * running_mean + momentum * mean
        bn_param["running_var"] = (1 - momentum) * running_var + momentum * var
    elif mode == "test":
        x_hat = normalize(x, running_mean, running_var, eps)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    out = scale_shift(x_hat, gamma, beta)
    return out, {"x_hat": x_hat, "gamma": gamma}
'''

_BEN_BATCH_STATS = '''
def batch_stats(x):
    """Per-feature mean and biased variance, each (D,)."""
    mean = np.mean(x, axis=0)
    var = np.mean((x - mean) ** 2, axis=0)
    return mean, var
'''

_BEN_NORMALIZE = '''
def normalize(x, mean, var, eps):
    """x_hat (N, D)."""
    return (x - mean) / np.sqrt(var + eps)
'''

_BEN_SCALE_SHIFT = '''
def scale_shift(x_hat, gamma, beta):
    """out (N, D)."""
    return gamma * x_hat + beta
'''

_BEN_SPATIAL = '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Per-channel BN via the (N*H*W, C) view."""
    N, C, H, W = x.shape
    out, cache = batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, C), gamma, beta, bn_param)
    return out.reshape(N, H, W, C).transpose(0, 3, 1, 2), cache
'''

# --------------------------------------------------------------------------- cyd: several mistakes
_CYD_BATCH_STATS = '''
def batch_stats(x):
    """Mean and variance per feature."""
    return x.mean(axis=0), x.var(axis=0, ddof=1)  # M1: sample variance
'''

_CYD_BN = '''
def batchnorm_forward(x, gamma, beta, bn_param):
    """BatchNorm forward."""
    mode = bn_param["mode"]
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.1)
    D = x.shape[1]
    rm = bn_param.get("running_mean", np.zeros(D))
    rv = bn_param.get("running_var", np.ones(D))
    if mode == "train":
        mu = x.mean(axis=0)
        var = x.var(axis=0)
        x_hat = (x - mu) / np.sqrt(var + eps)
        # M6: the Keras/CS231n convention, momentum weighs the old value
        bn_param["running_mean"] = momentum * rm + (1 - momentum) * mu
        bn_param["running_var"] = momentum * rv + (1 - momentum) * x.var(axis=0, ddof=1)
    elif mode == "test":
        x_hat = (x - rm) / np.sqrt(rv + eps)
    else:
        raise ValueError(mode)
    out = gamma * x + beta  # M11: should be x_hat
    return out, (x, x_hat)
'''

_CYD_SPATIAL = '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Spatial BN."""
    N, C, H, W = x.shape
    rows = x.reshape(-1, C)  # M14: channels are not last
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.1)
    mu = rows.mean(axis=0)
    var = rows.var(axis=0)
    if bn_param["mode"] == "train":
        bn_param["running_mean"] = (1 - momentum) * bn_param.get("running_mean", 0.0) + momentum * mu
        bn_param["running_var"] = ((1 - momentum) * bn_param.get("running_var", 1.0)
                                   + momentum * rows.var(axis=0, ddof=1))
    else:
        mu, var = bn_param["running_mean"], bn_param["running_var"]
    out = gamma * (rows - mu) / np.sqrt(var + eps) + beta
    return out.reshape(N, C, H, W), None
'''

_CYD_WRITTEN = "Test batches are smaller so the statistics are worse."

STUDENTS = {
    "ada": {
        "answers": {
            "batch_stats": _ADA_BATCH_STATS,
            "normalize": _ADA_NORMALIZE,
            "scale_shift": _ADA_SCALE_SHIFT,
            "batchnorm_forward": _ADA_BN,
            "spatial_batchnorm_forward": _ADA_SPATIAL,
            "answer_test_mode": _ADA_WRITTEN,
        },
        "expect": {"full_marks": True, "zero": False, "diagnoses": []},
    },
    "ben": {
        "answers": {
            "batch_stats": _BEN_BATCH_STATS,
            "normalize": _BEN_NORMALIZE,
            "scale_shift": _BEN_SCALE_SHIFT,
            "batchnorm_forward": _BEN_BN,
            "spatial_batchnorm_forward": _BEN_SPATIAL,
            "answer_test_mode": _ADA_WRITTEN.replace("deterministic", "fixed"),
        },
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M7"]},
    },
    "cyd": {
        "answers": {
            "batch_stats": _CYD_BATCH_STATS,
            "normalize": _BEN_NORMALIZE,
            "scale_shift": _BEN_SCALE_SHIFT,
            "batchnorm_forward": _CYD_BN,
            "spatial_batchnorm_forward": _CYD_SPATIAL,
            "answer_test_mode": _CYD_WRITTEN,
        },
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M1", "M6", "M11", "M14"]},
    },
    "dee": {"answers": {}, "expect": {"full_marks": False, "zero": True, "diagnoses": []}},
}
