# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["remove-cell"]
from IPython.display import Markdown, display
from myst_nb import glue

import bookkit
from bookkit import interpretation
from bookkit import perturbations as kit

bookkit.setup(
    torch_threads=2
)  # two threads on any machine: same numbers on every rerun

# %% [markdown]
# # Perturbation regression
#
# **In this chapter.** Can a bilinear MLP {cite:p}`pearce2025bilinear` read four drugs' doses from A549
# cells' expression in sci-Plex2 {cite:p}`srivatsan2020sciplex`, as the post {cite:p}`maher2025post` does,
# and are its per-drug modules the drugs' gene programs? {glue:text}`in_this_chapter`
#
# The chapter reproduces the post's "Perturbation regression" section. In sci-Plex2, A549 lung adenocarcinoma
# cells were treated with one of four compounds (the HDAC inhibitor SAHA, the MDM2 inhibitor Nutlin, the IKK
# inhibitor BMS-345541 and the glucocorticoid dexamethasone) at one of seven doses or its vehicle. A bilinear
# MLP regresses each cell's dose of each drug from its expression, and the eigenvectors of each drug's
# interaction matrix $\mathbf{Q}_a$ are read as the gene programs the model uses to recognise that drug and its
# dose.
#
# pertpy {cite:p}`heumos2024pertpy` downloads sci-Plex2's expression data
# (`pertpy.data.srivatsan_2020_sciplex2()`). Where that file cannot be had, as on the machines that build this
# book, the same code runs on a simulation built on the real experimental design, with gene programs planted by
# us, and the last section measures whether the method recovers them.

# %%
import numpy as np
import pandas as pd
import scanpy as sc

import bilinear_core as bc

# %% [markdown]
# The loader returns scPerturb's file with the post's drug names when it is in the data folder or can be
# downloaded, and the simulation otherwise; `adata.uns["dataset"]` says which.

# %%
adata = bc.datasets.sciplex2_or_simulated(seed=0)

# %% tags=["remove-input"]
glue("data_name", kit.sciplex2_name(adata), display=False)
glue("data_label", kit.data_label(adata), display=False)
glue("hash_filters", kit.hash_filter_sentence(adata), display=False)
display(Markdown(kit.simulation_warning(adata)))

# %% [markdown]
# ## The data
#
# This chapter runs on {glue:text}`data_name`, loaded by `bilinear_core.datasets.sciplex2_or_simulated()`:
# scPerturb's file when it is in the data folder or pertpy can download it, otherwise the simulation. From the
# file the loader keeps the cells that the hash (well barcode) assigns to a well. {glue:text}`hash_filters`
#
# The design is the experiment's: every drug at doses 0.1, 0.5, 1, 5, 10, 50 and 100 (the labels of the hash
# sample sheet; 0 marks each drug's vehicle wells, ethanol for Dex and DMSO for the others), six wells each, with
# the CellTiter-Glo viability measured on the same plate. High doses of BMS and Nutlin kill almost every cell, so
# those wells contribute few cells.

# %%
design = bc.datasets.sciplex2_design()
viability = design.pivot(index="dose", columns="drug", values="viability_mean")
cells = adata.obs.groupby(["dose", "drug"], observed=True).size().unstack(fill_value=0)

# %% [markdown]
# **Cells per dose label and drug** ({glue:text}`data_label`), with the viability measured in the experiment
# (fraction of the vehicle wells' signal) in parentheses:

# %% tags=["remove-input"]
bookkit.table(kit.design_table(cells, viability))

# %% tags=["remove-input"]
display(Markdown(kit.sciplex2_data_note(adata)))
if kit.is_simulated(adata):
    planted = kit.planted_programs(adata)
    planted.to_csv(bookkit.RESULTS / "perturbation_planted_programs.csv", index=False)
    display(Markdown("**Planted programs and their gene sets** (simulated data):"))
    display(bookkit.table(kit.planted_sets_table(planted), index=False))
    display(Markdown("**How each planted program responds to dose** (simulated data):"))
    responses = kit.planted_responses_table(planted)
    note = kit.PLANTED_RESPONSES_NOTE
    link = "perturbation_planted_programs.csv"
    display(bookkit.table(responses, precision=2, index=False, note=note, link=link))
    display(
        Markdown("Why each program was planted:\n\n" + kit.program_rationales(adata))
    )

# %% [markdown]
# ### Preprocessing
#
# As in the post: cells with fewer than 5,000 total counts are dropped (the post: "Low-count cells formed mixed
# perturbation clusters"), ribosomal protein genes removed, counts normalised to the median total and
# `log1p`-transformed with scanpy {cite:p}`wolf2018scanpy`, and the 5,000 most variable genes kept. PCA
# (randomized solver, 50 components), exact nearest neighbours (15 per cell) and UMAP
# {cite:p}`mcinnes2018umap` (200 epochs) are seeded. {numref}`fig-pert-counts` shows where the filter cuts.

# %% tags=["remove-output"]
MIN_COUNTS = 5_000
totals = np.asarray(adata.X.sum(axis=1)).ravel()
fig = bc.pl.count_histogram(totals, MIN_COUNTS)
n_before = adata.n_obs
adata = bc.perturbation.filter_low_count_cells(adata, MIN_COUNTS)
adata = bc.pp.preprocess(adata, n_top_genes=5_000, layer=None)
adata.X = adata.X.toarray()  # dense from here on: the model needs it, and PCA is faster

# %% tags=["remove-cell"]
bookkit.figure("fig-pert-counts", fig)

# %% [markdown]
# ```{glue:figure} fig-pert-counts
# :name: fig-pert-counts
#
# Total counts per cell before filtering ({glue:text}`data_label`), on a log scale; the red line marks the
# 5,000-count filter.
# ```

# %%
adata = bc.pp.embed(
    adata,
    n_pcs=50,
    n_neighbors=15,
    seed=0,
    svd_solver="randomized",
    transformer="sklearn",
    umap_epochs=200,
)

# %% tags=["remove-input"]
glue(
    "filtering",
    kit.filter_sentence(n_before, adata.n_obs, adata.n_vars),
    display=False,
)

# %% [markdown]
# {glue:text}`filtering`

# %% tags=["remove-output"]
adata.obs["log1p dose"] = np.log1p(adata.obs["dose"])
fig = sc.pl.umap(
    adata,
    color=["treatment", "log1p dose"],
    title=["treatment", "log(1 + dose)"],
    frameon=False,
    wspace=0.3,
    return_fig=True,
    show=False,
)
fig.set_size_inches(8, 3.6)

# %% tags=["remove-cell"]
bookkit.figure("fig-pert-umap", fig)

# %% [markdown]
# ```{glue:figure} fig-pert-umap
# :name: fig-pert-umap
#
# UMAP of the filtered cells ({glue:text}`data_label`), coloured by treatment (left) and by log(1 + dose) of
# whichever drug the cell received, 0 for vehicle cells (right).
# ```
#
# The post saw the drugs largely separated in UMAP space, SAHA branching with increasing dose, Nutlin a similar
# trend, BMS branching only at lower doses and Dex without a clear dose pattern. {numref}`fig-pert-umap` shows
# the same maps for {glue:text}`data_name`.
#
# ## Model training
#
# The targets are dose-scaled one-hot vectors: one output per drug $a$,
#
# $$y_a = \begin{cases} \log(1 + \text{dose}) & \text{if the cell received drug } a \text{ at a dose} > 0,\\
# 0 & \text{otherwise,}\end{cases}$$
#
# so vehicle cells are the zero vector (`bilinear_core.perturbation.dose_targets`), stored in
# `adata.obsm["dose_targets"]`.

# %%
DRUGS = bc.datasets.DRUGS
targets = bc.perturbation.dose_targets(
    adata,
    DRUGS,
    drug_key="treatment",
    control=bc.datasets.VEHICLE,
)
adata.obsm["dose_targets"] = targets.to_numpy(dtype=np.float32)

# %% [markdown]
# The model is the post's: one bilinear layer of hidden width 128 with dropout 0.4
# {cite:p}`srivastava2014dropout` on the hidden units, no biases, a linear head to the four outputs, trained
# with the Huber loss for 100 epochs in batches of 128 with Adam {cite:p}`kingma2015adam` (learning rate
# $10^{-4}$, cosine annealing {cite:p}`loshchilov2017sgdr`, weight decay $10^{-3}$ as an L2 term, as in the
# other chapters) on a random 70/30 split, seeds fixed to 42.
#
# As in {doc}`02_cell_typing`, the modules are read from an exact **ensemble** of such models, which
# `bc.tl.train` trains with `seeds`: one fit per seed on the same split, in two processes, combined into one
# bilinear MLP whose $\mathbf{Q}_a$ is the mean of the members' ({ref}`trust-ensembles`). Its first member,
# seed 42, is the post's single model: {numref}`fig-pert-training` shows its curves, and the validation numbers
# below are its own.

# %%
SEEDS = [42, 1]  # the post's seed first; two fits side by side
ensemble = bc.tl.train(
    adata,
    "dose_targets",
    seeds=SEEDS,
    n_jobs=2,
    key_added="ensemble",
    output_names=list(DRUGS),
    n_hidden=128,
    dropout=0.4,
    loss="huber",
    lr=1e-4,
    weight_decay=1e-3,
    epochs=100,
    batch_size=128,
    val_fraction=0.3,
    seed=42,
    progress=False,
)
result = ensemble.members[0]  # the seed-42 model

# %% tags=["remove-cell"]
result.history.to_csv(bookkit.RESULTS / "perturbation_history.csv", index=False)

# %% tags=["remove-output"]
fig = bc.pl.training_curves(result.history, title="dose regression")

# %% tags=["remove-cell"]
bookkit.figure("fig-pert-training", fig)

# %% [markdown]
# ```{glue:figure} fig-pert-training
# :name: fig-pert-training
#
# Training of the dose regression ({glue:text}`data_label`): Huber loss (left) and mean absolute error of
# log(1 + dose) (right) per epoch, on the training cells (solid) and the validation cells (dashed).
# ```
#
# Per drug, the table below gives the error over all validation cells (most have target 0 for any one drug),
# the spread of the target, $R^2$ and Pearson $r$, and the error over the validation cells that received the
# drug; {numref}`fig-pert-validation` plots every validation cell's prediction.

# %% tags=["remove-output"]
X, Y, val = adata.X, adata.obsm["dose_targets"], result.val_idx
treatment = adata.obs["treatment"].astype(str).to_numpy()
pred = result.predict(X)
report = bc.train.regression_report(result, X, Y)
errors = np.abs(pred[val] - Y[val])  # (validation cells, drugs)
treated = [treatment[val] == drug for drug in DRUGS]  # each drug's treated cells
report["MAE, treated cells"] = [errors[t, i].mean() for i, t in enumerate(treated)]
fig = bc.pl.predicted_vs_true(pred[val], Y[val], DRUGS, labels=treatment[val])

# %% tags=["remove-cell"]
report.to_csv(bookkit.RESULTS / "perturbation_validation.csv")
kit.add_treatment_legend(fig, treatment[val])
bookkit.figure("fig-pert-validation", fig)
glue("fit", kit.dose_fit_sentence(result.history, report), display=False)

# %% [markdown]
# **Validation error per drug** ({glue:text}`data_label`). Errors are in units of log(1 + dose); SD and IQR
# are the spread of the target over the validation cells.

# %% tags=["remove-input"]
link = "perturbation_validation.csv"
bookkit.table(kit.validation_table(report), link=link)

# %% [markdown]
# ```{glue:figure} fig-pert-validation
# :name: fig-pert-validation
#
# Predicted against true log(1 + dose) for every validation cell ({glue:text}`data_label`), one panel per
# drug's output, coloured by the cell's treatment; the black line is the identity.
# ```
#
# {glue:text}`fit` A negative $R^2$ means the predictions of that drug's dose are worse than predicting its
# mean for every cell.
#
# ## Model interpretation
#
# For every drug we eigendecompose the symmetric $\mathbf{Q}_a$ exactly from the low-rank factors and orient each
# module so that its score covaries positively with the drug's target on the training cells (so the positive
# pole holds genes whose expression rises with the drug's dose): `bc.tl.modules` does both and stores the
# ensemble's modules in `adata.varm["ensemble_modules"]` and the cells' scores on modules 0–2 in
# `adata.obsm["ensemble_scores"]`, and scores each module's reproducibility. Each pole's top genes (the post's
# 1 %) are tested for over-representation, as Enrichr does {cite:p}`chen2013enrichr,xie2021enrichr`, against local copies of seven human libraries: GO
# Biological Process 2023, GO Molecular Function and Cellular Component 2022 {cite:p}`go2023`, KEGG 2021 Human
# {cite:p}`kanehisa2000kegg`, MSigDB's Reactome sets {cite:p}`milacic2024reactome`, MSigDB Hallmark 2020
# {cite:p}`liberzon2015hallmark` and WikiPathways 2023 Human {cite:p}`agrawal2024wikipathways`, with
# Benjamini–Hochberg adjusted p-values {cite:p}`benjamini1995`. {glue:text}`gene_rule`

# %%
modules = bc.tl.modules(adata, ensemble, key_added="ensemble")
scores = adata.obsm["ensemble_scores"]  # (cells, drugs, modules 0–2)
every_term = dict(libraries=bc.datasets.genesets.HUMAN_LIBRARIES, cutoff=1.0, top=None)
# module 0 of every drug; the text marks any the ensemble does not reproduce
reports = {
    drug: bc.report.module_report(modules, drug, reproducible_only=False, **every_term)
    for drug in DRUGS
}
# every term with a hit is saved; the displays keep adjusted p ≤ 0.05
shown = {drug: bookkit.significant(report) for drug, report in reports.items()}
correlations = bc.interpret.module_target_correlations(X, modules, Y, n_modules=3)
r0 = correlations[correlations["module"] == 0].set_index("output")["r"]
# modules 1 and 2 that the ensemble reproduces are read like module 0
reliability = bc.tl.module_reliability(adata, key="ensemble")
kept = reliability.query("module in [1, 2] and reproducible")
further = {
    (row.output, row.module): bookkit.significant(
        bc.report.module_report(modules, row.output, module=row.module, **every_term)
    )
    for row in kept.itertuples()
}

# %% tags=["remove-cell"]
modules.spectrum().to_csv(bookkit.RESULTS / "perturbation_spectrum.csv", index=False)
genes = pd.concat([report.genes for report in reports.values()])
genes.to_csv(bookkit.RESULTS / "perturbation_module0_genes.csv", index=False)
terms = pd.concat([r.enrichment.assign(output=d) for d, r in reports.items()])
terms.to_csv(bookkit.RESULTS / "perturbation_module0_enrichment.csv", index=False)
glue("gene_rule", interpretation.gene_list_rule(adata.n_vars), display=False)

# %% [markdown]
# ### SAHA
#
# SAHA (vorinostat) inhibits histone deacetylases and reprograms transcription in a dose-dependent way. As in the
# post, we first look at SAHA's modules from a classification point of view ({numref}`fig-pert-saha-modules`).

# %% tags=["remove-output"]
fig = bc.pl.modules(adata, "SAHA", groupby="treatment", key="ensemble")
saha = scores[:, DRUGS.index("SAHA")]  # (cells, modules 0–2)
auroc = bc.interpret.module_auroc(saha, treatment == "SAHA")

# %% tags=["remove-cell"]
bookkit.figure("fig-pert-saha-modules", fig)
sentence = kit.modules_auroc_sentence(
    modules.values("SAHA"), auroc, "SAHA-treated cells"
)
glue("saha_modules", sentence, display=False)
glue(
    "saha_reliability",
    interpretation.reliability_note(modules, "SAHA", link=False),
    display=False,
)

# %% [markdown]
# ```{glue:figure} fig-pert-saha-modules
# :name: fig-pert-saha-modules
#
# The spectrum of $\mathbf{Q}_\text{SAHA}$ (top left) and every cell's score on SAHA's modules 0–2
# ({glue:text}`data_label`), one histogram per treatment (each normalised to unit area), SAHA-treated cells
# filled; the titles give each module's eigenvalue, its reproducibility and its AUROC for SAHA-treated cells
# against the rest.
# ```
#
# {glue:text}`saha_modules` {glue:text}`saha_reliability` (The rule is set in
# {ref}`the trust chapter <trust-ensembles>`.) Following the
# post, {numref}`fig-pert-saha-dose` plots the modules' mean ± sd by
# SAHA dose; dose 0 groups every cell without SAHA (vehicle and the other drugs).

# %% tags=["remove-output"]
saha_dose = np.where(adata.obs["drug"] == "SAHA", adata.obs["dose"], 0.0)
profile = bc.perturbation.dose_profile(saha, saha_dose)
fig = bc.pl.dose_profile(profile, title="SAHA modules 0–2 by SAHA dose")

# %% tags=["remove-cell"]
profile.to_csv(bookkit.RESULTS / "perturbation_saha_dose_profile.csv")
bookkit.figure("fig-pert-saha-dose", fig)
glue("saha_peaks", kit.peak_sentence(profile, "SAHA"), display=False)

# %% [markdown]
# ```{glue:figure} fig-pert-saha-dose
# :name: fig-pert-saha-dose
#
# Mean ± sd of the cells' scores on SAHA's modules 0–2 at each SAHA dose ({glue:text}`data_label`); dose 0
# holds every cell without SAHA.
# ```
#
# The post found module 0's mean and spread rising with SAHA dose and modules 1 and 2 emphasising low and medium
# doses. {glue:text}`saha_peaks` Whether a module really follows a moderate-dose program is tested against the
# planted truth in {ref}`pert-moderate-dose`.
#
# #### Module 0

# %% tags=["remove-input"]
text = interpretation.regression_interpretation(
    shown["SAHA"], modules, r=float(r0["SAHA"]), target="SAHA dose"
)
display(Markdown(text + kit.terms_note(adata)))
label = kit.data_label(adata)
display(Markdown(kit.module_detail(shown["SAHA"], label)))
display(Markdown(kit.further_modules(further, "SAHA", modules, correlations)))

# %% [markdown]
# ### BMS, Dex and Nutlin
#
# The same figures and module-0 interpretation for the other three drugs, one dropdown each.

# %% tags=["remove-input"]
for drug in ("BMS", "Dex", "Nutlin"):
    overview = bc.pl.modules(adata, drug, groupby="treatment", key="ensemble")
    dose = np.where(adata.obs["drug"] == drug, adata.obs["dose"], 0.0)
    by_dose = bc.perturbation.dose_profile(scores[:, DRUGS.index(drug)], dose)
    title = f"{drug} modules 0–2 by {drug} dose"
    text = interpretation.regression_interpretation(
        shown[drug], modules, r=float(r0[drug]), target=f"{drug} dose"
    )
    text += "\n\n" + kit.further_modules(further, drug, modules, correlations)
    figures = (overview, bc.pl.dose_profile(by_dose, title=title))
    note = interpretation.reliability_note(modules, drug)
    display(Markdown(kit.drug_section(drug, *figures, text, shown[drug], adata, note)))

# %% [markdown]
# ## Module 0 of every drug
#
# For each drug: the validation error over its treated cells, how module 0's score follows the dose (Pearson
# $r$) and separates the drug's cells from all others (AUROC {cite:p}`hanley1982auroc`), and module 0's
# eigenvalue.

# %%
auroc0 = pd.Series(index=DRUGS, dtype=float)
for i, drug in enumerate(DRUGS):
    auroc0[drug] = bc.interpret.module_auroc(scores[:, i, 0], treatment == drug)[0]
metrics = pd.DataFrame(
    {
        "validation MAE (treated cells)": report["MAE, treated cells"].round(3),
        "r module 0 with target": r0.round(2),
        "AUROC module 0 (drug vs rest)": auroc0.round(2),
    }
)
summary = bc.report.summary_table(shown, metrics, n_genes=5, n_terms=1)
summary["eigenvalue"] = summary["eigenvalue"].round(4)

# %% tags=["remove-cell"]
summary.to_csv(bookkit.RESULTS / "perturbation_summary.csv")

# %% [markdown]
# **Module 0 per drug** ({glue:text}`data_label`):

# %% tags=["remove-input"]
digits = {"MAE, treated cells": "{:.3f}", "eigenvalue": "{:.4f}"}
display(bookkit.table(kit.module0_table(summary), precision=2, formats=digits))
poles = bookkit.table(kit.module0_poles_table(summary), link="perturbation_summary.csv")
title = "Module 0 of every drug: top 5 genes and most significant term per pole"
display(Markdown(bookkit.dropdown(title, f"**{title}** ({label}):", poles)))

# %% [markdown]
# ## Planted-truth recovery
#
# On simulated data we know which genes each drug moves, in which direction and how with dose, which the real
# data cannot tell us and the post never checked. For each drug's primary program,
# `bc.perturbation.planted_recovery` measures: the AUROC of the planted genes (among the model's genes) ranked by
# $|$loading$|$ in module 0 and in the best of modules 0–2; the share of planted genes among the 50 strongest
# genes of the pole matching the planted direction (positive pole for genes the drug raises, negative for genes
# it lowers); the rank of the planted set's own term among its library's terms when that pole's top genes are
# tested; and the Spearman correlation of the module-0 score with dose within that drug's cells (vehicle
# included).
#
# The baseline is scanpy's Wilcoxon rank-sum test {cite:p}`mann1947` of each drug's treated cells against
# **that drug's own vehicle wells**, with genes ranked by the test's z-score (and cells scored by the mean
# expression of its 50 strongest genes). Dexamethasone's vehicle is ethanol and the other drugs' is DMSO, so a
# reference pooling every vehicle cell would count the solvents' differences as drug effects; the dose targets
# stay zero for every vehicle cell either way. The simulation plants no solvent effect (every vehicle well is
# drawn from the same untreated profile), so here the per-drug reference only costs the baseline reference
# cells: each drug is tested against about a quarter of all vehicle cells.

# %%
wilcoxon = bc.perturbation.wilcoxon_vs_reference(
    adata,
    groupby="treatment",
    reference="vehicle",
    within="drug",  # each drug's cells against its own vehicle wells
)
recovery = kit.recovery(adata, modules, wilcoxon, key="ensemble")  # None on real data

# %% tags=["remove-input"]
if recovery is not None:
    recovery.to_csv(bookkit.RESULTS / "perturbation_recovery.csv")
    verdict = kit.recovery_headline(recovery)
    display(
        Markdown(
            "**Recovery of each drug's primary planted program** (simulated data):"
        )
    )
    display(
        bookkit.table(
            kit.recovery_table(recovery),
            precision=2,
            formats={"term rank in library": "{:.0f}"},
            note=kit.RECOVERY_NOTE,
            link="perturbation_recovery.csv",
        )
    )
    comparison = kit.recovery_comparison(recovery)
    display(Markdown(comparison + " " + kit.recovery_sentences(recovery, adata.n_vars)))
else:
    verdict = "the real data carry no planted truth to recover"
    display(
        Markdown(
            "The real data carry no planted truth, so this section only runs on "
            "simulated data."
        )
    )
glue("recovery_verdict", verdict, display=False)

# %% [markdown]
# ### Which planted gene sets come back
#
# The enrichment of module 0's poles (the dropdowns above) can be read against the planted truth as well: for
# each drug, the table below lists its own programs on the pole of their direction, whether or not they come
# back, and every other planted set that reaches adjusted p ≤ 0.05 on either pole.

# %% tags=["remove-input"]
if kit.is_simulated(adata):
    found = kit.planted_terms_table(adata, reports)
    programs = adata.uns["planted"]["programs"]
    terms_sentence = kit.planted_terms_sentence(found, programs)
    terms_takeaway = kit.planted_terms_takeaway(found, programs)
    display(
        Markdown("**Planted gene sets in module 0's enrichment** (simulated data):")
    )
    display(
        bookkit.table(
            kit.planted_terms_display(found),
            index=False,
            formats={"rank in library": "{:.0f}", "adjusted p": "{:.2g}"},
            note=kit.PLANTED_TERMS_NOTE,
            link="perturbation_module0_enrichment.csv",
        )
    )
    display(Markdown(terms_sentence))
else:
    terms_takeaway = ""
    display(
        Markdown(
            "The real data carry no planted sets, so this table needs the simulation."
        )
    )
glue("takeaway_terms", terms_takeaway, display=False)

# %% [markdown]
# (pert-moderate-dose)=
# ### The program that peaks at moderate SAHA doses
#
# The post read SAHA's modules 1 and 2 as emphasising low and medium doses. In the simulation SAHA also drives
# a second program that rises from dose 0.5 and declines above 10. Which of SAHA's modules follows it?

# %% tags=["remove-input"]
if kit.is_simulated(adata):
    moderate = kit.moderate_dose_table(adata, modules, profile, "SAHA")
    moderate.to_csv(bookkit.RESULTS / "perturbation_saha_moderate_dose.csv")
    lead = "**SAHA's modules 0–2 against its two planted programs**"
    display(Markdown(f"{lead} (simulated data):"))
    link = "perturbation_saha_moderate_dose.csv"
    digits = {"eigenvalue": "{:.3g}", "peak dose": "{:g}"}
    shown_moderate = kit.moderate_dose_display(moderate)
    display(bookkit.table(shown_moderate, precision=2, formats=digits, link=link))
    display(Markdown(kit.moderate_dose_sentence(moderate)))
    moderate_takeaway = kit.moderate_dose_takeaway(moderate)
else:
    moderate_takeaway = ""
    display(
        Markdown(
            "The real data carry no planted program, so this check needs the "
            "simulation."
        )
    )
glue("takeaway_moderate", moderate_takeaway, display=False)

# %% tags=["remove-cell"]
glue("in_this_chapter", kit.chapter_answer(adata, recovery, auroc0), display=False)
glue("n_cells", adata.n_obs, display=False)
for drug in DRUGS:
    glue(f"mae_{drug}", float(report.loc[drug, "MAE, treated cells"]), display=False)
glue("hardest", kit.hardest_drug_clause(report), display=False)
glue("auroc0_range", bookkit.value_range(auroc0, ".2f"), display=False)
glue("r0_range", bookkit.value_range(r0, ".2f"), display=False)
glue("takeaway_recovery", kit.recovery_takeaway(recovery), display=False)
answer, number = kit.findings_row(recovery, auroc0)  # the intro's findings table
glue("findings_answer", answer, display=False)
glue("findings_number", number, display=False)

# %% [markdown]
# ## Summary
#
# ```{admonition} Key takeaways
# :class: tip
#
# From {glue:text}`n_cells:,d` cells, the bilinear regressor reads each drug's dose with a validation error,
# over the cells that received it, of {glue:text}`mae_SAHA:.2f` for SAHA, {glue:text}`mae_Nutlin:.2f` for
# Nutlin, {glue:text}`mae_BMS:.2f` for BMS and {glue:text}`mae_Dex:.2f` for Dex, in units of log(1 + dose):
# {glue:text}`hardest`.
#
# Module 0 of each drug separates its treated cells from all others with AUROC {glue:text}`auroc0_range`, and
# its score follows the dose with Pearson r from {glue:text}`r0_range`.
#
# {glue:text}`takeaway_recovery`
#
# {glue:text}`takeaway_terms`
#
# {glue:text}`takeaway_moderate`
# ```
