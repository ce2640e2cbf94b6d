"""One training loop for classification and regression, with the post's settings.

:class:`TrainSettings` holds the hyper-parameters every data source shares; ``train_model`` runs the
epochs (Adam, cosine annealing, validation after each epoch, history, progress bar) over batches from a
source: ``MemorySource`` (tensors on the device, used by :func:`fit`) or the streamed source of
:mod:`bilinear_core.stream` (cells read from ``.h5ad`` files, also under DDP with
:mod:`bilinear_core.distributed`).
"""

from __future__ import annotations

import numbers
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm import tqdm

from .checks import as_dense_float, check_finite, check_min_cells, check_positive_integers
from .devices import autocast, check_device, model_device, resolve_device
from .model import BilinearMLP
from .model import ensemble as ensemble_model
from .parallel import run_jobs
from .regularisation import EarlyStopping, collapse_latent, expand_inputs, gene_set_groups, proximal_step

# public API (the API reference documents these); the rest (the loop, its sources, the jobs of fit_many) serves
# fit, fit_many, tl.train, stream.fit_stream, distributed.fit_distributed and evaluation.evaluate_settings
__all__ = [
    "TrainSettings",
    "FitResult",
    "split_indices",
    "fit",
    "fit_many",
    "ensemble",
    "classification_report",
    "regression_report",
]

TASKS = ("classification", "regression")
REGRESSION_LOSSES = {"huber": nn.HuberLoss, "mse": nn.MSELoss, "l1": nn.L1Loss}
MIN_CELLS = 10
# the hyper-parameters FitResult.settings records, in its order (task first; loss, split sizes and device last)
RECORDED = (
    "n_hidden", "epochs", "batch_size", "lr", "weight_decay", "decoupled_weight_decay", "seed", "dropout", "bias",
    "mixed_precision", "patience", "l1_penalty", "gene_penalty", "gene_set_penalty", "gene_sets",
)  # fmt: skip


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (global seed for libraries that use it)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class TrainSettings:
    """The training settings every data source shares (defaults: the post's), checked when created.

    Parameters
    ----------
    task
        ``"classification"`` (cross-entropy; stratified split) or ``"regression"`` (``loss``; random split).
    n_hidden, epochs, batch_size, lr
        Hidden width, epochs, cells per batch (per process under DDP) and Adam's learning rate, annealed
        to 0 over ``epochs`` with a cosine schedule: 128, 100, 64 and 1e-4 as in the post.
    weight_decay, decoupled_weight_decay
        Weight decay of Adam: by default as PyTorch's ``Adam`` applies it (an L2 term added to the
        gradient, the post's "Adam" read literally), or decoupled (AdamW-style) with ``True``.
    loss
        Regression loss: ``"huber"``, ``"mse"`` or ``"l1"`` (classification always uses cross-entropy).
    val_fraction, seed
        Share of cells held out for validation when no split is given, and the seed of the split, the
        initial weights and the batch order.
    dropout, bias
        Dropout on the hidden units and biases in the layers (``bias=False`` keeps interpretation exact).
    device, mixed_precision
        Where to train: ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"`` (``"cuda:N"``) or
        ``"mps"``; the model stays there. ``mixed_precision=True`` runs forward passes under bf16 autocast.
    progress
        Show a progress bar (cells trained, validation loss and metric after each epoch).
    patience
        Early stopping: stop once the validation loss has not improved for ``patience`` epochs and restore
        the best epoch's weights (:class:`~bilinear_core.regularisation.EarlyStopping`); ``None`` (default):
        train all ``epochs``.
    l1_penalty, gene_penalty, gene_set_penalty, gene_sets
        Sparsity priors on the bilinear factors ``W``, ``V``, applied as proximal steps so that weights
        reach exact zeros (:mod:`bilinear_core.regularisation`): L1 on every weight; a per-gene group lasso
        (a gene's weights in both factors leave together); a gene-set group lasso (latent group lasso over
        the sets of ``gene_sets``, a ``{name: genes}`` dict or a library name, in-memory training only).
        0 (default): no penalty. The two group penalties exclude each other; either combines with L1.
    """

    task: str = "classification"
    n_hidden: int = 128
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    loss: str = "huber"
    val_fraction: float = 0.3
    seed: int = 42
    dropout: float = 0.0
    bias: bool = False
    device: str | torch.device = "auto"
    mixed_precision: bool = False
    progress: bool = True
    patience: int | None = None
    l1_penalty: float = 0.0
    gene_penalty: float = 0.0
    gene_set_penalty: float = 0.0
    gene_sets: str | dict | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}.")
        if self.task == "regression" and self.loss not in REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {sorted(REGRESSION_LOSSES)} for regression, got {self.loss!r}.")
        if self.task == "classification" and self.loss not in (*REGRESSION_LOSSES, "cross_entropy"):
            raise ValueError(f"loss must be one of {sorted(REGRESSION_LOSSES)} or 'cross_entropy', got {self.loss!r}.")
        check_positive_integers(n_hidden=self.n_hidden, epochs=self.epochs, batch_size=self.batch_size)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"seed must be an integer, got {self.seed!r}.")
        for name, low, high, closed in (
            ("lr", 0.0, np.inf, False), ("weight_decay", 0.0, np.inf, True), ("val_fraction", 0.0, 1.0, False),
            ("dropout", 0.0, 1.0, True), ("l1_penalty", 0.0, np.inf, True), ("gene_penalty", 0.0, np.inf, True),
            ("gene_set_penalty", 0.0, np.inf, True),
        ):  # fmt: skip
            value = getattr(self, name)
            inside = isinstance(value, numbers.Real) and (low <= value if closed else low < value) and value < high
            if isinstance(value, bool) or not inside:
                interval = f"{'[' if closed else '('}{low:g}, {high:g})"
                raise ValueError(f"{name} must be a number in {interval}, got {value!r}.")
        for name in ("decoupled_weight_decay", "bias", "mixed_precision", "progress"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        check_device(self.device)
        if self.patience is not None:
            check_positive_integers(patience=self.patience)
        if self.gene_penalty > 0 and self.gene_set_penalty > 0:
            raise ValueError("gene_penalty and gene_set_penalty exclude each other; set one of them to 0.")
        if (self.gene_set_penalty > 0) != (self.gene_sets is not None):
            raise ValueError("gene_set_penalty > 0 needs gene_sets (a {name: genes} dict or a library name), and back.")

    @classmethod
    def resolve(cls, settings: TrainSettings | None = None, **overrides) -> TrainSettings:
        """``settings`` (default: the post's) with the fields in ``overrides`` replaced, checked once."""
        unknown = sorted(set(overrides) - set(SETTING_NAMES))
        if unknown:
            raise TypeError(f"Unknown training setting(s) {unknown}; TrainSettings has {list(SETTING_NAMES)}.")
        if settings is None:
            return cls(**overrides)
        if not isinstance(settings, cls):
            raise TypeError(f"settings must be a TrainSettings, got {type(settings).__name__}.")
        return replace(settings, **overrides) if overrides else settings

    def record(self, n_train: int, n_val: int, device: torch.device, **extra) -> dict:
        """``FitResult.settings``: the task, the hyper-parameters, ``extra``, the loss used, split sizes, device."""
        return dict(
            task=self.task, **{name: getattr(self, name) for name in RECORDED}, **extra,
            loss="cross_entropy" if self.task == "classification" else self.loss,
            n_train=n_train, n_val=n_val, device=str(device),
        )  # fmt: skip


SETTING_NAMES = tuple(f.name for f in fields(TrainSettings))


@dataclass
class FitResult:
    """A trained model with its split and per-epoch history.

    ``history`` has one row per epoch with ``train_loss`` and ``val_loss`` and either
    ``train_accuracy``/``val_accuracy`` (classification) or ``train_mae``/``val_mae``
    (regression). ``classes`` are the label names in output order (classification);
    ``output_names`` name every output and ``var_names`` every input gene (``None`` when unknown).
    ``settings`` are the arguments that produced the fit (identical on a
    rerun); ``timings`` hold measured speeds, which are not.

    An ensemble (:func:`fit` with ``seeds``, :func:`ensemble`) holds the member fits in ``members``; its
    ``model`` is their exact mean (:func:`bilinear_core.model.ensemble`), its ``history`` the members' mean per
    epoch and its ``settings`` record the members' ``seeds``. ``preprocessing`` records how the training
    matrix was made (:func:`bilinear_core.tl.train` copies ``adata.uns["preprocessing"]`` of
    :func:`bilinear_core.pp.preprocess` and the layer it read), so that new cells can be checked against it.
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
    members: list | None = None
    preprocessing: dict | None = None

    @property
    def best_epoch(self) -> int:
        """Epoch (from 1) of the lowest validation loss; with early stopping, the epoch of the model's weights."""
        return int(self.history["epoch"].iloc[int(np.argmin(self.history["val_loss"].to_numpy()))])

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


def encode_targets(y, task: str, n: int, output_names=None):
    """Targets as a tensor, the output names (``output_names`` if given) and the classes (classification)."""
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
        targets, names = torch.from_numpy(codes.astype(np.int64)), classes
    else:
        y = np.asarray(y, dtype=np.float32)
        if y.shape[0] != n:
            raise ValueError(f"X has {n} cells but the targets have {y.shape[0]} entries.")
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2:
            raise ValueError(f"Regression targets must be 1-d or 2-d, got shape {y.shape}.")
        check_finite(y, "The regression targets")
        targets, classes, names = torch.from_numpy(np.ascontiguousarray(y)), None, [str(i) for i in range(y.shape[1])]
    if output_names is not None:
        if len(output_names) != len(names):
            raise ValueError(f"output_names has {len(output_names)} entries for {len(names)} outputs.")
        names = list(output_names)
    return targets, names, classes


def resolve_split(targets: torch.Tensor, settings: TrainSettings, train_idx, val_idx) -> tuple[np.ndarray, np.ndarray]:
    """The given split, or a seeded one of ``len(targets)`` cells (stratified for classification)."""
    if (train_idx is None) != (val_idx is None):
        raise ValueError("Pass both train_idx and val_idx, or neither.")
    if train_idx is None:
        stratify = targets.numpy() if settings.task == "classification" else None
        return split_indices(len(targets), settings.val_fraction, settings.seed, stratify)
    return np.asarray(train_idx), np.asarray(val_idx)


# ------------------------------------------------------------------------------------------------- the loop
Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]  # (inputs (b, g), targets (b,) or (b, t)) on the device


class Source(Protocol):
    """Where :func:`train_model` takes its batches from: ``(inputs (b, g), targets (b,) or (b, t))`` on the device.

    ``n_train`` counts the training cells of an epoch over all processes; ``name`` labels the progress bar.
    """

    n_train: int
    name: str

    def train_batches(self, skip: int = 0) -> Batches:
        """This process's training batches of the next epoch (every process yields as many) but the first ``skip``."""

    def val_batches(self) -> Batches:
        """This process's share of the validation cells."""

    def state_dict(self) -> dict:
        """The batch order's generators now: from them ``train_batches`` regenerates an epoch (checkpoints)."""

    def load_state_dict(self, state: dict) -> None:
        """Restore the generators from ``state_dict()``."""


class MemorySource:
    """Expression ``X`` ``(n, g)`` and targets held as tensors on ``device``.

    Each epoch a seeded random permutation of the training cells is cut into batches; validation is one
    pass over all validation cells.
    """

    def __init__(self, X: np.ndarray, targets: torch.Tensor, train_idx, val_idx, settings: TrainSettings, device):
        X_t = torch.from_numpy(X)
        self.X_train, self.y_train = X_t[train_idx].to(device), targets[train_idx].to(device)
        self.X_val, self.y_val = X_t[val_idx].to(device), targets[val_idx].to(device)
        self.n_train, self.batch_size = len(train_idx), settings.batch_size
        self.name = f"bilinear {settings.task}"
        self.generator = torch.Generator().manual_seed(settings.seed)

    def train_batches(self, skip: int = 0) -> Batches:
        for batch in torch.randperm(self.n_train, generator=self.generator).split(self.batch_size)[skip:]:
            yield self.X_train[batch], self.y_train[batch]

    def val_batches(self) -> Batches:
        yield self.X_val, self.y_val

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class SingleProcess:
    """The process group of one process: no wrapping, sums are local (DDP: :mod:`bilinear_core.distributed`)."""

    rank, world_size = 0, 1

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def all_sum(self, values: list[float]) -> list[float]:
        return values


def bind_checkpoint(checkpoint, resume, **run):
    """``checkpoint._bind(resume, **run)``: a :class:`~bilinear_core.checkpoint.Checkpoint` bound to this run, or
    ``None``."""
    if checkpoint is None and resume is False:
        return None
    if not callable(getattr(checkpoint, "_bind", None)):
        raise TypeError(
            "checkpoint must be a bilinear_core.checkpoint.Checkpoint, e.g. Checkpoint('run.ckpt', every=500)"
            f"{' (resume needs one)' if checkpoint is None else ''}; got {checkpoint!r}."
        )
    return checkpoint._bind(resume, **run)


def train_model(
    source: Source,
    settings: TrainSettings,
    n_in: int,
    n_out: int,
    device: torch.device,
    *,
    model_factory=None,
    group=None,
    groups=None,
    checkpoint=None,
) -> tuple[nn.Module, pd.DataFrame, dict]:
    """Seed, build the model (``n_in`` genes, ``n_out`` outputs) on ``device`` and train it on ``source``.

    Adam with a cosine schedule over ``settings.epochs``; after every epoch the validation loss and
    metric over ``source.val_batches()``. Under DDP, ``group`` wraps the model and sums the per-process
    totals. Returns the model (in eval mode), the history (one row per epoch) and
    ``{"train_cells_per_s": ...}`` (training steps only). Penalties of ``settings`` are proximal steps after
    each optimiser step (``groups``: the latent gene-set groups of the inputs, for the gene-set penalty);
    with ``settings.patience`` training stops early and the best epoch's weights are restored.
    ``checkpoint`` (a :class:`~bilinear_core.checkpoint.Checkpointer`) restores a resumed run and saves as it goes.
    """
    group = group or SingleProcess()
    set_seed(settings.seed)
    # strong L2 decay drives weights into denormal floats, which are ~2× slower on CPUs; flush them to zero
    torch.set_flush_denormal(True)
    if model_factory is None:
        model = BilinearMLP(n_in, settings.n_hidden, n_out, dropout=settings.dropout, bias=settings.bias)
    else:
        model = model_factory(n_in, settings.n_hidden, n_out)
    model.to(device)
    # fused: PyTorch's fused CPU Adam kernel, ~1.6x faster training than the multi-tensor (foreach) one here; its
    # rounding differs slightly from the other implementations, but reruns with the same seed are bit-identical
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        decoupled_weight_decay=settings.decoupled_weight_decay,
        fused=True,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    prox = proximal_step(settings, n_in, groups)
    stopper = None if settings.patience is None else EarlyStopping(settings.patience)
    task = settings.task
    criterion = nn.CrossEntropyLoss() if task == "classification" else REGRESSION_LOSSES[settings.loss]()
    net, metric = group.wrap(model), "accuracy" if task == "classification" else "mae"
    rows, cells, seconds = [], 0, 0.0
    first, done, sums = 0, 0, (0.0, 0.0, 0)  # where training starts: epoch, steps taken in it, their sums
    if checkpoint is not None:
        first, done, sums = checkpoint.attach(model, optimizer, scheduler, source, group, rows, stopper)
    bar = tqdm(
        total=settings.epochs * source.n_train, desc=source.name, unit="cell", unit_scale=True,
        disable=not settings.progress or group.rank != 0,
    )  # fmt: skip
    for epoch in range(first, settings.epochs):
        start = time.perf_counter()
        net.train()
        loss_sum, metric_sum, seen = sums
        if checkpoint is not None:
            checkpoint.start_epoch()
        for xb, yb in source.train_batches(done):
            with autocast(device, settings.mixed_precision):
                out = net(xb)
                batch_loss = criterion(out, yb)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            optimizer.step()
            if prox is not None:
                prox(model, optimizer.param_groups[0]["lr"])
            loss_sum += batch_loss.item() * len(yb)
            metric_sum += _metric_sum(out.detach(), yb, task)
            seen += len(yb)
            bar.update(len(yb) * group.world_size)
            done += 1
            if checkpoint is not None:
                checkpoint.step(epoch, done, (loss_sum, metric_sum, seen))
        done, sums = 0, (0.0, 0.0, 0)
        scheduler.step()
        seconds += time.perf_counter() - start
        cells += seen
        val_loss, val_metric = _evaluate(model, source.val_batches(), criterion, settings, device, group)
        loss_sum, metric_sum, seen = group.all_sum([loss_sum, metric_sum, float(seen)])
        rows.append(
            {
                "epoch": epoch + 1,
                "train_loss": loss_sum / seen,
                "val_loss": val_loss,
                f"train_{metric}": metric_sum / seen,
                f"val_{metric}": val_metric,
            }
        )
        bar.set_postfix(epoch=epoch + 1, val_loss=f"{val_loss:.4g}", **{f"val_{metric}": f"{val_metric:.3f}"})
        stop = stopper is not None and stopper.update(epoch + 1, val_loss, model)
        if checkpoint is not None:
            checkpoint.end_epoch(epoch, stop)
        if stop:
            break
    bar.close()
    if stopper is not None:
        stopper.restore(model)
    model.eval()
    return model, pd.DataFrame(rows), {"train_cells_per_s": cells * group.world_size / max(seconds, 1e-12)}


def _evaluate(model, batches: Batches, criterion, settings: TrainSettings, device, group) -> tuple[float, float]:
    """Loss and metric averaged over the validation cells of every process (NaN without validation cells)."""
    model.eval()
    loss_sum, metric_sum, seen = 0.0, 0.0, 0
    with torch.no_grad(), autocast(device, settings.mixed_precision):
        for xb, yb in batches:
            out = model(xb)
            loss_sum += criterion(out, yb).item() * len(yb)
            metric_sum += _metric_sum(out, yb, settings.task)
            seen += len(yb)
    loss_sum, metric_sum, seen = group.all_sum([loss_sum, metric_sum, float(seen)])
    return (loss_sum / seen, metric_sum / seen) if seen else (np.nan, np.nan)


def _metric_sum(out: torch.Tensor, y: torch.Tensor, task: str) -> float:
    """Number of correct predictions (classification) or summed mean-over-outputs absolute error."""
    if task == "classification":
        return float((out.argmax(dim=1) == y).sum())
    return float((out - y).abs().mean(dim=1).sum())


# ------------------------------------------------------------------------------------------------ in memory
def fit(
    X,
    y,
    *,
    settings: TrainSettings | None = None,
    train_idx: np.ndarray | None = None,
    val_idx: np.ndarray | None = None,
    output_names: list[str] | None = None,
    var_names=None,
    model_factory=None,
    checkpoint=None,
    resume=False,
    seeds=None,
    n_jobs: int = 1,
    **hyperparameters,
) -> FitResult:
    """Train a :class:`~bilinear_core.model.BilinearMLP` on ``X`` held in memory (Adam, cosine annealing).

    Parameters
    ----------
    X
        Expression ``(n, g)``, dense or sparse (densified to float32 once).
    y
        Labels ``(n,)`` for classification; targets ``(n,)`` or ``(n, t)`` for regression.
    settings, hyperparameters
        A :class:`TrainSettings` (default: the post's), and/or its fields as keywords (``task``,
        ``n_hidden``, ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``decoupled_weight_decay``,
        ``loss``, ``val_fraction``, ``seed``, ``dropout``, ``bias``, ``device``, ``mixed_precision``,
        ``progress``, ``patience``, ``l1_penalty``, ``gene_penalty``, ``gene_set_penalty``, ``gene_sets``),
        which replace those of ``settings``.
    train_idx, val_idx
        A fixed split; otherwise ``val_fraction`` of the cells are held out with ``seed``.
    output_names, var_names
        Names of the outputs (default: the classes, or ``"0"``, ``"1"``, …) and of the genes (columns of
        ``X``), kept in the result so that :func:`~bilinear_core.interpret.eigendecompose` needs nothing else.
    model_factory
        Train another architecture with the same loop: a callable ``(n_in, n_hidden, n_out) -> nn.Module``
        (e.g. :class:`bilinear_core.baselines.ReluMLP`), called after seeding; ``dropout`` and ``bias``
        are then ignored. ``None`` (default) trains a :class:`~bilinear_core.model.BilinearMLP`.
    checkpoint, resume
        A :class:`bilinear_core.checkpoint.Checkpoint` (a path, saved every ``every`` steps and at epoch ends)
        and whether to continue from it: ``False``, ``True`` or ``"auto"`` (when the file exists). A resumed
        fit ends with the weights and history of an uninterrupted one; other settings, genes, outputs or split
        than the checkpoint's are refused.
    seeds, n_jobs
        Train an ensemble instead: one fit per seed (initial weights and batch order), all on the split of
        ``seed``, in ``n_jobs`` processes (:func:`fit_many`), combined by :func:`ensemble` into one exact
        bilinear MLP with the fits in ``result.members``.

    Notes
    -----
    With ``gene_set_penalty`` the model trains on latent copies of the genes, one per gene set holding them
    (:func:`~bilinear_core.regularisation.gene_set_groups` of ``var_names``, which it then needs), and the
    result holds the equivalent model on the ``g`` genes (copies summed); ``settings["latent_inputs"]``
    records the number of copies.
    """
    settings = TrainSettings.resolve(settings, **hyperparameters)
    if seeds is not None:
        return _fit_ensemble(
            X, y, settings, seeds, n_jobs, train_idx=train_idx, val_idx=val_idx, output_names=output_names,
            var_names=var_names, model_factory=model_factory, checkpoint=checkpoint, resume=resume,
        )  # fmt: skip
    if model_factory is not None and not callable(model_factory):
        raise TypeError(f"model_factory must be a callable (n_in, n_hidden, n_out) -> Module, got {model_factory!r}.")
    penalised = settings.l1_penalty > 0 or settings.gene_penalty > 0 or settings.gene_set_penalty > 0
    if model_factory is not None and penalised:
        raise ValueError("The penalties act on the bilinear factors W, V: train them with model_factory=None.")
    dev = resolve_device(settings.device)
    X = as_dense_float(X)
    n, g = X.shape
    check_min_cells(n, MIN_CELLS, "Training")
    targets, names, classes = encode_targets(y, settings.task, n, output_names)
    if var_names is not None and len(var_names) != g:
        raise ValueError(f"var_names has {len(var_names)} entries for {g} genes (columns of X).")
    train_idx, val_idx = resolve_split(targets, settings, train_idx, val_idx)
    groups, extra = None, {}
    if settings.gene_set_penalty > 0:
        if var_names is None:
            raise ValueError("The gene-set penalty needs var_names (the genes of X's columns) to match the sets.")
        groups = gene_set_groups(var_names, settings.gene_sets)
        X, extra = expand_inputs(X, groups), {"latent_inputs": groups.n_inputs}
    record = settings.record(len(train_idx), len(val_idx), dev, **extra)
    checkpoint = bind_checkpoint(
        checkpoint, resume, settings=record, var_names=var_names, output_names=names, train_idx=train_idx,
        val_idx=val_idx,
    )  # fmt: skip
    source = MemorySource(X, targets, train_idx, val_idx, settings, dev)
    model, history, timings = train_model(
        source, settings, X.shape[1], len(names), dev, model_factory=model_factory, groups=groups,
        checkpoint=checkpoint,
    )  # fmt: skip
    if groups is not None:
        model = collapse_latent(model, groups)
    if model_factory is not None:
        record["model"] = getattr(model_factory, "__name__", repr(model_factory))
    genes = None if var_names is None else [str(v) for v in var_names]
    return FitResult(model, history, train_idx, val_idx, settings.task, names, classes, genes, record, timings)


def _fit_ensemble(X, y, settings: TrainSettings, seeds, n_jobs: int, **kwargs) -> FitResult:
    """:func:`fit` with ``seeds``: one fit per seed on one split (that of ``settings.seed``), combined exactly."""
    if kwargs.pop("model_factory") is not None:
        raise ValueError("seeds= builds an exact ensemble of bilinear MLPs; it cannot train a model_factory.")
    if kwargs.pop("checkpoint") is not None or kwargs.pop("resume") is not False:
        raise ValueError("Checkpoints save one fit; train the members one by one to checkpoint them.")
    seeds = list(seeds) if not isinstance(seeds, str) else [seeds]
    if not seeds or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}.")
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"seeds must differ from each other, got {seeds}: equal seeds give equal members.")
    X = as_dense_float(X)
    check_min_cells(X.shape[0], MIN_CELLS, "Training")
    targets, _, _ = encode_targets(y, settings.task, X.shape[0], kwargs["output_names"])
    train_idx, val_idx = resolve_split(targets, settings, kwargs.pop("train_idx"), kwargs.pop("val_idx"))
    runs = {int(s): {"seed": int(s)} for s in seeds}
    fits = fit_many(X, y, runs, n_jobs=n_jobs, settings=settings, train_idx=train_idx, val_idx=val_idx, **kwargs)
    return ensemble([fits[int(s)] for s in seeds])


def ensemble(results) -> FitResult:
    """Fits of one task, outputs, genes and split combined into one exact ensemble fit result.

    The model is :func:`bilinear_core.model.ensemble` of the members' (the mean of their outputs and of
    their ``Q_a``), the history the members' mean per epoch; ``settings`` are the first member's with ``seed``
    replaced by ``seeds`` (every member's), ``members`` the fits themselves.
    """
    results = list(results)
    if not results or not all(isinstance(r, FitResult) for r in results):
        raise TypeError("ensemble needs a non-empty list of FitResult objects.")
    first = results[0]
    for i, r in enumerate(results[1:], start=1):
        same = (r.task, list(r.output_names), r.var_names) == (first.task, list(first.output_names), first.var_names)
        split = np.array_equal(r.train_idx, first.train_idx) and np.array_equal(r.val_idx, first.val_idx)
        if not same or not split:
            raise ValueError(
                f"Member {i} differs from member 0 in its task, outputs, genes or train/validation split; "
                "an ensemble combines fits of one task on one split."
            )
    members = [m for r in results for m in (r.members or [r])]  # an ensemble of ensembles is flat
    history = pd.concat([m.history for m in members]).groupby("epoch", as_index=False).mean()
    settings = {k: v for k, v in first.settings.items() if k != "seed"}
    settings["seeds"] = [m.settings.get("seed") for m in members]
    return FitResult(
        ensemble_model(m.model for m in members), history, first.train_idx, first.val_idx, first.task,
        list(first.output_names), first.classes, first.var_names, settings, {}, members, first.preprocessing,
    )  # fmt: skip


def fit_many(X, y, runs: dict, *, n_jobs: int = 1, **common) -> dict:
    """Independent fits, ``{key: fit(X, y, **common | runs[key])}``, run in ``n_jobs`` processes at once.

    ``runs`` maps a key to the keywords of :func:`fit` that differ between runs (``weight_decay``, ``seed``,
    ``train_idx``, ``settings``, ``model_factory``, …) or to a :class:`TrainSettings` (``{"settings": …}``);
    ``common`` holds the rest. The processes share this
    one's torch threads (``bilinear_core.parallel.run_jobs``) and every fit is seeded, so each result
    equals the sequential ``fit`` with the same number of threads.
    """
    return run_jobs(fit_jobs(X, y, runs, **common), n_jobs)


def fit_jobs(X, y, runs: dict, **common) -> dict:
    """The fits of :func:`fit_many` as jobs for :func:`~bilinear_core.parallel.run_jobs`, sized epochs × width.

    ``X (n, g)`` is densified once here and shared by every job.
    """
    if not isinstance(runs, dict) or not runs:
        raise ValueError("runs must be a non-empty {key: {keyword: value}} dict.")
    X = as_dense_float(X)
    jobs = {}
    for key, run in runs.items():
        kwargs = common | ({"settings": run} if isinstance(run, TrainSettings) else dict(run))
        base = kwargs.get("settings") or TrainSettings()
        size = kwargs.get("epochs", base.epochs) * kwargs.get("n_hidden", base.n_hidden)
        jobs[key] = (size, _fit_job, (X, y, kwargs))
    return jobs


def _fit_job(X, y, kwargs: dict) -> FitResult:
    """One :func:`fit` in a worker (joblib hands large arrays over as read-only memmaps)."""
    return fit(X if X.flags.writeable else X.copy(), y, **kwargs)


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
