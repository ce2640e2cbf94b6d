"""sci-Plex2 (Srivatsan et al. 2020): the real design (package data), the real file and its harmonisation.

A549 cells treated with four compounds at seven doses plus each drug's vehicle. The post calls them SAHA,
Nutlin, BMS and Dex; :data:`DRUG_NAMES` maps other spellings (scPerturb's, the compounds' full names) to
these, and :func:`harmonize_sciplex2` turns scPerturb's obs columns into the columns the chapters use
(``drug``, ``dose``, ``treatment``) and applies the authors' cell filters on the hash (well) assignment.
"""

from __future__ import annotations

import operator
import urllib.request
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from ..checks import get_obs_column
from ._files import data_dir, find, read_h5ad

#: pertpy's sci-Plex2 file name.
SCIPLEX2 = "srivatsan_2020_sciplex2.h5ad"
#: Where ``pertpy.data.srivatsan_2020_sciplex2()`` (pertpy 1.0.3) downloads scPerturb's file from; probed before
#: asking pertpy, so that without internet :func:`sciplex2` fails at once instead of waiting out pertpy's retries.
SCIPLEX2_URL = "https://scverse-exampledata.s3.eu-west-1.amazonaws.com/pertpy/srivatsan_2020_sciplex2.h5ad"
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
#: The authors' cell filters on the hash call (``cole-trapnell-lab/sci-plex``, ``small_screen/
#: Notebook_1_small_screen_analysis.R``), with scPerturb's column names (it renames the authors' ``qval`` to
#: ``qval_demultiplexing``): ``column -> (comparison, threshold)``. A cell is kept when it passes all three:
#: its top hash oligo has over 10 times the UMIs of the second best, the hash call's q-value is below 0.01 and
#: the cell has over 30 hash UMIs. Missing values fail (the authors drop cells without a ratio first).
HASH_FILTERS = {
    "top_to_second_best_ratio": (">", 10.0),
    "qval_demultiplexing": ("<", 0.01),
    "hash_umis": (">", 30.0),
}
_COMPARISONS = {">": operator.gt, "<": operator.lt}


def drug_name(name) -> str:
    """The post's name for one spelling of a drug (case-insensitive); raises for unknown names."""
    key = str(name).strip().lower()
    if key not in DRUG_NAMES:
        raise ValueError(
            f"Unknown drug {name!r}: sci-Plex2 has {list(DRUGS)}. Known spellings: {sorted(DRUG_NAMES)}; "
            "add new ones to bilinear_core.datasets.DRUG_NAMES."
        )
    return DRUG_NAMES[key]


def _hash_filter_failures(adata: AnnData) -> dict[str, np.ndarray]:
    """``{column: (cells,) bool}``: the cells failing each of :data:`HASH_FILTERS`; ``{}`` without hash columns.

    A file with some but not all of the three columns, or with non-numeric values in them, raises.
    """
    present = [column for column in HASH_FILTERS if column in adata.obs]
    if not present:
        return {}
    missing = [column for column in HASH_FILTERS if column not in adata.obs]
    if missing:
        raise ValueError(
            f"adata.obs has the hash column(s) {present} but not {missing}: the authors' cell filters need all "
            f"of {list(HASH_FILTERS)}. Pass filter_cells=False to skip them."
        )
    failing = {}
    for column, (comparison, threshold) in HASH_FILTERS.items():
        raw = adata.obs[column]
        values = pd.to_numeric(raw, errors="coerce")
        if (values.isna() & raw.notna()).any():
            raise ValueError(f"adata.obs[{column!r}] holds non-numeric values; the hash filters need numbers.")
        failing[column] = ~_COMPARISONS[comparison](values.to_numpy(dtype=np.float64), threshold)
    return failing


def harmonize_sciplex2(
    adata: AnnData, drug_key: str = "perturbation", dose_key: str = "dose_value", filter_cells: bool = True
) -> AnnData:
    """Add the chapter's columns to scPerturb's sci-Plex2 obs; drop unassigned cells and, by default, poor hash calls.

    Reads ``drug_key`` (drug names, any spelling in ``DRUG_NAMES``, or ``"control"``: no hash call) and
    ``dose_key`` (the hash sample sheet's dose labels, numbers or strings such as ``"0.5"``) and writes
    ``obs["drug"]`` (the post's name, categorical in ``DRUGS`` order), ``obs["dose"]`` (float, 0 = vehicle)
    and ``obs["treatment"]`` (the drug, or ``VEHICLE`` at dose 0). When ``obs`` has scPerturb's hash columns
    and ``filter_cells`` is true, the assigned cells must also pass the authors' filters (``HASH_FILTERS``):
    ``top_to_second_best_ratio > 10``, ``qval_demultiplexing < 0.01`` and ``hash_umis > 30``; a missing value
    fails. Returns a copy without the dropped cells; ``uns["harmonized"]`` counts them: ``n_unassigned_dropped``,
    ``n_failing`` (assigned cells failing each filter; a cell can fail several), ``n_filtered`` (assigned cells
    failing any) and ``cell_filters`` (the filters applied, in words). Unknown drug names, missing or negative
    doses raise.
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
    failing = _hash_filter_failures(adata) if filter_cells else {}
    filtered = np.any([np.zeros(adata.n_obs, bool), *failing.values()], axis=0)  # fails any filter
    passes = ~filtered[~unassigned]
    out = adata[~unassigned & ~filtered].copy()
    drug = np.array([DRUG_NAMES[n.strip().lower()] for n in names])[passes]
    out.obs["drug"] = pd.Categorical(drug, categories=list(DRUGS))
    out.obs["dose"] = dose[passes]
    out.obs["treatment"] = pd.Categorical(np.where(dose[passes] > 0, drug, VEHICLE), categories=[VEHICLE, *DRUGS])
    if failing:
        cell_filters = ", ".join(f"{column} {op} {threshold:g}" for column, (op, threshold) in HASH_FILTERS.items())
    else:
        cell_filters = "off (filter_cells=False)" if not filter_cells else "none (no hash columns in the file)"
    out.uns["harmonized"] = {
        "n_cells_in": int(adata.n_obs),
        "n_unassigned_dropped": int(unassigned.sum()),
        "cell_filters": cell_filters,
        "n_failing": {column: int((fails & ~unassigned).sum()) for column, fails in failing.items()},
        "n_filtered": int((filtered & ~unassigned).sum()),
    }
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


def _reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether ``url`` answers a HEAD request within ``timeout`` seconds (one try; proxies from the environment)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except OSError:  # URLError, HTTPError, timeouts
        return False


def _download_sciplex2(how: str) -> Path:
    """Download scPerturb's sci-Plex2 file with ``pertpy.data.srivatsan_2020_sciplex2()`` into the data dir.

    pertpy stores its downloads in ``scanpy.settings.datasetdir``, pointed at :func:`data_dir` for the call, so
    the file lands at ``data_dir() / SCIPLEX2`` and later calls read it there. :data:`SCIPLEX2_URL` is probed
    first (one HEAD request): without internet this raises :class:`FileNotFoundError` at once, as does a failed
    download; ``how`` (what to do instead) ends the message.
    """
    import scanpy as sc

    target = data_dir() / SCIPLEX2
    if not _reachable(SCIPLEX2_URL):
        raise FileNotFoundError(f"No sci-Plex2 data at {target}, and {SCIPLEX2_URL} cannot be reached; {how}")
    import pertpy as pt

    previous = sc.settings.datasetdir
    sc.settings.datasetdir = data_dir()
    try:
        pt.data.srivatsan_2020_sciplex2()
    except Exception as err:  # requests, OSError (disk, permissions), a truncated file
        raise FileNotFoundError(f"No sci-Plex2 data at {target}, and pertpy's download failed ({err}); {how}") from err
    finally:
        sc.settings.datasetdir = previous
    if not target.is_file():
        raise FileNotFoundError(f"pertpy's download did not leave a file at {target}; {how}")
    return target


def sciplex2(download: bool = True, filter_cells: bool = True) -> AnnData:
    """sci-Plex2 (Srivatsan et al. 2020; A549 cells, 4 drugs × 7 doses + vehicle), via ``pertpy`` when not local.

    Reads ``srivatsan_2020_sciplex2.h5ad`` (scPerturb's file) from the data dir or, with ``download=True``,
    first downloads it there with pertpy, then adds the chapter's columns with
    :func:`harmonize_sciplex2` (``drug``, ``dose``, ``treatment``; cells without a well assignment dropped and,
    unless ``filter_cells=False``, the authors' hash filters applied). ``uns["dataset"]`` says which file was
    used and how many cells each step removed. Raises :class:`FileNotFoundError` when the file is neither here
    nor downloadable.
    """
    how = (
        f"download it with `pertpy.data.srivatsan_2020_sciplex2()` (needs internet) and save it as "
        f"{data_dir() / SCIPLEX2} (set $BILINEAR_DATA_DIR to use another folder)."
    )
    path = find([SCIPLEX2])
    downloaded = path is None and download
    if downloaded:
        path = _download_sciplex2(how)
    elif path is None:
        raise FileNotFoundError(f"No sci-Plex2 data in {data_dir()} (download=False); {how}")
    adata = harmonize_sciplex2(read_h5ad(path, "sci-Plex2", how), filter_cells=filter_cells)
    harmonized = adata.uns["harmonized"]
    adata.uns["dataset"] = {
        "name": "sci-Plex2",
        "file": path.name,
        "path": str(path),
        "downloaded": downloaded,
        "simulated": False,
        "kind": "scPerturb's sci-Plex2 file (real data)",
        "n_cells": int(adata.n_obs),
        "n_cells_in_file": harmonized["n_cells_in"],
        "n_unassigned_dropped": harmonized["n_unassigned_dropped"],
        "cell_filters": harmonized["cell_filters"],
        "n_hash_filtered": harmonized["n_filtered"],
        "n_genes_in_file": int(adata.n_vars),
    }
    return adata
