"""Sample submissions for assignment 04 (BatchNorm in a deep network).

ada: complete and correct, in her own style (a dict for the cache, the layers named her way, a
loop over modes of her own in ``mode_accuracies``), with answers to the written questions.
ben: one mistake: the forward pass hands ``batchnorm_forward`` a copy of ``bn_param``, so the
network never sees its running statistics (M9); his ``mode_accuracies`` is right.
cyd: several mistakes: the BatchNorm backward pass written out inside the sandwich, with dgamma
and dbeta not summed over the batch (M15) and the path through the mean dropped (M17), and a
``mode_accuracies`` that never switches BatchNorm to test mode (M8).
The answers run after the notebook's setup cell, so ``np`` and ``copy`` are available.
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

_ADA_MODES = '''
def mode_accuracies(params, bn_params, X, y, batch_size):
    """Both modes, batch by batch; copies of bn_params so nothing is written back."""
    layers = len(bn_params)
    n = (len(X) // batch_size) * batch_size
    hits = {"train": 0.0, "test": 0.0}
    for mode in hits:
        for s in range(0, n, batch_size):
            h = X[s:s + batch_size]
            for i in range(layers):
                settings = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                            for k, v in bn_params[i].items()}
                settings["mode"] = mode
                h, _ = affine_bn_relu_forward(h, params["W%d" % (i + 1)], params["b%d" % (i + 1)],
                                              params["gamma%d" % (i + 1)], params["beta%d" % (i + 1)],
                                              settings)
            scores = h @ params["W%d" % (layers + 1)] + params["b%d" % (layers + 1)]
            hits[mode] += np.sum(scores.argmax(axis=1) == y[s:s + batch_size])
    return hits["train"] / n, hits["test"] / n
'''

_REF_MODES = '''
def mode_accuracies(params, bn_params, X, y, batch_size):
    L = len(bn_params) + 1
    n = len(y) // batch_size * batch_size

    def scores(xb, mode):
        h = xb
        for i in range(1, L):
            bn = copy.deepcopy(bn_params[i - 1])
            bn["mode"] = mode
            h, _ = affine_bn_relu_forward(h, params[f"W{i}"], params[f"b{i}"],
                                          params[f"gamma{i}"], params[f"beta{i}"], bn)
        return affine_forward(h, params[f"W{L}"], params[f"b{L}"])[0]

    correct = {"train": 0, "test": 0}
    for start in range(0, n, batch_size):
        xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        for mode in correct:
            correct[mode] += int(np.sum(np.argmax(scores(xb, mode), axis=1) == yb))
    return correct["train"] / n, correct["test"] / n
'''

# M8: the copies keep bn_params' own mode ('train'), so "test mode" normalizes with batch statistics
_CYD_MODES = _REF_MODES.replace('            bn["mode"] = mode\n', "")

_ADA_WRITTEN = {
    "answer_weight_scale": (
        "Without BN every layer multiplies the activations by about s*sqrt(50). For s = 1e-3 the "
        "weight gradients are about 1e-15, far below Adam's eps = 1e-8, so each Adam step is about "
        "lr*g/eps: the first layers' weights do not move, only the last biases do, and the output "
        "is the same for every image (accuracy 0.1). For s = 1 the baseline does train (training "
        "accuracy near 1) but with huge logits and a huge loss on its mistakes: it overfits. BN "
        "divides by sqrt(var + eps), which is unit scale only when var >> eps: at s = 1e-4 the "
        "first layer's BN output has std 0.23 and the deeper ones almost 0. It trains anyway "
        "because its gradients (1e-6) are far above Adam's eps, so the first Adam step moves "
        "every weight by about 3e-3, 30 times its size, and every layer is at unit scale after "
        "it. The cost: after one epoch it is at 0.4 instead of 0.9."
    ),
    "answer_batch_size": (
        "In my figure the two modes agree for B = 50 and 200 but differ by more than 0.1 at B = 5 "
        "and 10. In train mode every example is normalized with the mean and variance of its 4 "
        "batch mates, which are very noisy (the spread plot: 0.45 sigma for the mean, about a "
        "whole sigma^2 for the variance at B = 5), and |x_hat| can never exceed 2; test mode uses "
        "the running averages. The network trained at B = 5 learned from these noisy "
        "normalizations, so with the same number of updates it is below the baseline, whose "
        "outputs do not depend on the batch."
    ),
    "answer_health": (
        "(a) The baseline's weight gradients are about 1e-15, far below Adam's eps = 1e-8, so "
        "its steps are about lr*g/eps; with BN they are about 1e-2 in every layer, so every "
        "weight moves by about lr. (b) Baseline: W1 to W3 stay near 1e-7, far below 1e-3, and "
        "do not learn; W4 to W7 jump up at first and then fade. BN: every layer starts near 3, "
        "far above 1e-3, and falls to 2e-2; that is fine because BN does not care about the "
        "scale of W, so big steps just make W bigger and the next steps relatively smaller."
    ),
    "answer_why": (
        "(a) Without BN the input of layer 3's ReLU more than doubles its spread in 20 updates and "
        "its mean moves by about half a std: that is internal covariate shift. With BN the ReLU "
        "sees spread 1 and a mean that hardly moves, but BN's own input still drifts, so BN undoes "
        "the shift rather than preventing it, and the figure does not prove this is why training "
        "is faster. (b) The learning-rate sweep: at 0.1 the baseline is at chance and BN still "
        "trains. Santurkar et al. add noise after BN (more covariate shift) and it still trains; "
        "they explain BN by a smoother loss whose gradients stay predictive, so larger steps work."
    ),
}

STUDENTS = {
    "ada": {
        "answers": {"affine_bn_relu_forward": _ADA_FORWARD,
                    "affine_bn_relu_backward": _ADA_BACKWARD, "mode_accuracies": _ADA_MODES,
                    **_ADA_WRITTEN},
        "expect": {"full_marks": True, "zero": False, "diagnoses": []},
    },
    "ben": {
        "answers": {"affine_bn_relu_forward": _BEN_FORWARD,
                    "affine_bn_relu_backward": _REF_BACKWARD, "mode_accuracies": _REF_MODES},
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M9"]},
    },
    "cyd": {
        "answers": {"affine_bn_relu_forward": _REF_FORWARD,
                    "affine_bn_relu_backward": _CYD_BACKWARD, "mode_accuracies": _CYD_MODES},
        "expect": {"full_marks": False, "zero": False, "diagnoses": ["M15", "M17", "M8"]},
    },
    "dee": {"answers": {}, "expect": {"full_marks": False, "zero": True, "diagnoses": []}},
}
