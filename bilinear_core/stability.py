"""Marker agreement and module stability: Wilcoxon markers, gene-set overlap and eigenvector similarity.

Everything here works on any expression data and :class:`~bilinear_core.interpret.Modules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import special, stats

from .checks import get_obs_column
from .interpret import Modules, leading_modules, n_top_genes, pole_indices, squared_norms
from .parallel import run_jobs
from .train import ensemble

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


def stability_table(
    runs: dict, by: str = "varied", modules: dict | None = None, n_genes: int | None = None
) -> pd.DataFrame:
    """:func:`module_stability` of several sets of runs, stacked into one table.

    ``runs`` maps a label (what differs within the set: ``"seed"``, ``"split"``, a weight decay, …) to the
    :class:`~bilinear_core.interpret.Modules` of that set's runs; the label fills column ``by``. ``modules``
    maps names to module indices (e.g. ``{"0": 0, "last": -1}``), named in column ``module_name``; by default
    module 0 alone, without that column. Rows: per set, per module, per output.
    """
    named = modules is not None
    modules = {"0": 0} if modules is None else modules
    if not runs or not modules:
        raise ValueError("Give at least one set of runs and one module.")
    frames = []
    for label, members in runs.items():
        for name, module in modules.items():
            table = module_stability(members, module=module, n_genes=n_genes).assign(**{by: label})
            frames.append(table.assign(module_name=name) if named else table)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------- reliability

#: The rule of :func:`module_reliability`: a module is reproducible when two disjoint halves of an ensemble's
#: members, each an ensemble, give it with ``|cos| ≥ REPRODUCIBLE_COS``. At 0.8 the halves share ``cos² = 64 %``
#: of the module's direction; two unrelated directions in ``g`` gene dimensions give ``|cos|`` about
#: ``sqrt(2 / (π g))`` (:func:`random_abs_cosine`: 0.018 for 2,000 genes, and 0.08 if the modules only roam a
#: 100-dimensional subspace), so the rule sits far above chance.
REPRODUCIBLE_COS = 0.8
#: How many of a member's (a half's) leading modules of a pole :func:`module_reliability` matches against.
MATCH_CANDIDATES = 10


def _pole_columns(values: np.ndarray, pole: str) -> np.ndarray:
    """Indices of one pole's eigenvalues, strongest first: positive (``> 0``) or negative (``< 0``)."""
    return np.flatnonzero(values > 0) if pole == "positive" else np.flatnonzero(values < 0)[::-1]


def _best_match(candidates: Modules, output: int, pole: str, targets: np.ndarray) -> np.ndarray:
    """Each target column's best match ``(g, n)`` among one output's leading modules of the same pole (``|cos|``)."""
    columns = _pole_columns(candidates.eigenvalues[output], pole)[:MATCH_CANDIDATES]
    vectors = candidates.eigenvectors[output][:, columns].astype(np.float64)  # unit columns (g, c)
    best = np.abs(vectors.T @ targets).argmax(axis=0)
    return vectors[:, best]


def module_reliability(result, n_modules: int = 3, *, modules: Modules | None = None, member_modules=None):
    """How reproducible each leading module of an ensemble is: one row per output, pole and rank.

    ``result`` is a :class:`~bilinear_core.train.FitResult`; an ensemble (``bc.fit(..., seeds=…)``) has
    ``members``. For the ``n_modules`` most positive and most negative eigenvalues of every output
    (``module`` 0, 1, … and -1, -2, …, as in :func:`module_stability`):

    - ``eigenvalue`` and ``share``, the module's part of the output's ``‖Q_a‖²_F``, ``λ² / Σλ²``
      (:func:`~bilinear_core.interpret.squared_norms`);
    - ``member_cos``: the mean over members of the ``|cos|`` between the ensemble's module and the member's
      best-matching module among its :data:`MATCH_CANDIDATES` leading ones of the same pole (order and sign
      do not matter);
    - ``split_half_cos``: the members split into two disjoint halves (first and second half), each combined
      into an ensemble; ``|cos|`` between the halves' best matches of the module. It measures an ensemble of
      half the size, so it errs on the safe side;
    - ``reproducible``: ``split_half_cos ≥`` :data:`REPRODUCIBLE_COS`.

    A single fit (or an ensemble of one) has no members to compare: its scores are NaN and ``reproducible``
    is ``<NA>``, unknown. ``modules`` (the ensemble's, e.g. oriented) and ``member_modules`` (one per member)
    reuse decompositions already made; the others are computed by
    :func:`~bilinear_core.interpret.leading_modules`.
    """
    k = int(n_modules)
    if k < 1:
        raise ValueError(f"n_modules must be a positive integer, got {n_modules!r}.")
    modules = leading_modules(result, k) if modules is None else modules
    members = result.members or []
    n = len(members)
    if n >= 2:
        if member_modules is None:
            member_modules = [leading_modules(m, MATCH_CANDIDATES) for m in members]
        if len(member_modules) != n:
            raise ValueError(f"member_modules has {len(member_modules)} entries for {n} members.")
        halves = [
            part_modules[0] if len(part) == 1 else leading_modules(ensemble(part), MATCH_CANDIDATES)
            for part, part_modules in (
                (members[: n // 2], member_modules[: n // 2]),
                (members[n // 2 :], member_modules[n // 2 :]),
            )
        ]
    norms = squared_norms(result)
    rows = []
    for a, output in enumerate(modules.output_names):
        values = modules.eigenvalues[a]
        for pole in ("positive", "negative"):
            columns = _pole_columns(values, pole)[:k]
            if not len(columns):
                continue
            targets = modules.eigenvectors[a][:, columns].astype(np.float64)
            member_cos = split_half = np.full(len(columns), np.nan)
            if n >= 2:
                matches = [_best_match(m, a, pole, targets) for m in member_modules]
                member_cos = np.mean([np.abs((match * targets).sum(axis=0)) for match in matches], axis=0)
                first, second = (_best_match(h, a, pole, targets) for h in halves)
                split_half = np.abs((first * second).sum(axis=0))
            signed = columns if pole == "positive" else columns - len(values)
            for rank, (column, module) in enumerate(zip(columns, signed)):
                rows.append(
                    dict(
                        output=output, pole=pole, rank=rank, module=int(module), eigenvalue=float(values[column]),
                        share=float(values[column] ** 2 / norms[a]) if norms[a] > 0 else np.nan,
                        member_cos=float(member_cos[rank]), split_half_cos=float(split_half[rank]), n_members=max(n, 1),
                    )
                )  # fmt: skip
    table = pd.DataFrame(rows)
    known = table["split_half_cos"].notna()
    table["reproducible"] = pd.array(
        np.where(known, table["split_half_cos"] >= REPRODUCIBLE_COS, False), dtype="boolean"
    )
    table.loc[~known, "reproducible"] = pd.NA
    return table


def reliability_of(modules: Modules, output, module: int) -> dict | None:
    """The row of ``modules.reliability`` for one output and ``module`` (an index of its spectrum), or ``None``.

    The table names a module of the negative pole by its negative index: column ``c`` of the spectrum is
    module ``c`` or ``c − size``, whichever pole it lies in.
    """
    table = modules.reliability
    if table is None:
        return None
    name = modules.output_names[modules._index(output)]
    size = modules.eigenvalues.shape[1]
    if not -size <= int(module) < size:
        raise IndexError(f"module {module} out of range: the spectrum has {size} modules.")
    column = int(module) % size
    rows = table[(table["output"].astype(str) == name) & (table["module"].isin([column, column - size]))]
    return None if rows.empty else rows.iloc[0].to_dict()


def _reliability_job(result, n_modules: int, member_modules: list) -> pd.DataFrame:
    return module_reliability(result, n_modules, member_modules=member_modules)


def ensemble_agreement(fits, sizes=(1, 3, 5, 10), n_modules: int = 3, n_jobs: int = 1) -> pd.DataFrame:
    """How well two disjoint ensembles of ``k`` fits agree on each module, for every ``k`` in ``sizes``.

    ``fits`` are single fits of one task on one split that differ in their seed. For each ``k`` the fits are
    cut, in order, into as many consecutive groups of ``2k`` as they hold; each group is an ensemble whose
    :func:`module_reliability` compares its two halves of ``k`` (``split_half_cos``: the agreement a
    ``k``-seed ensemble reaches). Rows: ``size`` (``k``), ``group`` and the columns of
    :func:`module_reliability`. The decompositions run in ``n_jobs`` processes.
    """
    fits = list(fits)
    sizes = [int(k) for k in sizes]
    if not sizes or min(sizes) < 1 or 2 * max(sizes) > len(fits):
        raise ValueError(f"sizes must be positive and at most half the {len(fits)} fits, got {sizes}.")
    jobs = {i: (1, leading_modules, (fit, MATCH_CANDIDATES)) for i, fit in enumerate(fits)}
    candidates = run_jobs(jobs, n_jobs)
    jobs = {}
    for k in sizes:
        for group in range(len(fits) // (2 * k)):
            part = range(2 * k * group, 2 * k * (group + 1))
            members = ensemble([fits[i] for i in part])
            jobs[k, group] = (k, _reliability_job, (members, n_modules, [candidates[i] for i in part]))
    done = run_jobs(jobs, n_jobs)
    table = pd.concat([done[key].assign(size=key[0], group=key[1]) for key in jobs], ignore_index=True)
    return table[["size", "group", *table.columns[:-2]]]
