import numpy as np
import pandas as pd
import pytest
import torch

import bilinear_core as bc


def _quadratic_problem(n=300, g=8, seed=0):
    """Targets from a planted rule y = x0·x1 − x2², plus the sign of it as a class label."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, g)).astype(np.float32)
    y = X[:, 0] * X[:, 1] - X[:, 2] ** 2
    return X, y


def test_regression_learns_planted_quadratic_rule():
    X, y = _quadratic_problem()
    result = bc.fit(X, y, task="regression", n_hidden=8, epochs=60, batch_size=32, lr=1e-2, loss="mse", progress=False)
    hist = result.history
    assert hist["train_loss"].iloc[-1] < 0.05 * hist["train_loss"].iloc[0]
    assert hist["val_mae"].iloc[-1] < 0.2 * hist["val_mae"].iloc[0]
    # the learnt interaction matrix recovers the planted one: Q[0,1] = Q[1,0] = 0.5, Q[2,2] = -1
    Q = bc.interpret.interaction_matrices(result.model)[0].numpy()
    assert Q[0, 1] == pytest.approx(0.5, abs=0.05)
    assert Q[2, 2] == pytest.approx(-1.0, abs=0.05)
    assert np.abs(Q[3:, 3:]).max() < 0.05


def test_classification_lowers_loss_and_reports():
    X, y = _quadratic_problem(n=400)
    labels = np.where(y > 0, "pos", "neg")
    result = bc.fit(X, labels, task="classification", n_hidden=8, epochs=30, batch_size=32, lr=1e-2, progress=False)
    assert result.classes == ["neg", "pos"]
    assert result.history["train_loss"].iloc[-1] < 0.5 * result.history["train_loss"].iloc[0]
    assert result.history["val_accuracy"].iloc[-1] > 0.85
    table, confusion = bc.train.classification_report(result, X, labels)
    np.testing.assert_allclose(confusion.sum(axis=1), 1.0)
    assert table["n_cells"].sum() == len(result.val_idx)
    # stratified 70/30 split: class proportions preserved
    frac_pos = (labels == "pos").mean()
    assert (labels[result.val_idx] == "pos").mean() == pytest.approx(frac_pos, abs=0.02)
    assert len(result.val_idx) == pytest.approx(0.3 * len(labels), abs=1)
    assert not set(result.train_idx) & set(result.val_idx)


@pytest.mark.parametrize(
    "extra",
    [
        dict(task="regression", weight_decay=0.1),
        dict(task="regression", weight_decay=0.1, decoupled_weight_decay=True),
        dict(task="classification", weight_decay=0.35),
    ],
    ids=["regression-l2", "regression-decoupled", "classification-l2"],
)
def test_same_seed_gives_byte_identical_weights_and_history(extra):
    """Reruns with one seed are bit for bit the same (the fused Adam kernel included), other seeds differ."""
    X, y = _quadratic_problem(n=120)
    if extra["task"] == "classification":
        y = np.where(y > 0, "pos", "neg")
    kwargs = dict(n_hidden=4, epochs=3, batch_size=16, progress=False, **extra)
    a, b = bc.fit(X, y, **kwargs), bc.fit(X, y, **kwargs)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert pa.detach().numpy().tobytes() == pb.detach().numpy().tobytes()
    assert a.history.to_numpy().tobytes() == b.history.to_numpy().tobytes()
    pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)
    c = bc.fit(X, y, **{**kwargs, "seed": 7})
    assert not torch.equal(a.model.left.weight, c.model.left.weight)


def test_categorical_order_is_kept(toy_adata):
    toy_adata.obs["clusters"] = pd.Categorical(toy_adata.obs["clusters"], categories=["B", "A"])
    result = bc.train_classifier(toy_adata, "clusters", n_hidden=4, epochs=1, batch_size=16, progress=False)
    assert result.classes == ["B", "A"]
    assert result.predict(toy_adata.X).shape == (60, 2)


def test_regression_report_values():
    X, y = _quadratic_problem(n=100)
    result = bc.fit(X, y, task="regression", n_hidden=4, epochs=2, progress=False)
    report = bc.train.regression_report(result, X, y)
    pred = result.predict(X[result.val_idx])[:, 0]
    assert report["mae"].iloc[0] == pytest.approx(np.abs(pred - y[result.val_idx]).mean(), rel=1e-5)
    assert report["std"].iloc[0] == pytest.approx(y[result.val_idx].std(), rel=1e-5)
