# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Perturbation regression
#
# This chapter reproduces the post's "Perturbation regression" section: A549 lung adenocarcinoma cells from
# sci-Plex2 (Srivatsan et al. 2020), each treated with one of four compounds (the HDAC inhibitor SAHA, the MDM2
# inhibitor Nutlin, the IKK inhibitor BMS-345541 and the glucocorticoid dexamethasone) at one of seven doses or
# its vehicle. A bilinear MLP regresses each cell's dose of each drug from its expression, and the eigenvectors
# of each drug's interaction matrix $\mathbf{Q}_a$ are read as the gene programs the model uses to recognise
# that drug and its dose.
#
# sci-Plex2's expression data are downloaded by `pertpy.data.srivatsan_2020_sciplex2()`. Where that file
# cannot be had, as on the machines that build this book, the same code runs on a **simulation built on the
# real experimental design** with gene programs planted by us, and a last section measures whether the
# method recovers them.

# %% tags=["remove-input"]
import numpy as np
import pandas as pd
import scanpy as sc
import torch
from IPython.display import Markdown, display
from myst_nb import glue

import bilinear_core as bc
from bilinear_core.interpret import module_target_correlations, n_top_genes, orient_modules
from bilinear_core.perturbation import DRUGS, VEHICLE
from bilinear_core.report import dropdown, enrichment_table, module_report_parts, regression_interpretation

pd.set_option("display.max_colwidth", 80)
torch.set_num_threads(1)  # see the cell-typing chapter: one thread is faster on a shared CPU, and deterministic
RESULTS = bc.datasets.results_dir()

# %% [markdown]
# The loader returns scPerturb's file with the post's drug names when it is in the data folder or can be
# downloaded, and the simulation otherwise; `adata.uns["dataset"]` says which.

# %%
adata = bc.datasets.sciplex2_or_simulated(seed=0)

# %% tags=["remove-input"]
dataset = adata.uns["dataset"]
SIM = bool(dataset["simulated"])
TAG = " (simulated data)" if SIM else ""
glue("data_name", "a simulated sci-Plex2" if SIM else f"the real sci-Plex2 data ({dataset['file']})", display=False)
if SIM:
    display(
        Markdown(
            ":::{admonition} Simulated data\n:class: warning\n"
            "The sci-Plex2 expression file could not be loaded here, so **every figure and table of this chapter "
            "shows simulated cells**: the real design (drugs, doses, wells, measured viabilities) with expression "
            "simulated by `bilinear_core.simulate` and gene programs planted by us. Nothing below is a finding "
            "about the drugs; enriched terms are a check of whether the planted gene sets come back. With "
            "`srivatsan_2020_sciplex2.h5ad` in the data folder (or internet access for pertpy), the same chapter "
            "runs on the real data.\n:::"
        )
    )

# %% [markdown]
# ## The data
#
# This chapter runs on **{glue:text}`data_name`**, loaded by `bilinear_core.datasets.sciplex2_or_simulated()`:
# scPerturb's file when it is in the data folder or pertpy can download it, otherwise the simulation. The design
# is the experiment's: every drug at doses 0.1, 0.5, 1, 5, 10, 50 and 100 (the labels of the hash sample sheet;
# 0 marks each drug's vehicle wells), six wells each, with the CellTiter-Glo viability measured on the same
# plate. High doses of BMS and Nutlin kill almost every cell, so those wells contribute few cells.

# %%
design = bc.datasets.sciplex2_design()
cells_per_condition = adata.obs.groupby(["drug", "dose"], observed=True).size().unstack(fill_value=0)
viability = design.pivot(index="drug", columns="dose", values="viability_mean")
(
    pd.concat({"cells": cells_per_condition, "viability": viability.round(2)}, axis=1)
    .rename(columns=lambda dose: f"{dose:g}", level=1)
    .style.format(precision=2)
    .set_caption(f"Cells per drug and dose label, and measured viability{TAG}")
)

# %% tags=["remove-input"]
if SIM:
    planted = adata.uns["planted"]
    settings = planted["settings"]
    programs = planted["programs"]
    data_note = (
        f"**How the simulation is built** (`bilinear_core.simulate`, seed {settings['seed']}). "
        f"{settings['n_cells']:,} cells are spread over the 192 wells in proportion to each well's viability (drawn "
        f"from the measured mean ± sd). {settings['n_genes']:,} genes carry real human symbols from the gene-set "
        f"libraries; each gene's mean is log-normal (log-sd {settings['gene_mean_sdlog']}), counts are negative "
        f"binomial (overdispersion {settings['dispersion']}), and each cell's library size is log-normal (median "
        f"{settings['library_median']:,.0f}, log-sd {settings['library_sdlog']}) so that about 40 % of the cells "
        f"reach 5,000 counts, as in the post. About {settings['ambient_counts']:,.0f} of each cell's counts come "
        "from the untreated pool (ambient RNA), which dilutes the drug signal in low-count cells. The planted "
        "programs, their effect sizes and the reason for each were fixed before the chapter was first run:"
    )
else:
    data_note = (
        f"The file holds {dataset['n_cells_in_file']:,} cells and {dataset['n_genes_in_file']:,} genes; "
        f"{dataset['n_unassigned_dropped']:,} cells that scPerturb labels `control` (no well assignment: the design "
        "gives every drug its own vehicle wells) are dropped, leaving the cells above."
    )
display(Markdown(data_note))  # Markdown, not glue: glued text is shown verbatim

# %% tags=["remove-input"]
if SIM:
    shown = programs.assign(
        planted_genes=programs["n_genes_planted"].astype(str) + " of " + programs["n_genes_in_set"].astype(str)
    )
    shown = shown[["name", "drug", "library", "term", "direction", "lfc", "ec50", "ec50_off", "shape", "planted_genes"]]
    shown.to_csv(RESULTS / "perturbation_planted_programs.csv", index=False)
    display(
        shown.rename(columns={"lfc": "log-fold change", "ec50_off": "ec50 (decline)"})
        .style.format(precision=2, na_rep="–")
        .hide(axis="index")
        .set_caption(
            "Planted programs (simulated data): natural-log fold change at full response, times a per-gene "
            "weight in [0.5, 1.5]; Hill dose-responses (bell: rises at ec50, declines at ec50 (decline)); the "
            "stress program follows 1 − viability, the cell-cycle program varies per cell whatever the treatment"
        )
    )
    display(Markdown("\n".join(f"- **{p.name}**: {p.rationale}." for p in programs.itertuples())))

# %% [markdown]
# ### Preprocessing
#
# As in the post: cells with fewer than 5,000 total counts are dropped (the post: "Low-count cells formed mixed
# perturbation clusters"), ribosomal genes removed, counts normalised to the median total and `log1p`-transformed,
# and the 5,000 most variable genes kept. PCA (randomized solver, 50 components), exact nearest neighbours (15 per
# cell) and UMAP (200 epochs) are seeded.

# %%
MIN_COUNTS = 5_000
totals = np.asarray(adata.X.sum(axis=1)).ravel()
fig = bc.plotting.count_histogram(totals, MIN_COUNTS, title=f"Total counts per cell{TAG}")
n_before = adata.n_obs
adata = bc.perturbation.filter_low_count_cells(adata, MIN_COUNTS)
adata = bc.preprocess.preprocess(adata, n_top_genes=5_000, layer=None)
adata.X = adata.X.toarray()  # dense from here on: the model needs it, and PCA is faster on it
adata = bc.preprocess.embed(
    adata, n_pcs=50, n_neighbors=15, seed=0, svd_solver="randomized", transformer="sklearn", umap_epochs=200
)

# %% tags=["remove-input"]
glue("n_before", n_before, display=False)
glue("n_after", adata.n_obs, display=False)
glue("frac_after", adata.n_obs / n_before, display=False)
glue("n_genes", adata.n_vars, display=False)

# %% [markdown]
# Of {glue:text}`n_before:,d` cells, **{glue:text}`n_after:,d` ({glue:text}`frac_after:.0%`) have at least 5,000
# counts** (the post: ~25k → ~10k). The model sees {glue:text}`n_genes:,d` genes.

# %%
adata.obs["log1p dose"] = np.log1p(adata.obs["dose"])
fig = sc.pl.umap(
    adata, color=["treatment", "log1p dose"], title=[f"Treatment{TAG}", f"log(1 + dose){TAG}"], frameon=False,
    return_fig=True, show=False, wspace=0.3,
)  # fmt: skip
fig.set_size_inches(11, 4.5)
palette = dict(zip(adata.obs["treatment"].cat.categories, adata.uns["treatment_colors"]))

# %% [markdown]
# The post saw the drugs largely separated in UMAP space, SAHA branching with increasing dose, Nutlin a similar
# trend, BMS branching only at lower doses and Dex without a clear dose pattern. The maps above are for
# {glue:text}`data_name`.
#
# ## Model training
#
# The targets are dose-scaled one-hot vectors: one output per drug $a$,
#
# $$y_a = \begin{cases} \log(1 + \text{dose}) & \text{if the cell received drug } a \text{ at a dose} > 0,\\
# 0 & \text{otherwise,}\end{cases}$$
#
# so vehicle cells are the zero vector (`bilinear_core.perturbation.dose_targets`). The model is the post's: one
# bilinear layer of hidden width 128 with dropout 0.4 on the hidden units, no biases, a linear head to the four
# outputs, trained with the Huber loss for 100 epochs in batches of 128 with Adam (learning rate $10^{-4}$,
# cosine annealing, weight decay $10^{-3}$ as an L2 term, as in the other chapters) on a random 70/30 split,
# seeds fixed to 42.

# %%
targets = bc.perturbation.dose_targets(adata, DRUGS, drug_key="treatment", dose_key="dose", control=VEHICLE)
X = adata.X
Y = targets.to_numpy(dtype=np.float32)
result = bc.fit(
    X, Y, task="regression", output_names=list(DRUGS), n_hidden=128, dropout=0.4, loss="huber", lr=1e-4,
    weight_decay=1e-3, epochs=100, batch_size=128, val_fraction=0.3, seed=42, progress=False,
)  # fmt: skip
history = result.history
history.to_csv(RESULTS / "perturbation_history.csv", index=False)
fig = bc.plotting.training_curves(history, title=f"dose regression{TAG}")

# %% tags=["remove-input"]
glue("val_mae", float(history["val_mae"].iloc[-1]), display=False)
glue("train_mae", float(history["train_mae"].iloc[-1]), display=False)

# %%
val = result.val_idx
treatment = adata.obs["treatment"].astype(str).to_numpy()
report = bc.train.regression_report(result, X, Y)
pred = result.predict(X)
report["MAE, treated cells"] = [np.abs(pred[val] - Y[val])[treatment[val] == d, i].mean() for i, d in enumerate(DRUGS)]
report.to_csv(RESULTS / "perturbation_validation.csv")
report.round(3).style.format(precision=3).set_caption(f"Validation error per drug{TAG}")

# %% tags=["remove-input"]
for d in DRUGS:
    glue(f"mae_{d}", float(report.loc[d, "mae"]), display=False)
    glue(f"mae_treated_{d}", float(report.loc[d, "MAE, treated cells"]), display=False)
    glue(f"r_{d}", float(report.loc[d, "pearson_r"]), display=False)
    glue(f"r2_{d}", float(report.loc[d, "r2"]), display=False)
final = history.iloc[-1]
glue(
    "gap",
    "a clear train/validation gap: the model overfits, as the post also saw"
    if final["val_mae"] > 1.5 * final["train_mae"]
    else "a small train/validation gap",
    display=False,
)
worst = report["MAE, treated cells"].idxmax()
glue("worst_drug", worst, display=False)
glue(
    "dex_vs_post",
    "As in the post, Dex has the largest error."
    if worst == "Dex"
    else f"Unlike the post (Dex worst), {worst} has the largest error here.",
    display=False,
)

# %%
fig = bc.plotting.predicted_vs_true(pred[val], Y[val], list(DRUGS), labels=treatment[val])
fig.suptitle(f"Validation cells: predicted against true log(1 + dose), coloured by treatment{TAG}")

# %% [markdown]
# After 100 epochs the mean absolute error over the four outputs is {glue:text}`val_mae:.3f` on validation cells
# ({glue:text}`train_mae:.3f` on training cells), {glue:text}`gap`. Per drug, over all validation cells (most of which have target
# 0 for any one drug), the MAE is {glue:text}`mae_BMS:.3f` (BMS), {glue:text}`mae_Dex:.3f` (Dex),
# {glue:text}`mae_Nutlin:.3f` (Nutlin) and {glue:text}`mae_SAHA:.3f` (SAHA); over the cells that received the
# drug it is {glue:text}`mae_treated_BMS:.2f`, {glue:text}`mae_treated_Dex:.2f`,
# {glue:text}`mae_treated_Nutlin:.2f` and {glue:text}`mae_treated_SAHA:.2f`. {glue:text}`dex_vs_post` The
# validation $R^2$ per drug is {glue:text}`r2_BMS:.2f` (BMS), {glue:text}`r2_Dex:.2f` (Dex), {glue:text}`r2_Nutlin:.2f`
# (Nutlin) and {glue:text}`r2_SAHA:.2f` (SAHA): a negative value means the predictions of that drug's dose are
# worse than predicting its mean for every cell.
#
# ## Model interpretation
#
# For every drug we eigendecompose the symmetric $\mathbf{Q}_a$ exactly from the low-rank factors and orient each
# module so that its score covaries positively with the drug's target on the training cells (so the positive
# pole holds genes whose expression rises with the drug's dose). Each pole's top genes (the post's 1 %, here
# {glue:text}`n_top:d` genes) are tested for over-representation against local copies of the seven human
# libraries: GO Biological Process 2023, GO Molecular Function and Cellular Component 2022, KEGG 2021 Human,
# MSigDB's Reactome sets, MSigDB Hallmark 2020 and WikiPathways 2023 Human.

# %%
train = result.train_idx
modules = orient_modules(bc.eigendecompose(result.model, list(DRUGS), adata.var_names), X[train], Y[train])
scores = {d: bc.module_scores(X, modules, d, n_modules=3) for d in DRUGS}
correlations = module_target_correlations(X, modules, Y, n_modules=3)
r0 = correlations[correlations["module"] == 0].set_index("output")["r"]
n_top = n_top_genes(adata.n_vars)
reports = {
    d: bc.report.module_report(modules, d, module=0, libraries=bc.enrichment.HUMAN_LIBRARIES, cutoff=1.0, top=None)
    for d in DRUGS
}  # every term with a hit, for the recovery ranks below; the displays keep adjusted p ≤ 0.05
shown_reports = {
    d: bc.report.ModuleReport(r.output, r.module, r.eigenvalue, r.genes, r.enrichment[r.enrichment["adjusted_p"] <= 0.05].groupby("sign", sort=False).head(15))
    for d, r in reports.items()
}  # fmt: skip
modules.spectrum().to_csv(RESULTS / "perturbation_spectrum.csv", index=False)
pd.concat([r.genes for r in reports.values()]).to_csv(RESULTS / "perturbation_module0_genes.csv", index=False)
pd.concat([r.enrichment.assign(output=d) for d, r in reports.items()]).to_csv(
    RESULTS / "perturbation_module0_enrichment.csv", index=False
)
dose = adata.obs["dose"].to_numpy()

# %% tags=["remove-input"]
glue("n_top", n_top, display=False)


def dose_profile_of(drug):
    """Module 0–2 scores of ``drug`` by its dose (0: every cell without the drug)."""
    return bc.perturbation.dose_profile(scores[drug], np.where(treatment == drug, dose, 0.0))


def note(drug):
    return (
        "*Simulated data: the terms are a check of which planted sets come back, not findings about the drug.*"
        if SIM
        else ""
    )


# %% [markdown]
# ### SAHA
#
# SAHA (vorinostat) inhibits histone deacetylases and reprograms transcription in a dose-dependent way. As in the
# post, we first look at SAHA's modules from a classification point of view: histograms of every cell's score on
# modules 0–2, one per treatment, SAHA-treated cells filled (with the spectrum of $\mathbf{Q}_\text{SAHA}$ on
# the left).

# %%
SAHA = "SAHA"
fig = bc.plotting.module_overview(modules, SAHA, scores[SAHA], treatment, highlight=SAHA, palette=palette)
fig.suptitle(f"SAHA: spectrum of Q and module scores by treatment{TAG}")
auroc_saha = bc.interpret.module_auroc(scores[SAHA], treatment == SAHA)
values = modules.values(SAHA)

# %% tags=["remove-input"]
for m in range(3):
    glue(f"saha_auroc{m}", float(auroc_saha[m]), display=False)
    glue(f"saha_lambda{m}", float(values[m]), display=False)
glue("saha_lambda_min", float(values[-1]), display=False)

# %% [markdown]
# Modules 0, 1 and 2 separate SAHA-treated cells from the rest with AUROC {glue:text}`saha_auroc0:.2f`,
# {glue:text}`saha_auroc1:.2f` and {glue:text}`saha_auroc2:.2f`; their eigenvalues are
# {glue:text}`saha_lambda0:.3g`, {glue:text}`saha_lambda1:.3g` and {glue:text}`saha_lambda2:.3g` (the most
# negative one: {glue:text}`saha_lambda_min:.3g`). Following the post, we plot the modules' mean ± sd by SAHA dose;
# dose 0 groups every cell without SAHA (vehicle and the other drugs).

# %%
profile = dose_profile_of(SAHA)
profile.to_csv(RESULTS / "perturbation_saha_dose_profile.csv")
fig = bc.plotting.dose_profile(profile, title=f"SAHA modules 0–2 by SAHA dose (mean ± sd){TAG}")
# %% tags=["remove-input"]
peaks = profile["mean"].drop(index=0.0).idxmax()
for m in range(3):
    glue(f"saha_peak{m}", f"{peaks.iloc[m]:g}", display=False)

# %% [markdown]
# The post found module 0's mean and spread rising with SAHA dose and modules 1 and 2 emphasising low and medium
# doses. Here the mean score of modules 0, 1 and 2 is highest at SAHA dose {glue:text}`saha_peak0`,
# {glue:text}`saha_peak1` and {glue:text}`saha_peak2`.
#
# #### Module 0: overall interpretation (generated)

# %%
display(Markdown(regression_interpretation(shown_reports[SAHA], modules, r=float(r0[SAHA]), target="SAHA dose")))
display(Markdown(note(SAHA)))

# %%
shown_reports[SAHA].top_table(10).style.set_caption(f"SAHA module 0: top 10 genes per pole{TAG}")

# %%
enrichment_table(shown_reports[SAHA], "positive").style.set_caption(
    f"SAHA module 0, positive pole: enriched terms (adjusted p ≤ 0.05){TAG}"
)

# %%
enrichment_table(shown_reports[SAHA], "negative").style.set_caption(
    f"SAHA module 0, negative pole: enriched terms (adjusted p ≤ 0.05){TAG}"
)

# %% [markdown]
# ### BMS, Dex and Nutlin
#
# The same figures and tables for the other three drugs.

# %%
for d in ("BMS", "Dex", "Nutlin"):
    overview = bc.plotting.module_overview(modules, d, scores[d], treatment, highlight=d, palette=palette)
    overview.suptitle(f"{d}: spectrum of Q and module scores by treatment{TAG}")
    parts = [
        overview,
        bc.plotting.dose_profile(dose_profile_of(d), title=f"{d} modules 0–2 by {d} dose (mean ± sd){TAG}"),
        "**Overall interpretation (generated)**",
        regression_interpretation(shown_reports[d], modules, r=float(r0[d]), target=f"{d} dose"),
        note(d),
        *module_report_parts(shown_reports[d], caption_suffix=TAG),
    ]
    display(Markdown(dropdown(d, *parts)))

# %% [markdown]
# ## Summary over the four drugs

# %%
metrics = pd.DataFrame(
    {
        "validation MAE (treated cells)": report["MAE, treated cells"].round(3),
        "r module 0 with target": r0.round(2),
        "AUROC module 0 (drug vs rest)": pd.Series(
            {d: bc.interpret.module_auroc(scores[d][:, 0], treatment == d)[0] for d in DRUGS}
        ).round(2),
    }
)
summary = bc.report.summary_table(shown_reports, metrics, n_genes=5, n_terms=1)
summary["eigenvalue"] = summary["eigenvalue"].round(4)
summary.to_csv(RESULTS / "perturbation_summary.csv")
summary.style.format(precision=3).set_caption(f"Module 0 of every drug{TAG}")

# %% [markdown]
# ## Planted-truth recovery
#
# On simulated data we know which genes each drug moves, in which direction and how with dose, which the real
# data cannot tell us and the post never checked. For each drug's primary program we measure: the AUROC of the
# planted genes (among the model's genes) ranked by $|$loading$|$ in module 0 and in the best of modules 0–2; the
# share of planted genes among the 50 strongest genes of the pole matching the planted direction (positive pole
# for genes the drug raises, negative for genes it lowers); the rank of the planted set's own term among its
# library's terms when that pole's top genes are tested; and the Spearman correlation of the module-0 score with
# dose within that drug's cells (vehicle included). The baseline is scanpy's Wilcoxon rank-sum test of each drug's
# treated cells against the vehicle cells, with genes ranked by the test's z-score.

# %% tags=["remove-input"]
if SIM:
    wilcoxon = bc.perturbation.wilcoxon_vs_reference(adata, "treatment", VEHICLE)
    genes = np.asarray(adata.var_names)
    rows = []
    for p in programs[programs["primary"]].itertuples():
        d, planted_set = p.drug, set(planted["genes"][p.name])
        in_drug = adata.obs["drug"].to_numpy() == d
        sign = 1.0 if p.direction == "up" else -1.0
        pole = "positive" if p.direction == "up" else "negative"
        vectors = modules.vectors(d)[:, :3]
        full = reports[d].enrichment[reports[d].enrichment["sign"] == pole]
        bilinear = bc.perturbation.program_recovery(
            vectors[:, 0],
            genes,
            planted_set,
            p.direction,
            full,
            p.library,
            p.term,
            scores[d][in_drug, 0],
            dose[in_drug],
        )
        best = [bc.perturbation.planted_auroc(vectors[:, m], genes, planted_set) for m in range(3)]
        z = wilcoxon[d].to_numpy()
        top_wilcoxon = genes[np.argsort(-sign * z, kind="stable")]
        wilcoxon_terms = bc.enrichment.enrich(top_wilcoxon[:n_top].tolist(), [p.library], cutoff=1.0, top=None)
        signature = sign * X[np.ix_(in_drug, np.isin(genes, top_wilcoxon[:50]))].mean(axis=1)
        baseline = bc.perturbation.program_recovery(
            sign * z, genes, planted_set, "up", wilcoxon_terms, p.library, p.term, signature, dose[in_drug]
        )
        rows.append(
            {
                "drug": d, "program": p.name, "direction": p.direction,
                "planted genes in the model's genes": f"{bilinear['n_planted_in_genes']} of {p.n_genes_planted}",
                "AUROC module 0": bilinear["auroc"], "AUROC best of modules 0–2": max(best),
                "best module": int(np.argmax(best)), "precision top-50 module 0": bilinear["precision"],
                "term rank module 0": bilinear["term_rank"], "Spearman module 0 vs dose": bilinear["spearman"],
                "AUROC Wilcoxon": baseline["auroc"], "precision top-50 Wilcoxon": baseline["precision"],
                "term rank Wilcoxon": baseline["term_rank"], "Spearman Wilcoxon signature vs dose": baseline["spearman"],
            }
        )  # fmt: skip
    recovery = pd.DataFrame(rows).set_index("drug")
    recovery.to_csv(RESULTS / "perturbation_recovery.csv")
    display(
        recovery.style.format(precision=2, na_rep="no hit")
        .format("{:.0f}", subset=["term rank module 0", "term rank Wilcoxon"], na_rep="no hit")
        .set_caption(
            "Recovery of each drug's primary planted program (simulated data): bilinear module 0 (and the best "
            "of modules 0–2) against the Wilcoxon test of treated vs vehicle cells; term rank 1 = the planted "
            "set is its library's most significant term"
        )
    )
else:
    display(Markdown("The real data carry no planted truth, so this section only runs on simulated data."))

# %% tags=["remove-input"]
if SIM:

    def verdict(row):
        """One sentence per drug, generated from the recovery table."""
        gap = row["AUROC module 0"] - row["AUROC Wilcoxon"]
        compare = "above" if gap > 0.02 else "below" if gap < -0.02 else "about equal to"
        rank = row["term rank module 0"]
        term = f"its term ranks {rank:.0f} in its library" if np.isfinite(rank) else "its term gets no hit"
        missed = " **Module 0 misses this program.**" if row["AUROC module 0"] < 0.65 else ""
        return (
            f"- **{row.name}** ({row['program']}, {row['direction']}): AUROC {row['AUROC module 0']:.2f} in module 0 "
            f"(best of 0–2: {row['AUROC best of modules 0–2']:.2f}, module {row['best module']}), {compare} the "
            f"Wilcoxon test's {row['AUROC Wilcoxon']:.2f}; {row['precision top-50 module 0']:.0%} of module 0's "
            f"top-50 matching genes are planted (Wilcoxon {row['precision top-50 Wilcoxon']:.0%}); {term}; the "
            f"module-0 score follows dose with Spearman {row['Spearman module 0 vs dose']:.2f}.{missed}"
        )

    display(Markdown("\n".join(verdict(row) for _, row in recovery.iterrows())))

# %% [markdown]
# **The program that peaks at moderate SAHA doses.** The post read SAHA's modules 1 and 2 as emphasising low
# and medium doses. In the simulation SAHA also drives a second program that rises from dose 0.5 and declines
# above 10. Which of SAHA's modules follows it?

# %% tags=["remove-input"]
if SIM:
    saha = programs[programs["drug"] == SAHA].set_index("shape")["name"]
    expected = {
        shape: bc.simulate.planted_response(adata, saha[shape], profile.index.to_numpy()) for shape in ("hill", "bell")
    }
    moderate = pd.DataFrame(
        {
            "eigenvalue": modules.values(SAHA)[:3],
            "peak dose (mean score)": peaks.to_numpy(),
            "r with monotone program's response": bc.perturbation.profile_correlation(profile["mean"], expected["hill"]).to_numpy(),
            "r with moderate-dose response": bc.perturbation.profile_correlation(profile["mean"], expected["bell"]).to_numpy(),
            "AUROC monotone genes": [bc.perturbation.planted_auroc(modules.vectors(SAHA)[:, m], adata.var_names, planted["genes"][saha["hill"]]) for m in range(3)],
            "AUROC moderate-dose genes": [bc.perturbation.planted_auroc(modules.vectors(SAHA)[:, m], adata.var_names, planted["genes"][saha["bell"]]) for m in range(3)],
        },
        index=pd.Index([f"module {m}" for m in range(3)], name="SAHA"),
    )  # fmt: skip
    moderate.to_csv(RESULTS / "perturbation_saha_moderate_dose.csv")
    display(
        moderate.style.format(precision=2).set_caption(
            "SAHA modules 0–2 against the two planted SAHA programs (simulated data)"
        )
    )
    best_module = int(moderate["AUROC moderate-dose genes"].to_numpy().argmax())
    best_row = moderate.iloc[best_module]
    display(
        Markdown(
            f"The module whose loadings single out the moderate-dose genes best is module {best_module} (AUROC "
            f"{best_row['AUROC moderate-dose genes']:.2f}; for the monotone program's genes "
            f"{best_row['AUROC monotone genes']:.2f}); its mean score peaks at SAHA dose "
            f"{best_row['peak dose (mean score)']:g} and correlates with the planted bell-shaped response at "
            f"r = {best_row['r with moderate-dose response']:.2f} across doses. "
            + (
                "So a module tied to the moderate-dose program exists among the first three, as the post's reading "
                "suggests."
                if best_row["AUROC moderate-dose genes"] >= 0.7 and best_row["r with moderate-dose response"] >= 0.5
                else "**So no module among the first three clearly captures the moderate-dose program**: a module "
                "peaking at moderate doses is not by itself evidence of a separate dose-specific program."
            )
        )
    )

# %% [markdown]
# ## Summary
#
# On {glue:text}`data_name`, {glue:text}`n_after:,d` cells pass the 5,000-count filter. A bilinear regressor of
# dose-scaled one-hot targets reaches a validation MAE, over each drug's treated cells, of
# {glue:text}`mae_treated_BMS:.2f` (BMS), {glue:text}`mae_treated_Dex:.2f` (Dex),
# {glue:text}`mae_treated_Nutlin:.2f` (Nutlin) and {glue:text}`mae_treated_SAHA:.2f` (SAHA); the largest is
# {glue:text}`worst_drug`'s. The summary table above lists every drug's module-0 top-5 genes per pole.

# %% tags=["remove-input"]
glue(
    "closing",
    "On the simulation, the recovery table above says for each drug how much of the planted program module 0 "
    "finds, next to a plain Wilcoxon test of treated against vehicle cells; where module 0 falls short of the "
    "baseline, the bilinear modules add interpretability, not detection power. These are properties of the method "
    "on data whose answer is known; the drugs' real programs need the real file."
    if SIM
    else "On the real data there is no planted truth; the modules' gene lists are hypotheses to be checked "
    "against the drugs' known biology and by experiment.",
    display=False,
)

# %% [markdown]
# {glue:text}`closing`
