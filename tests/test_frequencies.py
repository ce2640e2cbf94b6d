import numpy as np
import pytest
from anndata import AnnData

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
