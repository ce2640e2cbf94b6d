"""Figures (matplotlib/seaborn); each returns its ``Figure``.

:func:`training` and :func:`modules` read what :mod:`bilinear_core.tl` stored in ``adata``; the others take
tables and arrays. Figures are at most :data:`PAGE_WIDTH` inches wide, with at most two panels a row and no
text below 9 pt, so that they read at the width of a page or a notebook.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from anndata import AnnData
from matplotlib.colors import TwoSlopeNorm

from .interpret import Modules, module_auroc
from .stability import reliability_of
from .tl import get_modules

#: The widest figure drawn here, in inches (a book's text column, or a notebook cell at 100 %).
PAGE_WIDTH = 8.0


def _panel_grid(n_panels: int, height: float):
    """A figure of ``n_panels`` axes, two a row, :data:`PAGE_WIDTH` wide (half of it for a single panel)."""
    ncols = min(2, n_panels)
    nrows = int(np.ceil(n_panels / ncols))
    width = PAGE_WIDTH if ncols == 2 else PAGE_WIDTH / 2
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows), constrained_layout=True, squeeze=False)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n_panels]


def training_curves(history: pd.DataFrame, title: str = ""):
    """Train/validation loss and metric (accuracy or MAE) per epoch, side by side."""
    metric = "accuracy" if "val_accuracy" in history else "mae"
    fig, axes = _panel_grid(2, 3.2)
    for ax, what in zip(axes, ("loss", metric)):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(history["epoch"], history[f"{split}_{what}"], style, label=split)
        ax.set(xlabel="epoch", ylabel=what, title=f"{title} {what}".strip())
        ax.legend(frameon=False)
    return fig


def per_class_bars(table: pd.DataFrame, value: str = "recall", title: str = "Validation accuracy per class"):
    """Bar plot of one column of a per-class table (index = class)."""
    fig, ax = plt.subplots(figsize=(6, 3), constrained_layout=True)
    sns.barplot(x=table.index, y=table[value], ax=ax, color="steelblue")
    ax.set(ylim=(0, 1), ylabel=value, xlabel="", title=title)
    ax.tick_params(axis="x", rotation=45)
    for label in ax.get_xticklabels():
        label.set_ha("right")
    return fig


def confusion_heatmap(confusion: pd.DataFrame, title: str = "Confusion matrix (rows sum to 1)"):
    """Heatmap of a row-normalised confusion matrix (rows: true, columns: predicted)."""
    fig, ax = plt.subplots(figsize=(6, 5), constrained_layout=True)
    sns.heatmap(confusion, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, ax=ax, cbar=False)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return fig


def eigen_spectrum(modules: Modules, output, n: int = 20, ax=None):
    """The ``n`` largest-magnitude eigenvalues of one output, sorted descending, coloured by sign."""
    values = modules.values(output)
    top = np.sort(values[np.argsort(-np.abs(values))[:n]])[::-1]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3), constrained_layout=True)
    ax.bar(np.arange(len(top)), top, color=np.where(top >= 0, "tab:red", "tab:blue"))
    ax.axhline(0, color="black", lw=0.6)
    ax.set(xlabel="eigenvalue rank (by value)", ylabel="eigenvalue", title=f"Spectrum of Q[{output}]")
    return fig


def embedding_values(embedding: np.ndarray, values: np.ndarray, titles, cmap: str = "RdBu_r"):
    """Scatter of a 2-d embedding coloured by each column of ``values`` on a diverging map centred at 0."""
    values = np.asarray(values).reshape(len(embedding), -1)
    fig, axes = _panel_grid(values.shape[1], 3.4)
    for ax, v, title in zip(axes, values.T, titles):
        lim = np.abs(v).max()
        sc = ax.scatter(*embedding.T, c=v, s=2, cmap=cmap, norm=TwoSlopeNorm(0, -lim, lim), rasterized=True)
        ax.set(title=title, xticks=[], yticks=[])
        fig.colorbar(sc, ax=ax, shrink=0.7)
    return fig


def predicted_vs_true(pred: np.ndarray, true: np.ndarray, names, labels=None):
    """One scatter per output of predictions against targets, with the identity line."""
    fig, axes = _panel_grid(len(names), 3.4)
    colors = None if labels is None else pd.Categorical(labels).codes
    for i, (ax, name) in enumerate(zip(axes, names)):
        ax.scatter(true[:, i], pred[:, i], s=3, c=colors, cmap=None if colors is None else "tab10", rasterized=True)
        lo, hi = min(true[:, i].min(), pred[:, i].min()), max(true[:, i].max(), pred[:, i].max())
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        ax.set(xlabel="true", ylabel="predicted", title=name)
    return fig


def reliability_label(modules: Modules, output, module: int) -> str:
    """How reproducible one module is, in a few words (``modules.reliability``; unknown when not scored)."""
    row = reliability_of(modules, output, module)
    if row is None or pd.isna(row["reproducible"]):
        return "reproducibility unknown"
    verdict = "reproducible" if row["reproducible"] else "not reproducible"
    return f"{verdict}, split-half |cos| {row['split_half_cos']:.2f}"


def module_overview(
    modules: Modules,
    output,
    scores: np.ndarray,
    labels,
    target: np.ndarray | None = None,
    highlight: str | None = None,
    palette: dict | None = None,
    n_eigen: int = 20,
    bins: int = 40,
):
    """One output at a glance: its eigen-spectrum plus one panel per scored module, two panels a row.

    ``scores`` are the cells' scores ``(n, k)`` on modules ``0 … k-1`` (see
    :func:`~bilinear_core.interpret.module_scores`). Without ``target`` each module panel holds per-label
    histograms, each normalised to unit area so small classes stay visible, with ``highlight``
    (default: the output's name when it is a label) filled and drawn last, and its one-vs-rest
    AUROC in the title. With a continuous ``target`` ``(n,)`` each panel plots score against target,
    coloured by label, with Pearson r in the title. Each title also says how reproducible the module is
    (:func:`reliability_label`). ``palette`` maps labels to colours (default tab10).
    """
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[:, None] if scores.ndim == 1 else scores
    labels = pd.Categorical(np.asarray(labels).astype(str))
    if len(labels) != scores.shape[0]:
        raise ValueError(f"scores have {scores.shape[0]} cells but labels have {len(labels)} entries.")
    name = modules.output_names[modules._index(output)]
    if highlight is None and target is None and name in labels.categories:
        highlight = name
    if highlight is not None and highlight not in labels.categories:
        raise ValueError(f"highlight {highlight!r} is not a label; labels are {list(labels.categories)}.")
    colours = dict(zip(labels.categories, sns.color_palette("tab10", len(labels.categories))))
    colours.update(palette or {})
    values = modules.values(output)
    k = scores.shape[1]
    nrows = int(np.ceil((k + 1) / 2))
    fig, axes = plt.subplots(nrows, 2, figsize=(PAGE_WIDTH, 3.2 * nrows), constrained_layout=True, squeeze=False)
    axes = axes.ravel()
    eigen_spectrum(modules, output, n=n_eigen, ax=axes[0])
    auroc = None if highlight is None or target is not None else module_auroc(scores, labels == highlight)
    order = [c for c in labels.categories if c != highlight] + ([highlight] if highlight is not None else [])
    for m, ax in enumerate(axes[1 : k + 1]):
        title = f"module {m}: λ = {values[m]:.3g}\n{reliability_label(modules, output, m)}"
        if target is None:
            edges = np.histogram_bin_edges(scores[:, m], bins=bins)
            for c in order:
                sel = np.asarray(labels == c)
                if c == highlight:
                    ax.hist(scores[sel, m], bins=edges, density=True, color=colours[c], alpha=0.6, label=c,
                            histtype="stepfilled", edgecolor="black", lw=0.8)  # fmt: skip
                else:
                    ax.hist(scores[sel, m], bins=edges, density=True, color=colours[c], label=c, histtype="step",
                            lw=1.3)  # fmt: skip
            ax.set(xlabel=f"module {m} score", ylabel="density (per label)")
            if auroc is not None:
                title += f"\nAUROC({highlight}) = {auroc[m]:.2f}"  # one fact a line: fits a half-width panel
        else:
            target = np.asarray(target, dtype=np.float64).ravel()
            for c in labels.categories:
                sel = np.asarray(labels == c)
                ax.scatter(target[sel], scores[sel, m], s=3, color=colours[c], label=c, rasterized=True)
            title += f"\nr = {np.corrcoef(target, scores[:, m])[0, 1]:.2f}"
            ax.set(xlabel="target", ylabel=f"module {m} score")
        ax.set_title(title, fontsize=10)
    for ax in axes[k + 1 :]:
        ax.set_visible(False)
    handles, names = axes[1].get_legend_handles_labels() if k else ([], [])
    if handles:
        fig.legend(handles, names, loc="outside right upper", fontsize=9, frameon=False, markerscale=3)
    fig.suptitle(f"{name}: spectrum of Q and cell scores on its leading modules")
    return fig


def laplacian_spectrum(values, n_used: int = 4, reference: dict | None = None, title: str = "Low end of the spectrum"):
    """Laplacian eigenvalues against their index, the first ``n_used`` highlighted.

    ``values`` are ascending non-constant eigenvalues ``(k,)`` (frequency 0 first); ``reference``
    maps a label to an eigenvalue drawn as a horizontal line (e.g. the post's λ₀).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("values is empty.")
    index = np.arange(values.size)
    fig, ax = plt.subplots(figsize=(5.5, 3.2), constrained_layout=True)
    ax.plot(index, values, "o-", color="grey", ms=4, lw=0.8, label="this book")
    used = index < n_used
    ax.plot(index[used], values[used], "o", color="tab:red", ms=6, label=f"frequencies 0–{n_used - 1} (modelled)")
    for i, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color=f"C{i}", ls="--", lw=0.9, label=label)
    ax.set(xlabel="frequency index", ylabel="eigenvalue λ of L = D − A", title=title)
    ax.set_xticks(index[:: max(1, values.size // 10)])
    ax.legend(frameon=False, fontsize=9)
    return fig


def error_vs_spread(table: pd.DataFrame, error: str = "mae", spreads=("std", "iqr"), title: str = ""):
    """Grouped bars per output (rows of ``table``): the ``error`` column beside the target's ``spreads``."""
    columns = [error, *spreads]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(f"table has no column(s) {missing}; columns are {list(table.columns)}.")
    fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH, 1.6 * len(table) + 2.5), 3.2), constrained_layout=True)
    width = 0.8 / len(columns)
    x = np.arange(len(table))
    for i, column in enumerate(columns):
        ax.bar(x + (i - (len(columns) - 1) / 2) * width, table[column], width, label=column)
    ax.set_xticks(x, [str(i) for i in table.index])
    ax.set(ylabel="value (target units)", title=title or f"Validation {error} against each target's spread")
    ax.legend(frameon=False, fontsize=9)
    return fig


def dose_profile(table: pd.DataFrame, title: str = "Module scores by dose (mean ± sd)"):
    """Mean ± sd of module scores per dose, one line per module, from :func:`bilinear_core.perturbation.dose_profile`.

    Doses are placed evenly (labels on the axis), since they span three orders of magnitude and include 0.
    """
    if "mean" not in table.columns.get_level_values(0) or "sd" not in table.columns.get_level_values(0):
        raise KeyError("table needs 'mean' and 'sd' column groups; build it with perturbation.dose_profile.")
    fig, ax = plt.subplots(figsize=(6, 3.4), constrained_layout=True)
    x = np.arange(len(table))
    for i, module in enumerate(table["mean"].columns):
        offset = (i - (len(table["mean"].columns) - 1) / 2) * 0.08
        ax.errorbar(x + offset, table["mean"][module], yerr=table["sd"][module], marker="o", capsize=3, label=module)
    ax.set_xticks(x, [f"{d:g}" for d in table.index])
    ax.axhline(0, color="black", lw=0.6)
    ax.set(xlabel="dose (0: every cell without this drug)", ylabel="module score", title=title)
    ax.legend(frameon=False, fontsize=9)
    return fig


def count_histogram(totals, threshold: float, title: str = "Total counts per cell"):
    """Histogram of per-cell total counts (log scale) with the filter threshold marked."""
    totals = np.asarray(totals, dtype=np.float64)
    if totals.ndim != 1 or not len(totals) or (totals <= 0).any():
        raise ValueError("totals must be a non-empty 1-d array of positive counts.")
    fig, ax = plt.subplots(figsize=(5.5, 3.2), constrained_layout=True)
    ax.hist(totals, bins=np.geomspace(totals.min(), totals.max(), 60), color="grey")
    ax.axvline(threshold, color="tab:red", lw=1.2, label=f"{threshold:,.0f} counts")
    ax.set(xscale="log", xlabel="total counts", ylabel="cells", title=title)
    ax.legend(frameon=False)
    return fig


def training(adata: AnnData, key: str = "bilinear", title: str = ""):
    """:func:`training_curves` of the fit :func:`bilinear_core.tl.train` recorded under ``key``."""
    if key not in adata.uns or "history" not in adata.uns[key]:
        raise KeyError(f"adata.uns[{key!r}] holds no training history; run bilinear_core.tl.train first.")
    return training_curves(pd.DataFrame(adata.uns[key]["history"]), title=title)


def modules(adata: AnnData, output, groupby: str, *, key: str = "bilinear", target=None, **kwargs):
    """:func:`module_overview` of one output from the modules and scores :func:`bilinear_core.tl.modules` stored.

    ``groupby`` is the ``obs`` column the histograms (or, with a ``target`` ``(n,)``, the scatter colours)
    are split by; other keyword arguments go to :func:`module_overview`. Colours default to scanpy's
    ``adata.uns[f"{groupby}_colors"]`` when present.
    """
    mods = get_modules(adata, key)
    scores = np.asarray(adata.obsm[f"{key}_scores"])[:, mods._index(output), :]
    labels = adata.obs[groupby] if groupby in adata.obs else None
    if labels is None:
        raise KeyError(f"Column {groupby!r} not found in adata.obs; available columns: {list(adata.obs.columns)}.")
    colors = adata.uns.get(f"{groupby}_colors")
    if colors is not None and isinstance(labels.dtype, pd.CategoricalDtype):
        kwargs.setdefault("palette", dict(zip(labels.cat.categories.astype(str), colors)))
    return module_overview(mods, output, scores, labels.astype(str).to_numpy(), target=target, **kwargs)


def contributions(adata: AnnData, groupby: str, *, key="bilinear", groups=None, title=""):
    """Mean contribution of each module to the output :func:`bilinear_core.tl.explain` explained, per group.

    One bar per group of ``obs[groupby]`` (``groups``: which, in order; default: all, at most 6) for each column
    of ``obsm[f"{key}_contributions"]`` (``λ_k (v_kᵀ x)²`` of the leading modules, the ``rest``) and for their
    sum, the ``output`` (a logit for classification); whiskers: one standard deviation over the group's cells.
    ``key`` may list several explanations (e.g. of the true and of the called class), one panel each, one under
    the other, with one ``title`` each.
    """
    keys = [key] if isinstance(key, str) else list(key)
    titles = [title] * len(keys) if isinstance(title, str) else list(title)
    missing = [f"{k}_contributions" for k in keys if f"{k}_contributions" not in adata.obsm]
    if missing:
        raise KeyError(f"adata.obsm has no {missing}; run bilinear_core.tl.explain first.")
    if len(titles) != len(keys):
        raise ValueError(f"Give one title per key: {len(keys)} keys, {len(titles)} titles.")
    if groupby not in adata.obs:
        raise KeyError(f"Column {groupby!r} not found in adata.obs; available columns: {list(adata.obs.columns)}.")
    labels = adata.obs[groupby].astype(str)
    groups = [str(g) for g in (pd.unique(labels) if groups is None else groups)]
    unknown = sorted(set(groups) - set(labels))
    if unknown or not 1 <= len(groups) <= 6:
        raise ValueError(f"groups must name 1 to 6 groups of obs[{groupby!r}]; unknown: {unknown}, got {len(groups)}.")
    fig, axes = plt.subplots(len(keys), 1, figsize=(PAGE_WIDTH, 3.2 * len(keys)), constrained_layout=True)
    width = 0.8 / len(groups)
    for ax, k, panel_title in zip(np.atleast_1d(axes), keys, titles):
        table = pd.DataFrame(adata.obsm[f"{k}_contributions"], index=adata.obs_names)
        table["output"] = table.sum(axis=1)
        x = np.arange(table.shape[1])
        for i, group in enumerate(groups):
            cells = table[(labels == group).to_numpy()]
            ax.bar(
                x + (i - (len(groups) - 1) / 2) * width, cells.mean(), width, yerr=cells.std(ddof=0), capsize=2,
                label=f"{group} (n = {len(cells)})", color=sns.color_palette("colorblind")[i],
            )  # fmt: skip
        ax.axhline(0, color="black", linewidth=0.8)
        ax.axvline(x[-1] - 0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xticks(x, table.columns)
        ax.set(ylabel="contribution", title=panel_title)
        ax.legend(frameon=False, fontsize=9)
    return fig
