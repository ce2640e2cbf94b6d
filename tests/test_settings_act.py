"""Every training setting acts as documented, against expectations computed independently in NumPy.

One full batch per epoch makes training a short, exact recurrence: the gradient of the loss at the current
weights (derived by hand for ``P ((W x) ⊙ (V x))``), one Adam or AdamW step with the epoch's cosine-annealed
learning rate, repeated. The oracle starts from the model ``fit`` initialises (``torch.manual_seed(seed)`` then
``BilinearMLP(...)``, as the training loop does) and never calls the training code.
"""

import numpy as np
import pytest
import torch

import bilinear_core as bc
from bilinear_core.model import BilinearMLP

N, G, H, T = 14, 5, 3, 2
TRAIN, VAL = np.arange(11), np.arange(11, 14)
LR, BETAS, EPS = 0.05, (0.9, 0.999), 1e-8


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, G)).astype(np.float32)
    y = rng.normal(size=(N, T)).astype(np.float32)
    return X, y


def _initial(seed=42, n_out=T):
    """W, V, P (float64) of the model ``fit`` starts from."""
    torch.manual_seed(seed)
    model = BilinearMLP(G, H, n_out)
    return [m.weight.detach().double().numpy().copy() for m in (model.left, model.right, model.head)]


def _forward(params, X):
    W, V, P = params
    a, b = X @ W.T, X @ V.T
    return a, b, (a * b) @ P.T


def _gradients(params, X, d_out):
    """Gradients of ``Σ d_out ⊙ y`` w.r.t. W, V, P for ``y = P ((W x) ⊙ (V x))`` (chain rule by hand)."""
    W, V, P = params
    a, b, _ = _forward(params, X)
    d_hidden = d_out @ P  # (n, h)
    return [(d_hidden * b).T @ X, (d_hidden * a).T @ X, d_out.T @ (a * b)]


def _loss_and_slope(kind, pred, y):
    """Mean loss over all entries and its derivative w.r.t. ``pred``, as torch's MSE, L1 and Huber (δ = 1)."""
    r = pred - y
    if kind == "mse":
        return (r**2).mean(), 2 * r / r.size
    if kind == "l1":
        return np.abs(r).mean(), np.sign(r) / r.size
    huber = np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5)
    return huber.mean(), np.clip(r, -1, 1) / r.size


def _adam_oracle(X, y, epochs, weight_decay=0.0, decoupled=False, loss="mse", cosine=True):
    """The weights after ``epochs`` full-batch steps of Adam (L2 in the gradient) or AdamW, cosine-annealed."""
    params = _initial()
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    X, y = X[TRAIN].astype(np.float64), y[TRAIN].astype(np.float64)
    for step in range(1, epochs + 1):
        lr = LR * (1 + np.cos(np.pi * (step - 1) / epochs)) / 2 if cosine else LR  # stepped once per epoch
        _, _, pred = _forward(params, X)
        grads = _gradients(params, X, _loss_and_slope(loss, pred, y)[1])
        for i, (p, g) in enumerate(zip(params, grads)):
            if decoupled:
                p *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p
            m[i] = BETAS[0] * m[i] + (1 - BETAS[0]) * g
            v[i] = BETAS[1] * v[i] + (1 - BETAS[1]) * g**2
            m_hat, v_hat = m[i] / (1 - BETAS[0] ** step), v[i] / (1 - BETAS[1] ** step)
            p -= lr * m_hat / (np.sqrt(v_hat) + EPS)
    return params


def _fit(X, y, **kwargs):
    options = dict(task="regression", loss="mse", n_hidden=H, lr=LR, batch_size=64, progress=False)
    return bc.fit(X, y, train_idx=TRAIN, val_idx=VAL, **(options | kwargs))


def _weights(result):
    model = result.model
    return [m.weight.detach().double().numpy() for m in (model.left, model.right, model.head)]


@pytest.mark.parametrize(
    ("weight_decay", "decoupled"), [(0.0, False), (2.0, False), (2.0, True)], ids=["none", "L2", "decoupled"]
)
def test_adam_adamw_and_the_cosine_schedule_match_the_recurrence_by_hand(weight_decay, decoupled):
    X, y = _data()
    result = _fit(X, y, epochs=3, weight_decay=weight_decay, decoupled_weight_decay=decoupled)
    expected = _adam_oracle(X, y, 3, weight_decay, decoupled)
    for got, want in zip(_weights(result), expected):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)


def test_the_oracle_tells_the_readings_of_weight_decay_and_the_schedule_apart():
    """The three readings (and a constant learning rate) give weights further apart than the tolerance above."""
    X, y = _data()
    readings = [_adam_oracle(X, y, 3), _adam_oracle(X, y, 3, 2.0), _adam_oracle(X, y, 3, 2.0, True)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert max(np.abs(a - b).max() for a, b in zip(readings[i], readings[j])) > 1e-3
    constant = _adam_oracle(X, y, 3, cosine=False)  # the first step is the same; the cosine lowers the others
    assert max(np.abs(a - b).max() for a, b in zip(constant, readings[0])) > 1e-3


def test_weight_decay_shrinks_the_weights():
    X, y = _data()
    norms = [
        np.sqrt(sum((w**2).sum() for w in _weights(_fit(X, y, epochs=20, weight_decay=wd, **kw))))
        for wd, kw in ((0.0, {}), (1.0, {}), (1.0, {"decoupled_weight_decay": True}))
    ]
    assert norms[1] < 0.9 * norms[0] and norms[2] < 0.9 * norms[0]


@pytest.mark.parametrize("loss", ["mse", "l1", "huber"])
def test_each_regression_loss_is_the_loss_by_hand(loss):
    """Epoch 1's training loss is the loss of the initial weights on the one full batch."""
    X, y = _data()
    y = 3 * y  # residuals beyond Huber's δ = 1, so that the three losses differ
    result = _fit(X, y, epochs=2, loss=loss)
    _, _, pred = _forward(_initial(), X[TRAIN].astype(np.float64))
    expected, _ = _loss_and_slope(loss, pred, y[TRAIN].astype(np.float64))
    np.testing.assert_allclose(result.history["train_loss"].iloc[0], expected, rtol=1e-5)
    for got, want in zip(_weights(result), _adam_oracle(X, y, 2, loss=loss)):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)


def test_classification_loss_is_cross_entropy_by_hand():
    X, _ = _data()
    labels = np.resize(["a", "b", "c"], N)
    result = bc.fit(X, labels, train_idx=TRAIN, val_idx=VAL, n_hidden=H, lr=LR, batch_size=64, epochs=1, progress=False)
    _, _, logits = _forward(_initial(n_out=3), X[TRAIN].astype(np.float64))
    codes = np.searchsorted(["a", "b", "c"], labels[TRAIN])
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -log_softmax[np.arange(len(TRAIN)), codes].mean()
    np.testing.assert_allclose(result.history["train_loss"].iloc[0], expected, rtol=1e-5)
    accuracy = (logits.argmax(axis=1) == codes).mean()
    np.testing.assert_allclose(result.history["train_accuracy"].iloc[0], accuracy)


def test_dropout_acts_in_training_mode_only():
    X, y = _data()
    result = _fit(X, y, epochs=1, dropout=0.5)
    assert result.model.dropout.p == 0.5
    _, _, pred = _forward(_initial(), X[TRAIN].astype(np.float64))
    without, _ = _loss_and_slope("mse", pred, y[TRAIN].astype(np.float64))
    # the first epoch's loss is that of a dropped-out forward pass, not of the full one
    assert abs(result.history["train_loss"].iloc[0] - without) > 1e-3 * without
    model, inputs = result.model, torch.from_numpy(X)
    model.train()
    torch.manual_seed(0)
    first, second = model(inputs), model(inputs)
    assert not torch.allclose(first, second)
    model.eval()
    np.testing.assert_allclose(
        model(inputs).detach().numpy(), _forward(_weights(result), X.astype(np.float64))[2], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("mixed", [False, True])
def test_mixed_precision_runs_the_matmuls_in_bf16_where_it_is_on(mixed):
    seen = set()

    def factory(n_in, n_hidden, n_out):
        model = BilinearMLP(n_in, n_hidden, n_out)
        model.left.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
        return model

    X, y = _data()
    _fit(X, y, epochs=1, mixed_precision=mixed, model_factory=factory)
    assert seen == ({torch.bfloat16} if mixed else {torch.float32})


def test_patience_stops_at_the_epoch_the_history_implies_and_keeps_the_best_weights():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, G)).astype(np.float32)
    y = rng.normal(size=(40, 1)).astype(np.float32)  # noise: validation loss soon rises
    options = dict(task="regression", loss="mse", n_hidden=8, lr=0.05, batch_size=8, epochs=60, progress=False)
    result = bc.fit(X, y, train_idx=np.arange(30), val_idx=np.arange(30, 40), patience=3, **options)
    val = result.history["val_loss"].to_numpy()
    best = [int(np.argmin(val[: e + 1])) for e in range(len(val))]
    stop = next(e for e in range(len(val)) if e - best[e] >= 3)  # first epoch 3 past the best so far
    assert len(val) == stop + 1 < 60
    assert result.best_epoch == best[-1] + 1  # epochs count from 1
    _, _, pred = _forward(_weights(result), X[30:].astype(np.float64))
    np.testing.assert_allclose(((pred - y[30:]) ** 2).mean(), val.min(), rtol=1e-5)  # the best epoch's weights


def test_history_losses_are_the_mean_over_all_cells_of_many_batches():
    """With a learning rate too small to move the weights, each epoch's losses are the losses of the final model
    over every training (in batches of 8) and validation cell, computed by hand."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    y = X[:, 0] * X[:, 1]
    result = bc.fit(X, y, task="regression", n_hidden=3, epochs=2, lr=1e-30, batch_size=8, progress=False, loss="mse")
    residual = result.predict(X)[:, 0] - y
    np.testing.assert_allclose(result.history["train_loss"], (residual**2)[result.train_idx].mean(), rtol=1e-5)
    np.testing.assert_allclose(result.history["val_loss"], (residual**2)[result.val_idx].mean(), rtol=1e-5)
    # the metric too is summed over every batch
    np.testing.assert_allclose(result.history["train_mae"], np.abs(residual)[result.train_idx].mean(), rtol=1e-5)
