"""The book's own helpers: sentences, MyST markup, glue and result paths built from `bilinear_core` results.

Not part of the library: chapters import it (``import bookkit``) from this folder.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bilinear_core.datasets import HASH_FILTERS
from bilinear_core.datasets.genesets import POST_STAND_INS
from bilinear_core.datasets.simulate import planted_response
from bilinear_core.interpret import Modules, n_top_genes
from bilinear_core.perturbation import planted_auroc, profile_correlation
from bilinear_core.report import SIGNS, ModuleReport, enrichment_table

#: Where chapters save reusable artefacts (CSV tables): ``$BILINEAR_RESULTS_DIR`` or ``<repo>/_build/results``.
RESULTS = Path(
    os.environ.get(
        "BILINEAR_RESULTS_DIR",
        Path(__file__).resolve().parents[1] / "_build" / "results",
    )
)
RESULTS.mkdir(parents=True, exist_ok=True)


def pole_bullets(report: ModuleReport, n_genes: int = 5, n_terms: int = 3) -> str:
    """A templated Markdown interpretation built from the results, one bullet per sign."""
    lines = []
    for sign in SIGNS:
        genes = ", ".join(report.top_table(n_genes)[sign])
        terms = report.key_terms(sign, n_terms)
        enriched = "; ".join(terms) if terms else "no term passes adjusted p ≤ 0.05"
        lines.append(
            f"- **{sign.capitalize()} pole**: led by {genes}. Enriched: {enriched}."
        )
    return "\n".join(lines)


def figure_markdown(fig, alt: str = "figure", dpi: int = 100) -> str:
    """A matplotlib figure as a Markdown image with an embedded PNG (closes the figure)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def dropdown(title: str, *parts) -> str:
    """MyST ``{dropdown}`` source holding Markdown strings, figures and DataFrames, in order.

    Display it with ``IPython.display.Markdown``; the book renders Markdown outputs as MyST
    (``nb_render_markdown_format: myst`` in ``_config.yml``), so the dropdown is real.
    """
    body = []
    for part in parts:
        if isinstance(part, pd.DataFrame):
            body.append(part.to_markdown())
        elif hasattr(part, "savefig"):
            body.append(figure_markdown(part, alt=title))
        else:
            body.append(str(part))
    content = "\n\n".join(body)
    return f"::::{{dropdown}} {title}\n\n{content}\n\n::::"


def module_interpretation(
    report: ModuleReport,
    modules: Modules,
    auroc: float | None = None,
    target: str | None = None,
    n_genes: int = 5,
    n_terms: int = 3,
) -> str:
    """Markdown interpretation of one module generated from the results.

    A sentence on the module's strength (its eigenvalue against the next one of the same sign and
    the largest one of the opposite sign, and its share of ``‖Q‖²_F = Σλ²``), one on how well its
    score separates ``target`` cells (default: the output's name) from the rest when ``auroc`` is
    given, then :meth:`ModuleReport.summary`'s bullets.
    """
    values = modules.values(report.output)
    this = values[report.module]
    sign, opposite = ("positive", "negative") if this >= 0 else ("negative", "positive")
    others = np.delete(values, report.module)
    same = np.abs(others[(others >= 0) == (this >= 0)])
    other = np.abs(others[(others >= 0) != (this >= 0)])
    comparisons = []
    if same.size and same.max() > 0:
        comparisons.append(f"{abs(this) / same.max():.1f}× the next {sign} eigenvalue")
    if other.size and other.max() > 0:
        comparisons.append(
            f"{abs(this) / other.max():.2f}× the largest {opposite} one in magnitude"
        )
    share = this**2 / (values**2).sum() if (values**2).sum() > 0 else np.nan
    text = f"Module {report.module} of {report.output} has eigenvalue λ = {this:.3g}"
    text += f" ({' and '.join(comparisons)})" if comparisons else ""
    text += f" and carries {share:.0%} of ‖Q‖²."
    if auroc is not None:
        side = "high" if auroc >= 0.5 else "low"
        text += (
            f" Its score separates {target or report.output} cells from the rest with AUROC {auroc:.2f} "
            f"({target or report.output} cells score {side})."
        )
    return f"{text}\n\n{pole_bullets(report, n_genes=n_genes, n_terms=n_terms)}"


def describe_gene_ranks(
    ranks: pd.DataFrame, n_top: int, detail_outside: bool = True
) -> str:
    """A sentence saying where given genes fall, from a :func:`bilinear_core.interpret.gene_ranks` table.

    Positions are 1-based within each sign (1 = strongest loading); ``n_top`` is the length of each
    top list. ``detail_outside=False`` only counts the genes outside the top lists.
    """
    for column in ("gene", "symbol", "sign", "rank", "in_top"):
        if column not in ranks.columns:
            raise KeyError(
                f"ranks has no {column!r} column; build it with bilinear_core.interpret.gene_ranks."
            )

    def names(rows, with_position=True):
        items = [
            f"{r.symbol} ({r.sign}, position {int(r.rank) + 1})"
            if with_position
            else str(r.gene)
            for r in rows.itertuples()
        ]
        text = ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]
        return text, "is" if len(items) == 1 else "are"

    present = ranks["symbol"].notna()
    parts = []
    groups = (
        (
            ranks[present & ranks["in_top"]],
            f"in the top-{n_top} list of their sign",
            True,
        ),
        (ranks[present & ~ranks["in_top"].astype(bool)], "outside the top lists", True),
        (ranks[~present], "not among the genes of the data", False),
    )
    for rows, where, with_position in groups:
        if len(rows) and where == "outside the top lists" and not detail_outside:
            parts.append(
                f"{len(rows)} {'gene is' if len(rows) == 1 else 'genes are'} {where}"
            )
        elif len(rows):
            text, verb = names(rows, with_position)
            parts.append(f"{text} {verb} {where}")
    if not parts:
        raise ValueError("ranks is empty: pass at least one gene to gene_ranks.")
    return "; ".join(parts) + "."  # gene symbols keep their case, even first


def module_report_parts(
    report: ModuleReport,
    n_genes: int = 10,
    n_terms: int = 5,
    n_enriched: int = 15,
    caption_suffix: str = "",
) -> list:
    """The per-module material of a chapter section or :func:`dropdown`, in order (Markdown strings and tables).

    Top ``n_genes`` per sign side by side, key terms per sign, the enrichment table of each sign
    (or a line saying none passed) and the full top-gene lists. ``caption_suffix`` is appended to every
    caption (e.g. ``" (simulated data)"``).
    """
    n_genes = min(
        n_genes,
        int((report.genes["sign"] == SIGNS[0]).sum()),
        int((report.genes["sign"] == SIGNS[1]).sum()),
    )
    parts = [
        f"**Top {n_genes} genes of module {report.module}{caption_suffix}**",
        report.top_table(n_genes),
    ]
    terms = [
        f"- {sign.capitalize()}: {'; '.join(report.key_terms(sign, n_terms)) or 'none'}"
        for sign in SIGNS
    ]
    parts += [f"**Key terms{caption_suffix}** (adjusted p ≤ 0.05)", "\n".join(terms)]
    for sign in SIGNS:
        table = enrichment_table(report, sign, n_enriched)
        parts.append(
            f"**Enrichment of the {sign} pole{caption_suffix}** (top {n_enriched} by adjusted p)"
        )
        parts.append(table if len(table) else "No term passes adjusted p ≤ 0.05.")
    for sign in SIGNS:
        genes = report.genes.loc[report.genes["sign"] == sign, "gene"].to_list()
        parts.append(
            f"*All {len(genes)} {sign} genes{caption_suffix}*: {', '.join(genes)}"
        )
    return parts


def regression_interpretation(
    report: ModuleReport,
    modules: Modules,
    r: float,
    target: str | None = None,
    n_genes: int = 5,
    n_terms: int = 3,
) -> str:
    """:func:`module_interpretation` for a continuous target: adds how the module's score follows it.

    ``r`` is the Pearson correlation of the module's cell scores with ``target`` (default: the
    output's name). The poles are named by the sign of ``r``: with modules oriented so that ``r ≥ 0``
    (see :func:`bilinear_core.interpret.orient_modules`), the positive pole is the high-target side.
    Below ``|r| = 0.2`` no pole is tied to an end of the target; 0.4 and 0.7 separate "weakly",
    "moderately" and "strongly".
    """
    if not np.isfinite(r) or abs(r) > 1:
        raise ValueError(f"r must be a correlation in [-1, 1], got {r!r}.")
    name = target or report.output
    high, low = ("positive", "negative") if r >= 0 else ("negative", "positive")
    if abs(r) < 0.2:
        sentence = (
            f" Its cell scores hardly follow {name} (Pearson r = {r:.2f}), so its poles do not correspond to the "
            f"ends of {name}."
        )
    else:
        strength = (
            "strongly" if abs(r) >= 0.7 else "moderately" if abs(r) >= 0.4 else "weakly"
        )
        sentence = (
            f" Its cell scores follow {name} {strength} (Pearson r = {r:.2f}), so its {high} pole points towards "
            f"the high end of {name} and its {low} pole towards the low end."
        )
    head, _, bullets = module_interpretation(
        report, modules, n_genes=n_genes, n_terms=n_terms
    ).partition("\n\n")
    return f"{head}{sentence}\n\n{bullets}"


def data_note(adata, post_n_genes: int = 10_000) -> str:
    """A sentence on the data a chapter uses, from ``adata.uns`` as the pancreas loader and ``pp.preprocess`` write it.

    Names the file and its kind, the cells, the genes the model sees and, for the offline copy (a
    ``size_factor_key`` is recorded), how its gene universe differs from the post's ``post_n_genes`` HVGs.
    """
    for key in ("dataset", "preprocessing"):
        if key not in adata.uns:
            raise KeyError(
                f"adata.uns has no {key!r} entry; load the data with bilinear_core.datasets.pancreas "
                "and bilinear_core.pp.preprocess."
            )
    dataset, prep = adata.uns["dataset"], adata.uns["preprocessing"]
    kept_all = prep["n_genes"] == prep["n_genes_in"] - prep["n_ribosomal_dropped"]
    genes = (
        f"{prep['n_genes_in']:,} genes, of which {prep['n_ribosomal_dropped']:,} ribosomal genes are dropped and "
        + (
            "all others kept"
            if kept_all
            else f"the {prep['n_genes']:,} most variable of the rest kept"
        )
    )
    text = f"We use **{dataset['file']}**, the {dataset['kind']}: {adata.n_obs:,} cells and {genes}, so the model "
    text += f"sees **{adata.n_vars:,} genes**."
    if dataset.get("size_factor_key") is not None:
        text += (
            f" The post used the full scVelo file and {post_n_genes:,} highly variable genes; this offline copy holds "
            f"only the genes chosen by the SuperCell authors, so every gene list is drawn from a "
            f"{post_n_genes / adata.n_vars:.0f}-fold smaller gene universe than the post's (with the full file "
            f"present, the same code keeps {post_n_genes:,})."
        )
    return text


def gene_list_rule(n_genes: int, fraction: float = 0.01, min_genes: int = 50) -> str:
    """A sentence on how many genes each pole's list holds under the top-``fraction`` rule with a floor."""
    n = n_top_genes(n_genes, fraction, min_genes)
    share = int(np.ceil(fraction * n_genes))
    if n > share:
        floor = (
            f"the floor of {min_genes} applies"
            if n == min_genes
            else "the floor applies, capped at half the genes"
        )
        return (
            f"With {n_genes:,} genes, {fraction:.0%} would be only {share} genes, too few for enrichment, so {floor}: "
            f"each pole here has {n} genes."
        )
    return f"With {n_genes:,} genes each pole has {n} genes ({fraction:.0%})."


def _is_mouse_library(name: str) -> bool:
    return "mouse" in name.lower()


def libraries_sentence(stand_ins: dict[str, str] | None = None) -> str:
    """A sentence naming the libraries used: the post's own ones and the stand-ins, with their originals."""
    stand_ins = POST_STAND_INS if stand_ins is None else stand_ins
    exact = [post for post, local in stand_ins.items() if post == local]
    other = [
        f"{local} for {post}" for post, local in stand_ins.items() if post != local
    ]
    text = f"the post's {len(stand_ins)} Enrichr libraries, {len(exact)} of them exactly ({', '.join(exact)})"
    if other:
        text += f" and {len(other)} through the closest library available offline ({'; '.join(other)})"
    mouse = [local for local in stand_ins.values() if _is_mouse_library(local)]
    human = [local for local in stand_ins.values() if not _is_mouse_library(local)]
    text += "."
    if mouse and human:
        text += (
            f" {' and '.join(mouse)} are in mouse symbols; the other {len(human)} use human symbols, matched by "
            "upper-cased symbol, the usual first approximation of one-to-one orthology."
        )
    return text


def styled(table: pd.DataFrame, precision: int = 3, **format_kwargs):
    """A table for display: ``precision`` decimals, padding between columns, no index name row clutter."""
    return table.style.format(
        precision=precision, thousands=",", **format_kwargs
    ).set_table_styles(
        [{"selector": "th, td", "props": "padding: 0.15em 0.7em; text-align: right"}]
    )


def regression_dropdown(
    title: str,
    fig,
    report: ModuleReport,
    modules: Modules,
    r: float,
    best: pd.Series | None = None,
    ranks: pd.DataFrame | None = None,
    ranks_label: str = "The post's top-10 genes in our module 0",
) -> str:
    """A :func:`dropdown` on one continuous output's module: figure, generated interpretation and tables.

    ``r`` is the Pearson r of the module's scores with the target (see :func:`regression_interpretation`);
    ``best`` a row of :func:`bilinear_core.interpret.module_target_correlations` (``module``, ``r``,
    ``eigenvalue``) naming the module that tracks the target best; ``ranks`` a
    :func:`bilinear_core.interpret.gene_ranks` table of reference genes, described under ``ranks_label``.
    """
    parts = [
        fig,
        "**Overall interpretation (generated)**",
        regression_interpretation(report, modules, r=r),
    ]
    if best is not None:
        parts.append(
            f"Best-tracking module among all {modules.eigenvectors.shape[2]}: module {int(best['module'])} "
            f"(r = {best['r']:.2f}, λ = {best['eigenvalue']:.2g})."
        )
    parts += module_report_parts(report)
    if ranks is not None:
        parts.append(
            f"**{ranks_label}**: {describe_gene_ranks(ranks, n_top_genes(len(modules.var_names)))}"
        )
    return dropdown(title, *parts)


def class_dropdown(
    title: str,
    fig,
    report: ModuleReport,
    modules: Modules,
    auroc: float,
    ranks: pd.DataFrame | None = None,
    ranks_label: str = "The post's top-10 genes (both poles) in our module 0",
) -> str:
    """A :func:`dropdown` on one class's module: figure, generated interpretation and tables.

    ``auroc`` is the one-vs-rest AUROC of the module's scores for the class (see
    :func:`module_interpretation`); ``ranks`` a :func:`bilinear_core.interpret.gene_ranks` table of
    reference genes, described under ``ranks_label`` (genes outside the top lists only counted).
    """
    parts = [
        fig,
        "**Overall interpretation (generated)**",
        module_interpretation(report, modules, auroc=auroc),
    ]
    parts += module_report_parts(report)
    if ranks is not None:
        n_top = n_top_genes(len(modules.var_names))
        parts.append(
            f"**{ranks_label}**: {describe_gene_ranks(ranks, n_top, detail_outside=False)}"
        )
    return dropdown(title, *parts)


def composition_bullets(summary: pd.DataFrame) -> str:
    """One Markdown bullet per pair of the composition chapter's summary table (``composition_summary.csv``)."""
    lines = []
    for pair, row in summary.iterrows():
        lines.append(
            f"- **{pair}**: AUROC {row['AUROC bilinear']:.2f} bilinear, {row['AUROC logistic']:.2f} logistic, "
            f"{row['AUROC centroid']:.2f} nearest centroid (bilinear single-gene ceiling "
            f"{row['ceiling AUROC (bilinear)']:.2f}); top-two exact {row['top-two bilinear']:.0%}, "
            f"{row['top-two logistic']:.0%}, {row['top-two centroid']:.0%}; subspace overlap {row['overlap']:.2f} "
            f"against a null mean of {row['overlap null mean']:.2f} (p = {row['overlap p']:.3f}); additivity "
            f"R² {row['additivity R²']:.2f} (split-half {row['split-half R²']:.2f})."
        )
    return "\n".join(lines)


def largest_shifts(shifts: pd.DataFrame, conditions, n: int = 2) -> str:
    """``"A: G1 (+1.20), G2 (-0.50); B: …"``: each condition's ``n`` genes of largest mean shift in magnitude.

    ``shifts`` is a ``(conditions, genes)`` table such as :func:`bilinear_core.composition.mean_shifts`'s.
    """
    parts = []
    for condition in conditions:
        row = shifts.loc[condition]
        genes = ", ".join(
            f"{gene} ({row[gene]:+.2f})" for gene in row.abs().nlargest(n).index
        )
        parts.append(f"{condition}: {genes}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------- how much we trust (05)


def value_range(values, fmt: str) -> str:
    """``"a to b"`` for the smallest and largest of ``values``, each formatted with ``fmt``."""
    return f"{min(values):{fmt}} to {max(values):{fmt}}"


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


# ------------------------------------------------------------------------------ the perturbation chapter (04)

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


def significant(
    report: ModuleReport, cutoff: float = 0.05, n: int = 15
) -> ModuleReport:
    """``report`` with only its terms of adjusted p ≤ ``cutoff``, at most ``n`` per sign (for display)."""
    terms = (
        report.enrichment[report.enrichment["adjusted_p"] <= cutoff]
        .groupby("sign", sort=False)
        .head(n)
    )
    return ModuleReport(
        report.output, report.module, report.eigenvalue, report.genes, terms
    )


def modules_auroc_sentence(values, auroc, cells: str) -> str:
    """How well modules 0, 1, 2, … separate ``cells`` from the rest, with their eigenvalues and the most negative."""
    k = len(auroc)
    return (
        f"Modules {_and([str(m) for m in range(k)])} separate {cells} from the rest with AUROC "
        f"{_and([f'{a:.2f}' for a in auroc])}; their eigenvalues are {_and([f'{v:.3g}' for v in values[:k]])} "
        f"(the most negative one: {values[-1]:.3g})."
    )


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def peak_doses(profile: pd.DataFrame) -> pd.Series:
    """The dose at which each module's mean score peaks, dose 0 (no drug) left out: ``(modules,)``."""
    return profile["mean"].drop(index=0.0).idxmax()


def peak_sentence(profile: pd.DataFrame, drug: str) -> str:
    """The doses at which modules 0, 1, … of ``drug`` score highest on average."""
    peaks = peak_doses(profile)
    return (
        f"Here the mean score of modules {_and([str(m) for m in range(len(peaks))])} is highest at {drug} dose "
        f"{_and([f'{dose:g}' for dose in peaks])}."
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


# ----------------------------------------------------------------------- regularisation chapter
def marker_agreement(modules: Modules, markers: dict, n_genes: int) -> float:
    """Median over outputs of the Jaccard index of module 0's better-matching pole with the output's markers.

    :func:`bilinear_core.stability.marker_overlap` (the trust chapter's measure), one number per fit.
    """
    from bilinear_core.stability import marker_overlap

    overlap = marker_overlap(modules, markers, module=0, n_genes=n_genes)
    return float(overlap.groupby("output")["jaccard"].max().median())


def _moderate_programs(adata) -> tuple[str, str, str]:
    """``(drug, monotone program, moderate-dose program)`` of the simulation's bell-shaped program."""
    programs = adata.uns["planted"]["programs"]
    bell = programs[programs["shape"] == "bell"].iloc[0]
    hill = programs[(programs["drug"] == bell["drug"]) & programs["primary"]].iloc[0]
    return bell["drug"], hill["name"], bell["name"]


def planted_aurocs(adata, modules: Modules, n_modules: int = 3) -> pd.Series:
    """Planted-truth recovery of one fit on the simulation: one value per drug and the moderate-dose capture.

    ``AUROC <drug>``: the drug's primary planted genes ranked by |loading| in module 0 (sign-free, so the
    modules need no orientation). ``moderate-dose AUROC``: among the drug's modules 0 … ``n_modules − 1``
    whose loadings rank the moderate-dose program's genes above the monotone program's, the highest
    AUROC of the moderate-dose genes (NaN when no module does).
    """
    planted = adata.uns["planted"]
    programs = planted["programs"]
    genes = adata.var_names
    values = {
        f"AUROC {p.drug}": planted_auroc(
            modules.vectors(p.drug)[:, 0], genes, planted["genes"][p.name]
        )
        for p in programs[programs["primary"]].itertuples()
    }
    drug, hill, bell = _moderate_programs(adata)
    vectors = modules.vectors(drug)[:, :n_modules]
    captured = []
    for m in range(vectors.shape[1]):
        moderate = planted_auroc(vectors[:, m], genes, planted["genes"][bell])
        if moderate > planted_auroc(vectors[:, m], genes, planted["genes"][hill]):
            captured.append(moderate)
    values["moderate-dose AUROC"] = max(captured) if captured else np.nan
    return pd.Series(values)


def wilcoxon_aurocs(adata, wilcoxon: pd.DataFrame) -> pd.Series:
    """The Wilcoxon baseline of :func:`planted_aurocs`: each drug's primary planted genes ranked by |z|."""
    planted = adata.uns["planted"]
    programs = planted["programs"]
    return pd.Series(
        {
            f"AUROC {p.drug}": planted_auroc(
                wilcoxon[p.drug].to_numpy(), adata.var_names, planted["genes"][p.name]
            )
            for p in programs[programs["primary"]].itertuples()
        }
    )


def stability_figure(
    tables: dict, scores: dict, chosen: dict, post: str, suffix: dict | None = None
):
    """Test score against module stability across seeds, one point per setting, baselines as lines.

    ``tables`` maps a task to its evaluation table, ``scores`` to the score column plotted and ``chosen`` to
    the setting chosen on validation. Every setting trained with several seeds is a filled marker at its
    module-0 |cos| and an open one at its modules-1–2 |cos|, joined by a line; the baselines and the single
    fit ``post`` are horizontal lines.
    """
    suffix = suffix or {}
    fig, axes = plt.subplots(
        1, len(tables), figsize=(4.8 * len(tables), 4.4), constrained_layout=True
    )
    lines = {
        "linear": ("black", "--"),
        "ReLU MLP": ("tab:red", ":"),
        post: ("tab:gray", "-."),
    }
    for ax, (task, table) in zip(np.atleast_1d(axes), tables.items()):
        score = scores[task]
        nets = table[(table["model"] == "bilinear MLP") & (table["seeds"] > 1)]
        for name, row in nets.iterrows():
            color = "tab:orange" if name == chosen[task] else "tab:blue"
            x = [row["module 0 |cos|"], row["modules 1–2 |cos|"]]
            ax.plot(x, [row[score]] * 2, color=color, lw=0.8)
            ax.scatter(x[0], row[score], color=color, zorder=3)
            ax.scatter(x[1], row[score], facecolor="white", edgecolor=color, zorder=3)
            right = (
                x[0] > 0.35
            )  # the label left of the marker, unless it would leave the axes
            ax.annotate(
                name, (x[0], row[score]), fontsize=8, xytext=(-4 if right else 4, 6),
                textcoords="offset points", ha="right" if right else "left", color=color,
            )  # fmt: skip
        for name, (color, style) in lines.items():
            if name in table.index:
                value = table.loc[name, score]
                ax.axhline(value, color=color, ls=style, lw=1, label=name)
        ax.set(
            xlim=(0, 1.05),
            xlabel="|cos| across seeds (● module 0, ○ modules 1–2)",
            ylabel=score,
            title=f"{task}{suffix.get(task, '')}",
        )
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Held-out score against module stability (orange: the chosen setting)")
    return fig


def _score_sentence(table, score, chosen, control, post) -> str:
    """The chosen setting against the post's, in both schedules, and against the baselines."""
    nets = table[table["model"] == "bilinear MLP"]
    best, linear = nets[score].idxmax(), table.loc["linear", score]
    text = (
        f"chosen on validation: *{chosen}*. {score[0].upper() + score[1:]}: the post's settings "
        f"{table.loc[post, score]:.3f} in 100 epochs and {table.loc[control, score]:.3f} in the sweep's schedule"
    )
    if chosen != control:
        text += f"; *{chosen}* {table.loc[chosen, score]:.3f} in the sweep's schedule"
    reached = "reaches" if nets[score].max() >= linear else "does not reach"
    text += (
        f". The best of any setting, {nets[score].max():.3f} (*{best}*), {reached} the linear baseline's "
        f"{linear:.3f}"
    )
    if "ReLU MLP" in table.index:
        text += f" (ReLU MLP: {table.loc['ReLU MLP', score]:.3f})"
    if table.loc[control, score] < table.loc[post, score] - 0.1:
        text += (
            ". In the sweep's schedule the post's settings are far from their 100-epoch score: on this task "
            "the sweep measures how fast a setting gets there as much as how it regularises"
        )
    return text + "."


def _stability_sentence(table, chosen, control) -> str:
    """Modules 0 and 1–2 across seeds, the post's settings against the chosen setting."""
    columns = ["module 0 |cos|", "modules 1–2 |cos|"]
    cos = table.loc[list(dict.fromkeys([control, chosen])), columns]
    text = (
        f"Across seeds, modules 1–2 agree with |cos| {cos.loc[control, columns[1]]:.2f} under the post's "
        f"settings and {cos.loc[chosen, columns[1]]:.2f} under *{chosen}*, module 0 with "
        f"{cos.loc[control, columns[0]]:.2f} and {cos.loc[chosen, columns[0]]:.2f}: "
    )
    if cos.loc[chosen, columns[1]] >= 0.9:
        return text + f"*{chosen}* makes modules 1–2 stable (≥ 0.9)."
    return text + f"*{chosen}* does not make modules 1–2 stable (≥ 0.9)."


def _recovery_sentences(
    table, control, post, tolerance
) -> tuple[list[str], list[str], bool]:
    """Planted recovery per drug against the Wilcoxon test, and the moderate-dose program's capture."""
    nets = table[table["model"] == "bilinear MLP"]
    wilcoxon = table.loc["Wilcoxon test"]
    already, lifted, below = [], [], []
    for column in [c for c in table if c.startswith("AUROC ")]:
        drug, bar = column.removeprefix("AUROC "), wilcoxon[column] - tolerance
        reach = nets.index[nets[column] >= bar]
        if table.loc[post, column] >= bar:
            already.append(drug)
        elif len(reach):
            names = [f"*{n}*" for n in reach]
            who = _and(names) if len(names) <= 3 else f"{len(names)} settings"
            if control in reach:
                who += ", the post's settings in the sweep's schedule among them"
            lifted.append(
                f"{drug} ({table.loc[post, column]:.2f} against {wilcoxon[column]:.2f}; reached by {who})"
            )
        else:
            below.append(
                f"{drug} (best {nets[column].max():.2f} against {wilcoxon[column]:.2f})"
            )
    parts = []
    if already:
        parts.append(f"the post's 100-epoch fit reaches it for {_and(already)}")
    if lifted:
        parts.append(f"falls short for {_and(lifted)}")
    if below:
        parts.append(f"every setting falls short for {_and(below)}")
    captured = nets.index[nets["moderate-dose AUROC"] >= 0.7]
    moderate = (
        "The moderate-dose program is captured (one of SAHA's modules 0–2 ranks its genes above the monotone "
        "program's, AUROC ≥ 0.7) by "
        + (_and([f"*{c}*" for c in captured]) if len(captured) else "no setting")
        + (
            ", not by the post's settings."
            if len(captured) and not {control, post} & set(captured)
            else "."
        )
    )
    return (
        [
            f"Module 0 against the Wilcoxon test's AUROC (within ±{tolerance}): "
            + "; ".join(parts)
            + ".",
            moderate,
        ],
        below,
        len(captured) == 0,
    )


def regularisation_verdict(
    tasks: dict, chosen: dict, control: str, post: str, tolerance: float = 0.02
) -> str:
    """The chapter's verdict as Markdown, generated from its tables.

    ``tasks`` maps a task name to ``(table, score column)``; ``chosen`` maps it to the setting chosen on
    validation. Tables may carry ``marker Jaccard (module 0)`` (cell typing) and ``AUROC <drug>`` and
    ``moderate-dose AUROC`` with a ``Wilcoxon test`` row (simulation).
    """
    lines, failed = [], []
    for task, (table, score) in tasks.items():
        pick = chosen[task]
        body = [_score_sentence(table, score, pick, control, post)]
        body.append(_stability_sentence(table, pick, control))
        nets = table[table["model"] == "bilinear MLP"]
        worse = nets.index[nets[score] < table.loc[control, score] - tolerance]
        if len(worse):
            failed.append(
                f"on {task}, {_and([f'*{w}*' for w in worse])} lowered the test score"
            )
        if table.loc[pick, "modules 1–2 |cos|"] < 0.9:
            failed.append(f"*{pick}* did not make modules 1–2 stable on {task}")
        if "marker Jaccard (module 0)" in table:
            jaccard = table["marker Jaccard (module 0)"]
            kept = jaccard[pick] >= jaccard[control] - tolerance
            body.append(
                f"Module 0's agreement with the Wilcoxon markers (median Jaccard): {jaccard[control]:.2f} under "
                f"the post's settings, {jaccard[pick]:.2f} under *{pick}*: {'kept' if kept else 'partly lost'}."
            )
            if not kept:
                failed.append(f"*{pick}* kept fewer canonical markers in module 0")
        if any(c.startswith("AUROC ") for c in table):
            sentences, below, missed = _recovery_sentences(
                table, control, post, tolerance
            )
            body += sentences
            if below:
                failed.append(
                    f"no setting lifted module 0 to the Wilcoxon test for {_and(below)}"
                )
            if missed:
                failed.append("no setting captured the moderate-dose program")
        lines.append(f"- **{task}**: " + " ".join(body))
    if failed:
        lines.append("- **What did not work**: " + "; ".join(failed) + ".")
    return "\n".join(lines)


def regularisation_headline(
    tables: dict, scores: dict, chosen: dict, post: str, suffix: dict | None = None
) -> str:
    """The regularisation chapter in two sentences, for the book's introduction (plain text: glued).

    Per task the best test score of any bilinear setting against the linear baseline; then on how many
    tasks the setting chosen on validation makes modules 1–2 agree across seeds (|cos| ≥ 0.9).
    """
    suffix = suffix or {}
    parts = []
    for task, table in tables.items():
        score = scores[task]
        nets = table[table["model"] == "bilinear MLP"]
        best = nets[score].idxmax()
        name = "the post's 100-epoch fit" if best == post else f"“{best}”"
        parts.append(
            f"{task}{suffix.get(task, '')} {nets.loc[best, score]:.3f} with {name}, linear "
            f"{table.loc['linear', score]:.3f}"
        )
    cos = {t: tables[t].loc[chosen[t], "modules 1–2 |cos|"] for t in tables}
    stable = [t for t, value in cos.items() if value >= 0.9]
    where = _and(stable) if stable else "no task"
    values = ", ".join(f"{value:.2f}" for value in cos.values())
    return (
        "Best held-out score of any bilinear setting against the linear baseline: "
        + "; ".join(parts)
        + f". The setting chosen on validation makes modules 1–2 stable on {where} "
        f"(|cos| across seeds {values})."
    )


def early_stopping_sentence(tables: dict, post: str, patience: int) -> str:
    """Where early stopping was trained, from the epoch of the post's lowest validation loss per task."""
    best = {task: int(table.loc[post, "best epoch"]) for task, table in tables.items()}
    trained = [t for t, table in tables.items() if "early stopping" in table.index]
    skipped = [t for t in tables if t not in trained]

    def where(tasks):
        return _and([f"{t} (epoch {best[t]})" for t in tasks])

    text = "- **Early stopping** "
    text += f"was trained on {where(trained)}" if trained else "was trained on no task"
    if skipped:
        text += (
            f"; on {where(skipped)} the post's fit has its lowest validation loss within "
            f"{patience} epochs of its end, so early stopping would not stop it"
        )
    return text + "."


def held_out_sentence(held_out: pd.DataFrame) -> str:
    """One bullet per non-random split of the regularisation chapter: test R² and MAE of every model."""
    lines = []
    for split, table in held_out.groupby(level="split", sort=False):
        table = table.droplevel("split")
        values = "; ".join(
            f"{score}: "
            + ", ".join(f"*{name}* {value:.3g}" for name, value in table[score].items())
            for score in ("test R²", "test MAE")
        )
        nets = table[table["model"] == "bilinear MLP"]
        linear = table.loc["linear"]
        r2 = "above" if nets["test R²"].max() > linear["test R²"] else "below"
        mae = "below" if nets["test MAE"].min() < linear["test MAE"] else "above"
        lines.append(
            f"- **{split}**: {values}. The best bilinear fit is {r2} the linear baseline in R² and {mae} it "
            "in mean absolute error."
        )
    return "\n".join(lines)


def side_by_side(tables: dict, scores: dict, rows: dict) -> pd.DataFrame:
    """Each task's ``rows`` (setting names): test score, gap, stability, genes, cost and planted recovery."""
    columns = [
        "gap (val − train loss)",
        "best epoch",
        "genes used",
        "module 0 |cos|",
        "modules 1–2 |cos|",
        "relative cost",
    ]
    frames = {}
    for task, table in tables.items():
        names = [name for name in dict.fromkeys(rows[task]) if name in table.index]
        frame = table.loc[names, columns].copy()
        frame.insert(0, "test score", table.loc[names, scores[task]])
        frame.insert(0, "score", scores[task].removeprefix("test "))
        drugs = [c for c in table if c.startswith("AUROC ")]
        if drugs:
            frame["planted AUROC (mean over drugs)"] = table.loc[names, drugs].mean(
                axis=1
            )
            frame["moderate-dose AUROC"] = table.loc[names, "moderate-dose AUROC"]
        frames[task] = frame
    return pd.concat(frames, names=["task", "setting"])
