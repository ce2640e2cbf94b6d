"""Held-out evaluation of training settings (bilinear_core.evaluation) on any AnnData and any split."""

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split

from bilinear_core.evaluation import Evaluation, evaluate_settings, held_out_split
from bilinear_core.train import TrainSettings

COMMON = dict(n_hidden=8, epochs=6, batch_size=32, lr=1e-2, progress=False)


@pytest.fixture
def planted():
    """240 cells × 12 genes; y = x0·x1 − x2², its sign as a label, and three batches of 80 cells."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 12)).astype(np.float32)
    adata = ad.AnnData(X)
    adata.var_names = [f"g{i}" for i in range(12)]
    adata.obs["y"] = X[:, 0] * X[:, 1] - X[:, 2] ** 2
    adata.obs["label"] = pd.Categorical(np.where(adata.obs["y"] > 0, "pos", "neg"))
    adata.obs["batch"] = np.repeat(["a", "b", "c"], 80)
    return adata


def test_table_scores_every_setting_and_baseline_on_the_test_cells(planted):
    settings = {"reference": {}, "sparse": {"l1_penalty": 2.0}}
    ev = evaluate_settings(planted, "label", settings, seeds={"reference": (42, 1, 2)}, **COMMON)
    table = ev.table
    assert list(table.index) == ["reference", "sparse", "linear", "ReLU MLP"]
    assert table["model"].tolist() == ["bilinear MLP", "bilinear MLP", "linear", "ReLU MLP"]
    # the random split is stratified and disjoint; every score comes from the test cells
    parts = np.concatenate([ev.train_idx, ev.val_idx, ev.test_idx])
    assert sorted(parts) == list(range(240)) and len(ev.test_idx) == 36
    labels = planted.obs["label"].astype(str).to_numpy()
    for name in settings:  # scores against scikit-learn's metrics on the split the evaluation reports
        fit = ev.fits[name][0]
        val, test = ev.val_idx, ev.test_idx
        calls = fit.predict_labels(planted.X)
        assert table.loc[name, "validation accuracy"] == pytest.approx(accuracy_score(labels[val], calls[val]))
        assert table.loc[name, "test accuracy"] == pytest.approx(accuracy_score(labels[test], calls[test]))
        macro = f1_score(labels[test], calls[test], labels=["neg", "pos"], average="macro", zero_division=0)
        assert table.loc[name, "test macro-F1"] == pytest.approx(macro)
        assert np.array_equal(fit.train_idx, ev.train_idx) and np.array_equal(fit.val_idx, ev.val_idx)
    assert [f.settings["seed"] for f in ev.fits["reference"]] == [42, 1, 2]
    assert table.loc["reference", "relative cost"] == 1.0 and table.loc["reference", "seeds"] == 3
    vectors = [m.eigenvectors[:, :, 0] for m in ev.modules["reference"]]  # module 0: (outputs, genes) per seed
    pairs = [(0, 1), (0, 2), (1, 2)]
    cos = [np.mean([abs(vectors[i][a] @ vectors[j][a]) for i, j in pairs]) for a in range(2)]
    assert table.loc["reference", "module 0 |cos|"] == pytest.approx(np.median(cos))
    runs = [m.eigenvectors for m in ev.modules["reference"]]  # (outputs, genes, modules) per seed
    later = [  # modules 1 and 2 (the default n_modules = 3), both outputs
        np.mean([abs(runs[i][a, :, k] @ runs[j][a, :, k]) for i, j in pairs]) for a in range(2) for k in (1, 2)
    ]
    assert table.loc["reference", "modules 1–2 |cos|"] == pytest.approx(np.median(later))
    assert table.index.name == "setting" and (table[["best epoch", "seeds"]].dtypes == "Int64").all()
    assert np.isnan(table.loc["sparse", "module 0 |cos|"])
    assert table.loc["sparse", "genes used"] < table.loc["reference", "genes used"] == 12
    history = ev.fits["reference"][0].history.iloc[-1]
    assert table.loc["reference", "gap (val − train loss)"] == history["val_loss"] - history["train_loss"]
    assert pd.isna(table.loc["linear", "best epoch"]) and table.loc["ReLU MLP", "epochs trained"] == 6
    assert ev.best() == table["validation accuracy"].iloc[:2].idxmax()
    assert ev.best(["sparse"]) == "sparse"
    with pytest.raises(KeyError, match=re.escape("No setting(s) ['nope'] in this evaluation (['reference', 'sparse'")):
        ev.best(["sparse", "nope"])


def test_identical_runs_are_perfectly_stable_and_cost_counts_epochs_and_latent_copies(planted):
    sets = {"A": ["g0", "g1", "g2"], "B": ["g2", "g3"], "C": ["g3", "g4"]}
    settings = {
        "reference": {},
        "same": {},
        "stopped": {"patience": 1, "epochs": 40, "lr": 0.05},
        "sets": {"gene_set_penalty": 0.1, "gene_sets": sets},
    }
    ev = evaluate_settings(planted, "y", settings, seeds={"same": (42, 42)}, baselines=(), **COMMON)
    table = ev.table
    assert table.loc["same", "module 0 |cos|"] == pytest.approx(1.0)
    assert table.loc["same", "modules 1–2 |cos|"] == pytest.approx(1.0)
    stopped = ev.fits["stopped"][0]
    assert table.loc["stopped", "epochs trained"] == len(stopped.history) < 40
    # with early stopping the model holds the best epoch's weights: its gap is that epoch's
    best = stopped.history.loc[stopped.history["epoch"] == stopped.best_epoch].iloc[0]
    assert stopped.best_epoch < len(stopped.history)
    assert table.loc["stopped", "gap (val − train loss)"] == best["val_loss"] - best["train_loss"]
    assert table.loc["stopped", "relative cost"] == pytest.approx(len(stopped.history) / 6)
    # 7 latent copies of g0–g4 plus 7 lone genes = 14 inputs instead of 12, in both factors (h = 8)
    weights = 2 * 8 * 12 + 8
    assert table.loc["sets", "relative cost"] == pytest.approx((weights + 2 * 8 * 2) / weights)
    assert list(table.index) == list(settings) and "validation R²" in table and "test MAE" in table
    y = planted.obs["y"].to_numpy()
    pred = ev.fits["reference"][0].predict(planted.X)[:, 0]
    val, test = ev.val_idx, ev.test_idx
    assert table.loc["reference", "validation R²"] == pytest.approx(r2_score(y[val], pred[val]), rel=1e-5)
    assert table.loc["reference", "test R²"] == pytest.approx(r2_score(y[test], pred[test]), rel=1e-5)
    assert table.loc["reference", "test MAE"] == pytest.approx(mean_absolute_error(y[test], pred[test]), rel=1e-5)


def test_held_out_group_is_the_test_set_and_never_trained_on(planted):
    ev = evaluate_settings(planted, "y", {"reference": {}}, held_out=("batch", "c"), baselines=("linear",), **COMMON)
    assert np.array_equal(ev.test_idx, np.arange(160, 240))
    assert not set(ev.fits["reference"][0].train_idx) & set(ev.test_idx)
    assert len(ev.val_idx) == 48 and set(ev.train_idx) | set(ev.val_idx) == set(range(160))
    train, val, test = held_out_split(planted, ("batch", ["a", "c"]))
    assert len(test) == 160 and len(train) + len(val) == 80
    given = (np.arange(100), np.arange(100, 150), np.arange(150, 240))
    assert all(np.array_equal(a, b) for a, b in zip(held_out_split(planted, split=given), given))


def test_previous_fits_are_reused_and_must_share_the_split(planted):
    first = evaluate_settings(planted, "y", {"reference": {}}, **COMMON | {"epochs": 2})
    second = evaluate_settings(
        planted, "y", {"reference": {}}, seeds={"reference": (42, 1)}, previous=first, **COMMON | {"epochs": 2}
    )
    assert second.fits["reference"][0] is first.fits["reference"][0]
    assert all(second.baselines[b] is first.baselines[b] for b in ["linear", "ReLU MLP"])
    assert second.fits["reference"][1].settings["seed"] == 1
    # the fit of seed 1 is found again, and with nothing left to train nothing is
    third = evaluate_settings(
        planted, "y", {"reference": {}}, seeds={"reference": (1,)}, previous=second, **COMMON | {"epochs": 2}
    )
    assert third.fits["reference"][0] is second.fits["reference"][1]
    with pytest.raises(ValueError, match="^previous was evaluated on another split; its fits cannot be reused.$"):
        evaluate_settings(planted, "y", {"reference": {}}, held_out=("batch", "a"), previous=first, **COMMON)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(settings={}), ValueError, "^Give at least one setting to evaluate.$"),
        (dict(seeds={"other": (1, 2)}), KeyError, "seeds names setting"),
        (dict(reference="other"), KeyError, "reference 'other'"),
        (dict(baselines=("forest",)), ValueError, "Unknown baseline"),
        (dict(held_out=("batch", "z")), ValueError, "selects 0 of 240 cells"),
        (dict(held_out=("plate", "a")), KeyError, "Column 'plate' not found"),
        (dict(split=(np.arange(10), np.arange(5, 20), np.arange(20, 30))), ValueError, "disjoint"),
    ],
)
def test_bad_requests_name_the_problem(planted, kwargs, error, message):
    kwargs = {"settings": {"reference": {}}, **kwargs}
    with pytest.raises(error, match=message):
        evaluate_settings(planted, "y", **kwargs, **COMMON)


@pytest.mark.processes
def test_fits_in_parallel_processes_equal_the_serial_ones(planted):
    settings = {"reference": {}, "short": {"epochs": 3}, "sparse": {"l1_penalty": 0.5}}
    kwargs = dict(seeds={"reference": (42, 1)}, relu_settings={"epochs": 3}, **COMMON)
    serial = evaluate_settings(planted, "label", settings, **kwargs)
    parallel = evaluate_settings(planted, "label", settings, n_jobs=2, **kwargs)
    pd.testing.assert_frame_equal(serial.table, parallel.table, check_exact=True)
    for name, runs in serial.fits.items():
        for a, b in zip(runs, parallel.fits[name], strict=True):
            for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
                assert torch.equal(pa, pb)
    with pytest.raises(ValueError, match="n_jobs must be a positive integer"):
        evaluate_settings(planted, "label", settings, n_jobs=0, **COMMON)


def test_held_out_split_defaults_and_refusals(planted):
    from bilinear_core.baselines import split_train_val_test

    labels = planted.obs["label"].to_numpy()
    for kwargs, expected in [
        ({}, split_train_val_test(240, test_fraction=0.15, val_fraction=0.3, seed=42)),
        ({"labels": labels}, split_train_val_test(240, test_fraction=0.15, val_fraction=0.3, seed=42, stratify=labels)),
    ]:
        for mine, theirs in zip(held_out_split(planted, **kwargs), expected):
            np.testing.assert_array_equal(mine, np.sort(theirs))
    given = (np.arange(10), np.arange(10, 20), np.arange(20, 30))
    for split, message in [
        ((np.arange(10), np.arange(10, 20)), "split must be three non-empty 1-d index arrays (train, val, test)."),
        ((np.arange(10), np.arange(0), np.arange(20, 30)), "split must be three non-empty 1-d index arrays"),
        ((np.arange(10), np.arange(10, 20), np.array([239, 240])), "split must hold disjoint indices in [0, 240)."),
        ((np.arange(10), np.arange(9, 20), np.arange(20, 30)), "split must hold disjoint indices"),
    ]:
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            held_out_split(planted, split=split)
    with pytest.raises(ValueError, match="^Give held_out or split, not both.$"):
        held_out_split(planted, ("batch", "c"), split=given)


def test_split_arguments_reach_the_split(planted):
    from bilinear_core.baselines import split_train_val_test

    labels = planted.obs["label"].astype(str).to_numpy()
    kwargs = dict(baselines=(), epochs=1, n_hidden=2, progress=False)
    for split, expected in [
        ({}, split_train_val_test(240, test_fraction=0.15, val_fraction=0.3, seed=42, stratify=labels)),
        (
            dict(test_fraction=0.2, val_fraction=0.25, split_seed=3),
            split_train_val_test(240, test_fraction=0.2, val_fraction=0.25, seed=3, stratify=labels),
        ),
    ]:
        ev = evaluate_settings(planted, "label", {"reference": {}}, **split, **kwargs)
        for mine, theirs in zip((ev.train_idx, ev.val_idx, ev.test_idx), expected, strict=True):
            np.testing.assert_array_equal(mine, np.sort(theirs))
    # a held-out group: the other cells split with the seed, stratified on the labels
    train, val, test = held_out_split(planted, ("batch", "c"), labels=labels, seed=7, val_fraction=0.25)
    rest = np.arange(160)
    expected = train_test_split(rest, test_size=0.25, random_state=7, stratify=labels[rest])
    np.testing.assert_array_equal(train, np.sort(expected[0]))
    np.testing.assert_array_equal(val, np.sort(expected[1]))
    np.testing.assert_array_equal(test, np.arange(160, 240))
    # one value of several characters is one value, not its letters
    assert len(held_out_split(planted, ("label", "pos"))[2]) == int((labels == "pos").sum())
    parts = held_out_split(planted, split=([3.0, 1.0], [2.0], [0.0]))
    assert [p.dtype for p in parts] == [np.int64] * 3 and parts[0].tolist() == [1, 3]


def test_best_is_the_highest_validation_score():
    table = pd.DataFrame({"validation R²": [0.1, 0.7, 0.7, 0.2]}, index=list("abcd"))
    ev = Evaluation(table, dict.fromkeys("abcd", []), {}, {}, {}, *[np.arange(1)] * 3, task="regression")
    assert ev.best() == "b" and ev.best(["d", "a"]) == "d" and ev.best(["c", "b"]) == "c"


def test_several_targets_from_a_layer_with_names_a_task_and_a_linear_grid(planted):
    planted.obsm["Y"] = np.c_[planted.obs["y"], planted.X[:, 3], planted.X[:, 4]]
    planted.layers["counts"] = planted.X.copy()
    planted.X = np.zeros_like(planted.X)
    ev = evaluate_settings(
        planted, "Y", {"reference": {}}, layer="counts", n_targets=2, output_names=["q", "r"],
        baselines=("linear",), linear_grid=(5.0,), **COMMON,
    )  # fmt: skip
    assert ev.output_names == ["q", "r"] and ev.fits["reference"][0].output_names == ["q", "r"]
    assert ev.baselines["linear"].alpha == 5.0
    Y, X, test = planted.obsm["Y"][:, :2], planted.layers["counts"], ev.test_idx
    pred = {"reference": ev.fits["reference"][0].predict(X), "linear": ev.baselines["linear"].predict(X)}
    for name, p in pred.items():
        assert ev.table.loc[name, "test R²"] == pytest.approx(r2_score(Y[test], p[test]), rel=1e-5)
        assert ev.table.loc[name, "test MAE"] == pytest.approx(mean_absolute_error(Y[test], p[test]), rel=1e-5)
    # integer codes as labels when the task says so; settings objects are used as they are
    planted.obs["code"] = np.repeat([0, 1, 2], 80)
    given = TrainSettings(task="classification", **COMMON)
    ev = evaluate_settings(planted, "code", {"given": given}, task="classification", layer="counts", baselines=())
    assert ev.settings["given"] is given and ev.fits["given"][0].classes == ["0", "1", "2"]
    message = "A setting trains task 'regression', the target is a classification target."
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        evaluate_settings(planted, "label", {"r": TrainSettings(task="regression")}, baselines=())
    ev = evaluate_settings(planted, "label", {"reference": {}}, baselines=("linear",), linear_grid=(0.5,), **COMMON)
    assert ev.baselines["linear"].C == 0.5 and set(ev.baselines) == {"linear"}


def test_macro_f1_counts_a_class_the_test_cells_lack(planted):
    # "rare" lives only in batch a, and batch c is the test set: its F1 (0) still enters the macro mean
    planted.obs["kind"] = np.where(np.arange(240) < 30, "rare", planted.obs["label"].astype(str))
    ev = evaluate_settings(planted, "kind", {"reference": {}}, held_out=("batch", "c"), **COMMON)
    truth, test = planted.obs["kind"].to_numpy(), ev.test_idx
    for name in ["reference", "linear", "ReLU MLP"]:
        model = ev.fits[name][0] if name in ev.fits else ev.baselines[name]
        calls = np.asarray(model.predict_labels(planted.X) if name != "linear" else model.predict(planted.X))
        macro = f1_score(truth[test], calls[test], labels=["neg", "pos", "rare"], average="macro", zero_division=0)
        assert ev.table.loc[name, "test macro-F1"] == pytest.approx(macro)


def test_gap_without_early_stopping_is_the_last_epochs(planted):
    planted.obs["noise"] = np.random.default_rng(1).normal(size=240)  # nothing to learn: it overfits
    ev = evaluate_settings(planted, "noise", {"wide": {}}, baselines=(), **COMMON | dict(n_hidden=32, epochs=12))
    fit = ev.fits["wide"][0]
    last = fit.history.iloc[-1]
    assert fit.best_epoch < 12  # the best validation epoch is not the last, so the two rows differ
    assert ev.table.loc["wide", "gap (val − train loss)"] == last["val_loss"] - last["train_loss"]


@pytest.mark.parametrize(
    "penalties",
    [dict(l1_penalty=0.5, gene_penalty=0.1), dict(gene_set_penalty=0.1, gene_sets={"A": ["g0", "g1"], "B": ["g1"]})],
)
def test_relu_baseline_trains_with_the_references_settings_without_penalties(planted, penalties):
    ev = evaluate_settings(
        planted, "y", {"reference": penalties | {"lr": 0.02}}, baselines=("ReLU MLP",), relu_settings={"epochs": 3},
        **COMMON,
    )  # fmt: skip
    relu = ev.baselines["ReLU MLP"]
    assert len(relu.history) == 3 and relu.settings["lr"] == 0.02
    plain = {"l1_penalty": 0.0, "gene_penalty": 0.0, "gene_set_penalty": 0.0, "gene_sets": None}
    assert {k: relu.settings[k] for k in plain} == plain
