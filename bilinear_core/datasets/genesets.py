"""Gene-set libraries read locally: Enrichr's files shipped in a PyPI package and GMT files in the data dir.

:data:`PACKAGED_LIBRARIES` lists the Enrichr files shipped in the package ``blitzgsea`` (Apache-2.0); any
``NAME.gmt`` in ``<data dir>/genesets`` or the data dir itself can be named as a library (``make data`` links
``WikiPathway_2023_Human.gmt`` and the other shared libraries there).
:data:`POST_STAND_INS` says which local file stands for each of the post's seven Enrichr libraries;
:data:`MOUSE_LIBRARIES` is that set, :data:`HUMAN_LIBRARIES` its human counterpart. Genes are upper-cased.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from ._files import data_dir

#: Enrichr files shipped inside PyPI packages, with the packages to look in, in order of preference.
PACKAGED_LIBRARIES = {
    "GO_Biological_Process_2023": ("blitzgsea",),
    "KEGG_2021_Human": ("blitzgsea",),
}
#: The post's seven Enrichr libraries (for :func:`~bilinear_core.enrichment.enrich` with ``online=True``) and the
#: local file standing for each: exact where the value equals the key, otherwise the closest library available offline.
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
