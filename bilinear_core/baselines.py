"""Held-out splits, baseline models and their scores: how a bilinear model compares on the same cells.

Everything here works on any expression matrix and labels or targets; nothing is specific to the pancreas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse, stats
from sklearn.metrics import f1_score, r2_score, recall_score
from torch import nn

from .checks import as_dense_float
from .train import FitResult, split_indices

# --------------------------------------------------------------------------------------------- splits


def split_train_val_test(
    n: int,
    *,
    test_fraction: float = 0.15,
    val_fraction: float = 0.3,
    seed: int = 42,
    test_seed: int | None = None,
    stratify=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint, sorted ``(train, val, test)`` indices into ``n`` cells, stratified on ``stratify`` when given.

    First ``test_fraction`` of all cells is carved out as the test set (with ``test_seed``, default
    ``seed``); then ``val_fraction`` of the remaining cells becomes the validation set (with ``seed``).
    Keeping ``test_seed`` fixed and changing ``seed`` gives different train/validation splits around
    the same test set. ``stratify`` is an ``(n,)`` array of labels.
    """
    n = int(n)
    if stratify is not None:
        stratify = np.asarray(stratify)
        if stratify.shape != (n,):
            raise ValueError(f"stratify must have shape ({n},) to match n, got {stratify.shape}.")
    test_seed = seed if test_seed is None else test_seed
    rest, test = split_indices(n, test_fraction, test_seed, stratify)
    sub = None if stratify is None else stratify[rest]
    train_pos, val_pos = split_indices(len(rest), val_fraction, seed, sub)
    return rest[train_pos], rest[val_pos], test


# --------------------------------------------------------------------------------------------- baselines


class ReluMLP(nn.Module):
    """The conventional baseline of the same width: ``head(relu(hidden(x)))``, ``(n, g) -> (n, t)``.

    One ``g × h`` layer (with bias) instead of the bilinear layer's two, ReLU, then an ``h × t`` head.
    Pass the class itself as ``model_factory`` to :func:`bilinear_core.train.fit` to train it with
    exactly the bilinear model's loop, optimiser, schedule, batches and seeds.
    """

    def __init__(self, n_in: int, n_hidden: int = 128, n_out: int = 1, bias: bool = True):
        super().__init__()
        for name, value in {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out}.items():
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        self.layer = nn.Linear(n_in, n_hidden, bias=bias)  # (h, g)
        self.head = nn.Linear(n_hidden, n_out, bias=bias)  # (t, h)

    def hidden(self, x):
        """Hidden activations ``relu(W x + b)``: ``(n, g) -> (n, h)``."""
        return nn.functional.relu(self.layer(x))

    def forward(self, x):
        """``(n, g) -> (n, t)``."""
        return self.head(self.hidden(x))


def tune_on_validation(fit_one: Callable, grid: Sequence, name: str = "param") -> tuple[object, pd.DataFrame]:
    """Fit one model per grid value and keep the best on validation.

    ``fit_one(value)`` returns ``(model, validation_score)`` with higher = better. Returns the best
    model (the first one on ties) and a table with one row per value (columns ``name``, ``val_score``,
    ``selected``). The test set never enters this function.
    """
    grid = list(grid)
    if not grid:
        raise ValueError("The grid is empty; give at least one value to try.")
    models, scores = [], []
    for value in grid:
        model, score = fit_one(value)
        if not np.isfinite(score):
            raise ValueError(f"The validation score for {name}={value!r} is {score!r}; it must be finite.")
        models.append(model)
        scores.append(float(score))
    best = int(np.argmax(scores))
    table = pd.DataFrame({name: grid, "val_score": scores, "selected": np.arange(len(grid)) == best})
    return models[best], table


def validation_score(result: FitResult) -> float:
    """The last epoch's validation score of a :func:`~bilinear_core.train.fit` result, higher = better.

    Validation accuracy for classification, minus the validation MAE for regression: the model is scored as it
    ends training (no early stopping).
    """
    if result.task == "classification":
        return float(result.history["val_accuracy"].iloc[-1])
    return -float(result.history["val_mae"].iloc[-1])


def select_on_validation(fits: dict, name: str = "param") -> tuple[FitResult, pd.DataFrame]:
    """The best of fits already made, keyed by the value of the one setting they differ in.

    ``fits`` maps each value (e.g. a weight decay) to its :func:`~bilinear_core.train.fit` result, scored by
    :func:`validation_score`. Returns the best fit (the first in the order of ``fits`` on ties) and the table
    of :func:`tune_on_validation` (columns ``name``, ``val_score``, ``selected``).
    """
    return tune_on_validation(lambda value: (fits[value], validation_score(fits[value])), list(fits), name)


def _rows(X, idx):
    return X[np.asarray(idx)]


def fit_logistic(
    X, labels, train_idx, val_idx, Cs=(0.01, 0.1, 1.0), max_iter: int = 500
) -> tuple[object, pd.DataFrame]:
    """Multinomial logistic regression on ``X (n, g)``, inverse regularisation ``C`` chosen by validation accuracy.

    Each ``C`` after the first starts from the previous one's solution (the problem is strictly convex, so the
    optimum is the same once the solver converges within ``max_iter``; list ``Cs`` in ascending order for the
    fewest iterations). Returns the fitted best
    :class:`sklearn.linear_model.LogisticRegression` and the tuning table.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels).astype(str)
    X = X if sparse.issparse(X) else as_dense_float(X)
    if X.shape[0] != len(labels):
        raise ValueError(f"X has {X.shape[0]} cells but the labels have {len(labels)} entries.")
    previous = None

    def fit_one(C):
        nonlocal previous
        model = LogisticRegression(C=C, max_iter=max_iter, warm_start=True)
        if previous is not None:  # warm start: scikit-learn starts from coef_ / intercept_ when they are set
            model.coef_, model.intercept_ = previous.coef_.copy(), previous.intercept_.copy()
        model.fit(_rows(X, train_idx), labels[train_idx])
        previous = model
        return model, float((model.predict(_rows(X, val_idx)) == labels[val_idx]).mean())

    return tune_on_validation(fit_one, Cs, "C")


def fit_ridge(X, targets, train_idx, val_idx, alphas=(0.1, 1.0, 10.0, 100.0)) -> tuple[object, pd.DataFrame]:
    """Ridge regression of ``targets (n, t)`` on ``X (n, g)``, ``alpha`` chosen by lowest mean validation MAE.

    Returns the fitted best :class:`sklearn.linear_model.Ridge` and the tuning table (``val_score`` is
    minus the validation MAE).
    """
    from sklearn.linear_model import Ridge

    targets = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    X = X if sparse.issparse(X) else as_dense_float(X)
    if X.shape[0] != len(targets):
        raise ValueError(f"X has {X.shape[0]} cells but the targets have {len(targets)} rows.")

    def fit_one(alpha):
        model = Ridge(alpha=alpha).fit(_rows(X, train_idx), targets[train_idx])
        predicted = model.predict(_rows(X, val_idx)).reshape(len(val_idx), -1)  # (n,) for a single target
        return model, -float(np.abs(predicted - targets[val_idx]).mean())

    return tune_on_validation(fit_one, alphas, "alpha")


# --------------------------------------------------------------------------------------------- metrics


def classification_scores(y_true, y_pred, classes: Sequence[str] | None = None) -> pd.Series:
    """Accuracy, macro-F1 and per-class recall of predicted labels ``(n,)`` against true labels ``(n,)``.

    Index: ``accuracy``, ``macro_f1``, then ``recall <class>`` for every class in ``classes``
    (default: the sorted true labels). Macro-F1 averages over ``classes``.
    """
    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d and of equal length, got {y_true.shape} and {y_pred.shape}.")
    if len(y_true) == 0:
        raise ValueError("No cells to score.")
    classes = sorted(set(y_true)) if classes is None else [str(c) for c in classes]
    recall = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    values = {
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
    }
    values.update({f"recall {c}": float(r) for c, r in zip(classes, recall)})
    return pd.Series(values)


def regression_scores(y_true, y_pred, output_names: Sequence[str] | None = None) -> pd.Series:
    """Mean absolute error and R² of predictions against targets, both ``(n, t)`` (or ``(n,)``).

    Index: ``mae`` and ``r2`` (means over outputs), then ``mae <output>`` and ``r2 <output>`` per output.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {y_true.shape} and {y_pred.shape}.")
    y_true, y_pred = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
    if len(y_true) < 2:
        raise ValueError("R² needs at least 2 cells.")
    names = [str(i) for i in range(y_true.shape[1])] if output_names is None else [str(o) for o in output_names]
    if len(names) != y_true.shape[1]:
        raise ValueError(f"{len(names)} output names for {y_true.shape[1]} outputs.")
    mae = np.abs(y_true - y_pred).mean(axis=0)
    r2 = r2_score(y_true, y_pred, multioutput="raw_values")
    values = {"mae": float(mae.mean()), "r2": float(r2.mean())}
    values.update({f"mae {o}": float(m) for o, m in zip(names, mae)})
    values.update({f"r2 {o}": float(r) for o, r in zip(names, r2)})
    return pd.Series(values)


def mcnemar(correct_a, correct_b) -> tuple[int, int, float]:
    """Exact McNemar test of two classifiers scored on the same cells.

    ``correct_a`` and ``correct_b`` are boolean ``(n,)`` arrays (prediction right or wrong). Returns
    ``(only_a, only_b, p)``: the cells only ``a`` gets right, the cells only ``b`` gets right, and the
    two-sided binomial p-value of that split under equal accuracy (1 when there is no discordant cell).
    """
    a, b = np.asarray(correct_a), np.asarray(correct_b)
    if a.dtype != bool or b.dtype != bool or a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"Need two boolean 1-d arrays of equal length, got {a.dtype}{a.shape} and {b.dtype}{b.shape}.")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 0, 0, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
