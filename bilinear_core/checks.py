"""Input checks shared by the public functions: clear errors before any torch call."""

from __future__ import annotations

import numbers

import numpy as np
from anndata import AnnData
from scipy import sparse

# nothing here is public API: the functions check the arguments of the package's own functions (no API page)
__all__: list[str] = []


def as_dense_float(X, name: str = "X", dtype=np.float32) -> np.ndarray:
    """Return ``X`` as a C-contiguous ``dtype`` (float32) array, refusing NaN/inf."""
    if sparse.issparse(X):
        X = X.toarray()
    X = np.ascontiguousarray(np.asarray(X, dtype=dtype))
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-d (cells × features) matrix, got shape {X.shape}.")
    check_finite(X, name)
    return X


def check_finite(values: np.ndarray, name: str) -> None:
    """Raise if ``values`` holds NaN or infinite entries, saying how many."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or infinite value(s); "
            "impute or drop them before training (e.g. remove the affected cells)."
        )


def get_matrix(adata: AnnData, layer: str | None) -> np.ndarray:
    """``adata.X`` or ``adata.layers[layer]`` as dense float32, with a clear error for a missing layer."""
    if layer is None:
        return as_dense_float(adata.X, "adata.X")
    if layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} not found in adata.layers; available layers: {sorted(adata.layers)}.")
    return as_dense_float(adata.layers[layer], f"adata.layers[{layer!r}]")


def get_obs_column(adata: AnnData, key: str):
    """``adata.obs[key]`` with a clear error when the column is missing."""
    if key not in adata.obs.columns:
        raise KeyError(f"Column {key!r} not found in adata.obs; available columns: {list(adata.obs.columns)}.")
    return adata.obs[key]


def check_min_cells(n_cells: int, minimum: int, what: str) -> None:
    """Raise if ``n_cells`` is below ``minimum``, naming ``what`` needs them (e.g. ``"Training"``)."""
    if n_cells < minimum:
        raise ValueError(f"{what} needs at least {minimum} cells, got {n_cells}.")


def check_positive_integers(**values) -> None:
    """Raise a ``ValueError`` naming the first of ``values`` that is not an integer of at least 1."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
