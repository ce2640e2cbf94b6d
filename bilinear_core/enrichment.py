"""Over-representation analysis of gene lists against local gene-set libraries (no network).

Libraries are read by :mod:`bilinear_core.datasets.genesets` from two places: Enrichr's own files shipped in the
PyPI package ``blitzgsea`` (Apache-2.0; see :data:`~bilinear_core.datasets.genesets.PACKAGED_LIBRARIES`) and GMT
files in ``<data dir>/genesets`` or the data dir itself (any ``NAME.gmt`` you add).
:data:`~bilinear_core.datasets.genesets.POST_STAND_INS` says which local file stands for each of the post's seven
Enrichr libraries; :data:`~bilinear_core.datasets.genesets.MOUSE_LIBRARIES` is that set (the pancreas chapters),
:data:`~bilinear_core.datasets.genesets.HUMAN_LIBRARIES` its human counterpart (A549, K562). Genes are matched
upper-cased on both sides: for mouse genes against human-symbol libraries that is the usual first
approximation of 1:1 orthologs; Enrichr's mouse libraries are written in upper case already.
"""

from __future__ import annotations

import gseapy
import pandas as pd

from .datasets.genesets import DEFAULT_LIBRARIES, POST_LIBRARIES, load_library

COLUMNS = ["library", "term", "overlap", "p_value", "adjusted_p", "odds_ratio", "combined_score", "genes"]


def _tidy(results: pd.DataFrame, symbols: dict[str, str]) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "library": results["Gene_set"],
            "term": results["Term"],
            "overlap": results["Overlap"],
            "p_value": results["P-value"].astype(float),
            "adjusted_p": results["Adjusted P-value"].astype(float),
            "odds_ratio": results["Odds Ratio"].astype(float),
            "combined_score": results["Combined Score"].astype(float),
            "genes": [";".join(sorted(symbols.get(g, g) for g in str(hits).split(";"))) for hits in results["Genes"]],
        }
    )
    return out


def enrich(
    genes,
    libraries=None,
    *,
    background=None,
    cutoff: float = 0.05,
    top: int | None = 15,
    online: bool = False,
    organism: str = "mouse",
) -> pd.DataFrame:
    """Hypergeometric over-representation of ``genes`` in each library, Benjamini–Hochberg per library.

    Parameters
    ----------
    genes
        Gene symbols (any case; matched upper-cased).
    libraries
        Library names (see :func:`~bilinear_core.datasets.genesets.available_libraries`) or
        ``{name: {term: genes}}`` dicts; default ``DEFAULT_LIBRARIES``, or the post's
        :data:`~bilinear_core.datasets.genesets.POST_LIBRARIES` with ``online=True``.
    background
        Universe of genes; ``None`` uses every gene of each library (Enrichr's default).
    cutoff, top
        Keep terms with adjusted p ≤ ``cutoff`` and the ``top`` smallest adjusted p overall
        (``cutoff=1, top=None`` returns every term with at least one hit).
    online
        Query the Enrichr web service instead (needs internet), e.g. with
        :data:`~bilinear_core.datasets.genesets.POST_LIBRARIES`.

    Returns
    -------
    One row per term: ``library, term, overlap, p_value, adjusted_p, odds_ratio, combined_score, genes``.
    """
    symbols = {str(g).upper(): str(g) for g in genes}
    if not symbols:
        raise ValueError("The gene list is empty.")
    query = sorted(symbols)
    if libraries is None:
        libraries = POST_LIBRARIES if online else DEFAULT_LIBRARIES
    if online:
        result = gseapy.enrichr(
            gene_list=list(symbols.values()), gene_sets=list(libraries), organism=organism, outdir=None
        )
        frames = [result.results]
    else:
        libraries = {name: load_library(name) for name in libraries} if not isinstance(libraries, dict) else libraries
        universe = None if background is None else {str(g).upper() for g in background}
        frames = []
        for name, library in libraries.items():
            # Enrichr's default background is every gene of the library; gseapy builds that union quadratically
            # when background=None (seconds for GO BP), so pass the same set, built once
            genes = set().union(*library.values()) if universe is None else universe
            result = gseapy.enrich(gene_list=query, gene_sets=library, background=genes, outdir=None, no_plot=True)
            if isinstance(result.results, pd.DataFrame) and len(result.results):
                frames.append(result.results.assign(Gene_set=name))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    table = _tidy(pd.concat(frames, ignore_index=True), symbols)
    table = table[table["adjusted_p"] <= cutoff].sort_values(["adjusted_p", "p_value"], kind="stable")
    return (table if top is None else table.head(top)).reset_index(drop=True)


def enrich_modules(top_genes_table: pd.DataFrame, libraries=None, **kwargs) -> pd.DataFrame:
    """:func:`enrich` each sign of a :func:`bilinear_core.interpret.top_genes` table; adds a ``sign`` column."""
    frames = []
    for sign, genes in top_genes_table.groupby("sign", sort=False)["gene"]:
        frames.append(enrich(genes.tolist(), libraries, **kwargs).assign(sign=sign))
    table = pd.concat(frames, ignore_index=True)
    return table[["sign", *COLUMNS]]
