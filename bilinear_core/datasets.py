"""Loaders for the post's data sets, preferring local copies over downloads.

Files are looked up in :func:`data_dir`: ``$BILINEAR_DATA_DIR`` or ``data/`` at the repository
root (``make`` links ``../shared/data`` and ``../shared/genesets`` there when they exist).
"""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
from anndata import AnnData

#: scVelo's full pancreas file (27,998 genes, X_umap), as written by ``scvelo.datasets.pancreas``.
PANCREAS_FULL = "endocrinogenesis_day15.h5ad"
#: The offline copy (all 3,696 cells, 2,000 genes, per-cell totals over all genes in obs).
PANCREAS_OFFLINE = "pancreas_3696cells_2000genes.h5ad"
#: pertpy's sci-Plex2 file name.
SCIPLEX2 = "srivatsan_2020_sciplex2.h5ad"


def data_dir() -> Path:
    """Where data files are looked for: ``$BILINEAR_DATA_DIR`` or ``<repo>/data``."""
    return Path(os.environ.get("BILINEAR_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))


def _read(path: Path, what: str, how_to_get: str) -> AnnData:
    try:
        return ad.read_h5ad(path)
    except Exception as err:  # h5py/anndata raise many types for truncated or foreign files
        raise OSError(
            f"Could not read {what} from {path} ({type(err).__name__}: {err}). The file looks corrupted "
            f"or incomplete: delete it and {how_to_get}"
        ) from err


def _find(names: list[str]) -> Path | None:
    for name in names:
        for folder in (data_dir(), data_dir() / "Pancreas"):
            if (folder / name).is_file():
                return folder / name
    return None


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
    path = _find([PANCREAS_FULL, PANCREAS_OFFLINE])
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
    adata = _read(path, "the pancreas data", how)
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


def sciplex2(download: bool = True) -> AnnData:
    """sci-Plex2 (Srivatsan et al. 2020; A549 cells, 4 drugs × doses), via ``pertpy`` when not local."""
    how = (
        f"download it with `pertpy.data.srivatsan_2020_sciplex2()` (needs internet) and save it as "
        f"{data_dir() / SCIPLEX2} (set $BILINEAR_DATA_DIR to use another folder)."
    )
    path = _find([SCIPLEX2])
    if path is None and download:
        import pertpy as pt

        try:
            adata = pt.data.srivatsan_2020_sciplex2()
        except Exception as err:
            raise FileNotFoundError(
                f"No sci-Plex2 data in {data_dir()} and the download failed ({err}); {how}"
            ) from None
        adata.uns["dataset"] = {"name": "sci-Plex2", "file": "pertpy download", "n_cells": int(adata.n_obs)}
        return adata
    if path is None:
        raise FileNotFoundError(f"No sci-Plex2 data in {data_dir()}; {how}")
    adata = _read(path, "sci-Plex2", how)
    adata.uns["dataset"] = {"name": "sci-Plex2", "file": path.name, "path": str(path), "n_cells": int(adata.n_obs)}
    return adata


def results_dir() -> Path:
    """Where chapters save reusable artefacts (CSV tables): ``$BILINEAR_RESULTS_DIR`` or ``<repo>/_build/results``."""
    path = Path(os.environ.get("BILINEAR_RESULTS_DIR", Path(__file__).resolve().parents[1] / "_build" / "results"))
    path.mkdir(parents=True, exist_ok=True)
    return path
