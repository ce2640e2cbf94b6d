"""Tests for bilinear_core.stability on small synthetic data: marker overlap, Wilcoxon markers, module stability."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData
from scipy import stats

from bilinear_core.interpret import Modules
from bilinear_core.stability import (
    abs_cosine,
    jaccard,
    marker_overlap,
    module_stability,
    overlap_pvalue,
    pole_genes,
    random_abs_cosine,
    rank_genes_wilcoxon,
    reliability_of,
    stability_table,
    wilcoxon_markers,
)

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
    adata.layers["log"], adata.X = adata.X, np.zeros_like(adata.X)  # the markers come from the layer
    assert wilcoxon_markers(adata, "kind", n_genes=2, layer="log") == markers


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


def test_stability_table_stacks_module_stability():
    rng = np.random.default_rng(2)
    values = {"A": [3.0, 1.0, -2.0], "B": [2.0, 0.5, -1.0]}
    runs = [_modules({o: rng.normal(size=(40, 3)) for o in values}, values) for _ in range(3)]
    table = stability_table({"seed": runs, "split": runs[:2]}, modules={"0": 0, "last": -1}, n_genes=5)
    assert table.columns[-2:].tolist() == ["varied", "module_name"]
    assert table[["varied", "module_name", "output"]].values.tolist() == [
        [v, m, o] for v in ("seed", "split") for m in ("0", "last") for o in ("A", "B")
    ]
    expected = module_stability(runs[:2], module=-1, n_genes=5)
    got = table[(table["varied"] == "split") & (table["module_name"] == "last")]
    pd.testing.assert_frame_equal(got.drop(columns=["varied", "module_name"]).reset_index(drop=True), expected)
    by_wd = stability_table({0.1: runs, 1.0: runs[1:]}, by="weight_decay", n_genes=5)
    assert "module_name" not in by_wd and by_wd["weight_decay"].tolist() == [0.1, 0.1, 1.0, 1.0]
    assert (by_wd["module"] == 0).all() and by_wd["n_runs"].tolist() == [3, 3, 2, 2]
    with pytest.raises(ValueError, match="at least one"):
        stability_table({})


def test_reliability_of_finds_a_module_by_its_index_or_its_negative_index():
    values = np.tile(np.array([3.0, 2, 1, 0.5, -0.5, -1, -2]), (2, 1))  # 7 modules: 0-2, 3 (middle), 4-6 = −3…−1
    modules = Modules(values, np.tile(np.eye(7), (2, 1, 1)), ["a", "b"], [f"g{i}" for i in range(7)])
    assert reliability_of(modules, "a", 0) is None  # no table yet
    rows = [(o, m, o == "b" and m == -1) for o in "ab" for m in (0, 1, 2, -3, -2, -1)]
    modules.reliability = pd.DataFrame(rows, columns=["output", "module", "reproducible"])
    assert reliability_of(modules, "b", 6)["module"] == -1  # the last of 7 is module −1
    assert reliability_of(modules, "b", 6)["reproducible"]
    assert reliability_of(modules, "b", -1)["module"] == -1
    assert reliability_of(modules, "a", 4)["module"] == -3  # 4 ≥ 7 // 2: counted from the end
    assert reliability_of(modules, "a", 2)["module"] == 2 and reliability_of(modules, "a", 0)["module"] == 0
    assert reliability_of(modules, "a", 3) is None  # module 3 (= −4) has no row
    assert reliability_of(modules, 1, 1)["output"] == "b"  # outputs by index too
    six = Modules(values[:, :6], np.tile(np.eye(6), (2, 1, 1)), ["a", "b"], [f"g{i}" for i in range(6)])
    six.reliability = modules.reliability
    assert reliability_of(six, "a", 3)["module"] == -3  # the first index of the second half of 6
    # a short spectrum whose negative pole reaches before its middle: column 1 of 4 is module −3
    four = Modules(np.array([[3.0, -1, -2, -5]]), np.eye(4)[None], ["a"], [f"g{i}" for i in range(4)])
    four.reliability = pd.DataFrame({"output": "a", "module": [0, -1, -2, -3], "reproducible": True})
    assert [reliability_of(four, "a", m)["module"] for m in (0, 1, 2, 3, -3, -4)] == [0, -3, -2, -1, -3, 0]
    for module in (4, -5):
        with pytest.raises(IndexError, match=f"^module {module} out of range: the spectrum has 4 modules.$"):
            reliability_of(four, "a", module)


def test_rank_genes_wilcoxon_reads_its_layer_and_names_its_bounds():
    rng = np.random.default_rng(0)
    adata = AnnData(np.zeros((20, 3), dtype=np.float32))
    adata.layers["log"] = np.log1p(rng.gamma(2.0, size=(20, 3))).astype(np.float32)
    adata.obs["group"] = np.repeat(["x", "y"], 10)
    result = rank_genes_wilcoxon(adata, "group", reference="y", n_genes=1, layer="log")
    best = result["names"]["x"][0]
    column = list(adata.var_names).index(best)
    values = adata.layers["log"][:, column]
    expected = stats.mannwhitneyu(values[:10], values[10:], method="asymptotic", use_continuity=False).pvalue
    assert result["pvals"]["x"][0] == pytest.approx(expected, rel=1e-3)  # the normal approximation, as scanpy
    with pytest.raises(KeyError, match=re.escape("Layer 'raw' not found in adata.layers; available layers: ['log'].")):
        rank_genes_wilcoxon(adata, "group", layer="raw")
    with pytest.raises(ValueError, match=re.escape("n_genes must lie in [1, 3], got 0.")):
        rank_genes_wilcoxon(adata, "group", n_genes=0)
    adata.obs["one"] = "x"
    with pytest.raises(ValueError, match=re.escape("adata.obs['one'] needs at least 2 groups, found ['x'].")):
        rank_genes_wilcoxon(adata, "one")


def test_stability_bounds_and_messages_exactly():
    assert jaccard([], ["a"]) == 0.0  # one empty set: nothing shared
    with pytest.raises(ValueError, match="^The Jaccard index of two empty sets is undefined.$"):
        jaccard([], [])
    with pytest.raises(ValueError, match="^" + re.escape("4 gene(s) are not in the background, e.g. ['w', 'x', 'y'].")):
        overlap_pvalue(["w", "x"], ["y", "z"], ["a"])
    genes = [f"g{i}" for i in range(5)]
    vector = np.array([2.0, 1.0, 0.0, -1.0, -2.0])
    assert pole_genes(vector, genes, 1) == (["g0"], ["g4"]) and pole_genes(vector, genes, 2)[1] == ["g4", "g3"]
    for args, message in [
        ((vector[:4], genes, 1), "vector must be 1-d with one loading per gene (5), got (4,)."),
        ((vector[:, None], genes, 1), "vector must be 1-d with one loading per gene (5), got (5, 1)."),
        ((vector, genes, 3), "n_genes must lie in [1, 2], got 3."),
        ((vector, genes, 0), "n_genes must lie in [1, 2], got 0."),
    ]:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            pole_genes(*args)
    for vectors, message in [
        (np.ones(3), "vectors must be 2-d (genes × runs), got shape (3,)."),
        (np.zeros((3, 2)), "A vector has zero norm; its direction (cosine) is undefined."),
    ]:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            abs_cosine(vectors)
    with pytest.raises(ValueError, match="^Give at least one set of runs and one module.$"):
        stability_table({"seed": []}, modules={})


def test_abs_cosine_clips_rounding_above_one():
    # a vector with itself: for some vectors the float64 product of the unit columns overshoots 1
    def overshoots(v):
        pair = np.hstack([v, v])
        unit = pair / np.linalg.norm(pair, axis=0)
        return (unit.T @ unit).max() > 1

    vector = next(v for v in np.random.default_rng(0).normal(size=(500, 7, 1)) if overshoots(v))
    assert abs_cosine(np.hstack([vector, vector])).max() == 1.0


def test_pole_jaccard_aligns_signs_by_the_sign_of_the_dot_product():
    genes = [f"g{i}" for i in range(6)]
    u = np.array([3.0, 2, 1, -1, -2, -3])  # poles of 2: {g0, g1} and {g5, g4}
    for v in ([100.0, 99, -50, -39, 98, 97], [100.0, 99, -50, -39.5, 98, 97]):  # u · v = 0 and 0.5
        runs = [_modules({"A": np.asarray(w)[:, None]}, {"A": [1.0]}, genes) for w in (u, v)]
        # kept as it is, v's poles are {g0, g1} and {g2, g3}: Jaccard 1 and 0 (flipped: 0 and 0)
        assert module_stability(runs, n_genes=2)["mean_jaccard"].iloc[0] == 0.5


def test_module_stability_edges():
    run = _modules({"A": np.eye(4)[:, :2]})
    other = _modules({"B": np.eye(4)[:, :2]})
    with pytest.raises(ValueError, match="^Run 2 has different outputs or genes than run 0; compare like with like.$"):
        module_stability([run, run, other])
    assert module_stability([run, run], module=-2)["module"].tolist() == [0]  # −k is module 0
    with pytest.raises(IndexError, match="^module 2 out of range: the runs have 2 modules.$"):
        module_stability([run, run], module=2)
    # the coefficient of variation: std / |mean|, NaN when the mean is 0
    for values, cv in [([0.5, 1.5], 0.5), ([-1.0, 1.0], np.nan), ([1.0, 1.0], 0.0)]:
        runs = [_modules({"A": np.eye(4)[:, :1]}, {"A": [v]}) for v in values]
        assert module_stability(runs)["eigenvalue_cv"].iloc[0] == pytest.approx(cv, nan_ok=True)
    runs = [_modules({"A": np.eye(4)[:, :1]}, {"A": [v]}) for v in (0.5, 1.5)]
    table = stability_table({"x": runs, "y": runs}, n_genes=1)
    assert table.index.tolist() == [0, 1]


def test_abs_cosine_of_float32_vectors_in_float64():
    vectors = (1 + np.random.default_rng(0).normal(size=(50, 2)) * 1e-3).astype(np.float32)  # nearly parallel
    exact = vectors.astype(np.float64)
    expected = abs(exact[:, 0] @ exact[:, 1]) / np.linalg.norm(exact[:, 0]) / np.linalg.norm(exact[:, 1])
    assert abs_cosine(vectors)[0, 1] == pytest.approx(expected, rel=1e-14)


def test_marker_overlap_defaults_outputs_and_the_n_genes_column():
    genes = [f"g{i}" for i in range(120)]
    vector = np.linspace(1.0, -1.0, 120)
    mods = _modules({"A": vector[:, None], "B": -vector[:, None]}, genes=genes)
    markers = {"A": genes[:60], "B": genes[60:]}
    table = marker_overlap(mods, markers)  # the top-1 % rule's floor: 50 genes per pole
    assert table["n_genes"].tolist() == [50] * 4 and table["output"].tolist() == ["A", "A", "B", "B"]
    assert table["overlap"].tolist() == [50, 0, 40, 0]  # the first 50 markers of B: g60–g109
    only_b = marker_overlap(mods, {"B": genes[60:]}, n_genes=3, outputs=["B"])
    assert only_b["output"].tolist() == ["B", "B"] and only_b["n_genes"].tolist() == [3, 3]
