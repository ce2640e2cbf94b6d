"""Helpers of the transcriptional-frequencies chapter (03)."""

from __future__ import annotations

import pandas as pd

from bilinear_core.interpret import Modules, n_top_genes
from bilinear_core.report import ModuleReport

from bookkit import dropdown
from bookkit.interpretation import (
    describe_gene_ranks,
    module_report_parts,
    regression_interpretation,
)


def regression_dropdown(
    title: str,
    figure: str,
    report: ModuleReport,
    modules: Modules,
    r: float,
    best: pd.Series | None = None,
    ranks: pd.DataFrame | None = None,
    ranks_label: str = "The post's top-10 genes in our module 0",
) -> str:
    """A :func:`dropdown` on one continuous output's module: ``figure`` (from
    :func:`figure_markdown`), generated interpretation and tables.

    ``r`` is the Pearson r of the module's scores with the target (see :func:`regression_interpretation`);
    ``best`` a row of :func:`bilinear_core.interpret.module_target_correlations` (``module``, ``r``,
    ``eigenvalue``) naming the module that tracks the target best; ``ranks`` a
    :func:`bilinear_core.interpret.gene_ranks` table of reference genes, described under ``ranks_label``.
    """
    parts = [
        figure,
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
