"""Helpers of the cell-typing chapter (02)."""

from __future__ import annotations

import pandas as pd

from bilinear_core.interpret import Modules, n_top_genes
from bilinear_core.report import ModuleReport

from bookkit import dropdown
from bookkit.interpretation import (
    describe_gene_ranks,
    module_interpretation,
    module_report_parts,
)


def class_dropdown(
    title: str,
    figure: str,
    report: ModuleReport,
    modules: Modules,
    auroc: float,
    ranks: pd.DataFrame | None = None,
    ranks_label: str = "The post's top-10 genes (both poles) in our module 0",
) -> str:
    """A :func:`dropdown` on one class's module: ``figure`` (from :func:`figure_markdown`), generated interpretation and tables.

    ``auroc`` is the one-vs-rest AUROC of the module's scores for the class (see
    :func:`module_interpretation`); ``ranks`` a :func:`bilinear_core.interpret.gene_ranks` table of
    reference genes, described under ``ranks_label`` (genes outside the top lists only counted).
    """
    parts = [
        figure,
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
