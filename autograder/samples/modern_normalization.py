"""Sample submissions for assignment 06 (``modern_normalization.ipynb``); see CONTRIBUTING.md.

Each answer is the full source of one answer cell (grade_id = the function's name, or
``answer_<q>`` for a written answer). The cells run after the notebook's setup cell, so ``np``
is available, as it is for a student. ada is right in her own style; ben subtracts the mean in
RMSNorm (M33), which his residual block calls: the block is not charged again (error carried
forward); cyd computes float16 in float16 (M35), takes the pre-norm skip after the norm (M36),
drops the skip connection's gradient (M38) and forgets to fold the bias (M39); dee hands in the
notebook untouched.
"""

NOTEBOOK = "modern_normalization.ipynb"

# --------------------------------------------------------------------------- ada: correct, own style
# float64 inside and cast back (float16 too), einsum, keepdims; her block calls her RMSNorm.
_ADA_RMS = '''
def rmsnorm_forward(x, gamma, rms_param):
    """x / sqrt(mean(x^2) + eps) * gamma over the last axis."""
    x = np.asarray(x)
    if gamma.shape != (x.shape[-1],):
        raise ValueError(f"gamma must have shape ({x.shape[-1]},), got {gamma.shape}")
    eps = rms_param.get("eps", 1e-6)
    xd = x.astype(np.float64)  # float16 squares overflow; float64 is safe for every dtype
    inv = 1.0 / np.sqrt(np.einsum("...j,...j->...", xd, xd) / xd.shape[-1] + eps)
    x_hat = xd * inv[..., None]
    return (x_hat * gamma).astype(x.dtype), {"x_hat": x_hat, "inv_rms": inv, "gamma": gamma}
'''

_ADA_RMS_BACK = '''
def rmsnorm_backward(dout, cache):
    """No mean term: dx = r * (g - x_hat * <g, x_hat> / D)."""
    x_hat, r = cache["x_hat"], cache["inv_rms"][..., None]
    g = dout * cache["gamma"]
    D = x_hat.shape[-1]
    dx = r * (g - x_hat * np.einsum("...j,...j->...", g, x_hat)[..., None] / D)
    dgamma = (dout * x_hat).reshape(-1, D).sum(axis=0)
    return dx.astype(dout.dtype), dgamma
'''

_ADA_BLOCK = '''
def residual_block_forward(x, w1, b1, w2, b2, norm_param, placement):
    """pre: x + f(norm(x)); post: norm(x + f(x)); f = relu(z w1 + b1) w2 + b2."""
    if placement not in ("pre", "post"):
        raise ValueError(f"placement must be 'pre' or 'post', not {placement!r}")
    if w1.shape[0] != x.shape[1] or w2.shape != (w1.shape[1], x.shape[1]):
        raise ValueError(f"w1 {w1.shape} and w2 {w2.shape} do not fit x {x.shape}")
    p = {"eps": norm_param.get("eps", 1e-6)}
    cache = {"placement": placement, "x": x, "w1": w1, "w2": w2}
    cache["z"] = x
    if placement == "pre":
        cache["z"], cache["norm_cache"] = rmsnorm_forward(x, norm_param["gamma"], p)
    cache["h"] = cache["z"] @ w1 + b1
    cache["a"] = np.where(cache["h"] > 0, cache["h"], 0.0).astype(x.dtype)
    s = x + cache["a"] @ w2 + b2
    if placement == "pre":
        return s, cache
    out, cache["norm_cache"] = rmsnorm_forward(s, norm_param["gamma"], p)
    return out, cache
'''

_ADA_BLOCK_BACK = '''
def residual_block_backward(dout, cache):
    """Skip path plus the branch, in reverse."""
    pre = cache["placement"] == "pre"
    if pre:
        d_sum = dout
    else:
        d_sum, dgamma = rmsnorm_backward(dout, cache["norm_cache"])
    d_h = np.where(cache["h"] > 0, d_sum @ cache["w2"].T, 0.0)
    d_z = d_h @ cache["w1"].T
    if pre:
        d_z, dgamma = rmsnorm_backward(d_z, cache["norm_cache"])
    grads = (d_sum + d_z, cache["z"].T @ d_h, d_h.sum(0), cache["a"].T @ d_sum, d_sum.sum(0), dgamma)
    return grads
'''

_ADA_FOLD = '''
def fold_batchnorm(w, b, gamma, beta, running_mean, running_var, eps):
    """y = s * (x w + b - mu) + beta with s = gamma / sqrt(var + eps) per unit."""
    if w.ndim != 2 or any(np.shape(v) != (w.shape[1],)
                          for v in (b, gamma, beta, running_mean, running_var)):
        raise ValueError(f"w must be (D, M) and every vector (M,), got w {np.shape(w)}, "
                         f"running_var {np.shape(running_var)}")
    s = gamma / np.sqrt(running_var + eps)
    return (w * s[None, :]).astype(w.dtype), (beta + s * (b - running_mean)).astype(w.dtype)
'''

_ADA_WRITTEN = {
    "answer_warmup": (
        "Post-norm without warm-up stays at chance (test accuracy 0.10-0.19, loss about 2.1) for "
        "every seed, with warm-up it reaches 0.77-0.84; pre-norm reaches 0.93-0.95 either way. At "
        "initialization post-norm's gradients grow towards the output (last block 1.7-6 times the "
        "first at 16 blocks) and pre-norm's do not. In post-norm every path, the skip included, "
        "goes through the norms above it, so Adam's full-size first steps on the large gradients "
        "near the output wreck the stream before the lower blocks learn; warm-up keeps those "
        "first steps small. Pre-norm keeps an identity path and each branch sees a normalized "
        "input, so the peak rate is safe at once. One small MLP, one rate, 3 seeds: nothing "
        "about Transformers or other rates."
    ),
}

_ADA = {"rmsnorm_forward": _ADA_RMS, "rmsnorm_backward": _ADA_RMS_BACK,
        "residual_block_forward": _ADA_BLOCK, "residual_block_backward": _ADA_BLOCK_BACK,
        "fold_batchnorm": _ADA_FOLD, **_ADA_WRITTEN}

# --------------------------------------------------------------------------- ben: one mistake (M33)
# The mean subtracted in RMSNorm (LayerNorm's centering). His block calls his RMSNorm: it is
# graded on his RMSNorm, so the mistake costs points once.
_BEN_RMS = _ADA_RMS.replace(
    '    xd = x.astype(np.float64)  # float16 squares overflow; float64 is safe for every dtype\n',
    '    xd = x.astype(np.float64)\n    xd = xd - xd.mean(axis=-1, keepdims=True)\n')

# --------------------------------------------------------------------------- cyd: several mistakes
_CYD_RMS = _ADA_RMS.replace(
    '    xd = x.astype(np.float64)  # float16 squares overflow; float64 is safe for every dtype\n',
    '    xd = x if x.dtype != np.float16 else x.copy()  # M35: float16 stays float16\n')
_CYD_BLOCK = _ADA_BLOCK.replace(
    '    s = x + cache["a"] @ w2 + b2\n',
    '    s = (cache["z"] if placement == "pre" else x) + cache["a"] @ w2 + b2  # M36\n')
_CYD_BLOCK_BACK = _ADA_BLOCK_BACK.replace("(d_sum + d_z, ", "(d_z, ")  # M38: no skip gradient
_CYD_FOLD = _ADA_FOLD.replace("(beta + s * (b - running_mean))", "(beta - s * running_mean)")  # M39

STUDENTS = {
    "ada": {"answers": dict(_ADA), "expect": {"full_marks": True, "zero": False, "diagnoses": []}},
    "ben": {
        "answers": {**_ADA, "rmsnorm_forward": _BEN_RMS},
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M33"]},
    },
    "cyd": {
        "answers": {**_ADA, "rmsnorm_forward": _CYD_RMS, "residual_block_forward": _CYD_BLOCK,
                    "residual_block_backward": _CYD_BLOCK_BACK, "fold_batchnorm": _CYD_FOLD,
                    "answer_warmup": "Post-norm needs warm-up because it is unstable."},
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M35", "M36", "M38", "M39"]},
    },
    "dee": {"answers": {}, "expect": {"full_marks": False, "zero": True, "diagnoses": []}},
}
