"""Helpers of the transcriptional-frequencies chapter (03): readable tables and the module dropdowns."""

from __future__ import annotations

import pandas as pd

from bilinear_core.interpret import Modules, n_top_genes
from bilinear_core.report import SIGNS, ModuleReport, enrichment_table

from bookkit import dropdown, one_based, table
from bookkit.interpretation import describe_gene_ranks, regression_interpretation

#: Display headers for the raw column names of the library's tables (graph summary, regression report,
#: module–target correlations, spectrum energy, mean expansion).
HEADERS = {
    "n_cells": "cells",
    "n_edges": "edges",
    "mean_degree": "mean degree",
    "median_degree": "median degree",
    "max_degree": "max degree",
    "n_components": "connected components",
    "mae": "MAE",
    "std": "SD",
    "iqr": "IQR",
    "r2": "R²",
    "pearson_r": "Pearson r",
    "mae_over_iqr": "MAE / IQR",
    "module": "module",
    "eigenvalue": "eigenvalue",
    "r": "Pearson r",
    "abs_r": "|r|",
    "top_1": "largest eigenvalue",
    "top_3": "three largest",
    "linear_share": "linear share",
    "r_linear": "r, linear term",
    "r_quadratic": "r, quadratic term",
    "r_total": "r, whole prediction",
}

#: Where the chapter's gene lists and enrichment tables are served (see :data:`bookkit.RESULTS`).
GENES_CSV = "frequencies_module0_genes.csv"
ENRICHMENT_CSV = "frequencies_module0_enrichment.csv"


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the library's raw column names (``mae``, ``n_components``, …) replaced by :data:`HEADERS`.

    Unknown columns keep their names; the index and values are untouched.
    """
    return df.rename(columns=HEADERS)


def compare_fits(
    reports: dict[str, pd.DataFrame], columns=("mae", "r2", "pearson_r")
) -> pd.DataFrame:
    """Regression reports of several fits side by side: one column per metric and fit, e.g. ``("R²", "L2")``.

    ``reports`` maps a fit's name to its :func:`bilinear_core.train.regression_report`; all must have the
    same outputs (index). The columns have two levels, metric (readable header) over fit, metric by
    metric and fits in the order given.
    """
    frames = list(reports.values())
    if not frames:
        raise ValueError("reports is empty: pass at least one regression report.")
    for name, frame in reports.items():
        if not frame.index.equals(frames[0].index):
            raise ValueError(
                f"report {name!r} has outputs {list(frame.index)}, expected {list(frames[0].index)}."
            )
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"report {name!r} has no column(s) {missing}.")
    data = {
        (HEADERS.get(c, c), name): frame[c]
        for c in columns
        for name, frame in reports.items()
    }
    return pd.DataFrame(data, index=frames[0].index)


def top_genes(report: ModuleReport, n: int = 10) -> pd.DataFrame:
    """The ``n`` strongest genes of each pole side by side, indexed by 1-based ``position``."""
    shown = one_based(report.top_table(n).reset_index(), "rank", "position")
    return shown.set_index("position")


def spaced(names: pd.Series) -> pd.Series:
    """Library and term names with underscores shown as spaces, so that a table column can wrap them.

    ``REACTOME_METABOLISM_OF_RNA`` reads ``REACTOME METABOLISM OF RNA``; the result CSVs keep the names as
    the libraries spell them.
    """
    return names.astype(str).str.replace("_", " ", regex=False)


def enriched_terms(report: ModuleReport, sign: str, n: int = 10) -> pd.DataFrame:
    """:func:`bilinear_core.report.enrichment_table` of one pole, indexed by 1-based ``position``.

    Library and term names are :func:`spaced` for display.
    """
    shown = one_based(
        enrichment_table(report, sign, n).reset_index(), "rank", "position"
    )
    shown["library"] = spaced(shown["library"])
    shown["term"] = spaced(shown["term"])
    return shown.set_index("position")


def module_parts(report: ModuleReport, n_genes: int = 10, n_terms: int = 10) -> list:
    """Gene and enrichment material of one module for a :func:`dropdown`, shortened, whole tables linked.

    The top ``n_genes`` of each pole, then each pole's ``n_terms`` terms of smallest adjusted p (or a line
    saying none passed adjusted p ≤ 0.05); the gene lists and all terms are in the served CSVs.
    """
    n_total = int((report.genes["sign"] == SIGNS[0]).sum())
    parts = [
        f"**Top {n_genes} genes of each pole** (position 1 = largest loading; all {n_total} genes per pole "
        f"of every frequency are in the whole table)",
        table(top_genes(report, n_genes), link=GENES_CSV),
    ]
    for sign in SIGNS:
        terms = enriched_terms(report, sign, n_terms)
        parts.append(
            f"**Terms enriched in the {sign} pole** (the {n_terms} of smallest adjusted p)"
        )
        parts.append(
            table(terms, link=ENRICHMENT_CSV)
            if len(terms)
            else "No term passes adjusted p ≤ 0.05."
        )
    return parts


def regression_dropdown(
    title: str,
    figure: str,
    report: ModuleReport,
    modules: Modules,
    r: float,
    best: pd.Series | None = None,
    ranks: pd.DataFrame | None = None,
    ranks_label: str = "The post's top-10 genes in our module 0",
    note: str | None = None,
) -> str:
    """A :func:`dropdown` on one continuous output's module 0: ``note``, ``figure``, interpretation, tables.

    ``figure`` is a :func:`bookkit.figure_markdown` string (``""`` for none); ``note`` a Markdown line shown
    first (e.g. that the module is not reproducible); ``r`` the Pearson r of the module's scores with the
    target (see :func:`regression_interpretation`); ``best`` a row of
    :func:`bilinear_core.interpret.module_target_correlations` (``module``, ``r``, ``eigenvalue``) naming the
    module that tracks the target best; ``ranks`` a :func:`bilinear_core.interpret.gene_ranks` table of
    reference genes, described under ``ranks_label``.
    """
    parts = [note] if note else []
    if figure:
        parts.append(figure)
    parts.append(regression_interpretation(report, modules, r=r))
    if best is not None:
        parts.append(
            f"The module whose score tracks {report.output} best, among all {modules.eigenvectors.shape[2]}, is "
            f"module {int(best['module'])} (r = {best['r']:.2f}, λ = {best['eigenvalue']:.2g})."
        )
    parts += module_parts(report)
    if ranks is not None:
        parts.append(
            f"**{ranks_label}**: {describe_gene_ranks(ranks, n_top_genes(len(modules.var_names)))}"
        )
    return dropdown(title, *parts)


def modules_caption(output: str, r: float) -> str:
    """The caption of :func:`bilinear_core.pl.modules`' figure for one frequency, with module 0's ``r``."""
    return (
        f"The interaction matrix of {output}. Top left: its 20 largest-magnitude eigenvalues (red positive, "
        f"blue negative). Other panels: each cell's score on module 0, 1 or 2 against its value of {output}, "
        f"coloured by cell type, with the module's eigenvalue and the Pearson r of score and frequency in the "
        f"title (module 0: r = {r:.2f})."
    )


#: The summary table's columns shown as the chapter's findings, with their display headers and formats.
SUMMARY_METRICS = {
    "eigenvalue of L": ("λ", "{:.3f}"),
    "validation R²": ("validation R²", "{:.3f}"),
    "r module 0": ("r, module 0", "{:.2f}"),
    "best |r| (module)": ("best |r| (module)", None),
    "linear share": ("linear share", "{:.2f}"),
}
#: The summary table's gene and term columns (module 0 of each output).
SUMMARY_GENES = ["positive genes", "negative genes", "positive terms", "negative terms"]


def summary_metrics(summary: pd.DataFrame):
    """The chapter's summary table as shown: the metric columns of :data:`SUMMARY_METRICS`, readable headers.

    Returns a :class:`bookkit.Table` whose "Whole table" link is ``frequencies_summary.csv``.
    """
    missing = [c for c in SUMMARY_METRICS if c not in summary.columns]
    if missing:
        raise KeyError(
            f"summary has no column(s) {missing}; build it with bilinear_core.report.summary_table."
        )
    shown = summary[list(SUMMARY_METRICS)].rename(
        columns={c: h for c, (h, _) in SUMMARY_METRICS.items()}
    )
    formats = {h: f for h, f in SUMMARY_METRICS.values() if f is not None}
    return table(shown, formats=formats, link="frequencies_summary.csv")


def summary_dropdown(title: str, summary: pd.DataFrame, note: str | None = None) -> str:
    """A :func:`dropdown` with ``note`` and the summary table's gene and term columns (module 0 of each output)."""
    missing = [c for c in SUMMARY_GENES if c not in summary.columns]
    if missing:
        raise KeyError(
            f"summary has no column(s) {missing}; build it with bilinear_core.report.summary_table."
        )
    shown = summary[SUMMARY_GENES].copy()
    for column in ("positive terms", "negative terms"):
        shown[column] = spaced(shown[column])
    genes = table(shown, link="frequencies_summary.csv")
    return dropdown(title, *([note] if note else []), genes)
