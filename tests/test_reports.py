"""Values users act on, against independent oracles: predictions against the weights applied by hand, the
classification and regression reports against hand counts, scikit-learn and SciPy, spectra of known matrices."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.metrics import confusion_matrix, precision_score, r2_score, recall_score

import bilinear_core as bc
from bilinear_core.interpret import eigendecompose, spectrum_energy, squared_norms
from bilinear_core.model import BilinearMLP
from bilinear_core.train import FitResult, classification_report, regression_report

CLASSES = ["a", "b", "c"]


def _by_hand(model, X):
    W, V, P = (m.weight.detach().double().numpy() for m in (model.left, model.right, model.head))
    X = np.asarray(X, dtype=np.float64)
    return ((X @ W.T) * (X @ V.T)) @ P.T


@pytest.fixture(scope="module")
def classifier():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 6)).astype(np.float32)
    labels = np.array(CLASSES)[(X[:, 0] * X[:, 1] > 0.3).astype(int) + (X[:, 2] ** 2 > 1.5)]
    result = bc.fit(X, labels, n_hidden=6, epochs=5, lr=1e-2, batch_size=16, progress=False)
    return X, labels, result


def test_predictions_are_the_weights_applied_by_hand_and_give_the_history_s_accuracy(classifier):
    X, labels, result = classifier
    logits = _by_hand(result.model, X)
    np.testing.assert_allclose(result.predict(X), logits, rtol=1e-5, atol=1e-6)
    calls = result.predict_labels(X)
    assert list(calls) == list(np.array(result.classes)[logits.argmax(axis=1)])
    val = result.val_idx
    assert (calls[val] == labels[val]).mean() == pytest.approx(result.history["val_accuracy"].iloc[-1])
    assert (calls[result.train_idx] == labels[result.train_idx]).mean() > 0  # and the training cells are others
    assert set(val).isdisjoint(result.train_idx)


def test_classification_report_against_scikit_learn(classifier):
    X, labels, result = classifier
    table, confusion = classification_report(result, X, labels)
    truth, calls = labels[result.val_idx], result.predict_labels(X[result.val_idx])
    classes = result.classes
    np.testing.assert_allclose(table["recall"], recall_score(truth, calls, labels=classes, average=None))
    np.testing.assert_allclose(
        table["precision"], precision_score(truth, calls, labels=classes, average=None, zero_division=0)
    )
    assert list(table["n_cells"]) == [int((truth == c).sum()) for c in classes]
    expected = confusion_matrix(truth, calls, labels=classes, normalize="true")
    np.testing.assert_allclose(confusion.to_numpy(), np.nan_to_num(expected))


def test_classification_report_on_a_tiny_case_counted_by_hand():
    """A model whose logit for class k is x_k²: the call is the largest |x_k|, so the calls are chosen here."""
    model = BilinearMLP(3, 3, 3)
    with torch.no_grad():
        for layer in (model.left, model.right, model.head):
            layer.weight.copy_(torch.eye(3))
    X = np.diag([1.0, 1.0, 1.0])[[0, 0, 1, 1, 2, 0]]  # calls: a a b b c a
    truth = np.array(["a", "b", "b", "b", "c", "c"])
    result = FitResult(model, pd.DataFrame(), np.arange(0), np.arange(6), "classification", CLASSES, CLASSES)
    table, confusion = classification_report(result, X.astype(np.float32), truth)
    # a: 1 of 1 recalled, 1 of 3 calls right; b: 2 of 3, 2 of 2; c: 1 of 2, 1 of 1
    np.testing.assert_allclose(table["recall"], [1.0, 2 / 3, 1 / 2])
    np.testing.assert_allclose(table["precision"], [1 / 3, 1.0, 1.0])
    np.testing.assert_allclose(confusion.loc["b"], [1 / 3, 2 / 3, 0.0])


def test_regression_report_against_numpy_scipy_and_scikit_learn():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.c_[X[:, 0] * X[:, 1], X[:, 2] ** 2].astype(np.float32)
    result = bc.fit(X, y, task="regression", n_hidden=6, epochs=5, lr=1e-2, batch_size=16, progress=False)
    table = regression_report(result, X, y)
    truth, pred = y[result.val_idx].astype(np.float64), _by_hand(result.model, X[result.val_idx])
    np.testing.assert_allclose(table["mae"], np.abs(pred - truth).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(table["std"], truth.std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(table["iqr"], stats.iqr(truth, axis=0), rtol=1e-6)
    np.testing.assert_allclose(table["r2"], r2_score(truth, pred, multioutput="raw_values"), rtol=1e-4)
    pearson = [stats.pearsonr(pred[:, i], truth[:, i])[0] for i in range(2)]
    np.testing.assert_allclose(table["pearson_r"], pearson, rtol=1e-4)


def test_regression_report_on_a_tiny_case_computed_by_hand():
    model = BilinearMLP(1, 1, 1)
    with torch.no_grad():
        for layer in (model.left, model.right, model.head):
            layer.weight.fill_(1.0)  # y = x²
    X = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)  # predictions 0, 1, 4, 9
    y = np.array([0.0, 2.0, 4.0, 8.0])
    result = FitResult(model, pd.DataFrame(), np.arange(0), np.arange(4), "regression", ["y"])
    row = regression_report(result, X, y).loc["y"]
    assert row["mae"] == pytest.approx(0.5)  # |0| + |−1| + |0| + |1|, over 4
    assert row["std"] == pytest.approx(np.sqrt(8.75))  # mean 3.5: (12.25 + 2.25 + 0.25 + 20.25) / 4
    assert row["iqr"] == pytest.approx(5.0 - 1.5)  # quartiles by linear interpolation: 1.5 and 5
    assert row["r2"] == pytest.approx(1 - 2 / 35)  # residual sum 2, total sum 35
    assert row["pearson_r"] == pytest.approx(np.corrcoef([0, 1, 4, 9], y)[0, 1])


def test_spectra_and_energy_shares_of_matrices_with_known_eigenvalues():
    """W = V = I and P = diag-like rows give Q_a = diag(P[a]): eigenvalues are the head's entries."""
    values = np.array([[3.0, -2.0, 1.0, 0.5], [-4.0, 0.0, 2.0, 1.0]])
    model = BilinearMLP(4, 4, 2)
    with torch.no_grad():
        model.left.weight.copy_(torch.eye(4))
        model.right.weight.copy_(torch.eye(4))
        model.head.weight.copy_(torch.from_numpy(values).float())
    mods = eigendecompose(model, output_names=["u", "v"])
    for a in range(2):
        np.testing.assert_allclose(mods.eigenvalues[a][:4], np.sort(values[a])[::-1], atol=1e-6)
    squared = values**2
    np.testing.assert_allclose(squared_norms(model), squared.sum(axis=1), rtol=1e-6)
    energy = spectrum_energy(mods, ks=(1, 2))
    np.testing.assert_allclose(energy.loc["u"], [9 / 14.25, 13 / 14.25], rtol=1e-6)  # 9, 4 of 9+4+1+0.25
    np.testing.assert_allclose(energy.loc["v"], [16 / 21, 20 / 21], rtol=1e-6)


def test_report_tables_follow_the_models_order_with_a_class_nobody_has():
    """Classes in a non-sorted order and one (d) that no cell has and no cell is called: whole frames by hand."""
    model = BilinearMLP(4, 4, 4)
    with torch.no_grad():
        for layer in (model.left, model.right, model.head):
            layer.weight.copy_(torch.eye(4))
        model.head.weight[3] = 0  # class d is never called
    classes = ["c", "a", "b", "d"]
    X = np.diag([1.0, 1.0, 1.0, 1.0])[[0, 1, 1, 2, 0]].astype(np.float32)  # calls: c a a b c
    truth = np.array(["c", "a", "b", "b", "a"])
    result = FitResult(model, pd.DataFrame(), np.arange(0), np.arange(5), "classification", classes, classes)
    table, confusion = classification_report(result, X, truth)
    expected = pd.DataFrame(
        {"n_cells": [1, 2, 2, 0], "recall": [1.0, 0.5, 0.5, 0.0], "precision": [0.5, 0.5, 1.0, 0.0]},
        index=pd.Index(classes, name="class"),
    )
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    rows = [[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0, 0]]  # c, a, b, d
    expected = pd.DataFrame(rows, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))
    pd.testing.assert_frame_equal(confusion, expected, check_dtype=False, check_index_type=False)
    table, _ = classification_report(result, X, truth, idx=[0, 3])  # other cells
    assert table["n_cells"].tolist() == [1, 0, 1, 0]
    torch.manual_seed(0)
    regression = FitResult(BilinearMLP(4, 4, 4), pd.DataFrame(), np.arange(0), np.arange(3), "regression", list("uvwz"))
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    report = regression_report(regression, X, np.arange(20, dtype=float).reshape(5, 4), idx=[0, 1, 2, 4])
    assert report.index.name == "output" and report.index.tolist() == ["u", "v", "w", "z"]
    np.testing.assert_allclose(report["std"], np.arange(20.0).reshape(5, 4)[[0, 1, 2, 4]].std(axis=0))
