"""Helpers of the cell-typing chapter (02): figure names and captions, display tables, per-class dropdowns."""

from __future__ import annotations

import re

import pandas as pd

from bilinear_core.interpret import Modules, n_top_genes
from bilinear_core.report import ModuleReport

from bookkit import dropdown
from bookkit.interpretation import (
    describe_gene_ranks,
    module_interpretation,
    module_report_parts,
    readable,
    reliability_note,
    top_genes_display,
)

#: The columns of the chapter's summary table shown as numbers, and those shown as genes and terms.
SUMMARY_NUMBERS = [
    "validation cells",
    "validation accuracy",
    "AUROC module 0",
    "eigenvalue",
    "share of ‖Q‖² in λ0",
    "|λmin| / λ0",
    "best of modules 0–2 (AUROC)",
]
SUMMARY_GENES = ["positive genes", "negative genes", "positive terms", "negative terms"]


def figure_name(cell_type: str) -> str:
    """The book-wide label of a cell type's module figure: ``"Ngn3 high EP"`` → ``"fig-celltyping-ngn3-high-ep"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", cell_type.lower()).strip("-")
    return f"fig-celltyping-{slug}"


def modules_caption(cell_type: str, auroc: float, modules: Modules) -> str:
    """The caption of a cell type's :func:`bilinear_core.pl.modules` figure, ``auroc`` that of its module 0.

    Ends with the reproducibility of modules 0–2 (:func:`~bookkit.interpretation.reliability_note`).
    """
    return (
        f"{cell_type} at a glance. Top left: the 20 largest-magnitude eigenvalues of "
        f"$\\mathbf{{Q}}_\\text{{{cell_type}}}$ (red positive, blue negative). The other panels: every cell's "
        f"score on modules 0, 1 and 2, one histogram per cell type (each of unit area), {cell_type} cells "
        f"filled; each title gives the module's eigenvalue, its reproducibility and its AUROC. Module 0 "
        f"separates {cell_type} cells from the rest with AUROC {auroc:.2f}. "
        f"{reliability_note(modules, cell_type)}"
    )


def class_dropdown(
    title: str,
    figure: str,
    report: ModuleReport,
    modules: Modules,
    auroc: float,
    ranks: pd.DataFrame | None = None,
    ranks_label: str = "The post's top-10 genes (both poles) in our module 0",
    further: list | None = None,
) -> str:
    """A :func:`dropdown` on one class's module 0: ``figure``, its interpretation, then its tables.

    ``figure`` is a :func:`bookkit.figure_markdown` string; ``auroc`` the one-vs-rest AUROC of the module's
    scores for the class (see :func:`module_interpretation`); ``ranks`` a
    :func:`bilinear_core.interpret.gene_ranks` table of reference genes, described under ``ranks_label``
    (genes outside the top lists only counted); ``further`` the :func:`further_modules` parts of the class.
    """
    parts = [
        figure,
        f"**Module {report.module}.** {module_interpretation(report, modules, auroc=auroc)}",
    ]
    # the interpretation names the key terms already
    parts += module_report_parts(report, key_terms=False)
    parts += further or []
    if ranks is not None:
        n_top = n_top_genes(len(modules.var_names))
        parts.append(
            f"**{ranks_label}**: {describe_gene_ranks(ranks, n_top, detail_outside=False)}"
        )
    return dropdown(title, *parts)


def further_modules(
    reports: dict, cell_type: str, modules: Modules, auroc: pd.DataFrame
) -> list:
    """Markdown parts reading each reproducible module of ``cell_type`` beyond module 0, as module 0 is read.

    ``reports`` maps ``(class, module)`` to the :class:`~bilinear_core.report.ModuleReport` of each such module,
    ``auroc`` (classes × modules) the AUROC of each module's scores. Each module gets its interpretation and
    its top genes; none: an empty list.
    """
    parts = []
    for module in sorted(m for c, m in reports if c == cell_type):
        report = reports[cell_type, module]
        text = module_interpretation(
            report, modules, auroc=auroc.loc[cell_type, module]
        )
        parts += [
            f"**Module {module}** (reproducible, so read like module 0). {text}",
            top_genes_display(report, 10),
        ]
    return parts


def library_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`bilinear_core.report.library_table` shortened to fit the text column.

    One row per post library (names :func:`readable`): the library used here, whether it is the post's own,
    its number of gene sets and the symbols it is written in (mouse libraries match exactly, human ones by
    upper-cased symbol).
    """
    shown = pd.DataFrame(
        {
            "used here": [readable(name) for name in table["used here"]],
            "match": table["match"].to_numpy(),
            "gene sets": table["gene sets"].to_numpy(),
            "symbols": [
                "mouse" if "mouse" in name.lower() else "human (upper-cased)"
                for name in table["used here"]
            ],
        },
        index=pd.Index([readable(name) for name in table.index], name="post's library"),
    )
    return shown


#: How :func:`summary_numbers` columns are shown (the saved summary keeps every digit).
SUMMARY_FORMATS = {
    "validation cells": "{:,d}",
    "validation accuracy": "{:.3f}",
    "AUROC module 0": "{:.3f}",
    "eigenvalue": "{:.4f}",
    "share of ‖Q‖² in λ0": "{:.2f}",
    "|λmin| / λ0": "{:.2f}",
}


def summary_numbers(summary: pd.DataFrame) -> pd.DataFrame:
    """The numeric half of the chapter's summary table: a ``cell type`` column, then :data:`SUMMARY_NUMBERS`.

    Show it with ``bookkit.table(..., index=False, formats=SUMMARY_FORMATS)``.
    """
    return summary[SUMMARY_NUMBERS].rename_axis("cell type").reset_index()


def summary_genes(summary: pd.DataFrame) -> pd.DataFrame:
    """The gene-and-term half of the chapter's summary table: ``cell type``, then :data:`SUMMARY_GENES`.

    Term names are :func:`readable`, so long MSigDB names wrap.
    """
    shown = summary[SUMMARY_GENES].rename_axis("cell type").reset_index()
    for column in ("positive terms", "negative terms"):
        shown[column] = shown[column].map(readable)
    return shown


def calls(adata, truth: str, key: str) -> pd.Series:
    """Each cell's true type and call, ``"Alpha → Beta"``, from ``obs[truth]`` and ``obs[f"{key}_prediction"]``."""
    true = adata.obs[truth].astype(str)
    return (true + " → " + adata.obs[f"{key}_prediction"].astype(str)).rename("call")


def commonest_error(adata, truth: str, key: str) -> tuple[str, str, int]:
    """The true type, the call and the number of cells of the most frequent wrong call."""
    true, called = (
        adata.obs[truth].astype(str),
        adata.obs[f"{key}_prediction"].astype(str),
    )
    wrong = pd.crosstab(true, called).stack()
    wrong = wrong[[t != c for t, c in wrong.index]]
    (t, c), n = wrong.idxmax(), int(wrong.max())
    return t, c, n


def _amount(wrong: float, right: float) -> str:
    """``"more"``, ``"less"`` or ``"about as much"`` (within 10 % of the correct calls' value)."""
    if abs(wrong - right) < 0.1 * abs(right):
        return "about as much"
    return "more" if wrong > right else "less"


def error_sentences(
    true_means: pd.DataFrame, call_means: pd.DataFrame, true: str, call: str
) -> str:
    """What sets the misclassified cells apart, from the mean contributions to the logit of their true type
    (``true_means``) and of the type they were called (``call_means``); rows: the cells called correctly, then
    the misclassified ones; columns: modules and ``rest``."""
    t, c = true_means["module 0"], call_means["module 0"]
    logits_t, logits_c = true_means.sum(axis=1), call_means.sum(axis=1)
    more_true, more_call = _amount(t.iloc[1], t.iloc[0]), _amount(c.iloc[1], c.iloc[0])
    driver = (
        f"the {call} program they carry"
        if abs(c.iloc[1] - c.iloc[0]) > abs(t.iloc[1] - t.iloc[0])
        else f"the {true} program they lack"
    )
    return (
        f"Module 0 of the {true} output contributes {t.iloc[0]:.1f} to the {true} logit of the cells called "
        f"correctly and {t.iloc[1]:.1f} to that of the cells called {call}; module 0 of the {call} output "
        f"contributes {c.iloc[0]:.1f} and {c.iloc[1]:.1f} to the {call} logit. The misclassified cells carry "
        f"{more_true} of the {true} program and {more_call} of the {call} one, and their mean logits "
        f"({logits_t.iloc[1]:.1f} for {true}, {logits_c.iloc[1]:.1f} for {call}; correct calls "
        f"{logits_t.iloc[0]:.1f} and {logits_c.iloc[0]:.1f}) show that {driver} decides the call."
    )
