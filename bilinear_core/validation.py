"""How much to trust a bilinear model: held-out splits, baselines, marker overlap and module stability.

Everything here works on any expression matrix / labels / :class:`~bilinear_core.interpret.Modules`;
nothing is specific to the pancreas data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import sparse, special, stats
from sklearn.metrics import f1_score, r2_score, recall_score
from torch import nn

from ._validate import as_dense_float, get_obs_column
from .interpret import Modules, n_top_genes, pole_indices
from .train import split_indices

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
        return model, -float(np.abs(model.predict(_rows(X, val_idx)) - targets[val_idx]).mean())

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


# --------------------------------------------------------------------------------------------- marker overlap


def jaccard(a, b) -> float:
    """``|a ∩ b| / |a ∪ b|`` of two gene collections (duplicates ignored)."""
    a, b = set(a), set(b)
    if not a and not b:
        raise ValueError("The Jaccard index of two empty sets is undefined.")
    return len(a & b) / len(a | b)


def overlap_pvalue(a, b, background) -> float:
    """One-sided hypergeometric p-value ``P(|A ∩ B| ≥ observed)`` for sets drawn from ``background``.

    ``a`` and ``b`` must be subsets of ``background`` (all genes that could have been picked).
    """
    a, b, background = set(a), set(b), set(background)
    outside = (a | b) - background
    if outside:
        raise ValueError(f"{len(outside)} gene(s) are not in the background, e.g. {sorted(outside)[:3]}.")
    k = len(a & b)
    return float(stats.hypergeom.sf(k - 1, len(background), len(a), len(b)))


def rank_genes_wilcoxon(
    adata: AnnData, groupby: str, reference: str = "rest", n_genes: int | None = None, layer: str | None = None
) -> dict:
    """scanpy's ``rank_genes_groups(method="wilcoxon")`` of ``adata.obs[groupby]``, each group against ``reference``.

    Runs on ``adata.X`` (or ``layer``), which should hold log-normalised expression, on a copy that
    leaves ``adata`` untouched; torch's thread count, which scanpy's numba-parallel ranking resets, is
    restored. Returns scanpy's result (``names``, ``scores``, … record arrays, one field per group).
    """
    import scanpy as sc

    groups = pd.Categorical(get_obs_column(adata, groupby))
    if groups.isna().any():
        raise ValueError(f"adata.obs[{groupby!r}] has {int(groups.isna().sum())} missing value(s); drop those cells.")
    groups = groups.remove_unused_categories().rename_categories(str)
    if reference != "rest" and reference not in groups.categories:
        raise ValueError(f"Reference {reference!r} is not in adata.obs[{groupby!r}] ({list(groups.categories)}).")
    if len(groups.categories) < 2:
        raise ValueError(f"adata.obs[{groupby!r}] needs at least 2 groups, found {list(groups.categories)}.")
    n_genes = adata.n_vars if n_genes is None else int(n_genes)
    if not 1 <= n_genes <= adata.n_vars:
        raise ValueError(f"n_genes must lie in [1, {adata.n_vars}], got {n_genes!r}.")
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} not found in adata.layers; available layers: {sorted(adata.layers)}.")
    X = adata.X if layer is None else adata.layers[layer]
    obs = pd.DataFrame({"group": groups}, index=adata.obs_names)
    view = AnnData(X=X, obs=obs, var=pd.DataFrame(index=adata.var_names), uns={"log1p": {"base": None}})
    threads = torch.get_num_threads()
    try:
        sc.tl.rank_genes_groups(view, "group", method="wilcoxon", reference=reference, n_genes=n_genes, use_raw=False)
    finally:
        torch.set_num_threads(threads)
    return view.uns["rank_genes_groups"]


def wilcoxon_markers(adata: AnnData, groupby: str, n_genes: int, layer: str | None = None) -> dict[str, list[str]]:
    """Top ``n_genes`` up-regulated genes per group, one-vs-rest Wilcoxon (see :func:`rank_genes_wilcoxon`).

    Genes are ranked by the test's z-score, highest first. Returns ``{group: [genes]}`` in the order of
    the groups.
    """
    names = rank_genes_wilcoxon(adata, groupby, n_genes=n_genes, layer=layer)["names"]
    return {str(g): [str(x) for x in names[g]] for g in names.dtype.names}


def pole_genes(vector: np.ndarray, var_names: Sequence[str], n_genes: int) -> tuple[list[str], list[str]]:
    """The ``n_genes`` genes with the largest and the smallest loadings of one module ``(g,)``."""
    vector = np.asarray(vector)
    if vector.ndim != 1 or len(vector) != len(var_names):
        raise ValueError(f"vector must be 1-d with one loading per gene ({len(var_names)}), got {vector.shape}.")
    if not 1 <= n_genes <= len(vector) // 2:
        raise ValueError(f"n_genes must lie in [1, {len(vector) // 2}], got {n_genes!r}.")
    names = np.asarray(var_names)
    positive, negative = pole_indices(vector, n_genes)
    return list(names[positive]), list(names[negative])


def marker_overlap(
    modules: Modules, markers: dict, module: int = 0, n_genes: int | None = None, outputs=None
) -> pd.DataFrame:
    """Overlap of each pole of one module with conventional marker genes of the same output.

    ``markers`` maps output name -> marker genes (e.g. from :func:`wilcoxon_markers`); the first
    ``n_genes`` markers are compared with the ``n_genes`` top genes of each pole (default: the post's
    top-1 % rule, :func:`bilinear_core.interpret.n_top_genes`). The background is every gene of
    ``modules``. One row per output and pole: ``output``, ``pole``, ``n_genes``, ``overlap``,
    ``jaccard``, ``p_value`` (hypergeometric), ``shared`` (the common genes, comma-separated).
    """
    genes = list(modules.var_names)
    n_genes = n_top_genes(len(genes)) if n_genes is None else int(n_genes)
    outputs = list(modules.output_names) if outputs is None else [str(o) for o in outputs]
    missing = [o for o in outputs if o not in markers]
    if missing:
        raise KeyError(f"No marker genes given for output(s) {missing}; markers has {sorted(markers)}.")
    rows = []
    for output in outputs:
        reference = list(markers[output])[:n_genes]
        if len(reference) < n_genes:
            raise ValueError(f"Only {len(reference)} markers for {output!r}, need {n_genes}.")
        positive, negative = pole_genes(modules.vectors(output)[:, module], genes, n_genes)
        for pole, pole_list in (("positive", positive), ("negative", negative)):
            shared = [g for g in pole_list if g in set(reference)]
            rows.append(
                dict(
                    output=output, pole=pole, n_genes=n_genes, overlap=len(shared),
                    jaccard=jaccard(pole_list, reference), p_value=overlap_pvalue(pole_list, reference, genes),
                    shared=", ".join(shared),
                )
            )  # fmt: skip
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------- stability


def abs_cosine(vectors) -> np.ndarray:
    """Pairwise ``|cos|`` between the columns of ``vectors (g, r)``: ``(r, r)``, sign-invariant."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be 2-d (genes × runs), got shape {vectors.shape}.")
    norms = np.linalg.norm(vectors, axis=0)
    if (norms == 0).any():
        raise ValueError("A vector has zero norm; its direction (cosine) is undefined.")
    unit = vectors / norms
    return np.clip(np.abs(unit.T @ unit), 0.0, 1.0)


def random_abs_cosine(n_dims: int) -> float:
    """Expected ``|cos|`` between two independent uniformly random directions in ``n_dims`` dimensions.

    ``Γ(d/2) / (√π · Γ((d+1)/2))`` (2/π for d = 2, 1/2 for d = 3, ≈ ``sqrt(2 / (π d))`` for large d):
    the chance level for :func:`abs_cosine` and :func:`module_stability`.
    """
    if int(n_dims) < 2:
        raise ValueError(f"n_dims must be at least 2, got {n_dims!r}.")
    d = int(n_dims)
    return float(np.exp(special.gammaln(d / 2) - special.gammaln((d + 1) / 2)) / np.sqrt(np.pi))


def _pairwise_pole_jaccard(u: np.ndarray, v: np.ndarray, var_names, n_genes: int) -> float:
    """Mean Jaccard of the two poles of ``u`` and ``v (g,)`` after flipping ``v`` to point like ``u``."""
    v = v if float(u @ v) >= 0 else -v
    pu, nu = pole_genes(u, var_names, n_genes)
    pv, nv = pole_genes(v, var_names, n_genes)
    return 0.5 * (jaccard(pu, pv) + jaccard(nu, nv))


def module_stability(runs: Sequence[Modules], module: int = 0, n_genes: int | None = None) -> pd.DataFrame:
    """Agreement of one module across retrained models (same outputs and genes), per output.

    For every pair of runs: ``|cos|`` between the module vectors and the Jaccard index of their
    top-gene lists (each pole, ``n_genes`` genes, default the post's top-1 % rule, after aligning
    signs), averaged over the two poles. ``module`` counts in descending eigenvalue order; negative
    values count from the end (``-1``: the most negative eigenvalue). Returns one row per output with
    ``module`` (non-negative index), ``n_runs``, ``mean_abs_cos``,
    ``min_abs_cos``, ``mean_jaccard`` (means/minimum over pairs), and the module's eigenvalue
    across runs: ``eigenvalue_mean``, ``eigenvalue_std``, ``eigenvalue_cv`` (``std / |mean|``),
    ``eigenvalue_min``, ``eigenvalue_max``. Identical runs give 1, 1, 1 and zero spread.
    """
    runs = list(runs)
    if len(runs) < 2:
        raise ValueError(f"Stability needs at least 2 runs, got {len(runs)}.")
    first = runs[0]
    for i, run in enumerate(runs[1:], start=1):
        if list(run.output_names) != list(first.output_names) or list(run.var_names) != list(first.var_names):
            raise ValueError(f"Run {i} has different outputs or genes than run 0; compare like with like.")
    k = first.eigenvalues.shape[1]
    if not -k <= module < k:
        raise IndexError(f"module {module} out of range: the runs have {k} modules.")
    module = module % k  # -1: the module with the most negative eigenvalue
    genes = list(first.var_names)
    n_genes = n_top_genes(len(genes)) if n_genes is None else int(n_genes)
    pairs = list(combinations(range(len(runs)), 2))
    rows = []
    for output in first.output_names:
        vectors = np.stack([run.vectors(output)[:, module] for run in runs], axis=1)  # (g, r)
        cos = abs_cosine(vectors)
        pair_cos = np.array([cos[i, j] for i, j in pairs])
        pair_jac = np.array([_pairwise_pole_jaccard(vectors[:, i], vectors[:, j], genes, n_genes) for i, j in pairs])
        values = np.array([run.values(output)[module] for run in runs])
        mean = values.mean()
        rows.append(
            dict(
                output=output, module=module, n_runs=len(runs), mean_abs_cos=pair_cos.mean(),
                min_abs_cos=pair_cos.min(), mean_jaccard=pair_jac.mean(), eigenvalue_mean=mean,
                eigenvalue_std=values.std(), eigenvalue_cv=values.std() / abs(mean) if mean != 0 else np.nan,
                eigenvalue_min=values.min(), eigenvalue_max=values.max(),
            )
        )  # fmt: skip
    return pd.DataFrame(rows)
