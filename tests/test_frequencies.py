import re
import warnings

import numpy as np
import pytest
from anndata import AnnData
from scipy import sparse

from bilinear_core.frequencies import knn_adjacency, laplacian, laplacian_eigenpairs, transcriptional_frequencies


@pytest.fixture
def ring_cells():
    """80 cells on a noisy circle in 5-d (a connected kNN graph with a known low-frequency structure)."""
    rng = np.random.default_rng(0)
    angle = np.sort(rng.uniform(0, 2 * np.pi, 80))
    X = np.c_[np.cos(angle), np.sin(angle), np.zeros((80, 3))] + 3.0 + 0.01 * rng.normal(size=(80, 5))
    return AnnData(X.astype(np.float32))


def test_knn_adjacency_is_binary_symmetric_without_self_loops(ring_cells):
    A = knn_adjacency(ring_cells.X, n_neighbors=4)
    dense = A.toarray()
    assert set(np.unique(dense)) <= {0.0, 1.0}
    np.testing.assert_array_equal(dense, dense.T)
    assert np.all(np.diag(dense) == 0)
    assert dense.sum(axis=1).min() >= 4


def test_knn_uses_cosine_similarity():
    # b is a scaled copy of a: cosine distance 0 although the Euclidean distance is large
    X = np.array([[1, 0, 0], [10, 0, 0], [0, 1, 0], [0, 1, 0.1], [0, 0.1, 1]], dtype=np.float32)
    A = knn_adjacency(X, n_neighbors=1).toarray()
    assert A[0, 1] == 1 and A[2, 3] == 1


def test_frequencies_are_laplacian_eigenvectors(ring_cells):
    transcriptional_frequencies(ring_cells, n_freqs=5, n_neighbors=4)
    V, lam = ring_cells.obsm["X_freq"], ring_cells.uns["freq_eigenvalues"]
    L = laplacian(ring_cells.obsp["freq_adjacency"]).toarray()
    np.testing.assert_allclose(L @ V, V * lam, atol=1e-8)
    np.testing.assert_allclose(V.T @ V, np.eye(5), atol=1e-8)
    np.testing.assert_allclose(V.sum(axis=0), 0, atol=1e-8)  # orthogonal to the constant vector
    assert np.all(np.diff(lam) >= -1e-12) and lam[0] > 1e-8
    # they are the smallest non-zero eigenvalues of L
    full = np.linalg.eigvalsh(L)
    np.testing.assert_allclose(lam, full[1:6], atol=1e-8)


def test_first_frequency_follows_the_ring(ring_cells):
    transcriptional_frequencies(ring_cells, n_freqs=2, n_neighbors=4)
    # on a ring the two lowest modes are a cosine/sine pair: their phase walks once around with the angle
    v = ring_cells.obsm["X_freq"]
    phase = np.unwrap(np.arctan2(v[:, 1], v[:, 0]))  # cells are sorted by angle
    assert abs(phase[-1] - phase[0]) == pytest.approx(2 * np.pi, abs=0.3)
    assert abs(np.corrcoef(phase, np.arange(80))[0, 1]) > 0.98


def test_disconnected_graph_warns():
    X = np.r_[np.tile([1.0, 0, 0], (6, 1)), np.tile([0, 1.0, 0], (6, 1))] + 0.01 * np.arange(12)[:, None]
    L = laplacian(knn_adjacency(X.astype(np.float32), n_neighbors=2))
    with pytest.warns(UserWarning, match="connected components"):
        laplacian_eigenpairs(L, n_freqs=2)


def _knn_by_hand(X, k):
    """The symmetrised cosine kNN adjacency from NumPy: cosine similarity, top k others per cell."""
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    A = np.zeros_like(similarity)
    for i, row in enumerate(similarity):
        A[i, np.argsort(-row)[:k]] = 1
    return np.maximum(A, A.T)


def test_knn_adjacency_equals_numpy_cosine_neighbours():
    # scaled rows: Euclidean neighbours differ from cosine ones
    rng = np.random.default_rng(3)
    X = rng.gamma(2.0, size=(25, 6)) * rng.uniform(0.1, 10, size=(25, 1))
    for k in (1, 4):
        np.testing.assert_array_equal(knn_adjacency(X, k).toarray(), _knn_by_hand(X, k))
    np.testing.assert_array_equal(knn_adjacency(X).toarray(), _knn_by_hand(X, 10))  # the post's default
    np.testing.assert_array_equal(knn_adjacency(X, 24).toarray(), 1 - np.eye(25))  # n - 1: everyone


def test_bounds_are_named_in_the_errors():
    X = np.random.default_rng(0).gamma(2.0, size=(5, 3))
    with pytest.raises(ValueError, match="^" + re.escape("n_neighbors must lie in [1, n_cells - 1] = [1, 4], got 5.")):
        knn_adjacency(X, 5)
    X[2] = 0
    message = "Some cells have an all-zero profile; cosine similarity is undefined for them."
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        knn_adjacency(X, 2)
    L = laplacian(sparse.csr_matrix(_knn_by_hand(np.random.default_rng(1).gamma(2.0, size=(8, 3)), 3)))
    with pytest.raises(ValueError, match="^" + re.escape("n_freqs must lie in [1, n_cells - 2] = [1, 6], got 7.")):
        laplacian_eigenpairs(L, 7)


def test_eigenpairs_at_both_ends_of_the_range_equal_numpy():
    weights = np.random.default_rng(1).uniform(size=(8, 8))  # a weighted graph: no tied entries
    L = laplacian(sparse.csr_matrix(np.triu(weights, 1) + np.triu(weights, 1).T))
    full = np.linalg.eigh(L.toarray())
    for n_freqs in (1, 2, 6):
        values, vectors = laplacian_eigenpairs(L, n_freqs)
        assert vectors.shape == (8, n_freqs)
        np.testing.assert_allclose(values, full.eigenvalues[1 : n_freqs + 1], atol=1e-10)
        # the same vectors up to sign, signed so that the largest-magnitude entry is positive
        expected = full.eigenvectors[:, 1 : n_freqs + 1]
        expected = expected * np.sign(expected[np.abs(expected).argmax(axis=0), np.arange(n_freqs)])
        np.testing.assert_allclose(vectors, expected, atol=1e-8)
    assert laplacian_eigenpairs(L)[1].shape == (8, 4)  # the post's default


def test_connected_graph_is_silent_and_the_warning_names_the_components():
    L = laplacian(sparse.csr_matrix(_knn_by_hand(np.random.default_rng(1).gamma(2.0, size=(8, 3)), 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        laplacian_eigenpairs(L, 2)
    X = np.r_[np.tile([1.0, 0, 0], (6, 1)), np.tile([0, 1.0, 0], (6, 1))] + 0.01 * np.arange(12)[:, None]
    L = laplacian(knn_adjacency(X, n_neighbors=2))
    message = (
        "The kNN graph has 2 connected components; the first 1 frequencies will be component indicators. "
        "Consider more neighbours."
    )
    with pytest.warns(UserWarning, match="^" + re.escape(message)):
        laplacian_eigenpairs(L, n_freqs=2)


def test_transcriptional_frequencies_reads_its_layer_and_records_its_parameters():
    rng = np.random.default_rng(2)
    layer = rng.gamma(2.0, size=(30, 5))
    adata = AnnData(rng.gamma(2.0, size=(30, 5)), layers={"counts": layer})
    transcriptional_frequencies(adata, layer="counts")
    np.testing.assert_array_equal(adata.obsp["freq_adjacency"].toarray(), _knn_by_hand(layer, 10))
    assert adata.obsm["X_freq"].shape == (30, 4)
    assert adata.uns["freq"] == {"n_neighbors": 10, "metric": "cosine", "layer": "counts", "laplacian": "D - A"}
    transcriptional_frequencies(adata, n_neighbors=3, key_added="f3")
    np.testing.assert_array_equal(adata.obsp["f3_adjacency"].toarray(), _knn_by_hand(adata.X, 3))
