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
# The post closes with two next steps. The first is to "evaluate whether linear combinations of output directions
# can predict responses to perturbation combinations", as the original bilinear MLP work showed for images. Nobody
# has run it; this chapter does, on real combinatorial CRISPR activation data.
#
# The data are K562 cells from Norman et al. (2019), in which one or two genes per cell were switched on by
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
# The file is PerturBench's development fixture (BSD-3-Clause), which holds a subset of Norman et al.'s cells,
# already log-normalised over 500 highly variable genes. We keep its Norman et al. cells and do not normalise again.

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display
from myst_nb import glue
from threadpoolctl import threadpool_limits

import bilinear_core as bc
from bilinear_core import composition as cp
from bilinear_core import validation as bv
from bilinear_core.interpret import orient_modules
from bilinear_core.report import dropdown

# One thread for torch and for the BLAS pools scikit-learn uses: the models are small, and on a shared CPU extra
# threads only slow each fit down. Results are identical on every rerun.
torch.set_num_threads(1)
threadpool_limits(1)
RESULTS = bc.datasets.results_dir()
SEED = 42
# The post's regression set-up (frequency task): Huber loss, hidden 128, Adam lr 1e-4, cosine annealing, 100
# epochs, batch 64, no biases; weight decay as PyTorch's Adam applies it (an L2 term, as in the other chapters).
NET = dict(task="regression", loss="huber", n_hidden=128, lr=1e-4, epochs=100, batch_size=64, progress=False)
GRID = [(dropout, wd) for dropout in (0.0, 0.2) for wd in (1e-4, 1e-2)]  # (dropout, weight decay)
K_MODULES = 3  # top modules (largest |eigenvalue|) per output in the subspace comparison

# %%
adata = bc.datasets.norman19()
X = adata.X.toarray()
genes = list(adata.var_names)
condition = adata.obs["condition"].astype(str).to_numpy()
members = {c: cp.parse_condition(c) for c in np.unique(condition)}
singles = sorted(c for c, m in members.items() if len(m) == 1)
pairs = sorted(c for c, m in members.items() if len(m) == 2)
complete = [p for p in pairs if all(g in singles for g in members[p])]
one_seen = [p for p in pairs if sum(g in singles for g in members[p]) == 1]
none_seen = [p for p in pairs if p not in complete + one_seen]
cells_per = pd.Series(condition).value_counts()
targets_in_panel = [g for g in sorted({g for m in members.values() for g in m}) if g in genes]

# %% tags=["remove-input"]
glue("n_cells", adata.n_obs, display=False)
glue("n_genes", adata.n_vars, display=False)
glue("n_singles", len(singles), display=False)
glue("n_pairs", len(pairs), display=False)
glue("n_complete", len(complete), display=False)
glue("complete_list", ", ".join(complete), display=False)
glue("n_one_seen", len(one_seen), display=False)
glue("one_seen_list", ", ".join(one_seen), display=False)
glue("n_none_seen", len(none_seen), display=False)
glue("none_seen_list", ", ".join(none_seen), display=False)
glue("min_cells", int(cells_per.min()), display=False)
glue("max_cells", int(cells_per.max()), display=False)
glue("n_control", int(cells_per["control"]), display=False)
glue("targets_in_panel", ", ".join(targets_in_panel) if targets_in_panel else "none", display=False)
glue("n_targets_in_panel", len(targets_in_panel), display=False)

# %% [markdown]
# {glue:text}`n_cells:,d` cells and {glue:text}`n_genes:d` genes: {glue:text}`n_control:d` control cells,
# {glue:text}`n_singles:d` single-gene activations and {glue:text}`n_pairs:d` two-gene combinations, with
# {glue:text}`min_cells:d` to {glue:text}`max_cells:d` cells per condition. Only {glue:text}`n_complete:d` pairs
# have both members among the single activations ({glue:text}`complete_list`); these are the test of
# composition. {glue:text}`n_one_seen:d` pairs have one member among the singles ({glue:text}`one_seen_list`) and
# are scored on that member alone; the other {glue:text}`n_none_seen:d` ({glue:text}`none_seen_list`) have no
# output to compare with and are left out. Of all activated genes, {glue:text}`n_targets_in_panel:d`
# ({glue:text}`targets_in_panel`) is itself among the 500 measured genes; the others are recognised only through
# their downstream effects.
#
# ## 1. A model of single activations
#
# **Targets.** One output per single gene; a cell's target is its indicator vector: 1 in the column of its
# activated gene, 0 elsewhere, all zeros for control cells (`bilinear_core.composition.indicator_targets`; a pair
# `A+B` would have ones in both columns, but no pair cell is used for training).
#
# **Splits.** The control and single-gene cells are split, stratified by condition, into a **test** set (20 %),
# then the rest into training (75 %) and **validation** (25 %) cells. Training uses the training cells only,
# choices are made on validation cells, and the test cells give the single-gene "ceiling" below.
#
# **Choosing dropout and weight decay.** The other settings are the post's (above). Four fits cover a small fixed
# grid, dropout $\in \{0, 0.2\}$ × weight decay $\in \{10^{-4}, 10^{-2}\}$, and we keep the one whose outputs best
# pick out each validation cell's activated gene: the mean, over validation cells, of the fraction of other outputs
# that the cell's own gene's output beats (the within-cell AUROC defined in section 2). We do not select on
# validation MAE: with indicator targets in which each gene is 1 for about 1 cell in 19, predicting 0 everywhere
# already has a low MAE, and the MAE rewards outputs that stay flat.

# %%
single_idx = np.flatnonzero([len(members[c]) <= 1 for c in condition])
pair_idx = np.flatnonzero([len(members[c]) == 2 for c in condition])
tr, va, te = bv.split_train_val_test(
    len(single_idx), test_fraction=0.2, val_fraction=0.25, seed=SEED, stratify=condition[single_idx]
)
train_idx, val_idx, test_idx = single_idx[tr], single_idx[va], single_idx[te]
Y = np.zeros((adata.n_obs, len(singles)), dtype=np.float32)
Y[single_idx] = cp.indicator_targets(condition[single_idx], singles)
on_gene = lambda idx: idx[condition[idx] != "control"]  # noqa: E731 (cells with an activated gene)


fits = {}


def fit_singles(setting):
    """One single-gene model on the training cells; scored by the validation within-cell AUROC."""
    dropout, weight_decay = setting
    fits[setting] = bc.fit(
        X, Y, dropout=dropout, weight_decay=weight_decay, train_idx=train_idx, val_idx=val_idx,
        output_names=singles, seed=SEED, **NET,
    )  # fmt: skip
    val = on_gene(val_idx)
    return fits[setting], cp.condition_metrics(fits[setting].predict(X[val]), condition[val], singles)["auroc"].mean()


model, tuning = bv.tune_on_validation(fit_singles, GRID, "setting")
tuning = pd.DataFrame(
    {
        "dropout": [s[0] for s in tuning["setting"]],
        "weight decay": [s[1] for s in tuning["setting"]],
        "validation AUROC": tuning["val_score"],
        "validation MAE": [fits[s].history["val_mae"].iloc[-1] for s in tuning["setting"]],
        "training MAE": [fits[s].history["train_mae"].iloc[-1] for s in tuning["setting"]],
        "selected": tuning["selected"],
    }
)
tuning.to_csv(RESULTS / "composition_tuning.csv", index=False)
chosen = tuning[tuning["selected"]].iloc[0]
tuning.round(4)

# %% tags=["remove-input"]
glue("dropout", float(chosen["dropout"]), display=False)
glue("wd", float(chosen["weight decay"]), display=False)
glue("val_auroc", float(chosen["validation AUROC"]), display=False)
best_mae = tuning.loc[tuning["validation MAE"].idxmin()]
glue("mae_best_dropout", float(best_mae["dropout"]), display=False)
glue("mae_best_wd", float(best_mae["weight decay"]), display=False)
glue("mae_best_auroc", float(best_mae["validation AUROC"]), display=False)
glue("n_train", len(train_idx), display=False)
glue("n_val", len(val_idx), display=False)
glue("n_test", len(test_idx), display=False)
glue("max_mae_gap", float((tuning["validation MAE"] - tuning["training MAE"]).abs().max()), display=False)

# %% [markdown]
# {glue:text}`n_train:,d` training, {glue:text}`n_val:,d` validation and {glue:text}`n_test:,d` test cells. The
# selected setting is dropout {glue:text}`dropout:g` and weight decay {glue:text}`wd:g` (validation AUROC
# {glue:text}`val_auroc:.3f`). Validation MAE would have picked dropout {glue:text}`mae_best_dropout:g` and weight
# decay {glue:text}`mae_best_wd:g`, whose outputs barely tell the genes apart (validation AUROC
# {glue:text}`mae_best_auroc:.3f`). In every setting training and validation MAE differ by at most
# {glue:text}`max_mae_gap:.4f`: with the post's learning rate and 100 epochs the model does not overfit these cells
# (nor fit them closely). The training curves are in the dropdown below.
#
# ### Held-out single-gene cells
#
# Per gene: validation MAE beside the MAE of always predicting 0, and on the test cells the within-cell AUROC and
# the fraction of cells whose highest output is their own gene ("top-1").

# %%
val_report = bc.train.regression_report(model, X, Y, idx=val_idx)
val_report["MAE of predicting 0"] = np.abs(Y[val_idx]).mean(axis=0)
test_singles = cp.condition_metrics(model.predict(X[on_gene(test_idx)]), condition[on_gene(test_idx)], singles)
per_gene = val_report[["mae", "MAE of predicting 0", "pearson_r"]].rename(
    columns={"mae": "validation MAE", "pearson_r": "validation r"}
)
per_gene = per_gene.join(
    test_singles.set_index("condition")[["auroc", "top_k_exact"]].rename(
        columns={"auroc": "test AUROC", "top_k_exact": "test top-1"}
    )
)
per_gene.index.name = "gene"
per_gene.to_csv(RESULTS / "composition_singles.csv")
per_gene.sort_values("test AUROC", ascending=False).round(3)

# %% tags=["remove-input"]
glue("single_auroc_mean", float(per_gene["test AUROC"].mean()), display=False)
glue("single_top1_mean", float(per_gene["test top-1"].mean()), display=False)
glue("chance_top1", 1 / len(singles), display=False)
strong = per_gene.index[per_gene["test AUROC"] >= 0.9].tolist()
glue("strong_singles", ", ".join(strong), display=False)
glue("n_strong", len(strong), display=False)
glue("n_near_chance", int((per_gene["test AUROC"] < 0.6).sum()), display=False)

# %%
test_genes = on_gene(test_idx)
predicted = np.asarray(singles)[model.predict(X[test_genes]).argmax(axis=1)]
confusion = pd.crosstab(
    pd.Categorical(condition[test_genes], singles), pd.Categorical(predicted, singles), dropna=False, normalize="index"
)
fig = bc.plotting.confusion_heatmap(confusion, title="Test single-gene cells: highest output (rows sum to 1)")
fig.axes[0].set(xlabel="highest output", ylabel="activated gene")
fig.set_size_inches(10, 8.5)

# %% tags=["remove-input"]
weak_cells = ~np.isin(condition[test_genes], strong)
glue("weak_to_strong", float(np.isin(predicted[weak_cells], strong).mean()), display=False)

# %% tags=["hide-input"]
display(
    Markdown(
        dropdown(
            "Training curves of the selected single-gene model",
            bc.plotting.training_curves(model.history, title="single genes"),
        )
    )
)

# %% [markdown]
# On held-out cells the model recognises few of the activations: the mean within-cell AUROC over the
# {glue:text}`n_singles:d` genes is {glue:text}`single_auroc_mean:.2f` and the mean top-1 rate
# {glue:text}`single_top1_mean:.0%` (chance: 0.5 and {glue:text}`chance_top1:.0%`).
# {glue:text}`n_strong:d` genes reach a test AUROC of 0.9 or more ({glue:text}`strong_singles`), and
# {glue:text}`n_near_chance:d` stay below 0.6: many of these activations change little among the 500 measured
# genes in about 100 cells ({glue:text}`targets_in_panel` is recognised through its own, measured transcript, which
# CRISPRa raises). The confusion matrix shows where the other cells go: for {glue:text}`weak_to_strong:.0%` of the
# test cells of the other genes, the highest output is one of the strong genes' outputs. This is the ceiling
# against which pairs are judged.
#
# ## 2. Composition on unseen pairs
#
# The cells of the pairs were never used in training. For each pair and each model we compute, over the pair's
# cells (`bilinear_core.composition.pair_metrics`):
#
# - **mean member / other output**: the mean output of the two member genes, and of the other genes;
# - **AUROC**: per cell, the fraction of (member, other gene) output pairs in which the member's output is higher,
#   averaged over cells (1: both members always above every other gene; 0.5: chance);
# - **top-two exact**: the fraction of cells whose two highest outputs are exactly the two members (chance
#   {glue:text}`chance_top2:.1%`).
#
# For a pair with one member among the singles, the same metrics use that member alone (top-1). The baselines are
# trained on the same training cells: **multinomial logistic regression** (scikit-learn, L2 penalty, $C$ chosen by
# validation accuracy among 0.01, 0.1 and 1), scored by its logits, and **nearest centroid**, scored by minus the
# Euclidean distance to each gene's mean training cell. Both have a control class, which is left out of the
# ranking; the bilinear model has no control output (its control target is all zeros). Each model's **ceiling** is
# the mean test AUROC (and top-1 rate) of the pair's two single genes.

# %%
logistic, logistic_tuning = bv.fit_logistic(X, condition, train_idx, val_idx, Cs=(0.01, 0.1, 1.0))
centroid, centroid_classes = cp.centroid_scores(X[train_idx], condition[train_idx], X)
scores = {
    "bilinear MLP": model.predict(X),
    "logistic regression": pd.DataFrame(logistic.decision_function(X), columns=logistic.classes_)[singles].to_numpy(),
    "nearest centroid": pd.DataFrame(centroid, columns=centroid_classes)[singles].to_numpy(),
}
frames = []
for name, S in scores.items():
    for kind, idx in (("single (test)", test_genes), ("pair", pair_idx)):
        table = cp.condition_metrics(S[idx], condition[idx], singles)
        table.insert(0, "model", name)
        table.insert(1, "kind", kind)
        frames.append(table)
metrics = pd.concat(frames, ignore_index=True)
metrics.loc[metrics["condition"].isin(one_seen), "kind"] = "pair, one member seen"
metrics.to_csv(RESULTS / "composition_pair_metrics.csv", index=False)
single_metrics = metrics[metrics["kind"] == "single (test)"].set_index(["model", "condition"])


def ceiling(model_name, pair, column):
    """Mean of a metric over the pair's members' own test cells."""
    return float(np.mean([single_metrics.loc[(model_name, g), column] for g in members[pair]]))


pair_table = metrics[metrics["condition"].isin(complete)].copy()
pair_table["ceiling AUROC"] = [ceiling(m, p, "auroc") for m, p in zip(pair_table["model"], pair_table["condition"])]
pair_table["ceiling top-1"] = [
    ceiling(m, p, "top_k_exact") for m, p in zip(pair_table["model"], pair_table["condition"])
]
wide = pair_table.pivot(index="condition", columns="model", values=["auroc", "top_k_exact", "ceiling AUROC"])
wide = wide.rename(columns={"auroc": "AUROC", "top_k_exact": "top-two exact"}, level=0)
wide.index.name = "pair"
overall = pair_table.groupby("model")[["auroc", "top_k_exact", "ceiling AUROC"]].mean()
wide.round(3)

# %% tags=["remove-input"]
glue("chance_top2", 1 / (len(singles) * (len(singles) - 1) / 2), display=False)
glue("C_logit", float(logistic.C), display=False)
for key, name in (("bil", "bilinear MLP"), ("log", "logistic regression"), ("nc", "nearest centroid")):
    glue(f"pair_auroc_{key}", float(overall.loc[name, "auroc"]), display=False)
    glue(f"pair_top2_{key}", float(overall.loc[name, "top_k_exact"]), display=False)
    glue(f"ceil_auroc_{key}", float(overall.loc[name, "ceiling AUROC"]), display=False)
glue("pair_top2_max", float(pair_table["top_k_exact"].max()), display=False)
bil_pairs = pair_table[pair_table["model"] == "bilinear MLP"].set_index("condition")
glue("n_above_ceiling", int((bil_pairs["auroc"] >= bil_pairs["ceiling AUROC"]).sum()), display=False)
strong_members = [g for p in complete + one_seen for g in members[p] if g in strong]
glue("strong_members", ", ".join(dict.fromkeys(strong_members)), display=False)
weak_pairs = [p for p in complete if not any(g in strong for g in members[p])]
glue("weak_pairs", ", ".join(weak_pairs) or "none", display=False)
glue(
    "auroc_ranking",
    " > ".join(f"{m} ({v:.3f})" for m, v in overall["auroc"].sort_values(ascending=False).items()),
    display=False,
)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), constrained_layout=True)
for ax, (column, ceiling_column, label) in zip(
    axes, (("auroc", "ceiling AUROC", "AUROC"), ("top_k_exact", "ceiling top-1", "top-two exact"))
):
    sns.barplot(pair_table, x="condition", y=column, hue="model", ax=ax, order=complete)
    for i, name in enumerate(scores):
        ceil = pair_table[pair_table["model"] == name].set_index("condition").loc[complete, ceiling_column]
        ax.scatter(np.arange(len(complete)) + (i - 1) * 0.27, ceil, marker="_", s=300, color="black", zorder=3)
    ax.axhline(0.5 if column == "auroc" else 1 / (len(singles) * (len(singles) - 1) / 2), color="grey", ls=":")
    ax.set(xlabel="", ylabel=label, ylim=(0, 1), title=f"Unseen pairs: {label} (black bars: single-gene ceiling)")
    ax.tick_params(axis="x", rotation=25)
    ax.legend(fontsize=8, frameon=False)
plt.show()

# %% [markdown]
# Averaged over the {glue:text}`n_complete:d` pairs the within-cell AUROC ranks {glue:text}`auroc_ranking`. The
# bilinear model's single-gene ceiling, averaged the same way, is {glue:text}`ceil_auroc_bil:.3f` (logistic
# regression, with $C$ = {glue:text}`C_logit:g` selected: {glue:text}`ceil_auroc_log:.3f`; nearest centroid:
# {glue:text}`ceil_auroc_nc:.3f`), and its pair
# AUROC is at or above the ceiling for {glue:text}`n_above_ceiling:d` of the {glue:text}`n_complete:d` pairs: in
# the pairs' cells the members' outputs rise above the others about as much as in single-gene cells. But the
# **top-two exact rate is low for every model** ({glue:text}`pair_top2_bil:.1%` bilinear,
# {glue:text}`pair_top2_log:.1%` logistic, {glue:text}`pair_top2_nc:.1%` nearest centroid; at most
# {glue:text}`pair_top2_max:.0%` for any pair and model): a pair's cells almost never have both members as their
# two highest outputs. The heat map shows why: the mean outputs of a pair's cells (minus those of control cells)
# light up the member with a strong single-gene signature ({glue:text}`strong_members`) and barely the other,
# and in pairs without such a member ({glue:text}`weak_pairs`) neither member stands out.

# %% tags=["hide-input"]
control_mean = scores["bilinear MLP"][condition == "control"].mean(axis=0)
shown = complete + one_seen
mean_outputs = pd.DataFrame(
    [scores["bilinear MLP"][condition == c].mean(axis=0) - control_mean for c in shown], index=shown, columns=singles
)
mean_outputs.to_csv(RESULTS / "composition_mean_outputs.csv")
fig, ax = plt.subplots(figsize=(11, 4), constrained_layout=True)
lim = np.abs(mean_outputs.to_numpy()).max()
sns.heatmap(mean_outputs, cmap="RdBu_r", vmin=-lim, vmax=lim, ax=ax, cbar_kws={"label": "mean output − control"})
for i, c in enumerate(shown):
    for g in members[c]:
        if g in singles:
            ax.add_patch(plt.Rectangle((singles.index(g), i), 1, 1, fill=False, edgecolor="black", lw=2))
ax.set(xlabel="bilinear output (single gene)", ylabel="", title="Mean outputs of pair cells (boxed: members)")
plt.show()

# %% [markdown]
# Is the low top-two rate only a matter of scale, the noise of a strong output beating the signal of a weak one?
# Standardising each bilinear output by its mean and standard deviation over the training cells puts all outputs
# on one scale before ranking:

# %%
train_scores = scores["bilinear MLP"][train_idx]
standardised = (scores["bilinear MLP"] - train_scores.mean(axis=0)) / train_scores.std(axis=0)
standardised_metrics = cp.condition_metrics(standardised[pair_idx], condition[pair_idx], singles)
standardised_metrics = standardised_metrics.set_index("condition").loc[complete, ["auroc", "top_k_exact"]]
standardised_metrics.round(3)

# %% tags=["remove-input"]
glue("std_top2", float(standardised_metrics["top_k_exact"].mean()), display=False)
glue("std_top2_max", float(standardised_metrics["top_k_exact"].max()), display=False)
glue("std_auroc", float(standardised_metrics["auroc"].mean()), display=False)

# %% [markdown]
# With standardised outputs the mean top-two exact rate over the pairs is {glue:text}`std_top2:.1%` (at most
# {glue:text}`std_top2_max:.0%`) and the mean AUROC {glue:text}`std_auroc:.3f`: scale is not what keeps both
# members from the top.
#
# The per-condition table below lists every model's metrics for each pair, including the
# {glue:text}`n_one_seen:d` pairs scored on their seen member, beside the single genes' test cells.

# %% tags=["hide-input"]
shown_metrics = metrics[metrics["kind"] != "single (test)"].pivot(
    index=["condition", "members"], columns="model", values=["mean_member", "mean_other", "auroc", "top_k_exact"]
)
shown_metrics.round(3)

# %% [markdown]
# ## 3. Modules
#
# ### Does the mean pair cell move along its members' modules?
#
# Module 0 of $\mathbf{Q}_a$ (largest positive eigenvalue) is the direction in expression space along which output
# $a$ grows fastest. Its sign is oriented so that the gene's own training cells score high
# (`bilinear_core.interpret.orient_modules`). For each member we project the mean control cell, the member's and
# the other member's mean single-gene cell and the mean pair cell onto the member's module 0
# (`bilinear_core.composition.pair_projections`). The **pair ratio** is (pair − control) / (member − control): 1
# means the pair moves along the module as far as the member alone does, 0 that it stays at control. The **other
# ratio** is the same for the other member alone: when it is large too, the module is not specific to its gene.

# %%
modules = orient_modules(bc.eigendecompose(model.model, singles, genes), X[train_idx], Y[train_idx])
means = cp.condition_means(X, condition, genes)
projections = pd.concat([cp.pair_projections(means, modules, p) for p in complete], ignore_index=True)
projections.to_csv(RESULTS / "composition_projections.csv", index=False)
projections.set_index(["pair", "member"]).round(3)

# %% tags=["remove-input"]
both_move = projections.groupby("pair")["pair_ratio"].min() >= 0.5
glue("n_both_move", int(both_move.sum()), display=False)
glue("both_move_list", ", ".join(both_move.index[both_move]) or "none", display=False)
specific = projections[projections["other_ratio"].abs() < 0.5]
glue("n_specific", len(specific), display=False)
glue("n_projections", len(projections), display=False)
moves_specifically = (projections["pair_ratio"] >= 0.5) & (projections["other_ratio"].abs() < 0.5)
both_specific = moves_specifically.groupby(projections["pair"]).all()
glue("n_both_specific", int(both_specific.sum()), display=False)
glue("specific_moves", ", ".join(f"{r.member} in {r.pair}" for r in projections[moves_specifically].itertuples()),
     display=False)  # fmt: skip

# %% [markdown]
# With a pair ratio of at least 0.5 on both members' module 0 as the criterion, {glue:text}`n_both_move:d` of the
# {glue:text}`n_complete:d` pairs move along both members' modules ({glue:text}`both_move_list`). But a module is
# specific to its gene (other ratio below 0.5 in magnitude) for {glue:text}`n_specific:d` of the
# {glue:text}`n_projections:d` members, and counting only moves along specific modules, {glue:text}`n_both_specific:d`
# pairs move along both members' modules. The moves along specific modules are {glue:text}`specific_moves`: the pair
# follows its strong member's module, while the weak member's module is either not specific (the strong member
# alone moves it as much) or not moved by the pair. Where a member's own single-gene step along its module is
# small, the ratios are ratios of small, noisy numbers and should not be over-read.
#
# ### Do the pair outputs' modules lie in the span of their members' modules?
#
# A second model gets {glue:text}`n_outputs2:d` outputs: the {glue:text}`n_singles:d` single genes and the
# {glue:text}`n_complete:d` pairs. A pair cell's target is 1 for both members and for the pair's own output. It is
# trained on 70 % of the control, single and pair cells (stratified by condition, so 70 % of each pair's cells),
# with the same settings as the selected single-gene model; its held-out pair cells rank the pair's own output above
# the other {glue:text}`n_outputs2_minus1:d` with a mean within-cell AUROC of {glue:text}`pair_output_auroc:.2f`.
#
# For each pair we take the {glue:text}`k_modules:d` modules of the pair's output with the largest
# $|\lambda|$, and measure how much of their span lies in the span of the members' top
# {glue:text}`k_modules:d` modules: the mean squared cosine of the principal angles
# (`bilinear_core.composition.subspace_overlap`; 1 when contained, 0 when orthogonal). Random directions would
# give {glue:text}`random_overlap:.3f`, but every $\mathbf{Q}_a$ of one model is built from the same
# $\mathbf{W}$ and $\mathbf{V}$, so modules of unrelated outputs overlap far more than random directions. The null
# therefore replaces the members with every pair of other single genes ({glue:text}`n_null:d` pairs); $p$ is the
# share of null pairs at least as high (with the observed one counted). In this model the members' outputs are also
# trained on the pair cells, which could pull their modules toward the pair's; as a check that avoids this, the
# last columns compare the same pair modules with the members' modules of the single-gene model above, which never
# saw a pair cell (different models, compared in gene space).

# %%
outputs2 = singles + complete
keep = np.flatnonzero(np.isin(condition, ["control", *outputs2]))
tr2, va2 = bc.train.split_indices(len(keep), val_fraction=0.3, seed=SEED, stratify=condition[keep])
Y2 = np.zeros((adata.n_obs, len(outputs2)), dtype=np.float32)
Y2[keep] = cp.indicator_targets(condition[keep], outputs2)
model2 = bc.fit(
    X, Y2, dropout=float(chosen["dropout"]), weight_decay=float(chosen["weight decay"]), train_idx=keep[tr2],
    val_idx=keep[va2], output_names=outputs2, seed=SEED, **NET,
)  # fmt: skip
modules2 = bc.eigendecompose(model2.model, outputs2, genes)
val_pairs = keep[va2][np.isin(condition[keep[va2]], complete)]
S2 = model2.predict(X[val_pairs])
pair_output_auroc = np.mean([cp.pair_metrics(S2[condition[val_pairs] == p], outputs2, [p])["auroc"] for p in complete])
rows = []
for p in complete:
    within = cp.overlap_test(modules2, p, members[p], singles, k=K_MODULES)
    across = cp.overlap_test(modules2, p, members[p], singles, k=K_MODULES, reference=modules)
    rows.append({"pair": p, **within, **{f"{key} (single-gene model)": v for key, v in across.items() if key != "k"}})
overlap = pd.DataFrame(rows).set_index("pair")
overlap.to_csv(RESULTS / "composition_overlap.csv")
sensitivity = pd.DataFrame(
    {k: [cp.overlap_test(modules2, p, members[p], singles, k=k)["p_value"] for p in complete] for k in (1, 3, 5)},
    index=pd.Index(complete, name="pair"),
).rename(columns=lambda k: f"p, k = {k}")
overlap.drop(columns=["k", "n_null", "n_null (single-gene model)"]).round(3)

# %% tags=["remove-input"]
glue("n_outputs2", len(outputs2), display=False)
glue("n_outputs2_minus1", len(outputs2) - 1, display=False)
glue("pair_output_auroc", float(pair_output_auroc), display=False)
glue("k_modules", K_MODULES, display=False)
glue("random_overlap", 2 * K_MODULES / len(genes), display=False)
glue("n_null", int(overlap["n_null"].iloc[0]), display=False)
glue("n_overlap_sig", int((overlap["p_value"] <= 0.05).sum()), display=False)
glue("n_overlap_sig_across", int((overlap["p_value (single-gene model)"] <= 0.05).sum()), display=False)
glue("overlap_min", float(overlap["overlap"].min()), display=False)
glue("overlap_max", float(overlap["overlap"].max()), display=False)
glue("null_mean_min", float(overlap["null_mean"].min()), display=False)
glue("null_mean_max", float(overlap["null_mean"].max()), display=False)
glue("not_sig_list", ", ".join(overlap.index[overlap["p_value"] > 0.05]) or "none", display=False)
glue("min_p", 1 / (1 + int(overlap["n_null"].iloc[0])), display=False)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(8, 3.4), constrained_layout=True)
for i, p in enumerate(complete):
    pool = [g for g in singles if g not in members[p]]
    space = cp.top_subspace(modules2, p, K_MODULES)
    null = [
        cp.subspace_overlap(space, np.hstack([cp.top_subspace(modules2, g, K_MODULES) for g in (a, b)]))
        for j, a in enumerate(pool)
        for b in pool[j + 1 :]
    ]
    ax.scatter(np.full(len(null), i) + np.random.default_rng(i).uniform(-0.15, 0.15, len(null)), null, s=6,
               color="grey", alpha=0.6, label="other gene pairs (null)" if i == 0 else None)  # fmt: skip
    ax.scatter(i, overlap.loc[p, "overlap"], s=80, color="tab:red", marker="D", label="members" if i == 0 else None)
ax.set_xticks(range(len(complete)), complete, rotation=20)
ax.set(ylabel="subspace overlap", ylim=(0, 1), title=f"Pair output's top {K_MODULES} modules in the members' span")
ax.legend(frameon=False, fontsize=8)
plt.show()

# %% [markdown]
# Within the second model, the overlap of each pair output's top modules with its members' ranges from
# {glue:text}`overlap_min:.2f` to {glue:text}`overlap_max:.2f`, against null means of
# {glue:text}`null_mean_min:.2f`–{glue:text}`null_mean_max:.2f`; {glue:text}`n_overlap_sig:d` of the
# {glue:text}`n_complete:d` pairs exceed their null at $p \le 0.05$ (the smallest $p$ possible with this null is
# {glue:text}`min_p:.3f`; not significant: {glue:text}`not_sig_list`). Against the members' modules of the
# single-gene model, which never saw a pair, {glue:text}`n_overlap_sig_across:d` do. How many modules are compared
# matters; the $p$ values for the top 1, 3 and 5 modules:

# %% tags=["hide-input"]
sensitivity.round(3)

# %% [markdown]
# ## 4. Expression additivity
#
# The standard baseline of the combination literature asks the same question of the data, without a model: is the
# mean expression shift of a pair (pair mean − control mean, per gene) the sum of its members' shifts? We report
# $R^2$ of the observed pair shift against that sum over the {glue:text}`n_genes:d` genes, and, following Norman et
# al., the least-squares fit $\delta_{AB} \approx c_A \delta_A + c_B \delta_B$ ($c$ far from 1, or unequal, marks
# one member dominating or buffering). Mean shifts over about 100 cells are noisy, so each pair also gets a noise
# reference: the $R^2$ between its shift estimated from one random half of its cells (and of the control cells) and
# from the other half. That reference uses half the cells, so it understates how reproducible a full-size shift
# is; an additivity $R^2$ near or below it says the pair's shift is mostly noise, not that the pair is non-additive.

# %%
shifts = cp.mean_shifts(X, condition, genes)
additivity = pd.DataFrame({p: cp.additivity(shifts, p) for p in complete}).T
additivity["split-half R²"] = [cp.split_half_r2(X, condition, p, seed=SEED) for p in complete]
additivity["shift norm"] = [float(np.linalg.norm(shifts.loc[p])) for p in complete]
additivity.index.name = "pair"
additivity.to_csv(RESULTS / "composition_additivity.csv")
deviating = pd.concat({p: cp.deviating_genes(shifts, p, n=5) for p in complete}, names=["pair", "rank"])
deviating.to_csv(RESULTS / "composition_deviating_genes.csv")
noise_limited = additivity.index[additivity["split-half R²"] < 0.5]
additivity.round(3)

# %% tags=["remove-input"]
glue("r2_add_min", float(additivity["r2_additive"].min()), display=False)
glue("r2_add_max", float(additivity["r2_additive"].max()), display=False)
glue("noise_limited", ", ".join(noise_limited) or "none", display=False)
clear = additivity.drop(index=noise_limited)
glue("clear_pairs", ", ".join(clear.index), display=False)
glue("clear_r2_min", float(clear["r2_additive"].min()) if len(clear) else np.nan, display=False)
glue("n_sub", int(((additivity[["coef_a", "coef_b"]].min(axis=1)) < 0.8).sum()), display=False)
weaker = additivity[["coef_a", "coef_b"]].min(axis=1)
stronger = additivity[["coef_a", "coef_b"]].max(axis=1)
glue("clear_weak_coef_max", float(weaker[clear.index].max()) if len(clear) else np.nan, display=False)
glue("clear_strong_coef_min", float(stronger[clear.index].min()) if len(clear) else np.nan, display=False)
top_genes = deviating.groupby("gene").size().sort_values(ascending=False)
glue("recurrent_genes", ", ".join(f"{g} ({n} pairs)" for g, n in top_genes[top_genes > 1].items()), display=False)

# %% tags=["hide-input"]
fig = bc.plotting.predicted_vs_true(shifts.loc[complete].to_numpy().T, (
    shifts.loc[[members[p][0] for p in complete]].to_numpy() + shifts.loc[[members[p][1] for p in complete]].to_numpy()
).T, complete)  # fmt: skip
for ax, p in zip(fig.axes, complete):
    ax.set(xlabel="sum of members' shifts", ylabel="pair shift")
    for row in deviating.loc[p].head(3).itertuples():
        ax.annotate(row.gene, (row.additive, row.observed), fontsize=7, color="tab:red")
fig.set_size_inches(16, 3.4)
fig.suptitle("Mean expression shift from control, per gene: pair against the sum of its members (black: identity)")
plt.show()

# %% [markdown]
# The additivity $R^2$ ranges from {glue:text}`r2_add_min:.2f` to {glue:text}`r2_add_max:.2f`. The pairs whose
# shift is reproducible between halves of their cells ({glue:text}`clear_pairs`) are close to additive (additivity
# $R^2$ at least {glue:text}`clear_r2_min:.2f`). Their fitted coefficients qualify this: the stronger member's
# coefficient is at least {glue:text}`clear_strong_coef_min:.2f`, the weaker member's at most
# {glue:text}`clear_weak_coef_max:.2f`, so the pair follows its strong member and only partly its weak one; the
# additive $R^2$ stays high because the weak member's shift is small. For {glue:text}`noise_limited` the
# split-half $R^2$ is below 0.5: their shifts are small against the noise of ~100 cells, and their low additivity
# $R^2$ cannot be read as an interaction. In {glue:text}`n_sub:d` of {glue:text}`n_complete:d` pairs one
# coefficient is below 0.8, i.e. the pair moves less along that member's shift than the member alone does. Genes
# that deviate most in more than one pair: {glue:text}`recurrent_genes`. The full lists are below.

# %% tags=["hide-input"]
deviating.round(3)

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
cross = pd.concat([cp.model_cross_terms(model.model, means, p, singles) for p in complete], ignore_index=True)
cross.to_csv(RESULTS / "composition_cross_terms.csv", index=False)
cross["own effect"] = np.where(cross["output"] == [members[p][0] for p in cross["pair"]], cross["y_a"], cross["y_b"])
cross["own effect"] -= cross["y_control"]
cross.drop(columns="own effect").set_index(["pair", "output"]).round(3)

# %% tags=["remove-input"]
glue("max_abs_cross", float(cross["cross_term"].abs().max()), display=False)
glue("max_own_effect", float(cross["own effect"].max()), display=False)
glue("n_nonadd_negative", int((cross["non_additive"] < 0).sum()), display=False)
glue("n_cross_rows", len(cross), display=False)

# %% [markdown]
# The cross terms are small: at most {glue:text}`max_abs_cross:.3f` in magnitude, against single-gene effects on
# their own output of up to {glue:text}`max_own_effect:.3f`. The model is therefore nearly additive in the shifts
# of the two members: its quadratic forms encode almost no interaction between them, so there is nothing in them to
# relate to the genes that deviate from additivity. The departure of the observed pair cell from the additive one
# (*non_additive*) lowers the member output in {glue:text}`n_nonadd_negative:d` of {glue:text}`n_cross_rows:d`
# cases, in line with the sub-additive coefficients above.
#
# ## Summary
#
# One row per pair: the within-cell AUROC and top-two exact rate of each model on the pair's cells (never seen in
# training) and the mean single-gene ceiling of the bilinear model; the subspace overlap of the pair output's top
# modules with its members' modules in the second model, its null mean and $p$; and the expression additivity
# $R^2$ with its split-half reference.

# %%
summary = pd.DataFrame(index=pd.Index(complete, name="pair"))
short = {"bilinear MLP": "bilinear", "logistic regression": "logistic", "nearest centroid": "centroid"}
for name, key in short.items():
    rows = pair_table[pair_table["model"] == name].set_index("condition").loc[complete]
    summary[f"AUROC {key}"] = rows["auroc"]
    summary[f"top-two {key}"] = rows["top_k_exact"]
summary["ceiling AUROC (bilinear)"] = [ceiling("bilinear MLP", p, "auroc") for p in complete]
summary["overlap"] = overlap["overlap"]
summary["overlap null mean"] = overlap["null_mean"]
summary["overlap p"] = overlap["p_value"]
summary["additivity R²"] = additivity["r2_additive"]
summary["split-half R²"] = additivity["split-half R²"]
summary.to_csv(RESULTS / "composition_summary.csv")
summary.round(3)

# %% tags=["remove-input"]
strong_in_pairs = list(dict.fromkeys(g for p in complete for g in members[p] if g in strong))
glue(
    "strong_top_genes",
    "; ".join(
        f"{g}: " + ", ".join(f"{gene} ({shifts.loc[g, gene]:+.2f})" for gene in shifts.loc[g].abs().nlargest(2).index)
        for g in strong_in_pairs
    ),
    display=False,
)
depth = adata.obs.groupby("condition", observed=True)["ncounts"].mean()
glue("depth_min", float(depth.min()), display=False)
glue("depth_max", float(depth.max()), display=False)
glue("depth_control", float(depth["control"]), display=False)

# %% [markdown]
# ## Conclusion
#
# Per pair, in numbers:

# %% tags=["remove-input"]
lines = []
for p, row in summary.iterrows():
    lines.append(
        f"- **{p}**: AUROC {row['AUROC bilinear']:.2f} bilinear, {row['AUROC logistic']:.2f} logistic, "
        f"{row['AUROC centroid']:.2f} nearest centroid (bilinear single-gene ceiling "
        f"{row['ceiling AUROC (bilinear)']:.2f}); top-two exact {row['top-two bilinear']:.0%}, "
        f"{row['top-two logistic']:.0%}, {row['top-two centroid']:.0%}; subspace overlap {row['overlap']:.2f} "
        f"against a null mean of {row['overlap null mean']:.2f} (p = {row['overlap p']:.3f}); additivity "
        f"R² {row['additivity R²']:.2f} (split-half {row['split-half R²']:.2f})."
    )
display(Markdown("\n".join(lines)))

# %% [markdown]
# **Where composition holds.** A bilinear model trained on single activations, applied to cells in which two of
# those genes were activated together, raises the members' outputs above the other genes' about as well as it
# recognises single activations (mean within-cell AUROC {glue:text}`pair_auroc_bil:.2f` on pairs against a
# single-gene ceiling of {glue:text}`ceil_auroc_bil:.2f`). A logistic regression and a nearest-centroid classifier
# trained on the same cells do about as well ({glue:text}`pair_auroc_log:.2f` and {glue:text}`pair_auroc_nc:.2f`).
# When pairs get outputs of their own, the pair outputs' leading modules lie in the span of their members' modules
# more than in the span of other genes' modules for {glue:text}`n_overlap_sig:d` of {glue:text}`n_complete:d` pairs
# within one model, and for {glue:text}`n_overlap_sig_across:d` against the single-gene model's modules. The pairs'
# expression shifts are close to additive where they are measurable, dominated by the stronger member.
#
# **Where it fails.** Composition in the strong sense, both members as a cell's two highest outputs, almost never
# happens ({glue:text}`pair_top2_bil:.1%` of pair cells for the bilinear model, {glue:text}`pair_top2_log:.1%` and
# {glue:text}`pair_top2_nc:.1%` for the baselines). A pair's cells carry the signature of its stronger member, and
# most single activations are hard to recognise even on their own (single-gene test top-1
# {glue:text}`single_top1_mean:.0%`). The mean pair cell moves along both members' specific module 0 in
# {glue:text}`n_both_specific:d` of {glue:text}`n_complete:d` pairs. The model's cross terms are negligible, so it
# neither predicts nor explains departures from additivity, and a model without gene–gene interactions (logistic
# regression) composes about as well. What composes here is what the expression shifts already give: the stronger
# member's signature, added to a weaker one. Nothing shows that the bilinear model's output directions add more.
#
# **What ~100 cells per condition and 500 genes can and cannot show.** They are enough to see strong activations
# (the largest mean shifts of the strong members: {glue:text}`strong_top_genes`; HBZ and HBG2 are haemoglobin genes,
# expected to respond to KLF1, an erythroid transcription factor, in these erythroid-like leukaemia cells) and to test
# additivity where shifts are large. They are not enough to detect the weak single-gene effects that most of these
# activations have among 500 genes, to tell a small interaction from noise (see the split-half references), or to
# estimate specific modules for outputs that the model barely predicts. Mean counts per cell also differ between
# conditions ({glue:text}`depth_min:,.0f` to {glue:text}`depth_max:,.0f`; control {glue:text}`depth_control:,.0f`),
# a possible batch signature that log-normalisation only partly removes and that we did not correct for. Only
# {glue:text}`n_complete:d` pairs have both members among the singles, so none of this is a statement about
# combinations in general; the full Norman et al. data (far more cells, pairs and genes) would answer the same
# questions with the same `bilinear_core.composition` functions.
