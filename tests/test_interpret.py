import numpy as np
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
