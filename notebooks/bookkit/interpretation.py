"""Sentences and dropdowns that describe gene modules: shared by the cell-typing, frequency and perturbation chapters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bilinear_core.interpret import Modules, n_top_genes
from bilinear_core.report import SIGNS, ModuleReport, enrichment_table
from bilinear_core.stability import REPRODUCIBLE_COS, reliability_of

from bookkit import join_and


def readable(name: str) -> str:
    """A library or term name as a page shows it: underscores as spaces, so long names can wrap.

    ``"REACTOME_REGULATION_OF_BETA_CELL_DEVELOPMENT"`` becomes ``"REACTOME REGULATION OF BETA CELL
    DEVELOPMENT"``; saved tables keep the names as the libraries spell them.
    """
    return str(name).replace("_", " ")


#: Where the book measures how many seeds a module needs (chapter 05's ensemble section).
ENSEMBLE_REF = "{ref}`trust-ensembles`"


def reliability_note(
    modules: Modules, output, shown=(0, 1, 2), link: bool = True
) -> str:
    """Which of the ``shown`` modules of ``output`` are reproducible, with their split-half ``|cos|``.

    From ``modules.reliability`` (:func:`bilinear_core.tl.modules` of an ensemble); names the rule and, with
    ``link``, links the section that measures it (leave it out for glued text, where roles are not parsed).
    Modules that are not reproducible are said not to be interpreted.
    """
    rows = {m: reliability_of(modules, output, m) for m in shown}
    if any(row is None or pd.isna(row["reproducible"]) for row in rows.values()):
        return "The reproducibility of these modules is unknown (a single fit)."
    n_members = int(next(iter(rows.values()))["n_members"])
    named = {
        verdict: [
            f"module {m} ({row['split_half_cos']:.2f})"
            for m, row in rows.items()
            if bool(row["reproducible"]) == verdict
        ]
        for verdict in (True, False)
    }
    parts = []
    if named[True]:
        parts.append(f"reproducible: {join_and(named[True])}")
    if named[False]:
        parts.append(f"not reproducible, so not interpreted: {join_and(named[False])}")
    see = f", see {ENSEMBLE_REF}" if link else ""
    return (
        f"Split-half |cos| over the {n_members}-seed ensemble (reproducible from {REPRODUCIBLE_COS}{see}); "
        f"{'; '.join(parts)}."
    )


def reliability_sentence(report: ModuleReport) -> str:
    """One sentence on the reproducibility of the module of ``report`` (its split-half ``|cos|``)."""
    if report.reproducible is None:
        return "Its reproducibility is unknown (a single fit)."
    verdict = "reproducible" if report.reproducible else "not reproducible"
    return (
        f"It is {verdict}: the two halves of the {report.n_members}-seed ensemble give it with |cos| "
        f"{report.split_half_cos:.2f} (rule: ≥ {REPRODUCIBLE_COS}, see {ENSEMBLE_REF})."
    )


def pole_bullets(report: ModuleReport, n_genes: int = 5, n_terms: int = 3) -> str:
    """A Markdown interpretation built from the results, one bullet per sign: leading genes, key terms."""
    lines = []
    for sign in SIGNS:
        genes = ", ".join(report.top_table(n_genes)[sign])
        terms = [readable(t) for t in report.key_terms(sign, n_terms)]
        enriched = "; ".join(terms) if terms else "no term passes adjusted p ≤ 0.05"
        lines.append(
            f"- **{sign.capitalize()} pole**: led by {genes}. Enriched: {enriched}."
        )
    return "\n".join(lines)


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
    given, then one on its reproducibility (:func:`reliability_sentence`), then the poles' leading genes and
    terms (:func:`pole_bullets`), which a module shown not reproducible does not get: it is not interpreted.
    """
    values = modules.values(report.output)
    this = values[report.module]
    sign, opposite = ("positive", "negative") if this >= 0 else ("negative", "positive")
    others = np.delete(values, report.module)
    same = np.abs(others[(others >= 0) == (this >= 0)])
    other = np.abs(others[(others >= 0) != (this >= 0)])
    comparisons = []
    if same.size and same.max() > 0:
        ratio = (
            abs(this) / same.max()
        )  # module 0 against the next; the others against module 0
        which = "the next" if ratio >= 1 else "the largest"
        comparisons.append(f"{ratio:.1f}× {which} {sign} eigenvalue")
    if other.size and other.max() > 0:
        comparisons.append(
            f"{abs(this) / other.max():.2f}× the largest {opposite} one in magnitude"
        )
    share = this**2 / (values**2).sum() if (values**2).sum() > 0 else np.nan
    text = f"Module {report.module} of {report.output} has eigenvalue λ = {this:.3g}"
    text += f" ({' and '.join(comparisons)})" if comparisons else ""
    text += f" and carries {share:.{0 if share >= 0.01 else 2}%} of ‖Q‖²."  # small shares: 2 decimals
    text += f" {reliability_sentence(report)}"
    if report.reproducible is False:
        return f"{text} Its genes are listed but not interpreted."
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


def top_genes_display(report: ModuleReport, n: int = 10) -> pd.DataFrame:
    """:meth:`ModuleReport.top_table` as the book shows it: rows ranked from 1 (1 = strongest loading)."""
    table = report.top_table(n)
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    return table


def enrichment_display(report: ModuleReport, sign: str, n: int = 15) -> pd.DataFrame:
    """:func:`bilinear_core.report.enrichment_table` reshaped to fit a page's text column.

    Term first, names :func:`readable` (long library and MSigDB names wrap), ranks from 1; columns
    ``term``, ``library``, ``overlap``, ``adjusted p``.
    """
    table = enrichment_table(report, sign, n)
    shown = pd.DataFrame(
        {
            "term": [readable(t) for t in table["term"]],
            "library": [readable(lib) for lib in table["library"]],
            "overlap": table["overlap"].to_numpy(),
            "adjusted p": table["adjusted p"].to_numpy(),
        },
        index=pd.RangeIndex(1, len(table) + 1, name="rank"),
    )
    return shown


def module_report_parts(
    report: ModuleReport,
    n_genes: int = 10,
    n_terms: int = 5,
    n_enriched: int = 15,
    caption_suffix: str = "",
    key_terms: bool = True,
) -> list:
    """The per-module material of a chapter section or :func:`dropdown`, in order (Markdown strings and tables).

    Top ``n_genes`` per sign side by side (:func:`top_genes_display`), the ``n_terms`` key terms per sign
    (``key_terms=False`` leaves them out, e.g. after a :func:`module_interpretation` that names them), the
    enrichment table of each sign (:func:`enrichment_display`, or a line saying none passed) and the full
    top-gene lists. ``caption_suffix`` is appended to every caption (e.g. ``" (simulated data)"``).
    """
    n_genes = min(
        n_genes,
        int((report.genes["sign"] == SIGNS[0]).sum()),
        int((report.genes["sign"] == SIGNS[1]).sum()),
    )
    parts = [
        f"**Top {n_genes} genes of module {report.module}{caption_suffix}**",
        top_genes_display(report, n_genes),
    ]
    terms = [
        f"- {sign.capitalize()}: "
        + ("; ".join(readable(t) for t in report.key_terms(sign, n_terms)) or "none")
        for sign in SIGNS
    ]
    if key_terms:
        parts += [
            f"**Key terms{caption_suffix}** (adjusted p ≤ 0.05)",
            "\n".join(terms),
        ]
    for sign in SIGNS:
        table = enrichment_display(report, sign, n_enriched)
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
    if report.reproducible is False:
        return head
    return f"{head}{sentence}\n\n{bullets}"


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
