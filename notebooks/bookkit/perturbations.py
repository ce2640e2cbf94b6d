"""Helpers of the perturbation chapter (04): data notes, planted-truth checks and sentences that flip with real vs simulated data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bilinear_core.datasets import HASH_FILTERS
from bilinear_core.datasets.simulate import planted_response
from bilinear_core.interpret import Modules
from bilinear_core.perturbation import planted_auroc, profile_correlation

from bookkit import join_and

#: The warning the perturbation chapter shows when sci-Plex2's file is missing and the simulation stands in.
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


#: Caption of the table of planted programs.
PLANTED_CAPTION = (
    "Planted programs (simulated data): natural-log fold change at full response, times a per-gene "
    "weight in [0.5, 1.5]; Hill dose-responses (bell: rises at ec50, declines at ec50 (decline)); the "
    "stress program follows 1 − viability, the cell-cycle program varies per cell whatever the treatment"
)


#: Caption of the planted-truth recovery table.
RECOVERY_CAPTION = (
    "Recovery of each drug's primary planted program (simulated data): bilinear module 0 (and the best "
    "of modules 0–2) against the Wilcoxon test of each drug's treated cells vs its own vehicle cells; "
    "term rank 1 = the planted set is its library's most significant term"
)


def sciplex2_name(adata) -> str:
    """What the perturbation chapter runs on, for its prose: the simulation or the real file."""
    dataset = adata.uns["dataset"]
    return (
        "a simulated sci-Plex2"
        if dataset["simulated"]
        else f"the real sci-Plex2 data ({dataset['file']})"
    )


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
        "programs, their effect sizes and the reason for each were fixed before the chapter was first run:"
    )


def planted_programs(adata) -> pd.DataFrame:
    """The simulation's planted programs, one row each, with the columns the chapter shows and saves."""
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


def dose_summary_sentence(
    report: pd.DataFrame, n_cells: int, min_counts: int = 5_000
) -> str:
    """The chapter's summary of cells and dose-regression errors over treated cells, naming the worst drug."""
    errors = report["MAE, treated cells"]
    listed = ", ".join(f"{value:.2f} ({drug})" for drug, value in errors.items())
    return (
        f"{n_cells:,} cells pass the {min_counts:,}-count filter. A bilinear regressor of dose-scaled one-hot "
        f"targets reaches a validation MAE, over each drug's treated cells, of {listed}; the largest is "
        f"{errors.idxmax()}'s."
    )


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


def recovery_verdicts(recovery: pd.DataFrame) -> str:
    """Markdown bullets, one per drug, generated from :func:`bilinear_core.perturbation.planted_recovery`'s table."""
    lines = []
    for drug, row in recovery.iterrows():
        gap = row["AUROC module 0"] - row["AUROC Wilcoxon"]
        compare = (
            "above" if gap > 0.02 else "below" if gap < -0.02 else "about equal to"
        )
        rank = row["term rank module 0"]
        term = (
            f"its term ranks {rank:.0f} in its library"
            if np.isfinite(rank)
            else "its term gets no hit"
        )
        missed = (
            " **Module 0 misses this program.**" if row["AUROC module 0"] < 0.65 else ""
        )
        lines.append(
            f"- **{drug}** ({row['program']}, {row['direction']}): AUROC {row['AUROC module 0']:.2f} in module 0 "
            f"(best of 0–2: {row['AUROC best of modules 0–2']:.2f}, module {row['best module']}), {compare} "
            f"the Wilcoxon test's {row['AUROC Wilcoxon']:.2f}; {row['precision top-50 module 0']:.0%} of module "
            f"0's top-50 matching genes are planted (Wilcoxon {row['precision top-50 Wilcoxon']:.0%}); {term}; "
            f"the module-0 score follows dose with Spearman {row['Spearman module 0 vs dose']:.2f}.{missed}"
        )
    return "\n".join(lines)


def recovery_headline(recovery: pd.DataFrame, tolerance: float = 0.02) -> str:
    """One sentence: for which drugs module 0 ranks the planted genes above, as well as or below Wilcoxon."""
    gap = recovery["AUROC module 0"] - recovery["AUROC Wilcoxon"]
    groups = {
        "better than": gap.index[gap > tolerance],
        "as well as": gap.index[gap.abs() <= tolerance],
        "worse than": gap.index[gap < -tolerance],
    }
    parts = [
        f"{word} it for {', '.join(drugs)}"
        for word, drugs in groups.items()
        if len(drugs)
    ]
    return (
        "against a Wilcoxon test of each drug's cells against its own vehicle wells, module 0 ranks the "
        f"planted genes (AUROC) {'; '.join(parts)} (a difference within ±{tolerance} counts as equal)"
    )


def moderate_dose_table(
    adata, modules: Modules, profile: pd.DataFrame, drug: str = "SAHA"
) -> pd.DataFrame:
    """``drug``'s modules against its two planted programs (monotone ``hill`` and moderate-dose ``bell``).

    One row per module of ``profile`` (:func:`bilinear_core.perturbation.dose_profile` of the drug's
    scores): eigenvalue, dose of the highest mean score, Pearson r of the mean profile with each
    program's planted response, and the AUROC of each program's genes by ``|loading|``.
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


def moderate_dose_sentence(table: pd.DataFrame) -> str:
    """Which module of :func:`moderate_dose_table` singles out the moderate-dose genes, and what that means."""
    best = int(table["AUROC moderate-dose genes"].to_numpy().argmax())
    row = table.iloc[best]
    text = (
        f"The module whose loadings single out the moderate-dose genes best is module {best} (AUROC "
        f"{row['AUROC moderate-dose genes']:.2f}; for the monotone program's genes {row['AUROC monotone genes']:.2f}); "
        f"its mean score peaks at {table.index.name} dose {row['peak dose (mean score)']:g} and correlates with the "
        f"planted bell-shaped response at r = {row['r with moderate-dose response']:.2f} across doses. "
    )
    if (
        row["AUROC moderate-dose genes"] >= 0.7
        and row["r with moderate-dose response"] >= 0.5
    ):
        return text + (
            "So a module tied to the moderate-dose program exists among the first three, as the post's reading "
            "suggests."
        )
    return text + (
        "**So no module among the first three clearly captures the moderate-dose program**: a module "
        "peaking at moderate doses is not by itself evidence of a separate dose-specific program."
    )


def perturbation_closing(simulated: bool) -> str:
    """The perturbation chapter's last sentence: what its results are evidence of."""
    if simulated:
        return (
            "On the simulation, the recovery table above says for each drug how much of the planted program module 0 "
            "finds, next to a plain Wilcoxon test of each drug's treated against its own vehicle cells; where module "
            "0 falls short of the baseline, the bilinear modules add interpretability, not detection power. These are "
            "properties of the method on data whose answer is known; the drugs' real programs need the real file."
        )
    return (
        "On the real data there is no planted truth; the modules' gene lists are hypotheses to be checked "
        "against the drugs' known biology and by experiment."
    )
