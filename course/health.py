"""Inside the training of notebook 04's networks: Adam's epsilon, BatchNorm's epsilon, one
layer's input over training (internal covariate shift), and training-health diagnostics.

* :func:`adam_small_weights`: why Adam cannot rescue a baseline with tiny weights (its gradients
  lie far below Adam's eps);
* :func:`bn_output_std` and :func:`one_adam_step`: BatchNorm makes a layer independent of its
  weight scale only while the batch variance is far above BatchNorm's eps, and how one Adam step
  leaves that regime;
* :func:`record_training`: trains both networks step by step and records, at every step, each
  weight matrix's update-to-data ratio (Karpathy, "Building makemore part 3", 2022: about 1e-3
  is healthy), the weight gradients at initialization (for histograms), and the statistics of
  one hidden layer's input over training, the quantity whose change Ioffe & Szegedy (2015,
  Sec. 2) call internal covariate shift.

The BatchNorm functions come from the notebook (the student's or the provided ones), so nothing
here holds the solution of an exercise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from course.experiments import BnLayer, ExperimentConfig, Run, make_net
from course.nets import FullyConnectedNet
from course.solver import UPDATE_RULES, adam

__all__ = ["adam_small_weights", "bn_output_std", "one_adam_step", "Trace", "record_training"]

ADAM_EPS = UPDATE_RULES["adam"][1]["eps"]


def adam_small_weights(run: Run, data, cfg: ExperimentConfig) -> dict[str, np.ndarray]:
    """Why Adam cannot rescue a baseline network with tiny initial weights: per layer, the size
    of the gradients at initialization against Adam's eps, and how far training moved each
    weight matrix and bias.

    Adam's step is ``lr * m_hat / (sqrt(v_hat) + eps)`` (Kingma & Ba 2015, Alg. 1); for a
    gradient g with ``|g| << eps`` this is about ``lr * g / eps``, far below ``lr``.

    Parameters
    ----------
    run : Run
        A trained baseline run (its ``model`` and ``seed``), e.g.
        ``run_at(sweep['baseline'], 1e-3).first``.
    data : dict
        As :func:`digits_data`; the gradients are those of the first ``cfg.batch_size``
        training examples.
    cfg : ExperimentConfig

    Returns
    -------
    dict of ndarray, one entry per affine layer (L = 7)
        ``grad_W``: median |dL/dW_l| at initialization; ``step_W``: the first Adam step's median
        size ``lr * |g| / (|g| + eps)`` (bias correction makes m_hat = g, sqrt(v_hat) = |g|);
        ``rel_change_W``: ||W_l(trained) - W_l(init)|| / ||W_l(init)||; ``change_b``: the
        largest |b_l(trained) - b_l(init)| (biases start at 0); ``eps``: Adam's eps (scalar).
    """
    init = make_net(replace(cfg, seed=run.seed), run.weight_scale, None,
                    input_dim=data["X_train"].shape[1])
    X, y = data["X_train"][:cfg.batch_size], data["y_train"][:cfg.batch_size]
    _, grads = init.loss(X, y)
    eps, lr = ADAM_EPS, cfg.learning_rate
    L = init.num_layers
    g = [np.abs(grads[f"W{i}"]) for i in range(1, L + 1)]
    out = {
        "grad_W": np.array([np.median(a) for a in g]),
        "step_W": np.array([np.median(lr * a / (a + eps)) for a in g]),
        "rel_change_W": np.array([np.linalg.norm(run.model.params[f"W{i}"] - init.params[f"W{i}"])
                                  / np.linalg.norm(init.params[f"W{i}"]) for i in range(1, L + 1)]),
        "change_b": np.array([np.max(np.abs(run.model.params[f"b{i}"])) for i in range(1, L + 1)]),
    }
    out["eps"] = np.float64(eps)
    return out


def bn_output_std(net: FullyConnectedNet, X, batchnorm_forward: Callable) -> dict[str, np.ndarray]:
    """How far each hidden layer's BatchNorm is from unit scale, on one batch ``X``.

    Each hidden layer's affine output ``a`` is normalized by ``batchnorm_forward`` in train mode
    with gamma = 1 and beta = 0 (the values at initialization). Its output has standard deviation
    sqrt(var / (var + eps)) per unit: 1 only when the unit's batch variance is far above eps.

    Parameters
    ----------
    net : FullyConnectedNet
        A network with BatchNorm (its own running statistics are not touched).
    X : ndarray, shape (N, D)
        The batch, N >= 2.
    batchnorm_forward : callable
        ``batchnorm_forward(x, gamma, beta, bn_param) -> (out, cache)`` (the notebook's).

    Returns
    -------
    dict
        ``'affine'`` and ``'batchnorm'``: arrays of shape (L - 1,), per hidden layer the mean over
        its units of the standard deviation over the batch of the affine output and of the
        BatchNorm output.
    """
    pre = net.activations(X, mode="train")["pre"]
    bn = []
    for a in pre:
        ones, zeros = np.ones(a.shape[1]), np.zeros(a.shape[1])
        bn.append(batchnorm_forward(a, ones, zeros, {"mode": "train", "eps": 1e-5})[0])
    return {"affine": np.array([a.std(axis=0).mean() for a in pre]),
            "batchnorm": np.array([b.std(axis=0).mean() for b in bn])}


def one_adam_step(net: FullyConnectedNet, X, y, learning_rate: float) -> FullyConnectedNet:
    """``net`` after one Adam step on the minibatch ``X, y`` (its parameters replaced in place).

    At the first step Adam's bias corrections give m_hat = g and sqrt(v_hat) = |g|, so every
    parameter moves by ``learning_rate * |g| / (|g| + eps)``: about the learning rate whenever
    ``|g| >> eps`` (Kingma & Ba 2015, Alg. 1).

    Returns
    -------
    FullyConnectedNet
        The same network.
    """
    _, grads = net.loss(X, y)
    defaults = UPDATE_RULES["adam"][1]
    for k in net.params:
        net.params[k], _ = adam(net.params[k], grads[k], {**defaults, "learning_rate": learning_rate})
    return net


@dataclass
class Trace:
    """What :func:`record_training` saw of one network, over the seeds.

    Attributes
    ----------
    update_ratio : ndarray, shape (n_seeds, steps, L)
        Per step and weight matrix W_l: std(W_l after the step - W_l before) / std(W_l before),
        the update-to-data ratio (dimensionless).
    grad_init : list of L ndarrays
        |dL/dW_l| at initialization, on the first minibatch, pooled over the seeds.
    probe_steps : ndarray, shape (K,)
        The steps at which the layer's input was measured (0 = initialization).
    input_scale, input_shift : ndarray, shape (n_seeds, K)
        The input of the recorded layer's ReLU, over the probe batch: the median over the
        layer's units of each unit's standard deviation, and of how far each unit's mean moved
        since step 0, in units of its current standard deviation (|mu_t - mu_0| / sigma_t).
    affine_scale, affine_shift : ndarray, shape (n_seeds, K)
        The same for the layer's affine output ``W h + b`` (the ReLU's input without BatchNorm,
        BatchNorm's input with it).
    test_acc : ndarray, shape (n_seeds,)
        Test accuracy of the final networks.
    """

    update_ratio: np.ndarray
    grad_init: list
    probe_steps: np.ndarray
    input_scale: np.ndarray
    input_shift: np.ndarray
    affine_scale: np.ndarray
    affine_shift: np.ndarray
    test_acc: np.ndarray


def _moments(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return v.mean(axis=0), v.std(axis=0)


def _probe(net: FullyConnectedNet, P, layer: int, batchnorm_forward: Callable | None):
    """Per-unit (mean, std) over ``P`` of hidden layer ``layer``'s affine output and ReLU input."""
    a = net.activations(P, mode="train")["pre"][layer - 1]
    if batchnorm_forward is None:
        return _moments(a), _moments(a)
    gamma, beta = net.params[f"gamma{layer}"], net.params[f"beta{layer}"]
    y = batchnorm_forward(a, gamma, beta, {"mode": "train", "eps": 1e-5})[0]
    return _moments(a), _moments(y)


def _summary(moments: list) -> tuple[np.ndarray, np.ndarray]:
    """(median scale, median shift since step 0) at each probe, from per-unit (mean, std)."""
    mu0 = moments[0][0]
    scale = np.array([np.median(sd) for _, sd in moments])
    shift = np.array([np.median(np.abs(mu - mu0) / np.maximum(sd, 1e-300)) for mu, sd in moments])
    return scale, shift


def _record_one(data, cfg: ExperimentConfig, weight_scale: float, bn_layer: BnLayer | None,
                batchnorm_forward: Callable | None, layer: int, probe_every: int):
    """One network, one seed: train ``cfg.record_steps`` Adam steps, recording as it goes."""
    net = make_net(cfg, weight_scale, bn_layer, input_dim=data["X_train"].shape[1])
    opt = {k: {**UPDATE_RULES["adam"][1], "learning_rate": cfg.learning_rate} for k in net.params}
    X, y = data["X_train"], data["y_train"]
    P = data["X_val"][:200]  # the probe: 200 fixed validation images
    rng = np.random.default_rng(cfg.seed)
    n_batches = len(y) // cfg.batch_size
    order = np.array([], dtype=int)
    ratios, probes, steps, grads0 = [], [], [], None
    L = net.num_layers
    for step in range(cfg.record_steps):
        if step % probe_every == 0:
            probes.append(_probe(net, P, layer, batchnorm_forward))
            steps.append(step)
        if len(order) < cfg.batch_size:
            order = rng.permutation(len(y))[:n_batches * cfg.batch_size]
        idx, order = order[:cfg.batch_size], order[cfg.batch_size:]
        _, grads = net.loss(X[idx], y[idx])
        if grads0 is None:
            grads0 = [np.abs(grads[f"W{i}"]).ravel() for i in range(1, L + 1)]
        row = []
        for k in net.params:
            before = net.params[k]
            net.params[k], _ = adam(before, grads[k], opt[k])
            if k.startswith("W"):
                row.append(np.std(net.params[k] - before) / np.std(before))
        ratios.append(row)  # params hold W1 ... WL in this order
    probes.append(_probe(net, P, layer, batchnorm_forward))
    steps.append(cfg.record_steps)
    test_acc = float(np.mean(np.argmax(net.loss(data["X_test"]), axis=1) == data["y_test"]))
    return np.array(ratios), grads0, np.array(steps), probes, test_acc


def record_training(data, cfg: ExperimentConfig, bn_layer: BnLayer, batchnorm_forward: Callable,
                    weight_scale: float, layer: int = 3, probe_every: int = 2) -> dict[str, Trace]:
    """Train the baseline and the BatchNorm network step by step, once per seed, and record
    their training health and one layer's input statistics.

    Each run takes ``cfg.record_steps`` Adam steps (learning rate ``cfg.learning_rate``) on
    shuffled minibatches of ``cfg.batch_size``. Every ``probe_every`` steps, hidden layer
    ``layer`` is run on a fixed probe of 200 validation images (BatchNorm in train mode on the
    probe, as the layer computes in training), and the mean and standard deviation over the
    probe of each of its units are kept.

    Parameters
    ----------
    data : dict
        As :func:`course.experiments.digits_data`.
    cfg : ExperimentConfig
    bn_layer : pair of callables
        The sandwich layer ``(affine_bn_relu_forward, affine_bn_relu_backward)``.
    batchnorm_forward : callable
        The BatchNorm forward pass the sandwich uses, to compute the ReLU's input.
    weight_scale : float
        Standard deviation of the initial weights.
    layer : int
        The hidden layer whose input is recorded, 1 <= layer < L.
    probe_every : int
        Steps between two probes (>= 1).

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: :class:`Trace`.

    Raises
    ------
    ValueError
        If ``layer`` is not a hidden layer or ``probe_every < 1``.
    """
    if not 1 <= layer <= len(cfg.hidden_dims):
        raise ValueError(f"layer must be a hidden layer, in [1, {len(cfg.hidden_dims)}], got {layer}")
    if probe_every < 1:
        raise ValueError(f"probe_every must be >= 1, got {probe_every}")
    out = {}
    for name, sandwich, bn_fwd in (("baseline", None, None), ("batchnorm", bn_layer, batchnorm_forward)):
        seeds = [_record_one(data, replace(cfg, seed=s), weight_scale, sandwich, bn_fwd, layer,
                             probe_every) for s in cfg.seeds]
        aff = [_summary([p[0] for p in probes]) for *_, probes, _ in seeds]
        inp = [_summary([p[1] for p in probes]) for *_, probes, _ in seeds]
        out[name] = Trace(
            update_ratio=np.array([r for r, *_ in seeds]),
            grad_init=[np.concatenate([g[i] for _, g, *_ in seeds]) for i in range(len(seeds[0][1]))],
            probe_steps=seeds[0][2],
            input_scale=np.array([s for s, _ in inp]), input_shift=np.array([h for _, h in inp]),
            affine_scale=np.array([s for s, _ in aff]), affine_shift=np.array([h for _, h in aff]),
            test_acc=np.array([t for *_, t in seeds]))
    return out
