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
# # Less overfitting, same modules?
#
# **In this chapter.** Do the regularisers the post proposes (weight decay, early stopping, sparsity and
# gene-set priors, a smaller width) reduce overfitting and keep the modules, on held-out pancreas cells and a
# simulated sci-Plex2 dose task? On the pancreas tasks none reaches the linear baselines, the setting chosen
# on validation leaves the modules beyond the first unreproducible across seeds, and sparsity priors bring
# module 0 closer to the marker genes at some cost in accuracy.
#
# The post {cite:p}`maher2025post` closes with a second next step: "explore stronger regularization or
# structured feature selection (weight decay, sparsity priors, or grouped gene sets) to reduce overfitting
# while preserving interpretability", with out-of-sample benchmarks. The earlier chapters say why it matters.
# On the held-out test cells of {doc}`05_trust` the bilinear MLP types cells less accurately than logistic
# regression and predicts the frequencies less well than ridge regression, while it fits its training cells
# better than either; its modules beyond the first change with the seed. On the simulated sci-Plex2 of
# {doc}`04_perturbations` the validation loss stops falling long before the last epoch, and module 0 ranks
# some drugs' planted genes below a plain Wilcoxon test.
#
# This chapter adds the options the post names to the one training loop, where `bc.tl.train` and `bc.fit`
# reach them, and measures each on three tasks, on cells no choice has seen, beside the same baselines:
#
# 1. **Options**: weight decay (coupled and decoupled), early stopping, an L1 prior on the bilinear weights, a
#    per-gene group lasso, a gene-set group lasso and a smaller hidden width.
# 2. **Tasks**: pancreas cell typing, pancreas frequencies and the simulated sci-Plex2 dose regression (the
#    one place where the planted truth is known).
# 3. **Protocol**: one train / validation / test split per task; every choice made on validation; everything
#    reported on test.
# 4. **Out of sample**: two splits that are not random, a lineage and a dose unseen in training.

# %% tags=["remove-cell"]
import bookkit

bookkit.setup(torch_threads=1)

# %%
import numpy as np
import pandas as pd

import bilinear_core as bc
from bilinear_core import baselines as bb
from bilinear_core import stability as bs

from bookkit import regularisation as kit

# %% tags=["remove-cell"]
kit.single_threaded_pools()  # fits run in two processes, one thread each

from IPython.display import Markdown, display
from myst_nb import glue

from bookkit import perturbations

# %% [markdown]
# ## The options
#
# All options are fields of `bc.TrainSettings`, so every training function takes them as keywords; the
# defaults are the post's settings and train exactly as before. The penalties act on the two bilinear factors
# $\mathbf{W}$ and $\mathbf{V}$ ($h \times g$) as **proximal steps**: after every Adam {cite:p}`kingma2015adam`
# step the weights pass through the proximal operator of the penalty with threshold $\eta_t \lambda$ ($\eta_t$
# the current learning rate), so weights reach exact zeros and genes really leave the model
# (`bc.regularisation`).
#
# - `weight_decay` as the post reads Adam's (an L2 term in the gradient), or AdamW's decoupled decay
#   {cite:p}`loshchilov2019adamw` with `decoupled_weight_decay=True` (each step multiplies the weights by
#   $1 - \eta_t \cdot$ `weight_decay`).
# - `patience=3`: early stopping {cite:p}`prechelt1998early`: stop once the validation loss has not fallen for
#   3 epochs, and restore the best epoch's weights.
# - `l1_penalty=λ`: the lasso's penalty {cite:p}`tibshirani1996lasso`,
#   $\lambda (\lVert \mathbf{W} \rVert_1 + \lVert \mathbf{V} \rVert_1)$, every weight shrunk on its own.
# - `gene_penalty=λ`: a **per-gene group lasso** {cite:p}`yuan2006grouplasso`,
#   $\lambda \sqrt{2h} \sum_j \lVert [\mathbf{W}_{:j}; \mathbf{V}_{:j}] \rVert_2$: the $2h$ weights of gene $j$
#   in both factors shrink together, so a gene leaves the model whole, and with it its row and column of
#   every $\mathbf{Q}_a$.
# - `gene_set_penalty=λ, gene_sets=library`: a **gene-set group lasso** with the sets of a gene-set library.
#   Sets overlap, so a formulation has to be chosen. We use the **latent group lasso** (Jacob, Obozinski and
#   Vert, 2009): each gene gets one copy of its weights per set that holds it, each set's copies form one
#   group, and the model's weight of a gene is the sum of its copies. A gene then stays when *any* of its
#   sets stays, which is how a module is read against a library. The alternative, a group lasso over the
#   overlapping sets themselves, removes a gene as soon as *one* of its sets goes, and its proximal step has
#   no closed form; the latent groups are disjoint, so the step is exact. Genes in no set are groups of
#   their own, and each group's threshold scales with the square root of its number of weights.
# - `n_hidden=16`: a smaller hidden width, so that each $\mathbf{Q}_a$ has rank at most $2h = 32$.
#
# With Adam, whose steps are normalised, a strength $\lambda$ between 0 and 1 reads as the share of a full
# step that the penalty takes back each step: a weight whose gradient pushes it steadily away from zero
# survives, one whose gradient wavers goes.
#
# A user types, for example,
#
# ```python
# bc.tl.train(adata, "clusters", gene_penalty=0.1)
# bc.tl.train(
#     adata, "clusters", gene_set_penalty=0.1, gene_sets="MSigDB_Hallmark_2020"
# )
# ```
#
# ## The protocol
#
# `bc.evaluation.evaluate_settings` trains one model per setting on a fixed train / validation / test split
# of any AnnData and fits the baselines of {doc}`05_trust` on the same split: logistic or ridge regression
# {cite:p}`hoerl1970ridge` from scikit-learn {cite:p}`pedregosa2011sklearn`, with its penalty chosen on
# validation, and, for cell typing as there, a ReLU MLP of the same width trained by the same loop with the
# post's settings. It returns one table with, per setting:
#
# - the validation and test scores;
# - the gap between validation and training loss, and the epoch of the lowest validation loss;
# - the genes the model uses;
# - the training cost relative to the post's setting (epochs × weights updated per step: a stand-in for
#   time that is the same on every rerun);
# - for settings trained with several seeds, the agreement of module 0 and of modules 1–2 across seeds
#   (median over outputs of the mean $\lvert\cos\rvert$, the measure of {doc}`05_trust`).
#
# The split can also hold out a whole group (`held_out=("obs column", value)`), as in the last section.
#
# **Budget.** One fit with the post's settings (100 epochs) takes a sizeable share of this book's time
# budget, so the sweep is trained in a shorter schedule of {glue:text}`sweep_epochs` epochs (the cosine
# schedule {cite:p}`loshchilov2017sgdr` annealed over those epochs), with the post's settings among the swept
# ones as the control. The post's own 100-epoch fit stands beside them as the reference. Every setting is
# trained with one seed, and only the control and the setting chosen on validation with three (seeds 42, 1
# and 2), so only these two have a stability. A setting is chosen with its schedule: a penalty acts in every
# step, so in the post's 100 epochs the same $\lambda$ would take back {glue:text}`strength_ratio:.3g` times
# as much in all; a strength has to be chosen in the schedule it will be trained in.
#
# Early stopping is the exception: it only shortens a schedule, so it runs in the post's 100 epochs. It
# differs from the post's fit only when that fit's validation loss stops falling at least `PATIENCE` epochs
# before the end; otherwise it would train to the end and be the post's fit again, so it is not trained.

# %%
SWEEP_EPOCHS = 15  # the sweep's schedule; the post's reference keeps 100 epochs
SEEDS = (42, 1, 2)
PATIENCE = 3  # early stopping: epochs without a lower validation loss


def regularisation_sweep(weight_decay, strengths=(0.1, 0.3)):
    """The settings compared, for a task whose post weight decay is given."""
    sets = "MSigDB_Hallmark_2020"
    decoupled = {"weight_decay": 10.0, "decoupled_weight_decay": True}
    return {
        "post settings": {},
        "weight decay ×10": {"weight_decay": 10 * weight_decay},
        "decoupled decay 10": decoupled,
        **{f"L1 {s:g}": {"l1_penalty": s} for s in strengths},
        **{f"gene lasso {s:g}": {"gene_penalty": s} for s in strengths},
        **{
            f"gene sets {s:g}": {"gene_set_penalty": s, "gene_sets": sets}
            for s in strengths
        },
        "width 16": {"n_hidden": 16},
    }


# %% [markdown]
# One function runs the protocol for a task: the sweep with one seed; early stopping when it would stop the
# post's fit; the best setting on validation (the **chosen** setting); and two more seeds for it and for the
# post's settings. Fits run in two processes.


# %%
def evaluate(adata, target, sweep, seeds=SEEDS, **kwargs):
    """Sweep with one seed, choose on validation, rerun the chosen with more seeds."""
    post = "post (100 epochs)"
    settings = {post: {"epochs": 100}} | sweep
    kwargs |= dict(reference=post, n_jobs=2)
    run = bc.evaluation.evaluate_settings(adata, target, settings, **kwargs)
    more = {"post settings": seeds}
    stops = run.table.loc[post, "best epoch"] + PATIENCE <= 100
    if stops:  # early stopping would stop the post's fit
        settings["early stopping"] = {"epochs": 100, "patience": PATIENCE}
        run = bc.evaluation.evaluate_settings(
            adata, target, settings, seeds=more, previous=run, **kwargs
        )
    chosen = run.best([name for name in settings if name != post])
    more[chosen] = seeds
    run = bc.evaluation.evaluate_settings(
        adata, target, settings, seeds=more, previous=run, **kwargs
    )
    return run, chosen


# %% tags=["remove-cell"]
glue("sweep_epochs", SWEEP_EPOCHS, display=False)
glue("strength_ratio", 100 / SWEEP_EPOCHS, display=False)

# %% [markdown]
# ## 1. Cell typing
#
# The pancreas data {cite:p}`bastidasponce2019` and the split of {doc}`05_trust` (a stratified 15 % test
# split, the rest 70/30 into training and validation, seed 42), so the post's 100-epoch fit below is that
# chapter's bilinear model.

# %%
adata = bc.pp.preprocess(bc.datasets.pancreas(), n_top_genes=10_000, layer="spliced")
labels = adata.obs["clusters"].astype(str).to_numpy()
split = bb.split_train_val_test(adata.n_obs, seed=42, stratify=labels)

# %% tags=["remove-input"]
display(Markdown(bookkit.data_note(adata)))

# %% [markdown]
# The baselines take what {doc}`05_trust` chose for them on validation on this split: weight decay 0.035
# for the ReLU MLP, and $C$ = 0.01 for logistic regression, from the grid up to 0.03 (its grid went on to
# 0.3; the solver starts each $C$ from the previous one's solution, so the model is the same).

# %%
CELL = dict(weight_decay=0.35, epochs=SWEEP_EPOCHS, progress=False)
relu = {"weight_decay": 0.035}
cell, cell_chosen = evaluate(
    adata,
    "clusters",
    regularisation_sweep(0.35),
    split=split,
    relu_settings=relu,
    linear_grid=(0.003, 0.01, 0.03),
    **CELL,
)

# %% [markdown]
# Module 0's agreement with conventional markers, the measure of {doc}`05_trust`: per cell type, the Jaccard
# index of the better-matching pole's top genes with the top one-vs-rest Wilcoxon markers (computed on the
# training cells), its median over cell types per setting.

# %%
n_top = bc.interpret.n_top_genes(adata.n_vars)
markers = bs.wilcoxon_markers(adata[cell.train_idx], "clusters", n_genes=n_top)
cell_table = cell.table.copy()
cell_table["marker Jaccard (module 0)"] = pd.Series(
    {
        name: kit.marker_agreement(m[0], markers, n_top)
        for name, m in cell.modules.items()
    }
)

# %% tags=["remove-cell"]
cell_table.to_csv(bookkit.RESULTS / "regularisation_cell_typing.csv")
kit.glue_task("ct", cell_table, cell_chosen)

# %% tags=["remove-input"]
kit.accuracy_table(
    cell_table,
    title="Cell typing: scores on the held-out test cells",
    link="regularisation_cell_typing.csv",
)

# %% [markdown]
# In the sweep's {glue:text}`sweep_epochs` epochs the post's settings reach a test accuracy of
# {glue:text}`ct_control:.3f`, against {glue:text}`ct_post:.3f` after the post's 100 epochs. The setting
# chosen on validation, *{glue:text}`ct_chosen:s`*, reaches {glue:text}`ct_chosen_score:.3f` in the short
# schedule, at {glue:text}`ct_chosen_cost:.0%` of the post's cost, but with a larger gap between validation
# and training loss ({glue:text}`ct_gap_chosen:.3f`, against {glue:text}`ct_gap_control:.3f` for the post's
# settings in the same schedule): it fits faster, it does not overfit less. The penalties that do close the
# gap, the L1 and group priors at strength 0.3, cost accuracy, and ten times the post's coupled weight decay
# breaks the fit (*{glue:text}`ct_worst_name:s`*, {glue:text}`ct_worst:.3f`). No setting reaches logistic
# regression ({glue:text}`ct_linear:.3f`) or the ReLU MLP ({glue:text}`ct_relu:.3f`).

# %% tags=["remove-input"]
kit.marker_table(
    cell_table,
    title="Cell typing: module 0 against the Wilcoxon markers",
    link="regularisation_cell_typing.csv",
)

# %% [markdown]
# The sparsity priors change what module 0 holds. The L1 and per-gene priors remove genes (down to
# {glue:text}`ct_genes_min:,.0f` of {glue:text}`ct_genes_all:,.0f` under *{glue:text}`ct_genes_min_name:s`*)
# and raise module 0's agreement with the Wilcoxon markers, up to a median Jaccard index of
# {glue:text}`ct_jaccard_best:.2f` under *{glue:text}`ct_jaccard_best_name:s`* (test accuracy
# {glue:text}`ct_jaccard_best_score:.3f`), against {glue:text}`ct_jaccard_control:.2f` for the post's
# settings in the same schedule and {glue:text}`ct_jaccard_post:.2f` for the post's 100-epoch fit. The
# gene-set prior does not, and the chosen setting's module 0 agrees less with the markers
# ({glue:text}`ct_jaccard_chosen:.2f`).
#
# ## 2. Frequencies
#
# The four transcriptional frequencies of {doc}`03_frequencies` on the same cells and split, regressed with
# the post's settings for them (Huber loss, weight decay $10^{-4}$).

# %%
bc.frequencies.transcriptional_frequencies(adata, n_freqs=4, n_neighbors=10)
bc.frequencies.orient_frequencies(adata, labels == "Ductal", columns=[0])
FREQ = CELL | dict(task="regression", loss="huber", weight_decay=1e-4)
FREQ["baselines"] = ("linear",)
FREQ["output_names"] = [f"frequency {i}" for i in range(4)]
freq, freq_chosen = evaluate(
    adata, "X_freq", regularisation_sweep(1e-4), split=split, **FREQ
)

# %% tags=["remove-cell"]
freq.table.to_csv(bookkit.RESULTS / "regularisation_frequencies.csv")
kit.glue_task("fr", freq.table, freq_chosen)

# %% tags=["remove-input"]
kit.accuracy_table(
    freq.table,
    title="Frequencies: scores on the held-out test cells",
    link="regularisation_frequencies.csv",
    gap_format=".1e",  # the frequencies' losses are of order 1e-5
)

# %% [markdown]
# On this task the short schedule matters more than any penalty: in {glue:text}`sweep_epochs` epochs the
# post's settings reach a test $R^2$ of only {glue:text}`fr_control:.2f`, against {glue:text}`fr_post:.3f`
# after 100 epochs, so the sweep measures how fast a setting gets there as much as how it regularises. The
# setting chosen on validation, *{glue:text}`fr_chosen:s`*, reaches {glue:text}`fr_chosen_score:.3f` in the
# short schedule; ridge regression reaches {glue:text}`fr_linear:.3f`. Its modules are no more reproducible
# than the post's: module 0 agrees across seeds with $\lvert\cos\rvert$ {glue:text}`fr_cos0_chosen:.2f`
# ({glue:text}`fr_cos0_control:.2f` under the post's settings), as in {doc}`05_trust`, where the frequency
# modules agree at chance level.
#
# ## 3. Dose regression
#
# The perturbation chapter's data and targets, from sci-Plex2 {cite:p}`srivatsan2020sciplex`: the simulation
# of sci-Plex2 on the real design when the real file cannot be had, cells with at least 5,000
# counts, dose-scaled one-hot targets, and the post's settings (dropout 0.4 {cite:p}`srivastava2014dropout`,
# Huber loss, weight decay $10^{-3}$, batch 128). To fit the book's time budget the model sees the
# {glue:text}`sim_genes:,d` most variable genes instead of the post's 5,000. The split is random: 15 % test,
# the rest 70/30.

# %%
sim = bc.datasets.sciplex2_or_simulated(seed=0)
sim = bc.perturbation.filter_low_count_cells(sim, 5_000)
sim = bc.pp.preprocess(sim, n_top_genes=1_000, layer=None)
DRUGS = bc.datasets.DRUGS
doses = bc.perturbation.dose_targets(
    sim, DRUGS, drug_key="treatment", control=bc.datasets.VEHICLE
)
sim.obsm["dose_targets"] = doses.to_numpy(dtype=np.float32)

# %% tags=["remove-cell"]
SIM = bool(sim.uns["dataset"]["simulated"])
TAG = (
    " (simulated data)" if SIM else ""
)  # every figure and table of simulated cells says so
labels = {"dose": TAG}  # what the figure and the headline add to the dose task's name
glue("sim_genes", sim.n_vars, display=False)
glue("dose_data", perturbations.data_label(sim), display=False)

# %% tags=["remove-input"]
display(Markdown(kit.simulated_note(sim)))

# %%
DOSE = dict(dropout=0.4, loss="huber", weight_decay=1e-3, batch_size=128)
DOSE |= dict(epochs=SWEEP_EPOCHS, progress=False, output_names=list(DRUGS))
DOSE["baselines"] = ("linear",)
dose, dose_chosen = evaluate(sim, "dose_targets", regularisation_sweep(1e-3), **DOSE)

# %% [markdown]
# On the simulation the planted programs are known. For every setting, module 0 of each drug is scored by the
# AUROC {cite:p}`hanley1982auroc` of that drug's planted genes ranked by $\lvert$loading$\rvert$, and SAHA's
# moderate-dose program by the best AUROC of its genes among SAHA's modules 0–2 that rank them above the
# monotone program's genes. The baseline is the perturbation chapter's Wilcoxon test {cite:p}`mann1947` of
# each drug's treated cells against its own vehicle cells, here on the training cells only. The gene-set
# penalty uses MSigDB Hallmark 2020 {cite:p}`liberzon2015hallmark`, the library four of the five planted
# programs come from: on this simulation it is handed the true grouping, its best case. With
# {glue:text}`sim_genes:,d` genes rather than 5,000 the fits are not those of {doc}`04_perturbations`, and
# neither are their recovery numbers.

# %%
wilcoxon = bc.perturbation.wilcoxon_vs_reference(
    sim[dose.train_idx], groupby="treatment", reference="vehicle", within="drug"
)
dose_table = kit.with_recovery(sim, dose, wilcoxon)  # planted truth: simulation only

# %% tags=["remove-cell"]
dose_table.to_csv(bookkit.RESULTS / "regularisation_dose.csv")

# %% tags=["remove-input"]
kit.accuracy_table(
    dose_table,
    title=f"Dose regression{TAG}: scores on the held-out test cells",
    link="regularisation_dose.csv",
)

# %% tags=["remove-input"]
kit.planted_table(
    sim,
    dose_table,
    title=f"Dose regression{TAG}: module 0's AUROC of each drug's planted genes",
    link="regularisation_dose.csv",
)

# %% tags=["remove-input"]
display(
    Markdown(kit.dose_sentences(dose_table, dose_chosen, perturbations.data_label(sim)))
)

# %% tags=["remove-input"]
tasks = {"cell typing": cell_table, "frequencies": freq.table, "dose": dose_table}
names = {
    "cell typing": "cell typing",
    "frequencies": "frequencies",
    "dose": f"the dose task{TAG}",
}
stopping = kit.early_stopping_sentence(tasks, names, PATIENCE)
display(Markdown(f"**Early stopping.** {stopping}"))

# %% [markdown]
# ## Accuracy against stability
#
# The settings trained with three seeds, the post's settings in the sweep's schedule and the chosen one, are
# points in {numref}`fig-reg-stability`: their test score against the agreement of their modules across
# seeds. The baselines and the post's 100-epoch fit are lines.

# %% tags=["remove-output"]
tables = {"cell typing": cell_table, "frequencies": freq.table, "dose": dose_table}
scores = {"cell typing": "test accuracy", "frequencies": "test R²", "dose": "test R²"}
chosen = {"cell typing": cell_chosen, "frequencies": freq_chosen, "dose": dose_chosen}
post = "post (100 epochs)"
fig = kit.stability_figure(tables, scores, chosen, post, suffix=labels)

# %% tags=["remove-cell"]
bookkit.figure("fig-reg-stability", fig)

# %% [markdown]
# ```{glue:figure} fig-reg-stability
# :name: fig-reg-stability
#
# Held-out test score against the agreement of modules across three seeds (median over outputs of the mean
# $\lvert\cos\rvert$), for cell typing, frequencies and the dose task ({glue:text}`dose_data:s`). Each
# setting trained with three seeds is a pair of points joined by a line: module 0 (filled) and modules 1–2
# (open); blue is the post's settings in the sweep's {glue:text}`sweep_epochs`-epoch schedule, orange the
# setting chosen on validation. Horizontal lines: the linear baseline, the ReLU MLP (cell typing) and the
# post's 100-epoch fit (one seed, so no stability). A point far to the right is a module that comes back
# with another seed.
# ```
#
# The same settings side by side, with the post's 100-epoch fit as the reference:

# %%
references = ["post (100 epochs)", "post settings"]
rows = {task: references + [name] for task, name in chosen.items()}
side = kit.side_by_side(tables, scores, rows)

# %% tags=["remove-cell"]
side.to_csv(bookkit.RESULTS / "regularisation_summary.csv")

# %% tags=["remove-input"]
task_names = {
    "cell typing": "cell typing (accuracy)",
    "frequencies": "frequencies (R²)",
    "dose": f"dose{TAG} (R²)",
}
kit.summary_table(
    side,
    task_names,
    title="Reference, control and chosen setting per task",
    link="regularisation_summary.csv",
)

# %% [markdown]
# In cell typing, module 0 comes back with another seed ($\lvert\cos\rvert$
# {glue:text}`ct_cos0_control:.2f` under the post's settings, {glue:text}`ct_cos0_chosen:.2f` under the
# chosen setting) and modules 1–2 do not ({glue:text}`ct_cos12_control:.2f` and
# {glue:text}`ct_cos12_chosen:.2f`), as {doc}`05_trust` found for the post's fit; the chosen setting does
# not change that. In the frequency task no module comes back, module 0 included.

# %% [markdown]
# ## 4. Out of sample
#
# The post asks for benchmarks on compendia and across studies, which cannot be reached here; the evaluation
# function takes any AnnData and any split, so a user with such data gets the same table. Here two splits
# that are not random, each comparing the post's settings and the setting chosen above for that task (in
# the sweep's schedule) with the linear baseline:
#
# - **frequencies with a lineage held out**: every Alpha cell is a test cell, none is trained on. In the
#   sweep's schedule the post's settings are far from their 100-epoch fit on this task (table above), so
#   here they keep their 100 epochs;
# - **dose regression with a dose held out**: every cell treated at dose 10 (any drug) is a test cell, an
#   unseen-dose test as in perturbation benchmarks ({glue:text}`dose_data:s`).

# %%
SHARED = dict(baselines=("linear",), n_jobs=2)
kept = ["post (100 epochs)", freq_chosen]
lineage = bc.evaluation.evaluate_settings(
    adata,
    "X_freq",
    {name: freq.settings[name] for name in dict.fromkeys(kept)},
    held_out=("clusters", "Alpha"),
    output_names=FREQ["output_names"],
    **SHARED,
)

# %%
kept = ["post settings", dose_chosen]
unseen = bc.evaluation.evaluate_settings(
    sim,
    "dose_targets",
    {name: dose.settings[name] for name in dict.fromkeys(kept)},
    held_out=("dose", 10.0),
    output_names=list(DRUGS),
    **SHARED,
)

# %% tags=["remove-cell"]
out = bookkit.RESULTS
lineage.table.to_csv(out / "regularisation_frequencies_alpha_held_out.csv")
unseen.table.to_csv(out / "regularisation_dose_10_held_out.csv")
splits = {
    "frequencies, Alpha held out": lineage.table,
    f"dose 10 held out{TAG}": unseen.table,
}
held_out = pd.concat(splits, names=["split", "setting"])

# %% tags=["remove-input"]
kit.held_out_table(
    held_out,
    title="Held-out lineage and held-out dose: scores on the held-out cells",
    links=[
        "regularisation_frequencies_alpha_held_out.csv",
        "regularisation_dose_10_held_out.csv",
    ],
)

# %% [markdown]
# A test $R^2$ on one held-out lineage compares errors with the small spread of the frequencies within that
# lineage, so it is strongly negative for every model; the mean absolute error beside it is on the scale of
# the random split's.

# %% tags=["remove-input"]
phrases = [
    "the Alpha lineage held out of the frequency task",
    f"dose 10 held out of the dose task ({perturbations.data_label(sim)})",
]
tables_held_out = [lineage.table, unseen.table]
sentences = map(kit.held_out_sentence, phrases, tables_held_out)
display(Markdown(" ".join(sentences)))

# %% tags=["remove-cell"]
headline = kit.regularisation_headline(tables, scores, chosen, post, labels)
glue("headline", headline, display=False)
glue("findings_answer", kit.findings_answer(tables, chosen), display=False)
short = {t: t for t in tables} | {"dose": "simulated dose" if SIM else "sci-Plex2 dose"}
glue("findings_number", kit.findings_number(tables, chosen, short), display=False)
label = perturbations.data_label(sim)
glue("dose_takeaway", kit.dose_takeaway(dose_table, dose_chosen, label), display=False)

# %% [markdown]
# ```{admonition} Key takeaways
# :class: tip
#
# No option closes the gap to the linear baselines on held-out pancreas cells: the best cell-typing accuracy
# of any setting, {glue:text}`ct_best:.3f`, stays below logistic regression's {glue:text}`ct_linear:.3f`,
# and the best frequency $R^2$, {glue:text}`fr_best:.3f`, below ridge regression's {glue:text}`fr_linear:.3f`.
#
# In the sweep's short schedule the options mostly change how fast a fit converges: the setting chosen for
# cell typing matches the post's 100-epoch accuracy ({glue:text}`ct_chosen_score:.3f` against
# {glue:text}`ct_post:.3f`) at {glue:text}`ct_chosen_cost:.0%` of its cost, with a larger gap between
# validation and training loss, not a smaller one.
#
# The L1 and per-gene priors make module 0 agree better with the Wilcoxon markers (median Jaccard index up
# to {glue:text}`ct_jaccard_best:.2f`, against {glue:text}`ct_jaccard_control:.2f` under the post's
# settings), at a test accuracy of {glue:text}`ct_jaccard_best_score:.3f`.
#
# The setting chosen on validation does not make the pancreas modules beyond the first reproducible across
# seeds: modules 1–2 of cell typing agree with $\lvert\cos\rvert$ {glue:text}`ct_cos12_chosen:.2f` under
# it ({glue:text}`ct_cos12_control:.2f` under the post's settings), and the frequency modules do not agree
# even in module 0 ({glue:text}`fr_cos0_chosen:.2f`).
#
# {glue:text}`dose_takeaway:s`
# ```
