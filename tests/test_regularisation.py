"""Sparsity priors on the bilinear factors and early stopping (bilinear_core.regularisation), each on a case
where its effect is known."""

import numpy as np
import pandas as pd
import pytest
import torch

import bilinear_core as bc
from bilinear_core import regularisation as reg
from bilinear_core.train import TrainSettings

GENES = [f"g{i}" for i in range(10)]
# y = x0·x1 − x2²: only genes g0, g1 and g2 carry signal
FAST = dict(task="regression", n_hidden=8, epochs=60, batch_size=32, lr=1e-2, loss="mse", progress=False)


def _planted(n=300, g=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, g)).astype(np.float32)
    return X, X[:, 0] * X[:, 1] - X[:, 2] ** 2


# ------------------------------------------------------------------------------------------- array level
def test_soft_threshold_is_the_l1_proximal_operator():
    values = torch.tensor([-3.0, -0.5, 0.0, 0.2, 2.0])
    assert torch.equal(reg.soft_threshold(values, 1.0), torch.tensor([-2.0, 0.0, 0.0, 0.0, 1.0]))
    assert torch.equal(reg.soft_threshold(values, 0.0), values)
    with pytest.raises(ValueError, match="threshold must be at least 0"):
        reg.soft_threshold(values, -1.0)


def test_group_soft_threshold_shrinks_whole_groups_by_their_norm():
    # group 0: columns 0 and 2, norm sqrt(3² + 4²) = 5; group 1: column 1, norm 1; group 2: column 3, all zeros
    columns = torch.tensor([[3.0, 1.0, 0.0, 0.0], [0.0, 0.0, 4.0, 0.0]])
    groups = torch.tensor([0, 1, 0, 2])
    out = reg.group_soft_threshold(columns, groups, torch.tensor([2.0, 2.0, 1.0]))
    # group 0 keeps 1 − 2/5 = 60 %, group 1 (norm 1 ≤ 2) is zeroed, the zero group stays zero (no NaN)
    torch.testing.assert_close(out, torch.tensor([[1.8, 0.0, 0.0, 0.0], [0.0, 0.0, 2.4, 0.0]]))
    assert torch.equal(reg.group_soft_threshold(columns, groups, torch.zeros(3)), columns)
    with pytest.raises(ValueError, match="one group per column"):
        reg.group_soft_threshold(columns, groups[:3], torch.zeros(3))
    with pytest.raises(ValueError, match="thresholds must be"):
        reg.group_soft_threshold(columns, groups, torch.tensor([1.0, -1.0, 0.0]))


def test_gene_set_groups_give_one_latent_copy_per_set_and_lone_genes_their_own_group():
    sets = {"A": ["g0", "G1", "nope"], "B": ["g1", "g2"], "empty": ["x"]}
    groups = reg.gene_set_groups(["g0", "g1", "g2", "g3"], sets)
    assert groups.columns.tolist() == [0, 1, 1, 2, 3]  # g1 (matched case-insensitively) sits in A and in B
    assert groups.groups.tolist() == [0, 0, 1, 1, 2]
    assert groups.names == ["A", "B", "g3"]  # the set without a gene here is dropped; g3 is alone
    np.testing.assert_allclose(groups.weights, [np.sqrt(2), np.sqrt(2), 1.0])
    assert (groups.n_inputs, groups.n_genes) == (5, 4)
    per_gene = reg.gene_groups(3)
    assert per_gene.columns.tolist() == per_gene.groups.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="No gene of the 1 gene sets"):
        reg.gene_set_groups(["g0"], {"A": ["x"]})
    with pytest.raises(ValueError, match="duplicate"):
        reg.gene_set_groups(["g0", "G0"], sets)
    with pytest.raises(ValueError, match="non-empty"):
        reg.gene_set_groups(["g0"], {})


def test_collapsing_latent_copies_keeps_the_model_s_predictions():
    groups = reg.gene_set_groups(GENES, {"A": GENES[:4], "B": GENES[2:7]})
    torch.manual_seed(0)
    latent = bc.BilinearMLP(groups.n_inputs, 5, 2, bias=True).double().eval()
    X = np.random.default_rng(1).normal(size=(20, 10))
    collapsed = reg.collapse_latent(latent, groups)
    with torch.no_grad():
        expected = latent(torch.from_numpy(reg.expand_inputs(X, groups)))
        torch.testing.assert_close(collapsed(torch.from_numpy(X)), expected)
    assert collapsed.n_in == 10
    with pytest.raises(ValueError, match="latent copies"):
        reg.collapse_latent(bc.BilinearMLP(10, 5, 2), groups)


def test_early_stopping_counts_epochs_without_improvement_and_restores_the_best_weights():
    model = torch.nn.Linear(2, 1)
    stopper = reg.EarlyStopping(patience=2)
    assert not stopper.update(1, 1.0, model)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not stopper.update(2, 1.0, model)  # equal is no improvement: one epoch waited
    assert stopper.update(3, 2.0, model)  # two epochs without improvement: stop
    stopper.restore(model)
    assert stopper.best_epoch == 1 and torch.equal(model.weight, best["weight"])
    with pytest.raises(ValueError, match="finite validation loss"):
        stopper.update(4, float("nan"), model)
    with pytest.raises(ValueError, match="patience must be a positive integer"):
        reg.EarlyStopping(0)


# ------------------------------------------------------------------------------------------- in training
def test_l1_penalty_gives_exact_zeros_and_removes_the_genes_without_signal():
    X, y = _planted()
    plain = bc.fit(X, y, **FAST)
    sparse_fit = bc.fit(X, y, l1_penalty=1.0, **FAST)
    assert not (plain.model.left.weight == 0).any()  # no penalty: no weight is exactly zero
    assert reg.active_genes(sparse_fit.model).tolist() == [True] * 3 + [False] * 7
    assert (sparse_fit.model.left.weight == 0).float().mean() > 0.9
    Q = bc.interpret.interaction_matrices(sparse_fit.model)[0].numpy()
    assert np.abs(Q[3:, :]).max() == 0.0 and Q[2, 2] < -0.5 and Q[0, 1] > 0.2  # the planted rule, shrunk


def test_gene_group_lasso_removes_whole_genes_from_both_factors_and_keeps_the_rule():
    X, y = _planted()
    result = bc.fit(X, y, gene_penalty=0.25, **FAST)
    W, V = result.model.left.weight, result.model.right.weight
    assert reg.active_genes(result.model).tolist() == [True] * 3 + [False] * 7
    assert (W[:, 3:] == 0).all() and (V[:, 3:] == 0).all()
    assert (W[:, :3] != 0).float().mean() > 0.9  # kept genes keep (almost) all their weights: no elementwise sparsity
    Q = bc.interpret.interaction_matrices(result.model)[0].numpy()
    assert Q[0, 1] == pytest.approx(0.5, abs=0.05) and Q[2, 2] == pytest.approx(-1.0, abs=0.05)


def test_gene_set_penalty_removes_whole_sets_and_keeps_a_gene_any_kept_set_holds():
    X, y = _planted()
    sets = {"signal": ["g0", "g1", "g2"], "noise A": ["g2", "g3", "g4", "g5"], "noise B": ["g5", "g6", "g7"]}
    result = bc.fit(X, y, var_names=GENES, gene_set_penalty=0.5, gene_sets=sets, **FAST)
    # g2 is in the kept set and in a removed one: the latent group lasso keeps it (support = union of kept sets)
    assert reg.active_genes(result.model).tolist() == [True] * 3 + [False] * 7
    assert result.model.n_in == 10 and result.var_names == GENES  # the collapsed model, on the genes
    assert result.settings["latent_inputs"] == 3 + 4 + 3 + 2  # three sets' copies and the lone g8, g9
    assert result.settings["gene_sets"] == sets
    assert result.history["val_mae"].iloc[-1] < 0.5 * result.history["val_mae"].iloc[0]
    with pytest.raises(ValueError, match="needs var_names"):
        bc.fit(X, y, gene_set_penalty=1.0, gene_sets=sets, **FAST)


def test_early_stopping_follows_the_full_run_and_restores_the_best_epoch():
    """An overfitting fit (few cells, many noise genes): the stopped run is the full run cut at its stop."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 40)).astype(np.float32)
    y = X[:, 0] * X[:, 1] + rng.normal(scale=1.0, size=60)
    kwargs = dict(FAST, n_hidden=16, epochs=40, batch_size=8)
    full = bc.fit(X, y, **kwargs)
    stopped = bc.fit(X, y, patience=3, **kwargs)
    n = len(stopped.history)
    assert n < 40 and n == stopped.best_epoch + 3
    pd.testing.assert_frame_equal(stopped.history, full.history.iloc[:n], check_exact=True)
    assert stopped.best_epoch == full.history["val_loss"].iloc[:n].idxmin() + 1
    # the model holds the best epoch's weights: its validation loss is that epoch's
    val = torch.from_numpy(X[stopped.val_idx])
    pred = stopped.model(val).detach()
    loss = torch.nn.functional.mse_loss(pred, torch.from_numpy(y[stopped.val_idx, None].astype(np.float32)))
    assert loss.item() == pytest.approx(stopped.history["val_loss"].min(), rel=1e-6)
    assert stopped.settings["patience"] == 3 and full.best_epoch == full.history["val_loss"].idxmin() + 1


def test_options_reach_tl_train_and_are_recorded(toy_adata):
    bc.pp.normalize_log1p(toy_adata)
    kwargs = dict(n_hidden=4, epochs=4, batch_size=16, lr=1e-2, progress=False)
    result = bc.tl.train(toy_adata, "clusters", l1_penalty=1.0, **kwargs)
    assert toy_adata.uns["bilinear"]["settings"]["l1_penalty"] == 1.0
    assert (result.model.left.weight == 0).any()
    stopped = bc.tl.train(toy_adata, "clusters", patience=1, key_added="es", **kwargs)
    assert toy_adata.uns["es"]["settings"]["patience"] == 1
    val = stopped.history["val_loss"].to_numpy()  # it stops after the first epoch that does not improve
    worse = [e for e in range(1, len(val)) if val[e] >= val[:e].min()]
    assert len(val) == (worse[0] + 1 if worse else 4)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(l1_penalty=-1.0), r"l1_penalty must be a number in \[0, inf\)"),
        (dict(gene_penalty=float("nan")), "gene_penalty must be a number"),
        (dict(gene_set_penalty=0.1), "needs gene_sets"),
        (dict(gene_sets="MSigDB_Hallmark_2020"), "needs gene_sets"),
        (dict(gene_penalty=0.1, gene_set_penalty=0.1, gene_sets={"A": ["g0"]}), "exclude each other"),
        (dict(patience=0), "patience must be a positive integer"),
        (dict(patience=2.5), "patience must be a positive integer"),
    ],
)
def test_bad_options_are_value_errors_naming_the_option(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(**bad)


def test_penalties_refuse_other_architectures_and_stopping_needs_validation_cells():
    X, y = _planted(n=60)
    with pytest.raises(ValueError, match="model_factory=None"):
        bc.fit(X, y, l1_penalty=0.1, model_factory=bc.baselines.ReluMLP, **FAST)
    with pytest.raises(ValueError, match="use bilinear_core.fit"):
        reg.proximal_step(TrainSettings(gene_set_penalty=0.1, gene_sets={"A": ["g0"]}), 10)
    assert reg.proximal_step(TrainSettings(), 10) is None
    with pytest.raises(ValueError, match="finite validation loss"):
        bc.fit(X, y, patience=2, train_idx=np.arange(60), val_idx=np.arange(0), **FAST)
