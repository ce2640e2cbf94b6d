"""Interaction matrices, their exact low-rank eigendecomposition, cell scores and top genes.

For output ``a`` the model computes ``y_a = xᵀ Q_a x`` with
``Q_a = Σ_h P[a,h] · sym(w_h v_hᵀ)`` (``W, V: (h, g)``, ``P: (t, h)``). Writing
``B = [Wᵀ Vᵀ]`` (``g × 2h``) gives ``Q_a = B M_a Bᵀ`` with the ``2h × 2h`` block matrix
``M_a = ½ [[0, diag(p_a)], [diag(p_a), 0]]``. With the thin QR ``B = U R`` the non-zero
eigenpairs of ``Q_a`` are those of ``R M_a Rᵀ`` mapped back through ``U``: exact, and no
``g × g`` matrix is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .checks import as_dense_float
from .model import BilinearMLP

# public API (the API reference documents these); pole_indices serves top_genes and the analyses' pole metrics
__all__ = [
    "interaction_matrices",
    "quadratic_form",
    "Modules",
    "eigendecompose",
    "leading_modules",
    "squared_norms",
    "gene_shares",
    "contributions",
    "module_scores",
    "n_top_genes",
    "top_genes",
    "spectrum_energy",
    "orient_modules",
    "module_auroc",
    "gene_ranks",
    "module_target_correlations",
    "mean_expansion",
    "expansion_summary",
]


def _weights(model: BilinearMLP) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``W (h, g)``, ``V (h, g)``, ``P (t, h)`` as float64 CPU tensors (whatever device the model is on)."""
    return tuple(m.weight.detach().to("cpu", torch.float64) for m in (model.left, model.right, model.head))


def interaction_matrices(model: BilinearMLP, outputs=None) -> torch.Tensor:
    """Dense symmetric ``Q`` of shape ``(t, g, g)``: the reference for tests, not for large ``g``."""
    W, V, P = _weights(model)
    P = P if outputs is None else P[list(np.atleast_1d(outputs))]
    Q = torch.einsum("ah,hi,hj->aij", P, W, V)
    return 0.5 * (Q + Q.transpose(1, 2))


def quadratic_form(model: BilinearMLP, X) -> np.ndarray:
    """``xᵀ Q_a x`` for every cell and output via the low-rank factors: ``(n, g) -> (n, t)``."""
    W, V, P = _weights(model)
    X = torch.from_numpy(as_dense_float(X, dtype=np.float64))
    return torch.einsum("ah,nh,nh->na", P, X @ W.T, X @ V.T).numpy()


def _dense_eigh(Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of symmetric ``(..., g, g)`` matrices, eigenvalues descending."""
    values, vectors = torch.linalg.eigh(Q)
    return values.flip(-1), vectors.flip(-1)


@dataclass
class Modules:
    """Eigen-decomposition of every output's interaction matrix.

    ``eigenvalues`` is ``(t, k)`` and ``eigenvectors`` ``(t, g, k)``, both ordered by
    descending eigenvalue so module 0 is the largest positive one. ``k ≤ 2h`` (the rank bound);
    the ``g - k`` missing eigenvalues are exactly zero. Signs of eigenvectors are fixed so
    that the largest-magnitude loading is positive. ``reliability`` is the reproducibility table of
    :func:`bilinear_core.stability.module_reliability` once :func:`bilinear_core.tl.modules` has scored
    the modules (``None``: not scored).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    output_names: list[str]
    var_names: list[str]
    reliability: pd.DataFrame | None = None

    def _index(self, output) -> int:
        if isinstance(output, (int, np.integer)):
            if not -len(self.output_names) <= output < len(self.output_names):
                raise IndexError(f"Output {output} out of range for {len(self.output_names)} outputs.")
            return int(output)
        if output not in self.output_names:
            raise KeyError(f"Unknown output {output!r}; outputs are {self.output_names}.")
        return self.output_names.index(output)

    def values(self, output) -> np.ndarray:
        """Eigenvalues ``(k,)`` of one output, descending."""
        return self.eigenvalues[self._index(output)]

    def vectors(self, output) -> np.ndarray:
        """Eigenvectors ``(g, k)`` of one output, columns ordered like :meth:`values`."""
        return self.eigenvectors[self._index(output)]

    def spectrum(self) -> pd.DataFrame:
        """Tidy table of every eigenvalue: output, module, eigenvalue."""
        t, k = self.eigenvalues.shape
        return pd.DataFrame(
            {
                "output": np.repeat(self.output_names, k),
                "module": np.tile(np.arange(k), t),
                "eigenvalue": self.eigenvalues.ravel(),
            }
        )


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude entry is positive. ``(..., g, k)``."""
    idx = np.abs(vectors).argmax(axis=-2)[..., None, :]
    signs = np.sign(np.take_along_axis(vectors, idx, axis=-2))
    signs[signs == 0] = 1
    return vectors * signs


def _model_and_names(model, output_names, var_names) -> tuple[BilinearMLP, list[str], list[str]]:
    """The :class:`BilinearMLP` of ``model`` (or of a fit result) and its output and gene names, checked."""
    if not isinstance(model, BilinearMLP):
        if not isinstance(getattr(model, "model", None), BilinearMLP):
            raise TypeError(f"Pass a BilinearMLP or a fit result holding one, got {type(model).__name__}.")
        output_names = model.output_names if output_names is None else output_names
        var_names = model.var_names if var_names is None else var_names
        model = model.model
    t, g = model.n_out, model.n_in
    output_names = [str(i) for i in range(t)] if output_names is None else [str(o) for o in output_names]
    var_names = [str(i) for i in range(g)] if var_names is None else [str(v) for v in var_names]
    if len(output_names) != t or len(var_names) != g:
        raise ValueError(
            f"The model has {t} outputs and {g} inputs; got {len(output_names)} output names and "
            f"{len(var_names)} var names."
        )
    return model, output_names, var_names


def eigendecompose(model, output_names=None, var_names=None, dense: bool = False) -> Modules:
    """Exact eigenpairs of every output's symmetric ``Q_a``.

    ``model`` is a :class:`~bilinear_core.model.BilinearMLP` or a fit result (anything with ``model``,
    ``output_names`` and ``var_names``, e.g. :class:`~bilinear_core.train.FitResult`), whose names are then
    used unless given. The low-rank path (default) costs one thin QR of ``[Wᵀ Vᵀ]`` (``g × 2h``, shared by
    all outputs) plus one ``2h × 2h`` symmetric eigenproblem per output, and returns the ``2h``
    eigenpairs that can be non-zero. ``dense=True`` forms each ``g × g`` matrix and keeps its
    ``2h`` largest-magnitude eigenpairs (the reference the tests compare against).
    """
    model, output_names, var_names = _model_and_names(model, output_names, var_names)
    W, V, P = _weights(model)
    h, g = W.shape
    if dense:
        values, vectors = _dense_eigh(interaction_matrices(model))
        keep = values.abs().argsort(dim=-1, descending=True)[:, : min(2 * h, g)].sort(dim=-1).values
        values = values.gather(-1, keep)
        vectors = vectors.gather(-1, keep[:, None, :].expand(-1, g, -1))
    else:
        U, R = torch.linalg.qr(torch.cat([W, V]).T)  # U: (g, r), R: (r, 2h), r = min(g, 2h)
        RW, RV = R[:, :h], R[:, h:]  # images of W and V in the basis U: (r, h)
        S = torch.einsum("ih,ah,jh->aij", RW, P, RV)  # R M_a Rᵀ before symmetrising: (t, r, r)
        small_values, small_vectors = _dense_eigh(0.5 * (S + S.transpose(1, 2)))
        values = small_values
        vectors = torch.einsum("gi,aik->agk", U, small_vectors)
    return Modules(
        eigenvalues=values.numpy(),
        eigenvectors=_fix_signs(vectors.numpy()),
        output_names=output_names,
        var_names=var_names,
    )


def squared_norms(model) -> np.ndarray:
    """``‖Q_a‖²_F = Σ λ²`` of every output ``(t,)``, from ``h × h`` Gram matrices of the factors (no ``g × g``).

    With ``A_a = Σ_h P[a,h] w_h v_hᵀ`` and ``Q_a = ½(A_a + A_aᵀ)``: ``‖Q_a‖² = ½(‖A_a‖² + tr(A_a²))``,
    ``‖A_a‖² = pᵀ (WWᵀ ∘ VVᵀ) p`` and ``tr(A_a²) = pᵀ (VWᵀ ∘ WVᵀ) p``.
    """
    model, _, _ = _model_and_names(model, None, None)
    W, V, P = _weights(model)
    same = (W @ W.T) * (V @ V.T)  # (h, h)
    crossed = (V @ W.T) * (W @ V.T)
    return (0.5 * torch.einsum("ah,hk,ak->a", P, same + crossed, P)).numpy()


def gene_shares(model, genes=None) -> np.ndarray:
    """Each gene's share of the model's weight, ``Σ_a ‖Q_a[g, :]‖² / Σ_a ‖Q_a‖²_F``: ``(genes,)``, summing to 1.

    ``genes`` (indices; default: all) selects the rows. From ``h × h`` Gram matrices of the factors, no
    ``g × g`` matrix: row ``g`` of ``Q_a`` is ``½(Vᵀ a + Wᵀ b)`` with ``a = p_a ⊙ W[:, g]``,
    ``b = p_a ⊙ V[:, g]``.
    """
    model, _, _ = _model_and_names(model, None, None)
    W, V, P = _weights(model)
    cols = slice(None) if genes is None else torch.as_tensor(np.asarray(genes, dtype=np.int64))
    WW, VV, VW = W @ W.T, V @ V.T, V @ W.T  # (h, h)
    rows = torch.zeros(W[:, cols].shape[1], dtype=torch.float64)
    for p in P:
        a, b = p[:, None] * W[:, cols], p[:, None] * V[:, cols]  # (h, genes)
        rows += 0.25 * ((a * (VV @ a)).sum(0) + (b * (WW @ b)).sum(0) + 2 * (a * (VW @ b)).sum(0))
    return (rows / squared_norms(model).sum()).numpy()


def contributions(model, X, outputs, n_modules: int = 3, modules: Modules | None = None) -> pd.DataFrame:
    """Each cell's output split exactly over the modules of ``Q_a``: ``y_a(x) = Σ_k λ_k (v_kᵀ x)²``.

    ``outputs`` ``(n,)`` gives the output (index or name) to explain for each cell of ``X`` ``(n, g)``. Columns
    ``module 0`` … ``module n-1`` (most positive eigenvalues first), ``module -n`` … ``module -1`` (``-1``: the
    most negative), each ``λ_k (v_kᵀ x)²``, and ``rest``: the other eigenpairs' sum, ``xᵀ Q_a x`` minus the
    leading terms, in float64. The row sums are the model's outputs. ``modules``: the
    :func:`leading_modules` of ``model`` (``n_modules`` per pole) when already computed. Needs a model without
    biases (``bias=False``, the default): biases add terms no module holds.
    """
    fitted = model
    model, _, _ = _model_and_names(model, None, None)
    if model.left.bias is not None:
        raise ValueError(
            "Explaining outputs by modules needs a model trained with bias=False (the default): with biases the "
            "output has linear and constant terms that no module holds."
        )
    X = as_dense_float(X, dtype=np.float64)
    modules = leading_modules(fitted, n_modules) if modules is None else modules
    index = _output_index(outputs, modules.output_names, len(X))
    m = modules.eigenvalues.shape[1]
    n = min(int(n_modules), m)
    names = [f"module {j if j < n else j - m}" for j in range(m)]
    leading = np.zeros((len(X), m))
    for a in np.unique(index):
        cells = index == a
        projections = X[cells] @ modules.eigenvectors[a]  # (cells, modules)
        leading[cells] = modules.eigenvalues[a] * projections**2
    total = quadratic_form(model, X)[np.arange(len(X)), index]
    table = pd.DataFrame(leading, columns=names)
    table["rest"] = total - leading.sum(axis=1)
    return table


def _output_index(outputs, output_names: list[str], n: int) -> np.ndarray:
    """``outputs`` (``(n,)`` names or indices) as output indices ``(n,)``, with an error naming unknown ones."""
    outputs = np.asarray(outputs)
    if outputs.shape != (n,):
        raise ValueError(f"outputs must give one output per cell, shape ({n},), got {outputs.shape}.")
    if np.issubdtype(outputs.dtype, np.integer):
        if n and (outputs.min() < 0 or outputs.max() >= len(output_names)):
            bounds = f"[0, {len(output_names)})"
            raise ValueError(f"Output indices must lie in {bounds}, got {outputs.min()}…{outputs.max()}.")
        return outputs.astype(np.int64)
    position = {name: i for i, name in enumerate(output_names)}
    unknown = sorted({str(o) for o in outputs} - set(position))
    if unknown:
        raise ValueError(f"Unknown output(s) {unknown[:5]}; the model's outputs are {output_names}.")
    return np.array([position[str(o)] for o in outputs], dtype=np.int64)


#: Up to this many columns of ``[Wᵀ Vᵀ]`` (``2h``), :func:`leading_modules` slices the exact decomposition.
EXACT_RANK = 512


def leading_modules(model, n: int, output_names=None, var_names=None) -> Modules:
    """The ``n`` most positive and ``n`` most negative eigenpairs of every output: ``2n`` modules, descending.

    For the large hidden layers of ensembles, where the exact ``2h × 2h`` problem of :func:`eigendecompose`
    grows towards ``g × g``: up to ``EXACT_RANK`` (512) columns of ``[Wᵀ Vᵀ]`` the exact pairs are sliced,
    beyond it each output's ends of the spectrum come from Lanczos iterations (ARPACK's ``eigsh``, to machine
    precision, from a fixed start vector) on ``Q_a`` applied through the factors, ``O(g h)`` per product.
    Module ``-1`` is the most negative eigenvalue, as in :class:`Modules`. ``model`` as for
    :func:`eigendecompose`.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    n = int(n)
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    model, output_names, var_names = _model_and_names(model, output_names, var_names)
    h, g = model.n_hidden, model.n_in
    if 2 * h <= EXACT_RANK or 2 * n >= min(g, 2 * h):
        exact = eigendecompose(model, output_names, var_names)
        r = exact.eigenvalues.shape[1]
        keep = np.unique(np.r_[: min(n, r), r - np.arange(1, min(n, r) + 1)])
        return Modules(exact.eigenvalues[:, keep], exact.eigenvectors[:, :, keep], output_names, var_names)
    W, V, P = (w.numpy() for w in _weights(model))
    values, vectors = [], []
    for p in P:

        def matvec(x, p=p):  # Q_a x = ½ Σ_h p_h (w_h v_hᵀ + v_h w_hᵀ) x
            x = np.ravel(x)
            return 0.5 * (W.T @ (p * (V @ x)) + V.T @ (p * (W @ x)))

        operator = LinearOperator((g, g), matvec=matvec, dtype=np.float64)
        value, vector = eigsh(operator, k=2 * n, which="BE", v0=np.ones(g), tol=0, ncv=min(g, 4 * n + 8))
        order = np.argsort(value)[::-1]
        values.append(value[order])
        vectors.append(vector[:, order])
    return Modules(np.array(values), _fix_signs(np.array(vectors)), output_names, var_names)


def module_scores(X, modules: Modules, output, n_modules: int = 3) -> np.ndarray:
    """Project cells onto the leading modules of one output: ``(n, g) -> (n, n_modules)``."""
    X = as_dense_float(X)
    vectors = modules.vectors(output)
    if X.shape[1] != vectors.shape[0]:
        raise ValueError(f"X has {X.shape[1]} genes but the modules were computed on {vectors.shape[0]}.")
    return X @ vectors[:, :n_modules].astype(np.float32)


def n_top_genes(n_genes: int, fraction: float = 0.01, min_genes: int = 50) -> int:
    """The post's top-1 % rule with a floor: ``max(ceil(fraction·g), min_genes)``, at most ``g // 2``."""
    if not 0.0 < fraction <= 0.5:
        raise ValueError(f"fraction must lie in (0, 0.5], got {fraction!r}.")
    return int(min(max(np.ceil(fraction * n_genes), min_genes), n_genes // 2))


def pole_indices(vector: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n`` largest and the ``n`` smallest loadings of a module ``(g,)``, strongest first."""
    order = np.argsort(vector, kind="stable")
    return order[::-1][:n], order[:n]


def top_genes(modules: Modules, output, module: int = 0, fraction: float = 0.01, min_genes: int = 50) -> pd.DataFrame:
    """Top genes per sign of one module as a tidy table.

    Columns: ``sign`` (``"positive"``/``"negative"``), ``rank`` (0 = strongest), ``gene``,
    ``loading``. Each sign gets :func:`n_top_genes` genes.
    """
    vector = modules.vectors(output)[:, module]
    n = n_top_genes(len(vector), fraction, min_genes)
    frames = []
    for sign, idx in zip(("positive", "negative"), pole_indices(vector, n)):
        frames.append(
            pd.DataFrame(
                {
                    "sign": sign,
                    "rank": np.arange(n),
                    "gene": np.asarray(modules.var_names)[idx],
                    "loading": vector[idx],
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "output", modules.output_names[modules._index(output)])
    table.insert(1, "module", module)
    return table


def spectrum_energy(modules: Modules, ks=(1, 3, 10)) -> pd.DataFrame:
    """Fraction of ``‖Q_a‖²_F = Σ λ²`` carried by the ``k`` largest-magnitude eigenvalues, per output."""
    squared = np.sort(modules.eigenvalues**2, axis=1)[:, ::-1]
    total = squared.sum(axis=1, keepdims=True)
    return pd.DataFrame(
        {f"top_{k}": squared[:, :k].sum(axis=1) / total[:, 0] for k in ks},
        index=pd.Index(modules.output_names, name="output"),
    )


def _target_matrix(targets, output_names: list[str], n: int) -> np.ndarray:
    """Targets as ``(n, t)`` float64: numeric columns as given, or labels turned into one-vs-rest indicators."""
    if isinstance(targets, pd.DataFrame):
        targets = targets.to_numpy()
    values = np.asarray(targets)
    t = len(output_names)
    if values.ndim == 2:
        if values.shape != (n, t):
            raise ValueError(f"targets must have shape (cells, outputs) = {(n, t)}, got {values.shape}.")
        matrix = values.astype(np.float64)
    elif values.ndim == 1:
        if len(values) != n:
            raise ValueError(f"X has {n} cells but the targets have {len(values)} entries.")
        if t == 1 and np.issubdtype(values.dtype, np.number):
            matrix = values.astype(np.float64)[:, None]
        else:
            labels = values.astype(str)
            missing = [o for o in output_names if o not in set(labels)]
            if missing:
                raise ValueError(
                    f"Output(s) {missing} never occur in the labels, so they cannot be oriented one-vs-rest; "
                    f"labels hold {sorted(set(labels))[:10]}."
                )
            matrix = (labels[:, None] == np.asarray(output_names)[None, :]).astype(np.float64)
    else:
        raise ValueError(f"targets must be 1-d labels or a 2-d (cells, outputs) array, got shape {values.shape}.")
    if not np.isfinite(matrix).all():
        raise ValueError(f"targets contain {int((~np.isfinite(matrix)).sum())} NaN or infinite value(s).")
    return matrix


def orient_modules(modules: Modules, X, targets) -> Modules:
    """A copy of ``modules`` whose eigenvector signs make each output's target score high.

    The sign of an eigenvector is arbitrary (``v`` and ``-v`` give the same ``λ (xᵀv)²``), so it can
    be chosen for the reader: each module ``v`` of output ``a`` is flipped when the covariance
    between the cell scores ``X v`` and the target of ``a`` is negative. Eigenvalues, and so every
    prediction, are unchanged; only the convention differs from :func:`eigendecompose`'s
    (largest-magnitude loading positive), which a module keeps when the covariance is exactly 0.

    Parameters
    ----------
    X
        Expression ``(n, g)`` of the cells used for orienting (dense or sparse).
    targets
        ``(n, t)`` numeric targets, one column per output in ``modules.output_names`` order
        (regression; ``(n,)`` when there is one output), or ``(n,)`` labels: output ``a`` is then
        oriented so that cells labelled ``a`` score high (one-vs-rest, classification).
    """
    X = as_dense_float(X)
    if X.shape[1] != modules.eigenvectors.shape[1]:
        raise ValueError(f"X has {X.shape[1]} genes but the modules were computed on {modules.eigenvectors.shape[1]}.")
    Y = _target_matrix(targets, modules.output_names, X.shape[0])
    gene_cov = X.T.astype(np.float64) @ (Y - Y.mean(axis=0))  # (g, t): Xᵀ(y - ȳ), so cov(Xv, y) ∝ vᵀ gene_cov
    score_cov = np.einsum("gt,tgk->tk", gene_cov, modules.eigenvectors.astype(np.float64))
    signs = np.where(score_cov < 0, -1.0, 1.0).astype(modules.eigenvectors.dtype)
    return Modules(
        eigenvalues=modules.eigenvalues.copy(),
        eigenvectors=modules.eigenvectors * signs[:, None, :],
        output_names=list(modules.output_names),
        var_names=list(modules.var_names),
        reliability=modules.reliability,
    )


def module_auroc(scores: np.ndarray, is_target) -> np.ndarray:
    """Area under the ROC curve of each score column for telling target cells from the rest: ``(n, k) -> (k,)``.

    1 means every target cell scores above every other cell, 0.5 no separation, 0 the reverse.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[:, None] if scores.ndim == 1 else scores
    is_target = np.asarray(is_target, dtype=bool)
    if is_target.shape != (scores.shape[0],):
        raise ValueError(f"is_target must have one entry per cell ({scores.shape[0]}), got shape {is_target.shape}.")
    if is_target.all() or not is_target.any():
        raise ValueError("is_target must mark some cells, but not all, as target cells.")
    return np.array([roc_auc_score(is_target, column) for column in scores.T])


def gene_ranks(
    modules: Modules, output, genes, module: int = 0, fraction: float = 0.01, min_genes: int = 50
) -> pd.DataFrame:
    """Where given genes (e.g. known markers) fall in one module: one row per gene, in the order given.

    Columns: ``gene`` (as asked), ``symbol`` (the matching var name, matched case-insensitively;
    ``None`` when the gene is not in the data), ``loading``, ``sign`` (``"positive"`` for loading
    ≥ 0), ``rank`` within its sign (0 = strongest, as in :func:`top_genes`) and ``in_top`` (within
    the :func:`n_top_genes` genes of that sign).
    """
    vector = modules.vectors(output)[:, module]
    lookup = {}
    for i, name in enumerate(modules.var_names):
        lookup.setdefault(str(name).upper(), i)
    n_top = n_top_genes(len(vector), fraction, min_genes)
    rows = []
    for gene in genes:
        i = lookup.get(str(gene).upper())
        if i is None:
            rows.append({"gene": gene, "symbol": None, "loading": np.nan, "sign": None, "rank": pd.NA, "in_top": False})
            continue
        value = vector[i]
        positive = value >= 0
        rank = int((vector > value).sum()) if positive else int((vector < value).sum())
        rows.append(
            {
                "gene": gene,
                "symbol": modules.var_names[i],
                "loading": float(value),
                "sign": "positive" if positive else "negative",
                "rank": rank,
                "in_top": rank < n_top,
            }
        )
    table = pd.DataFrame(rows, columns=["gene", "symbol", "loading", "sign", "rank", "in_top"])
    table["rank"] = table["rank"].astype("Int64")
    return table


def module_target_correlations(X, modules: Modules, targets, n_modules: int | None = None) -> pd.DataFrame:
    """Pearson r between each module's cell scores and its output's continuous target, as a tidy table.

    ``X`` is ``(n, g)``; ``targets`` is ``(n, t)``, one column per output in ``modules.output_names``
    order (``(n,)`` for one output). Scores use the leading ``n_modules`` modules (default all).
    Returns one row per output and module: ``output``, ``module``, ``eigenvalue``, ``r``, ``abs_r``.
    """
    X = as_dense_float(X)
    if X.shape[1] != modules.eigenvectors.shape[1]:
        raise ValueError(f"X has {X.shape[1]} genes but the modules were computed on {modules.eigenvectors.shape[1]}.")
    Y = np.asarray(targets, dtype=np.float64)
    if Y.ndim == 1 and len(modules.output_names) == 1:
        Y = Y[:, None]
    if Y.shape != (X.shape[0], len(modules.output_names)):
        raise ValueError(
            f"targets must have shape (cells, outputs) = {(X.shape[0], len(modules.output_names))}, got {Y.shape}."
        )
    if not np.isfinite(Y).all():
        raise ValueError(f"targets contain {int((~np.isfinite(Y)).sum())} NaN or infinite value(s).")
    k = modules.eigenvectors.shape[2] if n_modules is None else int(n_modules)
    if not 1 <= k <= modules.eigenvectors.shape[2]:
        raise ValueError(f"n_modules must lie in [1, {modules.eigenvectors.shape[2]}], got {n_modules!r}.")
    Xc = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
    frames = []
    for a, name in enumerate(modules.output_names):
        scores = Xc @ modules.eigenvectors[a][:, :k].astype(np.float64)  # centred scores (n, k)
        y = Y[:, a] - Y[:, a].mean()
        denom = np.sqrt((scores**2).sum(axis=0) * (y**2).sum())
        r = np.divide(scores.T @ y, denom, out=np.full(k, np.nan), where=denom > 0)
        frames.append(
            pd.DataFrame({"output": name, "module": np.arange(k), "eigenvalue": modules.eigenvalues[a][:k], "r": r})
        )
    table = pd.concat(frames, ignore_index=True)
    table["abs_r"] = table["r"].abs()
    return table


def mean_expansion(model: BilinearMLP, X, center=None) -> dict:
    """Split every output around a reference profile ``c`` (default: the mean cell of ``X``).

    With ``δ = x − c`` each output is ``y_a(x) = cᵀQ_a c + 2 cᵀQ_a δ + δᵀQ_a δ``. Returns
    ``{"constant": (t,), "linear": (n, t), "quadratic": (n, t)}``, whose sum is
    :func:`quadratic_form`. For non-negative inputs such as log-expression the linear term, a
    linear read-out of the gene direction ``2 Q_a c``, can carry most of an output although that
    direction is not an eigenvector of ``Q_a``. Computed from the low-rank factors (models without
    biases only).
    """
    if any(m.bias is not None for m in (model.left, model.right, model.head)):
        raise ValueError("mean_expansion needs a model without biases (BilinearMLP(..., bias=False)).")
    W, V, P = (w.numpy() for w in _weights(model))
    X = as_dense_float(X, dtype=np.float64)
    if X.shape[1] != W.shape[1]:
        raise ValueError(f"X has {X.shape[1]} genes but the model has {W.shape[1]} inputs.")
    c = X.mean(axis=0) if center is None else np.asarray(center, dtype=np.float64)
    if c.shape != (W.shape[1],):
        raise ValueError(f"center must be one profile of shape ({W.shape[1]},), got {c.shape}.")
    Wc, Vc = W @ c, V @ c  # (h,)
    Wd, Vd = (X - c) @ W.T, (X - c) @ V.T  # (n, h)
    return {
        "constant": P @ (Wc * Vc),
        "linear": (Wc * Vd + Vc * Wd) @ P.T,
        "quadratic": (Wd * Vd) @ P.T,
    }


def expansion_summary(model: BilinearMLP, X, targets, output_names=None, center=None) -> pd.DataFrame:
    """Per output, how much of the prediction is linear around ``center`` and how each part follows the target.

    ``targets`` is ``(n, t)`` (``(n,)`` for one output). Columns: ``linear_share`` (variance of the
    linear term over the summed variances of the linear and quadratic terms), ``r_linear``,
    ``r_quadratic`` and ``r_total`` (Pearson r with the target); see :func:`mean_expansion`.
    """
    parts = mean_expansion(model, X, center)
    n, t = parts["linear"].shape
    Y = np.asarray(targets, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.shape != (n, t):
        raise ValueError(f"targets must have shape (cells, outputs) = {(n, t)}, got {Y.shape}.")
    names = [str(i) for i in range(t)] if output_names is None else [str(o) for o in output_names]
    if len(names) != t:
        raise ValueError(f"output_names has {len(names)} entries for {t} outputs.")
    total = parts["linear"] + parts["quadratic"]

    def r(a, b):
        return np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else np.nan

    var_lin, var_quad = parts["linear"].var(axis=0), parts["quadratic"].var(axis=0)
    return pd.DataFrame(
        {
            "linear_share": var_lin / np.where(var_lin + var_quad > 0, var_lin + var_quad, np.nan),
            "r_linear": [r(parts["linear"][:, a], Y[:, a]) for a in range(t)],
            "r_quadratic": [r(parts["quadratic"][:, a], Y[:, a]) for a in range(t)],
            "r_total": [r(total[:, a], Y[:, a]) for a in range(t)],
        },
        index=pd.Index(names, name="output"),
    )
