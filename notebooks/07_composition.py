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
# # Do output directions compose?
#
# **In this chapter.** Does a bilinear MLP trained on cells with one CRISPR-activated gene recognise cells in which
# two of those genes were activated together? On Norman et al.'s K562 cells the members' outputs rise above the
# others about as well as single activations are recognised, but both members are a cell's two highest outputs in
# only {glue:text}`pair_top2_bilinear:.1%` of pair cells, as rarely as with two linear baselines: what carries
# over is the stronger member.
#
# The post {cite:p}`maher2025post` closes with two next steps. The first is to "evaluate whether linear
# combinations of output directions can predict responses to perturbation combinations", as the original bilinear
# MLP work {cite:p}`pearce2025bilinear` showed output directions composing for images. The post did not run it;
# this chapter does, on real combinatorial CRISPR activation (CRISPRa) data.
#
# The data are K562 cells from {cite:t}`norman2019`, in which one or two genes per cell were switched on by
# CRISPRa. A bilinear MLP sees only control cells and cells with **one** activated gene, and learns one output per
# gene. We then show it cells in which **two** genes were activated together, which it has never seen, and ask:
#
# 1. **Outputs.** Do the outputs of both activated genes rise above all others? We compare with two baselines
#    (logistic regression, nearest centroid) on the same cells, and with the model's own score on held-out
#    single-gene cells as the ceiling.
# 2. **Modules.** Does the mean cell of a pair move along the leading modules of both members' $\mathbf{Q}_a$? And
#    when a second model gets an output for each pair, do that output's top modules lie in the span of its
#    members' top modules, more than for a random pair of single genes?
# 3. **Expression.** The standard check in the combination literature: is the pair's mean expression shift the
#    sum of its members' shifts, and where it is not, which genes depart, and does the model's cross term say
#    anything about them?
#
# A positive answer would mean what a model learns from single perturbations carries over to combinations. Every
# number, table and figure below is computed when the chapter runs; all seeds are fixed.
#
# ## The data
#
# The file is the development fixture of PerturBench {cite:p}`wu2024perturbench` (BSD-3-Clause), which holds a
# subset of Norman et al.'s cells, already log-normalised over 500 highly variable genes. We keep its Norman et
# al. cells and do not normalise again.

# %% tags=["remove-cell"]
from IPython.display import Markdown, display
from myst_nb import glue
from threadpoolctl import threadpool_limits

import bookkit
from bookkit import composition as kit

# One thread for torch and for the BLAS pools scikit-learn uses: the models are small, and on
# a shared CPU extra threads only slow each fit down. Results are identical on every rerun.
bookkit.setup(torch_threads=1)
_ = threadpool_limits(1)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import bilinear_core as bc
from bilinear_core import composition as cp

# %% [markdown]
# `composition.condition_table` parses every condition (`"control"`, `"A"` or `"A+B"`) and sorts the
# combinations by whether their members are also perturbed on their own:

# %%
adata = bc.datasets.norman19()
X = adata.X.toarray()
condition = adata.obs["condition"].astype(str).to_numpy()
design = cp.condition_table(condition)
members = design["members"].to_dict()
singles = design.index[design["kind"] == "single"].tolist()
complete = design.index[design["kind"] == "all members seen"].tolist()
one_seen = design.index[design["kind"] == "some members seen"].tolist()

# %%
cells = design.groupby("kind", observed=True)["n_cells"]
overview = cells.agg(conditions="size", cells="sum", fewest="min", most="max")
names = design.index.to_series().groupby(design["kind"], observed=True)
overview["names"] = names.agg(", ".join)

# %% tags=["remove-input"]
bookkit.table(
    overview.rename(columns={"fewest": "fewest cells", "most": "most cells"}),
    note="Fewest and most cells: per condition of the kind.",
)

# %% tags=["remove-cell"]
activated = sorted(set().union(*members.values()))
glue("n_genes", adata.n_vars, display=False)
glue("n_singles", len(singles), display=False)
glue("n_complete", len(complete), display=False)
glue(
    "targets_in_panel",
    ", ".join(g for g in activated if g in adata.var_names) or "none",
    display=False,
)

# %% [markdown]
# The table counts the conditions of each kind, their cells and the fewest and most cells per condition, over
# {glue:text}`n_genes:d` genes. Only the {glue:text}`n_complete:d` pairs with all members seen, whose two members
# are both among the {glue:text}`n_singles:d` single activations, are a test of composition. Pairs with one member
# among the singles are scored on that member alone; those with no member seen have no output to compare with and
# are left out. Of all activated genes, only {glue:text}`targets_in_panel` is itself among the
# {glue:text}`n_genes:d` measured genes; the others are recognised only through their downstream effects.
#
# ## 1. A model of single activations
#
# **Targets.** One output per single gene; a cell's target is its indicator vector: 1 in the column of its
# activated gene, 0 elsewhere, all zeros for control cells (`bilinear_core.composition.indicator_targets`; a pair
# `A+B` would have ones in both columns, but no pair cell is used for training). They go to `adata.obsm`, where
# `bc.tl.train` finds them.
#
# **Splits.** The control and single-gene cells are split, stratified by condition, into a **test** set (20 %),
# then the rest into training (75 %) and **validation** (25 %) cells. Training uses the training cells only,
# choices are made on validation cells, and the test cells give the single-gene "ceiling" below. That makes
# {glue:text}`n_train:,d` training, {glue:text}`n_val:,d` validation and {glue:text}`n_test:,d` test cells.

# %%
SEED = 42
single_idx = np.flatnonzero([len(members[c]) <= 1 for c in condition])
pair_idx = np.flatnonzero([len(members[c]) == 2 for c in condition])
tr, va, te = bc.baselines.split_train_val_test(
    len(single_idx),
    test_fraction=0.2,
    val_fraction=0.25,
    seed=SEED,
    stratify=condition[single_idx],
)
train_idx, val_idx, test_idx = single_idx[tr], single_idx[va], single_idx[te]
Y = np.zeros((adata.n_obs, len(singles)), dtype=np.float32)
Y[single_idx] = cp.indicator_targets(condition[single_idx], singles)
adata.obsm["singles"] = Y

# %% tags=["remove-cell"]
glue("n_train", len(train_idx), display=False)
glue("n_val", len(val_idx), display=False)
glue("n_test", len(test_idx), display=False)

# %% [markdown]
# **Choosing dropout and weight decay.** The other settings are the post's regression set-up (frequency task):
# Huber loss, hidden 128, Adam {cite:p}`kingma2015adam` with learning rate $10^{-4}$ and cosine annealing
# {cite:p}`loshchilov2017sgdr`, 100 epochs, batch 64, no biases; weight decay as PyTorch's Adam applies it (an L2
# term, as in the other chapters). Four fits cover a small fixed grid of dropout {cite:p}`srivastava2014dropout`
# and weight decay, dropout $\in \{0, 0.2\}$ × weight decay $\in \{10^{-4}, 10^{-2}\}$, each recorded in
# `adata` under its own key.

# %%
NET = dict(
    task="regression",
    loss="huber",
    n_hidden=128,
    lr=1e-4,
    epochs=100,
    batch_size=64,
    progress=False,
)
FIT = dict(NET, train_idx=train_idx, val_idx=val_idx, output_names=singles, seed=SEED)
GRID = {}  # dropout × weight decay, one adata key each
for dropout in (0.0, 0.2):
    for wd in (1e-4, 1e-2):
        GRID[f"singles_{dropout}_{wd}"] = dict(dropout=dropout, weight_decay=wd)

# %%
fits = bc.tl.train_many(adata, "singles", GRID, n_jobs=2, **FIT)  # two processes

# %% [markdown]
# We keep the fit whose outputs best pick out each validation cell's activated gene: the mean, over validation
# cells, of the fraction of other outputs that the cell's own gene's output beats (the within-cell AUROC defined
# in section 2). We do not select on validation MAE: with indicator targets in which each gene is 1 for about 1
# cell in 19, predicting 0 everywhere already has a low MAE, and the MAE rewards outputs that stay flat.

# %%
# validation cells with an activated gene
val = val_idx[condition[val_idx] != "control"]
tuning = pd.DataFrame.from_dict(GRID, orient="index")
tuning = tuning.rename(columns={"weight_decay": "weight decay"})
for name, fit in fits.items():
    auroc = cp.condition_metrics(fit.predict(X[val]), condition[val], singles)["auroc"]
    tuning.loc[name, "validation AUROC"] = auroc.mean()
    tuning.loc[name, "validation MAE"] = fit.history["val_mae"].iloc[-1]
    tuning.loc[name, "training MAE"] = fit.history["train_mae"].iloc[-1]
key = tuning["validation AUROC"].idxmax()
tuning["selected"] = tuning.index == key
model = fits[key]

# %% tags=["remove-cell"]
tuning.to_csv(bookkit.RESULTS / "composition_tuning.csv", index=False)
glue(
    "max_mae_gap",
    float((tuning["validation MAE"] - tuning["training MAE"]).abs().max()),
    display=False,
)

# %% tags=["remove-input"]
bookkit.table(
    tuning.assign(selected=tuning["selected"].map({True: "yes", False: ""})),
    precision=4,
    formats={"dropout": "{:g}", "weight decay": "{:g}"},
    index=False,
    link="composition_tuning.csv",
)

# %% [markdown]
# The selected setting is marked in the table. Validation MAE would have picked another one, the row with the
# lowest validation MAE, whose outputs barely tell the genes apart (its validation AUROC). In every setting training
# and validation MAE differ by at most {glue:text}`max_mae_gap:.4f`: with the post's learning rate and 100 epochs
# the model does not overfit these cells (nor fit them closely). The training curves are in the dropdown below.
#
# ### Held-out single-gene cells
#
# Per gene: validation MAE beside the MAE of always predicting 0, and on the test cells the within-cell AUROC and
# the fraction of cells whose highest output is their own gene ("top-1").

# %%
val_report = bc.train.regression_report(model, X, Y, idx=val_idx)
# test cells with an activated gene
test_genes = test_idx[condition[test_idx] != "control"]
S = model.predict(X[test_genes])
test_singles = cp.condition_metrics(S, condition[test_genes], singles)
test_singles = test_singles.set_index("condition").loc[singles]

# %%
per_gene = pd.DataFrame(
    {
        "validation MAE": val_report["mae"],
        "MAE of predicting 0": np.abs(Y[val_idx]).mean(axis=0),
        "validation r": val_report["pearson_r"],
        "test AUROC": test_singles["auroc"],
        "test top-1": test_singles["top_k_exact"],
    }
).rename_axis("gene")

# %% tags=["remove-cell"]
per_gene.to_csv(bookkit.RESULTS / "composition_singles.csv")
strong = per_gene.index[per_gene["test AUROC"] >= 0.9].tolist()
glue("single_auroc_mean", float(per_gene["test AUROC"].mean()), display=False)
glue("single_top1_mean", float(per_gene["test top-1"].mean()), display=False)
glue("strong_singles", ", ".join(strong), display=False)
glue("n_near_chance", int((per_gene["test AUROC"] < 0.6).sum()), display=False)

# %% tags=["remove-input"]
bookkit.table(
    per_gene.sort_values("test AUROC", ascending=False),
    note="Sorted by test AUROC.",
    link="composition_singles.csv",
)

# %% tags=["remove-output"]
predicted = np.asarray(singles)[model.predict(X[test_genes]).argmax(axis=1)]
confusion = pd.crosstab(
    pd.Categorical(condition[test_genes], singles),
    pd.Categorical(predicted, singles),
    dropna=False,
    normalize="index",
)
fig, ax = plt.subplots(figsize=(8, 6.8), constrained_layout=True)
share = {"label": "share of the gene's test cells"}
sns.heatmap(confusion, cmap="Blues", vmin=0, vmax=1, ax=ax, cbar_kws=share)
ax.set(xlabel="highest output", ylabel="activated gene")

# %% tags=["remove-cell"]
bookkit.figure("fig-comp-confusion", fig)
weak_cells = ~np.isin(condition[test_genes], strong)
glue(
    "weak_to_strong",
    float(np.isin(predicted[weak_cells], strong).mean()),
    display=False,
)

# %% [markdown]
# ```{glue:figure} fig-comp-confusion
# :name: fig-comp-confusion
#
# Where the held-out single-gene cells go: for the test cells of each activated gene (rows), the share whose
# highest bilinear output is each gene's (columns); rows sum to 1. A recognised activation is a dark cell on the
# diagonal; dark columns are outputs that win in many other genes' cells.
# ```

# %% tags=["remove-input"]
curves = bc.pl.training(adata, key, title="single genes")
caption = (
    "Training and validation loss (left) and mean absolute error (right) per epoch of the "
    "selected single-gene model (dropout {dropout:g}, weight decay {wd:g})."
).format(dropout=GRID[key]["dropout"], wd=GRID[key]["weight_decay"])
display(
    Markdown(
        bookkit.dropdown(
            "Training curves of the selected single-gene model",
            bookkit.figure_markdown(curves, "fig-comp-training", caption),
        )
    )
)

# %% [markdown]
# On held-out cells the model recognises few of the activations: the mean within-cell AUROC over the
# {glue:text}`n_singles:d` genes is {glue:text}`single_auroc_mean:.2f` and the mean top-1 rate
# {glue:text}`single_top1_mean:.0%` (chance: 0.5 and one in {glue:text}`n_singles:d`). Only
# {glue:text}`strong_singles` reach a test AUROC of 0.9 or more, and {glue:text}`n_near_chance:d` genes stay below
# 0.6: many of these activations change little among the {glue:text}`n_genes:d` measured genes in about 100 cells
# ({glue:text}`targets_in_panel` is recognised through its own, measured transcript, which CRISPRa raises).
# {numref}`fig-comp-confusion` shows where the other cells go: for {glue:text}`weak_to_strong:.0%` of the test
# cells of the other genes, the highest output is one of the strong genes' outputs. This is the ceiling against
# which pairs are judged.
#
# ## 2. Composition on unseen pairs
#
# The cells of the pairs were never used in training. For each pair and each model we compute, over the pair's
# cells (`bilinear_core.composition.pair_metrics`):
#
# - **mean member / other output**: the mean output of the two member genes, and of the other genes;
# - **AUROC** {cite:p}`hanley1982auroc`: per cell, the fraction of (member, other gene) output pairs in which the
#   member's output is higher, averaged over cells (1: both members always above every other gene; 0.5: chance);
# - **top-two exact**: the fraction of cells whose two highest outputs are exactly the two members (chance
#   {glue:text}`chance_top2:.1%`).
#
# For a pair with one member among the singles, the same metrics use that member alone (top-1). The baselines are
# trained on the same training cells, with scikit-learn {cite:p}`pedregosa2011sklearn`: **multinomial logistic
# regression** (L2 penalty, $C$ chosen by validation accuracy among 0.01, 0.1 and 1, as the table shows), scored
# by its logits, and **nearest centroid**, scored by minus the Euclidean distance to each gene's mean training
# cell. Both have a control class, which is left out of the ranking; the bilinear model has no control output (its
# control target is all zeros).

# %%
Cs = (0.01, 0.1, 1.0)
logistic, C_table = bc.baselines.fit_logistic(X, condition, train_idx, val_idx, Cs=Cs)
centroid, centroid_classes = cp.centroid_scores(X[train_idx], condition[train_idx], X)
logits = pd.DataFrame(logistic.decision_function(X), columns=logistic.classes_)
closeness = pd.DataFrame(centroid, columns=centroid_classes)
scores = {
    "bilinear MLP": model.predict(X),
    "logistic regression": logits[singles].to_numpy(),
    "nearest centroid": closeness[singles].to_numpy(),
}

# %% tags=["remove-input"]
bookkit.table(
    C_table.rename(columns={"val_score": "validation accuracy"}).assign(
        selected=C_table["selected"].map({True: "yes", False: ""})
    ),
    formats={"C": "{:g}"},
    index=False,
)

# %% [markdown]
# Each model's metrics on the pairs' cells and, for the ceilings, on the single genes' test cells:

# %%
frames = {}
for name, S in scores.items():
    for kind, idx in (("single (test)", test_genes), ("pair", pair_idx)):
        frames[name, kind] = cp.condition_metrics(S[idx], condition[idx], singles)
metrics = pd.concat(frames, names=["model", "kind"]).reset_index(["model", "kind"])
metrics.loc[metrics["condition"].isin(one_seen), "kind"] = "pair, one member seen"

# %% tags=["remove-cell"]
metrics.to_csv(bookkit.RESULTS / "composition_pair_metrics.csv", index=False)

# %% [markdown]
# Each model's **ceiling** for a pair is the mean test AUROC (and top-1 rate) of the pair's two single genes
# (`composition.member_means`).

# %%
values = ["auroc", "top_k_exact"]
on_pairs = metrics[metrics["condition"].isin(complete)]
per_pair = on_pairs.pivot(index="condition", columns="model", values=values)
on_singles = metrics[metrics["kind"] == "single (test)"]
per_single = on_singles.pivot(index="condition", columns="model", values=values)
ceiling = cp.member_means(per_single, complete)
ceiling_auroc = ceiling[["auroc"]].rename(columns={"auroc": "ceiling AUROC"})
wide = pd.concat([per_pair, ceiling_auroc], axis=1)
wide = wide.rename(columns={"auroc": "AUROC", "top_k_exact": "top-two exact"})
wide = wide.rename_axis("pair")
wide.loc["mean"] = wide.mean()

# %% [markdown]
# **Within-cell AUROC** of each model on each pair's cells, beside its single-gene ceiling (last row: the mean over
# the pairs):

# %% tags=["remove-input"]
abbreviated = {
    "bilinear MLP": "bilinear",
    "logistic regression": "logistic",
    "nearest centroid": "centroid",
}
auroc_shown = wide[["AUROC", "ceiling AUROC"]].rename(
    columns={"AUROC": "on the pair's cells", "ceiling AUROC": "single-gene ceiling"}
)
bookkit.table(
    auroc_shown.rename(columns=abbreviated, level=1),
    link="composition_pair_metrics.csv",
)

# %% [markdown]
# **Top-two exact rate**, the share of a pair's cells whose two highest outputs are its two members:

# %% tags=["remove-input"]
bookkit.table(wide["top-two exact"].rename(columns=abbreviated))

# %% tags=["remove-output"]
n_output_pairs = len(singles) * (len(singles) - 1) / 2
chance = {"auroc": 0.5, "top_k_exact": 1 / n_output_pairs}
fig, axes = plt.subplots(2, 1, figsize=(8, 6.6), constrained_layout=True)
for ax, column, label in zip(axes, values, ["AUROC", "top-two exact"]):
    sns.barplot(on_pairs, x="condition", y=column, hue="model", order=complete, ax=ax)
    for i, name in enumerate(scores):
        x = np.arange(len(complete)) + (i - 1) * 0.27
        ax.scatter(x, ceiling[column, name], marker="_", s=300, color="black", zorder=3)
    ax.axhline(chance[column], color="grey", ls=":")
    ax.set(xlabel="", ylabel=label, ylim=(0, 1))
axes[0].legend(frameon=False, ncols=3, loc="lower left", bbox_to_anchor=(0, 1))
axes[1].get_legend().remove()

# %% tags=["remove-cell"]
bookkit.figure("fig-comp-pairs", fig)
overall = wide.loc["mean"]
ranking = overall["AUROC"].sort_values(ascending=False)
bilinear_pairs = wide.loc[complete, "AUROC"]["bilinear MLP"]
glue("chance_top2", chance["top_k_exact"], display=False)
glue(
    "auroc_ranking",
    " > ".join(f"{m} ({v:.3f})" for m, v in ranking.items()),
    display=False,
)
glue(
    "top2_by_model",
    ", ".join(f"{v:.1%} {m}" for m, v in overall["top-two exact"].items()),
    display=False,
)
glue("ceil_auroc_bil", float(overall["ceiling AUROC", "bilinear MLP"]), display=False)
for name, tag in abbreviated.items():  # pair_auroc_bilinear, pair_top2_logistic, …
    glue(f"pair_auroc_{tag}", float(overall["AUROC", name]), display=False)
    glue(f"pair_top2_{tag}", float(overall["top-two exact", name]), display=False)
glue(
    "n_above_ceiling",
    int((bilinear_pairs >= ceiling["auroc", "bilinear MLP"]).sum()),
    display=False,
)
glue("pair_top2_max", float(on_pairs["top_k_exact"].max()), display=False)
strong_members = [g for p in complete + one_seen for g in members[p] if g in strong]
glue("strong_members", ", ".join(dict.fromkeys(strong_members)), display=False)
weak_pairs = [p for p in complete if not any(g in strong for g in members[p])]
glue("weak_pairs", ", ".join(weak_pairs) or "none", display=False)

# %% [markdown]
# ```{glue:figure} fig-comp-pairs
# :name: fig-comp-pairs
#
# The three models on the cells of the unseen pairs: within-cell AUROC (top; 0.5 is chance) and top-two exact rate
# (bottom; chance {glue:text}`chance_top2:.1%`), per pair. Black ticks: each model's single-gene ceiling, the mean
# over the pair's two members on their held-out single-gene cells; dotted line: chance.
# ```
#
# Averaged over the {glue:text}`n_complete:d` pairs the within-cell AUROC ranks {glue:text}`auroc_ranking`. The
# bilinear model's single-gene ceiling, averaged the same way, is {glue:text}`ceil_auroc_bil:.3f` (the baselines'
# ceilings are in the AUROC table's last row), and its pair AUROC is at or above the ceiling for
# {glue:text}`n_above_ceiling:d` of the {glue:text}`n_complete:d` pairs ({numref}`fig-comp-pairs`): in the pairs'
# cells the members' outputs rise above the others about as much as in single-gene cells. But the top-two exact
# rate is low for every model ({glue:text}`top2_by_model`; at most {glue:text}`pair_top2_max:.0%` for any pair and
# model): a pair's cells almost never have both members as their two highest outputs. {numref}`fig-comp-mean-outputs`
# shows why: the mean outputs of a pair's cells (minus those of control cells) light up the member with a strong
# single-gene signature ({glue:text}`strong_members`) and barely the other, and in pairs without such a member
# ({glue:text}`weak_pairs`) neither member stands out.

# %% tags=["remove-output"]
bilinear = scores["bilinear MLP"]
control_mean = bilinear[condition == "control"].mean(axis=0)
shown = complete + one_seen
mean_outputs = pd.DataFrame(
    [bilinear[condition == c].mean(axis=0) - control_mean for c in shown],
    index=shown,
    columns=singles,
)
fig, ax = plt.subplots(figsize=(8, 4.2), constrained_layout=True)
lim = np.abs(mean_outputs.to_numpy()).max()
colorbar = {"label": "mean output − control"}
sns.heatmap(mean_outputs, cmap="RdBu_r", vmin=-lim, vmax=lim, ax=ax, cbar_kws=colorbar)
for i, c in enumerate(shown):
    for g in [g for g in members[c] if g in singles]:
        xy = (singles.index(g), i)
        ax.add_patch(plt.Rectangle(xy, 1, 1, fill=False, edgecolor="black", lw=2))
ax.set(xlabel="bilinear output (single gene)", ylabel="")

# %% tags=["remove-cell"]
mean_outputs.to_csv(bookkit.RESULTS / "composition_mean_outputs.csv")
bookkit.figure("fig-comp-mean-outputs", fig)

# %% [markdown]
# ```{glue:figure} fig-comp-mean-outputs
# :name: fig-comp-mean-outputs
#
# Mean bilinear output of each pair's cells minus that of the control cells (rows: the pairs with both members
# seen, then those with one), per single-gene output (columns). Boxed: the pair's members among the outputs.
# Composition would show as both boxes of a row standing out.
# ```
#
# Is the low top-two rate only a matter of scale, the noise of a strong output beating the signal of a weak one?
# Standardising each bilinear output by its mean and standard deviation over the training cells puts all outputs
# on one scale before ranking (last row: the mean over the pairs):

# %%
train_scores = bilinear[train_idx]
standardised = (bilinear - train_scores.mean(axis=0)) / train_scores.std(axis=0)
rescored = cp.condition_metrics(standardised[pair_idx], condition[pair_idx], singles)
rescored = rescored.set_index("condition").loc[complete, ["auroc", "top_k_exact"]]
rescored.loc["mean"] = rescored.mean()

# %% tags=["remove-input"]
bookkit.table(
    rescored.rename(
        columns={"auroc": "AUROC", "top_k_exact": "top-two exact"}
    ).rename_axis("pair")
)

# %% [markdown]
# With standardised outputs the top-two exact rate stays as low and the AUROC about the same: scale is not what
# keeps both members from the top. The dropdown lists every model's metrics for each pair, including the pairs
# scored on their one seen member; its whole table also holds the metrics on the single genes' test cells.

# %% tags=["remove-input"]
pair_rows = metrics[metrics["kind"] != "single (test)"]
long = pair_rows.set_index(["condition", "model"]).sort_index()
long = long[["members", "mean_member", "mean_other", "auroc", "top_k_exact"]]
long = long.rename(
    columns={
        "members": "scored members",
        "mean_member": "mean member output",
        "mean_other": "mean other output",
        "auroc": "AUROC",
        "top_k_exact": "top-k exact",
    }
)
display(
    Markdown(
        bookkit.dropdown(
            "Every model's metrics on every pair",
            "Top-k exact: top-two for pairs with both members seen, top-1 for pairs scored "
            "on their one seen member.",
            bookkit.table(
                long.rename_axis(["pair", "model"]), link="composition_pair_metrics.csv"
            ),
        )
    )
)

# %% [markdown]
# ## 3. Modules
#
# ### Does the mean pair cell move along its members' modules?
#
# Module 0 of $\mathbf{Q}_a$ (largest positive eigenvalue) is the direction in expression space along which output
# $a$ grows fastest. `bc.tl.modules` orients its sign so that the gene's own training cells score high. For each
# member we project the mean control cell, the member's and the other member's mean single-gene cell and the mean
# pair cell onto the member's module 0 (`bilinear_core.composition.pair_projections`). The **pair ratio** is
# (pair − control) / (member − control): 1 means the pair moves along the module as far as the member alone does, 0
# that it stays at control. The **other ratio** is the same for the other member alone: when it is large too, the
# module is not specific to its gene. In the cell-typing model module 0 is the module that comes back when the
# model is retrained with another seed, unlike modules 1 and 2 (see {ref}`trust-stability`); this chapter did not
# repeat that test for its own models.

# %%
modules = bc.tl.modules(adata, model, key_added=key)
means = cp.condition_means(X, condition, adata.var_names)
projections = [cp.pair_projections(means, modules, p) for p in complete]
projections = pd.concat(projections, ignore_index=True)

# %% tags=["remove-cell"]
projections.to_csv(bookkit.RESULTS / "composition_projections.csv", index=False)

# %% tags=["remove-input"]
step = projections["score_member"] - projections["score_control"]
bookkit.table(
    projections.assign(step=step)
    .set_index(["pair", "member"])[["step", "pair_ratio", "other_ratio"]]
    .rename(
        columns={
            "step": "member − control",
            "pair_ratio": "pair ratio",
            "other_ratio": "other ratio",
        }
    ),
    note="Member − control: how far the member's own mean cell moves along its module 0 "
    "from the mean control cell, the denominator of both ratios.",
    link="composition_projections.csv",
)

# %% tags=["remove-cell"]
both_move = projections.groupby("pair")["pair_ratio"].min() >= 0.5
glue("both_move_list", ", ".join(both_move.index[both_move]) or "none", display=False)
specific = projections["other_ratio"].abs() < 0.5
glue("n_specific", int(specific.sum()), display=False)
moves = projections[(projections["pair_ratio"] >= 0.5) & specific]
glue("n_both_specific", int((moves.groupby("pair").size() == 2).sum()), display=False)
glue(
    "specific_moves",
    ", ".join(f"{r.member} in {r.pair}" for r in moves.itertuples()),
    display=False,
)

# %% [markdown]
# With a pair ratio of at least 0.5 on both members' module 0 as the criterion, these pairs move along both
# members' modules: {glue:text}`both_move_list`. But a module is specific to its gene (other ratio below 0.5 in
# magnitude) for only {glue:text}`n_specific:d` of the members (two per pair), and counting only moves along
# specific modules, {glue:text}`n_both_specific:d` pairs move along both members' modules. The moves along specific
# modules are {glue:text}`specific_moves`: the pair follows its strong member's module, while the weak member's
# module is either not specific (the strong member alone moves it as much) or not moved by the pair. Where a
# member's own single-gene step along its module is small, the ratios are ratios of small, noisy numbers and
# should not be over-read.
#
# ### Do the pair outputs' modules lie in the span of their members' modules?
#
# A second model gets one output per single gene and one per pair with both members seen. A pair cell's target is
# 1 for both members and for the pair's own output. It is trained on 70 % of the control, single and pair cells
# (stratified by condition, so 70 % of each pair's cells), with the same settings as the selected single-gene
# model.

# %%
outputs2 = singles + complete
keep = np.flatnonzero(np.isin(condition, ["control", *outputs2]))
tr2, va2 = bc.train.split_indices(
    len(keep),
    val_fraction=0.3,
    seed=SEED,
    stratify=condition[keep],
)
Y2 = np.zeros((adata.n_obs, len(outputs2)), dtype=np.float32)
Y2[keep] = cp.indicator_targets(condition[keep], outputs2)
adata.obsm["pairs"] = Y2
FIT2 = dict(FIT, train_idx=keep[tr2], val_idx=keep[va2], output_names=outputs2)
model2 = bc.tl.train(adata, "pairs", key_added="pairs", **GRID[key], **FIT2)
modules2 = bc.eigendecompose(model2)

# %%
val_pairs = keep[va2][np.isin(condition[keep[va2]], complete)]
S2 = model2.predict(X[val_pairs])
own = [cp.pair_metrics(S2[condition[val_pairs] == p], outputs2, [p]) for p in complete]
pair_output_auroc = np.mean([m["auroc"] for m in own])

# %% [markdown]
# Its held-out pair cells rank the pair's own output above all the others with a mean within-cell AUROC of
# {glue:text}`pair_output_auroc:.2f`.
#
# For each pair we take the {glue:text}`k_modules:d` modules of the pair's output with the largest
# $|\lambda|$, and measure how much of their span lies in the span of the members' top
# {glue:text}`k_modules:d` modules: the mean squared cosine of the principal angles
# (`bilinear_core.composition.subspace_overlap`; 1 when contained, 0 when orthogonal). Random directions would
# give {glue:text}`random_overlap:.3f`, but every $\mathbf{Q}_a$ of one model is built from the same
# $\mathbf{W}$ and $\mathbf{V}$, so modules of unrelated outputs overlap far more than random directions. The null
# therefore replaces the members with every pair of other single genes; $p$ is the share of null pairs at least
# as high (with the observed one counted). In this model the members' outputs are also trained on the pair cells,
# which could pull their modules toward the pair's; as a check that avoids this, the same pair modules are also
# compared with the members' modules of the single-gene model above, which never saw a pair cell (different
# models, compared in gene space). Beyond module 0 and the most negative module, the top modules may include ones
# of the kind that do not come back across seeds in the cell-typing model (see {ref}`trust-stability`), so one
# pair's overlap is weak evidence on its own.

# %%
K_MODULES = 3  # top modules (largest |eigenvalue|) per output
test = dict(candidates=singles, k=K_MODULES)
rows = []
for p in complete:
    within = cp.overlap_test(modules2, p, members[p], **test)
    across = cp.overlap_test(modules2, p, members[p], reference=modules, **test)
    del across["k"]
    across = {f"{name} (single-gene model)": v for name, v in across.items()}
    rows.append({"pair": p, **within, **across})
overlap = pd.DataFrame(rows).set_index("pair")

# %% tags=["remove-cell"]
overlap.to_csv(bookkit.RESULTS / "composition_overlap.csv")

# %% [markdown]
# **Subspace overlap** of each pair output's top {glue:text}`k_modules:d` modules with its members' top modules, in
# the second model and against the single-gene model, beside the mean of the null of other gene pairs:

# %% tags=["remove-input"]
within_cols = {"overlap": "overlap", "null_mean": "null mean", "p_value": "p"}
shown_overlap = pd.concat(
    {
        "second model": overlap[list(within_cols)].rename(columns=within_cols),
        "single-gene model": overlap[
            [f"{c} (single-gene model)" for c in within_cols]
        ].set_axis(list(within_cols.values()), axis=1),
    },
    axis=1,
)
bookkit.table(shown_overlap, link="composition_overlap.csv")

# %% tags=["remove-cell"]
glue("pair_output_auroc", float(pair_output_auroc), display=False)
glue("k_modules", K_MODULES, display=False)
glue("random_overlap", 2 * K_MODULES / adata.n_vars, display=False)
glue("n_null", int(overlap["n_null"].iloc[0]), display=False)
glue("n_overlap_sig", int((overlap["p_value"] <= 0.05).sum()), display=False)
glue(
    "n_overlap_sig_across",
    int((overlap["p_value (single-gene model)"] <= 0.05).sum()),
    display=False,
)
glue(
    "not_sig_list",
    ", ".join(overlap.index[overlap["p_value"] > 0.05]) or "none",
    display=False,
)

# %% tags=["remove-output"]
fig, ax = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
for i, p in enumerate(complete):
    _, null = cp.overlap_null(modules2, p, members[p], **test)
    x = i + np.random.default_rng(i).uniform(-0.15, 0.15, len(null))
    ax.scatter(x, null, s=6, color="grey", alpha=0.6)
ax.scatter(range(len(complete)), overlap["overlap"], s=80, color="tab:red", marker="D")
handles = [ax.collections[0], ax.collections[-1]]
ax.legend(handles, ["other gene pairs (null)", "members"], frameon=False)
ax.set_xticks(range(len(complete)), complete)
ax.set(ylabel="subspace overlap", ylim=(0, 1))

# %% tags=["remove-cell"]
bookkit.figure("fig-comp-overlap", fig)

# %% [markdown]
# ```{glue:figure} fig-comp-overlap
# :name: fig-comp-overlap
#
# Subspace overlap of each pair output's top {glue:text}`k_modules:d` modules with the span of its members' top
# {glue:text}`k_modules:d` modules in the second model (red diamonds), against the same overlap with every other
# pair of single genes in place of the members (grey: the null, {glue:text}`n_null:d` pairs; spread sideways for
# visibility).
# ```
#
# Within the second model, {glue:text}`n_overlap_sig:d` of the {glue:text}`n_complete:d` pairs exceed their null of
# {glue:text}`n_null:d` other gene pairs at $p \le 0.05$ ($p$ is at least 1/(1 + {glue:text}`n_null:d`) with this
# null; not significant: {glue:text}`not_sig_list`; {numref}`fig-comp-overlap`). Against the members' modules of
# the single-gene model, which never saw a pair, {glue:text}`n_overlap_sig_across:d` do. How many modules are
# compared matters; the $p$ values (second model) for the top 1, 3 and 5 modules:

# %%
sensitivity = pd.DataFrame(index=pd.Index(complete, name="pair"))
for k in (1, 3, 5):
    tests = [cp.overlap_test(modules2, p, members[p], singles, k=k) for p in complete]
    sensitivity[f"p, k = {k}"] = [t["p_value"] for t in tests]

# %% tags=["remove-input"]
bookkit.table(
    sensitivity.set_axis([f"p, top {k}" for k in (1, 3, 5)], axis=1),
)

# %% [markdown]
# ## 4. Expression additivity
#
# The standard baseline of the combination literature asks the same question of the data, without a model: is the
# mean expression shift of a pair (pair mean − control mean, per gene) the sum of its members' shifts? We report
# $R^2$ of the observed pair shift against that sum over the {glue:text}`n_genes:d` genes, and, following
# {cite:t}`norman2019`, the least-squares fit $\delta_{AB} \approx c_A \delta_A + c_B \delta_B$ ($c$ far from 1,
# or unequal, marks one member dominating or buffering). Mean shifts over about 100 cells are noisy, so each pair
# also gets a noise reference: the $R^2$ between its shift estimated from one random half of its cells (and of the
# control cells) and from the other half. That reference uses half the cells, so it understates how reproducible a
# full-size shift is; an additivity $R^2$ near or below it says the pair's shift is mostly noise, not that the pair
# is non-additive.

# %%
shifts = cp.mean_shifts(X, condition, adata.var_names)
additivity = pd.DataFrame({p: cp.additivity(shifts, p) for p in complete}).T
split_half = [cp.split_half_r2(X, condition, p, seed=SEED) for p in complete]
additivity["split-half R²"] = split_half
additivity["shift norm"] = [float(np.linalg.norm(shifts.loc[p])) for p in complete]
additivity.index.name = "pair"

# %% tags=["remove-cell"]
additivity.to_csv(bookkit.RESULTS / "composition_additivity.csv")

# %% tags=["remove-input"]
bookkit.table(
    additivity.rename(
        columns={
            "r2_additive": "additive R²",
            "coef_a": "c_A",
            "coef_b": "c_B",
            "r2_fit": "fit R²",
        }
    ),
    note="Additive R²: pair shift against the sum of its members' shifts; c_A, c_B and fit "
    "R²: the least-squares fit (A: the pair's first member); shift norm: length of the pair's "
    "shift over all genes.",
    link="composition_additivity.csv",
)

# %%
deviating = {p: cp.deviating_genes(shifts, p, n=5) for p in complete}
deviating = pd.concat(deviating, names=["pair", "rank"])

# %% tags=["remove-cell"]
deviating.to_csv(bookkit.RESULTS / "composition_deviating_genes.csv")
noise_limited = additivity.index[additivity["split-half R²"] < 0.5]
clear = additivity.drop(index=noise_limited)
weaker = additivity[["coef_a", "coef_b"]].min(axis=1)
stronger = additivity[["coef_a", "coef_b"]].max(axis=1)
glue("noise_limited", ", ".join(noise_limited) or "none", display=False)
glue(
    "clear_r2_min",
    float(clear["r2_additive"].min()) if len(clear) else np.nan,
    display=False,
)
glue(
    "clear_weak_coef_max",
    float(weaker[clear.index].max()) if len(clear) else np.nan,
    display=False,
)
glue(
    "clear_strong_coef_min",
    float(stronger[clear.index].min()) if len(clear) else np.nan,
    display=False,
)
glue("n_sub", int((weaker < 0.8).sum()), display=False)
recurrent = deviating.groupby("gene").size().sort_values(ascending=False)
recurrent = ", ".join(f"{g} ({n} pairs)" for g, n in recurrent[recurrent > 1].items())
glue("recurrent_genes", recurrent, display=False)

# %% tags=["remove-output"]
observed = shifts.loc[complete].to_numpy().T
additive = np.stack([shifts.loc[list(members[p])].sum() for p in complete], axis=1)
fig = bc.pl.predicted_vs_true(observed, additive, complete)
for ax, p in zip(fig.axes, complete):
    ax.set(xlabel="sum of members' shifts", ylabel="pair shift")
    for row in deviating.loc[p].head(3).itertuples():
        ax.annotate(row.gene, (row.additive, row.observed), fontsize=9, color="tab:red")

# %% tags=["remove-cell"]
bookkit.figure("fig-comp-additivity", fig)

# %% [markdown]
# ```{glue:figure} fig-comp-additivity
# :name: fig-comp-additivity
#
# Mean expression shift from control of each of the {glue:text}`n_genes:d` genes in a pair's cells (vertical)
# against the sum of its members' shifts (horizontal), one panel per pair; black: the identity, where an additive
# pair's genes would lie. Red: the three genes that depart most from the sum.
# ```
#
# The pairs whose shift is reproducible between halves of their cells (split-half $R^2$ of 0.5 or more in the
# table) are close to additive (additivity $R^2$ at least {glue:text}`clear_r2_min:.2f`;
# {numref}`fig-comp-additivity`). Their fitted coefficients qualify this: the stronger member's coefficient is at
# least {glue:text}`clear_strong_coef_min:.2f`, the weaker member's at most {glue:text}`clear_weak_coef_max:.2f`,
# so the pair follows its strong member and only partly its weak one; the additive $R^2$ stays high because the
# weak member's shift is small. For {glue:text}`noise_limited` the split-half $R^2$ is below 0.5: their shifts are
# small against the noise of ~100 cells, and their low additivity $R^2$ cannot be read as an interaction. In
# {glue:text}`n_sub:d` of {glue:text}`n_complete:d` pairs one coefficient is below 0.8, i.e. the pair moves less
# along that member's shift than the member alone does. Genes that deviate most in more than one pair:
# {glue:text}`recurrent_genes`. The full lists (`composition.deviating_genes`) are in the dropdown.

# %% tags=["remove-input"]
deviating_shown = bookkit.one_based(deviating.reset_index()).set_index(
    ["pair", "position"]
)[["gene", "additive", "observed", "residual"]]
display(
    Markdown(
        bookkit.dropdown(
            "The five genes per pair that depart most from additivity",
            bookkit.table(
                deviating_shown.rename(
                    columns={
                        "additive": "sum of members' shifts",
                        "observed": "pair shift",
                        "residual": "pair − sum",
                    }
                ),
                note="Position 1: the largest departure. The members' own shifts are in "
                "the whole table.",
                link="composition_deviating_genes.csv",
            ),
        )
    )
)

# %% [markdown]
# ### What the model's cross terms say
#
# Without biases the single-gene model is a quadratic form, so for member output $a$ and shifts $d_A$, $d_B$ from
# the control mean $c$, the output of the additive cell $c + d_A + d_B$ is exactly
# $y_a(c + d_A) + y_a(c + d_B) - y_a(c) + 2\, d_A^\top \mathbf{Q}_a d_B$. The last term is the model's
# **cross term**, the only place where it could encode an interaction of the two members. The table evaluates the
# member outputs on mean cells: control, each single, the additive cell and the observed mean pair cell
# (`bilinear_core.composition.model_cross_terms`; outputs of mean cells, not mean outputs).

# %%
cross = [cp.model_cross_terms(model.model, means, p, singles) for p in complete]
cross = pd.concat(cross, ignore_index=True)

# %% tags=["remove-cell"]
cross.to_csv(bookkit.RESULTS / "composition_cross_terms.csv", index=False)
first = cross["output"] == cross["pair"].str.split("+").str[0]
own_effect = np.where(first, cross["y_a"], cross["y_b"]) - cross["y_control"]
glue("max_abs_cross", float(cross["cross_term"].abs().max()), display=False)
glue("max_own_effect", float(own_effect.max()), display=False)
glue("n_nonadd_negative", int((cross["non_additive"] < 0).sum()), display=False)

# %% tags=["remove-input"]
bookkit.table(
    cross.assign(own=own_effect)
    .set_index(["pair", "output"])[
        ["own", "cross_term", "y_additive", "y_pair", "non_additive"]
    ]
    .rename(
        columns={
            "own": "own effect",
            "cross_term": "cross term",
            "y_additive": "additive cell",
            "y_pair": "pair cell",
            "non_additive": "pair − additive",
        }
    ),
    note="Own effect: the output on its own gene's mean cell minus that on the mean control "
    "cell. Additive cell, pair cell: the output on those mean cells. The outputs on the "
    "control and single-gene mean cells are in the whole table.",
    link="composition_cross_terms.csv",
)

# %% [markdown]
# The cross terms are small: at most {glue:text}`max_abs_cross:.3f` in magnitude, against single-gene effects on
# their own output of up to {glue:text}`max_own_effect:.3f`. The model is therefore nearly additive in the shifts
# of the two members: its quadratic forms encode almost no interaction between them, so there is nothing in them to
# relate to the genes that deviate from additivity. The departure of the observed pair cell from the additive one
# (pair − additive) lowers the member output in {glue:text}`n_nonadd_negative:d` of the table's rows (two per
# pair), in line with the sub-additive coefficients above.
#
# ## Summary
#
# One row per pair for the bilinear model: its within-cell AUROC and top-two exact rate on the pair's cells (never
# seen in training) beside its single-gene ceiling, the $p$ of the subspace overlap of the pair output's top
# modules with its members' modules in the second model, and the expression additivity $R^2$ with its split-half
# reference. The baselines' columns and the overlaps with their null means are in the whole table.

# %%
short = {
    "bilinear MLP": "bilinear",
    "logistic regression": "logistic",
    "nearest centroid": "centroid",
}
columns = {}
for name, tag in short.items():
    columns[f"AUROC {tag}"] = per_pair["auroc", name]
    columns[f"top-two {tag}"] = per_pair["top_k_exact", name]
columns["ceiling AUROC (bilinear)"] = ceiling["auroc", "bilinear MLP"]
summary = pd.DataFrame(columns).rename_axis("pair")
summary["overlap"] = overlap["overlap"]
summary["overlap null mean"] = overlap["null_mean"]
summary["overlap p"] = overlap["p_value"]
summary["additivity R²"] = additivity["r2_additive"]
summary["split-half R²"] = additivity["split-half R²"]

# %% tags=["remove-cell"]
summary.to_csv(bookkit.RESULTS / "composition_summary.csv")
strong_in_pairs = list(
    dict.fromkeys(g for p in complete for g in members[p] if g in strong)
)
glue("strong_top_genes", kit.largest_shifts(shifts, strong_in_pairs), display=False)
depth = adata.obs.groupby("condition", observed=True)["ncounts"].mean()
glue("depth_min", float(depth.min()), display=False)
glue("depth_max", float(depth.max()), display=False)

# %% tags=["remove-input"]
bookkit.table(
    summary[
        [
            "AUROC bilinear",
            "ceiling AUROC (bilinear)",
            "top-two bilinear",
            "overlap p",
            "additivity R²",
            "split-half R²",
        ]
    ].rename(
        columns={
            "AUROC bilinear": "AUROC",
            "ceiling AUROC (bilinear)": "ceiling AUROC",
            "top-two bilinear": "top-two exact",
        }
    ),
    link="composition_summary.csv",
)

# %% [markdown]
# ## Conclusion
#
# **Where composition holds.** A bilinear model trained on single activations, applied to cells in which two of
# those genes were activated together, raises the members' outputs above the other genes' about as well as it
# recognises single activations (mean within-cell AUROC on pairs: {glue:text}`auroc_ranking`, against a bilinear
# single-gene ceiling of {glue:text}`ceil_auroc_bil:.2f`): a logistic regression and a nearest-centroid classifier
# trained on the same cells do about as well. When pairs get outputs of their own, the pair outputs' leading
# modules lie in the span of their members' modules more than in the span of other genes' modules for
# {glue:text}`n_overlap_sig:d` of {glue:text}`n_complete:d` pairs within one model, and for
# {glue:text}`n_overlap_sig_across:d` against the single-gene model's modules. The pairs' expression shifts are
# close to additive where they are measurable, dominated by the stronger member.
#
# **Where it fails.** Composition in the strong sense, both members as a cell's two highest outputs, almost never
# happens ({glue:text}`top2_by_model` of pair cells). A pair's cells carry the signature of its stronger member, and
# most single activations are hard to recognise even on their own (single-gene test top-1
# {glue:text}`single_top1_mean:.0%`). The mean pair cell moves along both members' specific module 0 in
# {glue:text}`n_both_specific:d` of {glue:text}`n_complete:d` pairs. The model's cross terms are negligible, so it
# neither predicts nor explains departures from additivity, and a model without gene–gene interactions (logistic
# regression) composes about as well. What composes here is what the expression shifts already give: the stronger
# member's signature, added to a weaker one. Nothing shows that the bilinear model's output directions add more.
#
# **What ~100 cells per condition and 500 genes can and cannot show.** They are enough to see strong activations
# (the largest mean shifts of the strong members: {glue:text}`strong_top_genes`; HBZ and HBG2 are haemoglobin genes,
# expected to respond to KLF1, an erythroid transcription factor, in these erythroid-like leukaemia cells) and to
# test additivity where shifts are large. They are not enough to detect the weak single-gene effects that most of
# these activations have among {glue:text}`n_genes:d` genes, to tell a small interaction from noise (see the
# split-half references), or to estimate specific modules for outputs that the model barely predicts. Mean counts
# per cell also differ between conditions ({glue:text}`depth_min:,.0f` to {glue:text}`depth_max:,.0f`), a possible
# batch signature that log-normalisation only partly removes and that we did not correct for. Only
# {glue:text}`n_complete:d` pairs have both members among the singles, so none of this is a statement about
# combinations in general; the full Norman et al. data (far more cells, pairs and genes) would answer the same
# questions with the same `bilinear_core.composition` functions.
#
# ```{admonition} Key takeaways
# :class: tip
#
# Trained only on single CRISPRa activations, the bilinear MLP recognises few of them on held-out cells (mean
# within-cell AUROC {glue:text}`single_auroc_mean:.2f`, top-1 {glue:text}`single_top1_mean:.0%`); only
# {glue:text}`strong_singles` stand out. On the {glue:text}`n_complete:d` unseen pairs the members' outputs rise
# above the others about as well as in single-gene cells (mean within-cell AUROC
# {glue:text}`pair_auroc_bilinear:.2f` against a single-gene ceiling of {glue:text}`ceil_auroc_bil:.2f`), and
# logistic regression and nearest centroid do as well ({glue:text}`pair_auroc_logistic:.2f` and
# {glue:text}`pair_auroc_centroid:.2f`). Both members are a cell's two highest outputs in only
# {glue:text}`pair_top2_bilinear:.1%` of pair cells (baselines: {glue:text}`pair_top2_logistic:.1%` and
# {glue:text}`pair_top2_centroid:.1%`): a pair's cells carry its stronger member's signature, and the pairs'
# expression shifts follow the stronger member too. The model's cross terms (at most
# {glue:text}`max_abs_cross:.3f`, against own effects of up to {glue:text}`max_own_effect:.3f`) encode almost no
# interaction, so what composes here is the sum of a strong and a weak signature; with about 100 cells per
# condition and {glue:text}`n_genes:d` genes, this fixture cannot show more.
# ```
