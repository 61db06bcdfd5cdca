"""Minibatch training of a classifier: update rules, accuracy tracking, divergence detection.

The design follows the CS231n ``Solver`` (https://cs231n.github.io/, assignment 2): the model
exposes ``params`` (a dict of arrays) and ``loss(X, y=None)``, which returns class scores when
``y`` is None and ``(loss, grads)`` otherwise. The update rules are small functions with the
CS231n signature ``rule(w, dw, config) -> (next_w, config)``; ``config`` holds the
hyperparameters and the rule's per-parameter state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from course.validate import as_float_array, check_int, check_real

__all__ = ["Solver", "TrainingDiverged", "sgd", "sgd_momentum", "adam", "UPDATE_RULES"]


# --------------------------------------------------------------------------- update rules
def sgd(w: np.ndarray, dw: np.ndarray, config: dict) -> tuple[np.ndarray, dict]:
    """Plain stochastic gradient descent: ``w <- w - learning_rate * dw``.

    Parameters
    ----------
    w, dw : ndarray, same shape
        A parameter and the gradient of the loss with respect to it. Neither is modified.
    config : dict
        ``learning_rate`` (float > 0).

    Returns
    -------
    next_w : ndarray, shape and dtype of w
        A new array.
    config : dict
        The same dict.
    """
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: np.ndarray, dw: np.ndarray, config: dict) -> tuple[np.ndarray, dict]:
    """SGD with (heavy-ball) momentum, in PyTorch's form.

    ``v <- momentum * v + dw``, then ``w <- w - learning_rate * v``, with ``v = 0`` at the start:
    exactly ``torch.optim.SGD(momentum=momentum)`` with ``dampening=0, nesterov=False``
    (https://pytorch.org/docs/stable/generated/torch.optim.SGD.html). The classical momentum of
    Sutskever, Martens, Dahl & Hinton (2013), "On the importance of initialization and momentum
    in deep learning", ICML, eq. (1)-(2), writes ``v' <- momentum * v' - learning_rate * dw``,
    ``w <- w + v'``; with ``v' = -learning_rate * v`` the two give the same iterates for a constant
    learning rate. They differ only under learning-rate decay, where PyTorch's form applies the
    new rate to the whole accumulated velocity.

    Parameters
    ----------
    w, dw : ndarray, same shape
        Not modified.
    config : dict
        ``learning_rate`` (float > 0), ``momentum`` (float in [0, 1)); the state ``velocity``
        (shape of w) is created on the first call and updated in place afterwards.

    Returns
    -------
    next_w : ndarray, shape and dtype of w
    config : dict
        The same dict, with the updated ``velocity``.
    """
    v = config.get("velocity")
    if v is None:
        v = config["velocity"] = np.zeros_like(w)
    v *= config["momentum"]
    v += dw
    return w - config["learning_rate"] * v, config


def adam(w: np.ndarray, dw: np.ndarray, config: dict) -> tuple[np.ndarray, dict]:
    """Adam, Algorithm 1 of Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization",
    ICLR, arXiv:1412.6980.

    With ``t`` counting steps from 1::

        m <- beta1 * m + (1 - beta1) * dw
        v <- beta2 * v + (1 - beta2) * dw**2
        m_hat = m / (1 - beta1**t),   v_hat = v / (1 - beta2**t)
        w <- w - learning_rate * m_hat / (sqrt(v_hat) + eps)

    This is also what ``torch.optim.Adam`` computes (without weight decay or amsgrad).

    Parameters
    ----------
    w, dw : ndarray, same shape
        Not modified.
    config : dict
        ``learning_rate`` (> 0), ``beta1``, ``beta2`` (in [0, 1)), ``eps`` (> 0); the state
        ``m``, ``v`` (shape of w) and ``t`` (int) is created on the first call.

    Returns
    -------
    next_w : ndarray, shape and dtype of w
    config : dict
        The same dict, with the updated state.
    """
    if "t" not in config:
        config["m"], config["v"], config["t"] = np.zeros_like(w), np.zeros_like(w), 0
    b1, b2 = config["beta1"], config["beta2"]
    m, v = config["m"], config["v"]
    config["t"] = t = config["t"] + 1
    m *= b1
    m += (1 - b1) * dw
    v *= b2
    v += (1 - b2) * (dw * dw)
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    return (w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["eps"])).astype(
        w.dtype, copy=False
    ), config


#: Each update rule with its hyperparameters and their defaults.
UPDATE_RULES = {
    "sgd": (sgd, {"learning_rate": 1e-2}),
    "sgd_momentum": (sgd_momentum, {"learning_rate": 1e-2, "momentum": 0.9}),
    "adam": (adam, {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
}

# Allowed range of each hyperparameter: (low, high, low_inclusive, high_inclusive).
_RANGES = {
    "learning_rate": (0.0, math.inf, False, False),
    "momentum": (0.0, 1.0, True, False),
    "beta1": (0.0, 1.0, True, False),
    "beta2": (0.0, 1.0, True, False),
    "eps": (0.0, math.inf, False, False),
}


def _check_hyper(name: str, value) -> float:
    low, high, low_in, high_in = _RANGES[name]
    value = check_real(f"optim_config['{name}']", value)
    if (value < low or (value == low and not low_in)) or (value > high or (value == high and not high_in)):
        interval = f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
        raise ValueError(f"optim_config['{name}'] must lie in {interval}, got {value}")
    return value


class TrainingDiverged(FloatingPointError):
    """The training loss (or a parameter) became nan or infinite.

    Attributes
    ----------
    solver : Solver
        The solver that raised, with its histories up to the divergence (``loss_history`` holds
        only the finite losses).
    epoch : int
        The epoch in progress, counted from 1.
    iteration : int
        The iteration at which the loss was not finite, counted from 1 over the whole run.
    last_finite_loss : float
        The last finite training loss (nan if there was none).
    """

    def __init__(self, message: str, solver: Solver, epoch: int, iteration: int,
                 last_finite_loss: float):
        super().__init__(message)
        self.solver = solver
        self.epoch = epoch
        self.iteration = iteration
        self.last_finite_loss = last_finite_loss


# --------------------------------------------------------------------------- the solver
_DATA_KEYS = ("X_train", "y_train", "X_val", "y_val")


def _check_labels(name: str, y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one label per row, got {y.shape}")
    return y


class Solver:
    """Train a classification model with minibatch SGD, SGD with momentum, or Adam.

    Parameters
    ----------
    model : object
        Has ``params``, a dict of str to ndarray, and ``loss(X, y=None)`` returning scores
        (N, C) when ``y`` is None (test mode) and ``(loss, grads)`` otherwise, ``grads`` with the
        keys of ``params`` (e.g. :class:`course.nets.FullyConnectedNet`). Training replaces the
        arrays in ``model.params`` with updated ones (the old arrays are not modified).
    data : course.data.Split or mapping
        With ``X_train`` (N_train, ...), ``y_train`` (N_train,), ``X_val``, ``y_val``; labels are
        ints. Other fields (``X_test``...) are ignored.
    update_rule : {'sgd_momentum', 'adam', 'sgd'}
        See :func:`sgd_momentum` (PyTorch's form), :func:`adam`, :func:`sgd`.
    optim_config : dict, optional
        Hyperparameters of the rule, overriding the defaults: ``learning_rate`` (> 0; default
        1e-2 for sgd and sgd_momentum, 1e-3 for adam), ``momentum`` (sgd_momentum, [0, 1),
        default 0.9), ``beta1`` (0.9), ``beta2`` (0.999), ``eps`` (1e-8) for adam. A key the rule
        does not use is an error (it is usually a typo).
    lr_decay : float
        In (0, 1]; the learning rate is multiplied by it after every epoch.
    batch_size : int
        Minibatch size, 1 <= batch_size <= N_train. Each epoch reshuffles the training set and
        takes ``N_train // batch_size`` full minibatches; **the last partial batch is dropped**
        (as ``torch.utils.data.DataLoader(drop_last=True)``), so every BatchNorm step sees exactly
        ``batch_size`` examples. The reshuffle puts every example in play over the epochs.
    num_epochs : int
        Number of epochs (>= 1) that :meth:`train` runs.
    num_train_samples : int or None
        Training accuracy after each epoch is measured on this many training examples (>= 1),
        one fixed random subset drawn at construction; None or a number >= N_train uses all.
    num_val_samples : int or None
        The same for validation accuracy; None uses the whole validation set.
    seed : int
        Seed (>= 0) of the ``numpy.random.default_rng`` that draws the accuracy subsets and
        shuffles every epoch. The same model, data and seed give identical histories.
    shuffle : bool or 'batches'
        ``True`` (default): reshuffle the training set every epoch. ``False``: take the
        minibatches in the data's own order, every epoch the same. ``'batches'``: cut the data,
        in its own order, into the consecutive minibatches ``X[0:B], X[B:2B], ...`` and visit
        these fixed minibatches in a new random order every epoch, for experiments with batches
        that are not i.i.d. but come in random order (e.g. single-class batches, built with
        :func:`course.experiments.single_class_batches`).
    max_iterations : int or None
        Stop after this many updates in total (>= 1), even in the middle of an epoch; the
        accuracies are then recorded once more, for the final parameters. None (default):
        ``num_epochs`` full epochs. Used to give runs with different batch sizes the same
        number of updates.
    verbose : bool
        Show a tqdm progress bar over epochs (``tqdm.auto``: a widget in Jupyter, text on
        stderr elsewhere) with the loss and accuracies. When False, training prints nothing.

    Attributes
    ----------
    loss_history : list of float
        Training loss of every iteration (minibatch).
    train_acc_history, val_acc_history : list of float
        Accuracy after every epoch, measured in test mode (``model.loss(X)``: BatchNorm uses
        its running statistics). Accuracies before training are not recorded.
    best_val_acc : float
        Highest validation accuracy so far (0.0 before the first epoch ends).
    best_train_acc : float
        Highest training accuracy so far.
    best_params : dict of str to ndarray or None
        Copy of ``model.params`` at the epoch of ``best_val_acc`` (the first one on ties). The
        model keeps its last parameters; training does not restore these.
    optim_configs : dict of str to dict
        Per-parameter hyperparameters and state of the update rule.
    epoch : int
        Epochs completed.

    Raises
    ------
    TypeError
        If the model lacks ``params``/``loss``, ``data`` is neither a Split nor a mapping, or an
        argument has the wrong type.
    ValueError
        If a data key is missing or the arrays disagree in length, the update rule is unknown,
        an optim_config key is unknown or out of range, or a count is out of range.

    Notes
    -----
    Inside :meth:`train`, numpy's overflow and invalid-value warnings are silenced: a diverging
    run is reported by :class:`TrainingDiverged` instead of a stream of RuntimeWarnings.
    """

    def __init__(self, model, data, *, update_rule: str = "sgd_momentum",
                 optim_config: dict | None = None, lr_decay: float = 1.0, batch_size: int = 100,
                 num_epochs: int = 10, num_train_samples: int | None = 1000,
                 num_val_samples: int | None = None, seed: int = 0, shuffle: bool | str = True,
                 max_iterations: int | None = None, verbose: bool = False):
        if not (isinstance(getattr(model, "params", None), dict) and callable(getattr(model, "loss", None))):
            raise TypeError(
                "model must have a dict `params` and a method `loss(X, y=None)`, got "
                f"{type(model).__name__}"
            )
        self.model = model
        self.X_train, self.y_train, self.X_val, self.y_val = self._read_data(data)
        dtype = getattr(model, "dtype", None)
        if dtype is not None:  # cast once here rather than once per minibatch in the model
            self.X_train = self.X_train.astype(dtype, copy=False)
            self.X_val = self.X_val.astype(dtype, copy=False)

        if update_rule not in UPDATE_RULES:
            raise ValueError(f"update_rule must be one of {sorted(UPDATE_RULES)}, got {update_rule!r}")
        self.update_rule = update_rule
        self._update, defaults = UPDATE_RULES[update_rule]
        if optim_config is None:
            optim_config = {}
        if not isinstance(optim_config, Mapping):
            raise TypeError(f"optim_config must be a dict or None, got {type(optim_config).__name__}")
        unknown = sorted(set(optim_config) - set(defaults))
        if unknown:
            raise ValueError(
                f"optim_config has keys {unknown} that update_rule={update_rule!r} does not use; "
                f"its keys are {sorted(defaults)}"
            )
        self.optim_config = {k: _check_hyper(k, optim_config.get(k, v)) for k, v in defaults.items()}
        self.optim_configs = {k: dict(self.optim_config) for k in model.params}

        self.lr_decay = check_real("lr_decay", lr_decay, 0.0, 1.0)
        if self.lr_decay == 0:
            raise ValueError("lr_decay must lie in (0, 1], got 0.0")
        n_train = len(self.y_train)
        self.batch_size = check_int("batch_size", batch_size, 1)
        if self.batch_size > n_train:
            raise ValueError(
                f"batch_size must be at most the number of training examples, {n_train}, got "
                f"{batch_size}"
            )
        self.num_epochs = check_int("num_epochs", num_epochs, 1)
        self.num_train_samples = check_int("num_train_samples", num_train_samples, 1, True)
        self.num_val_samples = check_int("num_val_samples", num_val_samples, 1, True)
        self.seed = check_int("seed", seed, 0)
        self.max_iterations = check_int("max_iterations", max_iterations, 1, True)
        if isinstance(shuffle, str):
            if shuffle != "batches":
                raise ValueError(f"shuffle must be True, False or 'batches', got {shuffle!r}")
            self.shuffle: bool | str = shuffle
        elif isinstance(shuffle, (bool, np.bool_)):
            self.shuffle = bool(shuffle)
        else:
            raise TypeError(f"shuffle must be a bool or 'batches', got {type(shuffle).__name__}")
        if not isinstance(verbose, (bool, np.bool_)):
            raise TypeError(f"verbose must be a bool, got {type(verbose).__name__}")
        self.verbose = bool(verbose)

        self._rng = np.random.default_rng(self.seed)
        self._train_subset = self._subset(n_train, self.num_train_samples)
        self._val_subset = self._subset(len(self.y_val), self.num_val_samples)
        self.epoch = 0
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.best_val_acc = 0.0
        self.best_train_acc = 0.0
        self.best_params: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _read_data(data):
        if isinstance(data, Mapping):
            missing = [k for k in _DATA_KEYS if k not in data]
            if missing:
                raise ValueError(f"data is missing {missing}; it needs {list(_DATA_KEYS)}")
            get = data.__getitem__
        elif all(hasattr(data, k) for k in _DATA_KEYS):
            get = data.__getattribute__
        else:
            raise TypeError(
                "data must be a course.data.Split or a dict with keys "
                f"{list(_DATA_KEYS)}, got {type(data).__name__}"
            )
        out = []
        for split in ("train", "val"):
            X = as_float_array(f"data['X_{split}']", get(f"X_{split}"))
            if X.ndim < 2 or X.shape[0] == 0:
                raise ValueError(f"data['X_{split}'] must have shape (N, ...) with N >= 1, got {X.shape}")
            y = _check_labels(f"data['y_{split}']", get(f"y_{split}"), X.shape[0])
            out += [X, y]
        return tuple(out)

    def _subset(self, n: int, k: int | None) -> np.ndarray | None:
        """Sorted indices of a fixed random subset of size k, or None for all n."""
        if k is None or k >= n:
            return None
        return np.sort(self._rng.choice(n, size=k, replace=False))

    def _done(self) -> bool:
        """Whether ``max_iterations`` updates have been made."""
        return self.max_iterations is not None and len(self.loss_history) >= self.max_iterations

    def _epoch_order(self, n: int, n_batches: int) -> np.ndarray:
        """The example indices of one epoch, in the order they are visited (see ``shuffle``)."""
        if self.shuffle == "batches":
            bs = self.batch_size
            batches = self._rng.permutation(n_batches)
            return (batches[:, None] * bs + np.arange(bs)).ravel()
        return self._rng.permutation(n) if self.shuffle else np.arange(n)

    def _diverged(self, what: str, iteration: int) -> TrainingDiverged:
        last = self.loss_history[-1] if self.loss_history else math.nan
        lr = next(iter(self.optim_configs.values()))["learning_rate"] if self.optim_configs else math.nan
        message = (
            f"training diverged: {what} at epoch {self.epoch + 1} of {self.num_epochs}, "
            f"iteration {iteration}; the last finite loss was {last:.4g}. Lower the learning "
            f"rate (now {lr:.3g}, update_rule={self.update_rule!r}) or the weight scale. The "
            "histories so far are in this exception's .solver."
        )
        return TrainingDiverged(message, self, self.epoch + 1, iteration, last)

    # ------------------------------------------------------------------ public API
    def check_accuracy(self, X, y, batch_size: int = 1000) -> float:
        """Fraction of examples whose highest score is their label, in test mode.

        Parameters
        ----------
        X : ndarray of float, shape (N, ...)
        y : ndarray of int, shape (N,)
        batch_size : int
            Examples per call to ``model.loss`` (>= 1). In test mode the result does not depend
            on it.

        Returns
        -------
        float
            In [0, 1].

        Raises
        ------
        TypeError, ValueError
            If X or y has the wrong type or shape, or batch_size < 1.
        """
        X = as_float_array("X", X)
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"X must have shape (N, ...) with N >= 1, got {X.shape}")
        y = _check_labels("y", y, X.shape[0])
        batch_size = check_int("batch_size", batch_size, 1)
        correct = 0
        for start in range(0, X.shape[0], batch_size):
            scores = self.model.loss(X[start:start + batch_size])
            correct += int(np.count_nonzero(np.argmax(scores, axis=1) == y[start:start + batch_size]))
        return correct / X.shape[0]

    def train(self) -> Solver:
        """Run ``num_epochs`` epochs of minibatch training; calling it again continues.

        Returns
        -------
        Solver
            ``self``, with the histories, ``best_*`` attributes and ``model.params`` updated.

        Raises
        ------
        TrainingDiverged
            As soon as a training loss is nan or infinite, or a parameter is after an epoch.
        """
        model, params = self.model, self.model.params
        X, y, bs = self.X_train, self.y_train, self.batch_size
        n_batches = len(y) // bs
        X_tr, y_tr = X, y
        if self._train_subset is not None:
            X_tr, y_tr = X[self._train_subset], y[self._train_subset]
        X_va, y_va = self.X_val, self.y_val
        if self._val_subset is not None:
            X_va, y_va = X_va[self._val_subset], y_va[self._val_subset]
        bar = None
        epochs = range(self.num_epochs)
        if self.verbose:
            from tqdm.auto import tqdm  # imported only when used

            bar = epochs = tqdm(epochs, desc=f"{self.update_rule}, batch {bs}", unit="epoch")
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                for _ in epochs:
                    order = self._epoch_order(len(y), n_batches)
                    for b in range(n_batches):
                        if self._done():
                            break
                        idx = order[b * bs:(b + 1) * bs]
                        loss, grads = model.loss(X[idx], y[idx])
                        if not math.isfinite(loss):
                            raise self._diverged(f"the loss became {loss}", len(self.loss_history) + 1)
                        self.loss_history.append(loss)
                        for k, config in self.optim_configs.items():
                            params[k], _ = self._update(params[k], grads[k], config)
                    if not all(np.isfinite(w).all() for w in params.values()):
                        raise self._diverged("a parameter became nan or infinite",
                                             len(self.loss_history))
                    for config in self.optim_configs.values():
                        config["learning_rate"] *= self.lr_decay
                    train_acc = self.check_accuracy(X_tr, y_tr)
                    val_acc = self.check_accuracy(X_va, y_va)
                    self.train_acc_history.append(train_acc)
                    self.val_acc_history.append(val_acc)
                    self.best_train_acc = max(self.best_train_acc, train_acc)
                    if self.best_params is None or val_acc > self.best_val_acc:
                        self.best_val_acc = val_acc
                        self.best_params = {k: v.copy() for k, v in params.items()}
                    self.epoch += 1
                    if bar is not None:
                        bar.set_postfix(loss=f"{self.loss_history[-1]:.3f}",
                                        train_acc=f"{train_acc:.3f}", val_acc=f"{val_acc:.3f}")
                    if self._done():
                        break
        finally:
            if bar is not None:
                bar.close()
        return self
