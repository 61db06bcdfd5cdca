"""Sample submissions for assignment 04 (BatchNorm in a deep network).

ada: complete and correct, in her own style (a dict for the cache, the layers named her way),
with answers to the written questions.
ben: a buggy sandwich: the forward pass hands ``batchnorm_forward`` a copy of ``bn_param``, so
the network never sees its running statistics (M9).
cyd: several mistakes: the BatchNorm backward pass written out inside the sandwich, with dgamma
and dbeta not summed over the batch (M15) and the path through the mean dropped (M17).
dee: the untouched release notebook.
"""

NOTEBOOK = "experiments.ipynb"

_ADA_FORWARD = '''
def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """x -> affine -> BN -> ReLU; I keep the three caches in a dict."""
    pre, lin = affine_forward(x, w, b)
    normed, bn = batchnorm_forward(pre, gamma, beta, bn_param)
    act, relu = relu_forward(normed)
    return act, {"linear": lin, "batchnorm": bn, "relu": relu}
'''

_ADA_BACKWARD = '''
def affine_bn_relu_backward(dout, cache):
    """Undo the three layers in reverse order."""
    d_normed = relu_backward(dout, cache["relu"])
    d_pre, dgamma, dbeta = batchnorm_backward(d_normed, cache["batchnorm"])
    dx, dw, db = affine_backward(d_pre, cache["linear"])
    return dx, dw, db, dgamma, dbeta
'''

_REF_FORWARD = '''
def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    a, fc_cache = affine_forward(x, w, b)
    y, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(y)
    return out, (fc_cache, bn_cache, relu_cache)
'''

_REF_BACKWARD = '''
def affine_bn_relu_backward(dout, cache):
    fc_cache, bn_cache, relu_cache = cache
    dy = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = batchnorm_backward(dy, bn_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta
'''

_BEN_FORWARD = '''
def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    a, fc_cache = affine_forward(x, w, b)
    params = dict(bn_param)  # don't touch the caller's dict
    y, bn_cache = batchnorm_forward(a, gamma, beta, params)
    out, relu_cache = relu_forward(y)
    return out, (fc_cache, bn_cache, relu_cache)
'''

_CYD_BACKWARD = '''
def affine_bn_relu_backward(dout, cache):
    fc_cache, bn_cache, relu_cache = cache
    dy = relu_backward(dout, relu_cache)
    # BatchNorm's backward pass, written out here to see it all in one place
    x_hat, xmu = bn_cache["x_hat"], bn_cache["xmu"]
    gamma, inv_std = bn_cache["gamma"], bn_cache["inv_std"]
    N = dy.shape[0]
    dbeta = dy
    dgamma = dy * x_hat
    dx_hat = dy * gamma
    dvar = -0.5 * inv_std**3 * (dx_hat * xmu).sum(axis=0)
    da = dx_hat * inv_std + 2.0 * dvar * xmu / N
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta
'''

_ADA_WRITTEN = {
    "answer_weight_scale": (
        "Without BN every layer multiplies the activations by about s*sqrt(50). For s = 1e-3 that "
        "is 0.007 per layer, so the last layers see nothing but zeros and the gradients vanish on "
        "the way back: the loss stays at log 10 and accuracy at 0.1. For s = 1 activations grow "
        "by 7 per layer and the logits explode. BN rescales every layer's output to unit variance "
        "whatever s is, so the signal and the gradients keep their size."
    ),
    "answer_batch_size": (
        "With 5 examples the batch mean and variance are very noisy (the spread plot drops like "
        "1/sqrt(B)), so each example is normalized differently depending on its batch mates. At "
        "test time the running averages replace them, and they do not match what the layers were "
        "trained on, so test accuracy suffers most for small batches."
    ),
    "answer_non_iid": (
        "A batch of one class is centred on that class's mean, which removes what distinguishes "
        "it from the other classes. The running averages at the end of an epoch mostly hold the "
        "last classes' statistics, so test mode normalizes wrongly. Shuffle the data."
    ),
}

STUDENTS = {
    "ada": {
        "answers": {"affine_bn_relu_forward": _ADA_FORWARD,
                    "affine_bn_relu_backward": _ADA_BACKWARD, **_ADA_WRITTEN},
        "expect": {"full_marks": True, "zero": False, "diagnoses": []},
    },
    "ben": {
        "answers": {"affine_bn_relu_forward": _BEN_FORWARD,
                    "affine_bn_relu_backward": _REF_BACKWARD},
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M9"]},
    },
    "cyd": {
        "answers": {"affine_bn_relu_forward": _REF_FORWARD,
                    "affine_bn_relu_backward": _CYD_BACKWARD},
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M15", "M17"]},
    },
    "dee": {"answers": {}, "expect": {"full_marks": False, "zero": True, "diagnoses": []}},
}
