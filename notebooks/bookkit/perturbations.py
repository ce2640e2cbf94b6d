"""Helpers of the perturbation chapter (04): data notes, display tables, planted-truth checks and the sentences
that change with real vs simulated sci-Plex2 data.

The chapter runs on the real sci-Plex2 file when it is present and on a simulation of its design otherwise;
everything here that depends on which one is decided from ``adata.uns["dataset"]["simulated"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bilinear_core.datasets import HASH_FILTERS
from bilinear_core.datasets.simulate import planted_response
from bilinear_core.interpret import Modules
from bilinear_core.perturbation import planted_auroc, profile_correlation, term_rank
from bilinear_core.report import SIGNS, ModuleReport

from bookkit import dropdown, figure_markdown, join_and, table, value_range
from bookkit.interpretation import (
    enrichment_display,
    readable,
    regression_interpretation,
    top_genes_display,
)

#: The warning the perturbation chapter shows when sci-Plex2's file is missing.
SIMULATED_SCIPLEX2 = (
    ":::{admonition} Simulated data\n:class: warning\n"
    "The sci-Plex2 expression file could not be loaded here, so **every figure and table of this chapter "
    "shows simulated cells**: the real design (drugs, doses, wells, measured viabilities) with expression "
    "simulated by `bilinear_core.datasets.simulate` and gene programs planted by us. Nothing below is a finding "
    "about the drugs; enriched terms are a check of whether the planted gene sets come back. With "
    "`srivatsan_2020_sciplex2.h5ad` in the data folder (or internet access for pertpy), the same chapter "
    "runs on the real data.\n:::"
)

#: Under every enrichment of simulated cells: what the terms mean there.
SIMULATED_TERMS = "*Simulated data: the terms are a check of which planted sets come back, not findings about the drug.*"


def terms_note(adata) -> str:
    """What enriched terms mean on simulated cells (:data:`SIMULATED_TERMS`, after a blank line), or nothing."""
    return f"\n\n{SIMULATED_TERMS}" if is_simulated(adata) else ""


def is_simulated(adata) -> bool:
    """Whether the chapter's cells are the simulation (``uns["dataset"]["simulated"]``)."""
    return bool(adata.uns["dataset"]["simulated"])


def data_label(adata) -> str:
    """What every caption and table note says the cells are: ``"simulated data"`` or ``"sci-Plex2 data"``."""
    return "simulated data" if is_simulated(adata) else "sci-Plex2 data"


def sciplex2_name(adata) -> str:
    """What the perturbation chapter runs on, for its prose: the simulation or the real file."""
    dataset = adata.uns["dataset"]
    return (
        "a simulated sci-Plex2"
        if dataset["simulated"]
        else f"the real sci-Plex2 data ({dataset['file']})"
    )


def simulation_warning(adata) -> str:
    """The chapter's warning box on simulated data, or nothing on the real file."""
    return SIMULATED_SCIPLEX2 if is_simulated(adata) else ""


def hash_filter_sentence(adata) -> str:
    """How many cells the authors' hash filters removed (``uns["harmonized"]``), or why they do not apply."""
    rules = ", ".join(
        f"{column} {op} {threshold:g}"
        for column, (op, threshold) in HASH_FILTERS.items()
    )
    if adata.uns["dataset"]["simulated"]:
        return (
            f"On the real file the loader also applies the authors' cell filters on the hash (well) call ({rules}) "
            "and counts the cells each removes; the simulation has no hash calls, so they do not apply here."
        )
    harmonized = adata.uns["harmonized"]
    if not harmonized["n_failing"]:
        return f"The authors' cell filters on the hash (well) call were not applied: {harmonized['cell_filters']}."
    assigned = harmonized["n_cells_in"] - harmonized["n_unassigned_dropped"]
    each = "; ".join(
        f"{n:,} fail {column}" for column, n in harmonized["n_failing"].items()
    )
    return (
        f"Of the {assigned:,} cells with a well assignment, the authors' cell filters on the hash call "
        f"({harmonized['cell_filters']}) remove {harmonized['n_filtered']:,} "
        f"({harmonized['n_filtered'] / assigned:.0%}): {each} (a cell can fail several)."
    )


def sciplex2_data_note(adata) -> str:
    """Markdown on how the chapter's sci-Plex2 cells came about: the simulation's settings, or the file's counts."""
    dataset = adata.uns["dataset"]
    if not dataset["simulated"]:
        return (
            f"The file holds {dataset['n_cells_in_file']:,} cells and {dataset['n_genes_in_file']:,} genes; "
            f"{dataset['n_unassigned_dropped']:,} cells that scPerturb labels `control` (no well assignment: the "
            f"design gives every drug its own vehicle wells) are dropped, and the hash filters remove "
            f"{dataset['n_hash_filtered']:,} more, leaving the cells above."
        )
    settings = adata.uns["planted"]["settings"]
    return (
        f"**How the simulation is built** (`bilinear_core.datasets.simulate`, seed {settings['seed']}). "
        f"{settings['n_cells']:,} cells are spread over the 192 wells in proportion to each well's viability (drawn "
        f"from the measured mean ± sd). {settings['n_genes']:,} genes carry real human symbols from the gene-set "
        f"libraries; each gene's mean is log-normal (log-sd {settings['gene_mean_sdlog']}), counts are negative "
        f"binomial (overdispersion {settings['dispersion']}), and each cell's library size is log-normal (median "
        f"{settings['library_median']:,.0f}, log-sd {settings['library_sdlog']}) so that about 40 % of the cells "
        f"reach 5,000 counts, as in the post. About {settings['ambient_counts']:,.0f} of each cell's counts come "
        "from the untreated pool (ambient RNA), which dilutes the drug signal in low-count cells. The planted "
        "programs, their effect sizes and the reason for each were fixed before the chapter was first run."
    )


def design_table(cells: pd.DataFrame, viability: pd.DataFrame) -> pd.DataFrame:
    """Cells per dose (rows) and drug (columns) with the measured viability beside each count.

    ``cells`` and ``viability`` are tables of the same doses and drugs; each entry reads ``"1,234 (0.95)"``.
    """
    cells = cells.rename(columns=str)
    viability = viability.rename(columns=str).loc[cells.index, cells.columns]
    shown = cells.map("{:,}".format) + viability.map(" ({:.2f})".format)
    shown.index = pd.Index([f"{dose:g}" for dose in cells.index], name="dose")
    return shown


def planted_programs(adata) -> pd.DataFrame:
    """The simulation's planted programs, one row each, with the columns the chapter saves."""
    programs = adata.uns["planted"]["programs"]
    counts = (
        programs["n_genes_planted"].astype(str)
        + " of "
        + programs["n_genes_in_set"].astype(str)
    )
    columns = [
        "name",
        "drug",
        "library",
        "term",
        "direction",
        "lfc",
        "ec50",
        "ec50_off",
        "shape",
    ]
    return programs[columns].assign(planted_genes=counts)


def planted_sets_table(planted: pd.DataFrame) -> pd.DataFrame:
    """Which gene set each planted program (a row of :func:`planted_programs`) draws its genes from."""
    return pd.DataFrame(
        {
            "program": planted["name"].to_numpy(),
            "drug": planted["drug"].to_numpy(),
            "gene set": [
                f"{t} ({readable(lib)})"
                for lib, t in zip(planted["library"], planted["term"])
            ],
            "genes planted": planted["planted_genes"].to_numpy(),
        }
    )


def planted_responses_table(planted: pd.DataFrame) -> pd.DataFrame:
    """How each planted program (a row of :func:`planted_programs`) responds to dose."""
    return pd.DataFrame(
        {
            "program": planted["name"].to_numpy(),
            "direction": planted["direction"].to_numpy(),
            "log-fold change": planted["lfc"].to_numpy(),
            "ec50": planted["ec50"].to_numpy(),
            "ec50 of the decline": planted["ec50_off"].to_numpy(),
            "shape": planted["shape"].to_numpy(),
        }
    )


#: Note under the table of planted responses: what the columns mean and why cells are empty.
PLANTED_RESPONSES_NOTE = (
    "Natural-log fold change at full response, times a per-gene weight in [0.5, 1.5]; Hill dose-responses "
    "(bell: rises at ec50 and declines at the ec50 of the decline). — : monotone programs have no decline; the stress "
    "program follows 1 − viability and the cell-cycle program varies per cell whatever the treatment, so "
    "neither has an ec50."
)


def program_rationales(adata) -> str:
    """Markdown bullets: each planted program and the reason it was planted."""
    return "\n".join(
        f"- **{p.name}**: {p.rationale}."
        for p in adata.uns["planted"]["programs"].itertuples()
    )


def filter_sentence(
    n_before: int, n_after: int, n_genes: int, min_counts: int = 5_000
) -> str:
    """How many cells pass the count filter (against the post's numbers) and how many genes the model sees."""
    return (
        f"Of {n_before:,} cells, {n_after:,} ({n_after / n_before:.0%}) have at least {min_counts:,} counts (the "
        f"post: ~25k → ~10k). The model sees {n_genes:,} genes."
    )


def add_treatment_legend(fig, labels) -> None:
    """A legend of the treatment colours of :func:`bilinear_core.pl.predicted_vs_true`, below its panels.

    That figure colours each point by the code of its label in ``pd.Categorical(labels)`` through the
    ``tab10`` colormap, scaled from the first code to the last; the legend reproduces that mapping.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    categories = pd.Categorical(labels).categories
    cmap = plt.get_cmap("tab10")
    last = max(len(categories) - 1, 1)
    handles = [
        Line2D([], [], marker="o", ls="", color=cmap(i / last), label=str(c))
        for i, c in enumerate(categories)
    ]
    fig.legend(
        handles=handles, loc="outside lower center", ncols=len(handles), frameon=False
    )


def validation_table(report: pd.DataFrame) -> pd.DataFrame:
    """:func:`bilinear_core.train.regression_report` with the treated-cell MAE, headed for reading."""
    shown = report.rename(
        columns={
            "mae": "MAE, all cells",
            "MAE, treated cells": "MAE, treated cells",
            "std": "SD of target",
            "iqr": "IQR of target",
            "r2": "R²",
            "pearson_r": "Pearson r",
        }
    )
    shown.index.name = "drug"
    return shown


def dose_fit_sentence(history: pd.DataFrame, report: pd.DataFrame) -> str:
    """The dose regression's final error, its train/validation gap and its worst drug (the post: Dex)."""
    final = history.iloc[-1]
    gap = (
        "a clear train/validation gap: the model overfits, as the post also saw"
        if final["val_mae"] > 1.5 * final["train_mae"]
        else "a small train/validation gap"
    )
    worst = report["MAE, treated cells"].idxmax()
    compare = (
        "As in the post, Dex has the largest error"
        if worst == "Dex"
        else f"Unlike the post (Dex worst), {worst} has the largest error here"
    )
    return (
        f"After {len(history)} epochs the mean absolute error over the {len(report)} outputs is "
        f"{final['val_mae']:.3f} on validation cells ({final['train_mae']:.3f} on training cells), {gap}. "
        f"{compare} over the cells that received the drug."
    )


def hardest_drug_clause(report: pd.DataFrame) -> str:
    """Which drug's dose is hardest to read (largest MAE over its treated cells), against the post (Dex)."""
    worst = report["MAE, treated cells"].idxmax()
    if worst == "Dex":
        return "as in the post, Dex's dose is the hardest to read"
    return f"unlike the post, where Dex's dose was the hardest to read, here it is {worst}'s"


def modules_auroc_sentence(values, auroc, cells: str) -> str:
    """How well modules 0, 1, 2, … separate ``cells`` from the rest, with their eigenvalues and the most negative."""
    k = len(auroc)
    return (
        f"Modules {join_and([str(m) for m in range(k)])} separate {cells} from the rest with AUROC "
        f"{join_and([f'{a:.2f}' for a in auroc])}; their eigenvalues are {join_and([f'{v:.3g}' for v in values[:k]])} "
        f"(the most negative one: {values[-1]:.3g})."
    )


def peak_doses(profile: pd.DataFrame) -> pd.Series:
    """The dose at which each module's mean score peaks, dose 0 (no drug) left out: ``(modules,)``."""
    return profile["mean"].drop(index=0.0).idxmax()


def peak_sentence(profile: pd.DataFrame, drug: str) -> str:
    """The doses at which modules 0, 1, … of ``drug`` score highest on average."""
    peaks = peak_doses(profile)
    return (
        f"Here the mean score of modules {join_and([str(m) for m in range(len(peaks))])} is highest at {drug} dose "
        f"{join_and([f'{dose:g}' for dose in peaks])}."
    )


def terms_table(report: ModuleReport, n: int = 5) -> pd.DataFrame:
    """The ``n`` most significant terms of each pole in one table (index: pole, rank from 1)."""
    poles = {sign: enrichment_display(report, sign, n) for sign in SIGNS}
    return pd.concat(poles, names=["pole"])


def further_modules(
    reports: dict, drug: str, modules: Modules, correlations: pd.DataFrame
) -> str:
    """The reading of ``drug``'s modules beyond module 0 that the ensemble reproduces, or a line saying none is.

    ``reports`` maps ``(drug, module)`` to the :class:`~bilinear_core.report.ModuleReport` of each such module;
    ``correlations`` is :func:`bilinear_core.interpret.module_target_correlations`, giving each module's r.
    """
    found = sorted(m for d, m in reports if d == drug)
    if not found:
        return f"No module of {drug} beyond module 0 is reproducible, so none is interpreted."
    r = correlations.set_index(["output", "module"])["r"]
    texts = [
        f"**Module {m}** (reproducible, so read like module 0). "
        + regression_interpretation(
            reports[drug, m], modules, r=float(r[drug, m]), target=f"{drug} dose"
        )
        for m in found
    ]
    return "\n\n".join(texts)


def module_detail(
    report: ModuleReport,
    label: str,
    n_genes: int = 10,
    n_terms: int = 5,
) -> str:
    """A dropdown with one module's top genes and most significant terms per pole (the whole lists linked)."""
    parts = genes_and_terms(report, label, n_genes, n_terms)
    title = f"{report.output} module {report.module}: top genes and enriched terms"
    return dropdown(title, *parts)


def genes_and_terms(
    report: ModuleReport, label: str, n_genes: int, n_terms: int, of: str = ""
) -> list:
    """Dropdown parts: the top ``n_genes`` per pole and the ``n_terms`` most significant terms per pole, each
    table linked to the chapter's whole CSV; ``of`` names the module in the lead-ins (e.g. " of module 0")."""
    terms = terms_table(report, n_terms)
    return [
        f"**Top {n_genes} genes per pole{of}** ({label}):",
        table(
            top_genes_display(report, n_genes), link="perturbation_module0_genes.csv"
        ),
        f"**Most significant terms per pole{of}** (at most {n_terms}, adjusted p ≤ 0.05; {label}):",
        table(terms, link="perturbation_module0_enrichment.csv")
        if len(terms)
        else "No term passes adjusted p ≤ 0.05.",
    ]


def drug_section(
    drug: str,
    overview,
    profile_figure,
    interpretation: str,
    report: ModuleReport,
    adata,
    reliability: str,
    n_genes=10,
    n_terms=5,
) -> str:
    """One drug's figures, module-0 interpretation, genes and terms, as one dropdown (for BMS, Dex, Nutlin).

    ``reliability`` says which of modules 0–2 are reproducible (its figure's caption ends with it).
    """
    label = data_label(adata)
    slug = drug.lower()
    parts = [
        figure_markdown(
            overview,
            f"fig-pert-{slug}-modules",
            f"{drug}: spectrum of $\\mathbf{{Q}}_\\text{{{drug}}}$ (top left) and every cell's score on modules "
            f"0–2 ({label}), one histogram per treatment, {drug}-treated cells filled. {reliability}",
        ),
        figure_markdown(
            profile_figure,
            f"fig-pert-{slug}-dose",
            f"{drug} modules 0–2: mean ± sd of the cells' scores at each {drug} dose ({label}); dose 0 holds "
            f"every cell without {drug}.",
        ),
        f"**Module 0.** {interpretation}",
    ]
    if is_simulated(adata):
        parts.append(SIMULATED_TERMS)
    parts += genes_and_terms(report, label, n_genes, n_terms, of=" of module 0")
    return dropdown(drug, *parts)


def module0_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The numbers of :func:`bilinear_core.report.summary_table` for the dose model, one row per drug."""
    shown = summary[
        [
            "validation MAE (treated cells)",
            "r module 0 with target",
            "AUROC module 0 (drug vs rest)",
            "eigenvalue",
        ]
    ].rename(
        columns={
            "validation MAE (treated cells)": "MAE, treated cells",
            "r module 0 with target": "r with dose",
            "AUROC module 0 (drug vs rest)": "AUROC, drug vs rest",
        }
    )
    shown.index.name = "drug"
    return shown


def module0_poles_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The genes and terms of :func:`bilinear_core.report.summary_table` in long format: one row per drug and pole."""
    rows = [
        {
            "drug": drug,
            "pole": sign,
            "top 5 genes": row[f"{sign} genes"],
            "most significant term": readable(row[f"{sign} terms"]),
        }
        for drug, row in summary.iterrows()
        for sign in SIGNS
    ]
    return pd.DataFrame(rows).set_index(["drug", "pole"])


def recovery(
    adata, modules: Modules, wilcoxon: pd.DataFrame, key: str = "bilinear"
) -> pd.DataFrame | None:
    """:func:`bilinear_core.perturbation.planted_recovery` on simulated data (the scores of ``key``); ``None`` on
    the real file."""
    from bilinear_core.perturbation import planted_recovery

    if "planted" not in adata.uns:
        return None
    return planted_recovery(adata, modules, wilcoxon, key=key)


def recovery_table(recovery: pd.DataFrame) -> pd.DataFrame:
    """:func:`bilinear_core.perturbation.planted_recovery`'s table in long format: module 0 and Wilcoxon per drug."""
    precision = next(
        c
        for c in recovery.columns
        if c.startswith("precision top-") and c.endswith("module 0")
    )
    n = precision.removeprefix("precision top-").removesuffix(" module 0")
    rows = []
    for drug, row in recovery.iterrows():
        for method, suffix, spearman in (
            ("module 0", "module 0", "Spearman module 0 vs dose"),
            ("Wilcoxon", "Wilcoxon", "Spearman Wilcoxon signature vs dose"),
        ):
            rows.append(
                {
                    "drug": drug,
                    "method": method,
                    "AUROC": row[f"AUROC {suffix}"],
                    f"planted share of top {n}": row[f"precision top-{n} {suffix}"],
                    "term rank in library": row[f"term rank {suffix}"],
                    "Spearman with dose": row[spearman],
                }
            )
    return pd.DataFrame(rows).set_index(["drug", "method"])


#: Note under the recovery table: how to read it and why a rank can be missing.
RECOVERY_NOTE = (
    "AUROC: the planted genes told from the others by |loading| (module 0) or |z| (Wilcoxon). Planted share: "
    "planted genes among the strongest genes of the pole matching the program's direction. Term rank: 1 = the "
    "planted set is its library's most significant term for those genes; — : the set has no hit. Spearman: "
    "the cell score (module 0, or the Wilcoxon signature) against dose over the drug's cells and its vehicle."
)


def recovery_sentences(recovery: pd.DataFrame, n_genes: int) -> str:
    """What the recovery table does not show at a glance: genes kept by the model, best module, misses."""
    column = "planted genes in the model's genes"
    kept = join_and([f"{row[column]} ({drug})" for drug, row in recovery.iterrows()])
    best_column = next(
        c for c in recovery.columns if c.startswith("AUROC best of modules")
    )
    span = best_column.removeprefix("AUROC best of ")
    others = recovery[recovery["best module"] != 0]
    best = (
        f"For every drug the best of {span} is module 0 itself."
        if others.empty
        else "Another module ranks the planted genes better than module 0 for "
        + join_and(
            [
                f"{d} (module {r['best module']}, AUROC {r[best_column]:.2f})"
                for d, r in others.iterrows()
            ]
        )
        + "."
    )
    missed = recovery.index[recovery["AUROC module 0"] < 0.65].to_list()
    miss = (
        f" Module 0 misses the program of {join_and(missed)} (AUROC below 0.65)."
        if missed
        else ""
    )
    return (
        f"Of each primary program's planted genes, {kept} are among the {n_genes:,} genes the model sees; "
        f"the AUROC counts only those. {best}{miss}"
    )


#: How :func:`_against_wilcoxon`'s groups read after "module 0 ranks the planted genes".
_COMPARED = {"better": "better than", "as well": "as well as", "worse": "worse than"}


def _against_wilcoxon(recovery: pd.DataFrame, tolerance: float) -> dict[str, list[str]]:
    """Drugs whose module 0 ranks the planted genes better than, as well as (AUROC gap
    within ±``tolerance``) or worse than Wilcoxon: ``{"better": [...], "as well": [...],
    "worse": [...]}`` in the table's drug order, only the non-empty groups."""
    gap = recovery["AUROC module 0"] - recovery["AUROC Wilcoxon"]
    masks = {
        "better": gap > tolerance,
        "as well": gap.abs() <= tolerance,
        "worse": gap < -tolerance,
    }
    return {
        word: [str(drug) for drug in gap.index[mask]]
        for word, mask in masks.items()
        if mask.any()
    }


def recovery_comparison(recovery: pd.DataFrame, tolerance: float = 0.02) -> str:
    """One sentence: for which drugs module 0 ranks the planted genes better than, as
    well as or worse than Wilcoxon."""
    parts = []
    for word, drugs in _against_wilcoxon(recovery, tolerance).items():
        head = word if parts else f"{_COMPARED[word]} the Wilcoxon test"
        parts.append(f"{head} for {join_and(drugs)}")
    return (
        f"Module 0 ranks the planted genes {join_and(parts)} (AUROC differences "
        f"within ±{tolerance} count as equal)."
    )


def recovery_headline(recovery: pd.DataFrame, tolerance: float = 0.02) -> str:
    """One clause: for which drugs module 0 ranks the planted genes above, as well as or
    below Wilcoxon."""
    parts = [
        f"{_COMPARED[word]} it for {', '.join(drugs)}"
        for word, drugs in _against_wilcoxon(recovery, tolerance).items()
    ]
    return (
        "against a Wilcoxon test of each drug's cells against its own vehicle wells, "
        f"module 0 ranks the planted genes (AUROC) {'; '.join(parts)} (a difference "
        f"within ±{tolerance} counts as equal)"
    )


def recovery_takeaway(recovery: pd.DataFrame | None, tolerance: float = 0.02) -> str:
    """The chapter's key takeaway on the planted truth: module 0 against Wilcoxon, or
    why there is none (``recovery`` is ``None`` on the real file)."""
    if recovery is None:
        return (
            "On the real data there is no planted truth to recover: the modules' gene "
            "lists are hypotheses, to be checked against the drugs' known biology and "
            "by experiment."
        )
    parts = [
        f"{word} for {join_and(drugs)}"
        for word, drugs in _against_wilcoxon(recovery, tolerance).items()
    ]
    return (
        "On the simulation, module 0 ranks each drug's planted genes with AUROC "
        f"{value_range(recovery['AUROC module 0'], '.2f')}; against a Wilcoxon test of "
        "each drug's cells against its own vehicle wells it does "
        f"{join_and(parts)}: a property of the method on data whose answer is known, "
        "not of the drugs."
    )


def findings_row(
    recovery: pd.DataFrame | None, auroc0, tolerance: float = 0.02
) -> tuple[str, str]:
    """The chapter's answer and key number for the introduction's findings table
    (plain text: glued).

    On the simulation (``recovery`` from :func:`recovery`): for how many drugs module 0
    ranks the planted genes as well as a Wilcoxon test or better, and both AUROC
    ranges. On the real file (``recovery`` is ``None``): no truth to check, and module
    0's AUROC of each drug's cells against the rest (``auroc0``, one per drug).
    """
    if recovery is None:
        return (
            "No truth to check on the real data: the gene lists are hypotheses",
            "module 0 separates each drug's cells with AUROC "
            f"{value_range(auroc0, '.2f')}",
        )
    groups = _against_wilcoxon(recovery, tolerance)
    n = len(groups.get("better", [])) + len(groups.get("as well", []))
    total = len(recovery)
    verdict = "yes" if n >= total / 2 else "no"
    count = f"{n} of {total}" if n else f"none of the {total}"
    answer = (
        f"On simulated data, {verdict}: module 0 ranks the planted genes as well as a "
        f"Wilcoxon test or better for {count} drugs"
    )
    number = (
        f"planted genes' AUROC {value_range(recovery['AUROC module 0'], '.2f')}, "
        f"Wilcoxon {value_range(recovery['AUROC Wilcoxon'], '.2f')} (simulated data)"
    )
    return answer, number


def chapter_answer(adata, recovery: pd.DataFrame | None, auroc0) -> str:
    """The answer of the chapter's "In this chapter" paragraph: the planted genes'
    recovery on the simulation, or module 0's AUROC (``auroc0``, one per drug) and what
    its gene lists are on the real file."""
    if recovery is None or not is_simulated(adata):
        return (
            "On the real data, module 0 of each drug separates the drug's cells from "
            f"all others with AUROC {value_range(auroc0, '.2f')}; its gene lists are "
            "hypotheses about the drugs' programs, with no truth here to check them "
            "against."
        )
    ranks = recovery["term rank module 0"]
    if (ranks == 1).all():
        terms = "their gene set is the top term of its library"
    else:
        each = [
            f"{rank:.0f} ({drug})" if np.isfinite(rank) else f"no hit ({drug})"
            for drug, rank in ranks.items()
        ]
        terms = f"their gene set's rank in its library is {join_and(each)}"
    return (
        "Offline, the chapter runs on a simulation of the real design with planted "
        "gene programs; there module 0 of each drug ranks the planted genes with AUROC "
        f"{value_range(recovery['AUROC module 0'], '.2f')}, and {terms}."
    )


def _planted_term(enrichment: pd.DataFrame, program, pole: str) -> dict:
    """One row of :func:`planted_terms_table`: a planted program (a row of the
    programs table) on one pole of a module's enrichment (every term with a hit)."""
    hits = enrichment[enrichment["sign"] == pole]
    match = hits[(hits["library"] == program.library) & (hits["term"] == program.term)]
    return {
        "planted set": program.name,
        "planted for": program.drug,
        "pole": pole,
        "rank in library": term_rank(hits, program.library, program.term),
        "adjusted p": match["adjusted_p"].min() if len(match) else np.nan,
    }


def planted_terms_table(adata, reports: dict[str, ModuleReport]) -> pd.DataFrame:
    """Planted gene sets in each drug's module-0 enrichment (``reports``: every term
    with a hit, one report per drug).

    For each drug (index ``drug``): its own programs on the pole of their direction,
    primary first, whether or not they come back; then every other planted set with
    adjusted p ≤ 0.05 on either pole, by adjusted p. Columns: the program's name
    (``planted set``), its drug (``planted for``; "all" or "none" for the shared
    programs), the pole, the term's rank in its library on that pole (1 = most
    significant; NaN: no hit) and its adjusted p.
    """
    programs = adata.uns["planted"]["programs"]
    frames = {}
    for drug, report in reports.items():
        own = programs[programs["drug"] == drug].sort_values(
            "primary", ascending=False, kind="stable"
        )
        rows = [
            _planted_term(
                report.enrichment, p, "positive" if p.direction == "up" else "negative"
            )
            for p in own.itertuples()
        ]
        others = [
            _planted_term(report.enrichment, p, pole)
            for p in programs[programs["drug"] != drug].itertuples()
            for pole in SIGNS
        ]
        others = [row for row in others if row["adjusted p"] <= 0.05]
        rows += sorted(others, key=lambda row: row["adjusted p"])
        frames[drug] = pd.DataFrame(rows)
    found = pd.concat(frames, names=["drug", None]).droplevel(1)
    return found[
        ["planted set", "planted for", "pole", "rank in library", "adjusted p"]
    ]


#: Note under the table of planted sets in module 0's enrichment.
PLANTED_TERMS_NOTE = (
    "Rank 1: the most significant term of its library on that pole. — : the set has "
    'no hit. "all": the stress program of dying wells; "none": the cell-cycle program '
    "of every cell."
)


def planted_terms_display(found: pd.DataFrame) -> pd.DataFrame:
    """:func:`planted_terms_table` with the drug as a column (shown without index)."""
    return found.reset_index()


def _planted_terms_clauses(
    found: pd.DataFrame, programs: pd.DataFrame
) -> tuple[str, str, bool]:
    """What :func:`planted_terms_table` says of the primary programs and of the other
    drugs' programs (two clauses, lower case), and whether the latter all come back on
    the negative pole."""
    primary = programs[programs["primary"]].set_index("drug")["name"]
    ranks = {}
    for drug in found.index.unique():
        rows = found.loc[[drug]]
        rank = rows.loc[rows["planted set"] == primary[drug], "rank in library"]
        ranks[drug] = float(rank.iloc[0]) if len(rank) else np.nan
    if all(rank == 1 for rank in ranks.values()):
        first = (
            "each drug's primary program is the top term of its library on the pole "
            "it was planted on"
        )
    else:
        each = [
            f"{drug} rank {rank:.0f}" if np.isfinite(rank) else f"{drug} no hit"
            for drug, rank in ranks.items()
        ]
        first = (
            "the drugs' primary programs rank in their libraries, on the pole they "
            f"were planted on: {join_and(each)}"
        )
    planted_for = found["planted for"]
    other = found[planted_for.isin(primary.index) & (planted_for != found.index)]
    n, negative = len(other), int((other["pole"] == "negative").sum())
    if not n:
        return first, "no other drug's program comes back", False
    where = "all" if negative == n else f"{negative}"
    second = f"other drugs' programs come back {n} times, {where} on the negative pole"
    return first, second, negative == n


def planted_terms_sentence(found: pd.DataFrame, programs: pd.DataFrame) -> str:
    """What :func:`planted_terms_table` shows: the primary programs' ranks, the other
    drugs' programs that come back and on which pole, and the drugs whose enrichment
    shows the shared programs (``programs``: the simulation's planted programs)."""
    first, second, all_negative = _planted_terms_clauses(found, programs)
    if all_negative:
        second += ": module 0 also tells a drug's cells from the other drugs' cells"
    sentences = [f"{first[0].upper()}{first[1:]}.", f"{second[0].upper()}{second[1:]}."]
    for planted_for, program in (
        ("all", "The stress program of dying wells"),
        ("none", "The cell-cycle program of every cell"),
    ):
        drugs = found.index[found["planted for"] == planted_for].unique().to_list()
        if drugs:
            sentences.append(f"{program} comes back for {join_and(drugs)}.")
        elif planted_for == "all":
            sentences.append(f"{program} does not come back.")
    return " ".join(sentences)


def planted_terms_takeaway(found: pd.DataFrame, programs: pd.DataFrame) -> str:
    """The chapter's key takeaway on the planted sets in module 0's enrichment."""
    first, second, _ = _planted_terms_clauses(found, programs)
    return f"In module 0's enrichment {first}, and {second}."


def moderate_dose_table(
    adata, modules: Modules, profile: pd.DataFrame, drug: str = "SAHA"
) -> pd.DataFrame:
    """``drug``'s modules against its two planted programs (monotone ``hill`` and
    moderate-dose ``bell``).

    One row per module of ``profile`` (:func:`bilinear_core.perturbation.dose_profile`
    of the drug's scores): eigenvalue, dose of the highest mean score, Pearson r of the
    mean profile with each program's planted response, and the AUROC of each program's
    genes by ``|loading|``.
    """
    planted = adata.uns["planted"]
    names = planted["programs"].query("drug == @drug").set_index("shape")["name"]
    k = profile["mean"].shape[1]
    vectors = modules.vectors(drug)
    doses = profile.index.to_numpy()

    def r_with(shape):
        return profile_correlation(
            profile["mean"], planted_response(adata, names[shape], doses)
        ).to_numpy()

    def auroc(shape):
        return [
            planted_auroc(
                vectors[:, m], adata.var_names, planted["genes"][names[shape]]
            )
            for m in range(k)
        ]

    return pd.DataFrame(
        {
            "eigenvalue": modules.values(drug)[:k],
            "peak dose (mean score)": peak_doses(profile).to_numpy(),
            "r with monotone program's response": r_with("hill"),
            "r with moderate-dose response": r_with("bell"),
            "AUROC monotone genes": auroc("hill"),
            "AUROC moderate-dose genes": auroc("bell"),
        },
        index=pd.Index([f"module {m}" for m in range(k)], name=drug),
    )


def moderate_dose_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`moderate_dose_table` headed for reading, its modules numbered (index
    ``"SAHA module"``)."""
    shown = table.rename(
        columns={
            "peak dose (mean score)": "peak dose",
            "r with monotone program's response": "r, monotone response",
            "r with moderate-dose response": "r, moderate-dose response",
            "AUROC monotone genes": "AUROC, monotone genes",
            "AUROC moderate-dose genes": "AUROC, moderate-dose genes",
        }
    )
    shown.index = pd.Index(
        [int(label.removeprefix("module ")) for label in table.index],
        name=f"{table.index.name} module",
    )
    return shown


def _follows_moderate(row: pd.Series) -> bool:
    """Whether a module (a row of :func:`moderate_dose_table`) captures the
    moderate-dose program: its loadings single out the program's genes (AUROC ≥ 0.7)
    and its mean score follows the planted response across doses (r ≥ 0.5)."""
    return bool(
        row["AUROC moderate-dose genes"] >= 0.7
        and row["r with moderate-dose response"] >= 0.5
    )


def moderate_dose_sentence(table: pd.DataFrame) -> str:
    """Which module of :func:`moderate_dose_table` singles out the moderate-dose genes,
    and what that means."""
    best = int(table["AUROC moderate-dose genes"].to_numpy().argmax())
    row = table.iloc[best]
    text = (
        "The module whose loadings single out the moderate-dose genes best is module "
        f"{best} (AUROC {row['AUROC moderate-dose genes']:.2f}; for the monotone "
        f"program's genes {row['AUROC monotone genes']:.2f}); its mean score peaks at "
        f"{table.index.name} dose {row['peak dose (mean score)']:g} and correlates "
        "with the planted bell-shaped response at r = "
        f"{row['r with moderate-dose response']:.2f} across doses. "
    )
    if _follows_moderate(row):
        return text + (
            "So a module tied to the moderate-dose program exists among the first "
            "three, as the post's reading suggests."
        )
    return text + (
        "So no module among the first three clearly captures the moderate-dose "
        "program: a module peaking at moderate doses is not by itself evidence of a "
        "separate dose-specific program."
    )


def moderate_dose_takeaway(table: pd.DataFrame) -> str:
    """The chapter's key takeaway on the moderate-dose program: the module of
    :func:`moderate_dose_table` that follows it (the best r among those that capture
    it), or none."""
    drug, r = table.index.name, table["r with moderate-dose response"]
    follows = [label for label, row in table.iterrows() if _follows_moderate(row)]
    if follows:
        best = r[follows].idxmax()
        row = table.loc[best]
        return (
            f"{drug}'s {best} follows the planted moderate-dose program (r = "
            f"{row['r with moderate-dose response']:.2f} with its response, AUROC "
            f"{row['AUROC moderate-dose genes']:.2f} for its genes), so a module can "
            "single out a program that peaks at moderate doses."
        )
    return (
        f"None of {drug}'s modules 0–2 follows the planted moderate-dose program (at "
        f"best r = {r.max():.2f} with its response), so a module peaking at moderate "
        "doses, as the post read modules 1 and 2, is no evidence of a dose-specific "
        "program."
    )
