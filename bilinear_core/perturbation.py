"""Targets for the post's perturbation regression: dose-scaled one-hot vectors per drug."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ._validate import check_finite, get_obs_column


def dose_targets(
    adata: AnnData, drugs, drug_key: str = "perturbation", dose_key: str = "dose", control: str = "control"
) -> pd.DataFrame:
    """One column per drug holding ``log1p(dose)`` for cells treated with it and 0 elsewhere: ``(n, len(drugs))``.

    Cells whose ``drug_key`` is ``control`` get all zeros. Raises for a drug that no cell
    received and for cells with a perturbation outside ``drugs`` (other than ``control``).
    """
    drug = get_obs_column(adata, drug_key).astype(str).to_numpy()
    dose = get_obs_column(adata, dose_key).to_numpy(dtype=np.float64)
    check_finite(dose, f"adata.obs[{dose_key!r}]")
    if (dose < 0).any():
        raise ValueError(f"adata.obs[{dose_key!r}] has {int((dose < 0).sum())} negative dose(s).")
    drugs = [str(d) for d in drugs]
    present = set(drug)
    unknown = [d for d in drugs if d not in present]
    if unknown:
        raise ValueError(f"Unknown drug(s) {unknown}: adata.obs[{drug_key!r}] holds {sorted(present)}.")
    unexpected = sorted(present - set(drugs) - {control})
    if unexpected:
        raise ValueError(f"Cells with perturbations {unexpected} are neither in drugs={drugs} nor {control!r}.")
    targets = np.where(drug[:, None] == np.asarray(drugs)[None, :], np.log1p(dose)[:, None], 0.0)
    return pd.DataFrame(targets, index=adata.obs_names, columns=drugs)


def filter_low_count_cells(adata: AnnData, min_counts: float = 5_000, layer: str | None = None) -> AnnData:
    """Cells with at least ``min_counts`` total counts (the post drops sci-Plex2 cells below 5k)."""
    counts = adata.X if layer is None else adata.layers[layer]
    totals = np.asarray(counts.sum(axis=1)).ravel()
    return adata[totals >= min_counts].copy()
