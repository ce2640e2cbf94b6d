"""Tables of one module's interpretation: top genes per sign, their enrichment, summaries over outputs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .datasets.genesets import PACKAGED_LIBRARIES, POST_STAND_INS, library_path, load_library
from .enrichment import enrich_modules
from .interpret import Modules, top_genes
from .stability import REPRODUCIBLE_COS, reliability_of

SIGNS = ("positive", "negative")


@dataclass
class ModuleReport:
    """Top genes (both signs) and enrichment of one module of one output, with its reproducibility.

    ``reproducible`` is ``True``/``False`` when the module was scored (``split_half_cos`` over an ensemble of
    ``n_members`` fits, see :func:`bilinear_core.stability.module_reliability`) and ``None`` when unknown.
    """

    output: str
    module: int
    eigenvalue: float
    genes: pd.DataFrame
    enrichment: pd.DataFrame
    reproducible: bool | None = None
    split_half_cos: float = float("nan")
    n_members: int = 1

    def top_table(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` strongest genes per sign side by side (columns ``positive``, ``negative``; at most all genes)."""
        columns = {sign: self.genes.loc[self.genes["sign"] == sign, "gene"].head(n).to_list() for sign in SIGNS}
        return pd.DataFrame(columns, index=pd.RangeIndex(len(columns["positive"]), name="rank"))

    def key_terms(self, sign: str, n: int = 5) -> list[str]:
        """The ``n`` most significant terms of one sign (adjusted p ≤ the cutoff used)."""
        return self.enrichment.loc[self.enrichment["sign"] == sign, "term"].head(n).to_list()


def module_report(
    modules: Modules,
    output,
    module: int = 0,
    libraries=None,
    fraction: float = 0.01,
    min_genes: int = 50,
    reproducible_only: bool = True,
    **enrich_kwargs,
) -> ModuleReport:
    """Top genes of ``module`` of ``output`` (1 % per sign, at least ``min_genes``) and their enrichment.

    Only modules shown reproducible are interpreted: ``modules.reliability`` (written by
    :func:`bilinear_core.tl.modules` for an ensemble) must mark the module reproducible, or this raises a
    ``ValueError`` saying why (not reproducible, or unknown for a single fit or an unscored module).
    ``reproducible_only=False`` enriches it anyway; the report records the score either way.
    """
    row = reliability_of(modules, output, module)
    known = row is not None and not pd.isna(row["reproducible"])
    if reproducible_only and not (known and bool(row["reproducible"])):
        name = modules.output_names[modules._index(output)]
        if known:
            why = (
                f"is not reproducible: two halves of the ensemble agree on it with |cos| {row['split_half_cos']:.2f} "
                f"< {REPRODUCIBLE_COS}. More seeds may steady it"
            )
        else:
            why = (
                "has unknown reproducibility (a single fit, or a module bc.tl.modules did not score). Train an "
                "ensemble (bc.tl.train(..., seeds=range(5))) and score its modules with bc.tl.modules"
            )
        raise ValueError(f"Module {module} of {name!r} {why}; or pass reproducible_only=False to enrich it anyway.")
    genes = top_genes(modules, output, module, fraction=fraction, min_genes=min_genes)
    return ModuleReport(
        output=str(genes["output"].iloc[0]),
        module=module,
        eigenvalue=float(modules.values(output)[module]),
        genes=genes,
        enrichment=enrich_modules(genes, libraries, **enrich_kwargs),
        reproducible=bool(row["reproducible"]) if known else None,
        split_half_cos=float(row["split_half_cos"]) if row is not None else float("nan"),
        n_members=int(row["n_members"]) if row is not None else 1,
    )


def _as_report_list(reports) -> list[ModuleReport]:
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    if not reports or not all(isinstance(r, ModuleReport) for r in reports):
        raise ValueError("Pass a non-empty dict or list of ModuleReport objects (see module_report).")
    return reports


def summary_table(reports, metrics: pd.DataFrame | None = None, n_genes: int = 5, n_terms: int = 1) -> pd.DataFrame:
    """One row per output: ``metrics`` columns (indexed by output), module, eigenvalue, top genes and terms per sign.

    ``reports`` is a dict or list of :class:`ModuleReport`; genes and terms are joined with
    ``", "`` / ``"; "`` (``n_terms=0`` leaves the term columns out).
    """
    reports = _as_report_list(reports)
    rows = {}
    for report in reports:
        row = {"module": report.module, "eigenvalue": report.eigenvalue}
        for sign in SIGNS:
            row[f"{sign} genes"] = ", ".join(report.genes.loc[report.genes["sign"] == sign, "gene"].head(n_genes))
        if n_terms:
            for sign in SIGNS:
                row[f"{sign} terms"] = "; ".join(report.key_terms(sign, n_terms)) or "–"
        rows[report.output] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "output"
    if metrics is not None:
        missing = [o for o in table.index if o not in metrics.index]
        if missing:
            raise KeyError(f"metrics has no row for output(s) {missing}; its index is {list(metrics.index)}.")
        table = metrics.loc[table.index].join(table)
        table.index.name = "output"
    return table


def enrichment_table(report: ModuleReport, sign: str, n: int = 15) -> pd.DataFrame:
    """Display table of one sign's enriched terms: library, term, overlap and adjusted p (as text, 2 digits)."""
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {SIGNS}, got {sign!r}.")
    rows = report.enrichment.loc[report.enrichment["sign"] == sign].head(n)
    return pd.DataFrame(
        {
            "library": rows["library"].to_numpy(),
            "term": rows["term"].to_numpy(),
            "overlap": rows["overlap"].to_numpy(),
            "adjusted p": [f"{p:.2g}" for p in rows["adjusted_p"]],
        },
        index=pd.RangeIndex(len(rows), name="rank"),
    )


def library_table(stand_ins: dict[str, str] | None = None, sizes: bool = True) -> pd.DataFrame:
    """Which local library stands for each of the post's Enrichr libraries, and how mouse genes meet it.

    One row per post library (default :data:`bilinear_core.datasets.genesets.POST_STAND_INS`): the file used here,
    whether it is the post's library itself or a stand-in, where it comes from, its number of gene sets
    (``sizes=True`` reads the libraries) and how mouse gene symbols are matched to it (upper-cased on both
    sides: exact for Enrichr's mouse libraries, written in upper case; an approximation of 1:1 orthologs for
    human-symbol libraries).
    """
    stand_ins = POST_STAND_INS if stand_ins is None else stand_ins
    rows = []
    for post, local in stand_ins.items():
        path = library_path(local)
        package = next((p for p in PACKAGED_LIBRARIES.get(local, ()) if p in path.parts), None)
        row = {
            "post's library": post,
            "used here": local,
            "match": "exact" if post == local else "stand-in",
            "source": f"Enrichr's file, PyPI package {package}" if package else f"{path.name} in data/genesets",
        }
        if sizes:
            row["gene sets"] = len(load_library(local))
        row["mouse genes matched"] = (
            "by symbol (library in mouse symbols, upper case)"
            if "mouse" in local.lower()
            else "by upper-cased symbol to human symbols (1:1-ortholog approximation)"
        )
        rows.append(row)
    return pd.DataFrame(rows).set_index("post's library")
