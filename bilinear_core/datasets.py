"""Loaders for the post's data sets, preferring local copies over downloads.

Files are looked up in :func:`data_dir`: ``$BILINEAR_DATA_DIR`` or ``data/`` at the repository
root (``make`` links ``../shared/data`` and ``../shared/genesets`` there when they exist).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

import anndata as ad
import pandas as pd
from anndata import AnnData

#: scVelo's full pancreas file (27,998 genes, X_umap), as written by ``scvelo.datasets.pancreas``.
PANCREAS_FULL = "endocrinogenesis_day15.h5ad"
#: The offline copy (all 3,696 cells, 2,000 genes, per-cell totals over all genes in obs).
PANCREAS_OFFLINE = "pancreas_3696cells_2000genes.h5ad"
#: pertpy's sci-Plex2 file name.
SCIPLEX2 = "srivatsan_2020_sciplex2.h5ad"
#: PerturBench's development fixture, with Norman et al. 2019 (K562 CRISPRa) and McFaline-Figueroa et al. 2023 cells.
PERTURBENCH = "perturbench_devel.h5ad"
#: The real sci-Plex2 design table, package data in ``bilinear_core/data``.
SCIPLEX2_DESIGN = "sciplex2_design.csv"


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


def sciplex2_design() -> pd.DataFrame:
    """The real sci-Plex2 design (no expression), shipped with the package: one row per drug × dose.

    Columns: ``drug`` (BMS, Dex, Nutlin, SAHA), ``dose`` (the hash sample sheet's label; 0 = that
    drug's vehicle), ``dose_uM_viability_assay`` (the concentration in the viability assay's table),
    ``viability_mean`` and ``viability_sd`` (CellTiter-Glo over ``n_replicates`` wells, vehicle = 1)
    and ``n_wells`` (hashed wells per condition). From ``cole-trapnell-lab/sci-plex``
    ``small_screen/hashSampleSheet.txt`` and ``sciPlex2_CTG_results.csv`` (Srivatsan et al. 2020).
    """
    with (files("bilinear_core") / "data" / SCIPLEX2_DESIGN).open() as fh:
        return pd.read_csv(fh)


def _online(host: str = "zenodo.org", port: int = 443, timeout: float = 3.0) -> bool:
    """Whether ``host`` answers within ``timeout`` seconds (so a download is worth trying)."""
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def sciplex2(download: bool = True) -> AnnData:
    """sci-Plex2 (Srivatsan et al. 2020; A549 cells, 4 drugs × 7 doses + vehicle), via ``pertpy`` when not local.

    Reads ``srivatsan_2020_sciplex2.h5ad`` (scPerturb's file) from the data dir, or downloads it with
    ``pertpy.data.srivatsan_2020_sciplex2()`` (``download=True`` and zenodo.org reachable), then adds
    the chapter's columns with :func:`bilinear_core.perturbation.harmonize_sciplex2` (``drug``,
    ``dose``, ``treatment``; cells without a well assignment dropped). ``uns["dataset"]`` says which
    file was used.
    """
    from .perturbation import harmonize_sciplex2

    how = (
        f"download it with `pertpy.data.srivatsan_2020_sciplex2()` (needs internet) and save it as "
        f"{data_dir() / SCIPLEX2} (set $BILINEAR_DATA_DIR to use another folder)."
    )
    path = _find([SCIPLEX2])
    if path is None and download and _online():
        import pertpy as pt

        try:
            adata = pt.data.srivatsan_2020_sciplex2()
        except Exception as err:
            raise FileNotFoundError(
                f"No sci-Plex2 data in {data_dir()} and the download failed ({err}); {how}"
            ) from None
        source = {"file": "pertpy download", "path": None}
    elif path is None:
        raise FileNotFoundError(f"No sci-Plex2 data in {data_dir()} and no download possible; {how}")
    else:
        adata = _read(path, "sci-Plex2", how)
        source = {"file": path.name, "path": str(path)}
    adata = harmonize_sciplex2(adata)
    adata.uns["dataset"] = {
        "name": "sci-Plex2",
        **source,
        "simulated": False,
        "kind": "scPerturb's sci-Plex2 file (real data)",
        "n_cells": int(adata.n_obs),
        "n_cells_in_file": adata.uns["harmonized"]["n_cells_in"],
        "n_unassigned_dropped": adata.uns["harmonized"]["n_unassigned_dropped"],
        "n_genes_in_file": int(adata.n_vars),
    }
    return adata


def norman19() -> AnnData:
    """Norman et al. 2019 K562 CRISPRa cells (single genes, gene pairs, control) from PerturBench's fixture.

    Reads :data:`PERTURBENCH` from :func:`data_dir` and keeps the cells with ``obs["dataset"] ==
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
    adata = _read(path, "the PerturBench fixture", how)
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


def sciplex2_or_simulated(seed: int = 0, download: bool = True) -> AnnData:
    """The real sci-Plex2 file when it can be had (see :func:`sciplex2`), else :func:`bilinear_core.simulate.sciplex2`.

    ``uns["dataset"]["simulated"]`` says which; the simulation carries its planted truth in
    ``uns["planted"]``.
    """
    try:
        return sciplex2(download=download)
    except FileNotFoundError:
        from .simulate import sciplex2 as simulate_sciplex2

        return simulate_sciplex2(seed=seed)


def results_dir() -> Path:
    """Where chapters save reusable artefacts (CSV tables): ``$BILINEAR_RESULTS_DIR`` or ``<repo>/_build/results``."""
    path = Path(os.environ.get("BILINEAR_RESULTS_DIR", Path(__file__).resolve().parents[1] / "_build" / "results"))
    path.mkdir(parents=True, exist_ok=True)
    return path
