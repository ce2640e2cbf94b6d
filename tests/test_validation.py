"""Tests for bilinear_core.validation on small synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData
from scipy import sparse, stats

from bilinear_core import fit
from bilinear_core.interpret import Modules
from bilinear_core.model import BilinearMLP
from bilinear_core.validation import (
    ReluMLP,
    abs_cosine,
    classification_scores,
    fit_logistic,
    fit_ridge,
    jaccard,
    marker_overlap,
    mcnemar,
    module_stability,
    overlap_pvalue,
    pole_genes,
    random_abs_cosine,
    regression_scores,
    split_train_val_test,
    tune_on_validation,
    wilcoxon_markers,
)

# ------------------------------------------------------------------------------------------- splits


def test_split_sizes_disjoint_and_stratified():
    labels = np.repeat(["a", "b", "c"], [200, 100, 40])
    train, val, test = split_train_val_test(len(labels), test_fraction=0.15, val_fraction=0.3, stratify=labels)
    assert len(train) + len(val) + len(test) == len(labels)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert len(test) == 51  # ceil(0.15 · 340)
    assert len(val) == 87  # ceil(0.3 · 289)
    for part, fraction in ((test, 0.15), (val, 0.85 * 0.3)):
        counts = pd.Series(labels[part]).value_counts()
        for label, total in (("a", 200), ("b", 100), ("c", 40)):
            assert abs(counts[label] - fraction * total) <= 1.5
    assert all(np.all(np.diff(part) > 0) for part in (train, val, test))


def test_split_fixed_test_seed_keeps_test_and_changes_val():
    labels = np.repeat(["a", "b"], [150, 150])
    _, val1, test1 = split_train_val_test(300, seed=1, test_seed=0, stratify=labels)
    _, val2, test2 = split_train_val_test(300, seed=2, test_seed=0, stratify=labels)
    np.testing.assert_array_equal(test1, test2)
    assert not np.array_equal(val1, val2)
    again = split_train_val_test(300, seed=1, test_seed=0, stratify=labels)
    np.testing.assert_array_equal(again[1], val1)


def test_split_errors():
    with pytest.raises(ValueError, match="shape"):
        split_train_val_test(10, stratify=np.zeros(9))
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val_test(10, test_fraction=1.5)


# ------------------------------------------------------------------------------------------- baselines


def _toy_classification(seed=0, n=120, g=6):
    rng = np.random.default_rng(seed)
    labels = np.repeat(["x", "y", "z"], n // 3)
    X = rng.normal(size=(n, g)).astype(np.float32)
    X[labels == "x", 0] += 4
    X[labels == "y", 1] += 4
    return X, labels


def test_relu_mlp_shapes_and_is_relu():
    model = ReluMLP(5, 7, 3)
    x = torch.randn(4, 5)
    assert model(x).shape == (4, 3)
    assert (model.hidden(x) >= 0).all()
    expected = model.head(torch.clamp(model.layer(x), min=0))
    torch.testing.assert_close(model(x), expected)
    with pytest.raises(ValueError, match="n_hidden"):
        ReluMLP(5, 0, 3)


def test_fit_with_model_factory_trains_relu_and_default_is_unchanged():
    X, labels = _toy_classification()
    relu = fit(X, labels, n_hidden=8, epochs=30, lr=1e-2, progress=False, model_factory=ReluMLP)
    assert isinstance(relu.model, ReluMLP)
    assert relu.settings["model"] == "ReluMLP"
    assert relu.history["val_accuracy"].iloc[-1] > 0.8
    default = fit(X, labels, n_hidden=8, epochs=3, progress=False)
    explicit = fit(X, labels, n_hidden=8, epochs=3, progress=False, model_factory=None)
    assert isinstance(default.model, BilinearMLP) and "model" not in default.settings
    pd.testing.assert_frame_equal(default.history, explicit.history)
    with pytest.raises(TypeError, match="model_factory"):
        fit(X, labels, epochs=1, progress=False, model_factory="relu")


def test_tune_on_validation_picks_best_first_on_ties():
    model, table = tune_on_validation(lambda v: (f"m{v}", -((v - 2) ** 2)), [0, 1, 2, 3, 4], "v")
    assert model == "m2"
    assert table["selected"].tolist() == [False, False, True, False, False]
    model, _ = tune_on_validation(lambda v: (v, 1.0), [5, 6])
    assert model == 5
    with pytest.raises(ValueError, match="empty"):
        tune_on_validation(lambda v: (v, 1.0), [])
    with pytest.raises(ValueError, match="finite"):
        tune_on_validation(lambda v: (v, np.nan), [1])


def test_fit_logistic_and_ridge_on_easy_problems():
    X, labels = _toy_classification()
    train, val, _ = split_train_val_test(len(labels), stratify=labels)
    model, table = fit_logistic(X, labels, train, val, Cs=(0.1, 1.0))
    assert len(table) == 2 and table["selected"].sum() == 1
    assert table["val_score"].max() > 0.9
    assert (model.predict(X[val]) == labels[val]).mean() == table["val_score"].max()
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(100, 3))
    y = Z @ np.array([[1.0, 0.0], [2.0, 1.0], [0.0, -1.0]])
    model, table = fit_ridge(sparse.csr_matrix(Z), y, np.arange(70), np.arange(70, 100), alphas=(1e-6, 100.0))
    assert table["selected"].tolist() == [True, False]
    np.testing.assert_allclose(model.coef_, [[1, 2, 0], [0, 1, -1]], atol=1e-4)
    with pytest.raises(ValueError, match="cells"):
        fit_logistic(X, labels[:-1], train, val)


# ------------------------------------------------------------------------------------------- metrics


def test_classification_scores_by_hand():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "b", "a"]
    s = classification_scores(y_true, y_pred, classes=["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["recall a"] == pytest.approx(2 / 3)
    assert s["recall b"] == 1.0 and s["recall c"] == 0.0
    # F1: a = 2·(2/3·2/3)/(4/3) = 2/3, b = 2·(2/3·1)/(5/3) = 0.8, c = 0
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    with pytest.raises(ValueError, match="equal length"):
        classification_scores(["a"], ["a", "b"])


def test_regression_scores_by_hand():
    y = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 4.0]])
    pred = np.array([[0.0, 1.0], [1.0, 2.0], [3.0, 4.0]])
    s = regression_scores(y, pred, ["u", "v"])
    assert s["mae u"] == pytest.approx(1 / 3) and s["mae v"] == pytest.approx(1 / 3)
    assert s["r2 u"] == pytest.approx(1 - 1 / 2)  # SSE 1, SST 2
    assert s["r2 v"] == pytest.approx(1 - 1 / 6)  # SSE 1, SST 6
    assert s["r2"] == pytest.approx((0.5 + 5 / 6) / 2)
    assert regression_scores(y, y)["r2"] == 1.0
    with pytest.raises(ValueError, match="same shape"):
        regression_scores(y, pred[:, :1])


def test_mcnemar_by_hand():
    a = np.array([True, True, True, False, True, False])
    b = np.array([True, False, False, False, True, True])
    only_a, only_b, p = mcnemar(a, b)
    assert (only_a, only_b) == (2, 1)
    assert p == pytest.approx(1.0)  # 2 vs 1 of 3: P(X ≤ 1) + P(X ≥ 2) = 1
    only_a, only_b, p = mcnemar(np.ones(8, bool), np.zeros(8, bool))
    assert (only_a, only_b) == (8, 0) and p == pytest.approx(2 / 2**8)
    assert mcnemar(a, a) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="boolean"):
        mcnemar(a.astype(int), b)


# ------------------------------------------------------------------------------------------- marker overlap


def test_jaccard_and_hypergeometric_p_by_hand():
    assert jaccard("abc", "bcd") == pytest.approx(2 / 4)
    assert jaccard(["a", "a"], ["a"]) == 1.0
    with pytest.raises(ValueError, match="empty"):
        jaccard([], [])
    background = [f"g{i}" for i in range(10)]
    a, b = background[:3], background[1:4]  # overlap 2
    # P(X ≥ 2), X ~ Hypergeom(N=10, K=3, n=3): [C(3,2)C(7,1) + C(3,3)C(7,0)] / C(10,3) = 22/120
    assert overlap_pvalue(a, b, background) == pytest.approx(22 / 120)
    assert overlap_pvalue(a, b, background) == pytest.approx(stats.hypergeom.sf(1, 10, 3, 3))
    assert overlap_pvalue(a, background[5:8], background) == 1.0
    with pytest.raises(ValueError, match="background"):
        overlap_pvalue(["zz"], b, background)


def _modules(vectors: dict, values: dict | None = None, genes=None) -> Modules:
    """Modules with one output per key; ``vectors[o]`` is ``(g, k)``."""
    names = list(vectors)
    V = np.stack([np.asarray(vectors[o], dtype=float) for o in names])
    k = V.shape[2]
    L = np.stack([np.asarray(values[o], dtype=float) if values else np.arange(k, 0, -1.0) for o in names])
    genes = [f"g{i}" for i in range(V.shape[1])] if genes is None else genes
    return Modules(eigenvalues=L, eigenvectors=V, output_names=names, var_names=genes)


def test_pole_genes_and_marker_overlap():
    v = np.array([5.0, 4.0, 0.1, 0.0, -0.2, -3.0, -6.0, 0.3])
    genes = [f"g{i}" for i in range(8)]
    assert pole_genes(v, genes, 2) == (["g0", "g1"], ["g6", "g5"])
    mods = _modules({"A": v[:, None], "B": -v[:, None]})
    markers = {"A": ["g0", "g2", "g3"], "B": ["g0", "g1", "g7"]}
    table = marker_overlap(mods, markers, n_genes=2).set_index(["output", "pole"])
    assert table.loc[("A", "positive"), "overlap"] == 1  # {g0,g1} ∩ {g0,g2}
    assert table.loc[("A", "positive"), "jaccard"] == pytest.approx(1 / 3)
    assert table.loc[("A", "negative"), "overlap"] == 0
    assert table.loc[("B", "negative"), "jaccard"] == 1.0  # -v: negative pole = {g0, g1} = markers
    assert table.loc[("B", "negative"), "p_value"] == pytest.approx(1 / 28)  # 1 / C(8, 2)
    assert table.loc[("B", "negative"), "shared"] == "g0, g1"
    with pytest.raises(KeyError, match="No marker genes"):
        marker_overlap(mods, {"A": markers["A"]}, n_genes=2)
    with pytest.raises(ValueError, match="Only 3 markers"):
        marker_overlap(mods, markers, n_genes=4)


def test_wilcoxon_markers_finds_planted_genes():
    rng = np.random.default_rng(0)
    n, g = 90, 20
    X = rng.poisson(1.0, size=(n, g)).astype(np.float32)
    groups = np.repeat(["p", "q", "r"], n // 3)
    X[groups == "p", 3] += 6
    X[groups == "q", 7] += 6
    X[groups == "q", 8] += 4
    adata = AnnData(X=np.log1p(X), obs=pd.DataFrame({"kind": groups}, index=[f"c{i}" for i in range(n)]))
    adata.var_names = [f"gene{i}" for i in range(g)]
    before = adata.copy()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        markers = wilcoxon_markers(adata, "kind", n_genes=2)
        assert torch.get_num_threads() == 1  # scanpy's numba step must not leave torch on all cores
    finally:
        torch.set_num_threads(threads)
    assert list(markers) == ["p", "q", "r"]
    assert markers["p"][0] == "gene3"
    assert markers["q"] == ["gene7", "gene8"]
    assert "rank_genes_groups" not in adata.uns and adata.obs.equals(before.obs)
    with pytest.raises(KeyError, match="nope"):
        wilcoxon_markers(adata, "nope", 2)
    with pytest.raises(ValueError, match="n_genes"):
        wilcoxon_markers(adata, "kind", 0)


# ------------------------------------------------------------------------------------------- stability


def test_abs_cosine_is_sign_invariant():
    rng = np.random.default_rng(0)
    U = rng.normal(size=(30, 4))
    C = abs_cosine(U)
    np.testing.assert_allclose(np.diag(C), 1.0)
    np.testing.assert_allclose(abs_cosine(U * np.array([1, -1, -1, 1])), C)
    expected = abs(U[:, 0] @ U[:, 1]) / np.linalg.norm(U[:, 0]) / np.linalg.norm(U[:, 1])
    assert C[0, 1] == pytest.approx(expected)
    assert abs_cosine(np.array([[1.0, 0.0], [0.0, 2.0]]))[0, 1] == 0.0
    with pytest.raises(ValueError, match="zero norm"):
        abs_cosine(np.zeros((3, 2)))


def test_random_abs_cosine_exact_and_by_simulation():
    assert random_abs_cosine(2) == pytest.approx(2 / np.pi)
    assert random_abs_cosine(3) == pytest.approx(0.5)
    assert random_abs_cosine(10_000) == pytest.approx(np.sqrt(2 / (np.pi * 10_000)), rel=1e-3)
    rng = np.random.default_rng(0)
    U, V = rng.normal(size=(2, 20_000, 50))
    simulated = np.abs((U * V).sum(1) / np.linalg.norm(U, axis=1) / np.linalg.norm(V, axis=1)).mean()
    assert simulated == pytest.approx(random_abs_cosine(50), rel=0.02)
    with pytest.raises(ValueError, match="at least 2"):
        random_abs_cosine(1)


def test_module_stability_identical_and_flipped_runs_are_perfect():
    rng = np.random.default_rng(1)
    vec = {"A": rng.normal(size=(40, 3)), "B": rng.normal(size=(40, 3))}
    run = _modules(vec, {"A": [3.0, 1.0, -2.0], "B": [2.0, 0.5, -1.0]})
    flipped = _modules({o: -v for o, v in vec.items()}, {"A": [3.0, 1.0, -2.0], "B": [2.0, 0.5, -1.0]})
    table = module_stability([run, flipped, run], n_genes=5).set_index("output")
    np.testing.assert_allclose(table[["mean_abs_cos", "min_abs_cos", "mean_jaccard"]].to_numpy(), 1.0)
    np.testing.assert_allclose(table["eigenvalue_std"], 0.0)
    assert table.loc["A", "eigenvalue_mean"] == 3.0 and table.loc["A", "n_runs"] == 3
    last = module_stability([run, flipped], module=-1, n_genes=5).set_index("output")
    assert (last["module"] == 2).all() and last.loc["A", "eigenvalue_mean"] == -2.0
    pd.testing.assert_frame_equal(last, module_stability([run, flipped], module=2, n_genes=5).set_index("output"))


def test_module_stability_values_on_a_toy_case():
    genes = [f"g{i}" for i in range(6)]
    u = np.array([3.0, 2.0, 1.0, -1.0, -2.0, -3.0])
    w = np.array([3.0, 1.0, 2.0, -1.0, -2.0, -3.0])
    r1 = _modules({"A": u[:, None]}, {"A": [1.0]}, genes)
    r2 = _modules({"A": -w[:, None]}, {"A": [3.0]}, genes)  # opposite sign: must be aligned before Jaccard
    row = module_stability([r1, r2], n_genes=2).iloc[0]
    assert row["mean_abs_cos"] == pytest.approx(27 / 28)  # u·w = 27, |u|² = |w|² = 28
    # positive poles {g0, g1} vs {g0, g2}: 1/3; negative poles {g5, g4} vs {g5, g4}: 1
    assert row["mean_jaccard"] == pytest.approx((1 / 3 + 1) / 2)
    assert row["eigenvalue_mean"] == 2.0 and row["eigenvalue_std"] == 1.0 and row["eigenvalue_cv"] == 0.5
    assert row["eigenvalue_min"] == 1.0 and row["eigenvalue_max"] == 3.0


def test_module_stability_errors():
    run = _modules({"A": np.eye(4)[:, :2]})
    other = _modules({"B": np.eye(4)[:, :2]})
    with pytest.raises(ValueError, match="at least 2"):
        module_stability([run])
    with pytest.raises(ValueError, match="different outputs"):
        module_stability([run, other])
    with pytest.raises(IndexError, match="module 5"):
        module_stability([run, run], module=5)
    with pytest.raises(IndexError, match="module -3"):
        module_stability([run, run], module=-3)


def test_fit_logistic_warm_start_reaches_the_cold_start_optimum():
    from sklearn.linear_model import LogisticRegression

    X, labels = _toy_classification()
    train, val, _ = split_train_val_test(len(labels), stratify=labels)
    model, table = fit_logistic(X, labels, train, val, Cs=(1e-4, 1.0))
    assert table["selected"].tolist() == [False, True]  # so the returned model was warm-started from C = 1e-4
    cold = LogisticRegression(C=1.0, max_iter=500).fit(X[train], labels[train])
    np.testing.assert_allclose(model.predict_proba(X), cold.predict_proba(X), atol=1e-3)
