"""Tests for bilinear_core.baselines on small synthetic data: splits, baseline models, their tuning and scores."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

from bilinear_core import fit
from bilinear_core.baselines import (
    ReluMLP,
    classification_scores,
    fit_logistic,
    fit_ridge,
    mcnemar,
    regression_scores,
    select_on_validation,
    split_train_val_test,
    tune_on_validation,
    validation_score,
)
from bilinear_core.model import BilinearMLP
from bilinear_core.train import FitResult

# ------------------------------------------------------------------------------------------- splits


def test_split_sizes_disjoint_and_stratified():
    labels = np.repeat(["a", "b", "c"], [200, 100, 40])
    train, val, test = split_train_val_test(len(labels), test_fraction=0.15, val_fraction=0.3, stratify=labels)
    assert len(train) + len(val) + len(test) == len(labels)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert len(test) == 51  # ceil(0.15 · 340)
    assert len(val) == 87  # ceil(0.3 · 289)
    for part, fraction in ((test, 0.15), (val, 0.85 * 0.3)):
        counts = pd.Series(labels[part]).value_counts()
        for label, total in (("a", 200), ("b", 100), ("c", 40)):
            assert abs(counts[label] - fraction * total) <= 1.5
    assert all(np.all(np.diff(part) > 0) for part in (train, val, test))


def test_split_fixed_test_seed_keeps_test_and_changes_val():
    labels = np.repeat(["a", "b"], [150, 150])
    _, val1, test1 = split_train_val_test(300, seed=1, test_seed=0, stratify=labels)
    _, val2, test2 = split_train_val_test(300, seed=2, test_seed=0, stratify=labels)
    np.testing.assert_array_equal(test1, test2)
    assert not np.array_equal(val1, val2)
    again = split_train_val_test(300, seed=1, test_seed=0, stratify=labels)
    np.testing.assert_array_equal(again[1], val1)


def test_split_errors():
    with pytest.raises(ValueError, match="shape"):
        split_train_val_test(10, stratify=np.zeros(9))
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val_test(10, test_fraction=1.5)


# ------------------------------------------------------------------------------------------- baselines


def _toy_classification(seed=0, n=120, g=6):
    rng = np.random.default_rng(seed)
    labels = np.repeat(["x", "y", "z"], n // 3)
    X = rng.normal(size=(n, g)).astype(np.float32)
    X[labels == "x", 0] += 4
    X[labels == "y", 1] += 4
    return X, labels


def test_relu_mlp_shapes_and_is_relu():
    model = ReluMLP(5, 7, 3)
    x = torch.randn(4, 5)
    assert model(x).shape == (4, 3)
    assert (model.hidden(x) >= 0).all()
    expected = model.head(torch.clamp(model.layer(x), min=0))
    torch.testing.assert_close(model(x), expected)
    with pytest.raises(ValueError, match="n_hidden"):
        ReluMLP(5, 0, 3)


def test_fit_with_model_factory_trains_relu_and_default_is_unchanged():
    X, labels = _toy_classification()
    relu = fit(X, labels, n_hidden=8, epochs=30, lr=1e-2, progress=False, model_factory=ReluMLP)
    assert isinstance(relu.model, ReluMLP)
    assert relu.settings["model"] == "ReluMLP"
    assert relu.history["val_accuracy"].iloc[-1] > 0.8
    default = fit(X, labels, n_hidden=8, epochs=3, progress=False)
    explicit = fit(X, labels, n_hidden=8, epochs=3, progress=False, model_factory=None)
    assert isinstance(default.model, BilinearMLP) and "model" not in default.settings
    pd.testing.assert_frame_equal(default.history, explicit.history)
    with pytest.raises(TypeError, match="model_factory"):
        fit(X, labels, epochs=1, progress=False, model_factory="relu")


def test_tune_on_validation_picks_best_first_on_ties():
    model, table = tune_on_validation(lambda v: (f"m{v}", -((v - 2) ** 2)), [0, 1, 2, 3, 4], "v")
    assert model == "m2"
    assert table["selected"].tolist() == [False, False, True, False, False]
    model, _ = tune_on_validation(lambda v: (v, 1.0), [5, 6])
    assert model == 5
    with pytest.raises(ValueError, match="empty"):
        tune_on_validation(lambda v: (v, 1.0), [])
    with pytest.raises(ValueError, match="finite"):
        tune_on_validation(lambda v: (v, np.nan), [1])


def test_fit_logistic_and_ridge_on_easy_problems():
    X, labels = _toy_classification()
    train, val, _ = split_train_val_test(len(labels), stratify=labels)
    model, table = fit_logistic(X, labels, train, val, Cs=(0.1, 1.0))
    assert len(table) == 2 and table["selected"].sum() == 1
    assert table["val_score"].max() > 0.9
    assert (model.predict(X[val]) == labels[val]).mean() == table["val_score"].max()
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(100, 3))
    y = Z @ np.array([[1.0, 0.0], [2.0, 1.0], [0.0, -1.0]])
    model, table = fit_ridge(sparse.csr_matrix(Z), y, np.arange(70), np.arange(70, 100), alphas=(1e-6, 100.0))
    assert table["selected"].tolist() == [True, False]
    np.testing.assert_allclose(model.coef_, [[1, 2, 0], [0, 1, -1]], atol=1e-4)
    with pytest.raises(ValueError, match="cells"):
        fit_logistic(X, labels[:-1], train, val)


def _fake_fit(task: str, last: float) -> FitResult:
    """A fit result whose history ends with validation accuracy (classification) or MAE (regression) ``last``."""
    column = "val_accuracy" if task == "classification" else "val_mae"
    history = pd.DataFrame({"epoch": [1, 2], column: [0.5, last]})
    return FitResult(None, history, np.arange(3), np.arange(3, 5), task, ["a", "b"])


def test_validation_score_is_the_last_epoch_higher_better():
    assert validation_score(_fake_fit("classification", 0.75)) == 0.75
    assert validation_score(_fake_fit("regression", 0.2)) == -0.2


def test_select_on_validation_scores_fits_already_made():
    fits = {0.1: _fake_fit("classification", 0.8), 1.0: _fake_fit("classification", 0.9)}
    fits[10.0] = _fake_fit("classification", 0.9)  # a tie with 1.0: the first one wins
    best, table = select_on_validation(fits, "weight_decay")
    assert best is fits[1.0]
    assert table["weight_decay"].tolist() == [0.1, 1.0, 10.0]
    assert table["val_score"].tolist() == [0.8, 0.9, 0.9]
    assert table["selected"].tolist() == [False, True, False]
    best, table = select_on_validation({"x": _fake_fit("regression", 0.3), "y": _fake_fit("regression", 0.1)})
    assert best is not None and table.loc[table["selected"], "param"].item() == "y"  # lower MAE
    with pytest.raises(ValueError, match="empty"):
        select_on_validation({})


# ------------------------------------------------------------------------------------------- metrics


def test_classification_scores_by_hand():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "b", "a"]
    s = classification_scores(y_true, y_pred, classes=["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["recall a"] == pytest.approx(2 / 3)
    assert s["recall b"] == 1.0 and s["recall c"] == 0.0
    # F1: a = 2·(2/3·2/3)/(4/3) = 2/3, b = 2·(2/3·1)/(5/3) = 0.8, c = 0
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    with pytest.raises(ValueError, match="equal length"):
        classification_scores(["a"], ["a", "b"])


def test_regression_scores_by_hand():
    y = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 4.0]])
    pred = np.array([[0.0, 1.0], [1.0, 2.0], [3.0, 4.0]])
    s = regression_scores(y, pred, ["u", "v"])
    assert s["mae u"] == pytest.approx(1 / 3) and s["mae v"] == pytest.approx(1 / 3)
    assert s["r2 u"] == pytest.approx(1 - 1 / 2)  # SSE 1, SST 2
    assert s["r2 v"] == pytest.approx(1 - 1 / 6)  # SSE 1, SST 6
    assert s["r2"] == pytest.approx((0.5 + 5 / 6) / 2)
    assert regression_scores(y, y)["r2"] == 1.0
    with pytest.raises(ValueError, match="same shape"):
        regression_scores(y, pred[:, :1])


def test_mcnemar_by_hand():
    a = np.array([True, True, True, False, True, False])
    b = np.array([True, False, False, False, True, True])
    only_a, only_b, p = mcnemar(a, b)
    assert (only_a, only_b) == (2, 1)
    assert p == pytest.approx(1.0)  # 2 vs 1 of 3: P(X ≤ 1) + P(X ≥ 2) = 1
    only_a, only_b, p = mcnemar(np.ones(8, bool), np.zeros(8, bool))
    assert (only_a, only_b) == (8, 0) and p == pytest.approx(2 / 2**8)
    assert mcnemar(a, a) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="boolean"):
        mcnemar(a.astype(int), b)


def test_fit_logistic_warm_start_reaches_the_cold_start_optimum():
    from sklearn.linear_model import LogisticRegression

    X, labels = _toy_classification()
    train, val, _ = split_train_val_test(len(labels), stratify=labels)
    model, table = fit_logistic(X, labels, train, val, Cs=(1e-4, 1.0))
    assert table["selected"].tolist() == [False, True]  # so the returned model was warm-started from C = 1e-4
    cold = LogisticRegression(C=1.0, max_iter=500).fit(X[train], labels[train])
    np.testing.assert_allclose(model.predict_proba(X), cold.predict_proba(X), atol=1e-3)


def test_scores_of_the_last_epoch_of_longer_histories():
    history = pd.DataFrame({"epoch": [1, 2, 3], "val_accuracy": [0.5, 0.6, 0.7], "val_mae": [3.0, 2.0, 1.0]})
    assert validation_score(FitResult(None, history, np.arange(3), np.arange(3, 5), "classification", ["a"])) == 0.7
    assert validation_score(FitResult(None, history, np.arange(3), np.arange(3, 5), "regression", ["a"])) == -1.0


def test_ridge_validation_mae_and_errors_by_hand():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(2)
    Z, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    model, table = fit_ridge(Z, y, np.arange(30), np.arange(30, 40), alphas=(0.5, 50.0))
    assert table.columns[0] == "alpha" and table["alpha"].tolist() == [0.5, 50.0]
    for alpha, score in zip(table["alpha"], table["val_score"]):
        ridge = Ridge(alpha=alpha).fit(Z[:30].astype(np.float32), y[:30])
        assert score == pytest.approx(-np.abs(ridge.predict(Z[30:].astype(np.float32)) - y[30:]).mean(), rel=1e-5)
    with pytest.raises(ValueError, match="^" + re.escape("X has 40 cells but the targets have 39 rows.")):
        fit_ridge(Z, y[:39], np.arange(30), np.arange(30, 39))


def test_regression_scores_of_two_cells_one_output_and_the_errors():
    s = regression_scores([0.0, 2.0], [1.0, 2.0])  # (n,) vectors: one output named "0"
    assert s.index.tolist() == ["mae", "r2", "mae 0", "r2 0"]
    assert s["r2 0"] == pytest.approx(1 - 1 / 2) and s["mae 0"] == 0.5
    with pytest.raises(ValueError, match="^R² needs at least 2 cells.$"):
        regression_scores([1.0], [1.0])
    with pytest.raises(ValueError, match="^" + re.escape("3 output names for 2 outputs.")):
        regression_scores(np.ones((3, 2)), np.ones((3, 2)), ["a", "b", "c"])


def test_mcnemar_refuses_arrays_of_other_shapes():
    for a, b in [(np.ones(3, bool), np.ones(4, bool)), (np.ones((2, 2), bool), np.ones((2, 2), bool))]:
        with pytest.raises(ValueError, match="boolean 1-d arrays of equal length"):
            mcnemar(a, b)
    assert mcnemar(np.array([True, False]), np.array([False, True])) == (1, 1, 1.0)  # one each way


def test_relu_mlp_sizes_biases_and_named_errors():
    model = ReluMLP(5)
    assert (model.layer.in_features, model.layer.out_features, model.head.out_features) == (5, 128, 1)
    bare = ReluMLP(5, 1, 1, bias=False)  # one hidden unit and one output are allowed
    assert bare.layer.bias is None and bare.head.bias is None
    for kwargs, name in [
        ({"n_in": 0}, "n_in"),
        ({"n_in": 3, "n_hidden": 0}, "n_hidden"),
        ({"n_in": 3, "n_out": 0}, "n_out"),
    ]:
        with pytest.raises(ValueError, match=f"^{name} must be a positive integer, got 0.$"):
            ReluMLP(**kwargs)


def test_tuning_tables_name_their_parameter_and_an_empty_grid_is_refused():
    X, labels = _toy_classification()
    train, val, _ = split_train_val_test(len(labels), stratify=labels)
    assert fit_logistic(X, labels, train, val, Cs=(1.0,))[1].columns.tolist() == ["C", "val_score", "selected"]
    assert tune_on_validation(lambda v: (v, v), [1, 2])[1].columns.tolist() == ["param", "val_score", "selected"]
    with pytest.raises(ValueError, match="^The grid is empty; give at least one value to try.$"):
        tune_on_validation(lambda v: (v, v), [])
    with pytest.raises(ValueError, match="^" + re.escape(f"X has {len(labels)} cells but the labels have 3 entries.")):
        fit_logistic(X, labels[:3], train, val)


def test_classification_scores_default_classes_and_classes_never_predicted_against_scikit_learn():
    from sklearn.metrics import f1_score, recall_score

    y_true, y_pred = ["b", "a", "b", "c", "c"], ["b", "b", "b", "c", "a"]
    s = classification_scores(y_true, y_pred)  # classes: the sorted true labels
    assert s.index.tolist() == ["accuracy", "macro_f1", "recall a", "recall b", "recall c"]
    np.testing.assert_allclose(s.iloc[2:], recall_score(y_true, y_pred, labels=["a", "b", "c"], average=None))
    # a class nobody has and nobody is called scores 0 (not 1) and counts in the macro mean
    s = classification_scores(y_true, y_pred, classes=["c", "b", "a", "d"])
    assert s["recall d"] == 0.0 and s.index[2:].tolist() == ["recall c", "recall b", "recall a", "recall d"]
    labels = ["c", "b", "a", "d"]
    assert s["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    with pytest.raises(ValueError, match="^No cells to score.$"):
        classification_scores([], [])
    assert classification_scores(["a"], ["a"])["accuracy"] == 1.0  # one cell is enough


def test_sizes_and_dropout_bounds_are_named():
    for kwargs, message in [
        (dict(n_in=0), "n_in must be a positive integer, got 0."),
        (dict(n_in=3, n_out=0), "n_out must be a positive integer, got 0."),
        (dict(n_in=3, dropout=1.0), "dropout must lie in [0, 1), got 1.0."),
        (dict(n_in=3, dropout=1.5), "dropout must lie in [0, 1), got 1.5."),
    ]:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            BilinearMLP(**kwargs)
    assert BilinearMLP(3).n_hidden == 128  # the post's width by default
    assert ReluMLP(3, 4, 2).head.bias is not None and ReluMLP(3, 4, 2, bias=False).head.bias is None
    a, b, c = split_train_val_test(50), split_train_val_test(50, seed=42), split_train_val_test(50, seed=43)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not np.array_equal(a[2], c[2])


def test_fit_logistic_iterates_as_scikit_learn_from_the_previous_solution():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 30)).astype(np.float32)
    X[:, 0] *= 1e3  # ill-conditioned: lbfgs needs hundreds of iterations and stops unconverged at 500
    y = np.where(X[:, 1] + 0.5 * rng.normal(size=120) > 0, "a", "b")
    train, val = np.arange(80), np.arange(80, 120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model, table = fit_logistic(X, y, train, val, Cs=(1e-3, 1e3))
        first = LogisticRegression(C=1e-3, max_iter=500).fit(X[train], y[train])
        second = LogisticRegression(C=1e3, max_iter=500, warm_start=True)
        second.coef_, second.intercept_ = first.coef_.copy(), first.intercept_.copy()
        second.fit(X[train], y[train])  # scikit-learn's warm start from the first solution
        few = fit_logistic(X, y, train, val, Cs=(1e3,), max_iter=7)[0]
    assert model.C == 1e3 and second.n_iter_[0] == 500
    np.testing.assert_allclose(model.coef_, second.coef_, rtol=1e-10)
    assert few.n_iter_[0] == 7
    with pytest.raises(ValueError, match=r"^X contains 30 NaN or infinite value\(s\)"):  # a row of NaN
        fit_logistic(np.where(np.arange(120)[:, None] == 5, np.nan, X), y, train, val)


def test_regression_scores_of_float32_values_in_float64():
    rng = np.random.default_rng(0)
    truth = (1000 + rng.normal(size=(40, 2))).astype(np.float32)
    pred = (truth + rng.normal(size=(40, 2)).astype(np.float32) / 8).astype(np.float32)
    t, p = truth.astype(np.float64), pred.astype(np.float64)
    scores = regression_scores(truth, pred)
    assert scores["mae"] == pytest.approx(np.abs(t - p).mean(), rel=1e-13)
    r2 = 1 - ((t - p) ** 2).sum(0) / ((t - t.mean(0)) ** 2).sum(0)
    assert scores["r2"] == pytest.approx(r2.mean(), rel=1e-10)
