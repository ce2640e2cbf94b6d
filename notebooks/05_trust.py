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
# # How much do we trust the modules?
#
# The post makes two claims it never measures: that bilinear MLPs "trade little predictive power for far greater
# transparency", and that their modules "recover canonical markers". This chapter measures both on the pancreas
# data, and asks two further questions any reader of a gene module should ask: would the module come back if the
# model were retrained with another seed or on other cells, and is the spectrum of $\mathbf{Q}_a$ concentrated
# enough that reading only module 0 is justified?
#
# 1. **Predictive cost**: the bilinear MLP against multinomial logistic regression and a ReLU MLP of the same
#    width on a held-out *test* split, and against ridge regression for the frequencies.
# 2. **Agreement with conventional markers**: module-0 top genes against scanpy's one-vs-rest Wilcoxon markers.
# 3. **Stability**: module 0 across seeds and train/validation splits, and under 10× and 0.1× weight decay.
# 4. **Sparsity of the spectrum**: the share of $\lVert \mathbf{Q}_a \rVert_F^2$ in the top 1, 3 and 10
#    eigenvalues.
#
# Every number below is computed when the chapter runs; all seeds are fixed.

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display
from myst_nb import glue
from scipy.stats import false_discovery_control
from threadpoolctl import threadpool_limits

import bilinear_core as bc
from bilinear_core import validation as bv
from bilinear_core.frequencies import orient_frequencies, transcriptional_frequencies
from bilinear_core.interpret import n_top_genes, spectrum_energy

# One thread for torch and for the BLAS/OpenMP pools used by scikit-learn: these models are small, and on a busy
# machine multi-threaded pools can slow each fit down several-fold. Results are identical on every rerun.
torch.set_num_threads(1)
threadpool_limits(1)
pd.set_option("display.max_colwidth", 120)
RESULTS = bc.datasets.results_dir()

# %%
LABEL = "clusters"
SEED = 42
# The post's settings, shared by every neural network below (bilinear and ReLU). Weight decay is applied as in
# the other chapters: PyTorch Adam's L2 term (the default of bilinear_core.fit).
NET = dict(n_hidden=128, lr=1e-4, epochs=100, batch_size=64, progress=False)
WD_CELL_TYPES, WD_FREQS = 0.35, 1e-4
WD_GRID = [WD_CELL_TYPES / 10, WD_CELL_TYPES, WD_CELL_TYPES * 10]  # 0.1×, post value, 10×
SEEDS = [42, 1, 2]  # model seeds (initialisation and batch order)
SPLIT_SEEDS = [42, 1, 2]  # train/validation splits around the same test set
N_WD_SEEDS = 3  # runs per weight decay in the weight-decay comparison
N_FREQ_RUNS = 2  # seeds and splits for the frequency regressor (fewer: its modules agree at chance level)

adata = bc.preprocess.pancreas(n_top_genes=10_000, umap=False)
X = adata.X.toarray()
labels = pd.Categorical(adata.obs[LABEL])
classes = [str(c) for c in labels.categories]
y = np.asarray(labels).astype(str)

# %% tags=["remove-input"]
display(Markdown(bc.report.data_note(adata) + " The preprocessing is that of {doc}`02_cell_typing`."))
glue("n_cells", adata.n_obs, display=False)
glue("n_genes", adata.n_vars, display=False)

# %% [markdown]
# ## A held-out test split
#
# The post had only a training and a validation split, and the validation accuracy is what it reports. To compare
# models fairly, anything that is chosen (a regularisation strength, a weight decay) must be chosen on cells the
# final score does not use. Before anything is fitted we therefore carve a stratified 15 % **test** split out of
# all cells, then split the remaining cells 70/30 into training and validation as the post did. Models are fitted
# on the training cells, tuned only on the validation cells, and scored once on the test cells.

# %%
train_idx, val_idx, test_idx = bv.split_train_val_test(
    adata.n_obs, test_fraction=0.15, val_fraction=0.3, seed=SEED, stratify=y
)
split_table = pd.DataFrame(
    {name: pd.Series(y[idx]).value_counts().reindex(classes) for name, idx in
     (("train", train_idx), ("validation", val_idx), ("test", test_idx))}
)  # fmt: skip
split_table.loc["total"] = split_table.sum()
split_table

# %% tags=["remove-input"]
for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
    glue(f"n_{name}", len(idx), display=False)
glue("n_test_delta", int(split_table.loc["Delta", "test"]), display=False)

# %% [markdown]
# {glue:text}`n_train:,d` training, {glue:text}`n_val:,d` validation and {glue:text}`n_test:,d` test cells, each
# split with the class proportions of the whole data. The rarest class, Delta, has only
# {glue:text}`n_test_delta:d` test cells, so its per-class recall moves in steps of several percentage points.
#
# ## 1. Predictive cost
#
# ### Cell typing
#
# Four models see the same {glue:text}`n_genes:,d` log-normalised genes:
#
# - the **bilinear MLP** with the post's settings (hidden width 128, no biases, cross-entropy, Adam with learning
#   rate $10^{-4}$, cosine annealing, weight decay 0.35, 100 epochs, batch 64, seed 42). As in
#   {doc}`02_cell_typing` the weight decay is applied the way PyTorch's `Adam` does, as an L2 term in the
#   gradient; every network in this chapter uses that reading;
# - the same bilinear MLP with the weight decay **chosen on validation** among 0.035, 0.35 and 3.5 (these three
#   fits are reused for the stability analysis below);
# - a **ReLU MLP** of the same width (one 128-unit ReLU layer with biases and a linear head) trained by the very
#   same loop (`bilinear_core.fit(..., model_factory=ReluMLP)`: same optimiser, schedule, epochs, batches and
#   seed), its weight decay chosen on validation from the same three values. It has half the bilinear layer's
#   weights: one $128 \times g$ matrix instead of two;
# - **multinomial logistic regression** (scikit-learn, L2 penalty), its inverse regularisation $C$ chosen on
#   validation.
#
# The validation score of a network is its accuracy after the last epoch: no early stopping for anyone.


# %%
def fit_cell_types(weight_decay=WD_CELL_TYPES, seed=SEED, split=(train_idx, val_idx), model_factory=None):
    """One cell-typing network with the post's settings on a given split."""
    return bc.fit(
        X, labels, task="classification", weight_decay=weight_decay, seed=seed, train_idx=split[0],
        val_idx=split[1], model_factory=model_factory, **NET,
    )  # fmt: skip


def last_val_accuracy(result):
    return float(result.history["val_accuracy"].iloc[-1])


bilinear_by_wd = {}


def fit_bilinear(weight_decay):
    bilinear_by_wd[weight_decay] = fit_cell_types(weight_decay)
    return bilinear_by_wd[weight_decay], last_val_accuracy(bilinear_by_wd[weight_decay])


def fit_relu(weight_decay):
    result = fit_cell_types(weight_decay, model_factory=bv.ReluMLP)
    return result, last_val_accuracy(result)


bilinear_tuned, bilinear_tuning = bv.tune_on_validation(fit_bilinear, WD_GRID, "weight_decay")
bilinear = bilinear_by_wd[WD_CELL_TYPES]
relu, relu_tuning = bv.tune_on_validation(fit_relu, WD_GRID, "weight_decay")
logistic, logistic_tuning = bv.fit_logistic(X, y, train_idx, val_idx, Cs=(0.003, 0.01, 0.03, 0.1, 0.3))
tuning = pd.concat(
    {
        "bilinear MLP": bilinear_tuning.rename(columns={"weight_decay": "value"}),
        "ReLU MLP": relu_tuning.rename(columns={"weight_decay": "value"}),
        "logistic regression (C)": logistic_tuning.rename(columns={"C": "value"}),
    },
    names=["model", "row"],
).droplevel("row")
tuning = tuning.rename(columns={"value": "weight decay or C", "val_score": "validation accuracy"})
tuning

# %%
X_test, y_test = X[test_idx], y[test_idx]
cell_scores = pd.DataFrame(
    {
        "bilinear MLP": bv.classification_scores(y_test, bilinear.predict_labels(X_test), classes),
        "bilinear MLP (wd tuned)": bv.classification_scores(y_test, bilinear_tuned.predict_labels(X_test), classes),
        "ReLU MLP": bv.classification_scores(y_test, relu.predict_labels(X_test), classes),
        "linear": bv.classification_scores(y_test, logistic.predict(X_test), classes),
    }
)

# %% tags=["remove-input"]
test_acc = cell_scores.loc["accuracy"]
for key, column in (("bil", "bilinear MLP"), ("biltuned", "bilinear MLP (wd tuned)"), ("relu", "ReLU MLP"),
                    ("logit", "linear")):  # fmt: skip
    glue(f"acc_{key}", float(test_acc[column]), display=False)
    glue(f"f1_{key}", float(cell_scores.loc["macro_f1", column]), display=False)
glue("wd_bil_tuned", float(bilinear_tuned.settings["weight_decay"]), display=False)
glue("wd_relu", float(relu.settings["weight_decay"]), display=False)
glue("C_logit", float(logistic.C), display=False)
ranking = test_acc.drop("bilinear MLP (wd tuned)").sort_values(ascending=False)
names = {"bilinear MLP": "bilinear MLP", "ReLU MLP": "ReLU MLP", "linear": "logistic regression"}
glue("ranking", " > ".join(f"{names[m]} ({v:.1%})" for m, v in ranking.items()), display=False)
best_baseline = test_acc[["ReLU MLP", "linear"]].idxmax()
gap = float(test_acc["bilinear MLP"] - test_acc[best_baseline])
correct = {m: pred == y_test for m, pred in (("bilinear MLP", bilinear.predict_labels(X_test)),
                                             (best_baseline, relu.predict_labels(X_test) if best_baseline == "ReLU MLP"
                                              else logistic.predict(X_test)))}  # fmt: skip
only_bil, only_base, p_mcnemar = bv.mcnemar(correct["bilinear MLP"], correct[best_baseline])
glue(
    "cost_phrase",
    "not paid at all on these test cells"
    if gap >= 0
    else f"{100 * abs(gap):.1f} percentage points here, small"
    + (" but more than chance on this test set" if p_mcnemar <= 0.05 else " and within chance on this test set"),
    display=False,
)
glue(
    "acc_gap_sentence",
    f"The bilinear MLP is {100 * abs(gap):.1f} percentage points {'above' if gap >= 0 else 'below'} the best "
    f"baseline ({names[best_baseline]}): of the test cells on which the two disagree, the bilinear model alone is "
    f"right on {only_bil} and the baseline alone on {only_base} (exact McNemar p = {p_mcnemar:.2g}; "
    + ("a difference this size is compatible with chance on a test set of this size)." if p_mcnemar > 0.05
       else "unlikely to be chance).")
    ,
    display=False,
)  # fmt: skip
glue("train_acc_bil", float(bilinear.history["train_accuracy"].iloc[-1]), display=False)
glue("val_acc_bil", last_val_accuracy(bilinear), display=False)
worst_bil = cell_scores.loc[[f"recall {c}" for c in classes], "bilinear MLP"].idxmin().removeprefix("recall ")
glue("worst_class", worst_bil, display=False)
glue("worst_recall_bil", float(cell_scores.loc[f"recall {worst_bil}", "bilinear MLP"]), display=False)
glue("worst_recall_logit", float(cell_scores.loc[f"recall {worst_bil}", "linear"]), display=False)
recall_rows = [f"recall {c}" for c in classes]
gaps = (cell_scores.loc[recall_rows, "bilinear MLP"] - cell_scores.loc[recall_rows, "linear"]).abs()
largest_gap = gaps.idxmax().removeprefix("recall ")
glue(
    "largest_gap_sentence",
    "this is the largest per-class difference between the two models"
    if largest_gap == worst_bil
    else f"the largest per-class difference between the two models is that of {largest_gap} "
    f"({100 * gaps.max():.0f} percentage points)",
    display=False,
)
recalls = cell_scores.loc[[f"recall {c}" for c in classes]].rename(index=lambda r: r.removeprefix("recall "))
worst_each = recalls.idxmin()
glue(
    "worst_sentence",
    f"The lowest recall, for every model, is that of {worst_each.iloc[0]}"
    if worst_each.nunique() == 1
    else "The lowest recalls are " + ", ".join(f"{c} ({m})" for m, c in worst_each.items()),
    display=False,
)

# %% [markdown]
# ### Frequencies
#
# The frequency task of {doc}`03_frequencies` on the same cells and split: the transcriptional frequencies 0–3
# (kNN graph with $k = 10$, Laplacian $\mathbf{L} = \mathbf{D} - \mathbf{A}$, frequency 0 oriented with ductal
# cells negative) are regressed by the bilinear MLP with the post's settings (Huber loss, weight decay $10^{-4}$,
# 100 epochs) and by **ridge regression**, whose penalty is chosen on validation by the mean absolute error. The
# frequencies are computed once on the graph of all cells, as in the post, so the test cells' targets are defined
# together with the training cells'; what is held out is their expression, which the models never see in training.

# %%
transcriptional_frequencies(adata, n_freqs=4, n_neighbors=10)
orient_frequencies(adata, np.asarray(labels == "Ductal"), columns=[0])
F = adata.obsm["X_freq"]
freq_names = [f"frequency {i}" for i in range(F.shape[1])]


def fit_frequencies(seed=SEED, split=(train_idx, val_idx), epochs=NET["epochs"]):
    """One frequency regressor with the post's settings on a given split."""
    settings = {**NET, "epochs": epochs}
    return bc.fit(
        X, F, task="regression", loss="huber", weight_decay=WD_FREQS, seed=seed, train_idx=split[0],
        val_idx=split[1], output_names=freq_names, **settings,
    )  # fmt: skip


bilinear_freq = fit_frequencies()
ridge, ridge_tuning = bv.fit_ridge(X, F, train_idx, val_idx, alphas=(1.0, 10.0, 100.0, 1_000.0, 10_000.0))
freq_scores = pd.DataFrame(
    {
        "bilinear MLP": bv.regression_scores(F[test_idx], bilinear_freq.predict(X_test), freq_names),
        "linear": bv.regression_scores(F[test_idx], ridge.predict(X_test), freq_names),
    }
)

# %% tags=["remove-input"]
glue("alpha_ridge", float(ridge.alpha), display=False)
for key, column in (("bil", "bilinear MLP"), ("ridge", "linear")):
    glue(f"r2_{key}", float(freq_scores.loc["r2", column]), display=False)
    glue(f"mae_{key}", float(freq_scores.loc["mae", column]), display=False)
r2_rows = [f"r2 {f}" for f in freq_names]
glue("r2_bil_min", float(freq_scores.loc[r2_rows, "bilinear MLP"].min()), display=False)
glue("r2_bil_max", float(freq_scores.loc[r2_rows, "bilinear MLP"].max()), display=False)
n_ridge_better = int((freq_scores.loc[r2_rows, "linear"] > freq_scores.loc[r2_rows, "bilinear MLP"]).sum())
glue(
    "freq_sentence",
    f"Ridge regression has the higher test R² for {n_ridge_better} of the {len(freq_names)} frequencies"
    if n_ridge_better
    else "The bilinear MLP has the higher test R² for every frequency",
    display=False,
)

# %% [markdown]
# ### Test scores
#
# One table for both tasks. The column *linear* is multinomial logistic regression for cell typing and ridge
# regression for the frequencies; the ReLU MLP was trained for cell typing only.

# %% tags=["hide-input"]
test_table = pd.concat({"cell typing": cell_scores, "frequencies": freq_scores}, names=["task", "metric"])
test_table.to_csv(RESULTS / "trust_test_scores.csv")
test_table.round(4)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), width_ratios=[3, 1], constrained_layout=True)
cell_long = cell_scores.rename(index=lambda m: m.replace("recall ", "")).reset_index(names="metric")
cell_long = cell_long.melt(id_vars="metric", var_name="model", value_name="value")
sns.barplot(cell_long, x="metric", y="value", hue="model", ax=axes[0])
axes[0].set(ylim=(0, 1), xlabel="", ylabel="test score", title="Cell typing: accuracy, macro-F1, recall per class")
axes[0].tick_params(axis="x", rotation=40)
axes[0].legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.38), frameon=False)
r2_long = freq_scores.loc[[f"r2 {f}" for f in freq_names]].rename(index=lambda m: m.replace("r2 frequency ", "freq "))
r2_long = r2_long.reset_index(names="output").melt(id_vars="output", var_name="model", value_name="R²")
sns.barplot(r2_long, x="output", y="R²", hue="model", ax=axes[1], palette=["tab:blue", "tab:red"])
axes[1].axhline(0, color="black", lw=0.6)
axes[1].set(xlabel="", title="Frequencies: test R²")
axes[1].legend(fontsize=8, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
fig.suptitle("Held-out test cells")
plt.show()

# %% [markdown]
# **Cell typing.** On the {glue:text}`n_test:,d` test cells the ranking is {glue:text}`ranking`.
# {glue:text}`acc_gap_sentence` Macro-F1 gives the same order (bilinear {glue:text}`f1_bil:.3f`, ReLU
# {glue:text}`f1_relu:.3f`, logistic {glue:text}`f1_logit:.3f`). Tuning the bilinear weight decay on validation
# selects {glue:text}`wd_bil_tuned:g` and gives {glue:text}`acc_biltuned:.1%`; the ReLU MLP's selected weight
# decay is {glue:text}`wd_relu:g` and logistic regression's $C$ is {glue:text}`C_logit:g`. The class the bilinear
# model (post settings) recalls worst is {glue:text}`worst_class`: {glue:text}`worst_recall_bil:.0%` against
# {glue:text}`worst_recall_logit:.0%` for logistic regression; {glue:text}`largest_gap_sentence`.
#
# So the predictive power the post says is traded away is {glue:text}`cost_phrase`, and the bilinear MLP gains
# nothing over a plain linear model on the same genes either: the eight annotated types are
# close to linearly separable in log-expression, and the quadratic model's extra capacity goes into fitting the
# training cells (training accuracy {glue:text}`train_acc_bil:.1%`, validation {glue:text}`val_acc_bil:.1%`).
# What it buys is the readable gene–gene structure, not accuracy. {glue:text}`worst_sentence`, a transitional
# state whose labels are among the least certain.
#
# **Frequencies.** The bilinear regressor's test $R^2$ averages {glue:text}`r2_bil:.2f` (per frequency between
# {glue:text}`r2_bil_min:.2f` and {glue:text}`r2_bil_max:.2f`) against {glue:text}`r2_ridge:.2f` for ridge
# regression ($\alpha$ = {glue:text}`alpha_ridge:g`); the mean absolute errors are {glue:text}`mae_bil:.4f` and
# {glue:text}`mae_ridge:.4f`. {glue:text}`freq_sentence`.

# %% tags=["hide-input"]
display(
    Markdown(
        bc.report.dropdown(
            "Training curves: bilinear and ReLU cell typing, bilinear frequencies (100 epochs)",
            bc.plotting.training_curves(bilinear.history, title="bilinear cell typing"),
            bc.plotting.training_curves(relu.history, title="ReLU cell typing"),
            bc.plotting.training_curves(bilinear_freq.history, title="bilinear frequencies"),
        )
    )
)

# %% [markdown]
# ## 2. Agreement with conventional markers
#
# Do module-0 top genes match the genes a conventional analysis would call markers? For every cell type we run
# scanpy's `rank_genes_groups` (Wilcoxon rank-sum, one-vs-rest) on the same log-normalised expression, over all
# cells, and keep the top up-regulated genes, as many as the module's top-gene list per pole (the post's
# top-1 % rule with a floor of 50: {glue:text}`n_top:d` genes here). Because a module's sign is arbitrary, both
# poles of module 0 of $\mathbf{Q}_a$ (largest positive eigenvalue; the positive pole holds the largest-magnitude
# loading) are compared with the markers of class $a$: Jaccard index and one-sided hypergeometric $p$ of the
# overlap, with all {glue:text}`n_genes:,d` genes as background and Benjamini–Hochberg adjustment over all
# class × pole tests. The module comes from the bilinear MLP with the post's settings trained above.

# %%
n_top = n_top_genes(adata.n_vars)
modules = bc.eigendecompose(bilinear.model, bilinear.output_names, adata.var_names)
markers = bv.wilcoxon_markers(adata, LABEL, n_genes=n_top)
overlap = bv.marker_overlap(modules, markers, module=0, n_genes=n_top)
overlap["adjusted_p"] = false_discovery_control(overlap["p_value"].to_numpy())
best = overlap.loc[overlap.groupby("output", sort=False)["jaccard"].idxmax()].set_index("output")

# %% tags=["remove-input"]
overlap.to_csv(RESULTS / "trust_marker_overlap.csv", index=False)
chance = n_top * n_top / adata.n_vars
n_significant = int((best["adjusted_p"] <= 0.05).sum())
glue("n_top", n_top, display=False)
glue("chance_overlap", chance, display=False)
glue("jac_min", float(best["jaccard"].min()), display=False)
glue("jac_max", float(best["jaccard"].max()), display=False)
glue("ov_min", int(best["overlap"].min()), display=False)
glue("ov_max", int(best["overlap"].max()), display=False)
glue("jac_min_class", str(best["jaccard"].idxmin()), display=False)
glue("jac_max_class", str(best["jaccard"].idxmax()), display=False)
glue("n_significant", n_significant, display=False)
glue("n_classes", len(classes), display=False)
poles = best["pole"].value_counts()
glue(
    "pole_sentence",
    "For every cell type the matching pole is the positive one"
    if poles.get("positive", 0) == len(best)
    else f"The matching pole is the positive one for {poles.get('positive', 0)} cell types and the negative one "
    f"for {poles.get('negative', 0)} ({', '.join(best.index[best['pole'] == 'negative'])})",
    display=False,
)
not_significant = [c for c in best.index if best.loc[c, "adjusted_p"] > 0.05]
glue("not_significant", ", ".join(not_significant) if not_significant else "none", display=False)
glue("share_min", float(best["overlap"].min() / n_top), display=False)
glue("share_max", float(best["overlap"].max() / n_top), display=False)
weakest = best["jaccard"].nsmallest(2).index
glue("weakest_two", " and ".join(weakest), display=False)

# %% tags=["hide-input"]
jac = overlap.pivot(index="output", columns="pole", values="jaccard").reindex(classes)[["positive", "negative"]]
count = overlap.pivot(index="output", columns="pole", values="overlap").reindex(classes)[["positive", "negative"]]
padj = overlap.pivot(index="output", columns="pole", values="adjusted_p").reindex(classes)[["positive", "negative"]]
annot = jac.round(2).astype(str) + "\n(" + count.astype(str) + ", " + padj.map(lambda p: f"q={p:.0e}") + ")"
fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
sns.heatmap(jac, annot=annot, fmt="", cmap="Greens", vmin=0, ax=ax, cbar_kws={"label": "Jaccard"},
            annot_kws={"fontsize": 8})  # fmt: skip
ax.set(xlabel="pole of module 0", ylabel="", title=f"Module 0 vs Wilcoxon top-{n_top} markers")
plt.show()

# %% [markdown]
# Each cell shows the Jaccard index, the number of shared genes and the BH-adjusted $p$ ($q$). By chance two
# lists of {glue:text}`n_top:d` genes out of {glue:text}`n_genes:,d` share {glue:text}`chance_overlap:.1f`
# genes on average. {glue:text}`pole_sentence`; the other pole shares (almost) nothing with the class's markers.
# On the matching pole the overlap ranges from {glue:text}`ov_min:d` to {glue:text}`ov_max:d` shared genes
# ({glue:text}`share_min:.0%` to {glue:text}`share_max:.0%` of the list), a Jaccard index from
# **{glue:text}`jac_min:.2f`** ({glue:text}`jac_min_class`) to **{glue:text}`jac_max:.2f`**
# ({glue:text}`jac_max_class`); {glue:text}`n_significant:d` of {glue:text}`n_classes:d` cell types overlap more
# than chance (adjusted $p \le 0.05$; not significant: {glue:text}`not_significant`). The two weakest are
# {glue:text}`weakest_two`.
#
# So module 0 does recover conventional markers, hormone genes included (table below), as the post says, but it
# is not a marker list: a sizeable part of its top genes are not among the strongest one-vs-rest markers. That is
# expected rather than a failure: the module holds the genes whose *products* move the class logit, and a gene can
# matter through its interactions without being a top univariate marker (and vice versa).

# %% tags=["hide-input"]
shared_table = best[["pole", "overlap", "jaccard", "adjusted_p", "shared"]].reindex(classes)
shared_table.style.format({"jaccard": "{:.3f}", "adjusted_p": "{:.1e}"})

# %% [markdown]
# ## 3. Stability
#
# A module is only worth interpreting if it does not depend on accidents of training. We retrain the cell-typing
# model with the post's settings
#
# - with **{glue:text}`n_seed_runs:d` seeds** (initialisation and batch order; split fixed), and
# - on **{glue:text}`n_split_runs:d` train/validation splits** of the same non-test cells (model seed 42 fixed),
#
# and compare the modules of every output across runs (the seed-42, split-42 run is shared by both sets), that
# is {glue:text}`n_pairs:d` pairs of runs per comparison. The contrasts drawn below (module 0 against modules 1
# and 2 across seeds; seeds against splits for modules 1 and 2) are differences of several tenths in
# $\lvert\cos\rvert$, which more runs would refine but not overturn; the number of runs is kept small to keep
# the book's build time down. Module signs are arbitrary, so we use $\lvert\cos\rvert$ between module vectors, averaged over all pairs of runs; the
# Jaccard index of top-{glue:text}`n_top:d` gene lists per pole (after aligning signs), averaged over poles and
# pairs; and the spread of the module's eigenvalue (coefficient of variation, std / mean). Modules are matched by
# rank, in descending eigenvalue order: modules 0, 1 and 2 are the three largest positive eigenvalues and
# "last" is the most negative one. Two modules with close eigenvalues that swap places therefore count as
# unstable.

# %%
MODULES = {"0": 0, "1": 1, "2": 2, "last": -1}
seed_runs = [bilinear] + [fit_cell_types(seed=s) for s in SEEDS[1:]]
splits = {s: bv.split_train_val_test(adata.n_obs, seed=s, test_seed=SEED, stratify=y)[:2] for s in SPLIT_SEEDS}
split_runs = [bilinear] + [fit_cell_types(split=splits[s]) for s in SPLIT_SEEDS[1:]]


def decompose(result):
    return bc.eigendecompose(result.model, result.output_names, adata.var_names)


seed_modules = [modules] + [decompose(r) for r in seed_runs[1:]]
split_modules = [modules] + [decompose(r) for r in split_runs[1:]]
stability = pd.concat(
    [
        bv.module_stability(runs, module=m, n_genes=n_top).assign(varied=varied, module_name=name)
        for varied, runs in (("seed", seed_modules), ("split", split_modules))
        for name, m in MODULES.items()
    ],
    ignore_index=True,
)
m0 = stability[stability["module_name"] == "0"].pivot(index="output", columns="varied").reindex(classes)
m0[["mean_abs_cos", "mean_jaccard", "eigenvalue_mean", "eigenvalue_cv"]].round(3)

# %% tags=["remove-input"]
stability.to_csv(RESULTS / "trust_stability.csv", index=False)
glue("random_cos", bv.random_abs_cosine(adata.n_vars), display=False)
glue("n_seed_runs", len(SEEDS), display=False)
glue("n_split_runs", len(SPLIT_SEEDS), display=False)
glue("n_pairs", len(SEEDS) * (len(SEEDS) - 1) // 2, display=False)
for varied in ("seed", "split"):
    glue(f"med_cos_{varied}", float(m0[("mean_abs_cos", varied)].median()), display=False)
    glue(f"min_cos_{varied}", float(m0[("mean_abs_cos", varied)].min()), display=False)
    glue(f"med_jac_{varied}", float(m0[("mean_jaccard", varied)].median()), display=False)
    glue(f"max_cv_{varied}", float(m0[("eigenvalue_cv", varied)].max()), display=False)
lowest = m0[("mean_abs_cos", "seed")].idxmin()
glue("least_stable", str(lowest), display=False)
glue("least_stable_cos", float(m0.loc[lowest, ("mean_abs_cos", "seed")]), display=False)
glue("most_stable", str(m0[("mean_abs_cos", "seed")].idxmax()), display=False)
glue("most_stable_cos", float(m0[("mean_abs_cos", "seed")].max()), display=False)
medians = stability.groupby(["varied", "module_name"])["mean_abs_cos"].median()
glue("med_cos_seed_12", f"{medians[('seed', '1')]:.2f} and {medians[('seed', '2')]:.2f}", display=False)
glue("med_cos_split_12", f"{medians[('split', '1')]:.2f} and {medians[('split', '2')]:.2f}", display=False)
glue("med_cos_seed_last", float(medians[("seed", "last")]), display=False)
glue("med_cos_split_last", float(medians[("split", "last")]), display=False)
glue("split_acc_min", min(last_val_accuracy(r) for r in split_runs), display=False)
glue("split_acc_max", max(last_val_accuracy(r) for r in split_runs), display=False)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
for ax, value, title in ((axes[0], "mean_abs_cos", "mean |cos| of module vectors"),
                         (axes[1], "mean_jaccard", "mean Jaccard of top genes per pole")):  # fmt: skip
    grid = stability.pivot_table(index="output", columns=["varied", "module_name"], values=value)
    grid = grid.reindex(index=classes, columns=[(v, m) for v in ("seed", "split") for m in MODULES])
    grid.columns = [f"{v}s: module {m}" for v, m in grid.columns]
    sns.heatmap(grid, annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax, cbar=False)
    ax.set(title=title, xlabel="", ylabel="")
    ax.tick_params(axis="x", rotation=45)
fig.suptitle(f"Cell typing: agreement across {len(SEEDS)} retrainings (higher = more stable)")
plt.show()

# %% [markdown]
# For scale: two random directions in {glue:text}`n_genes:,d` dimensions have an expected $\lvert\cos\rvert$ of
# {glue:text}`random_cos:.3f`.
#
# **Module 0 is stable.** The median over cell types of module 0's mean $\lvert\cos\rvert$ is
# **{glue:text}`med_cos_seed:.2f`** across seeds (lowest {glue:text}`least_stable`, {glue:text}`least_stable_cos:.2f`;
# highest {glue:text}`most_stable`, {glue:text}`most_stable_cos:.2f`) and **{glue:text}`med_cos_split:.2f`**
# across splits (lowest {glue:text}`min_cos_split:.2f`). Its top-gene lists agree less than the vectors do (median
# Jaccard {glue:text}`med_jac_seed:.2f` across seeds, {glue:text}`med_jac_split:.2f` across splits):
# $\lvert\cos\rvert$ is dominated by the large loadings, while the edge of a top-{glue:text}`n_top:d` list is
# decided among many similar small ones, so the first genes of a list can be trusted more than its last. The
# leading eigenvalue varies by up to {glue:text}`max_cv_seed:.0%` of its mean across seeds and
# {glue:text}`max_cv_split:.0%` across splits. Validation accuracies of the split runs range from
# {glue:text}`split_acc_min:.1%` to {glue:text}`split_acc_max:.1%`.
#
# **Modules 1 and 2 are not.** Across seeds their median $\lvert\cos\rvert$ is only {glue:text}`med_cos_seed_12`,
# although across splits with the same seed it is {glue:text}`med_cos_split_12`: these modules are set mainly by
# the random initialisation, not by the data, and their gene lists should not be read as programs. The module
# with the most negative eigenvalue ("last") is again reproducible ({glue:text}`med_cos_seed_last:.2f` across
# seeds, {glue:text}`med_cos_split_last:.2f` across splits); section 4 shows why: together with module 0 it
# carries almost all of $\mathbf{Q}_a$.
#
# ### What weight decay does to stability
#
# The same seed comparison with weight decay 0.035 (0.1×), 0.35 (the post) and 3.5 (10×), with
# {glue:text}`n_wd_seeds:d` seeds each (seeds 42, 1, 2; the seed-42 fits are the tuning fits of section 1).

# %%
# the post's weight decay reuses the seed runs above; the other two values reuse the tuning fits of section 1
wd_runs = {
    wd: seed_modules[:N_WD_SEEDS] if wd == WD_CELL_TYPES
    else [decompose(bilinear_by_wd[wd])] + [decompose(fit_cell_types(wd, seed=s)) for s in SEEDS[1:N_WD_SEEDS]]
    for wd in WD_GRID
}  # fmt: skip
wd_stability = pd.concat(
    [bv.module_stability(runs, module=0, n_genes=n_top).assign(weight_decay=wd) for wd, runs in wd_runs.items()],
    ignore_index=True,
)
wd_summary = wd_stability.groupby("weight_decay")[["mean_abs_cos", "mean_jaccard", "eigenvalue_cv"]].median()
wd_summary["validation accuracy (seed 42)"] = [last_val_accuracy(bilinear_by_wd[wd]) for wd in wd_summary.index]
wd_summary["top-1 energy (median)"] = [spectrum_energy(runs[0])["top_1"].median() for runs in wd_runs.values()]
wd_summary.round(3)

# %% tags=["remove-input"]
wd_stability.to_csv(RESULTS / "trust_stability_weight_decay.csv", index=False)
glue("n_wd_seeds", N_WD_SEEDS, display=False)
for wd, tag in zip(WD_GRID, ("low", "post", "high")):
    glue(f"wd_cos_{tag}", float(wd_summary.loc[wd, "mean_abs_cos"]), display=False)
    glue(f"wd_jac_{tag}", float(wd_summary.loc[wd, "mean_jaccard"]), display=False)
    glue(f"wd_acc_{tag}", float(wd_summary.loc[wd, "validation accuracy (seed 42)"]), display=False)
acc_wd = wd_summary["validation accuracy (seed 42)"]
most_stable_wd, most_accurate_wd = float(wd_summary["mean_abs_cos"].idxmax()), float(acc_wd.idxmax())
glue(
    "wd_sentence",
    (f"The most reproducible module 0 comes with weight decay {most_stable_wd:g}, which also gives the most "
     "accurate model"
     if most_stable_wd == most_accurate_wd
     else f"The most reproducible module 0 comes with weight decay {most_stable_wd:g} (validation accuracy "
     f"{acc_wd[most_stable_wd]:.1%}), the most accurate model with {most_accurate_wd:g} "
     f"({acc_wd[most_accurate_wd]:.1%})"),
    display=False,
)  # fmt: skip

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 3.5), constrained_layout=True)
wd_grid = wd_stability.pivot(index="output", columns="weight_decay", values="mean_abs_cos").reindex(classes)
wd_grid.columns = [f"wd {wd:g}" for wd in wd_grid.columns]
sns.heatmap(wd_grid.T, annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax, cbar=False)
ax.set(title=f"Module 0: mean |cos| across {N_WD_SEEDS} seeds", xlabel="", ylabel="")
ax.tick_params(axis="x", rotation=40)
plt.show()

# %% [markdown]
# Median module-0 $\lvert\cos\rvert$ across seeds is {glue:text}`wd_cos_low:.2f` at weight decay 0.035,
# {glue:text}`wd_cos_post:.2f` at the post's 0.35 and {glue:text}`wd_cos_high:.2f` at 3.5 (top-gene Jaccard
# {glue:text}`wd_jac_low:.2f`, {glue:text}`wd_jac_post:.2f`, {glue:text}`wd_jac_high:.2f`), with validation
# accuracies {glue:text}`wd_acc_low:.1%`, {glue:text}`wd_acc_post:.1%` and {glue:text}`wd_acc_high:.1%`.
# {glue:text}`wd_sentence`. Only three seeds per setting are compared, so differences of a few hundredths in the
# median are within run-to-run noise (compare the spread across cell types in the heatmap). The table also shows
# weight decay's effect on the spectrum (share of $\lVert \mathbf{Q}_a \rVert_F^2$ in the top eigenvalue, see
# section 4).
#
# ### Stability of the frequency modules
#
# The first {glue:text}`n_freq_runs:d` of the same seeds and of the same splits for the frequency regressor (100
# epochs each, as the post; its validation error is still falling until late in training, see the curve in the
# dropdown of section 1, so no shortcut is taken), that is {glue:text}`n_freq_pairs:d` pair(s) of runs per
# comparison and frequency. Fewer runs than for the cell types keep the book's build time down; the finding
# below, agreement across seeds at the level of chance for every frequency, does not depend on the number of runs
# (more runs only add pairs to the same average).

# %%
freq_seed_runs = [bilinear_freq] + [fit_frequencies(seed=s) for s in SEEDS[1:N_FREQ_RUNS]]
freq_split_runs = [bilinear_freq] + [fit_frequencies(split=splits[s]) for s in SPLIT_SEEDS[1:N_FREQ_RUNS]]
freq_modules = decompose(bilinear_freq)
freq_stability = pd.concat(
    [
        bv.module_stability([freq_modules] + [decompose(r) for r in runs[1:]], module=0, n_genes=n_top).assign(
            varied=varied
        )
        for varied, runs in (("seed", freq_seed_runs), ("split", freq_split_runs))
    ],
    ignore_index=True,
)
freq_m0 = freq_stability.pivot(index="output", columns="varied")
freq_m0[["mean_abs_cos", "mean_jaccard", "eigenvalue_mean", "eigenvalue_cv"]].round(3)

# %% tags=["remove-input"]
freq_stability.to_csv(RESULTS / "trust_stability_frequencies.csv", index=False)
glue("n_freq_runs", N_FREQ_RUNS, display=False)
glue("n_freq_pairs", N_FREQ_RUNS * (N_FREQ_RUNS - 1) // 2, display=False)
glue("freq_med_cos_seed", float(freq_m0[("mean_abs_cos", "seed")].median()), display=False)
glue("freq_med_cos_split", float(freq_m0[("mean_abs_cos", "split")].median()), display=False)
glue("freq_med_jac_seed", float(freq_m0[("mean_jaccard", "seed")].median()), display=False)
glue("freq_med_jac_split", float(freq_m0[("mean_jaccard", "split")].median()), display=False)
freq_seed_ratio = float(freq_m0[("mean_abs_cos", "seed")].median() / bv.random_abs_cosine(adata.n_vars))
glue(
    "freq_stability_sentence",
    f"Across seeds, module 0 of a frequency is no closer to its counterpart than {freq_seed_ratio:.1f} times "
    "the chance level: at these settings, on these data, the frequency modules are not reproducible, and gene lists "
    "read from module 0 of a frequency (as in the frequency chapter) describe one training run rather than the data."
    if freq_seed_ratio < 3
    else f"Across seeds module 0 agrees {freq_seed_ratio:.0f} times better than chance.",
    display=False,
)

# %% [markdown]
# For the frequencies the median module-0 $\lvert\cos\rvert$ is **{glue:text}`freq_med_cos_seed:.2f`** across
# seeds and {glue:text}`freq_med_cos_split:.2f` across splits with the same seed (top-gene Jaccard
# {glue:text}`freq_med_jac_seed:.2f` and {glue:text}`freq_med_jac_split:.2f`), against
# {glue:text}`random_cos:.3f` for random directions. {glue:text}`freq_stability_sentence` The seed-42 model
# predicts well (test $R^2$ {glue:text}`r2_bil:.2f`): good predictions do not imply reproducible modules. Section
# 4 shows why.
#
# ## 4. Sparsity of the spectrum
#
# The post reads module 0 and says "the first eigenvalue dominates". How much of each interaction matrix does the
# top of the spectrum carry? Since $\mathbf{Q}_a$ is symmetric, $\lVert \mathbf{Q}_a \rVert_F^2 = \sum_k
# \lambda_k^2$, and the share of the $k$ largest-magnitude eigenvalues is
# $\sum_{i \le k} \lambda_{(i)}^2 / \sum_i \lambda_i^2$ (exact: every other eigenvalue of $\mathbf{Q}_a$ is zero).

# %%
energy = pd.concat(
    {"cell typing": spectrum_energy(modules), "frequencies": spectrum_energy(freq_modules)},
    names=["task", "output"],
)
energy.round(3)

# %% tags=["remove-input"]
energy.to_csv(RESULTS / "trust_spectrum_energy.csv")
cell_energy = energy.loc["cell typing"]
freq_energy = energy.loc["frequencies"]
glue("top1_min", float(cell_energy["top_1"].min()), display=False)
glue("top1_max", float(cell_energy["top_1"].max()), display=False)
glue("top3_min", float(cell_energy["top_3"].min()), display=False)
glue("top10_rest", float(1 - cell_energy["top_10"].min()), display=False)
glue("freq_top1_min", float(freq_energy["top_1"].min()), display=False)
glue("freq_top1_max", float(freq_energy["top_1"].max()), display=False)
glue("freq_top10_max", float(freq_energy["top_10"].max()), display=False)
# module 0 (largest positive) against the most negative eigenvalue: share of ‖Q‖² and their ratio
pair = pd.DataFrame(
    {
        "module 0 share": [modules.values(o)[0] ** 2 / (modules.values(o) ** 2).sum() for o in classes],
        "last module share": [modules.values(o)[-1] ** 2 / (modules.values(o) ** 2).sum() for o in classes],
        "|λ_last| / λ_0": [-modules.values(o)[-1] / modules.values(o)[0] for o in classes],
    },
    index=pd.Index(classes, name="output"),
)
glue("pair_share_min", float((pair["module 0 share"] + pair["last module share"]).min()), display=False)
glue("ratio_min", float(pair["|λ_last| / λ_0"].min()), display=False)
glue("ratio_max", float(pair["|λ_last| / λ_0"].max()), display=False)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(8, 3.5), constrained_layout=True)
energy_long = energy.reset_index().melt(id_vars=["task", "output"], var_name="k", value_name="share")
energy_long["k"] = energy_long["k"].str.replace("top_", "top ")
sns.barplot(energy_long, x="output", y="share", hue="k", ax=ax)
ax.set(ylim=(0, 1), xlabel="", ylabel="share of ‖Q‖²_F", title="Spectrum concentration per output")
ax.tick_params(axis="x", rotation=40)
plt.show()

# %% [markdown]
# **Cell types: two modules carry the matrix.** The largest-magnitude eigenvalue carries between
# {glue:text}`top1_min:.0%` and {glue:text}`top1_max:.0%` of $\lVert \mathbf{Q}_a \rVert_F^2$, the top 3 at least
# {glue:text}`top3_min:.0%`, and the top 10 leave out at most a fraction {glue:text}`top10_rest:.1e` of it. The two dominant eigenvalues are
# module 0 and the most negative one, of nearly equal size ($\lvert\lambda_\text{last}\rvert / \lambda_0$ between
# {glue:text}`ratio_min:.2f` and {glue:text}`ratio_max:.2f`; together at least {glue:text}`pair_share_min:.0%` of
# the norm). That is the spectrum of a single symmetrised product $\tfrac12(\mathbf{w}\mathbf{v}^\top +
# \mathbf{v}\mathbf{w}^\top)$, whose two non-zero eigenvalues have opposite signs: each class logit behaves like
# the product of two gene-program scores $(\mathbf{w}^\top\mathbf{x})(\mathbf{v}^\top\mathbf{x})$, and module 0
# and the last module are their sum and difference. It also matches section 3: the two stable modules are almost
# the whole matrix, and modules 1 and 2 sit in the small remainder, where the initialisation decides. "The first
# eigenvalue dominates" therefore holds only together with its negative partner, which the post does not read.
#
# **Frequencies: no module dominates.** The top eigenvalue carries only {glue:text}`freq_top1_min:.0%` to
# {glue:text}`freq_top1_max:.0%` and the top 10 at most {glue:text}`freq_top10_max:.0%` of each frequency's
# $\lVert \mathbf{Q}_a \rVert_F^2$: the spectrum is flat, so which of many comparable directions comes out on top
# is decided by the run rather than by the data, which is what section 3 found. Runs that share the seed agree
# better than runs that do not, which points at the initialisation; a plausible reason is the weak weight decay
# ($10^{-4}$ against 0.35 for the cell types), which does little to remove directions the data do not need.
#
# ## Summary
#
# - **Predictive cost** (test cells): bilinear MLP {glue:text}`acc_bil:.1%`, ReLU MLP {glue:text}`acc_relu:.1%`,
#   logistic regression {glue:text}`acc_logit:.1%` accuracy (bilinear with weight decay tuned on validation:
#   {glue:text}`acc_biltuned:.1%`). Frequencies: mean test $R^2$ {glue:text}`r2_bil:.2f` (bilinear) against
#   {glue:text}`r2_ridge:.2f` (ridge).
# - **Markers**: on the matching pole of module 0, {glue:text}`ov_min:d`–{glue:text}`ov_max:d` of
#   {glue:text}`n_top:d` genes are Wilcoxon top markers of the class (Jaccard {glue:text}`jac_min:.2f`–
#   {glue:text}`jac_max:.2f`; more than chance for {glue:text}`n_significant:d` of {glue:text}`n_classes:d` types).
# - **Stability**: median module-0 $\lvert\cos\rvert$ {glue:text}`med_cos_seed:.2f` across seeds and
#   {glue:text}`med_cos_split:.2f` across splits for the cell types, {glue:text}`freq_med_cos_seed:.2f` and
#   {glue:text}`freq_med_cos_split:.2f` for the frequencies (chance: {glue:text}`random_cos:.3f`); modules 1 and
#   2 of the cell types and module 0 of the frequencies are not reproducible across seeds. Weight decay
#   0.035 / 0.35 / 3.5: {glue:text}`wd_cos_low:.2f` /
#   {glue:text}`wd_cos_post:.2f` / {glue:text}`wd_cos_high:.2f`.
# - **Spectrum**: for the cell types module 0 and its negative partner carry at least
#   {glue:text}`pair_share_min:.0%` of $\lVert \mathbf{Q}_a \rVert_F^2$; for the frequencies the top eigenvalue
#   carries at most {glue:text}`freq_top1_max:.0%`.
#
# All of this is on the offline copy with 2,000 genes; with the post's 10,000 HVGs the linear baselines have more
# features too and top-1 % lists have 100 genes, so the numbers can differ.
