import re
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

import bilinear_core as bc
from bilinear_core import composition as cp
from bilinear_core import datasets
from bilinear_core.interpret import Modules, interaction_matrices, quadratic_form

# --------------------------------------------------------------------------------------------- conditions


def test_parse_condition():
    assert cp.parse_condition("control") == ()
    assert cp.parse_condition("KLF1") == ("KLF1",)
    assert cp.parse_condition("KLF1+MAP2K6") == ("KLF1", "MAP2K6")
    assert cp.parse_condition("ctrl", control="ctrl") == ()


@pytest.mark.parametrize(("bad", "message"), [("A+", "empty member"), ("+B", "empty member"), ("A+A", "twice")])
def test_parse_condition_rejects_bad_strings(bad, message):
    with pytest.raises(ValueError, match=message):
        cp.parse_condition(bad)


def test_parse_condition_rejects_non_strings():
    with pytest.raises(TypeError, match="must be a string"):
        cp.parse_condition(3)


def test_indicator_targets():
    Y = cp.indicator_targets(["control", "A", "A+B", "B", "C"], ["A", "B", "C"])
    np.testing.assert_array_equal(Y, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert Y[2].sum() == 2 and Y[0].sum() == 0 and Y.dtype == np.float32


def test_indicator_targets_with_pair_output():
    Y = cp.indicator_targets(["A+B", "A", "control"], ["A", "B", "A+B"])
    np.testing.assert_array_equal(Y, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])


def test_indicator_targets_errors():
    with pytest.raises(ValueError, match=r"Gene\(s\) \['D'\] \(in condition\(s\) \['A\+D'\]\) are not outputs"):
        cp.indicator_targets(["A", "A+D"], ["A", "B"])
    with pytest.raises(ValueError, match="duplicates"):
        cp.indicator_targets(["A"], ["A", "A"])
    with pytest.raises(ValueError, match="non-empty 1-d"):
        cp.indicator_targets([], ["A"])
    with pytest.raises(ValueError, match="empty member"):
        cp.indicator_targets(["A+"], ["A"])


def test_condition_table_kinds_and_counts():
    conditions = ["A", "control", "A+B", "B", "A+B", "A+X", "X+Y", "A", "control", "A"]
    table = cp.condition_table(conditions)
    assert list(table.index) == ["control", "A", "B", "A+B", "A+X", "X+Y"]  # by kind, then name
    assert list(table["kind"]) == list(cp.KINDS)[:2] + ["single", *cp.KINDS[2:]]
    assert table.loc["A", "n_cells"] == 3 and table.loc["A+B", "n_cells"] == 2 and table["n_cells"].sum() == 10
    assert table.loc["A+X", "members"] == ("A", "X") and table.loc["control", "n_members"] == 0
    with pytest.raises(ValueError, match="non-empty 1-d"):
        cp.condition_table([])
    with pytest.raises(ValueError, match="twice"):
        cp.condition_table(["A+A"])


def test_member_means():
    table = pd.DataFrame({"m1": [1.0, 3.0, 10.0], "m2": [0.0, 1.0, 2.0]}, index=pd.Index(["A", "B", "C"], name="c"))
    means = cp.member_means(table, ["A+B", "B+C"])
    np.testing.assert_allclose(means.to_numpy(), [[2.0, 0.5], [6.5, 1.5]])
    assert list(means.index) == ["A+B", "B+C"] and list(means.columns) == ["m1", "m2"] and means.index.name == "c"
    np.testing.assert_allclose(cp.member_means(table["m1"], ["A+C"]), [5.5])
    wide = pd.concat({"x": table, "y": 2 * table}, axis=1, names=["metric", "model"])  # two column levels
    means = cp.member_means(wide, ["A+B"])
    assert means.columns.names == ["metric", "model"] and means.loc["A+B", ("y", "m1")] == pytest.approx(4.0)
    with pytest.raises(ValueError, match=r"no row for member\(s\) \['D'\]"):
        cp.member_means(table, ["A+D"])
    with pytest.raises(ValueError, match="not a combination"):
        cp.member_means(table, ["A"])


# --------------------------------------------------------------------------------------------- metrics


def test_pair_metrics_constructed_case():
    names = ["A", "B", "C", "D"]
    scores = np.array(
        [
            [3.0, 2.0, 1.0, 0.0],  # A, B on top: AUROC 1, top-two exact
            [3.0, 0.0, 1.0, 2.0],  # A > C, D; B < C, D: 2 of 4 comparisons won
            [0.0, 0.0, 1.0, 1.0],  # both members below both others: 0
        ]
    )
    m = cp.pair_metrics(scores, names, ["A", "B"])
    assert m["auroc"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["top_k_exact"] == pytest.approx(1 / 3)
    assert m["mean_member"] == pytest.approx(scores[:, :2].mean())
    assert m["mean_other"] == pytest.approx(scores[:, 2:].mean())
    assert (m["n_cells"], m["k"]) == (3, 2)
    # ties count one half and never give an exact top-k
    tie = cp.pair_metrics(np.ones((2, 3)), ["A", "B", "C"], ["A"])
    assert tie["auroc"] == 0.5 and tie["top_k_exact"] == 0.0


def test_pair_metrics_errors():
    with pytest.raises(ValueError, match=r"Member\(s\) \['E'\] are not outputs"):
        cp.pair_metrics(np.zeros((2, 3)), ["A", "B", "C"], ["A", "E"])
    with pytest.raises(ValueError, match="3 columns but 2 output names"):
        cp.pair_metrics(np.zeros((2, 3)), ["A", "B"], ["A"])
    with pytest.raises(ValueError, match="distinct outputs"):
        cp.pair_metrics(np.zeros((2, 2)), ["A", "B"], ["A", "B"])
    with pytest.raises(ValueError, match="NaN"):
        cp.pair_metrics(np.full((2, 3), np.nan), ["A", "B", "C"], ["A"])


def test_condition_metrics_scores_seen_members_only():
    names = ["A", "B", "C"]
    scores = np.array([[1.0, 0, 0], [1.0, 1, 0], [0, 0, 1.0], [0, 1.0, 0], [0.5, 0, 0]])
    conditions = ["A", "A+B", "C+X", "control", "X+Y"]
    table = cp.condition_metrics(scores, conditions, names).set_index("condition")
    assert list(table.index) == ["A", "A+B", "C+X"]  # control and the pair without a seen member are skipped
    assert table.loc["A+B", "k"] == 2 and table.loc["A+B", "top_k_exact"] == 1.0
    assert table.loc["C+X", "members"] == "C" and table.loc["C+X", "n_members"] == 2 and table.loc["C+X", "k"] == 1


def test_centroid_scores():
    X_train = np.array([[-1.0, 0.0], [1.0, 2.0], [3.0, 0.0], [5.0, 2.0]])  # centroids (0, 1), (4, 1)
    scores, classes = cp.centroid_scores(X_train, ["a", "a", "b", "b"], np.array([[1.0, 1.0], [4.0, 1.0]]))
    assert classes == ["a", "b"]
    np.testing.assert_allclose(scores, [[-1.0, -3.0], [-4.0, 0.0]], atol=1e-6)
    with pytest.raises(ValueError, match="3 genes but X_train has 2"):
        cp.centroid_scores(X_train, ["a", "a", "b", "b"], np.zeros((1, 3)))


def test_centroid_scores_quiet_when_a_gene_is_constant_within_a_class():
    X_train = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 5.0], [6.0, 5.0]])  # gene 2 constant within each class
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores, _ = cp.centroid_scores(X_train, ["a", "a", "b", "b"], X_train[:1])
    np.testing.assert_allclose(scores, [[-1.0, -np.hypot(5, 4)]], rtol=1e-6)


# --------------------------------------------------------------------------------------------- subspaces


def test_subspace_overlap_known_values():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(20, 3))
    assert cp.subspace_overlap(A, A) == pytest.approx(1.0)
    assert cp.subspace_overlap(A, A @ rng.normal(size=(3, 3))) == pytest.approx(1.0)  # same span, other basis
    Q, _ = np.linalg.qr(rng.normal(size=(20, 6)))
    assert cp.subspace_overlap(Q[:, :3], Q[:, 3:]) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(cp.principal_angles(Q[:, :3], Q[:, 3:]), np.pi / 2)
    # half of a 2-d space inside a 1-d one; a 45° angle gives cos² = 1/2
    e = np.eye(4)
    assert cp.subspace_overlap(e[:, :2], e[:, :1]) == pytest.approx(0.5)
    assert cp.subspace_overlap(e[:, 0], e[:, 0] + e[:, 1]) == pytest.approx(0.5)
    np.testing.assert_allclose(cp.principal_angles(e[:, 0], e[:, 0] + e[:, 1]), [np.pi / 4])


def test_subspace_overlap_errors():
    with pytest.raises(ValueError, match="linearly dependent"):
        cp.subspace_overlap(np.ones((5, 2)), np.eye(5)[:, :2])
    with pytest.raises(ValueError, match="different spaces"):
        cp.subspace_overlap(np.eye(5)[:, :2], np.eye(4)[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        cp.subspace_overlap(np.full((5, 1), np.nan), np.eye(5)[:, :2])


def _modules(vectors: dict, values=(3.0, -2.0, 0.5)) -> Modules:
    """Modules whose outputs have the given (g, 3) eigenvectors and eigenvalues ``values``."""
    names = list(vectors)
    g = next(iter(vectors.values())).shape[0]
    return Modules(
        eigenvalues=np.tile(values, (len(names), 1)),
        eigenvectors=np.stack([vectors[n] for n in names]),
        output_names=names,
        var_names=[f"g{i}" for i in range(g)],
    )


def test_top_subspace_orders_by_magnitude():
    e = np.eye(6)
    modules = _modules({"A": e[:, :3]}, values=(0.5, 0.1, -2.0))
    np.testing.assert_array_equal(cp.top_subspace(modules, "A", 2), e[:, [2, 0]])
    with pytest.raises(ValueError, match="k must lie in"):
        cp.top_subspace(modules, "A", 4)


def test_overlap_test_pair_in_span_of_members():
    e = np.eye(12)
    vectors = {"A": e[:, 0:3], "B": e[:, 3:6], "C": e[:, 6:9], "D": e[:, 9:12]}
    # the pair's top two modules mix A's and B's; its third (smallest |λ|) is C's
    vectors["A+B"] = np.stack([(e[0] + e[3]) / np.sqrt(2), (e[1] - e[4]) / np.sqrt(2), e[6]], axis=1)
    modules = _modules(vectors)
    result = cp.overlap_test(modules, "A+B", ["A", "B"], ["A", "B", "C", "D"], k=2)
    assert result["overlap"] == pytest.approx(1.0)
    assert result["n_null"] == 1  # only {C, D} shares nothing with {A, B}
    assert result["null_mean"] == pytest.approx(0.0)
    assert result["p_value"] == pytest.approx(0.5)
    assert cp.overlap_test(modules, "A+B", ["A", "B"], ["C", "D"], k=3)["null_mean"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="No null groups"):
        cp.overlap_test(modules, "A+B", ["A", "B"], ["A", "B", "C"], k=2)


def test_overlap_null_lists_every_other_group():
    e = np.eye(12)
    vectors = {"A": e[:, 0:3], "B": e[:, 3:6], "C": e[:, 6:9], "D": e[:, 9:12]}
    vectors["A+B"] = np.stack([e[0], e[3], e[6]], axis=1)  # top two in A's and B's span, third in C's
    modules = _modules(vectors)
    observed, null = cp.overlap_null(modules, "A+B", ["A", "B"], ["A", "B", "C", "D"], k=3)
    assert observed == pytest.approx(2 / 3)
    np.testing.assert_allclose(null, [1 / 3])  # {C, D}: only the third module
    observed, null = cp.overlap_null(modules, "A+B", ["A"], ["A", "B", "C", "D"], k=3)
    np.testing.assert_allclose(null, [1 / 3, 1 / 3, 0.0], atol=1e-12)  # {B}, {C}, {D} in candidate order
    with pytest.raises(ValueError, match="different genes"):
        cp.overlap_null(modules, "A+B", ["A"], ["C"], reference=_modules({"A": np.eye(5)[:, :3]}))


def test_pair_projections():
    e = np.eye(3)
    modules = _modules({"A": e, "B": e[:, [1, 0, 2]]})
    means = pd.DataFrame(
        [[0.0, 0, 0], [2.0, 0, 0], [0.0, 4, 0], [1.0, 4, 0]], index=["control", "A", "B", "A+B"], columns=list("xyz")
    )
    table = cp.pair_projections(means, modules, "A+B").set_index("member")
    assert table.loc["A", "pair_ratio"] == pytest.approx(0.5) and table.loc["A", "other_ratio"] == pytest.approx(0)
    assert table.loc["B", "pair_ratio"] == pytest.approx(1.0) and table.loc["B", "score_member"] == pytest.approx(4)
    with pytest.raises(ValueError, match=r"No row for \['A\+B'\]"):
        cp.pair_projections(means.drop(index="A+B"), modules, "A+B")
    with pytest.raises(ValueError, match="is not a pair"):
        cp.pair_projections(means, modules, "A")


# --------------------------------------------------------------------------------------------- expression


def _additive_toy(interaction=0.0):
    """Cells of control, A, B and A+B whose condition means are exactly additive (plus ``interaction`` on gene 3)."""
    rng = np.random.default_rng(1)
    base, d_a, d_b = rng.normal(size=(3, 5))
    noise = rng.normal(scale=0.1, size=(4, 5))
    noise -= noise.mean(axis=0)  # zero-mean within each condition: means are exact
    means = {"control": base, "A": base + d_a, "B": base + d_b, "A+B": base + d_a + d_b + interaction * np.eye(5)[3]}
    X = np.vstack([m + noise for m in means.values()])
    conditions = np.repeat(list(means), 4)
    return X, conditions, d_a, d_b


def test_mean_shifts_and_additive_toy():
    X, conditions, d_a, d_b = _additive_toy()
    genes = [f"g{i}" for i in range(5)]
    shifts = cp.mean_shifts(X, conditions, genes)
    assert "control" not in shifts.index
    np.testing.assert_allclose(shifts.loc["A"], d_a, atol=1e-12)
    result = cp.additivity(shifts, "A+B")
    assert result["r2_additive"] == pytest.approx(1.0)
    assert result["r2_fit"] == pytest.approx(1.0)
    assert (result["coef_a"], result["coef_b"]) == (pytest.approx(1.0), pytest.approx(1.0))


def test_deviating_genes_finds_the_interaction():
    X, conditions, *_ = _additive_toy(interaction=5.0)
    shifts = cp.mean_shifts(X, conditions, [f"g{i}" for i in range(5)])
    assert cp.additivity(shifts, "A+B")["r2_additive"] < 1
    table = cp.deviating_genes(shifts, "A+B", n=2)
    assert table.loc[0, "gene"] == "g3" and table.loc[0, "residual"] == pytest.approx(5.0)
    assert table.loc[1, "residual"] == pytest.approx(0.0, abs=1e-12) and len(table) == 2


def test_additivity_errors():
    X, conditions, *_ = _additive_toy()
    shifts = cp.mean_shifts(X, conditions, [f"g{i}" for i in range(5)])
    with pytest.raises(ValueError, match="not a pair"):
        cp.additivity(shifts, "A")
    with pytest.raises(ValueError, match=r"No row for \['B'\]"):
        cp.additivity(shifts.drop(index="B"), "A+B")
    with pytest.raises(ValueError, match="No 'control' cells"):
        cp.mean_shifts(X[4:], conditions[4:], [f"g{i}" for i in range(5)])
    with pytest.raises(ValueError, match="constant"):
        cp.r2(np.ones(3), np.zeros(3))


def test_split_half_r2():
    X, conditions, *_ = _additive_toy()
    # condition means are exact, but halves of 2 cells carry their noise: R² below 1, and seeded
    value = cp.split_half_r2(X, conditions, "A+B", seed=0)
    assert value < 1 and value == cp.split_half_r2(X, conditions, "A+B", seed=0)
    noiseless = np.vstack([np.repeat(X[conditions == c].mean(0, keepdims=True), 4, 0) for c in pd.unique(conditions)])
    assert cp.split_half_r2(noiseless, conditions, "A+B") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs at least 4"):
        cp.split_half_r2(X[:14], conditions[:14], "A+B")


def test_model_cross_terms_equal_two_dA_Q_dB(small_model):
    torch.manual_seed(0)
    means = pd.DataFrame(np.random.default_rng(2).normal(size=(4, 12)), index=["control", "A", "B", "A+B"])
    table = cp.model_cross_terms(small_model, means, "A+B", ["A", "B", "C"])
    Q = bc.interpret.interaction_matrices(small_model).numpy()
    d_a = (means.loc["A"] - means.loc["control"]).to_numpy()
    d_b = (means.loc["B"] - means.loc["control"]).to_numpy()
    for a, row in enumerate(table.itertuples()):
        assert row.cross_term == pytest.approx(2 * d_a @ Q[a] @ d_b)
    y_pair = quadratic_form(small_model, means.loc[["A+B"]].to_numpy())[0]
    np.testing.assert_allclose(table["y_pair"], y_pair[:2])
    with pytest.raises(ValueError, match=r"Member 'B' of 'A\+B' is not an output"):
        cp.model_cross_terms(small_model, means, "A+B", ["A", "C", "D"])
    with pytest.raises(ValueError, match=r"No row for \['control'\]"):
        cp.model_cross_terms(small_model, means.drop(index="control"), "A+B", ["A", "B", "C"])
    with pytest.raises(ValueError, match="bias=False"):
        cp.model_cross_terms(bc.BilinearMLP(12, 4, 3, bias=True), means, "A+B", ["A", "B", "C"])


# --------------------------------------------------------------------------------------------- loader


def _fixture(path, log1p=True):
    rng = np.random.default_rng(0)
    adata = ad.AnnData(X=sparse.csr_matrix(np.log1p(rng.poisson(1.0, size=(8, 5)).astype(np.float32))))
    adata.obs["dataset"] = pd.Categorical(["norman19"] * 5 + ["mcfaline23"] * 3)
    adata.obs["condition"] = pd.Categorical(["control", "KLF1", "KLF1+MAP2K6", "MAP2K6", "KLF1", "x", "y", "z"])
    adata.obs["dose"] = pd.Categorical(["1", "1", "1+1", "1", "1", "1", "1", "1"])
    # the remaining obs columns of PerturBench's fixture
    adata.obs["ncounts"] = np.linspace(1e4, 2e4, 8)
    adata.obs["ngenes"] = np.arange(8, dtype=np.int32) + 3000
    adata.obs["perturbation"] = adata.obs["condition"]
    adata.obs["perturbation_raw"] = adata.obs["condition"]
    adata.obs["perturbation_type"] = pd.Categorical(["CRISPRa"] * 5 + ["CRISPRi"] * 3)
    adata.obs["cell_type"] = pd.Categorical(["k562"] * 5 + ["a172"] * 3)
    adata.obs["treatment"] = pd.Categorical(["none"] * 8)
    adata.obs["condition_cell_type"] = pd.Categorical(
        [f"{c}_{t}" for c, t in zip(adata.obs["condition"], adata.obs["cell_type"])]
    )
    adata.var_names = [f"G{i}" for i in range(5)]
    if log1p:
        adata.uns["log1p"] = {}
    adata.write_h5ad(path)


def test_norman19_loader(tmp_path, monkeypatch):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"perturbench_devel.h5ad.*altoslabs/perturbench.*BSD-3"):
        datasets.norman19()
    _fixture(tmp_path / datasets.PERTURBENCH)
    adata = datasets.norman19()
    assert adata.n_obs == 5 and set(adata.obs["dataset"]) == {"norman19"}
    assert "log1p" in adata.uns and adata.uns["dataset"]["file"] == datasets.PERTURBENCH
    assert adata.uns["dataset"]["n_cells"] == 5
    assert list(adata.obs["condition"].cat.categories) == ["KLF1", "KLF1+MAP2K6", "MAP2K6", "control"]
    assert "ncounts" in adata.obs and adata.uns["dataset"]["n_genes_in_file"] == 5


@pytest.mark.skipif(
    not (datasets.data_dir() / datasets.PERTURBENCH).is_file(), reason="perturbench_devel.h5ad not linked"
)
def test_norman19_real_file():
    adata = datasets.norman19()
    assert adata.shape == (3375, 500)
    conditions = set(adata.obs["condition"])
    singles = {c for c in conditions if c != "control" and "+" not in c}
    pairs = {c for c in conditions if "+" in c}
    assert "control" in conditions and len(singles) == 18 and len(pairs) == 15
    both_seen = {p for p in pairs if all(g in singles for g in cp.parse_condition(p))}
    assert both_seen == {"KLF1+MAP2K6", "KLF1+TGFBR2", "MAP2K3+MAP2K6", "MAP2K3+SLC38A2", "MAPK1+TGFBR2"}


def test_norman19_loader_refuses_unlogged_and_foreign_files(tmp_path, monkeypatch):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    _fixture(tmp_path / datasets.PERTURBENCH, log1p=False)
    with pytest.raises(ValueError, match=r"no uns\['log1p'\]: expected log-normalised"):
        datasets.norman19()
    adata = ad.AnnData(X=np.zeros((2, 2), dtype=np.float32))
    adata.uns["log1p"] = {}
    adata.write_h5ad(tmp_path / datasets.PERTURBENCH)
    with pytest.raises(ValueError, match=r"has no obs\['dataset'\]"):
        datasets.norman19()
    (tmp_path / datasets.PERTURBENCH).write_bytes(b"not hdf5")
    with pytest.raises(OSError, match="looks corrupted"):
        datasets.norman19()


# --------------------------------------------------------------------------------------------- full tables by hand


def test_a_control_named_otherwise_is_used_and_the_default_is_control():
    conditions = np.array(["NT", "A", "B", "A+B", "A+C", "NT"])
    table = cp.condition_table(conditions, control="NT")
    assert table.loc["NT", "kind"] == "control" and table.loc["NT", "members"] == ()
    targets = cp.indicator_targets(conditions, ["A", "B", "C"], control="NT")
    np.testing.assert_array_equal(targets[[0, 5]], 0)
    metric = pd.Series({"A": 1.0, "B": 3.0}, name="r2").rename_axis("gene")
    with pytest.raises(
        ValueError, match="^" + re.escape("Cannot average the members of 'control': it is not a combination")
    ):
        cp.member_means(metric, ["control"])
    with pytest.raises(
        ValueError, match="^" + re.escape("Cannot average the members of 'NT': it is not a combination 'A+B'.")
    ):
        cp.member_means(metric, ["NT"], control="NT")
    means = cp.member_means(metric, ["A+B"])
    pd.testing.assert_series_equal(means, pd.Series({"A+B": 2.0}, name="r2").rename_axis("gene"))
    scores = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    rows = cp.condition_metrics(scores, ["control", "A", "B", "A+B"], ["A", "B", "C"])  # control first: skipped
    assert rows["condition"].tolist() == ["A", "B", "A+B"] and rows["members"].tolist() == ["A", "B", "A+B"]


def test_indicator_targets_mark_a_pair_output_only_for_pairs():
    targets = cp.indicator_targets(["A", "A+B", "control", "C+D", "B"], ["A", "B", "A+B", "C", "D"])
    np.testing.assert_array_equal(
        targets, [[1, 0, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 1, 0, 0, 0]]
    )
    message = "Gene(s) ['E', 'F'] (in condition(s) ['E', 'F+A']) are not outputs; outputs are ['A']. "
    with pytest.raises(ValueError, match="^" + re.escape(message + "Drop those cells or add the genes as outputs.")):
        cp.indicator_targets(["E", "A", "F+A"], ["A"])


def test_model_cross_terms_table_by_hand(small_model):
    means = pd.DataFrame(np.random.default_rng(4).normal(size=(4, 12)), index=["ctl", "A", "B", "A+B"])
    Q = bc.interpret.interaction_matrices(small_model).numpy()
    table = cp.model_cross_terms(small_model, means, "A+B", ["B", "x", "A"], control="ctl")
    x = {name: means.loc[name].to_numpy() for name in means.index}
    x["additive"] = x["A"] + x["B"] - x["ctl"]
    rows = []
    for member, a in (("A", 2), ("B", 0)):
        y = {name: x[name] @ Q[a] @ x[name] for name in x}
        rows.append(
            {"pair": "A+B", "output": member, "y_control": y["ctl"], "y_a": y["A"], "y_b": y["B"],
             "y_additive": y["additive"], "y_pair": y["A+B"], "cross_term": y["additive"] - y["A"] - y["B"] + y["ctl"],
             "non_additive": y["A+B"] - y["additive"]}
        )  # fmt: skip
    pd.testing.assert_frame_equal(table, pd.DataFrame(rows), rtol=1e-10)


def test_pair_projections_table_by_hand():
    rng = np.random.default_rng(5)
    vectors = {"A": np.linalg.qr(rng.normal(size=(4, 3)))[0], "B": np.linalg.qr(rng.normal(size=(4, 3)))[0]}
    modules = _modules(vectors)
    means = pd.DataFrame(rng.normal(size=(4, 4)), index=["ctl", "A", "B", "A+B"], columns=[f"g{i}" for i in range(4)])
    table = cp.pair_projections(means, modules, "A+B", module=1, control="ctl")
    rows = []
    for member, other in (("A", "B"), ("B", "A")):
        s = {name: means.loc[name].to_numpy() @ vectors[member][:, 1] for name in means.index}
        step = s[member] - s["ctl"]
        rows.append(
            {"pair": "A+B", "member": member, "other": other, "score_control": s["ctl"], "score_member": s[member],
             "score_other": s[other], "score_pair": s["A+B"], "pair_ratio": (s["A+B"] - s["ctl"]) / step,
             "other_ratio": (s[other] - s["ctl"]) / step}
        )  # fmt: skip
    pd.testing.assert_frame_equal(table, pd.DataFrame(rows), rtol=1e-10)
    with pytest.raises(ValueError, match="^" + re.escape("No row for ['ctl']")):
        cp.pair_projections(means.drop(index="ctl"), modules, "A+B", control="ctl")
    means.loc["A"] = means.loc["ctl"]  # member A does not move along its module: ratios undefined
    table = cp.pair_projections(means, modules, "A+B", control="ctl").set_index("member")
    assert np.isnan(table.loc["A", "pair_ratio"]) and np.isnan(table.loc["A", "other_ratio"])
    assert np.isfinite(table.loc["B", "pair_ratio"])


def test_overlap_test_summary_by_hand():
    rng = np.random.default_rng(6)
    vectors = {name: np.linalg.qr(rng.normal(size=(8, 3)))[0] for name in ["A", "B", "C", "D", "E"]}
    vectors["A+B"] = np.linalg.qr(np.c_[vectors["A"][:, :1], vectors["C"][:, :1], rng.normal(size=(8, 1))])[0]
    modules = _modules(vectors)
    observed, null = cp.overlap_null(modules, "A+B", ["A"], ["A", "B", "C", "D", "E"], k=2)
    result = cp.overlap_test(modules, "A+B", ["A"], ["A", "B", "C", "D", "E"], k=2)
    p_value = (1 + (null >= observed).sum()) / 5
    assert result == {
        "k": 2, "overlap": observed, "null_mean": pytest.approx(null.mean()), "null_sd": pytest.approx(null.std()),
        "null_max": pytest.approx(null.max()), "n_null": 4, "p_value": pytest.approx(p_value),
    }  # fmt: skip
    # a null group that ties the observed overlap counts against it: (1 + 1) / (1 + 1)
    tie = _modules({"A": np.eye(6)[:, :3], "B": np.eye(6)[:, :3], "A+B": np.eye(6)[:, :3]})
    assert cp.overlap_test(tie, "A+B", ["A"], ["B"], k=1)["p_value"] == 1.0
    assert cp.overlap_test(modules, "A+B", ["A"], ["B", "C"])["k"] == 3  # the default k


def test_r2_additivity_and_deviating_genes_by_hand():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(7)
    observed, predicted = rng.normal(size=20), rng.normal(size=20)
    assert cp.r2(observed, predicted) == pytest.approx(r2_score(observed, predicted))
    with pytest.raises(ValueError, match="^" + re.escape("observed is constant, so R² is undefined.")):
        cp.r2(np.ones(3), np.zeros(3))
    genes = [f"g{i}" for i in range(12)]
    shifts = pd.DataFrame(rng.normal(size=(3, 12)), index=["A", "B", "A+B"], columns=genes)
    shifts.loc["A+B"] = 2 * shifts.loc["A"] - 0.5 * shifts.loc["B"] + 0.01 * rng.normal(size=12)
    result = cp.additivity(shifts, "A+B")
    coef, *_ = np.linalg.lstsq(shifts.loc[["A", "B"]].T.to_numpy(), shifts.loc["A+B"].to_numpy(), rcond=None)
    assert (result["coef_a"], result["coef_b"]) == (pytest.approx(coef[0]), pytest.approx(coef[1]))
    assert result["r2_additive"] == pytest.approx(r2_score(shifts.loc["A+B"], shifts.loc["A"] + shifts.loc["B"]))
    table = cp.deviating_genes(shifts, "A+B")
    residual = shifts.loc["A+B"] - shifts.loc["A"] - shifts.loc["B"]
    assert table["gene"].tolist() == residual.abs().sort_values(ascending=False).index[:10].tolist()
    # ties keep the genes' order
    tied = pd.DataFrame([[1.0, 1, 1, 1], [0, 0, 0, 0], [2, 0, 2, 0]], index=["A", "B", "A+B"], columns=list("wxyz"))
    assert cp.deviating_genes(tied, "A+B", n=4)["gene"].tolist() == ["w", "x", "y", "z"]


def test_split_half_r2_by_hand():
    X, conditions, *_ = _additive_toy()
    X = X + np.random.default_rng(8).normal(size=X.shape)
    X, conditions = np.r_[X, X[:3] + 1], np.r_[conditions, ["control"] * 3]  # 7 control cells: halves of 3 and 4
    for seed in (0, 3):
        rng = np.random.default_rng(seed)
        cells = [rng.permutation(np.flatnonzero(conditions == name)) for name in ("A+B", "control")]
        (c1, c2), (k1, k2) = [(idx[: len(idx) // 2], idx[len(idx) // 2 :]) for idx in cells]
        one, two = X[c1].mean(0) - X[k1].mean(0), X[c2].mean(0) - X[k2].mean(0)
        expected = 0.5 * (cp.r2(one, two) + cp.r2(two, one))
        assert cp.split_half_r2(X, conditions, "A+B", seed=seed) == pytest.approx(expected)
    assert cp.split_half_r2(X, conditions, "A+B") == cp.split_half_r2(X, conditions, "A+B", seed=0)


def test_errors_name_the_argument_and_its_shape():
    def raises(message, call, *args, **kwargs):
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            call(*args, **kwargs)

    nan = np.full((2, 3), np.nan)
    raises("scores contains 6 NaN", cp.pair_metrics, nan, ["A", "B", "C"], ["A"])
    raises("scores contains 6 NaN", cp.condition_metrics, nan, ["A", "B"], ["A", "B", "C"])
    raises(
        "scores have 2 rows but there are 3 conditions.",
        cp.condition_metrics,
        np.zeros((2, 3)),
        list("ABC"),
        list("ABC"),
    )
    raises(
        "members must be 1 to 2 distinct outputs, got ['A', 'A'].",
        cp.pair_metrics,
        np.zeros((2, 3)),
        list("ABC"),
        ["A", "A"],
    )
    raises("No cells to score.", cp.pair_metrics, np.zeros((0, 3)), ["A", "B", "C"], ["A"])
    raises("X_train contains 6 NaN", cp.centroid_scores, nan, ["a", "b"], np.zeros((1, 3)))
    raises("X contains 6 NaN", cp.centroid_scores, np.zeros((2, 3)), ["a", "b"], nan)
    raises(
        "X_train has 2 cells but the labels have 3 entries.",
        cp.centroid_scores,
        np.ones((2, 3)),
        list("abc"),
        np.ones((1, 3)),
    )
    raises(
        "A must be a (g, k) matrix of k ≥ 1 column vectors, got shape (3, 0).",
        cp.principal_angles,
        np.ones((3, 0)),
        np.ones((3, 1)),
    )
    raises("B must be a (g, k) matrix", cp.principal_angles, np.ones((3, 1)), np.ones((3, 1, 1)))
    raises("A must be a (g, k) matrix", cp.subspace_overlap, np.ones((3, 1, 1)), np.ones((3, 1)))
    raises("A and B live in different spaces: 3 and 4 rows.", cp.principal_angles, np.ones((3, 1)), np.ones((4, 1)))
    raises("The columns of A are linearly dependent", cp.principal_angles, np.ones((3, 2)), np.eye(3))
    raises("X has 2 cells but there are 3 conditions.", cp.condition_means, np.ones((2, 3)), list("abc"), list("xyz"))
    raises("X has 3 genes but 2 var names were given.", cp.condition_means, np.ones((2, 3)), list("ab"), list("xy"))
    raises("observed and predicted differ in shape: (3,) and (2,).", cp.r2, np.arange(3), np.arange(2))
    raises("Condition 'A+A' names the same gene twice.", cp.parse_condition, "A+A")
    # a tiny but non-zero last singular value is still a direction
    assert cp.principal_angles(np.diag([1.0, 1e-9]), np.eye(2)) == pytest.approx([0, 0])
    # the pair's members are distinguished at float64 precision, not float32's
    assert cp.pair_metrics(np.array([[1 + 1e-12, 1.0, 0]]), ["A", "B", "C"], ["A"])["auroc"] == 1.0


def test_subspace_details_condition_order_and_float64_means():
    # the rank threshold is relative to the largest singular value
    assert cp.principal_angles(1e-12 * np.eye(2), np.eye(2)) == pytest.approx([0, 0])
    with pytest.raises(ValueError, match="^The columns of A are linearly dependent"):
        cp.principal_angles(np.diag([10.0, 5e-10]), np.eye(2))
    # condition means keep the order of appearance and float64 precision
    X = np.array([[1e8 + 1], [1e8 + 3], [0.0]])
    means = cp.condition_means(X, ["b", "b", "a"], ["g"])
    assert means.index.tolist() == ["b", "a"] and means.loc["b", "g"] == 1e8 + 2
    # the pair itself is never a null group, and another model's modules can be the reference
    e = np.eye(9)
    vectors = {"A": e[:, 0:3], "B": e[:, 3:6], "C": e[:, 6:9], "A+B": e[:, [0, 3, 6]]}
    modules = _modules(vectors)
    _, null = cp.overlap_null(modules, "A+B", ["A"], ["A", "B", "C", "A+B"], k=1)
    assert len(null) == 2  # B and C only
    other = _modules({name: v[:, ::-1] for name, v in vectors.items()})
    observed, _ = cp.overlap_null(modules, "A+B", ["A"], ["B", "C"], k=1, reference=other)
    assert observed == pytest.approx(0.0, abs=1e-12)  # A's top module in `other` is e2, not e0
    assert cp.overlap_test(modules, "A+B", ["A"], ["B", "C"], k=1, reference=other)["overlap"] < 1e-12
    assert cp.overlap_null(modules, "A+B", ["A"], ["B", "C"])[1].tolist() == [1 / 3, 1 / 3]  # default k = 3
    with pytest.raises(ValueError, match="^The cross term is that of the quadratic form: train the model with bias"):
        cp.model_cross_terms(bc.BilinearMLP(9, 2, 3, bias=True), pd.DataFrame(), "A+B", ["A", "B", "C"])
    shifts = pd.DataFrame(np.arange(6.0).reshape(3, 2), index=["A", "B", "A+B"], columns=["x", "y"])
    columns = cp.deviating_genes(shifts, "A+B").columns.tolist()
    assert columns == ["gene", "shift_a", "shift_b", "additive", "observed", "residual"]


def test_ties_keep_their_order_and_float32_input_is_averaged_in_float64():
    # 40 eigenvalues of three magnitudes: ties keep their order (Python's sort is stable; NumPy's default is not)
    values = np.random.default_rng(0).choice([1.0, -1.0, 0.5], 40)
    by_hand = sorted(range(40), key=lambda i: -abs(values[i]))
    modules = Modules(values[None], np.eye(40)[None], ["A"], [f"g{i}" for i in range(40)])
    np.testing.assert_array_equal(cp.top_subspace(modules, "A", k=12), np.eye(40)[:, by_hand[:12]])
    assert cp.top_subspace(modules, "A").shape == (40, 3)  # k = 3 by default
    genes = [f"g{i}" for i in range(40)]
    shifts = pd.DataFrame([np.zeros(40), np.zeros(40), values], index=["A", "B", "A+B"], columns=genes)
    assert cp.deviating_genes(shifts, "A+B", n=12)["gene"].tolist() == [genes[i] for i in by_hand[:12]]
    # float32 cells far from 0: sums in float32 would be off in the 7th digit
    rng = np.random.default_rng(0)
    X = (1000 + rng.normal(size=(40, 3))).astype(np.float32)
    conditions = np.repeat(["control", "A+B"], 20)
    exact = X.astype(np.float64)
    means = cp.condition_means(X, conditions, ["x", "y", "z"])
    np.testing.assert_allclose(means.loc["A+B"], exact[20:].mean(0), rtol=1e-14)
    rng = np.random.default_rng(0)
    cells = [rng.permutation(np.flatnonzero(conditions == name)) for name in ("A+B", "control")]
    (c1, c2), (k1, k2) = [(idx[:10], idx[10:]) for idx in cells]
    one, two = exact[c1].mean(0) - exact[k1].mean(0), exact[c2].mean(0) - exact[k2].mean(0)
    expected = 0.5 * (cp.r2(one, two) + cp.r2(two, one))
    assert cp.split_half_r2(X, conditions, "A+B") == pytest.approx(expected, rel=1e-12)
    metrics = cp.pair_metrics(X, ["A", "B", "C"], ["A", "B"])
    assert metrics["mean_member"] == pytest.approx(exact[:, :2].mean(), rel=1e-15)
    table = cp.condition_metrics(X, conditions, ["A", "B", "C"])
    assert table.loc[0, "mean_other"] == pytest.approx(exact[20:, 2].mean(), rel=1e-15)


def test_float32_subspaces_r2_and_cross_terms_in_float64(small_model):
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(2, 30, 3)).astype(np.float32)
    QA, QB = np.linalg.qr(A.astype(np.float64))[0], np.linalg.qr(B.astype(np.float64))[0]
    cosines = np.sort(np.linalg.svd(QA.T @ QB, compute_uv=False))[::-1]
    np.testing.assert_allclose(np.cos(cp.principal_angles(A, B)), cosines, rtol=1e-12)
    with pytest.raises(ValueError, match="^The columns of A are linearly dependent"):
        cp.principal_angles(np.diag([1.0, 1e-10]), np.eye(2))  # exactly at the threshold 1e-10 · s_max
    observed = (1000 + rng.normal(size=50)).astype(np.float32)
    predicted = observed + np.float32(0.25)
    exact = observed.astype(np.float64)
    expected = 1 - ((exact - (exact + 0.25)) ** 2).sum() / ((exact - exact.mean()) ** 2).sum()
    assert cp.r2(observed, predicted) == pytest.approx(expected, rel=1e-12)
    assert cp.r2(exact, predicted) == pytest.approx(expected, rel=1e-12)
    means = pd.DataFrame((1000 + rng.normal(size=(4, 12))).astype(np.float32), index=["control", "A", "B", "A+B"])
    Q = interaction_matrices(small_model).numpy()
    table = cp.model_cross_terms(small_model, means, "A+B", ["A", "B", "C"])
    rows = means.to_numpy(np.float64)
    additive = rows[1] + rows[2] - rows[0]
    np.testing.assert_allclose(table["y_additive"], [additive @ Q[a] @ additive for a in (0, 1)], rtol=1e-12)
    message = "modules and reference were computed on different genes; compare like with like."
    modules = _modules({"A": np.eye(9)[:, :3], "B": np.eye(9)[:, 3:6]})
    other = _modules({"A": np.eye(10)[:, :3], "B": np.eye(10)[:, 3:6]})
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        cp.overlap_null(modules, "A", ["B"], ["A", "B"], k=1, reference=other)
