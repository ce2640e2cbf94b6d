"""Training loop for classification and regression with the post's settings."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm import tqdm

from .checks import as_dense_float, check_finite, check_min_cells
from .devices import autocast, model_device, resolve_device
from .model import BilinearMLP

TASKS = ("classification", "regression")
REGRESSION_LOSSES = {"huber": nn.HuberLoss, "mse": nn.MSELoss, "l1": nn.L1Loss}
MIN_CELLS = 10


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (global seed for libraries that use it)
    torch.manual_seed(seed)


@dataclass
class FitResult:
    """A trained model with its split and per-epoch history.

    ``history`` has one row per epoch with ``train_loss`` and ``val_loss`` and either
    ``train_accuracy``/``val_accuracy`` (classification) or ``train_mae``/``val_mae``
    (regression). ``classes`` are the label names in output order (classification);
    ``output_names`` name every output and ``var_names`` every input gene (``None`` when unknown).
    ``settings`` are the arguments that produced the fit (identical on a
    rerun); ``timings`` hold measured speeds, which are not.
    """

    model: BilinearMLP
    history: pd.DataFrame
    train_idx: np.ndarray
    val_idx: np.ndarray
    task: str
    output_names: list[str]
    classes: list[str] | None = None
    var_names: list[str] | None = None
    settings: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def predict(self, X) -> np.ndarray:
        """Model outputs ``(n, t)``: logits (classification) or predictions (regression)."""
        X = torch.from_numpy(as_dense_float(X)).to(model_device(self.model))
        self.model.eval()
        with torch.no_grad():
            return self.model(X).float().cpu().numpy()

    def predict_labels(self, X) -> np.ndarray:
        """Predicted class names ``(n,)`` (classification only)."""
        if self.task != "classification":
            raise ValueError("predict_labels is only defined for classification models.")
        return np.asarray(self.classes)[self.predict(X).argmax(axis=1)]


def split_indices(n: int, val_fraction: float = 0.3, seed: int = 42, stratify=None) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation indices, stratified on ``stratify`` when given."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}.")
    idx = np.arange(n)
    try:
        train_idx, val_idx = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=stratify)
    except ValueError as err:  # e.g. a class with a single cell cannot be stratified
        raise ValueError(f"Cannot split {n} cells into train/validation: {err}") from None
    return np.sort(train_idx), np.sort(val_idx)


def _encode_targets(y, task: str, n: int):
    """Targets as a tensor plus output names (and classes for classification)."""
    if task == "classification":
        # keep the category order of a categorical (e.g. developmental order of clusters)
        if not isinstance(y, pd.Categorical):
            y = np.asarray(y)
            if y.ndim != 1:
                raise ValueError(f"Classification labels must be 1-d, got shape {y.shape}.")
            y = pd.Categorical(y)
        if len(y) != n:
            raise ValueError(f"X has {n} cells but the labels have {len(y)} entries.")
        if y.isna().any():
            raise ValueError(f"The labels contain {int(y.isna().sum())} missing value(s); drop those cells first.")
        y = y.remove_unused_categories()
        classes, codes = [str(c) for c in y.categories], y.codes
        if len(classes) < 2:
            raise ValueError(f"Classification needs at least 2 classes, found {len(classes)}: {classes}.")
        return torch.from_numpy(codes.astype(np.int64)), classes, classes
    y = np.asarray(y, dtype=np.float32)
    if y.shape[0] != n:
        raise ValueError(f"X has {n} cells but the targets have {y.shape[0]} entries.")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"Regression targets must be 1-d or 2-d, got shape {y.shape}.")
    check_finite(y, "The regression targets")
    return torch.from_numpy(np.ascontiguousarray(y)), None, [str(i) for i in range(y.shape[1])]


def check_settings(task: str, loss: str, **positive) -> None:
    """Raise for an unknown ``task`` or regression ``loss``, or a ``positive`` setting below 1."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    if task == "regression" and loss not in REGRESSION_LOSSES:
        raise ValueError(f"loss must be one of {sorted(REGRESSION_LOSSES)}, got {loss!r}.")
    for name, value in positive.items():
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def resolve_split(
    targets: torch.Tensor, task: str, train_idx, val_idx, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The given split, or a seeded one of ``len(targets)`` cells (stratified for classification)."""
    if (train_idx is None) != (val_idx is None):
        raise ValueError("Pass both train_idx and val_idx, or neither.")
    if train_idx is None:
        stratify = targets.numpy() if task == "classification" else None
        return split_indices(len(targets), val_fraction, seed, stratify)
    return np.asarray(train_idx), np.asarray(val_idx)


def optimization(
    model: nn.Module, task: str, loss: str, *, lr: float, weight_decay: float, decoupled_weight_decay: bool, epochs: int
):
    """Adam, its cosine schedule over ``epochs`` and the loss: what :func:`fit` and streaming training share."""
    # fused: PyTorch's fused CPU Adam kernel, ~1.6x faster training than the multi-tensor (foreach) one here; its
    # rounding differs slightly from the other implementations, but reruns with the same seed are bit-identical
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=lr,
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay,
        fused=True,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    criterion = nn.CrossEntropyLoss() if task == "classification" else REGRESSION_LOSSES[loss]()
    return optimizer, scheduler, criterion


def fit_settings(task: str, loss: str, train_idx, val_idx, device, **hyperparameters) -> dict:
    """``FitResult.settings``: the task, the loss actually used, split sizes, device and ``hyperparameters``."""
    return dict(
        task=task, **hyperparameters, loss="cross_entropy" if task == "classification" else loss,
        n_train=len(train_idx), n_val=len(val_idx), device=str(device),
    )  # fmt: skip


def fit(
    X,
    y,
    *,
    task: str = "classification",
    n_hidden: int = 128,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    loss: str = "huber",
    val_fraction: float = 0.3,
    train_idx: np.ndarray | None = None,
    val_idx: np.ndarray | None = None,
    seed: int = 42,
    dropout: float = 0.0,
    bias: bool = False,
    output_names: list[str] | None = None,
    var_names=None,
    progress: bool = True,
    model_factory=None,
    device: str = "auto",
    mixed_precision: bool = False,
) -> FitResult:
    """Train a :class:`~bilinear_core.model.BilinearMLP` with Adam and cosine annealing.

    Parameters
    ----------
    X
        Expression ``(n, g)``, dense or sparse (densified to float32 once).
    y
        Labels ``(n,)`` for classification; targets ``(n,)`` or ``(n, t)`` for regression.
    task
        ``"classification"`` (cross-entropy, stratified split) or ``"regression"``
        (``loss`` of ``"huber"``, ``"mse"`` or ``"l1"``, random split).
    weight_decay, decoupled_weight_decay
        Weight decay of Adam: by default as PyTorch's ``Adam`` applies it (an L2 term added to the
        gradient, the post's "Adam" read literally), or decoupled (AdamW-style) with ``True``.
    train_idx, val_idx
        A fixed split; otherwise ``val_fraction`` of the cells are held out with ``seed``.
    output_names, var_names
        Names of the outputs (default: the classes, or ``"0"``, ``"1"``, …) and of the genes (columns of
        ``X``), kept in the result so that :func:`~bilinear_core.interpret.eigendecompose` needs nothing else.
    epochs, batch_size, lr, seed, n_hidden, dropout, bias
        As in the post: 100 epochs, lr 1e-4, hidden 128, seeds fixed.
    model_factory
        Train another architecture with the same loop: a callable ``(n_in, n_hidden, n_out) -> nn.Module``
        (e.g. :class:`bilinear_core.validation.ReluMLP`), called after seeding; ``dropout`` and ``bias``
        are then ignored. ``None`` (default) trains a :class:`~bilinear_core.model.BilinearMLP`.
    device, mixed_precision
        Where to train: ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``; the
        returned model stays there. ``mixed_precision=True`` runs forward passes under bf16 autocast.
    """
    check_settings(task, loss, epochs=epochs, batch_size=batch_size)
    dev = resolve_device(device)
    X = as_dense_float(X)
    n, g = X.shape
    check_min_cells(n, MIN_CELLS, "Training")
    targets, classes, names = _encode_targets(y, task, n)
    if output_names is not None:
        if len(output_names) != len(names):
            raise ValueError(f"output_names has {len(output_names)} entries for {len(names)} outputs.")
        names = list(output_names)
    if var_names is not None and len(var_names) != g:
        raise ValueError(f"var_names has {len(var_names)} entries for {g} genes (columns of X).")
    train_idx, val_idx = resolve_split(targets, task, train_idx, val_idx, val_fraction, seed)

    set_seed(seed)
    # strong L2 decay drives weights into denormal floats, which are ~2× slower on CPUs; flush them to zero
    torch.set_flush_denormal(True)
    if model_factory is None:
        model = BilinearMLP(g, n_hidden, len(names), dropout=dropout, bias=bias)
    elif not callable(model_factory):
        raise TypeError(f"model_factory must be a callable (n_in, n_hidden, n_out) -> Module, got {model_factory!r}.")
    else:
        model = model_factory(g, n_hidden, len(names))
    optimizer, scheduler, criterion = optimization(
        model,
        task,
        loss,
        lr=lr,
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay,
        epochs=epochs,
    )

    model.to(dev)  # in place: the optimizer holds these same parameters
    X_t = torch.from_numpy(X)
    X_train, y_train = X_t[train_idx].to(dev), targets[train_idx].to(dev)
    X_val, y_val = X_t[val_idx].to(dev), targets[val_idx].to(dev)
    metric = "accuracy" if task == "classification" else "mae"
    generator = torch.Generator().manual_seed(seed)
    rows = []
    bar = tqdm(range(epochs), desc=f"bilinear {task}", disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        loss_sum, metric_sum = 0.0, 0.0
        for batch in torch.randperm(len(train_idx), generator=generator).split(batch_size):
            xb, yb = X_train[batch], y_train[batch]
            with autocast(dev, mixed_precision):
                out = model(xb)
                batch_loss = criterion(out, yb)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            optimizer.step()
            loss_sum += batch_loss.item() * len(batch)
            metric_sum += _metric_sum(out.detach(), yb, task)
        scheduler.step()
        model.eval()
        with torch.no_grad(), autocast(dev, mixed_precision):
            out_val = model(X_val)
            row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / len(train_idx),
                "val_loss": criterion(out_val, y_val).item() if len(val_idx) else np.nan,
                f"train_{metric}": metric_sum / len(train_idx),
                f"val_{metric}": _metric_sum(out_val, y_val, task) / max(len(val_idx), 1),
            }
        rows.append(row)
        bar.set_postfix(val_loss=f"{row['val_loss']:.4g}", **{f"val_{metric}": f"{row[f'val_{metric}']:.3f}"})
    model.eval()
    settings = fit_settings(
        task, loss, train_idx, val_idx, dev, n_hidden=n_hidden, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay, seed=seed, dropout=dropout,
        bias=bias, mixed_precision=mixed_precision,
    )  # fmt: skip
    if model_factory is not None:
        settings["model"] = getattr(model_factory, "__name__", repr(model_factory))
    genes = None if var_names is None else [str(v) for v in var_names]
    return FitResult(model, pd.DataFrame(rows), train_idx, val_idx, task, names, classes, genes, settings)


def _metric_sum(out: torch.Tensor, y: torch.Tensor, task: str) -> float:
    """Number of correct predictions (classification) or summed mean-over-outputs absolute error."""
    if task == "classification":
        return float((out.argmax(dim=1) == y).sum())
    return float((out - y).abs().mean(dim=1).sum())


def classification_report(result: FitResult, X, labels, idx=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-class table and row-normalised confusion matrix on cells ``idx`` (default: validation).

    The table has ``n_cells``, ``recall`` (per-class accuracy) and ``precision`` per class (rows
    in the model's class order); the confusion matrix has true classes as rows, predictions as
    columns, each row summing to 1.
    """
    idx = result.val_idx if idx is None else np.asarray(idx)
    truth = pd.Categorical(np.asarray(labels)[idx].astype(str), categories=result.classes)
    pred = pd.Categorical(result.predict_labels(as_dense_float(X)[idx]), categories=result.classes)
    counts = pd.crosstab(truth, pred, dropna=False).reindex(index=result.classes, columns=result.classes, fill_value=0)
    counts.index.name, counts.columns.name = "true", "predicted"
    diag = np.diag(counts.to_numpy())
    table = pd.DataFrame(
        {
            "n_cells": counts.sum(axis=1).to_numpy(),
            "recall": diag / np.maximum(counts.sum(axis=1).to_numpy(), 1),
            "precision": diag / np.maximum(counts.sum(axis=0).to_numpy(), 1),
        },
        index=pd.Index(result.classes, name="class"),
    )
    return table, counts.div(counts.sum(axis=1).replace(0, 1), axis=0)


def regression_report(result: FitResult, X, targets, idx=None) -> pd.DataFrame:
    """Per-output ``mae``, target ``std`` and ``iqr``, ``r2`` and Pearson ``r`` on ``idx`` (default: validation)."""
    idx = result.val_idx if idx is None else np.asarray(idx)
    y = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)[idx]
    pred = result.predict(as_dense_float(X)[idx]).astype(np.float64)
    resid = pred - y
    return pd.DataFrame(
        {
            "mae": np.abs(resid).mean(axis=0),
            "std": y.std(axis=0),
            "iqr": np.subtract(*np.percentile(y, [75, 25], axis=0)),
            "r2": 1 - (resid**2).sum(axis=0) / ((y - y.mean(axis=0)) ** 2).sum(axis=0),
            "pearson_r": [np.corrcoef(pred[:, i], y[:, i])[0, 1] for i in range(y.shape[1])],
        },
        index=pd.Index(result.output_names, name="output"),
    )
