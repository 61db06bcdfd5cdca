"""The experiments of notebook 04: BatchNorm in a deep network on the digits data.

Each experiment is a function that trains networks with :class:`course.nets.FullyConnectedNet`
and :class:`course.solver.Solver` and returns plain results; the figures are drawn from those
results by :mod:`course.experiment_plots`. The notebook passes in the BatchNorm sandwich layer to
use (the student's own or the provided one) and, for the train/test-mode gap, the student's own
measuring function, so nothing here contains the solution of an exercise.

All runs share one data split (``course.data.load_digits``), standardized with the training
set's statistics (scikit-learn's ``StandardScaler``), and every random draw is seeded: the same
configuration gives the same numbers.

The sizes come from :func:`config`. The full configuration is what a student runs (well under a
minute and a half on one core); the reduced one is what ``nbgrader autograde`` runs (nbgrader sets
the ``NBGRADER_EXECUTION`` environment variable), so that grading stays fast. The graded
functions never depend on it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.preprocessing import StandardScaler

from course.data import load_digits
from course.nets import FullyConnectedNet
from course.solver import Solver, TrainingDiverged

__all__ = [
    "ExperimentConfig", "config", "running_under_nbgrader", "digits_data", "Run", "make_net",
    "train", "weight_scale_sweep", "run_at", "adam_small_weights", "single_class_batches",
    "single_class_experiment", "batch_statistics_spread", "batch_size_sweep", "mode_gaps",
    "learning_rate_sweep",
]

BnLayer = tuple[Callable, Callable]


@dataclass(frozen=True)
class ExperimentConfig:
    """Sizes of the experiments.

    Attributes
    ----------
    hidden_dims : tuple of int
        Hidden layer widths of every network (6 hidden layers, 7 affine layers).
    weight_scales : tuple of float
        Standard deviations of the initial weights for the weight-scale sweep (log-spaced; must
        hold 1e-3, the scale of the histograms, and ``batch_size_weight_scale``).
    epochs : int
        Epochs per run of the weight-scale sweep.
    batch_size : int
        Minibatch size of the weight-scale sweep and the learning-rate sweep.
    single_class_batch_size, single_class_epochs : int
        Batch size and epochs of the single-class-batch runs.
    batch_sizes : tuple of int
        Batch sizes of the batch-size experiment.
    batch_size_updates : int
        Updates (minibatch steps) per run of the batch-size experiment, the same for every
        batch size, so that batch size is not confounded with the number of steps.
    batch_size_weight_scale : float
        Weight scale of the batch-size, single-class and learning-rate experiments (one at which
        both networks train).
    learning_rate : float
        Adam's learning rate (Kingma & Ba 2015, arXiv:1412.6980) for every run but the sweep.
    learning_rates : tuple of float
        Adam's learning rates of the learning-rate sweep.
    lr_epochs : int
        Epochs per run of the learning-rate sweep.
    spread_batches : int
        Batches resampled per batch size for the spread of the batch statistics.
    seed : int
        Seed of the weights and of the minibatch order.
    """

    hidden_dims: tuple[int, ...] = (100,) * 6
    weight_scales: tuple[float, ...] = tuple(np.logspace(-4, 0, 9))
    epochs: int = 8
    batch_size: int = 50
    single_class_batch_size: int = 50
    single_class_epochs: int = 8
    batch_sizes: tuple[int, ...] = (5, 10, 50, 200)
    batch_size_updates: int = 300
    batch_size_weight_scale: float = 0.1
    learning_rate: float = 3e-3
    learning_rates: tuple[float, ...] = (1e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    lr_epochs: int = 4
    spread_batches: int = 4000
    seed: int = 0


def running_under_nbgrader() -> bool:
    """True while nbgrader executes the notebook (``autograde`` or ``validate``).

    nbgrader sets the environment variable ``NBGRADER_EXECUTION`` to ``'autograde'`` or
    ``'validate'`` in the kernels it starts (nbgrader docs, "Autograding resources").
    """
    return bool(os.environ.get("NBGRADER_EXECUTION"))


#: What the reduced configuration changes, for the notebook to print.
REDUCED = ("4 weight scales instead of 9 and 1 epoch instead of 8; single-class batches of 10 "
           "for 2 epochs instead of batches of 50 for 8; 20 updates per batch size instead of "
           "300; 2 learning rates instead of 5, for 1 epoch instead of 4; 400 resampled batches "
           "instead of 4000")


def config(reduced: bool | None = None) -> ExperimentConfig:
    """The full configuration, or the reduced one for grading.

    Parameters
    ----------
    reduced : bool, optional
        Default: :func:`running_under_nbgrader`. The reduced sweeps keep every experiment and
        every batch size but shrink them as :data:`REDUCED` says.

    Returns
    -------
    ExperimentConfig
    """
    if reduced is None:
        reduced = running_under_nbgrader()
    if not reduced:
        return ExperimentConfig()
    return ExperimentConfig(weight_scales=(1e-4, 1e-3, 1e-1, 1.0), epochs=1,
                            single_class_batch_size=10, single_class_epochs=2,
                            batch_size_updates=20, learning_rates=(1e-3, 1e-1), lr_epochs=1,
                            spread_batches=400)


def digits_data() -> dict[str, np.ndarray]:
    """The digits split of :func:`course.data.load_digits`, standardized on the training set.

    Returns
    -------
    dict
        ``X_train`` (1077, 64), ``X_val`` (360, 64), ``X_test`` (360, 64), float64, each pixel
        standardized with the training mean and standard deviation (``StandardScaler``; pixels
        that are constant in the training set keep scale 1); ``y_train``, ``y_val``, ``y_test``
        int64 labels 0-9.
    """
    split = load_digits()
    scaler = StandardScaler().fit(split.X_train)
    return {"X_train": scaler.transform(split.X_train), "y_train": split.y_train,
            "X_val": scaler.transform(split.X_val), "y_val": split.y_val,
            "X_test": scaler.transform(split.X_test), "y_test": split.y_test}


@dataclass
class Run:
    """One training run and its histories.

    Attributes
    ----------
    batchnorm : bool
    weight_scale : float
    batch_size : int
    learning_rate : float
    loss_history : list of float
        Training loss per iteration (the first one is the loss at initialization).
    train_acc_history, val_acc_history : list of float
        Accuracy after each epoch (test mode).
    best_train_acc, best_val_acc : float
    final_loss : float
        Mean loss over the last epoch's iterations (nan if the run diverged).
    diverged : bool
        Whether training stopped on a nan/inf loss (:class:`course.solver.TrainingDiverged`).
    model : FullyConnectedNet
        The network after training (its last parameters).
    """

    batchnorm: bool
    weight_scale: float
    batch_size: int
    learning_rate: float = 0.0
    loss_history: list[float] = field(default_factory=list)
    train_acc_history: list[float] = field(default_factory=list)
    val_acc_history: list[float] = field(default_factory=list)
    best_train_acc: float = 0.0
    best_val_acc: float = 0.0
    final_loss: float = float("nan")
    diverged: bool = False
    model: FullyConnectedNet | None = None

    @property
    def updates(self) -> int:
        """Number of minibatch steps taken."""
        return len(self.loss_history)

    @property
    def initial_loss(self) -> float:
        """Training loss of the first minibatch, before any update (nan if there is none)."""
        return self.loss_history[0] if self.loss_history else math.nan


def make_net(cfg: ExperimentConfig, weight_scale: float, bn_layer: BnLayer | None,
             input_dim: int = 64, num_classes: int = 10) -> FullyConnectedNet:
    """The experiments' network: BatchNorm exactly when ``bn_layer`` is given."""
    return FullyConnectedNet(list(cfg.hidden_dims), input_dim, num_classes,
                             normalization="batchnorm" if bn_layer else None,
                             weight_scale=weight_scale, seed=cfg.seed, bn_layer=bn_layer)


def train(data, cfg: ExperimentConfig, *, weight_scale: float, bn_layer: BnLayer | None = None,
          batch_size: int | None = None, epochs: int | None = None, updates: int | None = None,
          learning_rate: float | None = None, shuffle: bool | str = True,
          eval_samples: int | None = 1000) -> Run:
    """Train one network with Adam; a diverging run is recorded, not raised.

    Parameters
    ----------
    data : dict
        As returned by :func:`digits_data` (or :func:`single_class_batches`).
    cfg : ExperimentConfig
    weight_scale : float
        > 0.
    bn_layer : pair of callables, optional
        ``(affine_bn_relu_forward, affine_bn_relu_backward)``; None trains the baseline.
    batch_size, epochs, learning_rate : optional
        Default ``cfg.batch_size``, ``cfg.epochs`` and ``cfg.learning_rate``.
    updates : int, optional
        Train for exactly this many minibatch steps instead of ``epochs`` epochs.
    shuffle : bool or 'batches'
        As :class:`course.solver.Solver`: ``'batches'`` keeps the data's consecutive minibatches
        and shuffles only their order (for :func:`single_class_batches`).
    eval_samples : int or None
        The accuracies after each epoch are measured on this many training and validation
        examples (a fixed random subset; None: all).

    Returns
    -------
    Run

    Raises
    ------
    TypeError, ValueError
        From :class:`FullyConnectedNet` and :class:`Solver` for invalid arguments.
    """
    batch_size = cfg.batch_size if batch_size is None else batch_size
    learning_rate = cfg.learning_rate if learning_rate is None else learning_rate
    per_epoch = len(data["y_train"]) // batch_size
    if updates is not None:
        epochs = max(1, math.ceil(updates / per_epoch))
    epochs = cfg.epochs if epochs is None else epochs
    model = make_net(cfg, weight_scale, bn_layer, input_dim=data["X_train"].shape[1])
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": learning_rate},
                    batch_size=batch_size, num_epochs=epochs, seed=cfg.seed, shuffle=shuffle,
                    max_iterations=updates, num_train_samples=eval_samples,
                    num_val_samples=eval_samples)
    run = Run(batchnorm=bn_layer is not None, weight_scale=weight_scale, batch_size=batch_size,
              learning_rate=learning_rate, model=model)
    try:
        solver.train()
    except TrainingDiverged as exc:
        solver = exc.solver
        run.diverged = True
    run.loss_history = list(solver.loss_history)
    run.train_acc_history = list(solver.train_acc_history)
    run.val_acc_history = list(solver.val_acc_history)
    run.best_train_acc, run.best_val_acc = solver.best_train_acc, solver.best_val_acc
    if not run.diverged:
        run.final_loss = float(np.mean(run.loss_history[-min(per_epoch, run.updates):]))
    return run


def weight_scale_sweep(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, list[Run]]:
    """Train the baseline and the BatchNorm network at every weight scale of ``cfg``.

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: lists of :class:`Run`, in the order of
        ``cfg.weight_scales``.
    """
    return {"baseline": [train(data, cfg, weight_scale=s) for s in cfg.weight_scales],
            "batchnorm": [train(data, cfg, weight_scale=s, bn_layer=bn_layer)
                          for s in cfg.weight_scales]}


def run_at(runs: Sequence[Run], weight_scale: float) -> Run:
    """The run of ``runs`` whose weight scale is closest to ``weight_scale`` (in log scale)."""
    if not runs:
        raise ValueError("runs is empty")
    return min(runs, key=lambda r: abs(math.log(r.weight_scale / weight_scale)))


def adam_small_weights(run: Run, data, cfg: ExperimentConfig) -> dict[str, np.ndarray]:
    """Why Adam cannot rescue a baseline network with tiny initial weights: per layer, the size
    of the gradients at initialization against Adam's eps, and how far training moved each
    weight matrix and bias.

    Adam's step is ``lr * m_hat / (sqrt(v_hat) + eps)`` (Kingma & Ba 2015, Alg. 1); for a
    gradient g with ``|g| << eps`` this is about ``lr * g / eps``, far below ``lr``.

    Parameters
    ----------
    run : Run
        A trained baseline run (its ``model``), e.g. ``run_at(sweep['baseline'], 1e-3)``.
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
    init = make_net(cfg, run.weight_scale, None, input_dim=data["X_train"].shape[1])
    X, y = data["X_train"][:cfg.batch_size], data["y_train"][:cfg.batch_size]
    _, grads = init.loss(X, y)
    eps, lr = 1e-8, cfg.learning_rate
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


def single_class_batches(data, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A copy of ``data`` whose training set is cut into single-class minibatches.

    Each class's training examples are shuffled (seeded) and cut into consecutive batches of
    ``batch_size``; a class's last partial batch is dropped, so that every batch holds exactly
    one class. The batches are then laid out one after another in a random (seeded) order.
    Trained with ``Solver(shuffle='batches')``, every minibatch is one of these and their order
    changes every epoch: the batches are random in order but not i.i.d. inside.

    Parameters
    ----------
    data : dict
        With ``X_train``, ``y_train`` (other entries are passed through unchanged).
    batch_size : int
        >= 2, at most the size of the smallest class.
    seed : int

    Returns
    -------
    dict
        ``X_train``, ``y_train`` of ``n_batches * batch_size`` rows, grouped by batch.

    Raises
    ------
    ValueError
        If ``batch_size`` is out of range.
    """
    y = np.asarray(data["y_train"])
    classes, counts = np.unique(y, return_counts=True)
    if not 2 <= batch_size <= counts.min():
        raise ValueError(f"batch_size must be in [2, {counts.min()}] (the smallest class), "
                         f"got {batch_size}")
    r = np.random.default_rng(seed)
    batches = []
    for c in classes:
        idx = r.permutation(np.flatnonzero(y == c))
        batches += [idx[k * batch_size:(k + 1) * batch_size] for k in range(len(idx) // batch_size)]
    order = np.concatenate([batches[k] for k in r.permutation(len(batches))])
    return {**data, "X_train": data["X_train"][order], "y_train": y[order]}


def single_class_experiment(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, Run]:
    """Both networks trained on single-class batches in random order (:func:`single_class_batches`,
    weight scale ``cfg.batch_size_weight_scale``, batch size ``cfg.single_class_batch_size``,
    ``cfg.single_class_epochs`` epochs).

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: :class:`Run`.
    """
    bs = cfg.single_class_batch_size
    single = single_class_batches(data, bs, cfg.seed)
    return {name: train(single, cfg, weight_scale=cfg.batch_size_weight_scale, bn_layer=layer,
                        shuffle="batches", batch_size=bs, epochs=cfg.single_class_epochs)
            for name, layer in (("baseline", None), ("batchnorm", bn_layer))}


def batch_statistics_spread(X, w, b, batch_sizes: Sequence[int], unit: int = 0,
                            n_batches: int = 4000, seed: int = 0) -> dict:
    """How much BatchNorm's batch statistics of one unit vary from batch to batch.

    The unit's affine output ``a = (X @ w + b)[:, unit]`` over all of ``X`` is the population,
    with mean mu, standard deviation sigma and kurtosis kappa = E[(a - mu)^4] / sigma^4 (3 for a
    normal distribution). For each batch size B, ``n_batches`` batches of B values are drawn
    with replacement (i.i.d. from the population), and for each the batch mean and the biased
    batch variance are computed (Ioffe & Szegedy 2015, Alg. 1). Sampling theory predicts
    std(batch mean) = sigma / sqrt(B) and, for large B, std(batch variance) =
    sigma^2 * sqrt((kappa - 1) / B) (the variance of a sample variance).

    Parameters
    ----------
    X : ndarray of float, shape (N, D)
    w : ndarray of float, shape (D, H)
    b : ndarray of float, shape (H,)
    batch_sizes : sequence of int
        Each >= 2.
    unit : int
        Which of the H units, in [0, H).
    n_batches : int
        Batches per batch size, >= 2.
    seed : int

    Returns
    -------
    dict
        ``sigma``, ``kurtosis`` (floats); ``mean``: ``{B: std of the batch means / sigma}``;
        ``var``: ``{B: std of the batch variances / sigma^2}`` (both dimensionless).

    Raises
    ------
    ValueError
        If a batch size, ``n_batches`` or the unit is out of range, or the shapes disagree.
    """
    X, w, b = np.asarray(X, float), np.asarray(w, float), np.asarray(b, float)
    if X.ndim != 2 or w.ndim != 2 or w.shape[0] != X.shape[1] or b.shape != (w.shape[1],):
        raise ValueError(f"expected X (N, D), w (D, H), b (H,), got {X.shape}, {w.shape}, {b.shape}")
    if not 0 <= unit < w.shape[1]:
        raise ValueError(f"unit must be in [0, {w.shape[1]}), got {unit}")
    if n_batches < 2:
        raise ValueError(f"n_batches must be >= 2, got {n_batches}")
    a = X @ w[:, unit] + b[unit]
    sigma2 = a.var()
    kappa = float(np.mean((a - a.mean()) ** 4) / sigma2**2)
    r = np.random.default_rng(seed)
    out = {"sigma": float(np.sqrt(sigma2)), "kurtosis": kappa, "mean": {}, "var": {}}
    for B in batch_sizes:
        if B < 2:
            raise ValueError(f"each batch size must be >= 2, got {B}")
        batches = a[r.integers(0, len(a), size=(n_batches, int(B)))]
        out["mean"][int(B)] = float(batches.mean(axis=1).std() / np.sqrt(sigma2))
        out["var"][int(B)] = float(batches.var(axis=1).std() / sigma2)
    return out


def batch_size_sweep(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, dict[int, Run]]:
    """Train both networks at every batch size of ``cfg``, each for the same number of updates,
    ``cfg.batch_size_updates`` (weight scale ``cfg.batch_size_weight_scale``). Only the final
    networks matter here (:func:`mode_gaps` measures them), so the accuracies after each epoch
    are measured on 100 examples only.

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: ``{batch_size: Run}``.
    """
    def runs(layer):
        return {bs: train(data, cfg, weight_scale=cfg.batch_size_weight_scale, bn_layer=layer,
                          batch_size=bs, updates=cfg.batch_size_updates, eval_samples=100)
                for bs in cfg.batch_sizes}

    return {"baseline": runs(None), "batchnorm": runs(bn_layer)}


def mode_gaps(sweep: dict[str, dict[int, Run]], X, y, mode_accuracies: Callable) -> dict:
    """The final networks of :func:`batch_size_sweep`, measured on ``X, y`` (the validation set).

    Parameters
    ----------
    sweep : dict
        As returned by :func:`batch_size_sweep`.
    X, y : ndarray, shapes (N, D) and (N,)
    mode_accuracies : callable
        ``mode_accuracies(params, bn_params, X, y, batch_size) -> (train_mode_acc,
        test_mode_acc)``, the student's function of notebook 04. Each BatchNorm network is
        measured with batches of the size it was trained with, on copies of its parameters.

    Returns
    -------
    dict
        ``'batchnorm'``: ``{batch_size: (train-mode accuracy, test-mode accuracy)}``;
        ``'baseline'``: ``{batch_size: accuracy}`` on all of ``X``; floats.
    """
    out: dict = {"batchnorm": {}, "baseline": {}}
    for bs, run in sweep["batchnorm"].items():
        params = {k: v.copy() for k, v in run.model.params.items()}
        bn_params = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in p.items()}
                     for p in run.model.bn_params]
        train_acc, test_acc = mode_accuracies(params, bn_params, X, y, bs)
        out["batchnorm"][bs] = (float(train_acc), float(test_acc))
    for bs, run in sweep["baseline"].items():
        out["baseline"][bs] = float(np.mean(np.argmax(run.model.loss(X), axis=1) == y))
    return out


def learning_rate_sweep(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, list[Run]]:
    """Train both networks with every Adam learning rate of ``cfg.learning_rates`` (weight
    scale ``cfg.batch_size_weight_scale``, ``cfg.lr_epochs`` epochs).

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: lists of :class:`Run`, in the order of
        ``cfg.learning_rates``.
    """
    def runs(layer):
        return [train(data, cfg, weight_scale=cfg.batch_size_weight_scale, bn_layer=layer,
                      epochs=cfg.lr_epochs, learning_rate=lr) for lr in cfg.learning_rates]

    return {"baseline": runs(None), "batchnorm": runs(bn_layer)}
