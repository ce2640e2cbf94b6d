"""Over-representation analysis of gene lists against local gene-set libraries (no network).

Libraries come from two places: Enrichr's own files shipped in the PyPI package ``pyenrichr``
(``GO_Biological_Process_2023``, the post's library, ``KEGG_2021_Human``,
``WikiPathway_2023_Human``) and GMT files in ``<data dir>/genesets`` or the data dir itself
(``MSigDB_Hallmark_2020``, ``GO_Molecular_Function_2022``, ``GO_Cellular_Component_2022``, or any
``NAME.gmt`` you add). Symbols in these libraries are human: mouse genes are matched by
upper-casing both sides, the usual first approximation of 1:1 orthologs.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import gseapy
import pandas as pd

from .datasets import data_dir

PACKAGED_LIBRARIES = ("GO_Biological_Process_2023", "KEGG_2021_Human", "WikiPathway_2023_Human")
GMT_LIBRARIES = ("MSigDB_Hallmark_2020", "GO_Molecular_Function_2022", "GO_Cellular_Component_2022")
DEFAULT_LIBRARIES = PACKAGED_LIBRARIES + GMT_LIBRARIES
#: The seven Enrichr libraries of the post, for :func:`enrich` with ``online=True``.
POST_LIBRARIES = (
    "GO_Biological_Process_2023",
    "GO_Molecular_Function_2023",
    "GO_Cellular_Component_2023",
    "KEGG_2019_Mouse",
    "Reactome_2022",
    "MSigDB_Hallmark_2020",
    "WikiPathways_2019_Mouse",
)
COLUMNS = ["library", "term", "overlap", "p_value", "adjusted_p", "odds_ratio", "combined_score", "genes"]


def read_gmt(path: str | Path) -> dict[str, list[str]]:
    """Read a GMT / Enrichr text library: ``term<TAB>description<TAB>gene…`` per line.

    Genes are upper-cased; Enrichr's weighted entries (``GENE,1.0``) keep their symbol.
    """
    library = {}
    with open(path) as fh:
        for line in fh:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3:
                continue
            genes = {g.split(",")[0].strip().upper() for g in fields[2:]} - {""}
            if genes:
                library[fields[0]] = sorted(genes)
    if not library:
        raise ValueError(f"{path} holds no gene sets; is it a GMT file?")
    return library


def _library_path(name: str) -> Path:
    if name in PACKAGED_LIBRARIES or (files("pyenrichr") / "data" / name).is_file():
        return Path(str(files("pyenrichr") / "data" / name))
    for folder in (data_dir() / "genesets", data_dir()):
        if (folder / f"{name}.gmt").is_file():
            return folder / f"{name}.gmt"
    raise FileNotFoundError(
        f"Gene-set library {name!r} not found. Packaged libraries: {PACKAGED_LIBRARIES}; "
        f"put other libraries as {name}.gmt in {data_dir() / 'genesets'} (set $BILINEAR_DATA_DIR to move it). "
        "Enrichr's libraries can be downloaded from its 'Libraries' page in GMT format."
    )


@lru_cache(maxsize=16)
def load_library(name: str) -> dict[str, list[str]]:
    """One library as ``{term: [GENE, …]}`` (upper-case symbols), read once per session."""
    return read_gmt(_library_path(name))


def available_libraries() -> list[str]:
    """Names of the default libraries that can be read here."""
    found = []
    for name in DEFAULT_LIBRARIES:
        try:
            _library_path(name)
        except FileNotFoundError:
            continue
        found.append(name)
    return found


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
        Library names (see :func:`available_libraries`) or ``{name: {term: genes}}`` dicts; default
        ``DEFAULT_LIBRARIES``, or the post's :data:`POST_LIBRARIES` with ``online=True``.
    background
        Universe of genes; ``None`` uses every gene of each library (Enrichr's default).
    cutoff, top
        Keep terms with adjusted p ≤ ``cutoff`` and the ``top`` smallest adjusted p overall
        (``cutoff=1, top=None`` returns every term with at least one hit).
    online
        Query the Enrichr web service instead (needs internet), e.g. with :data:`POST_LIBRARIES`.

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
            result = gseapy.enrich(gene_list=query, gene_sets=library, background=universe, outdir=None, no_plot=True)
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
