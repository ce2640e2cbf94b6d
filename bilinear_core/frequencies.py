"""Transcriptional frequencies: low-frequency eigenvectors of a cell kNN graph Laplacian."""

from __future__ import annotations

import warnings

import numpy as np
from anndata import AnnData
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import eigsh
from sklearn.neighbors import NearestNeighbors

from .checks import as_dense_float, check_min_cells, get_matrix


def knn_adjacency(X, n_neighbors: int = 10) -> sparse.csr_matrix:
    """Binary, symmetrised cosine-similarity kNN adjacency ``(n, n)``, self excluded.

    Each cell links to its ``n_neighbors`` most cosine-similar other cells; an edge is kept
    if either endpoint chose it (``A = max(A, Aᵀ)``).
    """
    X = as_dense_float(X)
    n = X.shape[0]
    if not 1 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must lie in [1, n_cells - 1] = [1, {n - 1}], got {n_neighbors}.")
    if (np.abs(X).sum(axis=1) == 0).any():
        raise ValueError("Some cells have an all-zero profile; cosine similarity is undefined for them.")
    nn = NearestNeighbors(n_neighbors=n_neighbors + 1, metric="cosine", algorithm="brute").fit(X)
    _, idx = nn.kneighbors(X)
    rows = np.repeat(np.arange(n), n_neighbors)
    # drop each cell itself (normally column 0; duplicates can reorder, so filter explicitly)
    cols = np.array([[j for j in row if j != i][:n_neighbors] for i, row in enumerate(idx)]).ravel()
    A = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return A.maximum(A.T).tocsr()


def laplacian(A: sparse.spmatrix) -> sparse.csr_matrix:
    """Combinatorial graph Laplacian ``L = D − A``."""
    degrees = np.asarray(A.sum(axis=1)).ravel()
    return (sparse.diags(degrees) - A).tocsr()


def laplacian_eigenpairs(L: sparse.spmatrix, n_freqs: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Smallest ``n_freqs`` non-constant eigenpairs of a connected graph's Laplacian.

    Returns eigenvalues ``(n_freqs,)`` ascending and orthonormal eigenvectors ``(n, n_freqs)``,
    each orthogonal to the constant vector and signed so that its largest-magnitude entry is
    positive. Uses shift-invert Lanczos, so it stays sparse.
    """
    n = L.shape[0]
    if not 1 <= n_freqs <= n - 2:
        raise ValueError(f"n_freqs must lie in [1, n_cells - 2] = [1, {n - 2}], got {n_freqs}.")
    n_components, _ = connected_components(L, directed=False)
    if n_components > 1:
        warnings.warn(
            f"The kNN graph has {n_components} connected components; the first {n_components - 1} "
            "frequencies will be component indicators. Consider more neighbours.",
            stacklevel=2,
        )
    v0 = np.random.default_rng(0).standard_normal(n)
    values, vectors = eigsh(L.astype(np.float64), k=n_freqs + 1, sigma=-1e-3, which="LM", v0=v0)
    order = np.argsort(values)
    values, vectors = values[order][1:], vectors[:, order][:, 1:]  # drop the constant vector (λ = 0)
    idx = np.abs(vectors).argmax(axis=0)
    vectors = vectors * np.sign(vectors[idx, np.arange(vectors.shape[1])])
    return values, vectors


def transcriptional_frequencies(
    adata: AnnData, n_freqs: int = 4, n_neighbors: int = 10, layer: str | None = None, key_added: str = "freq"
) -> AnnData:
    """Compute the post's transcriptional frequencies on ``adata.X`` (or ``layer``).

    Stores eigenvectors ``(n, n_freqs)`` in ``adata.obsm[f"X_{key_added}"]``, eigenvalues in
    ``adata.uns[f"{key_added}_eigenvalues"]``, the adjacency in ``adata.obsp[f"{key_added}_adjacency"]``
    and the parameters in ``adata.uns[key_added]``. Returns ``adata``.
    """
    X = get_matrix(adata, layer)
    check_min_cells(X.shape[0], n_neighbors + 2, f"A {n_neighbors}-NN graph")
    A = knn_adjacency(X, n_neighbors)
    values, vectors = laplacian_eigenpairs(laplacian(A), n_freqs)
    adata.obsm[f"X_{key_added}"] = vectors
    adata.uns[f"{key_added}_eigenvalues"] = values
    adata.obsp[f"{key_added}_adjacency"] = A
    adata.uns[key_added] = {"n_neighbors": n_neighbors, "metric": "cosine", "layer": layer, "laplacian": "D - A"}
    return adata


def orient_frequencies(adata: AnnData, reference, key: str = "freq", columns=None) -> AnnData:
    """Flip frequencies so that the ``reference`` cells lie on their negative side (a sign convention).

    Eigenvector signs are arbitrary; :func:`laplacian_eigenpairs` fixes them by making the
    largest-magnitude entry positive. This flips column ``j`` of ``adata.obsm[f"X_{key}"]``
    (``(n, n_freqs)``, for ``j`` in ``columns``, default all) when its mean over the ``reference``
    cells (boolean mask ``(n,)``) is positive. With ``reference = clusters == "Ductal"`` on
    frequency 0 this gives the post's convention (naive cells negative, mature cells positive).
    Eigenvalues are unchanged; flipped columns are recorded in ``adata.uns[key]["flipped"]``.
    Returns ``adata``.
    """
    if f"X_{key}" not in adata.obsm:
        raise KeyError(f"adata.obsm has no 'X_{key}'; run transcriptional_frequencies(adata, key_added={key!r}) first.")
    F = np.asarray(adata.obsm[f"X_{key}"], dtype=np.float64)
    reference = np.asarray(reference)
    if reference.dtype != bool or reference.shape != (F.shape[0],):
        raise ValueError(
            f"reference must be a boolean mask with one entry per cell ({F.shape[0]}), "
            f"got dtype {reference.dtype} and shape {reference.shape}."
        )
    if not reference.any():
        raise ValueError("reference marks no cell; the orientation would be undefined.")
    columns = np.arange(F.shape[1]) if columns is None else np.atleast_1d(columns).astype(int)
    if columns.size and (columns.min() < 0 or columns.max() >= F.shape[1]):
        raise IndexError(f"columns {columns.tolist()} out of range for {F.shape[1]} frequencies.")
    flip = [int(j) for j in columns if F[reference, j].mean() > 0]
    F[:, flip] *= -1
    adata.obsm[f"X_{key}"] = F
    info = dict(adata.uns.get(key, {}))
    info["flipped"] = np.asarray(flip, dtype=int)
    adata.uns[key] = info
    return adata


def graph_summary(A: sparse.spmatrix) -> dict:
    """Size and degree statistics of an undirected adjacency ``(n, n)``.

    Returns ``n_cells``, ``n_edges`` (each undirected edge once), ``mean_degree``,
    ``median_degree``, ``max_degree`` (weighted degrees, i.e. row sums) and ``n_components``.
    """
    A = sparse.csr_matrix(A)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"An adjacency matrix must be square, got shape {A.shape}.")
    if (A != A.T).nnz:
        raise ValueError("The adjacency matrix is not symmetric; symmetrise it first (e.g. A.maximum(A.T)).")
    degrees = np.asarray(A.sum(axis=1)).ravel()
    return {
        "n_cells": int(A.shape[0]),
        "n_edges": int(sparse.triu(A, k=1).nnz + A.diagonal().astype(bool).sum()),
        "mean_degree": float(degrees.mean()),
        "median_degree": float(np.median(degrees)),
        "max_degree": float(degrees.max()),
        "n_components": int(connected_components(A, directed=False)[0]),
    }
