"""Over-representation analysis of gene lists against local gene-set libraries (no network).

Libraries come from two places: Enrichr's own files shipped in PyPI packages (see
:data:`PACKAGED_LIBRARIES`: ``blitzgsea``, Apache-2.0, is preferred where it has the library) and GMT files
in ``<data dir>/genesets`` or the data dir itself (any ``NAME.gmt`` you add). :data:`POST_STAND_INS` says
which local file stands for each of the post's seven Enrichr libraries; :data:`MOUSE_LIBRARIES` is that set
(the pancreas chapters), :data:`HUMAN_LIBRARIES` its human counterpart (A549, K562). Genes are matched
upper-cased on both sides: for mouse genes against human-symbol libraries that is the usual first
approximation of 1:1 orthologs; Enrichr's mouse libraries are written in upper case already.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import gseapy
import pandas as pd

from .datasets import data_dir

#: Enrichr files shipped inside PyPI packages, with the packages to look in, in order of preference.
PACKAGED_LIBRARIES = {
    "GO_Biological_Process_2023": ("blitzgsea", "pyenrichr"),
    "KEGG_2021_Human": ("blitzgsea", "pyenrichr"),
    "WikiPathway_2023_Human": ("pyenrichr",),
}
#: The post's seven Enrichr libraries (for :func:`enrich` with ``online=True``) and the local file standing
#: for each: exact where the value equals the key, otherwise the closest library available offline.
POST_STAND_INS = {
    "GO_Biological_Process_2023": "GO_Biological_Process_2023",
    "GO_Molecular_Function_2023": "GO_Molecular_Function_2022",
    "GO_Cellular_Component_2023": "GO_Cellular_Component_2022",
    "KEGG_2019_Mouse": "KEGG_2019_Mouse",
    "Reactome_2022": "Reactome_MSigDB_7.5.1",
    "MSigDB_Hallmark_2020": "MSigDB_Hallmark_2020",
    "WikiPathways_2019_Mouse": "WikiPathways_2019_Mouse",
}
#: The post's seven Enrichr library names (for the Enrichr web service).
POST_LIBRARIES = tuple(POST_STAND_INS)
#: Local libraries for mouse data, the stand-ins of the post's seven.
MOUSE_LIBRARIES = tuple(POST_STAND_INS.values())
#: Local libraries for human data, the same sources with human KEGG and WikiPathways.
HUMAN_LIBRARIES = (
    "GO_Biological_Process_2023",
    "GO_Molecular_Function_2022",
    "GO_Cellular_Component_2022",
    "KEGG_2021_Human",
    "Reactome_MSigDB_7.5.1",
    "MSigDB_Hallmark_2020",
    "WikiPathway_2023_Human",
)
DEFAULT_LIBRARIES = MOUSE_LIBRARIES
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


def library_path(name: str) -> Path:
    """Where library ``name`` is read from: a package's Enrichr file (:data:`PACKAGED_LIBRARIES`) or ``NAME.gmt``."""
    for package in PACKAGED_LIBRARIES.get(name, ()):
        try:
            path = files(package) / "data" / name
        except ModuleNotFoundError:
            continue
        if path.is_file():
            return Path(str(path))
    for folder in (data_dir() / "genesets", data_dir()):
        if (folder / f"{name}.gmt").is_file():
            return folder / f"{name}.gmt"
    raise FileNotFoundError(
        f"Gene-set library {name!r} not found. Libraries shipped in packages: {sorted(PACKAGED_LIBRARIES)}; "
        f"put other libraries as {name}.gmt in {data_dir() / 'genesets'} (set $BILINEAR_DATA_DIR to move it). "
        "Enrichr's libraries can be downloaded from its 'Libraries' page in GMT format."
    )


@lru_cache(maxsize=16)
def load_library(name: str) -> dict[str, list[str]]:
    """One library as ``{term: [GENE, …]}`` (upper-case symbols), read once per session."""
    return read_gmt(library_path(name))


def available_libraries(libraries=DEFAULT_LIBRARIES) -> list[str]:
    """Names among ``libraries`` that can be read here."""
    found = []
    for name in libraries:
        try:
            library_path(name)
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
