"""Loaders for the post's data sets and gene-set libraries, preferring local copies over downloads.

Every data source of the package is loaded here: the pancreas (:func:`pancreas`), Norman et al. 2019
(:func:`norman19`), sci-Plex2 real (:func:`sciplex2`) and simulated (:func:`simulated_sciplex2`), and gene-set
libraries (:mod:`~bilinear_core.datasets.genesets`). Constants for sci-Plex2: ``DRUGS`` (the post's drug names,
in output order), ``DRUG_NAMES`` (every known spelling -> the post's name), ``VEHICLE`` (the treatment label of
vehicle cells) and ``HASH_FILTERS`` (the authors' cell filters on the hash call).

Files are looked up in :func:`data_dir`: ``$BILINEAR_DATA_DIR`` or ``data/`` at the repository
root (``make`` links ``../shared/data`` and ``../shared/genesets`` there when they exist).
"""

from __future__ import annotations

from anndata import AnnData

from . import genesets, simulate  # noqa: F401 (submodules reachable as attributes)
from ._files import data_dir, find, read_h5ad
from ._sciplex2 import DRUG_NAMES as DRUG_NAMES
from ._sciplex2 import DRUGS as DRUGS
from ._sciplex2 import HASH_FILTERS as HASH_FILTERS
from ._sciplex2 import VEHICLE as VEHICLE
from ._sciplex2 import harmonize_sciplex2, sciplex2, sciplex2_design
from .genesets import load_library
from .simulate import sciplex2 as simulated_sciplex2

#: scVelo's full pancreas file (27,998 genes, X_umap), as written by ``scvelo.datasets.pancreas``.
PANCREAS_FULL = "endocrinogenesis_day15.h5ad"
#: The offline copy (all 3,696 cells, 2,000 genes, per-cell totals over all genes in obs).
PANCREAS_OFFLINE = "pancreas_3696cells_2000genes.h5ad"
#: PerturBench's development fixture, with Norman et al. 2019 (K562 CRISPRa) and McFaline-Figueroa et al. 2023 cells.
PERTURBENCH = "perturbench_devel.h5ad"


def pancreas(download: bool = True) -> AnnData:
    """scVelo's E15.5 pancreas (Bastidas-Ponce et al. 2019): 3,696 cells, 8 ``clusters``.

    Prefers the full scVelo file, then the offline copy (2,000 genes), then downloads the full
    file with ``scvelo.datasets.pancreas`` into the data dir (``download=True``). Which file was
    used is recorded in ``adata.uns["dataset"]`` together with the size factor to normalise by:
    the offline copy keeps only 34 % of each cell's counts, so its ``obs["initial_size_spliced"]``
    (totals over all genes) stands in for ``normalize_total``'s own totals.
    """
    how = (
        f"download the full file with `scvelo.datasets.pancreas('{data_dir() / 'Pancreas' / PANCREAS_FULL}')` "
        f"(needs internet), or put {PANCREAS_OFFLINE} in {data_dir()} (set $BILINEAR_DATA_DIR to use another folder)."
    )
    path = find([PANCREAS_FULL, PANCREAS_OFFLINE])
    if path is None and download:
        import scvelo as scv

        target = data_dir() / "Pancreas" / PANCREAS_FULL
        try:
            scv.datasets.pancreas(file_path=str(target))
        except Exception as err:  # no network, proxy, ...
            raise FileNotFoundError(
                f"No pancreas data found in {data_dir()} and the download failed ({err}); {how}"
            ) from None
        path = target
    if path is None:
        raise FileNotFoundError(f"No pancreas data found in {data_dir()}; {how}")
    adata = read_h5ad(path, "the pancreas data", how)
    for key in ("clusters",):
        if key not in adata.obs:
            raise ValueError(f"{path} has no obs[{key!r}]; it is not scVelo's pancreas file. {how}")
    if "spliced" not in adata.layers:
        raise ValueError(f"{path} has no 'spliced' layer; it is not scVelo's pancreas file. {how}")
    offline = path.name == PANCREAS_OFFLINE
    adata.uns["dataset"] = {
        "name": "scVelo pancreas (E15.5)",
        "file": str(path.name),
        "path": str(path),
        "n_cells": int(adata.n_obs),
        "n_genes_in_file": int(adata.n_vars),
        "kind": "offline copy (all cells, 2,000 genes)" if offline else "full scVelo file",
        "size_factor_key": "initial_size_spliced" if offline else None,
    }
    return adata


def norman19() -> AnnData:
    """Norman et al. 2019 K562 CRISPRa cells (single genes, gene pairs, control) from PerturBench's fixture.

    Reads ``perturbench_devel.h5ad`` from :func:`data_dir` and keeps the cells with ``obs["dataset"] ==
    "norman19"``: 3,375 cells × 500 genes, ``obs["condition"]`` like ``"KLF1"``, ``"KLF1+MAP2K6"`` or
    ``"control"``. ``X`` is already log-normalised (``uns["log1p"]`` is checked): do not normalise it
    again. The file used is recorded in ``adata.uns["dataset"]``.
    """
    how = (
        f"put PerturBench's development fixture (`altoslabs/perturbench`, "
        f"`src/perturbench/data/resources/devel.h5ad`, BSD-3-Clause) in {data_dir() / PERTURBENCH} "
        "(set $BILINEAR_DATA_DIR to use another folder)."
    )
    path = data_dir() / PERTURBENCH
    if not path.is_file():
        raise FileNotFoundError(f"No {PERTURBENCH} in {data_dir()}; {how}")
    adata = read_h5ad(path, "the PerturBench fixture", how)
    for key in ("dataset", "condition"):
        if key not in adata.obs:
            raise ValueError(f"{path} has no obs[{key!r}]; it is not PerturBench's fixture. {how}")
    if "log1p" not in adata.uns:
        raise ValueError(
            f"{path} has no uns['log1p']: expected log-normalised expression (PerturBench's fixture is). {how}"
        )
    keep = (adata.obs["dataset"].astype(str) == "norman19").to_numpy()
    if not keep.any():
        raise ValueError(f"{path} has no cells with obs['dataset'] == 'norman19'. {how}")
    adata = adata[keep].copy()
    adata.obs["condition"] = adata.obs["condition"].astype(str).astype("category")
    adata.uns["dataset"] = {
        "name": "Norman et al. 2019 (K562, CRISPRa), PerturBench development fixture",
        "file": path.name,
        "path": str(path),
        "n_cells": int(adata.n_obs),
        "n_genes_in_file": int(adata.n_vars),
        "kind": "log-normalised (uns['log1p'] present; not normalised again)",
    }
    return adata


def sciplex2_or_simulated(seed: int = 0, download: bool = True, filter_cells: bool = True) -> AnnData:
    """The real sci-Plex2 file when it can be had (see :func:`sciplex2`), else :func:`simulated_sciplex2`.

    ``uns["dataset"]["simulated"]`` says which; the simulation carries its planted truth in
    ``uns["planted"]``. ``filter_cells`` goes to :func:`sciplex2` (the simulation has no hash calls).
    """
    try:
        return sciplex2(download=download, filter_cells=filter_cells)
    except FileNotFoundError:
        return simulated_sciplex2(seed=seed)


# functions only: the API reference documents what __all__ lists, and the constants above are described in the
# module docstring (their doc-comments live in the private _sciplex2)
__all__ = [  # in the order of the module docstring (and of the API page)
    "pancreas",
    "norman19",
    "sciplex2",
    "simulated_sciplex2",
    "sciplex2_or_simulated",
    "sciplex2_design",
    "harmonize_sciplex2",
    "load_library",
    "data_dir",
]
