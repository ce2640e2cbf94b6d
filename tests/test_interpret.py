import re

import numpy as np
import pandas as pd
import pytest
import torch

import bilinear_core as bc
from bilinear_core.interpret import interaction_matrices, n_top_genes, quadratic_form, spectrum_energy


def test_quadratic_form_equals_model_output(small_model):
    X = torch.randn(20, 12, dtype=torch.float64)
    Q = interaction_matrices(small_model)
    via_q = torch.einsum("ni,aij,nj->na", X, Q, X)
    with torch.no_grad():
        out = small_model(X)
    np.testing.assert_allclose(via_q.numpy(), out.numpy(), atol=1e-5)
    np.testing.assert_allclose(quadratic_form(small_model, X.numpy()), out.numpy(), atol=1e-5)


def test_antisymmetric_part_contributes_nothing(small_model):
    W, V, P = (m.weight.detach() for m in (small_model.left, small_model.right, small_model.head))
    Q_raw = torch.einsum("ah,hi,hj->aij", P, W, V)
    antisym = 0.5 * (Q_raw - Q_raw.transpose(1, 2))
    assert antisym.abs().max() > 1e-3  # the raw matrices really are not symmetric
    X = torch.randn(50, 12, dtype=torch.float64)
    np.testing.assert_allclose(torch.einsum("ni,aij,nj->na", X, antisym, X).numpy(), 0, atol=1e-12)
    assert torch.allclose(interaction_matrices(small_model), 0.5 * (Q_raw + Q_raw.transpose(1, 2)))


def _match_vectors(a, b):
    """1 - |cos| between matching columns."""
    cos = np.abs(np.sum(a * b, axis=0)) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    return 1 - cos


@pytest.mark.parametrize(("g", "h"), [(40, 6), (9, 8)])  # rank-deficient (g > 2h) and g < 2h
def test_low_rank_eigenpairs_equal_dense(g, h):
    torch.manual_seed(1)
    model = bc.BilinearMLP(g, h, 3).double()
    low = bc.eigendecompose(model)
    dense = bc.eigendecompose(model, dense=True)
    full = torch.linalg.eigvalsh(interaction_matrices(model)).numpy()
    scale = np.abs(full).max(axis=1, keepdims=True)
    np.testing.assert_allclose(low.eigenvalues / scale, dense.eigenvalues / scale, atol=1e-6)
    # every dense eigenvalue that the low-rank path leaves out is exactly zero
    kept = np.sort(low.eigenvalues, axis=1)
    assert np.abs(full).sum(axis=1) == pytest.approx(np.abs(kept).sum(axis=1), rel=1e-9)
    for a in range(3):
        Q = interaction_matrices(model)[a].numpy()
        vals, vecs = low.values(a), low.vectors(a)
        np.testing.assert_allclose(Q @ vecs, vecs * vals, atol=1e-10)  # they are eigenpairs
        np.testing.assert_allclose(vecs.T @ vecs, np.eye(len(vals)), atol=1e-10)
        big = np.abs(vals) > 1e-8 * scale[a]
        gaps = np.diff(vals)
        separated = big & np.r_[np.abs(gaps) > 1e-6, True] & np.r_[True, np.abs(gaps) > 1e-6]
        assert _match_vectors(vecs[:, separated], dense.vectors(a)[:, separated]).max() < 1e-6


def test_eigenvalues_descending_and_signs_fixed(small_model):
    modules = bc.eigendecompose(small_model, output_names=["a", "b", "c"])
    assert np.all(np.diff(modules.eigenvalues, axis=1) <= 0)
    v = modules.vectors("b")
    assert np.all(v[np.abs(v).argmax(axis=0), np.arange(v.shape[1])] > 0)
    assert modules.values("b")[0] == modules.eigenvalues[1, 0]
    with pytest.raises(KeyError, match="Unknown output 'z'"):
        modules.values("z")


def test_module_scores_project_cells(small_model):
    modules = bc.eigendecompose(small_model)
    X = np.random.default_rng(0).normal(size=(7, 12))
    scores = bc.module_scores(X, modules, 0, n_modules=3)
    np.testing.assert_allclose(scores, X @ modules.vectors(0)[:, :3], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="X has 5 genes"):
        bc.module_scores(X[:, :5], modules, 0)


def test_quadratic_form_is_sum_of_eigen_projections(small_model):
    modules = bc.eigendecompose(small_model)
    X = np.random.default_rng(1).normal(size=(5, 12))
    y = quadratic_form(small_model, X)
    recon = ((X @ modules.vectors(2)) ** 2 * modules.values(2)).sum(axis=1)
    np.testing.assert_allclose(recon, y[:, 2], rtol=1e-8, atol=1e-10)


def test_top_genes_rule_and_table():
    assert n_top_genes(10_000) == 100
    assert n_top_genes(2_000) == 50  # floor of 50
    assert n_top_genes(60) == 30  # never more than half the genes
    torch.manual_seed(0)
    model = bc.BilinearMLP(200, 4, 2).double()
    modules = bc.eigendecompose(model, var_names=[f"g{i}" for i in range(200)])
    table = bc.top_genes(modules, 1, module=0, min_genes=10)
    pos, neg = (table[table["sign"] == s] for s in ("positive", "negative"))
    assert len(pos) == len(neg) == 10
    vector = modules.vectors(1)[:, 0]
    assert pos["gene"].iloc[0] == f"g{vector.argmax()}"
    assert neg["gene"].iloc[0] == f"g{vector.argmin()}"
    assert pos["loading"].is_monotonic_decreasing and neg["loading"].is_monotonic_increasing


def test_spectrum_energy_fractions(small_model):
    energy = spectrum_energy(bc.eigendecompose(small_model), ks=(1, 3, 8))
    squared_norm = (interaction_matrices(small_model) ** 2).sum(dim=(1, 2)).numpy()
    values = bc.eigendecompose(small_model).eigenvalues
    np.testing.assert_allclose((values**2).sum(axis=1), squared_norm, rtol=1e-10)
    assert np.all(np.diff(energy.to_numpy(), axis=1) >= 0)
    np.testing.assert_allclose(energy["top_8"], 1.0)  # rank ≤ 2h = 8


# ----------------------------------------------------------------------------- tables and bounds against NumPy


def test_spectrum_table_and_energy_index():
    values = np.array([[3.0, -1.0], [0.5, -2.0]])
    modules = bc.interpret.Modules(values, np.tile(np.eye(2), (2, 1, 1)), ["a", "b"], ["x", "y"])
    expected = pd.DataFrame({"output": ["a", "a", "b", "b"], "module": [0, 1, 0, 1], "eigenvalue": [3.0, -1, 0.5, -2]})
    pd.testing.assert_frame_equal(modules.spectrum(), expected, check_dtype=False)
    energy = spectrum_energy(modules, ks=(1,))
    assert energy.index.name == "output" and energy.index.tolist() == ["a", "b"]
    np.testing.assert_allclose(energy["top_1"], [9 / 10, 4 / 4.25])


def test_quadratic_form_in_float64_for_float32_cells(small_model):
    X = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    Q = interaction_matrices(small_model).numpy()
    y = quadratic_form(small_model, X)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, np.einsum("ng,agh,nh->na", X.astype(np.float64), Q, X.astype(np.float64)), rtol=1e-12)


def test_contributions_take_outputs_by_index_within_bounds_or_by_name(small_model):
    X = np.random.default_rng(1).normal(size=(4, 12))
    Q = interaction_matrices(small_model).numpy()
    table = bc.interpret.contributions(small_model, X, np.array([0, 2, 2, 0]))
    assert table.columns.tolist() == [f"module {j}" for j in (0, 1, 2)] + [f"module {j}" for j in (-3, -2, -1)] + [
        "rest"
    ]
    np.testing.assert_allclose(table.sum(axis=1), [X[i] @ Q[a] @ X[i] for i, a in enumerate([0, 2, 2, 0])])
    named = bc.interpret.contributions(small_model, X, ["0", "2", "2", "0"])
    pd.testing.assert_frame_equal(named, table)
    assert bc.interpret.contributions(small_model, X[:0], np.array([], dtype=int)).empty
    for bad in ([-1, 0, 0, 0], [0, 3, 0, 0]):
        with pytest.raises(
            ValueError, match="^" + re.escape(f"Output indices must lie in [0, 3), got {min(bad)}…{max(bad)}.")
        ):
            bc.interpret.contributions(small_model, X, np.array(bad))
    with pytest.raises(ValueError, match="^" + re.escape("Unknown output(s) ['5', '6', '7', '8', '9']; the model's")):
        bc.interpret.contributions(small_model, np.r_[X, X[:2]], ["5", "6", "7", "8", "9", "x"])
    message = "Explaining outputs by modules needs a model trained with bias=False (the default): with biases the "
    with pytest.raises(ValueError, match="^" + re.escape(message + "output has linear and constant terms that no")):
        bc.interpret.contributions(bc.BilinearMLP(12, 4, 3, bias=True), X, np.zeros(4, dtype=int))
    # given modules are used as given (here with doubled eigenvalues: the leading terms double)
    one = bc.interpret.leading_modules(small_model, 1)
    doubled = bc.interpret.Modules(2 * one.eigenvalues, one.eigenvectors, one.output_names, one.var_names)
    zeros = np.zeros(4, dtype=int)
    plain = bc.interpret.contributions(small_model, X, zeros, n_modules=1)
    given = bc.interpret.contributions(small_model, X, zeros, n_modules=1, modules=doubled)
    np.testing.assert_allclose(given[["module 0", "module -1"]], 2 * plain[["module 0", "module -1"]])


def test_module_auroc_against_scikit_learn_and_its_errors():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    scores, target = rng.normal(size=(30, 2)), np.r_[np.ones(10, dtype=int), np.zeros(20, dtype=int)]
    expected = [roc_auc_score(target, column) for column in scores.T]
    np.testing.assert_allclose(bc.interpret.module_auroc(scores, target), expected)  # 0/1 integers as a mask
    with pytest.raises(
        ValueError, match="^" + re.escape("is_target must have one entry per cell (30), got shape (29,).")
    ):
        bc.interpret.module_auroc(scores, target[:29])
    with pytest.raises(ValueError, match="^is_target must mark some cells, but not all, as target cells.$"):
        bc.interpret.module_auroc(scores, np.ones(30))


def test_module_target_correlations_against_numpy():
    rng = np.random.default_rng(3)
    vectors = np.stack([np.linalg.qr(rng.normal(size=(6, 3)))[0] for _ in range(2)])
    modules = bc.interpret.Modules(np.array([[2.0, 1, -1], [3, -2, 1]]), vectors, ["a", "b"], list("uvwxyz"))
    X, Y = rng.normal(size=(40, 6)).astype(np.float32), rng.normal(size=(40, 2))
    table = bc.interpret.module_target_correlations(X, modules, Y, n_modules=1)
    expected = [np.corrcoef(X.astype(np.float64) @ vectors[a][:, 0], Y[:, a])[0, 1] for a in range(2)]
    np.testing.assert_allclose(table["r"], expected, rtol=1e-6)
    assert table.index.tolist() == [0, 1] and table["module"].tolist() == [0, 0]
    single = bc.interpret.Modules(modules.eigenvalues[:1], vectors[:1], ["a"], list("uvwxyz"))
    one = bc.interpret.module_target_correlations(X, single, Y[:, 0])  # (n,) targets for one output
    np.testing.assert_allclose(
        one["r"], [np.corrcoef(X @ vectors[0][:, j], Y[:, 0])[0, 1] for j in range(3)], rtol=1e-5
    )
    with pytest.raises(
        ValueError, match="^" + re.escape("targets must have shape (cells, outputs) = (40, 2), got (40,).")
    ):
        bc.interpret.module_target_correlations(X, modules, Y[:, 0])
    Y[:3, 1] = np.nan
    with pytest.raises(ValueError, match="^" + re.escape("targets contain 3 NaN or infinite value(s).")):
        bc.interpret.module_target_correlations(X, modules, Y)
    with pytest.raises(ValueError, match="^" + re.escape("X has 5 genes but the modules were computed on 6.")):
        bc.interpret.module_target_correlations(X[:, :5], modules, Y)
    small = bc.interpret.module_target_correlations(1e-3 * X, modules, 1e-3 * Y[3:].repeat(2, 0)[:40])
    assert np.isfinite(small["r"]).all()  # tiny but non-zero spread still correlates
    constant = np.zeros((40, 6), dtype=np.float32)
    assert np.isnan(bc.interpret.module_target_correlations(constant, single, Y[:, 0], n_modules=1)["r"]).all()


def test_expansion_summary_against_numpy(small_model):
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(30, 12)), rng.normal(size=(30, 3))
    center = rng.normal(size=12)
    Q = interaction_matrices(small_model).numpy()
    Q = (Q + Q.transpose(0, 2, 1)) / 2
    d = X - center
    linear = 2 * np.einsum("g,agh,nh->na", center, Q, d)
    quadratic = np.einsum("ng,agh,nh->na", d, Q, d)
    table = bc.interpret.expansion_summary(small_model, X, Y, center=center)
    assert table.index.name == "output" and table.index.tolist() == ["0", "1", "2"]
    share = linear.var(0) / (linear.var(0) + quadratic.var(0))
    np.testing.assert_allclose(table["linear_share"], share, rtol=1e-8)
    r = [np.corrcoef(quadratic[:, a], Y[:, a])[0, 1] for a in range(3)]
    np.testing.assert_allclose(table["r_quadratic"], r, rtol=1e-8)
    # one cell profile: no variance, every share and correlation undefined
    flat = bc.interpret.expansion_summary(small_model, np.tile(X[:1], (4, 1)), Y[:4], output_names="abc")
    assert flat.isna().all().all() and flat.index.tolist() == ["a", "b", "c"]
    message = "mean_expansion needs a model without biases (BilinearMLP(..., bias=False))."
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        bc.interpret.expansion_summary(bc.BilinearMLP(12, 4, 3, bias=True), X, Y)


def test_leading_modules_by_lanczos_keep_n_per_pole_and_the_given_names():
    torch.manual_seed(3)
    model = bc.BilinearMLP(30, n_hidden=260, n_out=1)  # 2h = 520 > 512: Lanczos
    genes = [f"G{i}" for i in range(30)]
    leading = bc.interpret.leading_modules(model, 2, output_names=["y"], var_names=genes)
    values = np.linalg.eigvalsh(interaction_matrices(model)[0].numpy())
    np.testing.assert_allclose(leading.eigenvalues[0], values[[29, 28, 1, 0]], rtol=1e-8)
    assert leading.var_names == genes and leading.output_names == ["y"]


def test_top_genes_and_gene_ranks_tables_whole():
    genes = [f"g{i}" for i in range(120)]
    vector = np.linspace(1.0, -1.0, 120)
    vector[60] = 0.0  # a zero loading counts as positive
    modules = bc.interpret.Modules(np.array([[2.0, 1.0]]), np.stack([vector, -vector], 1)[None], ["A"], genes)
    table = bc.interpret.top_genes(modules, "A", module=1, min_genes=3)
    assert table.columns.tolist() == ["output", "module", "sign", "rank", "gene", "loading"]
    assert table.index.tolist() == list(range(6)) and (table["output"] == "A").all() and (table["module"] == 1).all()
    assert (
        table["gene"].tolist() == ["g119", "g118", "g117", "g0", "g1", "g2"] and table["rank"].tolist() == [0, 1, 2] * 2
    )
    assert len(bc.interpret.top_genes(modules, "A")) == 2 * 50  # the default floor of 50 genes per sign
    ranks = bc.interpret.gene_ranks(modules, "A", ["G60", "g59", "g61", "nope", "g3"], min_genes=3)
    assert ranks.columns.tolist() == ["gene", "symbol", "loading", "sign", "rank", "in_top"]
    assert ranks["gene"].tolist() == ["G60", "g59", "g61", "nope", "g3"]
    assert ranks["sign"].tolist() == ["positive", "positive", "negative", None, "positive"]
    assert ranks["rank"].tolist() == [60, 59, 58, pd.NA, 3] and ranks["rank"].dtype == "Int64"
    assert ranks["in_top"].tolist() == [False, False, False, False, False]
    assert bc.interpret.gene_ranks(modules, "A", ["g3", "g50"])["in_top"].tolist() == [True, False]  # top 50
    empty = bc.interpret.gene_ranks(modules, "A", [])
    assert empty.columns.tolist() == ranks.columns.tolist() and len(empty) == 0


def test_scores_and_float64_sums_against_numpy(small_model):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(25, 12)) + 1000  # float64 values that float32 would round, far from 0
    X32 = X.astype(np.float32)
    modules = bc.eigendecompose(small_model)
    scores = bc.interpret.module_scores(X32, modules, 0)
    assert scores.shape == (25, 3) and scores.dtype == np.float32  # the default 3 modules, float32 as X
    targets = pd.DataFrame(rng.normal(size=(25, 3)), columns=modules.output_names)
    table = bc.interpret.module_target_correlations(X32, modules, targets.to_numpy(), n_modules=2)
    for a in range(3):
        for k in range(2):
            r = np.corrcoef(X32.astype(np.float64) @ modules.eigenvectors[a][:, k], targets.iloc[:, a])[0, 1]
            assert table.loc[a * 2 + k, "r"] == pytest.approx(r, rel=1e-9, abs=1e-12)
    oriented = bc.interpret.orient_modules(modules, X, targets)  # a DataFrame of targets, as an array
    expected = bc.interpret.orient_modules(modules, X, targets.to_numpy())
    np.testing.assert_array_equal(oriented.eigenvectors, expected.eigenvectors)
    labels = np.array([f"c{i}" for i in range(11)] * 2 + ["c0"] * 3)
    message = "Output(s) ['0', '1', '2'] never occur in the labels, so they cannot be oriented one-vs-rest; labels "
    with pytest.raises(ValueError, match="^" + re.escape(message + f"hold {sorted(set(labels))[:10]}.") + "$"):
        bc.interpret.orient_modules(modules, X, labels)
    # the mean expansion and module contributions in float64, against NumPy
    parts = bc.interpret.mean_expansion(small_model, X32)  # float32 cells, expanded in float64
    d = X32.astype(np.float64) - X32.astype(np.float64).mean(axis=0)
    Q = interaction_matrices(small_model).numpy()
    np.testing.assert_allclose(parts["quadratic"], np.einsum("ni,aij,nj->na", d, Q, d), rtol=1e-10)
    contrib = bc.interpret.contributions(small_model, X, np.zeros(25, dtype=int), n_modules=1, modules=modules)
    expected = modules.eigenvalues[0, 0] * (X @ modules.eigenvectors[0][:, 0]) ** 2
    np.testing.assert_allclose(contrib["module 0"], expected, rtol=1e-12)
    summary = bc.interpret.expansion_summary(small_model, X, targets.iloc[:, 0].to_numpy()[:, None].repeat(3, 1))
    one = bc.BilinearMLP(12, 4, 1, bias=False).double()
    single = bc.interpret.expansion_summary(one, X, targets.iloc[:, 0].to_numpy())  # (n,) for one output
    assert summary.shape == (3, 4) and single.index.tolist() == ["0"] and np.isfinite(single.to_numpy()).all()


def test_orientation_by_hand_keeps_names_dtype_reliability_and_zero_covariance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    vectors = np.linalg.qr(rng.normal(size=(5, 3)))[0]  # 3 modules of 5 genes
    modules = bc.interpret.Modules(
        np.arange(3.0)[None].repeat(2, 0), np.stack([vectors, vectors]).astype(np.float32), ["a", "b"],
        [f"g{i}" for i in range(5)], reliability=pd.DataFrame({"module": [0]}),
    )  # fmt: skip
    # two targets of very different means: each is centred on its own mean
    Y = np.c_[X @ vectors[:, 0], 100 + X @ vectors[:, 1] + rng.normal(size=30)]
    oriented = bc.interpret.orient_modules(modules, X, Y)
    for a in range(2):
        for k in range(3):
            cov = np.cov(X.astype(np.float32).astype(np.float64) @ vectors[:, k].astype(np.float32), Y[:, a])[0, 1]
            assert np.sign(oriented.eigenvectors[a, 0, k] / modules.eigenvectors[a, 0, k]) == (1 if cov >= 0 else -1)
    assert oriented.eigenvectors.dtype == np.float32 and oriented.var_names == modules.var_names
    assert oriented.reliability is modules.reliability
    constant = bc.interpret.orient_modules(modules, X, np.ones((30, 2)))  # covariance 0: the signs stay
    np.testing.assert_array_equal(constant.eigenvectors, modules.eigenvectors)
    for call, error, message in [
        (lambda: bc.interpret.orient_modules(modules, X[:, :4], Y), ValueError,
         "X has 4 genes but the modules were computed on 5."),
        (lambda: bc.interpret.orient_modules(modules, X, np.ones((30, 2, 1))), ValueError,
         "targets must be 1-d labels or a 2-d (cells, outputs) array, got shape (30, 2, 1)."),
        (lambda: bc.interpret.orient_modules(modules, X, np.where(np.eye(30, 2) > 0, np.nan, Y)), ValueError,
         "targets contain 2 NaN or infinite value(s)."),
        (lambda: bc.interpret.module_scores(X[:, :4], modules, 0), ValueError,
         "X has 4 genes but the modules were computed on 5."),
        (lambda: modules.vectors(2), IndexError, "Output 2 out of range for 2 outputs."),
        (lambda: modules.vectors(-3), IndexError, "Output -3 out of range for 2 outputs."),
        (lambda: bc.interpret.n_top_genes(100, 0.0), ValueError, "fraction must lie in (0, 0.5], got 0.0."),
        (lambda: bc.interpret.n_top_genes(100, 0.6), ValueError, "fraction must lie in (0, 0.5], got 0.6."),
        (lambda: bc.interpret.leading_modules(bc.BilinearMLP(5, 2), 0), ValueError,
         "n must be a positive integer, got 0."),
        (lambda: bc.model.ensemble([]), TypeError, "ensemble needs a non-empty list of BilinearMLP models."),
        (lambda: bc.model.ensemble([bc.BilinearMLP(5, 2), bc.BilinearMLP(5, 2, bias=True)]), ValueError,
         "Member 1 has 5 inputs, 1 outputs (bias=True); member 0 has "),
    ]:  # fmt: skip
        with pytest.raises(error, match="^" + re.escape(message)):
            call()
    np.testing.assert_array_equal(modules.vectors(-2), modules.eigenvectors[0])
    assert bc.interpret.n_top_genes(1000, 0.5, min_genes=1) == 500


def test_pole_order_names_outputs_and_lanczos_determinism():
    values = np.random.default_rng(0).choice([1.0, -1.0, 0.5], 40)
    up, down = bc.interpret.pole_indices(values, 12)
    by_hand = sorted(range(40), key=lambda i: values[i])  # stable: ties in order of position
    assert down.tolist() == by_hand[:12] and up.tolist() == by_hand[::-1][:12]
    torch.manual_seed(4)
    model = bc.BilinearMLP(6, 3, 2)
    Q = interaction_matrices(model).numpy()
    np.testing.assert_allclose(interaction_matrices(model, outputs=[1]).numpy(), Q[[1]], rtol=1e-12)
    np.testing.assert_allclose(interaction_matrices(model, outputs=1).numpy(), Q[[1]], rtol=1e-12)
    exact = bc.interpret.leading_modules(model, 1, output_names=["p", "q"], var_names=list("abcdef"))
    assert exact.output_names == ["p", "q"] and exact.var_names == list("abcdef")
    big = bc.BilinearMLP(30, n_hidden=260, n_out=1)  # Lanczos from a fixed start: the same numbers every time
    first, second = (bc.interpret.leading_modules(big, 2) for _ in range(2))
    np.testing.assert_array_equal(first.eigenvectors, second.eigenvectors)
