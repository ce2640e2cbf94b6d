"""Helpers of the trust chapter (05): sentences, display tables and figures of baselines, markers and stability."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from bookkit import figure_markdown, join_and, value_range

#: Display names of the models, by the column names of the chapter's score tables (and its CSV).
CELL_MODELS = {
    "bilinear MLP": "bilinear MLP",
    "bilinear MLP (wd tuned)": "bilinear MLP, weight decay tuned",
    "ReLU MLP": "ReLU MLP",
    "linear": "logistic regression",
}
FREQ_MODELS = {"bilinear MLP": "bilinear MLP", "linear": "ridge regression"}
#: Display names of the columns of :func:`bilinear_core.stability.stability_table`.
STABILITY_COLUMNS = {
    "mean_abs_cos": "mean |cos|",
    "mean_jaccard": "mean Jaccard",
    "eigenvalue_mean": "eigenvalue mean",
    "eigenvalue_cv": "eigenvalue CV",
}
#: What differs between the runs compared, by the ``varied`` labels of the stability tables.
VARIED = {"seed": "seeds", "split": "splits"}


def single_threaded_pools() -> None:
    """Limit the BLAS and OpenMP thread pools of every library loaded so far to one thread (threadpoolctl).

    The chapter's models are small: on a busy machine multi-threaded pools slow each fit down several-fold.
    Only libraries already imported are limited, so call it after the imports.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def ranking_sentence(accuracy: pd.Series, names: dict | None = None) -> str:
    """``"A (93.1%) > B (92.4%) > …"``: models by accuracy, highest first (``names`` renames models)."""
    names = names or {}
    return " > ".join(
        f"{names.get(m, m)} ({v:.1%})"
        for m, v in accuracy.sort_values(ascending=False).items()
    )


def comparison_sentences(
    gap: float, baseline: str, only_model: int, only_baseline: int, p: float
) -> dict:
    """The test-set comparison of a model with its best baseline, from :func:`bilinear_core.baselines.mcnemar`.

    ``gap`` is the model's accuracy minus the baseline's; ``only_model`` and ``only_baseline`` count the
    discordant cells and ``p`` is McNemar's exact p. Returns ``{"gap": sentence, "cost": phrase}``, the phrase
    completing "the predictive power the post says is traded away is …".
    """
    chance = p > 0.05
    gap_sentence = (
        f"The bilinear MLP is {100 * abs(gap):.1f} percentage points {'above' if gap >= 0 else 'below'} the best "
        f"baseline ({baseline}): of the test cells on which the two disagree, the bilinear model alone is right on "
        f"{only_model} and the baseline alone on {only_baseline} (exact McNemar p = {p:.2g}; "
        + (
            "a difference this size is compatible with chance on a test set of this size)."
            if chance
            else "unlikely to be chance)."
        )
    )
    if gap >= 0:
        cost = "not paid at all on these test cells"
    else:
        cost = f"{100 * abs(gap):.1f} percentage points here, small" + (
            " and within chance on this test set"
            if chance
            else " but more than chance on this test set"
        )
    return {"gap": gap_sentence, "cost": cost}


def gap_phrase(gap: float, baseline: str, p: float) -> str:
    """``"1.2 percentage points less accurate than logistic regression, a difference within chance"``.

    ``gap`` is the model's accuracy minus the baseline's, ``p`` McNemar's exact p of the difference.
    """
    side = "more" if gap >= 0 else "less"
    chance = "within chance" if p > 0.05 else "more than chance"
    return f"{100 * abs(gap):.1f} percentage points {side} accurate than {baseline}, a difference {chance}"


def recall_sentences(
    scores: pd.DataFrame,
    model: str = "bilinear MLP",
    baseline: str = "linear",
    names: dict | None = None,
) -> dict:
    """Sentences on per-class recall from a table with rows ``recall <class>`` and one column per model.

    ``"worst"``: the class ``model`` recalls worst, against ``baseline``, and the largest per-class difference
    between the two; ``"lowest"``: the class with the lowest recall for every model (or each model's).
    """
    names = names or {}
    recalls = scores.loc[scores.index.str.startswith("recall ")].rename(
        index=lambda r: r.removeprefix("recall ")
    )
    worst = recalls[model].idxmin()
    gaps = (recalls[model] - recalls[baseline]).abs()
    largest = gaps.idxmax()
    worst_sentence = (
        f"The class the {model} (post settings) recalls worst is {worst}: {recalls.loc[worst, model]:.0%} against "
        f"{recalls.loc[worst, baseline]:.0%} for {names.get(baseline, baseline)}; "
        + (
            "this is the largest per-class difference between the two models"
            if largest == worst
            else f"the largest per-class difference between the two models is that of {largest} "
            f"({100 * gaps.max():.0f} percentage points)"
        )
    )
    lowest = recalls.idxmin()
    lowest_sentence = (
        f"The lowest recall, for every model, is that of {lowest.iloc[0]}"
        if lowest.nunique() == 1
        else "The lowest recalls are "
        + ", ".join(f"{c} ({m})" for m, c in lowest.items())
    )
    return {"worst": worst_sentence, "lowest": lowest_sentence}


def r2_comparison(
    scores: pd.DataFrame,
    output_names,
    model: str = "bilinear MLP",
    baseline: str = "linear",
) -> str:
    """Which model has the higher test R² per output, from rows ``r2 <output>`` and one column per model."""
    rows = [f"r2 {o}" for o in output_names]
    n_better = int((scores.loc[rows, baseline] > scores.loc[rows, model]).sum())
    if n_better:
        return f"Ridge regression has the higher test R² for {n_better} of the {len(rows)} frequencies"
    return "The bilinear MLP has the higher test R² for every frequency"


def marker_sentences(best: pd.DataFrame, n_top: int, n_genes: int) -> dict:
    """Sentences on module 0 against Wilcoxon markers, from the best pole per output.

    ``best`` is indexed by output with columns ``pole``, ``overlap``, ``jaccard`` and ``adjusted_p`` (one
    row of :func:`bilinear_core.stability.marker_overlap` per output, BH-adjusted). Returns ``"pole"``
    (chance level, which pole matches), ``"overlap"`` (range, significance, weakest two) and ``"summary"``.
    """
    poles = best["pole"].value_counts()
    negative = best.index[best["pole"] == "negative"]
    chance = (
        f"By chance two lists of {n_top} genes out of {n_genes:,} share {n_top * n_top / n_genes:.1f} genes on "
        "average. "
    )
    pole = chance + (
        "For every cell type the matching pole is the positive one"
        if poles.get("positive", 0) == len(best)
        else f"The matching pole is the positive one for {poles.get('positive', 0)} cell types and the negative one "
        f"for {poles.get('negative', 0)} ({', '.join(negative)})"
    )
    significant = best["adjusted_p"] <= 0.05
    not_significant = ", ".join(best.index[~significant]) or "none"
    jac = best["jaccard"]
    overlap = (
        f"On the matching pole the overlap ranges from {value_range(best['overlap'], 'd')} shared genes "
        f"({value_range(best['overlap'] / n_top, '.0%')} of the list), a Jaccard index from {jac.min():.2f} "
        f"({jac.idxmin()}) to {jac.max():.2f} ({jac.idxmax()}); {int(significant.sum())} of {len(best)} cell types "
        f"overlap more than chance (adjusted p ≤ 0.05; not significant: {not_significant}). The two weakest are "
        f"{' and '.join(jac.nsmallest(2).index)}."
    )
    summary = (
        f"{best['overlap'].min()}–{best['overlap'].max()} of {n_top} genes are Wilcoxon top markers of the class "
        f"(Jaccard {jac.min():.2f}–{jac.max():.2f}; more than chance for {int(significant.sum())} of {len(best)} "
        "types)"
    )
    return {"pole": pole, "overlap": overlap, "summary": summary}


def stability_sentences(
    stability: pd.DataFrame, split_accuracies, outputs=None
) -> dict:
    """Sentences on module stability across seeds and splits, from :func:`bilinear_core.stability.stability_table`.

    ``stability`` has columns ``varied`` (``"seed"``/``"split"``) and ``module_name`` (``"0"``, ``"1"``,
    ``"2"``, ``"last"``); ``split_accuracies`` are the validation accuracies of the split runs; ``outputs``
    orders the outputs (ties go to the first). Returns ``"spread"``, ``"jaccard"``, ``"eigenvalue"``,
    ``"modules_12"`` and ``"last"``.
    """
    m0 = stability[stability["module_name"] == "0"].pivot(
        index="output", columns="varied"
    )
    m0 = m0 if outputs is None else m0.reindex(list(outputs))
    cos, medians = (
        m0["mean_abs_cos"],
        stability.groupby(["varied", "module_name"])["mean_abs_cos"].median(),
    )
    jac, cv = m0["mean_jaccard"].median(), m0["eigenvalue_cv"].max()
    return {
        "spread": f"lowest across seeds {cos['seed'].idxmin()} ({cos['seed'].min():.2f}), highest "
        f"{cos['seed'].idxmax()} ({cos['seed'].max():.2f}); lowest across splits {cos['split'].min():.2f}",
        "jaccard": f"{jac['seed']:.2f} across seeds, {jac['split']:.2f} across splits",
        "eigenvalue": f"The leading eigenvalue varies by up to {cv['seed']:.0%} of its mean across seeds and "
        f"{cv['split']:.0%} across splits. Validation accuracies of the split runs range from "
        f"{value_range(split_accuracies, '.1%')}.",
        "modules_12": f"Across seeds their median |cos| is only {medians[('seed', '1')]:.2f} and "
        f"{medians[('seed', '2')]:.2f}, although across splits with the same seed it is "
        f"{medians[('split', '1')]:.2f} and {medians[('split', '2')]:.2f}",
        "last": f"{medians[('seed', 'last')]:.2f} across seeds, {medians[('split', 'last')]:.2f} across splits",
    }


def weight_decay_sentence(summary: pd.DataFrame, accuracy: str) -> str:
    """Which weight decay gives the most reproducible module 0 and which the most accurate model.

    ``summary`` is indexed by weight decay with columns ``mean_abs_cos`` and ``accuracy``.
    """
    acc = summary[accuracy]
    stable, accurate = float(summary["mean_abs_cos"].idxmax()), float(acc.idxmax())
    if stable == accurate:
        return (
            f"The most reproducible module 0 comes with weight decay {stable:g}, which also gives the most accurate "
            "model"
        )
    return (
        f"The most reproducible module 0 comes with weight decay {stable:g} (validation accuracy {acc[stable]:.1%}), "
        f"the most accurate model with {accurate:g} ({acc[accurate]:.1%})"
    )


def frequency_stability_sentence(median_cos: float, chance: float) -> str:
    """Whether module 0 of a frequency is reproducible across seeds: its median ``|cos|`` against ``chance``."""
    ratio = median_cos / chance
    if ratio < 3:
        return (
            f"Across seeds, module 0 of a frequency is no closer to its counterpart than {ratio:.1f} times the chance "
            "level: at these settings, on these data, the frequency modules are not reproducible, and gene lists "
            "read from module 0 of a frequency (as in the frequency chapter) describe one training run rather than "
            "the data."
        )
    return f"Across seeds module 0 agrees {ratio:.0f} times better than chance."


def tuning_table(tuning: pd.DataFrame) -> pd.DataFrame:
    """The validation tuning table for display: one row per model and value, the chosen one marked ✓.

    ``tuning`` has index levels ``model`` and ``row`` and columns ``value``, ``validation accuracy`` and
    ``selected`` (bool), as the chapter stacks :func:`bilinear_core.baselines.tune_on_validation` tables.
    Returns a table with a plain 0, 1, … index (show it with ``index=False``).
    """
    shown = tuning.droplevel("row").reset_index()
    shown = shown.rename(columns={"value": "value tried"})
    shown["chosen"] = shown.pop("selected").map({True: "✓", False: ""})
    return shown


def _metric(name: str) -> str:
    """A score's display name: ``macro_f1`` → ``macro-F1``, ``r2 …`` → ``R² …``, ``mae …`` → ``MAE …``."""
    head, _, rest = name.partition(" ")
    head = {"macro_f1": "macro-F1", "r2": "R²", "mae": "MAE"}.get(head, head)
    return f"{head} {rest}".strip()


def cell_score_table(cell_scores: pd.DataFrame) -> pd.DataFrame:
    """Test scores of the cell-typing models for display: readable metric and model names, same numbers."""
    return cell_scores.rename(index=_metric, columns=CELL_MODELS).rename_axis(
        index=None
    )


def frequency_score_table(freq_scores: pd.DataFrame, output_names) -> pd.DataFrame:
    """Test R² and MAE of the frequency models, one row per frequency and one for the mean over frequencies.

    ``freq_scores`` has rows ``r2``, ``mae`` (means) and ``r2 <output>``, ``mae <output>`` and one column per
    model (:func:`bilinear_core.baselines.regression_scores`); columns here are (score, model).
    """
    rows = {name: (f"r2 {name}", f"mae {name}") for name in output_names}
    rows["mean over frequencies"] = ("r2", "mae")
    shown = pd.DataFrame(
        {
            (score, FREQ_MODELS.get(model, model)): [
                freq_scores.loc[pair[i], model] for pair in rows.values()
            ]
            for i, score in enumerate(("R²", "MAE"))
            for model in freq_scores.columns
        },
        index=list(rows),
    )
    return shown


def marker_table(best: pd.DataFrame) -> pd.DataFrame:
    """The pole of module 0 that matches each class's markers, for display (columns renamed, same numbers)."""
    shown = best[["pole", "overlap", "jaccard", "adjusted_p", "shared"]]
    return shown.rename_axis(index=None).rename(
        columns={
            "overlap": "shared genes (n)",
            "jaccard": "Jaccard",
            "adjusted_p": "adjusted p",
            "shared": "shared genes",
        }
    )


def stability_long(
    stability: pd.DataFrame, outputs=None, module: str | None = "0"
) -> pd.DataFrame:
    """One module's agreement across runs for display: a row per output and kind of run, four columns.

    ``stability`` is a :func:`bilinear_core.stability.stability_table` with a ``varied`` column (and a
    ``module_name`` column, filtered on ``module`` when given); ``outputs`` orders the rows.
    """
    if module is not None and "module_name" in stability:
        stability = stability[stability["module_name"] == module]
    shown = stability.set_index(["output", "varied"])[list(STABILITY_COLUMNS)]
    if outputs is not None:
        order = pd.MultiIndex.from_product([list(outputs), list(VARIED)])
        shown = shown.reindex(order)
    shown = shown.rename(index=VARIED, level=1).rename(columns=STABILITY_COLUMNS)
    return shown.rename_axis(index=["output", "runs differ in"])


def weight_decay_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The per-weight-decay medians for display: the weight decay as written (0.035, not 0.034999…)."""
    shown = summary.rename(columns=STABILITY_COLUMNS)
    shown = shown.rename(
        columns=lambda c: c if c.startswith(("validation", "top")) else f"{c} (median)"
    )
    shown.index = pd.Index([f"{wd:g}" for wd in summary.index], name="weight decay")
    return shown


def energy_table(energy: pd.DataFrame) -> pd.DataFrame:
    """Spectrum shares for display: columns ``top_k`` named by what they hold."""
    names = {c: f"top {c.removeprefix('top_')}" for c in energy.columns}
    return energy.rename(columns=names)


def _legend_above(ax, ncols: int) -> None:
    """The axes' legend in ``ncols`` columns, centred above it, without a frame."""
    ax.legend(
        ncols=ncols,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
        borderaxespad=0.2,
        columnspacing=1.2,
        handlelength=1.2,
    )


def test_scores_figure(cell_scores: pd.DataFrame, freq_scores: pd.DataFrame):
    """Test scores of the cell-typing models (accuracy, macro-F1, recall per class) above R² per frequency."""
    import seaborn as sns

    fig, axes = plt.subplots(
        2, 1, figsize=(8, 7.2), height_ratios=[1.25, 1], constrained_layout=True
    )
    cell = cell_scores.rename(index=_metric, columns=CELL_MODELS)
    cell = cell.rename(index=lambda m: m.removeprefix("recall "))
    cell_long = cell.reset_index(names="metric").melt(
        id_vars="metric", var_name="model", value_name="test score"
    )
    sns.barplot(cell_long, x="metric", y="test score", hue="model", ax=axes[0])
    axes[0].set(ylim=(0, 1), xlabel="")
    axes[0].set_title("Cell typing: accuracy, macro-F1, recall per class", pad=24)
    axes[0].tick_params(axis="x", rotation=30)
    for label in axes[0].get_xticklabels():
        label.set_ha("right")
    _legend_above(axes[0], ncols=4)
    r2 = freq_scores.loc[freq_scores.index.str.startswith("r2 ")]
    r2 = r2.rename(index=lambda m: m.removeprefix("r2 "), columns=FREQ_MODELS)
    r2_long = r2.reset_index(names="output").melt(
        id_vars="output", var_name="model", value_name="test R²"
    )
    sns.barplot(
        r2_long,
        x="output",
        y="test R²",
        hue="model",
        ax=axes[1],
        palette=["tab:blue", "tab:red"],
    )
    axes[1].axhline(0, color="black", lw=0.6)
    axes[1].set(xlabel="")
    axes[1].set_title("Frequencies: test R²", pad=24)
    _legend_above(axes[1], ncols=2)
    return fig


def marker_overlap_heatmap(overlap: pd.DataFrame, outputs, n_top: int):
    """Jaccard index of each pole of module 0 with the class's markers, annotated with count and adjusted p."""
    import seaborn as sns

    def grid(value):
        table = overlap.pivot(index="output", columns="pole", values=value)
        return table.reindex(index=list(outputs), columns=["positive", "negative"])

    jac = grid("jaccard")
    annot = jac.round(2).astype(str) + "\n(" + grid("overlap").astype(str) + ", "
    annot += grid("adjusted_p").map(lambda p: f"q={p:.0e}") + ")"
    fig, ax = plt.subplots(figsize=(5.5, 5.5), constrained_layout=True)
    sns.heatmap(
        jac,
        annot=annot,
        fmt="",
        cmap="Greens",
        vmin=0,
        ax=ax,
        cbar_kws={"label": "Jaccard index"},
        annot_kws={"fontsize": 9},
    )
    ax.set(
        xlabel="pole of module 0",
        ylabel="",
        title=f"Module 0 vs Wilcoxon top-{n_top} markers",
    )
    return fig


def stability_heatmaps(stability: pd.DataFrame, outputs, modules, n_runs: int):
    """Mean ``|cos|`` (top) and mean top-gene Jaccard (bottom) of modules across seeds and splits, per output.

    ``stability`` is a :func:`bilinear_core.stability.stability_table` with columns ``varied`` and
    ``module_name``; ``modules`` are the module names in the order shown.
    """
    import seaborn as sns

    order = [(v, m) for v in VARIED for m in modules]
    fig, axes = plt.subplots(2, 1, figsize=(8, 8), sharex=True, constrained_layout=True)
    titles = {
        "mean_abs_cos": "Mean |cos| of module vectors",
        "mean_jaccard": "Mean Jaccard index of top genes per pole",
    }
    for ax, (value, title) in zip(axes, titles.items()):
        grid = stability.pivot_table(value, "output", ["varied", "module_name"])
        grid = grid.reindex(index=list(outputs), columns=order)
        grid.columns = [f"{VARIED[v]}: module {m}" for v, m in grid.columns]
        sns.heatmap(
            grid,
            ax=ax,
            annot=True,
            fmt=".2f",
            cmap="viridis",
            vmin=0,
            vmax=1,
            cbar=False,
        )
        ax.axvline(len(modules), color="white", lw=3)
        ax.set(title=title, xlabel="", ylabel="")
    axes[1].tick_params(axis="x", rotation=35)
    for label in axes[1].get_xticklabels():
        label.set_ha("right")
    fig.suptitle(f"Agreement of {n_runs} cell-typing runs (1 = identical)")
    return fig


def weight_decay_heatmap(wd_stability: pd.DataFrame, outputs, n_runs: int):
    """Module 0's mean ``|cos|`` across seeds per output (columns) and weight decay (rows)."""
    import seaborn as sns

    grid = wd_stability.pivot_table("mean_abs_cos", "output", "weight_decay")
    grid = grid.reindex(list(outputs)).T.rename(index=lambda wd: f"weight decay {wd:g}")
    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    sns.heatmap(
        grid, ax=ax, annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, cbar=False
    )
    ax.set(title=f"Module 0: mean |cos| across {n_runs} seeds", xlabel="", ylabel="")
    ax.tick_params(axis="x", rotation=35)
    for label in ax.get_xticklabels():
        label.set_ha("right")
    return fig


def spectrum_energy_figure(energy: pd.DataFrame):
    """Share of ``‖Q_a‖²_F`` in the top 1, 3 and 10 eigenvalues, per output of both tasks."""
    import seaborn as sns

    energy_long = energy.reset_index().melt(["task", "output"], var_name="k")
    energy_long["k"] = energy_long["k"].str.replace("top_", "top ")
    fig, ax = plt.subplots(figsize=(8, 3.8), constrained_layout=True)
    sns.barplot(energy_long, x="output", y="value", hue="k", ax=ax)
    n_cell = int((energy.index.get_level_values("task") == "cell typing").sum())
    ax.axvline(n_cell - 0.5, color="grey", lw=0.8, ls="--")
    ax.set(ylim=(0, 1), xlabel="", ylabel=r"share of $\Vert Q_a \Vert_F^2$")
    ax.set_title("Spectrum concentration per output (cell types | frequencies)", pad=24)
    _legend_above(ax, ncols=3)
    ax.tick_params(axis="x", rotation=35)
    for label in ax.get_xticklabels():
        label.set_ha("right")
    return fig


def training_curve_parts(bilinear, relu, frequencies) -> list[str]:
    """The chapter's three training-curve figures as numbered dropdown figures (:func:`figure_markdown`)."""
    return [
        figure_markdown(
            bilinear,
            "fig-trust-curves-bilinear",
            "Bilinear MLP, cell typing with the post's settings: cross-entropy loss (left) and accuracy "
            "(right) per epoch on the training and validation cells.",
        ),
        figure_markdown(
            relu,
            "fig-trust-curves-relu",
            "ReLU MLP, cell typing, at the weight decay chosen on validation: loss and accuracy per epoch.",
        ),
        figure_markdown(
            frequencies,
            "fig-trust-curves-frequencies",
            "Bilinear MLP, frequency regression: Huber loss (left) and mean absolute error (right) per "
            "epoch; the validation error still falls late in training.",
        ),
    ]


#: The modules of the agreement table, in the order shown: the positive pole's three, then the negative's.
AGREEMENT_MODULES = [0, 1, 2, -1, -2, -3]


def agreement_summary(agreement: pd.DataFrame) -> pd.DataFrame:
    """Median over outputs of the split-half ``|cos|`` (mean over groups first), per task, size and module.

    ``agreement`` stacks :func:`bilinear_core.stability.ensemble_agreement` tables with a ``task`` column.
    Index ``(task, size)``, one column per module of :data:`AGREEMENT_MODULES`.
    """
    per_output = agreement.groupby(["task", "size", "module", "output"], sort=False)[
        "split_half_cos"
    ].mean()
    summary = (
        per_output.groupby(["task", "size", "module"], sort=False)
        .median()
        .unstack("module")
    )
    return summary[AGREEMENT_MODULES]


def agreement_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`agreement_summary` as shown: columns "module 0", … "module −1" (the most negative), rounded."""
    shown = summary.round(2)
    shown.columns = [f"module {m}".replace("-", "−") for m in shown.columns]
    return shown.rename_axis(index=["task", "seeds k"])


def seeds_needed(
    summary: pd.DataFrame, task: str, module: int, threshold: float
) -> int | None:
    """The smallest size ``k`` at which ``module`` reaches ``threshold`` in ``summary``, or ``None``."""
    column = summary.loc[task][module]
    reached = column.index[column >= threshold]
    return int(reached.min()) if len(reached) else None


def seeds_sentence(
    summary: pd.DataFrame, task: str, threshold: float, modules=(0, -1, 1, 2)
) -> str:
    """For one task, from how many seeds per ensemble each of ``modules`` reaches ``threshold``, as a sentence."""
    largest = int(summary.loc[task].index.max())
    groups: dict = {}
    for module in modules:
        groups.setdefault(seeds_needed(summary, task, module, threshold), []).append(
            module
        )

    def names(members):
        label = join_and([str(m).replace("-", "−") for m in members])
        return f"module {label}" if len(members) == 1 else f"modules {label}"

    if list(groups) == [None]:
        return f"For {task}, no module reaches {threshold:g} with up to {largest} seeds per ensemble"
    clauses = []
    for k in sorted(groups, key=lambda k: largest + 1 if k is None else k):
        if k is None:
            clauses.append(f"for {names(groups[k])} not with up to {largest}")
        elif k == 1:
            clauses.append(f"for {names(groups[k])} already between single fits")
        else:
            clauses.append(f"for {names(groups[k])} from {k} seeds per ensemble")
    return f"For {task}, the median split-half |cos| reaches {threshold:g} {join_and(clauses)}"


def agreement_figure(summary: pd.DataFrame, threshold: float, chance: float):
    """Median split-half ``|cos|`` against the number of seeds per half, one panel per task, a line per module."""
    tasks = list(dict.fromkeys(summary.index.get_level_values("task")))
    fig, axes = plt.subplots(
        1,
        len(tasks),
        figsize=(8, 3.4),
        sharey=True,
        constrained_layout=True,
        squeeze=False,
    )
    axes = axes.ravel()
    for ax, task in zip(axes, tasks):
        rows = summary.loc[task]
        for i, module in enumerate(rows.columns):
            style = "-" if module >= 0 else "--"
            label = f"module {module}".replace("-", "−")
            ax.plot(
                rows.index,
                rows[module],
                style,
                marker="o",
                color=f"C{i % 3}",
                label=label,
            )
        ax.axhline(threshold, color="black", lw=0.8, ls=":")
        ax.axhline(chance, color="grey", lw=0.8)
        ax.set(
            title=task,
            xlabel="seeds per ensemble k",
            xticks=list(rows.index),
            ylim=(0, 1.02),
        )
    axes[0].set_ylabel("median split-half |cos|")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=6, frameon=False, fontsize=9
    )
    return fig
