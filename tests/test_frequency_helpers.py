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
import bookkit  # noqa: E402
from bookkit import frequencies as kit  # noqa: E402
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


def test_orientation_of_a_bare_float32_matrix_and_a_zero_mean_column():
    # no parameters recorded yet, float32 input, column 1 has mean exactly 0 over the reference: not flipped
    adata = AnnData(np.ones((3, 2)), obsm={"X_freq": np.array([[1, 1], [1, -1], [-2, 5]], dtype=np.float32)})
    orient_frequencies(adata, np.array([True, True, False]))
    np.testing.assert_array_equal(adata.obsm["X_freq"], [[-1, 1], [-1, -1], [2, 5]])
    assert adata.obsm["X_freq"].dtype == np.float64
    assert adata.uns["freq"]["flipped"].tolist() == [0]
    orient_frequencies(adata, np.array([True, True, False]))  # nothing to flip: still an integer array
    assert adata.uns["freq"]["flipped"].dtype.kind == "i" and adata.uns["freq"]["flipped"].size == 0


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
    with pytest.raises(ValueError, match=r"one entry per cell \(4\), got dtype bool and shape \(3,\)"):
        orient_frequencies(AnnData(np.ones((4, 3)), obsm={"X_freq": np.ones((4, 3))}), np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="^reference marks no cell; the orientation would be undefined.$"):
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
    # self-loops count once as edges, with their weight in the degrees
    A = sparse.csr_matrix(np.array([[2.0, 1, 0], [1, 0, 3], [0, 3, 0]]))
    assert graph_summary(A) == {
        "n_cells": 3,
        "n_edges": 3,
        "mean_degree": pytest.approx(10 / 3),
        "median_degree": 3.0,
        "max_degree": 4.0,
        "n_components": 1,
    }
    # a kNN graph: every cell keeps at least k neighbours, at most 2k edges per cell on average
    X = np.random.default_rng(0).gamma(2.0, size=(30, 4)).astype(np.float32)
    summary = graph_summary(knn_adjacency(X, 3))
    assert 3 <= summary["mean_degree"] <= 6 and summary["n_edges"] == summary["mean_degree"] * 30 / 2


def test_graph_summary_errors():
    with pytest.raises(ValueError, match="square"):
        graph_summary(sparse.csr_matrix(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"^The adjacency matrix is not symmetric; symmetrise it first \(e"):
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


def _freq_report(n_genes=12, with_terms=True):
    """A module report of 'frequency 1' with ``n_genes`` genes per pole and three terms on the positive pole."""
    genes = pd.DataFrame(
        {
            "output": "frequency 1",
            "module": 0,
            "sign": ["positive"] * n_genes + ["negative"] * n_genes,
            "rank": list(range(n_genes)) * 2,
            "gene": [f"p{i}" for i in range(n_genes)] + [f"n{i}" for i in range(n_genes)],
        }
    )
    terms = pd.DataFrame(
        {
            "sign": ["positive"] * 3,
            "library": ["GO_Biological_Process_2023"] * 3,
            "term": ["term a", "term b", "REACTOME_TERM_C"],
            "overlap": ["3/10", "2/10", "2/30"],
            "adjusted_p": [0.001, 0.01, 0.04],
        }
    )
    terms = terms if with_terms else terms.iloc[:0]
    return ModuleReport("frequency 1", 0, 3.0, genes, terms)


def test_readable_headers():
    report = pd.DataFrame(
        {"mae": [0.1], "std": [1.0], "iqr": [2.0], "r2": [0.9], "pearson_r": [0.95], "other_name": [1]},
        index=pd.Index(["frequency 0"], name="output"),
    )
    shown = kit.readable(report)
    assert shown.columns.tolist() == ["MAE", "SD", "IQR", "R²", "Pearson r", "other_name"]
    pd.testing.assert_frame_equal(shown.set_axis(report.columns, axis=1), report)  # values and index untouched
    assert report.columns[0] == "mae"  # not renamed in place
    # every header a reader sees is free of the library's snake_case
    assert not any("_" in h for h in kit.HEADERS.values())


def test_compare_fits():
    index = pd.Index(["f0", "f1"], name="output")
    a = pd.DataFrame({"mae": [0.1, 0.2], "r2": [0.9, 0.8], "pearson_r": [0.95, 0.9]}, index=index)
    b = pd.DataFrame({"mae": [0.5, 0.6], "r2": [-0.1, 0.2], "pearson_r": [0.3, 0.4]}, index=index)
    table = kit.compare_fits({"L2": a, "decoupled": b})
    assert table.columns.tolist() == [
        ("MAE", "L2"),
        ("MAE", "decoupled"),
        ("R²", "L2"),
        ("R²", "decoupled"),
        ("Pearson r", "L2"),
        ("Pearson r", "decoupled"),
    ]
    assert table.loc["f1", ("MAE", "decoupled")] == 0.6
    assert table.loc["f0", ("R²", "decoupled")] == -0.1
    html = bookkit.table(table, precision=2)._repr_html_()  # fits: 6 columns and the index
    assert ">decoupled<" in html and ">-0.10<" in html
    assert table.index.equals(index)
    with pytest.raises(ValueError, match="outputs"):
        kit.compare_fits({"L2": a, "other": b.iloc[:1]})
    with pytest.raises(KeyError, match="r2"):
        kit.compare_fits({"L2": a, "other": b.drop(columns="r2")})
    with pytest.raises(ValueError, match="empty"):
        kit.compare_fits({})


def test_top_genes_and_terms_are_one_based():
    report = _freq_report()
    top = kit.top_genes(report, 3)
    assert top.index.name == "position" and top.index.tolist() == [1, 2, 3]
    assert top["positive"].tolist() == ["p0", "p1", "p2"]
    assert top["negative"].tolist() == ["n0", "n1", "n2"]
    terms = kit.enriched_terms(report, "positive", 2)
    assert terms.index.tolist() == [1, 2]
    assert terms["term"].tolist() == ["term a", "term b"]
    assert terms["library"].tolist() == ["GO Biological Process 2023"] * 2
    assert terms["adjusted p"].tolist() == ["0.001", "0.01"]
    assert len(kit.enriched_terms(report, "negative")) == 0


def test_regression_dropdown_parts():
    report = _freq_report()
    modules = Modules(np.array([[3.0, 1.0, -2.0]]), np.eye(3)[None], ["frequency 1"], ["x", "y", "z"])
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    figure = bookkit.figure_markdown(fig, "fig-freq-test", kit.modules_caption("frequency 1", 0.06))
    best = pd.Series({"module": 2, "r": -0.87, "eigenvalue": -2.0})
    note = "*Not a finding.*"
    text = kit.regression_dropdown("Frequency 1, module 0", figure, report, modules, 0.06, best=best, note=note)
    assert text.startswith("::::{dropdown} Frequency 1, module 0\n\n*Not a finding.*\n\n```{figure} data:image/svg")
    assert text.rstrip().endswith("::::")
    assert ":name: fig-freq-test" in text and "(module 0: r = 0.06)" in text
    assert text.index("Not a finding") < text.index("{figure}") < text.index("hardly follow frequency 1")
    assert "module 2 (r = -0.87, λ = -2)" in text and "among all 3" in text
    assert "(generated)" not in text
    # the top genes with 1-based positions, at most 10, and the served CSVs linked
    assert ">p9<" in text and ">p10<" not in text and ">1<" in text and ">0<" not in text
    assert 'href="../results/frequencies_module0_genes.csv"' in text
    assert 'href="../results/frequencies_module0_enrichment.csv"' in text
    # names wrap: underscores shown as spaces
    assert "REACTOME TERM C" in text and "GO Biological Process 2023" in text and "_TERM" not in text
    assert "Terms enriched in the negative pole" in text and "No term passes adjusted p ≤ 0.05." in text
    # no figure, no note, no terms at all
    text = kit.regression_dropdown("F", "", _freq_report(with_terms=False), modules, 0.5)
    assert "{figure}" not in text and "Not a finding" not in text
    assert text.count("No term passes adjusted p ≤ 0.05.") == 2
    assert "frequencies_module0_enrichment.csv" not in text


def test_summary_tables():
    summary = pd.DataFrame(
        {
            "eigenvalue of L": [0.092],
            "validation MAE": [0.0021],
            "target IQR": [0.0371],
            "validation R²": [0.972],
            "r module 0": [0.01],
            "best |r| (module)": ["0.93 (202)"],
            "linear share": [0.97],
            "module": [0],
            "eigenvalue": [0.00171],
            "positive genes": ["Hspe1, Mdk"],
            "negative genes": ["Ttr, Tmsb4x"],
            "positive terms": ["REACTOME_METABOLISM_OF_RNA"],
            "negative terms": ["Oxidative phosphorylation"],
        },
        index=pd.Index(["frequency 0"], name="output"),
    )
    html = kit.summary_metrics(summary)._repr_html_()
    for header in ("λ", "validation R²", "r, module 0", "best |r| (module)", "linear share"):
        assert f">{header}<" in html
    assert "target IQR" not in html and "validation MAE" not in html and "Hspe1" not in html
    assert ">0.092<" in html and ">0.972<" in html and ">0.93 (202)<" in html and ">0.01<" in html
    assert 'href="../results/frequencies_summary.csv"' in html
    text = kit.summary_dropdown("Genes", summary, note="*Not a finding.*")
    assert text.startswith("::::{dropdown} Genes\n\n*Not a finding.*")
    assert "Hspe1, Mdk" in text and "Oxidative phosphorylation" in text and "0.0021" not in text
    assert "REACTOME METABOLISM OF RNA" in text and "REACTOME_" not in text
    with pytest.raises(KeyError, match="linear share"):
        kit.summary_metrics(summary.drop(columns="linear share"))
    with pytest.raises(KeyError, match="negative terms"):
        kit.summary_dropdown("Genes", summary.drop(columns="negative terms"))
