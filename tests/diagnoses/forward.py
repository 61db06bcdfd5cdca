"""Fixtures for notebook 02 (BatchNorm forward): batch_stats, normalize, scale_shift,
batchnorm_forward, spatial_batchnorm_forward.

Sample students of ``autograder/samples/batchnorm_forward.py`` are reused where they hold exactly
one mistake or a correct variant; the rest are written here, one mistake each.
"""

from __future__ import annotations

from autograder.samples import batchnorm_forward as samples
from diagnoses import Fixture, alternative, mistake, uncatalogued

_ANSWERS = {sid: s["answers"] for sid, s in samples.STUDENTS.items()}

_NO_EPS = ("without eps a zero variance divides by zero (M5) and a small one is off (M3 missing):"
           " one line of code, two symptoms")

# The skeleton shared by the batchnorm_forward mistakes below, as a student lays it out; each
# fixture changes the lines where its mistake is.
_BN_HEAD = '''
def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param["mode"]
    if mode not in ("train", "test"):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    N, D = x.shape
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.1)
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.ones(D, dtype=x.dtype))
    if mode == "train" and N < 2:
        raise ValueError("train mode needs at least two samples")
'''


def _bn(body: str) -> str:
    return _BN_HEAD + body


_BN_UPDATE = '''
        bn_param["running_mean"] = (1 - momentum) * running_mean + momentum * mean
        bn_param["running_var"] = (1 - momentum) * running_var + momentum * var * N / (N - 1)
'''

# Spatial BatchNorm written directly on (N, C, H, W), without reshaping; the mistakes change it.
_SP_HEAD = '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    N, C, H, W = x.shape
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.1)
    rm = bn_param.get("running_mean", np.zeros(C, dtype=x.dtype))
    rv = bn_param.get("running_var", np.ones(C, dtype=x.dtype))
    g = gamma.reshape(1, C, 1, 1)
    b = beta.reshape(1, C, 1, 1)
    M = N * H * W
'''


def _sp(body: str) -> str:
    return _SP_HEAD + body


_SP_TRAIN = '''
    if bn_param["mode"] == "train":
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * mean
        bn_param["running_var"] = (1 - momentum) * rv + momentum * var * M / (M - 1)
    else:
        mean, var = rm, rv
    mu, v = mean.reshape(1, C, 1, 1), var.reshape(1, C, 1, 1)
'''

MISTAKES: list[Fixture] = [
    # ------------------------------------------------------------------ batch_stats
    mistake("batch_stats", "M1", "sample cyd: np.var ddof=1", _ANSWERS["cyd"]["batch_stats"]),
    mistake("batch_stats", "M2", "statistics per row", '''
def batch_stats(x):
    mean = np.mean(x, axis=1)
    var = np.mean((x - mean[:, None]) ** 2, axis=1)
    return mean, var
'''),
    mistake("batch_stats", "M4", "one pass over sums of x and x**2", '''
def batch_stats(x):
    n = x.shape[0]
    s1 = x.sum(axis=0)
    s2 = (x * x).sum(axis=0)
    mean = s1 / n
    return mean, s2 / n - mean**2
'''),
    mistake("batch_stats", "M10", "x centred in place", '''
def batch_stats(x):
    mean = x.mean(axis=0)
    x -= mean
    return mean, (x**2).mean(axis=0)
'''),
    # ------------------------------------------------------------------ normalize
    mistake("normalize", "M3", "eps outside the square root", '''
def normalize(x, mean, var, eps):
    return (x - mean) / (np.sqrt(var) + eps)
'''),
    mistake("normalize", "M5", "no eps at all", '''
def normalize(x, mean, var, eps):
    std = np.sqrt(var)
    return (x - mean) / std
''', also=("M3",), why=_NO_EPS),
    mistake("normalize", "M10", "x normalized in place", '''
def normalize(x, mean, var, eps):
    x -= mean
    x /= np.sqrt(var + eps)
    return x
'''),
    mistake("normalize", "M12", "numerator squared", '''
def normalize(x, mean, var, eps):
    return (x - mean)**2 / np.sqrt(var + eps)
'''),
    # ------------------------------------------------------------------ scale_shift
    mistake("scale_shift", "M10", "x_hat scaled in place", '''
def scale_shift(x_hat, gamma, beta):
    x_hat *= gamma
    x_hat += beta
    return x_hat
'''),
    # ------------------------------------------------------------------ batchnorm_forward
    mistake("batchnorm_forward", "M1", "np.var ddof=1 for the batch", _bn('''
    if mode == "train":
        mean = x.mean(axis=0)
        var = x.var(axis=0, ddof=1)
        bn_param["running_mean"] = (1 - momentum) * running_mean + momentum * mean
        bn_param["running_var"] = (1 - momentum) * running_var + momentum * var
    else:
        mean, var = running_mean, running_var
    out = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return out, (x, mean, var, eps)
''')),
    mistake("batchnorm_forward", "M2", "statistics per sample", _bn('''
    if mode == "train":
        mean = x.mean(axis=1, keepdims=True)
        var = x.var(axis=1, keepdims=True)
        bn_param["running_mean"] = (1 - momentum) * running_mean + momentum * x.mean(axis=0)
        bn_param["running_var"] = ((1 - momentum) * running_var
                                   + momentum * x.var(axis=0, ddof=1))
    else:
        mean, var = running_mean, running_var
    out = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return out, None
''')),
    mistake("batchnorm_forward", "M3", "std + eps", _bn('''
    if mode == "train":
        mean, var = batch_stats(x)
''' + _BN_UPDATE + '''
    else:
        mean, var = running_mean, running_var
    x_hat = (x - mean) / (np.sqrt(var) + eps)
    return gamma * x_hat + beta, {"x_hat": x_hat}
''')),
    mistake("batchnorm_forward", "M3", "default eps 1e-8", _bn('''
    eps = bn_param.get("eps", 1e-8)
    if mode == "train":
        mean, var = batch_stats(x)
''' + _BN_UPDATE + '''
    else:
        mean, var = running_mean, running_var
    x_hat = normalize(x, mean, var, eps)
    return scale_shift(x_hat, gamma, beta), {"x_hat": x_hat}
''')),
    mistake("batchnorm_forward", "M4", "one-pass variance", _bn('''
    if mode == "train":
        mean = x.mean(axis=0)
        var = (x**2).mean(axis=0) - mean**2
''' + _BN_UPDATE + '''
    else:
        mean, var = running_mean, running_var
    x_hat = normalize(x, mean, var, eps)
    return scale_shift(x_hat, gamma, beta), {"x_hat": x_hat}
''')),
    mistake("batchnorm_forward", "M5", "divides by sqrt(var)", _bn('''
    if mode == "train":
        mean, var = batch_stats(x)
''' + _BN_UPDATE + '''
    else:
        mean, var = running_mean, running_var
    x_hat = (x - mean) / np.sqrt(var)
    return gamma * x_hat + beta, {"x_hat": x_hat}
'''), also=("M3",), why=_NO_EPS),
    mistake("batchnorm_forward", "M6", "Keras momentum", _bn('''
    if mode == "train":
        mean, var = batch_stats(x)
        bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mean
        bn_param["running_var"] = momentum * running_var + (1 - momentum) * var * N / (N - 1)
    else:
        mean, var = running_mean, running_var
    x_hat = normalize(x, mean, var, eps)
    return scale_shift(x_hat, gamma, beta), {"x_hat": x_hat}
''')),
    mistake("batchnorm_forward", "M7", "sample ben: biased running_var", _ANSWERS["ben"]["batchnorm_forward"]),
    mistake("batchnorm_forward", "M8", "test mode normalizes with the test batch", _bn('''
    mean, var = batch_stats(x)
    if mode == "train":
''' + _BN_UPDATE + '''
    x_hat = normalize(x, mean, var, eps)
    return scale_shift(x_hat, gamma, beta), {"x_hat": x_hat}
''')),
    mistake("batchnorm_forward", "M8", "train mode normalizes with the running statistics", _bn('''
    if mode == "train":
        mean, var = batch_stats(x)
''' + _BN_UPDATE + '''
    x_hat = normalize(x, running_mean, running_var, eps)
    return scale_shift(x_hat, gamma, beta), {"x_hat": x_hat}
''')),
    mistake("batchnorm_forward", "M9", "bn_param rebound to a new dict", _bn('''
    if mode == "train":
        mean, var = batch_stats(x)
        bn_param = dict(bn_param)
''' + _BN_UPDATE + '''
    else:
        mean, var = running_mean, running_var
    x_hat = normalize(x, mean, var, eps)
    return scale_shift(x_hat, gamma, beta), {"x_hat": x_hat}
''')),
    mistake("batchnorm_forward", "M10", "x centred in place", _bn('''
    if mode == "train":
        mean, var = batch_stats(x)
''' + _BN_UPDATE + '''
    else:
        mean, var = running_mean, running_var
    x -= mean
    x /= np.sqrt(var + eps)
    return gamma * x + beta, {"x_hat": x}
''')),
    mistake("batchnorm_forward", "M32", "running statistics updated with += and *=", _bn('''
    if mode == "train":
        mean, var = batch_stats(x)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * N / (N - 1)
        bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    else:
        mean, var = running_mean, running_var
    x_hat = normalize(x, mean, var, eps)
    return scale_shift(x_hat, gamma, beta), {"x_hat": x_hat}
''')),
    mistake("batchnorm_forward", "M11", "gamma * x + beta", _bn('''
    if mode == "train":
        mean, var = batch_stats(x)
''' + _BN_UPDATE + '''
    else:
        mean, var = running_mean, running_var
    x_hat = normalize(x, mean, var, eps)
    return gamma * x + beta, {"x_hat": x_hat}
''')),
    mistake("batchnorm_forward", "M12", "numerator squared", _bn('''
    if mode == "train":
        mean, var = batch_stats(x)
''' + _BN_UPDATE + '''
    else:
        mean, var = running_mean, running_var
    x_hat = (x - mean) ** 2 / np.sqrt(var + eps)
    return gamma * x_hat + beta, {"x_hat": x_hat}
''')),
    # ------------------------------------------------------------------ spatial_batchnorm_forward
    mistake("spatial_batchnorm_forward", "M1", "ddof=1 per channel", _sp('''
    if bn_param["mode"] == "train":
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3), ddof=1)
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * mean
        bn_param["running_var"] = (1 - momentum) * rv + momentum * var
    else:
        mean, var = rm, rv
    mu, v = mean.reshape(1, C, 1, 1), var.reshape(1, C, 1, 1)
    return g * (x - mu) / np.sqrt(v + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M2", "statistics per image and channel", _sp('''
    mu = x.mean(axis=(2, 3), keepdims=True)
    v = x.var(axis=(2, 3), keepdims=True)
    if bn_param["mode"] == "train":
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * x.mean(axis=(0, 2, 3))
        bn_param["running_var"] = ((1 - momentum) * rv
                                   + momentum * x.var(axis=(0, 2, 3)) * M / (M - 1))
    else:
        mu, v = rm.reshape(1, C, 1, 1), rv.reshape(1, C, 1, 1)
    return g * (x - mu) / np.sqrt(v + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M3", "eps outside the square root",
            _sp(_SP_TRAIN + '''
    return g * (x - mu) / (np.sqrt(v) + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M4", "one-pass variance per channel", _sp('''
    if bn_param["mode"] == "train":
        mean = x.mean(axis=(0, 2, 3))
        var = (x**2).mean(axis=(0, 2, 3)) - mean**2
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * mean
        bn_param["running_var"] = (1 - momentum) * rv + momentum * var * M / (M - 1)
    else:
        mean, var = rm, rv
    mu, v = mean.reshape(1, C, 1, 1), var.reshape(1, C, 1, 1)
    return g * (x - mu) / np.sqrt(v + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M5", "divides by sqrt(var)", _sp(_SP_TRAIN + '''
    return g * (x - mu) / np.sqrt(v) + b, None
'''), also=("M3",), why=_NO_EPS),
    mistake("spatial_batchnorm_forward", "M6", "Keras momentum per channel", _sp('''
    if bn_param["mode"] == "train":
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        bn_param["running_mean"] = momentum * rm + (1 - momentum) * mean
        bn_param["running_var"] = momentum * rv + (1 - momentum) * var * M / (M - 1)
    else:
        mean, var = rm, rv
    mu, v = mean.reshape(1, C, 1, 1), var.reshape(1, C, 1, 1)
    return g * (x - mu) / np.sqrt(v + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M7", "biased running_var per channel", _sp('''
    if bn_param["mode"] == "train":
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * mean
        bn_param["running_var"] = (1 - momentum) * rv + momentum * var
    else:
        mean, var = rm, rv
    mu, v = mean.reshape(1, C, 1, 1), var.reshape(1, C, 1, 1)
    return g * (x - mu) / np.sqrt(v + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M8", "test mode uses the batch statistics", _sp('''
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    if bn_param["mode"] == "train":
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * mean
        bn_param["running_var"] = (1 - momentum) * rv + momentum * var * M / (M - 1)
    mu, v = mean.reshape(1, C, 1, 1), var.reshape(1, C, 1, 1)
    return g * (x - mu) / np.sqrt(v + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M8", "train mode uses the running statistics", _sp('''
    if bn_param["mode"] == "train":
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * mean
        bn_param["running_var"] = (1 - momentum) * rv + momentum * var * M / (M - 1)
    mu, v = rm.reshape(1, C, 1, 1), rv.reshape(1, C, 1, 1)
    return g * (x - mu) / np.sqrt(v + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M9", "batchnorm_forward gets a copy of bn_param", '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    N, C, H, W = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(-1, C)
    out, cache = batchnorm_forward(rows, gamma, beta, bn_param.copy())
    return out.reshape(N, H, W, C).transpose(0, 3, 1, 2), cache
'''),
    mistake("spatial_batchnorm_forward", "M10", "x centred in place", _sp(_SP_TRAIN + '''
    x -= mu
    x /= np.sqrt(v + eps)
    return g * x + b, None
''')),
    mistake("spatial_batchnorm_forward", "M11", "gamma * x + beta", _sp(_SP_TRAIN + '''
    x_hat = (x - mu) / np.sqrt(v + eps)
    return g * x + b, x_hat
''')),
    mistake("spatial_batchnorm_forward", "M12", "numerator squared", _sp(_SP_TRAIN + '''
    return g * (x - mu) ** 2 / np.sqrt(v + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M13", "flattened to (N, C*H*W), gamma repeated", '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    N, C, H, W = x.shape
    flat = x.reshape(N, C * H * W)
    out, cache = batchnorm_forward(flat, np.repeat(gamma, H * W), np.repeat(beta, H * W),
                                   bn_param)
    return out.reshape(N, C, H, W), cache
'''),
    mistake("spatial_batchnorm_forward", "M13", "mean over the batch axis only", _sp('''
    if bn_param["mode"] == "train":
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        bn_param["running_mean"] = (1 - momentum) * rm + momentum * mean
        bn_param["running_var"] = (1 - momentum) * rv + momentum * x.var(axis=0, ddof=1)
    else:
        mean, var = rm, rv
    return g * (x - mean) / np.sqrt(var + eps) + b, None
''')),
    mistake("spatial_batchnorm_forward", "M14", "sample cyd: reshape(-1, C)",
            _ANSWERS["cyd"]["spatial_batchnorm_forward"]),
    mistake("spatial_batchnorm_forward", "M14", "right rows, reshaped straight back", '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    N, C, H, W = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(-1, C)
    out, cache = batchnorm_forward(rows, gamma, beta, bn_param)
    return out.reshape(N, C, H, W), cache
'''),
]

# ------------------------------------------------------------------------------ alternatives
ALTERNATIVES: list[Fixture] = [
    alternative("batch_stats", "sample ada: sums / n", _ANSWERS["ada"]["batch_stats"]),
    alternative("batch_stats", "np.var", '''
def batch_stats(x):
    return np.mean(x, axis=0), np.var(x, axis=0)
'''),
    alternative("batch_stats", "einsum, keepdims", '''
def batch_stats(x):
    mu = x.mean(axis=0, keepdims=True)
    d = x - mu
    return mu[0], np.einsum("nd,nd->d", d, d) / x.shape[0]
'''),
    alternative("batch_stats", "python loop over features", '''
def batch_stats(x):
    n, d = x.shape
    mean = np.empty(d, dtype=x.dtype)
    var = np.empty(d, dtype=x.dtype)
    for j in range(d):
        col = x[:, j]
        mean[j] = col.sum() / n
        var[j] = ((col - mean[j]) ** 2).sum() / n
    return mean, var
'''),
    alternative("normalize", "sample ada: multiply by 1/std", _ANSWERS["ada"]["normalize"]),
    alternative("normalize", "power -0.5", '''
def normalize(x, mean, var, eps):
    return (x - mean) * (var + eps) ** -0.5
'''),
    alternative("normalize", "in-place ops on its own copy", '''
def normalize(x, mean, var, eps):
    out = x.copy()
    out -= mean
    out /= np.sqrt(var + eps)
    return out
'''),
    alternative("scale_shift", "sample ada: np.multiply/np.add", _ANSWERS["ada"]["scale_shift"]),
    alternative("scale_shift", "einsum", '''
def scale_shift(x_hat, gamma, beta):
    return np.einsum("nd,d->nd", x_hat, gamma) + beta
'''),
    alternative("scale_shift", "in-place on the product", '''
def scale_shift(x_hat, gamma, beta):
    out = x_hat * gamma
    out += beta
    return out
'''),
    alternative("batchnorm_forward", "sample ada: float64 inside, lean cache",
                _ANSWERS["ada"]["batchnorm_forward"]),
    alternative("batchnorm_forward", "float32 throughout, tuple cache with inv_std", '''
def batchnorm_forward(x, gamma, beta, bn_param):
    if bn_param["mode"] not in ("train", "test"):
        raise ValueError("bn_param['mode'] must be 'train' or 'test'")
    n, d = x.shape
    eps = x.dtype.type(bn_param.get("eps", 1e-5))
    mom = x.dtype.type(bn_param.get("momentum", 0.1))
    rm = np.asarray(bn_param.get("running_mean", np.zeros(d)), dtype=x.dtype)
    rv = np.asarray(bn_param.get("running_var", np.ones(d)), dtype=x.dtype)
    if bn_param["mode"] == "train":
        if n < 2:
            raise ValueError("a batch of one sample has no variance")
        mu = x.sum(axis=0) / x.dtype.type(n)
        xc = x - mu
        var = (xc * xc).sum(axis=0) / x.dtype.type(n)
        bn_param["running_mean"] = (1 - mom) * rm + mom * mu
        bn_param["running_var"] = (1 - mom) * rv + mom * var * x.dtype.type(n / (n - 1))
    else:
        xc = x - rm
        var = rv
    inv_std = 1 / np.sqrt(var + eps)
    y = xc * inv_std
    return gamma * y + beta, (y, gamma, inv_std)
'''),
    alternative("batchnorm_forward", "helper functions, dict cache with other keys", '''
def _moments(a):
    m = a.mean(axis=0)
    return m, np.var(a, axis=0)


def _update(old, new, weight):
    return (1.0 - weight) * old + weight * new


def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param.get("mode")
    if mode != "train" and mode != "test":
        raise ValueError(f"bad mode {mode}")
    n_samples, n_features = x.shape
    eps = bn_param.get("eps", 1e-5)
    w = bn_param.get("momentum", 0.1)
    old_mean = bn_param.get("running_mean", np.zeros(n_features))
    old_var = bn_param.get("running_var", np.ones(n_features))
    if mode == "train":
        if n_samples == 1:
            raise ValueError("need two samples")
        centre, spread = _moments(x)
        bn_param["running_mean"] = _update(old_mean, centre, w)
        bn_param["running_var"] = _update(old_var, spread * n_samples / (n_samples - 1), w)
    else:
        centre, spread = old_mean, old_var
    z = (x - centre) / np.sqrt(spread + eps)
    y = (gamma * z + beta).astype(x.dtype)
    return y, {"z": z, "scale": gamma, "istd": 1 / np.sqrt(spread + eps)}
'''),
    alternative("batchnorm_forward", "in-place running updates, own copies, sum/N", '''
def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param["mode"]
    if mode not in ("train", "test"):
        raise ValueError(mode)
    N, D = x.shape
    eps, m = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.1)
    bn_param.setdefault("running_mean", np.zeros(D, dtype=x.dtype))
    bn_param.setdefault("running_var", np.ones(D, dtype=x.dtype))
    out = x.copy()
    if mode == "train":
        if N == 1:
            raise ValueError("N = 1")
        mean = out.sum(axis=0) / N
        out -= mean
        var = (out**2).sum(axis=0) / N
        bn_param["running_mean"] = bn_param["running_mean"] * (1 - m) + mean * m
        bn_param["running_var"] = bn_param["running_var"] * (1 - m) + var * (m * N / (N - 1))
    else:
        out -= bn_param["running_mean"]
        var = bn_param["running_var"]
    out /= np.sqrt(var + eps)
    out *= gamma
    out += beta
    return out, None
'''),
    alternative("spatial_batchnorm_forward", "sample ada: moveaxis",
                _ANSWERS["ada"]["spatial_batchnorm_forward"]),
    alternative("spatial_batchnorm_forward", "per-channel axes (0, 2, 3), no reshape",
                _sp(_SP_TRAIN + '''
    return g * (x - mu) / np.sqrt(v + eps) + b, {"x": x, "mean": mean, "var": var}
''')),
    alternative("spatial_batchnorm_forward", "transpose(1, 0, 2, 3) to (C, N*H*W)", '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    N, C, H, W = x.shape
    cols = x.transpose(1, 0, 2, 3).reshape(C, -1)          # one row per channel
    out_t, cache = batchnorm_forward(cols.T, gamma, beta, bn_param)
    out = out_t.T.reshape(C, N, H, W).transpose(1, 0, 2, 3)
    return out, cache
'''),
    alternative("spatial_batchnorm_forward", "einsum statistics, float32 kept", '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    N, C, H, W = x.shape
    M = N * H * W
    eps, m = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.1)
    if bn_param["mode"] == "train":
        mean = np.einsum("nchw->c", x) / M
        d = x - mean[:, None, None]
        var = np.einsum("nchw,nchw->c", d, d) / M
        rm = bn_param.get("running_mean", np.zeros(C))
        rv = bn_param.get("running_var", np.ones(C))
        bn_param["running_mean"] = (1 - m) * rm + m * mean
        bn_param["running_var"] = (1 - m) * rv + m * var * M / (M - 1)
    else:
        mean, var = bn_param["running_mean"], bn_param["running_var"]
        d = x - mean[:, None, None]
    y = d / np.sqrt(var[:, None, None] + eps) * gamma[:, None, None] + beta[:, None, None]
    return y.astype(x.dtype), None
'''),
]

# ------------------------------------------------------------------------------ other mistakes
UNCATALOGUED: list[Fixture] = [
    uncatalogued("scale_shift", "gamma and beta swapped", '''
def scale_shift(x_hat, gamma, beta):
    return beta * x_hat + gamma
'''),
    uncatalogued("spatial_batchnorm_forward", "gamma not reshaped to (1, C, 1, 1)", '''
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    N, C, H, W = x.shape
    eps, m = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.1)
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    if bn_param["mode"] == "train":
        M = N * H * W
        rm = bn_param.get("running_mean", np.zeros(C))
        rv = bn_param.get("running_var", np.ones(C))
        bn_param["running_mean"] = (1 - m) * rm + m * mean.ravel()
        bn_param["running_var"] = (1 - m) * rv + m * var.ravel() * M / (M - 1)
    else:
        mean = bn_param["running_mean"].reshape(1, C, 1, 1)
        var = bn_param["running_var"].reshape(1, C, 1, 1)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta, None
'''),
]
