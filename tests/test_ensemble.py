"""Ensembles stay exact bilinear MLPs; module reliability on a planted direction; gating, storage, save/load."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import bilinear_core as bc
from bilinear_core.interpret import interaction_matrices
from bilinear_core.io import load, save
from bilinear_core.model import BilinearMLP, ensemble
from bilinear_core.stability import REPRODUCIBLE_COS, module_reliability

GENES = [f"g{i}" for i in range(100)]
PLANTED = dict(task="regression", loss="mse", epochs=30, n_hidden=4, lr=1e-2, batch_size=128, progress=False)


def _weights(model: BilinearMLP):
    return [m.weight.detach().double().numpy() for m in (model.left, model.right, model.head)]


@pytest.mark.parametrize("bias", [False, True])
def test_ensemble_output_and_interaction_matrices_are_the_members_means(bias):
    torch.manual_seed(0)
    models = [BilinearMLP(7, n_hidden=h, n_out=3, bias=bias) for h in (2, 5, 3)]
    merged = ensemble(models)
    x = torch.randn(11, 7)
    with torch.no_grad():
        mean = torch.stack([m.eval()(x) for m in models]).mean(dim=0)
        np.testing.assert_allclose(merged(x).numpy(), mean.numpy(), rtol=1e-5, atol=1e-6)
    assert merged.n_hidden == 10
    if bias:
        return
    # Q_a of every member by hand in numpy: sym(Σ_h P[a,h] w_h v_hᵀ); the ensemble's is their mean
    dense = []
    for model in models:
        W, V, P = _weights(model)
        Q = np.einsum("ah,hi,hj->aij", P, W, V)
        dense.append(0.5 * (Q + Q.transpose(0, 2, 1)))
    np.testing.assert_allclose(interaction_matrices(merged).numpy(), np.mean(dense, axis=0), atol=1e-7)


def test_ensemble_refuses_members_that_do_not_fit_together():
    with pytest.raises(ValueError, match="Member 1 has 5 inputs"):
        ensemble([BilinearMLP(4), BilinearMLP(5)])
    with pytest.raises(TypeError, match="non-empty list of BilinearMLP"):
        ensemble([])


@pytest.fixture(scope="module")
def planted(n_jobs):
    """y = (uᵀx)², u on genes g0-g4: one direction carries the target, every other module is noise."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 100)).astype(np.float32)
    u = np.zeros(100)
    u[:5] = 1 / np.sqrt(5)
    result = bc.fit(X, (X @ u) ** 2, seeds=[0, 1, 2, 3, 4, 5], n_jobs=n_jobs, var_names=GENES, **PLANTED)
    return X, u, result


def test_fit_with_seeds_trains_each_member_as_its_own_fit_on_one_split(planted):
    X, u, result = planted
    assert result.settings["seeds"] == [0, 1, 2, 3, 4, 5] and "seed" not in result.settings
    assert result.model.n_hidden == 6 * 4
    split = bc.train.split_indices(len(X), 0.3, seed=42)  # the split of settings.seed, shared by all members
    np.testing.assert_array_equal(result.train_idx, split[0])
    single = bc.fit(X, (X @ u) ** 2, seed=3, train_idx=split[0], val_idx=split[1], var_names=GENES, **PLANTED)
    for mine, theirs in zip(_weights(result.members[3].model), _weights(single.model)):
        np.testing.assert_array_equal(mine, theirs)
    members = np.mean([m.predict(X) for m in result.members], axis=0)
    np.testing.assert_allclose(result.predict(X), members, rtol=1e-5, atol=1e-6)
    expected = np.mean([m.history["val_loss"] for m in result.members], axis=0)
    np.testing.assert_allclose(result.history["val_loss"], expected)


def test_planted_direction_is_reproducible_and_noise_modules_are_not(planted):
    X, u, result = planted
    table = module_reliability(result)
    top = table[table["module"] == 0].iloc[0]
    modules = bc.eigendecompose(result)
    assert abs(modules.vectors(0)[:, 0] @ u) > 0.99  # module 0 is the planted direction
    assert top["split_half_cos"] > 0.99 and top["member_cos"] > 0.99 and top["reproducible"]
    noise = table[table["module"] != 0]
    assert (noise["split_half_cos"] < REPRODUCIBLE_COS).all() and not noise["reproducible"].any()
    # shares by hand: λ² over Σλ² = ‖Q‖², from the dense Q of the ensemble
    dense = np.linalg.eigvalsh(interaction_matrices(result.model)[0].numpy())
    assert top["share"] == pytest.approx(dense.max() ** 2 / (dense**2).sum(), rel=1e-6)
    assert list(table["module"]) == [0, 1, 2, -1, -2, -3] and set(table["n_members"]) == {6}


def test_identical_members_agree_fully_and_a_single_fit_is_unknown(planted):
    X, u, result = planted
    twice = bc.ensemble([result.members[0], result.members[0]])
    table = module_reliability(twice, n_modules=2)
    np.testing.assert_allclose(table[["member_cos", "split_half_cos"]], 1.0, atol=1e-6)
    single = module_reliability(result.members[0])
    assert single["split_half_cos"].isna().all() and single["reproducible"].isna().all()
    assert set(single["n_members"]) == {1}


def test_tl_modules_scores_an_ensemble_and_the_h5ad_round_trip_keeps_it(planted, tmp_path):
    X, u, _ = planted
    adata = ad.AnnData(X[:600], var=pd.DataFrame(index=GENES))
    adata.obsm["y"] = ((X[:600] @ u) ** 2)[:, None]
    result = bc.tl.train(adata, "y", seeds=[0, 1, 2, 3], **PLANTED)
    modules = bc.tl.modules(adata, result, n_modules=2)
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    table = bc.tl.module_reliability(back)
    pd.testing.assert_frame_equal(table, modules.reliability)
    pd.testing.assert_frame_equal(bc.tl.get_modules(back).reliability, table)
    np.testing.assert_array_equal(back.obsm["bilinear_scores"], adata.obsm["bilinear_scores"])
    assert list(back.uns["bilinear"]["settings"]["seeds"]) == [0, 1, 2, 3]
    single = bc.tl.train(adata, "y", key_added="one", **PLANTED)
    bc.tl.modules(adata, single, key_added="one")
    adata.write_h5ad(tmp_path / "b.h5ad")
    unknown = bc.tl.module_reliability(ad.read_h5ad(tmp_path / "b.h5ad"), key="one")
    assert unknown["reproducible"].isna().all()
    with pytest.raises(KeyError, match="run bc.tl.modules first"):
        bc.tl.module_reliability(adata, key="missing")


def test_module_report_enriches_only_reproducible_modules_unless_asked(planted):
    X, u, result = planted
    modules = bc.eigendecompose(result)
    modules.reliability = module_reliability(result, modules=modules)
    library = {"toy": {"planted": GENES[:5], "other": GENES[50:60]}}
    report = bc.report.module_report(modules, 0, module=0, libraries=library, min_genes=5)
    assert report.reproducible is True and report.split_half_cos > 0.99
    top = report.genes.loc[report.genes["sign"] == "positive", "gene"]
    assert set(top) == set(GENES[:5])
    with pytest.raises(ValueError, match=r"Module 1 of '0' is not reproducible: .*\|cos\| 0\.\d\d < 0\.8"):
        bc.report.module_report(modules, 0, module=1, libraries=library, min_genes=5)
    forced = bc.report.module_report(modules, 0, module=1, libraries=library, min_genes=5, reproducible_only=False)
    assert forced.reproducible is False
    single = bc.eigendecompose(result.members[0])
    with pytest.raises(ValueError, match="unknown reproducibility .* Train an ensemble"):
        bc.report.module_report(single, 0, libraries=library, min_genes=5)


def test_module_overview_titles_say_how_reproducible_each_module_is(planted):
    X, u, result = planted
    modules = bc.eigendecompose(result)
    modules.reliability = module_reliability(result, modules=modules)
    fig = bc.pl.module_overview(modules, 0, X @ modules.vectors(0)[:, :2], np.zeros(len(X)), target=X[:, 0])
    titles = [ax.get_title() for ax in fig.axes[1:3]]
    assert "reproducible, split-half |cos| 1.00" in titles[0] and "not reproducible" in titles[1]
    single = bc.eigendecompose(result.members[0])
    assert bc.pl.reliability_label(single, 0, 0) == "reproducibility unknown"


def test_saved_ensemble_loads_with_its_members_and_predicts_bit_identically(planted, tmp_path):
    X, u, result = planted
    loaded = load(save(result, tmp_path / "e.pt"))
    np.testing.assert_array_equal(loaded.predict(X), result.predict(X))
    assert len(loaded.members) == 6
    np.testing.assert_array_equal(loaded.members[2].predict(X), result.members[2].predict(X))
    pd.testing.assert_frame_equal(module_reliability(loaded), module_reliability(result))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(seeds=[1, 1]), ValueError, "seeds must differ"),
        (dict(seeds=[]), ValueError, "non-empty list of integers"),
        (dict(seeds=[1.5]), ValueError, "non-empty list of integers"),
        (dict(seeds=[1, 2], model_factory=bc.baselines.ReluMLP), ValueError, "cannot train a model_factory"),
    ],
)
def test_bad_ensemble_requests_name_the_problem(kwargs, error, message):
    X = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    with pytest.raises(error, match=message):
        bc.fit(X, np.repeat(["a", "b"], 20), epochs=1, progress=False, **kwargs)


def test_fit_many_accepts_train_settings_values():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(60, 8)).astype(np.float32), np.repeat(["a", "b", "c"], 20)
    settings = bc.TrainSettings(epochs=2, n_hidden=4, seed=7, progress=False)
    many = bc.fit_many(X, y, {"run": settings})["run"]
    one = bc.fit(X, y, settings=settings)
    assert many.settings == one.settings and many.settings["seed"] == 7
    for mine, theirs in zip(_weights(many.model), _weights(one.model)):
        np.testing.assert_array_equal(mine, theirs)


def test_leading_modules_of_a_large_ensemble_equal_the_dense_ends_of_the_spectrum():
    torch.manual_seed(1)
    merged = ensemble([BilinearMLP(80, n_hidden=100, n_out=2) for _ in range(3)])  # 2h = 600: Lanczos
    leading = bc.interpret.leading_modules(merged, 3)
    for a in range(2):
        values, vectors = np.linalg.eigh(interaction_matrices(merged)[a].numpy())  # ascending
        ends = np.r_[79, 78, 77, 2, 1, 0]  # three largest, three smallest, descending
        np.testing.assert_allclose(leading.eigenvalues[a], values[ends], rtol=1e-8, atol=1e-12)
        cos = np.abs(np.sum(leading.eigenvectors[a] * vectors[:, ends], axis=0))
        np.testing.assert_allclose(cos, 1.0, atol=1e-6)
    small = BilinearMLP(80, 4, 2)  # 2h = 8: the exact pairs, sliced
    exact = bc.eigendecompose(small)
    np.testing.assert_array_equal(
        bc.interpret.leading_modules(small, 2).eigenvalues, exact.eigenvalues[:, [0, 1, 6, 7]]
    )


def test_squared_norms_equal_the_sum_of_squared_dense_eigenvalues():
    torch.manual_seed(2)
    model = BilinearMLP(30, n_hidden=7, n_out=3)
    dense = np.linalg.eigvalsh(interaction_matrices(model).numpy())  # (t, g)
    np.testing.assert_allclose(bc.interpret.squared_norms(model), (dense**2).sum(axis=1), rtol=1e-10)


def _dense_modules(models):
    """Eigenpairs (descending) of the mean dense Q of ``models``, output 0, in numpy: the oracle."""
    Q = np.mean([interaction_matrices(m)[0].numpy() for m in models], axis=0)
    values, vectors = np.linalg.eigh(Q)
    return values[::-1], vectors[:, ::-1]


def _split_half_cos(halves, module: int) -> float:
    """|cos| between the two halves' best matches of ``module`` of their joint ensemble, in numpy: each half (a
    list of models, combined as an ensemble) matches among its 10 leading modules of the module's sign."""
    values, vectors = _dense_modules([m for half in halves for m in half])
    matches = []
    for half in halves:
        own_values, own_vectors = _dense_modules(half)
        pole = np.flatnonzero(own_values > 0) if values[module] > 0 else np.flatnonzero(own_values < 0)[::-1]
        candidates = own_vectors[:, pole[:10]]
        matches.append(candidates[:, np.abs(candidates.T @ vectors[:, module]).argmax()])
    return abs(matches[0] @ matches[1])


def test_split_half_agreement_against_a_numpy_oracle(planted):
    X, u, result = planted
    members = result.members
    table = bc.stability.ensemble_agreement(members, sizes=(1, 3))
    assert sorted(set(zip(table["size"], table["group"]))) == [(1, 0), (1, 1), (1, 2), (3, 0)]
    pair = [[members[2].model], [members[3].model]]  # group 1 of size 1: two single fits
    for module in (0, -1):
        row = table[(table["size"] == 1) & (table["group"] == 1) & (table["module"] == module)]
        assert row["split_half_cos"].item() == pytest.approx(_split_half_cos(pair, module), abs=1e-6)
    whole = module_reliability(result)
    np.testing.assert_allclose(table.loc[table["size"] == 3, "split_half_cos"], whole["split_half_cos"], atol=1e-9)
    with pytest.raises(ValueError, match="at most half the 6 fits"):
        bc.stability.ensemble_agreement(members, sizes=(4,))
    message = "sizes must be positive and at most half the 6 fits, got [0, 1]."
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        bc.stability.ensemble_agreement(members, sizes=(0, 1))
    two = bc.stability.ensemble_agreement(members[:4], sizes=(1,), n_modules=1)  # two groups of two
    assert two.columns.tolist() == ["size", "group", *module_reliability(result, n_modules=1).columns]
    assert two.index.tolist() == list(range(len(two))) and set(two["rank"]) == {0} and set(two["group"]) == {0, 1}
    assert (module_reliability(members[0], n_modules=1)["rank"] == 0).all()  # one module per pole


def test_module_reliability_by_hand_on_given_decompositions():
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    fit = bc.fit(X, X[:, 0] * X[:, 1], seeds=[1, 2], task="regression", n_hidden=2, epochs=1, progress=False)
    e = np.eye(4)
    genes = [f"g{i}" for i in range(4)]
    # the ensemble's modules: eigenvalues 2, 0.5, 0, −1 (0 belongs to neither pole)
    modules = bc.interpret.Modules(np.array([[2.0, 0.5, 0.0, -1.0]]), e[None], ["0"], genes)
    tilted = np.c_[0.8 * e[:, 0] + 0.6 * e[:, 1], -0.6 * e[:, 0] + 0.8 * e[:, 1], e[:, 2:]]
    members = [modules, bc.interpret.Modules(np.array([[3.0, 0.1, -0.2, -4.0]]), tilted[None], ["0"], genes)]
    table = module_reliability(fit, 3, modules=modules, member_modules=members)
    columns = ["output", "pole", "rank", "module", "eigenvalue", "share", "member_cos", "split_half_cos"]
    assert table.columns.tolist() == [*columns, "n_members", "reproducible"]
    rows = [["positive", 0, 0], ["positive", 1, 1], ["negative", 0, -1]]
    assert table[["pole", "rank", "module"]].values.tolist() == rows
    assert table["eigenvalue"].tolist() == [2.0, 0.5, -1.0]  # the given modules', not the fit's
    # e0 and e1: member 1 has them exactly, member 2's best positive matches are 0.8 e0 + 0.6 e1 and
    # −0.6 e0 + 0.8 e1, |cos| 0.8 each; e3 both have
    np.testing.assert_allclose(table["member_cos"], [0.9, 0.9, 1.0])
    np.testing.assert_allclose(table["split_half_cos"], [0.8, 0.8, 1.0])
    assert table["reproducible"].tolist() == [True, True, True] and table["reproducible"].dtype == "boolean"
    norms = bc.interpret.squared_norms(fit)
    np.testing.assert_allclose(table["share"], np.array([4.0, 0.25, 1.0]) / norms[0])
    only_negative = bc.interpret.Modules(np.array([[0.0, -1.0, -2.0, -3.0]]), e[None], ["0"], genes)
    table = module_reliability(fit, 1, modules=only_negative, member_modules=[only_negative] * 2)
    assert table[["pole", "module"]].values.tolist() == [["negative", -1]]
    for kwargs, message in [
        (dict(n_modules=0), "n_modules must be a positive integer, got 0."),
        (dict(member_modules=members[:1]), "member_modules has 1 entries for 2 members."),
    ]:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            module_reliability(fit, **{"modules": modules, **kwargs})


def test_split_half_of_four_members_against_the_dense_halves(planted):
    _, _, result = planted
    four = bc.train.ensemble(result.members[:4])
    table = module_reliability(four, n_modules=1)
    halves = [[m.model for m in four.members[:2]], [m.model for m in four.members[2:]]]
    for module in (0, -1):
        row = table[table["module"] == module]
        assert row["split_half_cos"].item() == pytest.approx(_split_half_cos(halves, module), abs=1e-6)
