"""The AnnData face: pp -> tl.train -> tl.modules -> write_h5ad -> read_h5ad keeps everything."""

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import bilinear_core as bc

FIT = dict(n_hidden=8, epochs=3, batch_size=16, progress=False)


@pytest.fixture
def counts():
    """60 cells x 40 genes of counts; class B cells express genes g0-g4 five times higher."""
    rng = np.random.default_rng(0)
    labels = np.repeat(["A", "B", "C"], 20)
    rate = np.full((60, 40), 3.0)
    rate[labels == "B", :5] *= 5
    adata = ad.AnnData(rng.poisson(rate).astype(np.float32))
    adata.var_names = [f"g{i}" for i in range(40)]
    adata.obs_names = [f"c{i}" for i in range(60)]
    adata.obs["cell_type"] = pd.Categorical(labels)
    adata.obs["size"] = np.log1p(adata.X.sum(axis=1))
    adata.layers["spliced"] = adata.X.copy()
    return adata


def test_pp_tl_write_read_round_trip(counts, tmp_path):
    adata = bc.pp.preprocess(counts, n_top_genes=30, min_cells=10)
    result = bc.tl.train(adata, "cell_type", **FIT)
    modules = bc.tl.modules(adata, result, n_modules=2)
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")

    assert back.varm["bilinear_modules"].shape == (30, 3, 2)  # genes x outputs x modules
    assert back.obsm["bilinear_scores"].shape == (60, 3, 2)  # cells x outputs x modules
    np.testing.assert_array_equal(back.varm["bilinear_modules"], adata.varm["bilinear_modules"])
    stored = bc.tl.get_modules(back)
    np.testing.assert_array_equal(stored.eigenvalues, modules.eigenvalues)
    np.testing.assert_allclose(stored.vectors("B")[:, :2], modules.vectors("B")[:, :2], rtol=1e-6)
    # the stored scores are the cells projected onto the stored modules
    X = np.asarray(adata.X.todense())
    np.testing.assert_allclose(back.obsm["bilinear_scores"][:, 1], X @ stored.vectors("B"), rtol=1e-4, atol=1e-5)
    record = back.uns["bilinear"]
    assert list(record["output_names"]) == ["A", "B", "C"] and record["task"] == "classification"
    assert record["settings"]["n_hidden"] == 8 and len(record["history"]) == 3
    assert list(back.obs["bilinear_split"].value_counts()[["train", "validation"]]) == [42, 18]
    assert result.var_names == list(adata.var_names)


def test_modules_are_oriented_towards_their_class(counts):
    adata = bc.pp.preprocess(counts, n_top_genes=40, min_cells=10)
    result = bc.tl.train(adata, "cell_type", **FIT)
    bc.tl.modules(adata, result)
    train = (adata.obs["bilinear_split"] == "train").to_numpy()
    is_b = (adata.obs["cell_type"] == "B").to_numpy()
    score = adata.obsm["bilinear_scores"][:, 1, :]  # output B
    centred = score[train] - score[train].mean(axis=0)
    assert (centred[is_b[train]].sum(axis=0) >= 0).all()  # every module: B cells on the high side
    unoriented = bc.eigendecompose(result)  # a FitResult carries its genes and outputs
    assert unoriented.var_names == list(adata.var_names) and unoriented.output_names == ["A", "B", "C"]
    np.testing.assert_array_equal(unoriented.eigenvalues, bc.tl.get_modules(adata).eigenvalues)


def test_regression_targets_from_obsm_and_obs_columns(counts):
    adata = bc.pp.preprocess(counts, n_top_genes=40, min_cells=10)
    adata.obsm["targets"] = np.column_stack([adata.obs["size"], -adata.obs["size"]])
    from_obsm = bc.tl.train(adata, "targets", key_added="two", **FIT)
    assert from_obsm.task == "regression" and from_obsm.output_names == ["0", "1"]
    one = bc.tl.train(adata, "targets", n_targets=1, key_added="one", **FIT)
    assert one.output_names == ["0"]
    adata.obs["minus"] = -adata.obs["size"]
    columns = bc.tl.train(adata, ["size", "minus"], key_added="cols", **FIT)
    assert columns.task == "regression" and list(adata.uns["cols"]["target"]) == ["size", "minus"]
    np.testing.assert_array_equal(columns.history["train_loss"], from_obsm.history["train_loss"])  # same data
    bc.tl.modules(adata, columns, key_added="cols")
    assert adata.obsm["cols_scores"].shape == (60, 2, 3)


def test_train_many_records_each_run_as_train_does(counts, n_jobs):
    adata = bc.pp.preprocess(counts, n_top_genes=30, min_cells=10)
    runs = {"post": {}, "decoupled": {"decoupled_weight_decay": True, "weight_decay": 0.5}}
    results = bc.tl.train_many(adata, "cell_type", runs, n_jobs=n_jobs, **FIT)
    assert list(results) == ["post", "decoupled"]
    for key, run in runs.items():
        alone = adata.copy()
        expected = bc.tl.train(alone, "cell_type", key_added=key, **FIT | run)
        pd.testing.assert_frame_equal(results[key].history, expected.history, check_exact=True)
        assert adata.uns[key]["settings"] == alone.uns[key]["settings"]
        pd.testing.assert_series_equal(adata.obs[f"{key}_split"], alone.obs[f"{key}_split"])
    assert adata.uns["decoupled"]["settings"]["decoupled_weight_decay"]


def test_clear_errors(counts):
    adata = bc.pp.preprocess(counts, n_top_genes=40, min_cells=10)
    with pytest.raises(KeyError, match="neither in adata.obsm"):
        bc.tl.train(adata, "no_such_column", **FIT)
    with pytest.raises(KeyError, match="not found in adata.obs"):
        bc.tl.train(adata, ["size", "no_such_column"], **FIT)
    with pytest.raises(ValueError, match="one obs column of labels"):
        bc.tl.train(adata, ["size"], task="classification", **FIT)
    result = bc.tl.train(adata, "cell_type", **FIT)
    with pytest.raises(ValueError, match="genes the model was trained on"):
        bc.tl.modules(adata[:, :30].copy(), result)
    with pytest.raises(KeyError, match="run bc.tl.modules first"):
        bc.tl.get_modules(adata)
    with pytest.raises(KeyError, match="no training history"):
        bc.pl.training(adata, key="other")


@pytest.mark.parametrize("n_panels", [1, 2, 3, 5])
def test_figures_fit_the_page_two_panels_a_row(n_panels):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    embedding, values = rng.normal(size=(30, 2)), rng.normal(size=(30, n_panels))
    fig = bc.pl.embedding_values(embedding, values, [f"v{i}" for i in range(n_panels)])
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"v{i}" for i in range(n_panels)]
    columns = {round(ax.get_position().x0, 3) for ax in panels}
    rows = {round(ax.get_position().y0, 3) for ax in panels}
    assert len(columns) == min(2, n_panels) and len(rows) == -(-n_panels // 2)  # ceil(n / 2) rows
    assert fig.get_figwidth() <= bc.pl.PAGE_WIDTH
    plt.close(fig)


def test_orientation_uses_the_training_cells_only(counts):
    adata = bc.pp.preprocess(counts, n_top_genes=40, min_cells=10)
    labels = adata.obs["cell_type"].to_numpy()
    train = np.concatenate([np.flatnonzero(labels == c)[:6] for c in "ABC"])  # 18 training cells
    val = np.setdiff1d(np.arange(60), train)
    result = bc.tl.train(adata, "cell_type", train_idx=train, val_idx=val, **FIT)
    before = bc.tl.modules(adata, result).eigenvectors.copy()
    # negating the 42 validation cells reverses their part of every module's score: an orientation that looked at
    # them would flip, one from the training cells cannot change
    flipped = adata.copy()
    X = flipped.X.toarray()
    X[val] *= -1
    flipped.X = X
    after = bc.tl.modules(flipped, result).eigenvectors
    np.testing.assert_array_equal(after, before)
    # and each sign follows the rule on the training cells, computed here: target cells on the high side
    for a, name in enumerate("ABC"):
        score = X[train] @ before[a][:, :3]
        centred = score - score.mean(axis=0)
        assert (centred[labels[train] == name].sum(axis=0) >= 0).all()


def test_training_on_a_layer_reads_that_layer_through_modules(counts):
    adata = bc.pp.preprocess(counts, n_top_genes=40, min_cells=10)
    adata.layers["log"] = adata.X.copy()
    adata.X = np.zeros(adata.shape, dtype=np.float32)  # nothing to learn from X
    result = bc.tl.train(adata, "cell_type", layer="log", **FIT)
    by_hand = bc.fit(
        adata.layers["log"], adata.obs["cell_type"].to_numpy(), var_names=adata.var_names, **FIT
    )  # the same fit on the layer's matrix
    for p, q in zip(result.model.parameters(), by_hand.model.parameters(), strict=True):
        assert torch.equal(p, q)
    mods = bc.tl.modules(adata, result, n_modules=2)
    assert adata.uns["bilinear"]["layer"] == "log"
    log = adata.layers["log"].toarray()
    np.testing.assert_allclose(
        adata.obsm["bilinear_scores"][:, 1], log @ mods.vectors("B")[:, :2], rtol=1e-4, atol=1e-5
    )


def test_train_many_records_what_train_records(counts, n_jobs):
    adata = bc.pp.preprocess(counts, n_top_genes=30, min_cells=10)
    adata.obsm["targets"] = np.column_stack([adata.obs["size"], -adata.obs["size"]])
    bc.tl.train_many(adata, "targets", {"many": {}}, n_targets=1, n_jobs=n_jobs, **FIT)
    alone = bc.tl.train(adata.copy(), "targets", n_targets=1, key_added="many", **FIT)
    record = adata.uns["many"]
    assert record["n_targets"] == 1 and list(record["output_names"]) == alone.output_names == ["0"]
    labelled = bc.tl.train_many(adata, "cell_type", {"kinds": {}}, layer="spliced", n_jobs=n_jobs, **FIT)
    assert list(adata.uns["kinds"]["classes"]) == ["A", "B", "C"] and adata.uns["kinds"]["layer"] == "spliced"
    assert labelled["kinds"].preprocessing["input_layer"] == "spliced"


def test_modules_of_a_fit_without_a_record_or_gene_names(counts):
    adata = bc.pp.preprocess(counts, n_top_genes=30, min_cells=10)
    X = np.asarray(adata.X.todense())
    result = bc.fit(X, adata.obs["cell_type"].to_numpy(), **FIT)  # no var_names, no adata.uns record
    mods = bc.tl.modules(adata, result, n_modules=1, orient=False, key_added="bare")
    assert mods.var_names == list(adata.var_names) and adata.uns["bare"]["output_names"] == ["A", "B", "C"]
    assert adata.varm["bare_modules"].shape == (30, 3, 1) and adata.varm["bare_modules"].dtype == np.float32
    stored = bc.tl.get_modules(adata, "bare")
    assert stored.var_names == list(adata.var_names) and stored.reliability["reproducible"].isna().all()
    assert set(stored.reliability["rank"]) == {0}  # n_modules = 1 per pole
    del adata.uns["bare"]["reliability"]
    assert bc.tl.get_modules(adata, "bare").reliability is None
    varm = adata.varm.pop("bare_modules")
    with pytest.raises(KeyError, match="run bc.tl.modules first"):
        bc.tl.get_modules(adata, "bare")
    adata.varm["bare_modules"] = varm
    message = "\"adata.uns has no 'bare2': train with bilinear_core.tl.train, or pass orient=False.\""
    with pytest.raises(KeyError, match="^" + re.escape(message) + "$"):
        bc.tl.modules(adata, result, key_added="bare2")
    with pytest.raises(ValueError, match="^n_modules must be a positive integer, got 0.$"):
        bc.tl.modules(adata, result, n_modules=0, orient=False, key_added="bare")
    message = (
        "adata has 29 genes that are not the 30 genes the model was trained on (same genes in the same order needed)."
    )
    named = bc.tl.train(adata, "cell_type", **FIT)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        bc.tl.modules(adata[:, :29].copy(), named)
    del adata.uns["bare"]["eigenvalues"]
    with pytest.raises(KeyError, match="run bc.tl.modules first"):
        bc.tl.get_modules(adata, "bare")


def test_modules_orient_by_the_recorded_task_and_targets(counts):
    adata = bc.pp.preprocess(counts, n_top_genes=30, min_cells=10)
    adata.obs["code"] = adata.obs["cell_type"].cat.codes.astype(int)
    adata.obsm["targets"] = np.column_stack([adata.obs["size"], -adata.obs["size"]])
    X = np.asarray(adata.X.todense())
    size = adata.obs["size"].to_numpy()
    cases = {  # key: (target, training options, what orients on the training cells)
        "codes": ("code", dict(task="classification"), adata.obs["code"].astype(str).to_numpy()),  # integer labels
        "size": ("size", {}, size),  # one numeric obs column: regression
        "one": ("targets", dict(n_targets=1), size),  # the first column of an obsm target
    }
    for key, (target, options, truth) in cases.items():
        result = bc.tl.train(adata, target, key_added=key, **FIT, **options)
        mods = bc.tl.modules(adata, result, key_added=key)
        expected = bc.interpret.orient_modules(bc.eigendecompose(result), X[result.train_idx], truth[result.train_idx])
        np.testing.assert_array_equal(mods.eigenvectors, expected.eigenvectors)
