"""course.nets.FullyConnectedNet: initialization, loss, gradients, BatchNorm modes, activations.

Oracles we did not write: centered finite differences of the whole loss
(autograder.reference.numerical_gradient), the
same network built from PyTorch modules (``Linear``, ``BatchNorm1d``, ``cross_entropy``) with its
autograd, the value log(C) of the loss at chance, and invariants (a bias right before BatchNorm
has zero gradient; test-mode scores do not depend on the rest of the batch).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograder import reference as R
from autograder.reference import numerical_gradient as numerical_gradient_array
from course.data import load_digits
from course.gradcheck import rel_error
from course.nets import FullyConnectedNet

# The graded sandwich (affine -> BatchNorm -> ReLU) as the hidden reference computes it; the
# notebook passes the student's version of these two functions in the same way.
BN_LAYER = (R.affine_bn_relu_forward, R.affine_bn_relu_backward)


def make_net(bn: bool, **kw) -> FullyConnectedNet:
    if bn:
        return FullyConnectedNet(normalization="batchnorm", bn_layer=BN_LAYER, **kw)
    return FullyConnectedNet(**kw)


def _small_case(seed, bn, reg):
    """A 3-layer net on a 6 x 5 batch, with non-default gamma and beta under BatchNorm."""
    r = np.random.default_rng(seed)
    N, D, C = 6, 5, 4
    X = r.normal(size=(N, D))
    y = r.integers(0, C, N)
    net = make_net(bn, hidden_dims=[7, 6], input_dim=D, num_classes=C, weight_scale=0.5, reg=reg,
                   seed=seed)
    for k in net.params:
        if k.startswith("gamma"):  # away from 0 and 1; beta small so no unit is dead for all N
            net.params[k] = r.uniform(0.5, 1.5, net.params[k].shape)
        elif k.startswith("beta"):
            net.params[k] = r.uniform(-0.3, 0.3, net.params[k].shape)
    return net, X, y


def _numerical_grads(net, X, y):
    grads = {}
    for k, p in net.params.items():
        grads[k] = numerical_gradient_array(lambda _: np.array(net.loss(X, y)[0]), p, np.array(1.0))
    return grads


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("reg", [0.0, 0.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_full_gradient_without_batchnorm_matches_finite_differences(seed, reg):
    net, X, y = _small_case(seed, bn=False, reg=reg)
    _, grads = net.loss(X, y)
    num = _numerical_grads(net, X, y)
    assert set(grads) == set(net.params) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    for k in net.params:
        assert grads[k].shape == net.params[k].shape, k
        err = rel_error(grads[k], num[k])
        assert err < 1e-6, f"{k}: relative error {err:.2e} against finite differences"


@pytest.mark.parametrize("reg", [0.0, 0.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_full_gradient_with_batchnorm_matches_finite_differences(seed, reg):
    net, X, y = _small_case(seed, bn=True, reg=reg)
    _, grads = net.loss(X, y)
    num = _numerical_grads(net, X, y)
    assert set(grads) == set(net.params) == {
        "W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"}
    for k in net.params:
        assert grads[k].shape == net.params[k].shape, k
        if k in ("b1", "b2"):
            # BatchNorm subtracts the batch mean, which cancels a bias added just before it: its
            # true gradient is 0, so a relative error would only compare rounding noise. Both
            # gradients must be 0 up to rounding (finite differences: ~1e-16 * loss / h).
            assert np.abs(grads[k]).max() < 1e-12, f"{k}: analytic gradient should be 0"
            assert np.abs(num[k]).max() < 1e-9, f"{k}: numerical gradient should be 0"
            continue
        err = rel_error(grads[k], num[k])
        assert err < 1e-6, f"{k}: relative error {err:.2e} against finite differences"


def _torch_net(net: FullyConnectedNet):
    """The same network from PyTorch modules, with a copy of net's parameters."""
    layers = []
    for i in range(1, net.num_layers + 1):
        W, b = net.params[f"W{i}"], net.params[f"b{i}"]
        lin = torch.nn.Linear(*W.shape, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < net.num_layers:
            if net.use_batchnorm:
                bn = torch.nn.BatchNorm1d(W.shape[1], eps=1e-5, momentum=0.1, dtype=torch.float64)
                with torch.no_grad():
                    bn.weight.copy_(torch.from_numpy(net.params[f"gamma{i}"]))
                    bn.bias.copy_(torch.from_numpy(net.params[f"beta{i}"]))
                layers.append(bn)
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("bn", [False, True])
def test_loss_gradients_and_running_stats_match_pytorch(bn):
    net, X, y = _small_case(2, bn=bn, reg=0.3)
    model = _torch_net(net)
    out = model(torch.from_numpy(X))
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    t_loss = F.cross_entropy(out, torch.from_numpy(y)) + 0.5 * 0.3 * sum((w**2).sum() for w in weights)
    t_loss.backward()
    loss, grads = net.loss(X, y)
    assert math.isclose(loss, t_loss.item(), rel_tol=1e-12)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    norms = [m for m in model if isinstance(m, torch.nn.BatchNorm1d)]
    for i, lin in enumerate(linears, start=1):
        np.testing.assert_allclose(grads[f"W{i}"], lin.weight.grad.numpy().T, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(grads[f"b{i}"], lin.bias.grad.numpy(), rtol=1e-9, atol=1e-13)
    for i, norm in enumerate(norms, start=1):
        np.testing.assert_allclose(grads[f"gamma{i}"], norm.weight.grad.numpy(), rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(grads[f"beta{i}"], norm.bias.grad.numpy(), rtol=1e-9, atol=1e-13)
        # one train step: the running statistics moved exactly as PyTorch's did
        np.testing.assert_allclose(net.bn_params[i - 1]["running_mean"], norm.running_mean.numpy(),
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(net.bn_params[i - 1]["running_var"], norm.running_var.numpy(),
                                   rtol=1e-12, atol=1e-15)
    model.eval()  # prediction: BatchNorm uses the running statistics
    with torch.no_grad():
        expected_scores = model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(net.loss(X), expected_scores, rtol=1e-10, atol=1e-12)


def test_regularization_adds_half_reg_sum_w_squared_on_weights_only():
    r = np.random.default_rng(3)
    X, y = r.normal(size=(8, 5)), r.integers(0, 3, 8)
    reg = 0.25
    plain = make_net(True, hidden_dims=[4], input_dim=5, num_classes=3, weight_scale=0.3, seed=3)
    regd = make_net(True, hidden_dims=[4], input_dim=5, num_classes=3, weight_scale=0.3, seed=3,
                    reg=reg)
    loss0, g0 = plain.loss(X, y)
    loss1, g1 = regd.loss(X, y)
    W1, W2 = regd.params["W1"], regd.params["W2"]
    penalty = 0.5 * reg * (np.sum(W1**2) + np.sum(W2**2))
    assert math.isclose(loss1 - loss0, penalty, rel_tol=1e-10)
    for k in g0:
        expected = g0[k] + reg * regd.params[k] if k.startswith("W") else g0[k]
        # biases, gamma and beta are not regularized: their gradients do not change
        np.testing.assert_allclose(g1[k], expected, rtol=1e-12, atol=1e-15, err_msg=k)


# --------------------------------------------------------------------------- initialization
@pytest.mark.parametrize("bn", [False, True])
def test_initial_loss_is_log_c_on_digits(bn):
    data = load_digits()
    X, y = data.X_train[:200], data.y_train[:200]
    net = make_net(bn, hidden_dims=[100, 100, 100], input_dim=64, num_classes=10,
                   weight_scale=1e-3, seed=0)
    loss, _ = net.loss(X, y)
    # weight_scale 1e-3: scores of order 1e-3 (BN) or far smaller (no BN), so every class gets
    # probability 1/C within ~1%
    assert abs(loss - math.log(10)) < 1e-2, loss


def test_parameters_shapes_and_initial_values():
    ws = 0.05
    net = make_net(True, hidden_dims=[100, 80], input_dim=64, num_classes=10, weight_scale=ws,
                   seed=7)
    shapes = {"W1": (64, 100), "b1": (100,), "gamma1": (100,), "beta1": (100,),
              "W2": (100, 80), "b2": (80,), "gamma2": (80,), "beta2": (80,),
              "W3": (80, 10), "b3": (10,)}
    assert {k: v.shape for k, v in net.params.items()} == shapes
    assert net.num_layers == 3
    for k, v in net.params.items():
        assert v.dtype == np.float64, k
        if k.startswith("W"):
            # std of N(0, ws^2) estimated from >= 800 draws: relative standard error <= 2.5%
            assert abs(v.std() / ws - 1) < 0.1, (k, v.std())
            assert abs(v.mean()) < 4 * ws / math.sqrt(v.size), (k, v.mean())
        elif k.startswith("gamma"):
            np.testing.assert_array_equal(v, 1.0)
        else:
            np.testing.assert_array_equal(v, 0.0)
    assert net.bn_params == [{"mode": "train", "eps": 1e-5, "momentum": 0.1}] * 2
    plain = make_net(False, hidden_dims=[100, 80], input_dim=64, num_classes=10, seed=7)
    assert plain.bn_params == [] and not any(k.startswith(("gamma", "beta")) for k in plain.params)


def test_seed_fixes_the_initial_weights():
    a = make_net(False, hidden_dims=[20, 20], input_dim=8, num_classes=3, seed=4)
    b = make_net(False, hidden_dims=[20, 20], input_dim=8, num_classes=3, seed=4)
    c = make_net(False, hidden_dims=[20, 20], input_dim=8, num_classes=3, seed=5)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["W1"], c.params["W1"])


# --------------------------------------------------------------------------- modes, dtype
def test_prediction_uses_running_statistics_and_leaves_them_unchanged():
    r = np.random.default_rng(5)
    X, y = r.normal(2.0, 3.0, size=(40, 6)), r.integers(0, 4, 40)
    net = make_net(True, hidden_dims=[10, 10], input_dim=6, num_classes=4, weight_scale=0.3)
    for _ in range(5):
        net.loss(X, y)
    assert [p["mode"] for p in net.bn_params] == ["train", "train"]
    running = [(p["running_mean"].copy(), p["running_var"].copy()) for p in net.bn_params]
    scores = net.loss(X)
    assert [p["mode"] for p in net.bn_params] == ["test", "test"]
    assert scores.shape == (40, 4)
    # each row's scores do not depend on the rest of the batch, as with running statistics
    np.testing.assert_allclose(net.loss(X[:1]), scores[:1], rtol=1e-12)
    np.testing.assert_allclose(net.loss(X[10:13][::-1]), scores[10:13][::-1], rtol=1e-12)
    for p, (rm, rv) in zip(net.bn_params, running, strict=True):
        np.testing.assert_array_equal(p["running_mean"], rm)
        np.testing.assert_array_equal(p["running_var"], rv)
    net.loss(X[:20], y[:20])  # a train step moves them again
    assert not np.array_equal(net.bn_params[0]["running_mean"], running[0][0])


@pytest.mark.parametrize("bn", [False, True])
def test_float32_is_kept_everywhere(bn):
    r = np.random.default_rng(6)
    X, y = r.normal(size=(10, 6)), r.integers(0, 3, 10)  # float64 input is cast
    net = make_net(bn, hidden_dims=[5, 5], input_dim=6, num_classes=3, dtype=np.float32, reg=0.1)
    assert {v.dtype for v in net.params.values()} == {np.dtype(np.float32)}
    loss, grads = net.loss(X, y)
    assert isinstance(loss, float) and math.isfinite(loss)
    assert {k: g.dtype for k, g in grads.items()} == {k: np.dtype(np.float32) for k in net.params}
    assert net.loss(X).dtype == np.float32
    acts = net.activations(X)
    assert {a.dtype for a in acts["pre"] + acts["post"]} == {np.dtype(np.float32)}


def test_loss_accepts_unflattened_input_and_does_not_modify_it():
    r = np.random.default_rng(8)
    X, y = r.normal(size=(5, 2, 3)), r.integers(0, 3, 5)
    X0 = X.copy()
    net = make_net(True, hidden_dims=[4], input_dim=6, num_classes=3, weight_scale=0.5)
    loss_a, _ = net.loss(X, y)
    np.testing.assert_array_equal(X, X0)
    net2 = make_net(True, hidden_dims=[4], input_dim=6, num_classes=3, weight_scale=0.5)
    loss_b, _ = net2.loss(X.reshape(5, 6), y)
    assert loss_a == loss_b


# --------------------------------------------------------------------------- activations
@pytest.mark.parametrize("bn", [False, True])
def test_activations_shapes_and_relation_to_the_layers(bn):
    r = np.random.default_rng(9)
    X, y = r.normal(size=(30, 6)), r.integers(0, 3, 30)
    net = make_net(bn, hidden_dims=[8, 7, 5], input_dim=6, num_classes=3, weight_scale=0.5)
    net.loss(X, y)  # some running statistics
    for mode in ("test", "train"):
        acts = net.activations(X, mode=mode)
        assert [a.shape for a in acts["pre"]] == [(30, 8), (30, 7), (30, 5)]
        assert [a.shape for a in acts["post"]] == [(30, 8), (30, 7), (30, 5)]
        h = X
        for i, (pre, post) in enumerate(zip(acts["pre"], acts["post"], strict=True), start=1):
            np.testing.assert_allclose(pre, h @ net.params[f"W{i}"] + net.params[f"b{i}"],
                                       rtol=1e-12, atol=1e-12)
            assert (post >= 0).all()
            if not bn:
                np.testing.assert_array_equal(post, np.maximum(pre, 0))
            h = post
        # the last hidden output feeds the output layer: it reproduces the test-mode scores
        if mode == "test":
            np.testing.assert_allclose(h @ net.params["W4"] + net.params["b4"], net.loss(X),
                                       rtol=1e-12, atol=1e-12)


def test_activations_never_touch_running_statistics():
    r = np.random.default_rng(10)
    X, y = r.normal(1.0, 2.0, size=(30, 6)), r.integers(0, 3, 30)
    fresh = make_net(True, hidden_dims=[8, 5], input_dim=6, num_classes=3, weight_scale=0.5)
    fresh.activations(X, mode="train")
    fresh.activations(X, mode="test")
    assert fresh.bn_params == [{"mode": "train", "eps": 1e-5, "momentum": 0.1}] * 2

    net = make_net(True, hidden_dims=[8, 5], input_dim=6, num_classes=3, weight_scale=0.5)
    net.loss(X, y)
    before = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in p.items()}
              for p in net.bn_params]
    train = net.activations(X, mode="train")
    test = net.activations(X, mode="test")
    for p, q in zip(net.bn_params, before, strict=True):
        assert p.keys() == q.keys()
        for k in p:
            np.testing.assert_array_equal(p[k], q[k], err_msg=k)
    # after one step the running statistics are still far from the batch's: the modes differ
    assert not np.allclose(train["post"][0], test["post"][0])
    np.testing.assert_array_equal(train["pre"][0], test["pre"][0])  # the first affine is shared


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"normalization": "layernorm"}, ValueError, "normalization must be None or 'batchnorm'"),
        ({"normalization": "batchnorm"}, ValueError, "needs bn_layer"),
        ({"bn_layer": BN_LAYER}, ValueError, "bn_layer is only used with normalization"),
        ({"normalization": "batchnorm", "bn_layer": (R.affine_bn_relu_forward,)}, ValueError,
         "pair of callables"),
        ({"normalization": "batchnorm", "bn_layer": (R.affine_bn_relu_forward, "backward")}, ValueError,
         "pair of callables"),
        ({"hidden_dims": [10, 0]}, ValueError, r"hidden_dims\[1\] must be an int >= 1"),
        ({"hidden_dims": [10, 2.5]}, TypeError, r"hidden_dims\[1\] must be an int"),
        ({"hidden_dims": "10"}, TypeError, "hidden_dims must be a sequence"),
        ({"hidden_dims": 10}, TypeError, "hidden_dims must be a sequence"),
        ({"input_dim": 0}, ValueError, "input_dim must be an int >= 1"),
        ({"num_classes": 1}, ValueError, "num_classes must be an int >= 2"),
        ({"weight_scale": 0.0}, ValueError, "weight_scale must be > 0"),
        ({"weight_scale": -1e-2}, ValueError, "weight_scale must lie in"),
        ({"weight_scale": "big"}, TypeError, "weight_scale must be a real number"),
        ({"reg": -0.1}, ValueError, "reg must lie in"),
        ({"dtype": np.int64}, ValueError, "dtype must be numpy.float32 or numpy.float64"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, error, match):
    args = {"hidden_dims": [10], "input_dim": 6, "num_classes": 3, **kwargs}
    with pytest.raises(error, match=match):
        FullyConnectedNet(**args)


def test_loss_and_activations_reject_bad_input():
    net = make_net(False, hidden_dims=[4], input_dim=6, num_classes=3)
    X = np.zeros((5, 6))
    with pytest.raises(ValueError, match=r"X must have shape \(N, 6\)"):
        net.loss(np.zeros((5, 7)))
    with pytest.raises(ValueError, match=r"X must have shape \(N, 6\)"):
        net.loss(np.zeros(6))
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        net.loss(X, np.array([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match=r"y must have shape \(5,\)"):
        net.loss(X, np.array([0, 1]))
    with pytest.raises(ValueError, match="mode must be 'test' or 'train'"):
        net.activations(X, mode="eval")


# --------------------------------------------------------------------------- normalization='custom'
def _custom_case(layer, norm_param, seed=3):
    r = np.random.default_rng(seed)
    X, y = r.normal(size=(6, 5)), r.integers(0, 4, 6)
    net = FullyConnectedNet([7, 6], 5, 4, normalization="custom", norm_layer=layer,
                            norm_param=norm_param, weight_scale=0.5, seed=seed)
    for k in net.params:
        if k.startswith(("gamma", "beta")):
            net.params[k] = r.uniform(0.5, 1.5, net.params[k].shape)
    return net, X, y


@pytest.mark.parametrize("layer,norm_param", [
    ((R.layernorm_forward, R.layernorm_backward), None),
    # Batch Renorm's backward holds r and d constant, finite differences would not: running
    # statistics far from the batch's clip r at rmax and d at -dmax, constants near this point.
    # momentum 0 keeps them fixed between the calls.
    ((R.batchrenorm_forward, R.batchrenorm_backward),
     {"mode": "train", "momentum": 0.0, "running_mean": np.full(7, 100.0),
      "running_std": np.full(7, 0.01)}),
], ids=["layernorm", "batchrenorm"])
def test_a_custom_normalization_layer_gets_finite_difference_gradients(layer, norm_param):
    if norm_param is not None:  # hidden widths 7 and 6: one running statistic per unit
        norm_param = dict(norm_param)
    net, X, y = _custom_case(layer, norm_param)
    if norm_param is not None:
        net.bn_params[1].update(running_mean=np.full(6, 100.0), running_std=np.full(6, 0.01))
    _, grads = net.loss(X, y)
    num = _numerical_grads(net, X, y)
    assert set(grads) == set(net.params)
    for k in net.params:
        if k in ("b1", "b2") and layer[0] is R.batchrenorm_forward:  # cancelled by the mean
            assert np.abs(grads[k]).max() < 1e-12 and np.abs(num[k]).max() < 1e-9, k
            continue
        err = rel_error(grads[k], num[k])
        assert err < 1e-6, f"{k}: relative error {err:.2e} against finite differences"


def test_custom_batchnorm_is_the_batchnorm_network():
    bn_param = {"mode": "train", "eps": 1e-5, "momentum": 0.1}
    custom, X, y = _custom_case((R.batchnorm_forward, R.batchnorm_backward), bn_param)
    sandwich = FullyConnectedNet([7, 6], 5, 4, normalization="batchnorm", bn_layer=BN_LAYER,
                                 weight_scale=0.5, seed=3)
    sandwich.params = {k: v.copy() for k, v in custom.params.items()}
    (l1, g1), (l2, g2) = custom.loss(X, y), sandwich.loss(X, y)
    assert l1 == l2 and all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert np.array_equal(custom.loss(X), sandwich.loss(X))  # test mode: running statistics
    assert custom.bn_params[0] is not custom.bn_params[1] and bn_param == {
        "mode": "train", "eps": 1e-5, "momentum": 0.1}, "each layer gets its own copy"


@pytest.mark.parametrize("kwargs,error,match", [
    ({"normalization": "custom"}, ValueError, "norm_layer"),
    ({"normalization": "custom", "norm_layer": (print,)}, ValueError, "pair of callables"),
    ({"normalization": "custom", "norm_layer": (print, print), "norm_param": []}, TypeError,
     "norm_param"),
    ({"norm_layer": (print, print)}, ValueError, "only used with"),
])
def test_custom_normalization_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        FullyConnectedNet([3], 4, 2, **kwargs)
