"""Helpers of the trust chapter (05): comparison sentences and figures of baselines, markers and stability."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from bookkit import value_range


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


def _legend_below(ax, ncols: int, y: float) -> None:
    """The axes' legend in ``ncols`` columns, centred below it at height ``y`` (axes units)."""
    ax.legend(
        fontsize=8,
        ncols=ncols,
        loc="upper center",
        bbox_to_anchor=(0.5, y),
        frameon=False,
    )


def test_scores_figure(cell_scores: pd.DataFrame, freq_scores: pd.DataFrame):
    """Test scores of the cell-typing models (accuracy, macro-F1, recall per class) and R² per frequency."""
    import seaborn as sns

    fig, axes = plt.subplots(
        1, 2, figsize=(12, 4.4), width_ratios=[3, 1], constrained_layout=True
    )
    cell_long = cell_scores.rename(
        index=lambda m: m.replace("recall ", "")
    ).reset_index(names="metric")
    cell_long = cell_long.melt(id_vars="metric", var_name="model", value_name="value")
    sns.barplot(cell_long, x="metric", y="value", hue="model", ax=axes[0])
    axes[0].set(
        ylim=(0, 1),
        xlabel="",
        ylabel="test score",
        title="Cell typing: accuracy, macro-F1, recall per class",
    )
    axes[0].tick_params(axis="x", rotation=40)
    _legend_below(axes[0], ncols=4, y=-0.38)
    r2 = freq_scores.loc[freq_scores.index.str.startswith("r2 ")]
    r2_long = r2.rename(
        index=lambda m: m.replace("r2 frequency ", "freq ")
    ).reset_index(names="output")
    r2_long = r2_long.melt(id_vars="output", var_name="model", value_name="R²")
    sns.barplot(
        r2_long,
        x="output",
        y="R²",
        hue="model",
        ax=axes[1],
        palette=["tab:blue", "tab:red"],
    )
    axes[1].axhline(0, color="black", lw=0.6)
    axes[1].set(xlabel="", title="Frequencies: test R²")
    _legend_below(axes[1], ncols=2, y=-0.18)
    fig.suptitle("Held-out test cells")
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
    fig, ax = plt.subplots(figsize=(5.5, 5), constrained_layout=True)
    sns.heatmap(
        jac,
        annot=annot,
        fmt="",
        cmap="Greens",
        vmin=0,
        ax=ax,
        cbar_kws={"label": "Jaccard"},
        annot_kws={"fontsize": 8},
    )
    ax.set(
        xlabel="pole of module 0",
        ylabel="",
        title=f"Module 0 vs Wilcoxon top-{n_top} markers",
    )
    return fig
