"""sci-Plex2 (Srivatsan et al. 2020): the real design (package data), the real file and its harmonisation.

A549 cells treated with four compounds at seven doses plus each drug's vehicle. The post calls them SAHA,
Nutlin, BMS and Dex; :data:`DRUG_NAMES` maps other spellings (scPerturb's, the compounds' full names) to
these, and :func:`harmonize_sciplex2` turns scPerturb's obs columns into the columns the chapters use
(``drug``, ``dose``, ``treatment``).
"""

from __future__ import annotations

import socket
from importlib.resources import files

import numpy as np
import pandas as pd
from anndata import AnnData

from ..checks import get_obs_column
from ._files import data_dir, find, read_h5ad

#: pertpy's sci-Plex2 file name.
SCIPLEX2 = "srivatsan_2020_sciplex2.h5ad"
#: The real sci-Plex2 design table, package data in ``bilinear_core/data``.
SCIPLEX2_DESIGN = "sciplex2_design.csv"

#: The post's drug names, in output order.
DRUGS = ("BMS", "Dex", "Nutlin", "SAHA")
#: Every known spelling (matched case-insensitively) -> the post's name. scPerturb's sci-Plex2 file keeps the
#: names of the experiment's hash sample sheet (``BMS``, ``Dex``, ``Nutlin``, ``SAHA``); the compounds are
#: BMS-345541 (IKK inhibitor), dexamethasone, nutlin-3a and vorinostat (SAHA).
DRUG_NAMES = {
    "bms": "BMS",
    "bms-345541": "BMS",
    "bms345541": "BMS",
    "dex": "Dex",
    "dexamethasone": "Dex",
    "nutlin": "Nutlin",
    "nutlin-3": "Nutlin",
    "nutlin-3a": "Nutlin",
    "nutlin3a": "Nutlin",
    "saha": "SAHA",
    "vorinostat": "SAHA",
}
#: The treatment label of vehicle cells (dose 0 of any drug); their targets are all zero.
VEHICLE = "vehicle"
#: Labels scPerturb gives cells whose hash (well) could not be assigned (its sci-Plex2 script sets
#: ``perturbation = "control"`` where the hash call is missing). The design gives every drug its own
#: dose-0 vehicle wells, so these cells are of unknown treatment, not vehicle controls.
UNASSIGNED_LABELS = ("control",)


def drug_name(name) -> str:
    """The post's name for one spelling of a drug (case-insensitive); raises for unknown names."""
    key = str(name).strip().lower()
    if key not in DRUG_NAMES:
        raise ValueError(
            f"Unknown drug {name!r}: sci-Plex2 has {list(DRUGS)}. Known spellings: {sorted(DRUG_NAMES)}; "
            "add new ones to bilinear_core.datasets.DRUG_NAMES."
        )
    return DRUG_NAMES[key]


def harmonize_sciplex2(adata: AnnData, drug_key: str = "perturbation", dose_key: str = "dose_value") -> AnnData:
    """Add the chapter's columns to scPerturb's sci-Plex2 obs; cells without a well assignment are dropped.

    Reads ``drug_key`` (drug names, any spelling in :data:`DRUG_NAMES`, or a label of
    :data:`UNASSIGNED_LABELS`) and ``dose_key`` (the hash sample sheet's dose labels, numbers or
    strings such as ``"0.5"``) and writes ``obs["drug"]`` (the post's name, categorical in
    :data:`DRUGS` order), ``obs["dose"]`` (float, 0 = vehicle) and ``obs["treatment"]`` (the drug,
    or :data:`VEHICLE` at dose 0). Returns a copy without the unassigned cells; how many were dropped
    is in ``uns["harmonized"]``. Unknown drug names, missing or negative doses raise.
    """
    labels = get_obs_column(adata, drug_key).astype("string")
    raw_dose = get_obs_column(adata, dose_key)
    unassigned = labels.isna().to_numpy() | labels.str.strip().str.lower().isin(UNASSIGNED_LABELS).to_numpy()
    names = labels[~unassigned].astype(str)
    unknown = sorted({n for n in names.unique() if n.strip().lower() not in DRUG_NAMES})
    if unknown:
        raise ValueError(
            f"adata.obs[{drug_key!r}] holds unknown drug name(s) {unknown}: sci-Plex2 has {list(DRUGS)}. Known "
            f"spellings: {sorted(DRUG_NAMES)}; add new ones to bilinear_core.datasets.DRUG_NAMES."
        )
    dose = pd.to_numeric(raw_dose.astype("string").str.strip(), errors="coerce").to_numpy(dtype=np.float64)[~unassigned]
    if np.isnan(dose).any():
        bad = sorted(set(raw_dose[~unassigned][np.isnan(dose)].astype(str)))[:5]
        n_bad = int(np.isnan(dose).sum())
        raise ValueError(f"adata.obs[{dose_key!r}] has {n_bad} missing or non-numeric dose(s), e.g. {bad}.")
    if (dose < 0).any():
        raise ValueError(f"adata.obs[{dose_key!r}] has {int((dose < 0).sum())} negative dose(s).")
    out = adata[~unassigned].copy()
    drug = np.array([DRUG_NAMES[n.strip().lower()] for n in names])
    out.obs["drug"] = pd.Categorical(drug, categories=list(DRUGS))
    out.obs["dose"] = dose
    out.obs["treatment"] = pd.Categorical(np.where(dose > 0, drug, VEHICLE), categories=[VEHICLE, *DRUGS])
    out.uns["harmonized"] = {"n_cells_in": int(adata.n_obs), "n_unassigned_dropped": int(unassigned.sum())}
    return out


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
    how = (
        f"download it with `pertpy.data.srivatsan_2020_sciplex2()` (needs internet) and save it as "
        f"{data_dir() / SCIPLEX2} (set $BILINEAR_DATA_DIR to use another folder)."
    )
    path = find([SCIPLEX2])
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
        adata = read_h5ad(path, "sci-Plex2", how)
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
