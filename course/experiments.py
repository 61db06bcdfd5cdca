"""The experiments of notebook 04: BatchNorm in a deep network on the digits data.

Each experiment is a function that trains networks with :class:`course.nets.FullyConnectedNet`
and :class:`course.solver.Solver` and returns plain results; the figures are drawn from those
results by :mod:`course.experiment_plots`. The notebook passes in the BatchNorm sandwich layer to
use (the student's own or the provided one) and, for the train/test-mode gap, the student's own
measuring function, so nothing here contains the solution of an exercise.

All runs share one data split (``course.data.load_digits``), standardized with the training
set's statistics (scikit-learn's ``StandardScaler``). Every comparison runs once per seed of
``cfg.seeds`` (the seed draws the initial weights and the order of the minibatches) and returns
a :class:`course.seeds.SeedRuns`; the accuracies it reports are those of the *final* network on
the held-out test split (the validation split only gives the curves per epoch). Every random
draw is seeded: the same configuration gives the same numbers.

The sizes come from :func:`config`. The full configuration is what a student runs (about a
minute on one core); the reduced one is what ``nbgrader autograde`` runs (nbgrader sets the
``NBGRADER_EXECUTION`` environment variable), so that grading stays fast. The graded functions
never depend on it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.preprocessing import StandardScaler

from course.batches import batch_statistics_spread, require, single_class_batches
from course.data import load_digits
from course.nets import FullyConnectedNet
from course.seeds import SeedRuns, over_seeds, spread_text
from course.solver import Solver, TrainingDiverged

__all__ = [
    "ExperimentConfig", "config", "running_under_nbgrader", "digits_data", "Run", "make_net",
    "train", "weight_scale_sweep", "run_at", "single_class_batches", "single_class_experiment",
    "iid_control", "batch_statistics_spread", "batch_size_sweep", "mode_gaps",
    "learning_rate_sweep", "require", "SeedRuns", "spread_text",
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
        Standard deviations of the initial weights for the weight-scale sweep (increasing; must
        hold 1e-4, 1e-3 (the histograms), 1e-2 and ``batch_size_weight_scale``; decades where
        both networks are flat, half-decades where the baseline changes).
    epochs : int
        Epochs per run of the weight-scale sweep.
    batch_size : int
        Minibatch size of the weight-scale sweep, the learning-rate sweep and the recorded runs.
    single_class_batch_size, single_class_epochs : int
        Batch size and epochs of the single-class-batch runs.
    batch_sizes : tuple of int
        Batch sizes of the batch-size experiment.
    batch_size_updates : int
        Updates (minibatch steps) per run of the batch-size experiment, the same for every
        batch size, so that batch size is not confounded with the number of steps (it is
        confounded with the number of examples seen instead).
    batch_size_weight_scale : float
        Weight scale of the batch-size, single-class and learning-rate experiments and of the
        internal-covariate-shift recording (one at which both networks train).
    learning_rate : float
        Adam's learning rate (Kingma & Ba 2015, arXiv:1412.6980) for every run but the sweep.
    learning_rates : tuple of float
        Adam's learning rates of the learning-rate sweep.
    lr_epochs : int
        Epochs per run of the learning-rate sweep.
    spread_batches : int
        Batches resampled per batch size for the spread of the batch statistics.
    record_steps : int
        Training steps of the recorded runs of :mod:`course.health` (one layer's input
        statistics, update-to-data ratios, gradient histograms).
    seeds : tuple of int
        One run per seed for every comparison (at least 3 in the full configuration).
    seed : int
        The seed of the run at hand (:func:`course.seeds.over_seeds` sets it from ``seeds``).
    """

    hidden_dims: tuple[int, ...] = (100,) * 6
    weight_scales: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    epochs: int = 6
    batch_size: int = 50
    single_class_batch_size: int = 50
    single_class_epochs: int = 6
    batch_sizes: tuple[int, ...] = (5, 10, 50, 200)
    batch_size_updates: int = 200
    batch_size_weight_scale: float = 0.1
    learning_rate: float = 3e-3
    learning_rates: tuple[float, ...] = (1e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    lr_epochs: int = 3
    spread_batches: int = 4000
    record_steps: int = 84
    seeds: tuple[int, ...] = (0, 1, 2)
    seed: int = 0


def running_under_nbgrader() -> bool:
    """True while nbgrader executes the notebook (``autograde`` or ``validate``).

    nbgrader sets the environment variable ``NBGRADER_EXECUTION`` to ``'autograde'`` or
    ``'validate'`` in the kernels it starts (nbgrader docs, "Autograding resources").
    """
    return bool(os.environ.get("NBGRADER_EXECUTION"))


#: What the reduced configuration changes, for the notebook to print.
REDUCED = ("5 weight scales instead of 7 and 1 epoch instead of 6; single-class batches of 10 "
           "for 2 epochs instead of batches of 50 for 6; 20 updates per batch size instead of "
           "200; 2 learning rates instead of 5, for 1 epoch instead of 3; 30 recorded steps "
           "instead of 84; 400 resampled batches instead of 4000. Every experiment still runs "
           "over the same 3 seeds")


def config(reduced: bool | None = None) -> ExperimentConfig:
    """The full configuration, or the reduced one for grading.

    Parameters
    ----------
    reduced : bool, optional
        Default: :func:`running_under_nbgrader`. The reduced sweeps keep every experiment,
        every batch size and every seed but shrink them as :data:`REDUCED` says.

    Returns
    -------
    ExperimentConfig
    """
    if reduced is None:
        reduced = running_under_nbgrader()
    if not reduced:
        return ExperimentConfig()
    return ExperimentConfig(weight_scales=(1e-4, 1e-3, 1e-2, 1e-1, 1.0), epochs=1,
                            single_class_batch_size=10, single_class_epochs=2,
                            batch_size_updates=20, learning_rates=(1e-3, 1e-1), lr_epochs=1,
                            spread_batches=400, record_steps=30)


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
    seed : int
        Seed of the initial weights and of the minibatch order.
    loss_history : list of float
        Training loss per iteration (the first one is the loss at initialization).
    train_acc_history, val_acc_history : list of float
        Accuracy after each epoch (test mode; the training one on a subset of 100 examples).
    best_val_acc : float
        The highest of ``val_acc_history`` (kept for reference; the notebook reports
        ``test_acc``, which no choice of epoch has seen).
    train_acc, test_acc : float
        Accuracy of the final network (test mode) on the whole training split and on the
        held-out test split.
    final_loss : float
        Mean loss over the last epoch's iterations (nan if the run diverged).
    diverged : bool
        Whether training stopped on a nan/inf loss (:class:`course.solver.TrainingDiverged`);
        its accuracies are then those of chance (0.1).
    model : FullyConnectedNet
        The network after training (its last parameters).
    """

    batchnorm: bool
    weight_scale: float
    batch_size: int
    learning_rate: float = 0.0
    seed: int = 0
    loss_history: list[float] = field(default_factory=list)
    train_acc_history: list[float] = field(default_factory=list)
    val_acc_history: list[float] = field(default_factory=list)
    best_val_acc: float = 0.0
    train_acc: float = 0.0
    test_acc: float = 0.0
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
    """The experiments' network, its weights drawn with ``cfg.seed``: BatchNorm exactly when
    ``bn_layer`` is given."""
    return FullyConnectedNet(list(cfg.hidden_dims), input_dim, num_classes,
                             normalization="batchnorm" if bn_layer else None,
                             weight_scale=weight_scale, seed=cfg.seed, bn_layer=bn_layer)


def train(data, cfg: ExperimentConfig, *, weight_scale: float, bn_layer: BnLayer | None = None,
          batch_size: int | None = None, epochs: int | None = None, updates: int | None = None,
          learning_rate: float | None = None, shuffle: bool | str = True) -> Run:
    """Train one network with Adam (seed ``cfg.seed``); a diverging run is recorded, not raised.

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

    Returns
    -------
    Run
        Its ``train_acc`` and ``test_acc`` are measured once, on the final network, over the
        whole training and test splits; the per-epoch validation accuracies on the whole
        validation split.

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
                    max_iterations=updates, num_train_samples=100, num_val_samples=None)
    run = Run(batchnorm=bn_layer is not None, weight_scale=weight_scale, batch_size=batch_size,
              learning_rate=learning_rate, seed=cfg.seed, model=model)
    try:
        solver.train()
    except TrainingDiverged as exc:
        solver = exc.solver
        run.diverged = True
    run.loss_history = list(solver.loss_history)
    run.train_acc_history = list(solver.train_acc_history)
    run.val_acc_history = list(solver.val_acc_history)
    run.best_val_acc = solver.best_val_acc
    if run.diverged:  # nan parameters predict class 0 everywhere: report chance instead
        run.train_acc = run.test_acc = 0.1
    else:
        run.final_loss = float(np.mean(run.loss_history[-min(per_epoch, run.updates):]))
        run.train_acc = solver.check_accuracy(data["X_train"], data["y_train"])
        run.test_acc = solver.check_accuracy(data["X_test"], data["y_test"])
    return run


def _both(cfg, bn_layer, run_one) -> dict[str, SeedRuns]:
    """``run_one(cfg_seed, layer)`` over the seeds, for the baseline and the BatchNorm network."""
    return {name: over_seeds(cfg, lambda c, layer=layer: run_one(c, layer))
            for name, layer in (("baseline", None), ("batchnorm", bn_layer))}


def weight_scale_sweep(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, list[SeedRuns]]:
    """Train the baseline and the BatchNorm network at every weight scale of ``cfg``, once per
    seed. Every run takes ``cfg.epochs`` epochs of batches of ``cfg.batch_size`` with Adam at
    ``cfg.learning_rate``: only the weight scale, BatchNorm and the seed change.

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: lists of :class:`SeedRuns`, in the order of
        ``cfg.weight_scales``.
    """
    return {name: [over_seeds(cfg, lambda c, s=s, layer=layer: train(data, c, weight_scale=s,
                                                                      bn_layer=layer))
                   for s in cfg.weight_scales]
            for name, layer in (("baseline", None), ("batchnorm", bn_layer))}


def run_at(runs: Sequence, weight_scale: float):
    """The entry of ``runs`` whose weight scale is closest to ``weight_scale`` (in log scale)."""
    if not runs:
        raise ValueError("runs is empty")
    return min(runs, key=lambda r: abs(math.log(r.weight_scale / weight_scale)))


def single_class_experiment(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, SeedRuns]:
    """Both networks trained on single-class batches in random order (:func:`single_class_batches`,
    weight scale ``cfg.batch_size_weight_scale``, batch size ``cfg.single_class_batch_size``,
    ``cfg.single_class_epochs`` epochs), once per seed (the seed also draws the batches).

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: :class:`SeedRuns`.
    """
    bs = cfg.single_class_batch_size

    def run(c, layer):
        return train(single_class_batches(data, bs, c.seed), c,
                     weight_scale=c.batch_size_weight_scale, bn_layer=layer, shuffle="batches",
                     batch_size=bs, epochs=c.single_class_epochs)

    return _both(cfg, bn_layer, run)


def iid_control(data, cfg: ExperimentConfig, bn_layer: BnLayer,
                sweep: dict[str, list[SeedRuns]] | None = None) -> dict[str, SeedRuns]:
    """The control of :func:`single_class_experiment`: the same runs with shuffled (i.i.d.)
    batches, the same batch size, epochs, weight scale and seeds.

    When ``sweep`` (:func:`weight_scale_sweep`'s result) already holds those runs (the full
    configuration: batches of ``cfg.batch_size`` for ``cfg.epochs`` epochs), they are reused;
    otherwise they are trained here.

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: :class:`SeedRuns`.
    """
    same = (cfg.single_class_batch_size == cfg.batch_size
            and cfg.single_class_epochs == cfg.epochs
            and any(math.isclose(s, cfg.batch_size_weight_scale) for s in cfg.weight_scales))
    if sweep is not None and same:
        return {name: run_at(runs, cfg.batch_size_weight_scale) for name, runs in sweep.items()}

    def run(c, layer):
        return train(data, c, weight_scale=c.batch_size_weight_scale, bn_layer=layer,
                     batch_size=c.single_class_batch_size, epochs=c.single_class_epochs)

    return _both(cfg, bn_layer, run)


def batch_size_sweep(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, dict[int, SeedRuns]]:
    """Train both networks at every batch size of ``cfg``, each for the same number of updates,
    ``cfg.batch_size_updates`` (weight scale ``cfg.batch_size_weight_scale``), once per seed.

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: ``{batch_size: SeedRuns}``.
    """
    def runs(layer):
        return {bs: over_seeds(cfg, lambda c, bs=bs: train(
                    data, c, weight_scale=c.batch_size_weight_scale, bn_layer=layer,
                    batch_size=bs, updates=c.batch_size_updates))
                for bs in cfg.batch_sizes}

    return {"baseline": runs(None), "batchnorm": runs(bn_layer)}


def mode_gaps(sweep: dict[str, dict[int, SeedRuns]], X, y, mode_accuracies: Callable) -> dict:
    """The final networks of :func:`batch_size_sweep`, measured on ``X, y`` (the test split).

    Parameters
    ----------
    sweep : dict
        As returned by :func:`batch_size_sweep`.
    X, y : ndarray, shapes (N, D) and (N,)
    mode_accuracies : callable
        ``mode_accuracies(params, bn_params, X, y, batch_size) -> (train_mode_acc,
        test_mode_acc)``, the student's function of notebook 04. Each BatchNorm network is
        measured with batches of the size it was trained with, on deep copies of its
        parameters and running statistics (a function that wrote into them would otherwise
        change the networks that later cells look at).

    Returns
    -------
    dict
        ``'batchnorm'``: ``{batch_size: (train-mode accuracies, test-mode accuracies)}``, two
        arrays of shape (n_seeds,); ``'baseline'``: ``{batch_size: accuracies}`` on all of
        ``X``, shape (n_seeds,).
    """
    out: dict = {"batchnorm": {}, "baseline": {}}
    for bs, runs in sweep["batchnorm"].items():
        pairs = []
        for run in runs.runs:
            params = {k: v.copy() for k, v in run.model.params.items()}
            bn_params = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in p.items()}
                         for p in run.model.bn_params]
            pairs.append([float(a) for a in mode_accuracies(params, bn_params, X, y, bs)])
        train_acc, test_acc = np.array(pairs).T
        out["batchnorm"][bs] = (train_acc, test_acc)
    for bs, runs in sweep["baseline"].items():
        out["baseline"][bs] = np.array([float(np.mean(np.argmax(r.model.loss(X), axis=1) == y))
                                        for r in runs.runs])
    return out


def learning_rate_sweep(data, cfg: ExperimentConfig, bn_layer: BnLayer) -> dict[str, list[SeedRuns]]:
    """Train both networks with every Adam learning rate of ``cfg.learning_rates`` (weight
    scale ``cfg.batch_size_weight_scale``, ``cfg.lr_epochs`` epochs), once per seed.

    Returns
    -------
    dict
        ``'baseline'`` and ``'batchnorm'``: lists of :class:`SeedRuns`, in the order of
        ``cfg.learning_rates``.
    """
    def runs(layer):
        return [over_seeds(cfg, lambda c, lr=lr: train(
                    data, c, weight_scale=c.batch_size_weight_scale, bn_layer=layer,
                    epochs=c.lr_epochs, learning_rate=lr)) for lr in cfg.learning_rates]

    return {"baseline": runs(None), "batchnorm": runs(bn_layer)}
