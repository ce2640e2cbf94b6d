"""Over-representation analysis of gene lists against local gene-set libraries (no network).

Libraries are read by :mod:`bilinear_core.datasets.genesets` from two places: Enrichr's own files shipped in the
PyPI package ``blitzgsea`` (Apache-2.0; see :data:`~bilinear_core.datasets.genesets.PACKAGED_LIBRARIES`) and GMT
files in ``<data dir>/genesets`` or the data dir itself (any ``NAME.gmt`` you add).
:data:`~bilinear_core.datasets.genesets.POST_STAND_INS` says which local file stands for each of the post's seven
Enrichr libraries; :data:`~bilinear_core.datasets.genesets.MOUSE_LIBRARIES` is that set (the pancreas chapters),
:data:`~bilinear_core.datasets.genesets.HUMAN_LIBRARIES` its human counterpart (A549, K562). Genes are matched
upper-cased on both sides: for mouse genes against human-symbol libraries that is the usual first
approximation of 1:1 orthologs; Enrichr's mouse libraries are written in upper case already.

The test runs here, over all terms of a library at once (:func:`hypergeometric` on an :class:`IndexedLibrary`);
its p-values, adjusted p-values, odds ratios and combined scores equal gseapy's ``enrich`` bit for bit (tested).
``online=True`` asks the Enrichr web service instead, through gseapy.
"""

from __future__ import annotations

from functools import lru_cache

import gseapy
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import hypergeom

from .datasets.genesets import DEFAULT_LIBRARIES, POST_LIBRARIES, load_library

COLUMNS = ["library", "term", "overlap", "p_value", "adjusted_p", "odds_ratio", "combined_score", "genes"]


class IndexedLibrary:
    """A library ``{term: genes}`` indexed for :func:`hypergeometric`: ``terms`` sorted by name (gseapy's order),
    ``genes`` (every gene, sorted), ``members`` (each term's gene positions) and their sparse ``(terms, genes)``
    ``incidence`` matrix."""

    def __init__(self, library: dict):
        self.terms = sorted(library)
        sets = [{str(g) for g in library[t]} for t in self.terms]
        self.genes = pd.Index(sorted(set().union(*sets)))
        position = {gene: i for i, gene in enumerate(self.genes)}
        self.members = [np.array(sorted(position[g] for g in genes), dtype=np.int64) for genes in sets]
        indptr = np.concatenate([[0], np.cumsum([len(m) for m in self.members])])
        indices = np.concatenate(self.members) if self.members else np.zeros(0, dtype=np.int64)
        data = np.ones(len(indices), dtype=np.int64)
        self.incidence = sparse.csr_matrix((data, indices, indptr), shape=(len(self.terms), len(self.genes)))


@lru_cache(maxsize=16)
def _indexed(name: str) -> IndexedLibrary:
    return IndexedLibrary(load_library(name))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values ``(n,)``, computed as gseapy (and GOATools) do."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    ecdf = np.arange(1, len(p) + 1) / float(len(p))
    adjusted = np.minimum.accumulate((p[order] / ecdf)[::-1])[::-1]
    adjusted[adjusted > 1] = 1
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def hypergeometric(query, library: IndexedLibrary, background=None) -> pd.DataFrame:
    """Enrichr's over-representation test of upper-case ``query`` genes in every term with a hit.

    The background is every gene of the library (Enrichr's default) or the set ``background``; query genes
    and terms are restricted to it. Per term: ``P(X ≥ x)`` for the hypergeometric overlap ``x`` of ``k`` query
    genes with a term of ``m`` genes among ``N``, Enrichr's odds ratio with the Haldane–Anscombe ½ (as gseapy),
    the combined score ``−log(p) · odds ratio`` and the overlapping genes. Values equal ``gseapy.enrich``'s.
    """
    genes = library.genes
    in_query = genes.isin(list(query))
    if background is None:
        n_background, k, sizes = len(genes), int(in_query.sum()), np.asarray(library.incidence.sum(axis=1)).ravel()
    else:
        background = set(background)
        in_background = genes.isin(list(background))
        in_query &= in_background
        n_background, k = len(background), len(set(query) & background)
        sizes = library.incidence @ in_background.astype(np.int64)
    overlaps = library.incidence @ in_query.astype(np.int64)
    rows = np.flatnonzero(overlaps >= 1)
    x, m = overlaps[rows], sizes[rows]
    p = hypergeom.sf(x - 1, n_background, m, k)
    odds = ((x + 0.5) * (n_background - m - k + x + 0.5)) / ((m - x + 0.5) * (k - x + 0.5))
    return pd.DataFrame(
        {
            "term": [library.terms[r] for r in rows],
            "overlap": [f"{a}/{b}" for a, b in zip(x, m)],
            "p_value": p,
            "adjusted_p": benjamini_hochberg(p),
            "odds_ratio": odds,
            "combined_score": -np.log(p) * odds,
            "hits": [genes[library.members[r][in_query[library.members[r]]]].tolist() for r in rows],
        }
    )


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
        frames = [_from_gseapy(result.results)]
    else:
        universe = None if background is None else {str(g).upper() for g in background}
        named = libraries if isinstance(libraries, dict) else dict.fromkeys(libraries)
        frames = [
            hypergeometric(query, _indexed(name) if sets is None else IndexedLibrary(sets), universe).assign(
                library=name
            )
            for name, sets in named.items()
        ]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    table = table[table["adjusted_p"] <= cutoff].sort_values(["adjusted_p", "p_value"], kind="stable")
    table = (table if top is None else table.head(top)).reset_index(drop=True)
    table["genes"] = [";".join(sorted(symbols.get(g, g) for g in hits)) for hits in table["hits"]]
    return table[COLUMNS]


def _from_gseapy(results: pd.DataFrame) -> pd.DataFrame:
    """The Enrichr web service's table (via gseapy) in :func:`hypergeometric`'s columns, with ``library``."""
    return pd.DataFrame(
        {
            "library": results["Gene_set"],
            "term": results["Term"],
            "overlap": results["Overlap"],
            "p_value": results["P-value"].astype(float),
            "adjusted_p": results["Adjusted P-value"].astype(float),
            "odds_ratio": results["Odds Ratio"].astype(float),
            "combined_score": results["Combined Score"].astype(float),
            "hits": [str(hits).split(";") for hits in results["Genes"]],
        }
    )


def enrich_modules(top_genes_table: pd.DataFrame, libraries=None, **kwargs) -> pd.DataFrame:
    """:func:`enrich` each sign of a :func:`bilinear_core.interpret.top_genes` table; adds a ``sign`` column."""
    frames = []
    for sign, genes in top_genes_table.groupby("sign", sort=False)["gene"]:
        frames.append(enrich(genes.tolist(), libraries, **kwargs).assign(sign=sign))
    table = pd.concat(frames, ignore_index=True)
    return table[["sign", *COLUMNS]]
