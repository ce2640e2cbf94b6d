"""The post's perturbation regression: dose-scaled targets, filters, baselines and planted-truth recovery metrics.

sci-Plex2 (Srivatsan et al. 2020) treats A549 cells with four compounds at seven doses, each with its own
vehicle wells (dexamethasone's vehicle is ethanol, the others' DMSO). The data and drug names are loaded by
:mod:`bilinear_core.datasets` (``drug``, ``dose`` and ``treatment`` obs columns); this module turns them into
regression targets (:func:`dose_targets`), the Wilcoxon baseline (:func:`wilcoxon_vs_reference`) and, on the
simulation, measures how well a method recovers the planted programs (:func:`planted_recovery`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from .checks import check_finite, get_matrix, get_obs_column
from .enrichment import enrich
from .interpret import Modules, n_top_genes, pole_indices, top_genes
from .stability import rank_genes_wilcoxon


def dose_targets(
    adata: AnnData, drugs, drug_key: str = "perturbation", dose_key: str = "dose", control: str = "control"
) -> pd.DataFrame:
    """One column per drug holding ``log1p(dose)`` for cells treated with it and 0 elsewhere: ``(n, len(drugs))``.

    Cells whose ``drug_key`` is ``control`` get all zeros. Raises for a drug that no cell
    received and for cells with a perturbation outside ``drugs`` (other than ``control``).
    """
    drug = get_obs_column(adata, drug_key).astype(str).to_numpy()
    dose = get_obs_column(adata, dose_key).to_numpy(dtype=np.float64)
    check_finite(dose, f"adata.obs[{dose_key!r}]")
    if (dose < 0).any():
        raise ValueError(f"adata.obs[{dose_key!r}] has {int((dose < 0).sum())} negative dose(s).")
    drugs = [str(d) for d in drugs]
    present = set(drug)
    unknown = [d for d in drugs if d not in present]
    if unknown:
        raise ValueError(f"Unknown drug(s) {unknown}: adata.obs[{drug_key!r}] holds {sorted(present)}.")
    unexpected = sorted(present - set(drugs) - {control})
    if unexpected:
        raise ValueError(f"Cells with perturbations {unexpected} are neither in drugs={drugs} nor {control!r}.")
    targets = np.where(drug[:, None] == np.asarray(drugs)[None, :], np.log1p(dose)[:, None], 0.0)
    return pd.DataFrame(targets, index=adata.obs_names, columns=drugs)


def filter_low_count_cells(adata: AnnData, min_counts: float = 5_000, layer: str | None = None) -> AnnData:
    """Cells with at least ``min_counts`` total counts (the post drops sci-Plex2 cells below 5k)."""
    counts = adata.X if layer is None else adata.layers[layer]
    totals = np.asarray(counts.sum(axis=1)).ravel()
    return adata[totals >= min_counts].copy()


def _wilcoxon_table(adata: AnnData, groupby: str, reference: str, layer: str | None) -> pd.DataFrame:
    """One z-score column per group of ``groupby`` other than ``reference`` ``(genes, groups)``."""
    result = rank_genes_wilcoxon(adata, groupby, reference=reference, layer=layer)
    columns = {}
    for group in result["names"].dtype.names:
        columns[group] = pd.Series(np.asarray(result["scores"][group], dtype=np.float64), index=result["names"][group])
    return pd.DataFrame(columns).reindex(adata.var_names)


def wilcoxon_vs_reference(
    adata: AnnData, groupby: str, reference: str, layer: str | None = None, within: str | None = None
) -> pd.DataFrame:
    """Wilcoxon rank-sum z-score of every gene, each group against ``reference``: ``(genes, groups)``.

    :func:`bilinear_core.stability.rank_genes_wilcoxon` on ``adata.X`` (or ``layer``), which should hold
    log-normalised expression; positive z = higher in the group than in ``reference``. Columns are the
    groups other than ``reference``, in the order of ``adata.obs[groupby]``'s categories.

    ``within`` (an obs column) gives each group its own reference: the ``reference`` cells that share
    the group's ``within`` value, instead of every ``reference`` cell pooled. sci-Plex2 with
    ``groupby="treatment", reference="vehicle", within="drug"`` compares each drug's treated cells with
    that drug's own vehicle wells (ethanol for Dex, DMSO for the others). Each group must lie within one
    ``within`` value, and each value holding a group needs reference cells of its own.
    """
    if within is None:
        return _wilcoxon_table(adata, groupby, reference, layer)
    strata = get_obs_column(adata, within)
    if strata.isna().any():
        raise ValueError(f"adata.obs[{within!r}] has {int(strata.isna().sum())} missing value(s); drop those cells.")
    groups = get_obs_column(adata, groupby).astype(str).to_numpy()
    strata = strata.astype(str).to_numpy()
    treated = groups != reference
    spread = pd.Series(strata[treated]).groupby(groups[treated]).nunique()
    if (spread > 1).any():
        raise ValueError(
            f"Group(s) {list(spread.index[spread > 1])} occur under several values of adata.obs[{within!r}]."
        )
    tables = []
    for value in pd.unique(strata[treated]):
        cells = strata == value
        if not (groups[cells] == reference).any():
            raise ValueError(
                f"No {reference!r} cells with adata.obs[{within!r}] == {value!r} (groups there: "
                f"{sorted(set(groups[cells]))}); every group needs reference cells of its own."
            )
        tables.append(_wilcoxon_table(adata[cells], groupby, reference, layer))
    if not tables:
        raise ValueError(f"adata.obs[{groupby!r}] holds no group other than {reference!r}.")
    table = pd.concat(tables, axis=1)
    order = pd.Categorical(get_obs_column(adata, groupby)).categories.astype(str)
    return table[[g for g in order if g in table.columns]]


# ----------------------------------------------------------------------------------- planted-truth recovery


def planted_auroc(loadings, var_names, planted) -> float:
    """AUROC of telling ``planted`` genes from the others by ``|loading|`` (1: every planted gene ranks first).

    ``loadings`` is one value per gene ``(g,)`` (a module, or a test statistic); genes of ``planted``
    absent from ``var_names`` are ignored. Raises when none or all genes are planted.
    """
    from sklearn.metrics import roc_auc_score

    loadings = np.asarray(loadings, dtype=np.float64)
    if loadings.shape != (len(var_names),):
        raise ValueError(f"loadings must have one value per gene ({len(var_names)}), got shape {loadings.shape}.")
    is_planted = np.isin(np.asarray(var_names, dtype=str), np.asarray(list(planted), dtype=str))
    if is_planted.all() or not is_planted.any():
        raise ValueError(f"{int(is_planted.sum())} of {len(var_names)} genes are planted; need some, but not all.")
    return float(roc_auc_score(is_planted, np.abs(loadings)))


def pole_precision(loadings, var_names, planted, direction: str, n: int = 50) -> float:
    """Share of planted genes among the ``n`` strongest genes of the pole matching ``direction`` (``"up"``/``"down"``).

    ``"up"`` takes the ``n`` largest loadings, ``"down"`` the ``n`` smallest: with modules oriented so that
    the drug's cells score high, genes a drug raises load positive and genes it lowers load negative.
    """
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}.")
    loadings = np.asarray(loadings, dtype=np.float64)
    if not 1 <= n <= len(loadings):
        raise ValueError(f"n must lie in [1, {len(loadings)}], got {n!r}.")
    if len(var_names) != len(loadings):
        raise ValueError(f"loadings has {len(loadings)} values for {len(var_names)} genes.")
    up, down = pole_indices(loadings, n)
    return float(np.isin(np.asarray(var_names, dtype=str)[up if direction == "up" else down], list(planted)).mean())


def term_rank(enrichment: pd.DataFrame, library: str, term: str) -> float:
    """1-based rank of ``term`` among ``library``'s terms of an enrichment table by p-value; NaN if it has no hit.

    ``enrichment`` is a table of :func:`bilinear_core.enrichment.enrich` computed with ``cutoff=1, top=None``
    (every term with at least one hit), for one gene list.
    """
    rows = enrichment.loc[enrichment["library"] == library].sort_values(["p_value", "term"], kind="stable")
    hits = np.flatnonzero(rows["term"].to_numpy() == term)
    return float(hits[0] + 1) if hits.size else np.nan


def dose_spearman(scores, dose) -> float:
    """Spearman correlation of cell scores ``(n,)`` with dose ``(n,)`` (NaN when either is constant)."""
    scores, dose = np.asarray(scores, dtype=np.float64), np.asarray(dose, dtype=np.float64)
    if scores.shape != dose.shape or scores.ndim != 1:
        raise ValueError(f"scores and dose must be 1-d of equal length, got {scores.shape} and {dose.shape}.")
    if np.ptp(scores) == 0 or np.ptp(dose) == 0:
        return np.nan
    return float(stats.spearmanr(scores, dose).statistic)


def dose_profile(scores, dose) -> pd.DataFrame:
    """Mean, standard deviation and count of each score column ``(n, k)`` per dose ``(n,)``: one row per dose."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[:, None] if scores.ndim == 1 else scores
    dose = np.asarray(dose, dtype=np.float64)
    if dose.shape != (scores.shape[0],):
        raise ValueError(f"dose must have one entry per cell ({scores.shape[0]}), got shape {dose.shape}.")
    frame = pd.DataFrame(scores, columns=[f"module {m}" for m in range(scores.shape[1])]).assign(dose=dose)
    grouped = frame.groupby("dose")
    table = pd.concat({"mean": grouped.mean(), "sd": grouped.std(ddof=0)}, axis=1)
    table[("n", "cells")] = grouped.size()
    return table


def program_recovery(
    loadings,
    var_names,
    planted,
    direction: str,
    enrichment: pd.DataFrame,
    library: str,
    term: str,
    scores,
    dose,
    n: int = 50,
) -> dict:
    """How well one gene ranking recovers one planted program: a dict of the chapter's recovery metrics.

    ``loadings`` ``(g,)`` rank the genes ``var_names`` (a module oriented so the drug's cells score high,
    or a signed test statistic); ``enrichment`` is the full enrichment table (``cutoff=1, top=None``) of
    the gene list of the pole matching ``direction``; ``scores`` and ``dose`` ``(n,)`` are per-cell scores
    and doses of the drug's cells. Keys: ``n_planted_in_genes``, ``auroc`` (:func:`planted_auroc`),
    ``precision`` (:func:`pole_precision` at ``n``), ``term_rank`` (:func:`term_rank`) and ``spearman``
    (:func:`dose_spearman`).
    """
    in_genes = np.isin(np.asarray(var_names, dtype=str), list(planted))
    return {
        "n_planted_in_genes": int(in_genes.sum()),
        "auroc": planted_auroc(loadings, var_names, planted),
        "precision": pole_precision(loadings, var_names, planted, direction, n),
        "term_rank": term_rank(enrichment, library, term),
        "spearman": dose_spearman(scores, dose),
    }


def profile_correlation(profile: pd.DataFrame, expected) -> pd.Series:
    """Pearson r between each column of a per-dose profile ``(doses, k)`` and an expected response ``(doses,)``."""
    expected = np.asarray(expected, dtype=np.float64)
    if expected.shape != (len(profile),):
        raise ValueError(f"expected must have one value per dose ({len(profile)}), got shape {expected.shape}.")
    return profile.apply(lambda column: np.corrcoef(column.to_numpy(dtype=np.float64), expected)[0, 1])


def planted_recovery(
    adata: AnnData,
    modules: Modules,
    wilcoxon: pd.DataFrame,
    *,
    key: str = "bilinear",
    n_modules: int = 3,
    n: int = 50,
    drug_key: str = "drug",
    dose_key: str = "dose",
    layer: str | None = None,
) -> pd.DataFrame:
    """How well each drug's module 0, and a Wilcoxon test, recover the drug's primary planted program.

    For simulated data carrying their truth in ``adata.uns["planted"]``
    (:func:`bilinear_core.datasets.simulate.sciplex2`), after :func:`bilinear_core.tl.modules`:
    ``modules`` is the :class:`~bilinear_core.interpret.Modules` it returned (oriented so that the
    drug's cells score high), the cells' scores are read from ``adata.obsm[f"{key}_scores"]``, and
    ``adata.X`` (or ``layer``) holds the expression the model saw. ``wilcoxon`` holds one z-score
    column per drug ``(genes, drugs)``, e.g. :func:`wilcoxon_vs_reference`.

    Module 0 is scored by :func:`program_recovery` (term rank from the top genes of the pole matching
    the program's direction; Spearman of the module-0 score with dose over the drug's cells, its
    vehicle included), plus the best :func:`planted_auroc` among modules ``0 … n_modules − 1``. The
    Wilcoxon baseline ranks genes by the z-score signed by the program's direction, takes as many top
    genes for the term rank, and scores cells by the signed mean expression of its ``n`` strongest
    genes. Returns one row per drug (index ``drug``), columns as the perturbation chapter shows them.
    """
    if "planted" not in adata.uns:
        raise KeyError("adata.uns has no 'planted' entry: only simulated data (datasets.simulate) carry a truth.")
    if f"{key}_scores" not in adata.obsm:
        raise KeyError(f"adata.obsm has no {key + '_scores'!r}; run bilinear_core.tl.modules first.")
    planted = adata.uns["planted"]
    genes = np.asarray(adata.var_names, dtype=str)
    X = get_matrix(adata, layer)
    cell_scores = np.asarray(adata.obsm[f"{key}_scores"])
    drug = get_obs_column(adata, drug_key).astype(str).to_numpy()
    dose = get_obs_column(adata, dose_key).to_numpy(dtype=np.float64)
    last = n_modules - 1
    rows = []
    for p in planted["programs"][planted["programs"]["primary"]].itertuples():
        planted_set = set(planted["genes"][p.name])
        in_drug = drug == p.drug
        sign, pole = (1.0, "positive") if p.direction == "up" else (-1.0, "negative")
        top = top_genes(modules, p.drug, 0)
        pole_terms = enrich(top.loc[top["sign"] == pole, "gene"].tolist(), [p.library], cutoff=1.0, top=None)
        vectors = modules.vectors(p.drug)[:, :n_modules]
        scores = cell_scores[in_drug, modules._index(p.drug), 0]
        bilinear = program_recovery(
            vectors[:, 0], genes, planted_set, p.direction, pole_terms, p.library, p.term, scores, dose[in_drug], n
        )
        best = [planted_auroc(vectors[:, m], genes, planted_set) for m in range(vectors.shape[1])]
        z = sign * wilcoxon[p.drug].to_numpy(dtype=np.float64)
        ranked = genes[np.argsort(-z, kind="stable")]
        wilcoxon_terms = enrich(ranked[: n_top_genes(len(genes))].tolist(), [p.library], cutoff=1.0, top=None)
        signature = sign * X[np.ix_(in_drug, np.isin(genes, ranked[:n]))].mean(axis=1)
        baseline = program_recovery(
            z, genes, planted_set, "up", wilcoxon_terms, p.library, p.term, signature, dose[in_drug], n
        )
        rows.append(
            {
                "drug": p.drug,
                "program": p.name,
                "direction": p.direction,
                "planted genes in the model's genes": f"{bilinear['n_planted_in_genes']} of {p.n_genes_planted}",
                "AUROC module 0": bilinear["auroc"],
                f"AUROC best of modules 0–{last}": max(best),
                "best module": int(np.argmax(best)),
                f"precision top-{n} module 0": bilinear["precision"],
                "term rank module 0": bilinear["term_rank"],
                "Spearman module 0 vs dose": bilinear["spearman"],
                "AUROC Wilcoxon": baseline["auroc"],
                f"precision top-{n} Wilcoxon": baseline["precision"],
                "term rank Wilcoxon": baseline["term_rank"],
                "Spearman Wilcoxon signature vs dose": baseline["spearman"],
            }
        )
    return pd.DataFrame(rows).set_index("drug")
