"""Helpers added for the frequencies chapter: orientation, graph summary, module–target correlations, figures."""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from anndata import AnnData  # noqa: E402
from scipy import sparse  # noqa: E402

import bilinear_core as bc  # noqa: E402
from bilinear_core.frequencies import (  # noqa: E402
    graph_summary,
    knn_adjacency,
    laplacian,
    orient_frequencies,
    transcriptional_frequencies,
)
from bilinear_core.interpret import Modules, module_target_correlations  # noqa: E402
from bilinear_core.report import ModuleReport  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "notebooks"))  # the book's helpers (bookkit)
from bookkit.interpretation import regression_interpretation  # noqa: E402


def _freq_adata():
    """Four cells with two hand-made 'frequencies'."""
    adata = AnnData(np.ones((4, 2), dtype=np.float32))
    adata.obsm["X_freq"] = np.array([[0.5, -0.1], [0.5, 0.3], [-0.5, 0.2], [-0.5, -0.4]])
    adata.uns["freq"] = {"n_neighbors": 2}
    return adata


def test_orient_frequencies_exact():
    adata = _freq_adata()
    first = np.array([True, True, False, False])  # mean of column 0 = 0.5 > 0, of column 1 = 0.1 > 0
    orient_frequencies(adata, first)
    np.testing.assert_array_equal(adata.obsm["X_freq"], [[-0.5, 0.1], [-0.5, -0.3], [0.5, -0.2], [0.5, 0.4]])
    np.testing.assert_array_equal(adata.uns["freq"]["flipped"], [0, 1])
    assert adata.uns["freq"]["n_neighbors"] == 2  # other parameters are kept
    orient_frequencies(adata, first)  # already oriented: nothing changes
    np.testing.assert_array_equal(adata.obsm["X_freq"][:, 0], [-0.5, -0.5, 0.5, 0.5])
    assert len(adata.uns["freq"]["flipped"]) == 0
    # only the requested columns are touched
    adata = _freq_adata()
    orient_frequencies(adata, np.array([False, False, True, True]), columns=[1])  # column 1 mean -0.1: kept
    np.testing.assert_array_equal(adata.obsm["X_freq"], _freq_adata().obsm["X_freq"])
    orient_frequencies(adata, np.array([False, False, True, True]), columns=0)  # column 0 mean -0.5: kept
    np.testing.assert_array_equal(adata.obsm["X_freq"], _freq_adata().obsm["X_freq"])
    orient_frequencies(adata, np.array([True, False, False, False]), columns=0)
    np.testing.assert_array_equal(adata.obsm["X_freq"][:, 0], [-0.5, -0.5, 0.5, 0.5])
    np.testing.assert_array_equal(adata.obsm["X_freq"][:, 1], _freq_adata().obsm["X_freq"][:, 1])


def test_oriented_frequencies_stay_eigenvectors():
    rng = np.random.default_rng(1)
    adata = AnnData((rng.gamma(2.0, size=(40, 6)) + 0.1).astype(np.float32))
    transcriptional_frequencies(adata, n_freqs=3, n_neighbors=5)
    before = adata.obsm["X_freq"].copy()
    reference = before[:, 0] > 0  # cells on the positive side of frequency 0: it must flip
    orient_frequencies(adata, reference)
    V, lam = adata.obsm["X_freq"], adata.uns["freq_eigenvalues"]
    assert 0 in adata.uns["freq"]["flipped"]
    np.testing.assert_allclose(np.abs(V), np.abs(before))
    assert (V[reference, 0] < 0).all()
    L = laplacian(adata.obsp["freq_adjacency"]).toarray()
    np.testing.assert_allclose(L @ V, V * lam, atol=1e-8)


def test_orient_frequencies_errors():
    adata = _freq_adata()
    with pytest.raises(KeyError, match="X_other"):
        orient_frequencies(adata, np.ones(4, dtype=bool), key="other")
    with pytest.raises(ValueError, match="boolean mask"):
        orient_frequencies(adata, np.array([1, 0, 0, 0]))
    with pytest.raises(ValueError, match="boolean mask"):
        orient_frequencies(adata, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="marks no cell"):
        orient_frequencies(adata, np.zeros(4, dtype=bool))
    with pytest.raises(IndexError, match="out of range for 2 frequencies"):
        orient_frequencies(adata, np.ones(4, dtype=bool), columns=[2])


def test_graph_summary_exact():
    # path 0-1-2-3 plus an isolated pair 4-5
    edges = [(0, 1), (1, 2), (2, 3), (4, 5)]
    A = sparse.lil_matrix((6, 6))
    for i, j in edges:
        A[i, j] = A[j, i] = 1
    summary = graph_summary(A)
    assert summary == {
        "n_cells": 6,
        "n_edges": 4,
        "mean_degree": pytest.approx(8 / 6),
        "median_degree": 1.0,
        "max_degree": 2.0,
        "n_components": 2,
    }
    # a kNN graph: every cell keeps at least k neighbours, at most 2k edges per cell on average
    X = np.random.default_rng(0).gamma(2.0, size=(30, 4)).astype(np.float32)
    summary = graph_summary(knn_adjacency(X, 3))
    assert 3 <= summary["mean_degree"] <= 6 and summary["n_edges"] == summary["mean_degree"] * 30 / 2


def test_graph_summary_errors():
    with pytest.raises(ValueError, match="square"):
        graph_summary(sparse.csr_matrix(np.ones((2, 3))))
    with pytest.raises(ValueError, match="not symmetric"):
        graph_summary(sparse.csr_matrix(np.array([[0, 1], [0, 0]])))


def _modules_3genes(t=2):
    values = np.tile([2.0, 1.0, -0.5], (t, 1))
    return Modules(values, np.tile(np.eye(3), (t, 1, 1)), [f"f{i}" for i in range(t)], ["x", "y", "z"])


def test_module_target_correlations_exact():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    Y = np.c_[X[:, 0] * 2 + 1, -X[:, 2]]  # output 0 follows gene x, output 1 is minus gene z
    table = module_target_correlations(X, _modules_3genes(), Y)
    assert table.columns.tolist() == ["output", "module", "eigenvalue", "r", "abs_r"]
    assert table["output"].tolist() == ["f0"] * 3 + ["f1"] * 3
    assert table["module"].tolist() == [0, 1, 2] * 2
    np.testing.assert_allclose(table["r"].iloc[[0, 5]], [1.0, -1.0], atol=1e-6)
    expected = [np.corrcoef(X[:, k], Y[:, a])[0, 1] for a in range(2) for k in range(3)]
    np.testing.assert_allclose(table["r"], expected, atol=1e-6)
    np.testing.assert_allclose(table["abs_r"], np.abs(expected), atol=1e-6)
    np.testing.assert_array_equal(table["eigenvalue"].iloc[:3], [2.0, 1.0, -0.5])
    # first modules only; a constant score gives NaN, not a crash
    short = module_target_correlations(np.c_[X[:, :2], np.ones(50)], _modules_3genes(1), Y[:, 0], n_modules=2)
    assert len(short) == 2
    assert np.isnan(module_target_correlations(np.c_[X[:, :2], np.ones(50)], _modules_3genes(1), Y[:, 0])["r"][2])


def test_module_target_correlations_errors():
    X = np.ones((5, 3))
    with pytest.raises(ValueError, match="X has 2 genes"):
        module_target_correlations(np.ones((5, 2)), _modules_3genes(), np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"shape \(cells, outputs\) = \(5, 2\)"):
        module_target_correlations(X, _modules_3genes(), np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        module_target_correlations(X, _modules_3genes(1), np.r_[np.nan, np.ones(4)])
    with pytest.raises(ValueError, match="n_modules"):
        module_target_correlations(X, _modules_3genes(1), np.ones(5), n_modules=4)


def test_regression_interpretation_text():
    modules = Modules(np.array([[3.0, 1.0, -2.0]]), np.eye(3)[None], ["frequency 0"], ["x", "y", "z"])
    genes = pd.DataFrame({"sign": ["positive", "negative"], "gene": ["x", "z"]})
    report = ModuleReport("frequency 0", 0, 3.0, genes, pd.DataFrame(columns=["sign", "term"]))
    text = regression_interpretation(report, modules, r=0.81, n_genes=1)
    assert "λ = 3 (3.0× the next positive eigenvalue" in text
    assert "follow frequency 0 strongly (Pearson r = 0.81), so its positive pole points towards the high end" in text
    assert text.index("Pearson") < text.index("**Positive pole**: led by x.")
    text = regression_interpretation(report, modules, r=-0.3, target="the frequency")
    assert "weakly (Pearson r = -0.30), so its negative pole points towards the high end of the frequency" in text
    assert "moderately" in regression_interpretation(report, modules, r=0.5)
    text = regression_interpretation(report, modules, r=0.05)
    assert "hardly follow frequency 0 (Pearson r = 0.05), so its poles do not correspond to the ends" in text
    assert "points towards" not in text
    with pytest.raises(ValueError, match="correlation"):
        regression_interpretation(report, modules, r=1.5)
    with pytest.raises(ValueError, match="correlation"):
        regression_interpretation(report, modules, r=float("nan"))


def test_frequency_figures():
    fig = bc.pl.laplacian_spectrum([0.1, 0.5, 1.0, 1.5, 2.0, 2.5], n_used=2, reference={"post λ₀": 0.27})
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [0.1, 0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [0.1, 0.5])  # the modelled frequencies
    assert ax.lines[2].get_ydata()[0] == 0.27
    plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        bc.pl.laplacian_spectrum([])

    table = pd.DataFrame({"mae": [0.1, 0.2], "std": [1.0, 2.0], "iqr": [1.5, 0.5]}, index=["f0", "f1"])
    fig = bc.pl.error_vs_spread(table)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [0.1, 0.2, 1.0, 2.0, 1.5, 0.5]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["f0", "f1"]
    plt.close(fig)
    with pytest.raises(KeyError, match="iqr"):
        bc.pl.error_vs_spread(table.drop(columns="iqr"))


def test_mean_expansion_is_exact(small_model):
    from bilinear_core.interpret import interaction_matrices, mean_expansion, quadratic_form

    X = np.random.default_rng(0).gamma(2.0, size=(20, 12))
    parts = mean_expansion(small_model, X)
    total = parts["constant"] + parts["linear"] + parts["quadratic"]
    np.testing.assert_allclose(total, quadratic_form(small_model, X), rtol=1e-10, atol=1e-12)
    import torch

    with torch.no_grad():
        np.testing.assert_allclose(total, small_model(torch.from_numpy(X)).numpy(), rtol=1e-10, atol=1e-12)
    # against the dense interaction matrices: c'Qc, 2 c'Q δ and δ'Q δ
    Q = interaction_matrices(small_model).numpy()
    c = X.mean(axis=0)
    D = X - c
    np.testing.assert_allclose(parts["constant"], np.einsum("i,aij,j->a", c, Q, c), rtol=1e-10)
    np.testing.assert_allclose(parts["linear"], 2 * np.einsum("ni,aij,j->na", D, Q, c), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(parts["quadratic"], np.einsum("ni,aij,nj->na", D, Q, D), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(parts["linear"].mean(axis=0), 0, atol=1e-10)  # δ has mean 0 around the mean
    # around the origin everything is quadratic
    zero = mean_expansion(small_model, X, center=np.zeros(12))
    np.testing.assert_allclose(zero["linear"], 0, atol=1e-12)
    np.testing.assert_allclose(zero["constant"], 0, atol=1e-12)
    np.testing.assert_allclose(zero["quadratic"], quadratic_form(small_model, X), rtol=1e-10)


def test_expansion_summary(small_model):
    from bilinear_core.interpret import expansion_summary, mean_expansion

    X = np.random.default_rng(1).gamma(2.0, size=(30, 12))
    parts = mean_expansion(small_model, X)
    table = expansion_summary(small_model, X, parts["linear"], output_names=["a", "b", "c"])
    assert table.index.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(table["r_linear"], 1.0)
    var_lin, var_quad = parts["linear"].var(axis=0), parts["quadratic"].var(axis=0)
    np.testing.assert_allclose(table["linear_share"], var_lin / (var_lin + var_quad))
    total = parts["linear"] + parts["quadratic"]
    np.testing.assert_allclose(
        table["r_total"], [np.corrcoef(total[:, a], parts["linear"][:, a])[0, 1] for a in range(3)]
    )
    with pytest.raises(ValueError, match=r"shape \(cells, outputs\)"):
        expansion_summary(small_model, X, np.zeros(30))
    with pytest.raises(ValueError, match="output_names has 2 entries"):
        expansion_summary(small_model, X, parts["linear"], output_names=["a", "b"])


def test_mean_expansion_errors(small_model):
    from bilinear_core import BilinearMLP
    from bilinear_core.interpret import mean_expansion

    with pytest.raises(ValueError, match="X has 5 genes"):
        mean_expansion(small_model, np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"center must be one profile of shape \(12,\)"):
        mean_expansion(small_model, np.ones((3, 12)), center=np.ones(3))
    with pytest.raises(ValueError, match="without biases"):
        mean_expansion(BilinearMLP(12, 4, 3, bias=True), np.ones((3, 12)))
