"""Regularisation options of the training loop: sparsity priors on the bilinear factors and early stopping.

The penalties act on the two bilinear factors, ``W = model.left.weight`` and ``V = model.right.weight``, each
``(h, g)``, as **proximal steps**: after every optimiser step the weights are passed through the proximal
operator of the penalty with threshold ``lr_t × strength`` (``lr_t`` the current learning rate), the
proximal-gradient recipe. Unlike a gradient step on ``|w|``, this sets weights to exact zeros, so genes
really leave the model. With Adam the gradient step is preconditioned, so a strength is a knob to choose on
validation rather than a calibrated λ.

- **L1** (:func:`soft_threshold`): every weight of ``W`` and ``V`` shrinks on its own.
- **Per-gene group lasso** (:func:`group_soft_threshold` over :func:`gene_groups`): the ``2h`` weights of
  gene ``j`` in both factors, ``[W[:, j]; V[:, j]]``, shrink together, so a gene leaves the model whole.
- **Gene-set group lasso** (:func:`gene_set_groups`): groups from a gene-set library. Gene sets overlap, and
  the formulation chosen here is the **latent group lasso** (Jacob, Obozinski & Vert 2009): every gene gets
  one copy of its weights per set that holds it (plus one copy of its own if no set holds it), the copies
  of a set form one group, and the model's weight of a gene is the sum of its copies
  (:func:`expand_inputs`, :func:`collapse_latent`). A gene then stays in the model when *any* of its sets
  does, the support is a union of sets, which is how a gene-set reading of a module works. The
  alternative, a group lasso over the overlapping sets themselves, zeroes a gene as soon as *one* of its
  sets is zeroed (the support is an intersection of complements), and its proximal operator has no closed
  form; in the latent form the groups are disjoint in the copies, so the proximal step is exact and cheap.
  Genes in no set are groups of one (the per-gene group lasso).

A group's threshold is weighted by the square root of its number of weights, ``√(2h)`` for one gene and
``√(2h · size)`` for a set (Yuan & Lin 2006), so that L1 and the group penalties are on one scale.

:class:`EarlyStopping` stops training when the validation loss has not improved for ``patience`` epochs and
restores the weights of the best epoch. All options are fields of :class:`~bilinear_core.train.TrainSettings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .model import BilinearMLP

# public API (the API reference documents these); ProximalStep and proximal_step apply the penalties in the loop
__all__ = [
    "soft_threshold",
    "group_soft_threshold",
    "GeneGroups",
    "gene_groups",
    "gene_set_groups",
    "expand_inputs",
    "collapse_latent",
    "active_genes",
    "EarlyStopping",
]


def soft_threshold(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """``sign(x) · max(|x| − t, 0)`` elementwise: the proximal operator of ``t‖x‖₁`` (same shape as ``values``)."""
    if threshold < 0:
        raise ValueError(f"threshold must be at least 0, got {threshold!r}.")
    return torch.sign(values) * torch.clamp(values.abs() - threshold, min=0.0)


def group_soft_threshold(columns: torch.Tensor, groups: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """The proximal operator of ``Σ_G t_G ‖x_G‖₂`` over disjoint groups of columns.

    ``columns`` is ``(d, n)``, ``groups`` ``(n,)`` gives each column's group in ``0 … G − 1`` and ``thresholds``
    ``(G,)`` each group's ``t_G``. Every column of group ``G`` is scaled by ``max(0, 1 − t_G / ‖x_G‖)``, with
    ``‖x_G‖`` the Frobenius norm of all the group's columns together: a group shrinks as a whole and reaches
    exactly zero once its norm is at most ``t_G``. Returns the new ``(d, n)`` columns.
    """
    if columns.ndim != 2 or groups.shape != (columns.shape[1],):
        raise ValueError(f"Need columns (d, n) and one group per column (n,), got {columns.shape} and {groups.shape}.")
    if thresholds.ndim != 1 or (thresholds < 0).any():
        raise ValueError("thresholds must be a 1-d tensor of values of at least 0, one per group.")
    squares = torch.zeros(len(thresholds), dtype=columns.dtype, device=columns.device)
    norms = squares.index_add_(0, groups, columns.pow(2).sum(dim=0)).sqrt()
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    scale = torch.where(norms > 0, torch.clamp(1.0 - thresholds.to(columns.dtype) / safe, min=0.0), 0.0)
    return columns * scale[groups]


# ------------------------------------------------------------------------------------------------ gene groups
@dataclass(frozen=True)
class GeneGroups:
    """Groups of the model's inputs for the group lasso, over ``n_genes`` genes.

    Input ``i`` of the model is a copy of gene ``columns[i]`` in group ``groups[i]``; ``weights`` ``(G,)``
    scale each group's threshold and ``names`` ``(G,)`` name the groups. Without overlaps (:func:`gene_groups`)
    the inputs are the genes themselves; with overlapping sets (:func:`gene_set_groups`) a gene has one input
    (a latent copy) per set that holds it.
    """

    columns: np.ndarray
    groups: np.ndarray
    weights: np.ndarray
    names: list[str]
    n_genes: int

    @property
    def n_inputs(self) -> int:
        """Number of model inputs (latent copies) ``g'``."""
        return len(self.columns)


def gene_groups(n_genes: int) -> GeneGroups:
    """One group per gene, weight 1: the per-gene group lasso over ``[W[:, j]; V[:, j]]``."""
    if int(n_genes) < 1:
        raise ValueError(f"n_genes must be a positive integer, got {n_genes!r}.")
    idx = np.arange(int(n_genes))
    return GeneGroups(idx, idx, np.ones(len(idx)), [str(i) for i in idx], int(n_genes))


def gene_set_groups(var_names, gene_sets) -> GeneGroups:
    """Latent groups from a gene-set library: one group per set, plus one group per gene that no set holds.

    ``gene_sets`` is ``{name: genes}`` or a library name for :func:`bilinear_core.datasets.genesets.load_library`;
    genes are matched to ``var_names`` upper-cased (mouse symbols against human-symbol libraries: the usual
    first approximation of one-to-one orthologs). Sets with no gene among ``var_names`` are dropped. A set's
    group holds one copy of each of its genes and has weight ``√(size)``; a gene in no set is a group of one
    with weight 1. Groups are in library order, then the lone genes in ``var_names`` order.
    """
    if isinstance(gene_sets, str):
        from .datasets.genesets import load_library

        gene_sets = load_library(gene_sets)
    if not isinstance(gene_sets, dict) or not gene_sets:
        raise ValueError("gene_sets must be a non-empty {name: genes} dict or a library name.")
    names = [str(v).upper() for v in var_names]
    position = {name: i for i, name in enumerate(names)}
    if len(position) != len(names):
        raise ValueError("var_names has duplicate (case-insensitive) gene names; make them unique first.")
    columns, groups, weights, group_names = [], [], [], []
    covered = np.zeros(len(names), dtype=bool)
    for set_name, genes in gene_sets.items():
        members = sorted({position[g] for g in (str(x).upper() for x in genes) if g in position})
        if not members:
            continue
        columns += members
        groups += [len(weights)] * len(members)
        weights.append(math.sqrt(len(members)))
        group_names.append(str(set_name))
        covered[members] = True
    if not weights:
        raise ValueError(f"No gene of the {len(gene_sets)} gene sets is among the {len(names)} genes (var_names).")
    for j in np.flatnonzero(~covered):
        columns.append(int(j))
        groups.append(len(weights))
        weights.append(1.0)
        group_names.append(str(var_names[j]))
    return GeneGroups(np.asarray(columns), np.asarray(groups), np.asarray(weights), group_names, len(names))


def expand_inputs(X: np.ndarray, groups: GeneGroups) -> np.ndarray:
    """The model's inputs ``(n, g')``: each gene's column of ``X (n, g)`` once per latent copy."""
    if X.shape[1] != groups.n_genes:
        raise ValueError(f"X has {X.shape[1]} genes, the groups {groups.n_genes}.")
    return np.ascontiguousarray(X[:, groups.columns])


def collapse_latent(model: BilinearMLP, groups: GeneGroups) -> BilinearMLP:
    """The same map as a :class:`~bilinear_core.model.BilinearMLP` on the ``g`` genes: copies of a gene summed.

    ``W x̃ = (W D) x`` for the duplication ``x̃ = x[columns]``, so the collapsed factors are ``W D`` and
    ``V D``; the head, biases and dropout are kept. The model's predictions are unchanged.
    """
    if model.n_in != groups.n_inputs:
        raise ValueError(f"The model has {model.n_in} inputs, the groups {groups.n_inputs} latent copies.")
    bias = model.left.bias is not None
    out = BilinearMLP(groups.n_genes, model.n_hidden, model.n_out, dropout=model.dropout.p, bias=bias)
    index = torch.as_tensor(groups.columns, device=model.left.weight.device)
    out.to(device=model.left.weight.device, dtype=model.left.weight.dtype)
    with torch.no_grad():
        for name in ("left", "right"):
            latent = getattr(model, name).weight
            getattr(out, name).weight.copy_(torch.zeros_like(getattr(out, name).weight).index_add_(1, index, latent))
            if bias:
                getattr(out, name).bias.copy_(getattr(model, name).bias)
        out.head.load_state_dict(model.head.state_dict())
    return out.eval()


def active_genes(model: BilinearMLP) -> np.ndarray:
    """Genes ``(g,)`` with at least one non-zero weight in ``W`` or ``V`` (the genes the model uses)."""
    W, V = model.left.weight.detach(), model.right.weight.detach()
    return ((W != 0).any(dim=0) | (V != 0).any(dim=0)).cpu().numpy()


# ------------------------------------------------------------------------------------------------ the steps
class ProximalStep:
    """The proximal step of the penalties on ``W`` and ``V``, applied in place after each optimiser step.

    ``l1`` and ``group`` are the strengths; ``groups`` (a :class:`GeneGroups` over the model's inputs) is needed
    when ``group > 0``; a group's threshold is ``lr × group × weight × √(2h)`` (weight ``√(genes)``: the root of
    its number of weights). L1 comes first, then the group step: for disjoint groups that composition is the
    exact proximal operator of the sum (the sparse group lasso).
    """

    def __init__(self, l1: float = 0.0, group: float = 0.0, groups: GeneGroups | None = None):
        if group > 0 and groups is None:
            raise ValueError("A group penalty needs the groups of the model's inputs.")
        self.l1, self.group, self.groups = float(l1), float(group), groups
        self._tensors = None  # group ids and weights on the model's device, made at the first step

    def __call__(self, model: nn.Module, lr: float) -> None:
        """Shrink ``model.left.weight`` and ``model.right.weight`` with step size ``lr``."""
        if not (hasattr(model, "left") and hasattr(model, "right")):
            raise TypeError(f"The penalties act on the factors of a BilinearMLP, not a {type(model).__name__}.")
        W, V = model.left.weight, model.right.weight
        with torch.no_grad():
            if self.l1 > 0:
                W.copy_(soft_threshold(W, lr * self.l1))
                V.copy_(soft_threshold(V, lr * self.l1))
            if self.group > 0:
                if W.shape[1] != self.groups.n_inputs:
                    raise ValueError(f"The model has {W.shape[1]} inputs, the groups {self.groups.n_inputs}.")
                if self._tensors is None or self._tensors[0].device != W.device:
                    self._tensors = (
                        torch.as_tensor(self.groups.groups, device=W.device),
                        torch.as_tensor(self.groups.weights, dtype=W.dtype, device=W.device),
                    )
                group_ids, weights = self._tensors
                strength = lr * self.group * math.sqrt(2 * len(W))  # √(2h): a gene's number of weights
                both = group_soft_threshold(torch.cat([W, V]), group_ids, strength * weights)
                W.copy_(both[: len(W)])
                V.copy_(both[len(W) :])


def proximal_step(settings, n_in: int, groups: GeneGroups | None = None) -> ProximalStep | None:
    """The :class:`ProximalStep` of a :class:`~bilinear_core.train.TrainSettings`, or ``None`` without penalties.

    The per-gene group lasso builds its groups over the ``n_in`` inputs; the gene-set penalty needs the
    latent ``groups`` of the inputs, which :func:`bilinear_core.train.fit` makes (the model's inputs are then
    the latent copies).
    """
    if settings.gene_set_penalty > 0:
        if groups is None or groups.n_inputs != n_in:
            raise ValueError(
                "The gene-set penalty trains on latent copies of the genes, one per set: use bilinear_core.fit or "
                "bilinear_core.tl.train (in-memory training), which build them."
            )
        return ProximalStep(settings.l1_penalty, settings.gene_set_penalty, groups)
    if settings.gene_penalty > 0:
        return ProximalStep(settings.l1_penalty, settings.gene_penalty, gene_groups(n_in))
    if settings.l1_penalty > 0:
        return ProximalStep(settings.l1_penalty)
    return None


class EarlyStopping:
    """Stop when the validation loss has not fallen below its best for ``patience`` epochs; keep the best weights.

    Call :meth:`update` after each epoch (it returns ``True`` when training should stop) and :meth:`restore`
    after the last: the model then holds the weights of ``best_epoch``. Stopping only cuts the run short, it
    does not change the learning-rate schedule, so an early-stopped fit follows the full run up to its stop.
    """

    def __init__(self, patience: int):
        if isinstance(patience, bool) or not isinstance(patience, int | np.integer) or patience < 1:
            raise ValueError(f"patience must be a positive integer, got {patience!r}.")
        self.patience, self.best_loss, self.best_epoch, self.waited = int(patience), math.inf, 0, 0
        self.best_state = None

    def update(self, epoch: int, val_loss: float, model: nn.Module) -> bool:
        """Record epoch ``epoch``'s validation loss (keeping the weights if it is the best); ``True``: stop now."""
        if not math.isfinite(val_loss):
            raise ValueError(f"Early stopping needs a finite validation loss (validation cells), got {val_loss!r}.")
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.waited = float(val_loss), int(epoch), 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's weights into ``model``."""
        if self.best_state is None:
            raise RuntimeError("No epoch recorded yet; call update after each epoch first.")
        model.load_state_dict(self.best_state)
