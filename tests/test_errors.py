"""Every bad input named in the developer guide gets a clear error naming the problem."""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import bilinear_core as bc
from bilinear_core.perturbation import dose_targets


def test_missing_layer(toy_adata):
    with pytest.raises(KeyError, match=r"Layer 'unspliced' not found.*available layers: \['spliced'\]"):
        bc.tl.train(toy_adata, "clusters", layer="unspliced", progress=False)
    with pytest.raises(KeyError, match="Layer 'unspliced' not found"):
        bc.pp.preprocess(toy_adata, layer="unspliced")


def test_wrong_label_column(toy_adata):
    with pytest.raises(
        KeyError, match=r"'cell_type' is neither in adata.obsm \(\[\]\) nor in adata.obs \(\['clusters'"
    ):
        bc.tl.train(toy_adata, "cell_type", progress=False)
    with pytest.raises(KeyError, match=r"Column 'X_freq' not found in adata.obs; available columns: \['clusters'\]"):
        bc.tl.train(toy_adata, ["X_freq"], progress=False)


def test_nan_in_expression(toy_adata):
    X = toy_adata.X.toarray()
    X[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite value\(s\)"):
        bc.fit(X, toy_adata.obs["clusters"], progress=False)


def test_nan_in_targets_and_labels(toy_adata):
    y = np.ones(60)
    y[0] = np.nan
    with pytest.raises(ValueError, match="regression targets contains 1 NaN"):
        bc.fit(toy_adata.X, y, task="regression", progress=False)
    labels = toy_adata.obs["clusters"].astype(object).to_numpy()
    labels[5] = None
    with pytest.raises(ValueError, match="labels contain 1 missing value"):
        bc.fit(toy_adata.X, labels, progress=False)


def test_too_few_cells(toy_adata):
    with pytest.raises(ValueError, match="Training needs at least 10 cells, got 4"):
        bc.tl.train(toy_adata[:4].copy(), "clusters", progress=False)
    with pytest.raises(ValueError, match="Preprocessing needs at least 20 cells, got 4"):
        bc.pp.preprocess(toy_adata[:4].copy())
    with pytest.raises(ValueError, match="NN graph needs at least 12 cells"):
        bc.frequencies.transcriptional_frequencies(AnnData(np.eye(8, dtype=np.float32) + 1))


def test_unstratifiable_split():
    X = np.random.default_rng(0).normal(size=(20, 3))
    labels = ["a"] * 19 + ["b"]
    with pytest.raises(ValueError, match="Cannot split 20 cells"):
        bc.fit(X, labels, progress=False)


def test_single_class_and_bad_settings(toy_adata):
    with pytest.raises(ValueError, match="at least 2 classes"):
        bc.fit(toy_adata.X, ["A"] * 60, progress=False)
    with pytest.raises(ValueError, match="task must be one of"):
        bc.fit(toy_adata.X, toy_adata.obs["clusters"], task="ranking", progress=False)
    with pytest.raises(ValueError, match="loss must be one of"):
        bc.fit(toy_adata.X, np.ones(60), task="regression", loss="hinge", progress=False)
    with pytest.raises(ValueError, match="X has 60 cells but the labels have 59"):
        bc.fit(toy_adata.X, toy_adata.obs["clusters"][:59], progress=False)


def _perturbed():
    adata = AnnData(np.ones((6, 3), dtype=np.float32))
    adata.obs["perturbation"] = ["SAHA", "SAHA", "Nutlin", "control", "Dex", "BMS"]
    adata.obs["dose"] = [10.0, 100.0, 1000.0, 0.0, 10.0, 100.0]
    return adata


def test_dose_targets_and_unknown_drug():
    targets = dose_targets(_perturbed(), ["SAHA", "Nutlin", "Dex", "BMS"])
    expected = np.zeros((6, 4))
    expected[[0, 1, 2, 4, 5], [0, 0, 1, 2, 3]] = np.log1p([10, 100, 1000, 10, 100])
    np.testing.assert_allclose(targets.to_numpy(), expected)
    with pytest.raises(ValueError, match=r"Unknown drug\(s\) \['Aspirin'\]"):
        dose_targets(_perturbed(), ["SAHA", "Aspirin"])
    with pytest.raises(ValueError, match=r"perturbations \['BMS', 'Dex', 'Nutlin'\] are neither"):
        dose_targets(_perturbed(), ["SAHA"])


def test_unknown_output_and_library():
    modules = bc.eigendecompose(bc.BilinearMLP(5, 2, 2), output_names=["Alpha", "Beta"])
    with pytest.raises(KeyError, match=r"Unknown output 'Gamma'; outputs are \['Alpha', 'Beta'\]"):
        bc.top_genes(modules, "Gamma")
    with pytest.raises(ValueError, match="2 outputs and 5 inputs"):
        bc.eigendecompose(bc.BilinearMLP(5, 2, 2), output_names=["only one"])
    with pytest.raises(ValueError, match="n_hidden must be a positive integer"):
        bc.BilinearMLP(5, 0, 2)
    with pytest.raises(ValueError, match="empty"):
        bc.enrichment.enrich(pd.Series([], dtype=str))


def test_filter_low_count_cells():
    from bilinear_core.perturbation import filter_low_count_cells

    adata = AnnData(np.array([[4000, 500], [6000, 0], [1, 1]], dtype=np.float32))
    assert filter_low_count_cells(adata).obs_names.tolist() == ["1"]
    assert filter_low_count_cells(adata, min_counts=2).n_obs == 3
