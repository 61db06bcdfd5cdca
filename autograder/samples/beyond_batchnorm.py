"""Sample submissions for assignment 05 (``beyond_batchnorm.ipynb``); see CONTRIBUTING.md.

Each answer is the full source of one answer cell (grade_id = the function's name, or
``answer_<q>`` for a written answer). The cells run after the notebook's setup cell, so ``np``
is available, as it is for a student. ada is right in her own style, ben clips d to [0, dmax]
(M28), cyd takes LayerNorm's statistics over the batch (M22), groups channels with a stride
(M24) and lets the gradient flow through r and d (M27), and dee hands in the notebook untouched.
"""

NOTEBOOK = "beyond_batchnorm.ipynb"

# --------------------------------------------------------------------------- ada: correct, own style
# np.var, keepdims, float64 internally and cast back, einsum; closed forms written her way.
_ADA_LN = '''
def layernorm_forward(x, gamma, beta, ln_param):
    """Per-row normalization of x (N, D); gamma, beta (D,)."""
    if x.ndim != 2 or gamma.shape != (x.shape[1],) or beta.shape != (x.shape[1],):
        raise ValueError(f"x must be (N, D) with gamma and beta (D,), got x {x.shape}, "
                         f"gamma {gamma.shape}")
    eps = ln_param.get("eps", 1e-5)
    xd = x.astype(np.float64)
    mu = xd.mean(axis=1, keepdims=True)
    var = np.var(xd, axis=1, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = (xd - mu) * inv
    out = (x_hat * gamma + beta).astype(x.dtype)
    return out, {"x_hat": x_hat, "gamma": gamma, "inv_std": inv[:, 0]}
'''

_ADA_LN_BACK = '''
def layernorm_backward(dout, cache):
    """Closed form along each row."""
    x_hat, inv = cache["x_hat"], cache["inv_std"][:, None]
    g = dout * cache["gamma"]
    dx = inv * (g - g.mean(axis=1, keepdims=True)
                - x_hat * np.einsum("ij,ij->i", g, x_hat)[:, None] / g.shape[1])
    return dx, np.einsum("ij,ij->j", dout, x_hat), dout.sum(axis=0)
'''

_ADA_GN = '''
def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """GroupNorm on (N, C, H, W) with G groups of consecutive channels."""
    N, C, H, W = x.shape
    if C % G != 0:
        raise ValueError(f"G={G} does not divide C={C}")
    eps = gn_param.get("eps", 1e-5)
    v = x.reshape(N, G, C // G, H, W)
    mu = v.mean(axis=(2, 3, 4), keepdims=True)
    var = v.var(axis=(2, 3, 4), keepdims=True)
    x_hat = ((v - mu) / np.sqrt(var + eps)).reshape(N, C, H, W)
    out = x_hat * gamma[None, :, None, None] + beta[None, :, None, None]
    inv_std = 1 / np.sqrt(var.reshape(N, G) + eps)
    return out.astype(x.dtype), {"x_hat": x_hat, "gamma": gamma, "inv_std": inv_std, "G": G}
'''

_ADA_GN_BACK = '''
def spatial_groupnorm_backward(dout, cache):
    """Within each (sample, group): LayerNorm's closed form."""
    N, C, H, W = dout.shape
    G = cache["G"]
    g = (dout * cache["gamma"][None, :, None, None]).reshape(N, G, -1)
    xh = cache["x_hat"].reshape(N, G, -1)
    inv = cache["inv_std"][..., None]
    dx = inv * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    dgamma = np.einsum("nchw,nchw->c", dout, cache["x_hat"])
    return dx.reshape(N, C, H, W), dgamma, dout.sum(axis=(0, 2, 3))
'''

_ADA_BRN = '''
def batchrenorm_forward(x, gamma, beta, brn_param):
    """Ioffe (2017), Algorithm 1."""
    mode = brn_param["mode"]
    if mode not in ("train", "test"):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    n, d = x.shape
    eps = brn_param.get("eps", 1e-5)
    m = brn_param.get("momentum", 0.01)
    rmax, dmax = brn_param.get("rmax", 3.0), brn_param.get("dmax", 5.0)
    if rmax < 1 or dmax < 0:
        raise ValueError(f"need rmax >= 1 and dmax >= 0, got rmax={rmax}, dmax={dmax}")
    mu_run = brn_param.get("running_mean", np.zeros(d, x.dtype))
    sd_run = brn_param.get("running_std", np.ones(d, x.dtype))
    if mode == "test":
        out = gamma * (x - mu_run) / sd_run + beta
        return out.astype(x.dtype), {"mode": mode}
    if n < 2:
        raise ValueError("train mode needs at least two samples")
    mu = x.mean(axis=0)
    sd = np.sqrt(np.var(x, axis=0) + eps)
    r = np.minimum(np.maximum(sd / sd_run, 1 / rmax), rmax)
    dd = np.minimum(np.maximum((mu - mu_run) / sd_run, -dmax), dmax)
    x_bn = (x - mu) / sd
    x_hat = x_bn * r + dd
    brn_param["running_mean"] = mu_run + m * (mu - mu_run)
    brn_param["running_std"] = sd_run + m * (sd - sd_run)
    out = (gamma * x_hat + beta).astype(x.dtype)
    return out, {"x_bn": x_bn, "x_hat": x_hat, "r": r, "d": dd, "inv_std": 1 / sd,
                 "gamma": gamma, "mode": mode}
'''

_ADA_BRN_BACK = '''
def batchrenorm_backward(dout, cache):
    """BatchNorm's closed form on dout * r; r and d are constants."""
    x_bn, inv, r = cache["x_bn"], cache["inv_std"], cache["r"]
    n = dout.shape[0]
    g = dout * cache["gamma"] * r
    dx = (inv / n) * (n * g - g.sum(0) - x_bn * (g * x_bn).sum(0))
    return dx, (dout * cache["x_hat"]).sum(0), dout.sum(0)
'''

_ADA_WRITTEN = {
    "answer_small_batches": (
        "At B = 2 BatchNorm gets about 0.58 while LayerNorm, GroupNorm and no normalization get "
        "0.93 to 0.95; Batch Renorm gets 0.70, better than BatchNorm for every seed but far from "
        "recovering most of the loss. From B = 4 on the ranges overlap, so I claim nothing there. "
        "With two examples BatchNorm outputs +-1 in every unit and its dx is almost 0 (1e-4 of "
        "dout against 1 at N = 4), so the hidden layers do not learn. Batch Renorm's backward is "
        "BatchNorm's times r, so it cannot fix that; its r and d only make training and test mode "
        "agree (gap 0), which helps the last layer. The gap is not the whole story."
    ),
    "answer_non_iid": (
        "A single-class batch is centred on its class mean, so BatchNorm removes what tells the "
        "class apart, and test mode uses all-class running statistics that no batch used: "
        "chance. Batch Renorm's forward pass uses the running statistics, so it keeps some class "
        "information, but its gradient still sums to zero over the batch and cannot move the "
        "whole class. LayerNorm and GroupNorm normalize each example on its own; they lose a bit, "
        "like the network without normalization, because each step pulls towards one class."
    ),
}

_ADA = {"layernorm_forward": _ADA_LN, "layernorm_backward": _ADA_LN_BACK,
        "spatial_groupnorm_forward": _ADA_GN, "spatial_groupnorm_backward": _ADA_GN_BACK,
        "batchrenorm_forward": _ADA_BRN, "batchrenorm_backward": _ADA_BRN_BACK, **_ADA_WRITTEN}

# --------------------------------------------------------------------------- ben: one mistake (M28)
_BEN_BRN = _ADA_BRN.replace("np.maximum((mu - mu_run) / sd_run, -dmax)",
                            "np.maximum((mu - mu_run) / sd_run, 0.0)")  # d clipped to [0, dmax]

# --------------------------------------------------------------------------- cyd: several mistakes
_CYD_LN = _ADA_LN.replace("xd.mean(axis=1, keepdims=True)", "xd.mean(axis=0, keepdims=True)").replace(
    "np.var(xd, axis=1, keepdims=True)", "np.var(xd, axis=0, keepdims=True)").replace(
    "inv[:, 0]", "inv[0]")  # M22: BatchNorm's axis

_CYD_GN = '''
def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """GroupNorm: channel c goes to group c % G."""
    N, C, H, W = x.shape
    if C % G:
        raise ValueError("G must divide C")
    eps = gn_param.get("eps", 1e-5)
    order = np.argsort(np.arange(C) % G, kind="stable")  # M24: strided groups
    v = x[:, order].reshape(N, G, -1)
    x_hat = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + eps)
    x_hat = x_hat.reshape(N, C, H, W)[:, np.argsort(order)]
    return gamma[:, None, None] * x_hat + beta[:, None, None], {"x_hat": x_hat}
'''

_CYD_BRN_BACK = '''
def batchrenorm_backward(dout, cache):
    """Chain rule through everything, r and d included."""
    x_bn, inv, r = cache["x_bn"], cache["inv_std"], cache["r"]
    n = dout.shape[0]
    g0 = dout * cache["gamma"]
    g = g0 * r
    dx = (inv / n) * (n * g - g.sum(0) - x_bn * (g * x_bn).sum(0))
    # M27: r = sigma_B / running_std and d = (mu_B - running_mean) / running_std get gradients
    dx += ((g0 * x_bn).sum(0) * x_bn + g0.sum(0)) / (n * cache["running_std"])
    return dx, (dout * cache["x_hat"]).sum(0), dout.sum(0)
'''

STUDENTS = {
    "ada": {"answers": dict(_ADA), "expect": {"full_marks": True, "zero": False, "diagnoses": []}},
    "ben": {
        "answers": {**_ADA, "batchrenorm_forward": _BEN_BRN},
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M28"]},
    },
    "cyd": {
        "answers": {**_ADA, "layernorm_forward": _CYD_LN, "spatial_groupnorm_forward": _CYD_GN,
                    "batchrenorm_backward": _CYD_BRN_BACK,
                    "answer_non_iid": "BatchNorm is bad with one class."},
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M22", "M24", "M27"]},
    },
    "dee": {"answers": {}, "expect": {"full_marks": False, "zero": True, "diagnoses": []}},
}
