import dataclasses
import functools
import re
import time

import numpy as np
import pandas as pd
import pytest
import sklearn.model_selection
import torch

import bilinear_core as bc
from bilinear_core.train import MemorySource, TrainSettings


def _quadratic_problem(n=300, g=8, seed=0):
    """Targets from a planted rule y = x0·x1 − x2², plus the sign of it as a class label."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, g)).astype(np.float32)
    y = X[:, 0] * X[:, 1] - X[:, 2] ** 2
    return X, y


def test_regression_learns_planted_quadratic_rule():
    X, y = _quadratic_problem()
    result = bc.fit(X, y, task="regression", n_hidden=8, epochs=60, batch_size=32, lr=1e-2, loss="mse", progress=False)
    hist = result.history
    assert hist["train_loss"].iloc[-1] < 0.05 * hist["train_loss"].iloc[0]
    assert hist["val_mae"].iloc[-1] < 0.2 * hist["val_mae"].iloc[0]
    # the learnt interaction matrix recovers the planted one: Q[0,1] = Q[1,0] = 0.5, Q[2,2] = -1
    Q = bc.interpret.interaction_matrices(result.model)[0].numpy()
    assert Q[0, 1] == pytest.approx(0.5, abs=0.05)
    assert Q[2, 2] == pytest.approx(-1.0, abs=0.05)
    assert np.abs(Q[3:, 3:]).max() < 0.05


def test_classification_lowers_loss_and_reports():
    X, y = _quadratic_problem(n=400)
    labels = np.where(y > 0, "pos", "neg")
    result = bc.fit(X, labels, task="classification", n_hidden=8, epochs=30, batch_size=32, lr=1e-2, progress=False)
    assert result.classes == ["neg", "pos"]
    assert result.history["train_loss"].iloc[-1] < 0.5 * result.history["train_loss"].iloc[0]
    assert result.history["val_accuracy"].iloc[-1] > 0.85
    table, confusion = bc.train.classification_report(result, X, labels)
    np.testing.assert_allclose(confusion.sum(axis=1), 1.0)
    assert table["n_cells"].sum() == len(result.val_idx)
    # stratified 70/30 split: class proportions preserved
    frac_pos = (labels == "pos").mean()
    assert (labels[result.val_idx] == "pos").mean() == pytest.approx(frac_pos, abs=0.02)
    assert len(result.val_idx) == pytest.approx(0.3 * len(labels), abs=1)
    assert not set(result.train_idx) & set(result.val_idx)


@pytest.mark.parametrize(
    "extra",
    [
        dict(task="regression", weight_decay=0.1),
        dict(task="regression", weight_decay=0.1, decoupled_weight_decay=True),
        dict(task="classification", weight_decay=0.35),
    ],
    ids=["regression-l2", "regression-decoupled", "classification-l2"],
)
def test_same_seed_gives_byte_identical_weights_and_history(extra):
    """Reruns with one seed are bit for bit the same (the fused Adam kernel included), other seeds differ."""
    X, y = _quadratic_problem(n=120)
    if extra["task"] == "classification":
        y = np.where(y > 0, "pos", "neg")
    kwargs = dict(n_hidden=4, epochs=3, batch_size=16, progress=False, **extra)
    a, b = bc.fit(X, y, **kwargs), bc.fit(X, y, **kwargs)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert pa.detach().numpy().tobytes() == pb.detach().numpy().tobytes()
    assert a.history.to_numpy().tobytes() == b.history.to_numpy().tobytes()
    pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)
    c = bc.fit(X, y, **{**kwargs, "seed": 7})
    assert not torch.equal(a.model.left.weight, c.model.left.weight)


def test_categorical_order_is_kept(toy_adata):
    toy_adata.obs["clusters"] = pd.Categorical(toy_adata.obs["clusters"], categories=["B", "A"])
    result = bc.tl.train(toy_adata, "clusters", n_hidden=4, epochs=1, batch_size=16, progress=False)
    assert result.classes == ["B", "A"]
    assert result.predict(toy_adata.X).shape == (60, 2)


def test_settings_object_equals_keywords_and_is_recorded_key_for_key():
    """fit(settings=TrainSettings(...)) and fit(**fields) are the same fit; keywords override the object's fields."""
    X, y = _quadratic_problem(n=120)
    settings = TrainSettings(task="regression", n_hidden=4, epochs=2, batch_size=16, weight_decay=0.1, progress=False)
    a = bc.fit(X, y, settings=settings)
    b = bc.fit(X, y, **dataclasses.asdict(settings))
    c = bc.fit(X, y, settings=dataclasses.replace(settings, epochs=5), epochs=2)
    for other in (b, c):
        for pa, pb in zip(a.model.parameters(), other.model.parameters(), strict=True):
            assert torch.equal(pa, pb)
        pd.testing.assert_frame_equal(a.history, other.history, check_exact=True)
    # what tl.train writes to adata.uns and the chapters read: the same keys in the same order as before the refactor
    assert list(a.settings) == [
        "task", "n_hidden", "epochs", "batch_size", "lr", "weight_decay", "decoupled_weight_decay", "seed",
        "dropout", "bias", "mixed_precision", "patience", "l1_penalty", "gene_penalty", "gene_set_penalty",
        "gene_sets", "loss", "n_train", "n_val", "device",
    ]  # fmt: skip
    assert a.settings == b.settings == c.settings
    assert (a.settings["n_train"], a.settings["n_val"], a.settings["loss"]) == (84, 36, "huber")
    assert TrainSettings() == TrainSettings(n_hidden=128, lr=1e-4, epochs=100, batch_size=64)  # the post's


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(task="ranking"), "task must be one of"),
        (dict(task="regression", loss="hinge"), "loss must be one of"),
        (dict(loss="hinge"), "loss must be one of"),
        (dict(epochs=0), "epochs must be a positive integer, got 0"),
        (dict(epochs=2.5), "epochs must be a positive integer, got 2.5"),
        (dict(batch_size=-1), "batch_size must be a positive integer"),
        (dict(n_hidden=0), "n_hidden must be a positive integer"),
        (dict(val_fraction=1.0), r"val_fraction must be a number in \(0, 1\), got 1.0"),
        (dict(val_fraction=0), r"val_fraction must be a number in \(0, 1\)"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (dict(lr=0.0), r"lr must be a number in \(0, inf\)"),
        (dict(weight_decay=-0.1), r"weight_decay must be a number in \[0, inf\)"),
        (dict(seed=1.5), "seed must be an integer"),
        (dict(mixed_precision="bf16"), "mixed_precision must be True or False"),
        (dict(device="tpu"), "device must be one of"),
        (dict(device="cuda:x"), "device must be one of"),
    ],
)
def test_bad_settings_are_value_errors_naming_the_setting_before_any_training(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(**bad)
    with pytest.raises(ValueError, match=message):  # checked before the data (a string is no matrix)
        bc.fit("not a matrix", None, **bad)


def test_unknown_keyword_and_wrong_settings_type_are_type_errors():
    X, y = _quadratic_problem(n=40)
    with pytest.raises(TypeError, match=r"Unknown training setting\(s\) \['epoch'\]"):
        bc.fit(X, y, epoch=3)
    with pytest.raises(TypeError, match="settings must be a TrainSettings, got dict"):
        bc.fit(X, y, settings={"epochs": 3})


def test_memory_source_batches_are_a_seeded_permutation_of_the_training_cells():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    train_idx, val_idx = np.arange(3, 20), np.arange(3)
    targets = torch.arange(20)

    def epochs(seed):
        settings = TrainSettings(batch_size=5, seed=seed)
        source = MemorySource(X, targets, train_idx, val_idx, settings, torch.device("cpu"))
        return [[yb.tolist() for _, yb in source.train_batches()] for _ in range(2)]

    first, second = epochs(0)
    assert [len(b) for b in first] == [5, 5, 5, 2]
    assert sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(3, 20))
    assert first != second and epochs(0) == [first, second] and epochs(1)[0] != first


def test_regression_report_values():
    X, y = _quadratic_problem(n=100)
    result = bc.fit(X, y, task="regression", n_hidden=4, epochs=2, progress=False)
    report = bc.train.regression_report(result, X, y)
    pred = result.predict(X[result.val_idx])[:, 0]
    assert report["mae"].iloc[0] == pytest.approx(np.abs(pred - y[result.val_idx]).mean(), rel=1e-5)
    assert report["std"].iloc[0] == pytest.approx(y[result.val_idx].std(), rel=1e-5)


@pytest.mark.processes
def test_fit_many_in_two_processes_equals_sequential_fits():
    X, y = _quadratic_problem(n=200, g=6)
    common = dict(task="regression", n_hidden=8, epochs=4, batch_size=32, lr=1e-2, progress=False)
    runs = {
        "decay": {"weight_decay": 0.1},
        ("seed", 1): {"seed": 1},
        "relu": {"model_factory": bc.baselines.ReluMLP, "epochs": 2},
    }
    parallel = bc.fit_many(X, y, runs, n_jobs=2, **common)
    assert set(parallel) == set(runs)
    for key, run in runs.items():
        alone = bc.fit(X, y, **common | run)
        got = parallel[key]
        assert got.settings == alone.settings
        pd.testing.assert_frame_equal(got.history, alone.history, check_exact=True)
        for a, b in zip(got.model.parameters(), alone.model.parameters(), strict=True):
            assert torch.equal(a, b)
    assert len(parallel["relu"].history) == 2 and not hasattr(parallel["relu"].model, "left")


@pytest.mark.parametrize(
    ("runs", "n_jobs", "message"),
    [({}, 1, "runs must be a non-empty"), ({"a": {}}, 0, "n_jobs must be a positive integer")],
)
def test_fit_many_bad_requests_name_the_problem(runs, n_jobs, message):
    X, y = _quadratic_problem(n=60, g=4)
    with pytest.raises(ValueError, match=message):
        bc.fit_many(X, y, runs, n_jobs=n_jobs, task="regression", epochs=1, progress=False)


def test_refusals_name_the_problem_exactly():
    X, y = _quadratic_problem(n=60)
    fast = dict(task="regression", n_hidden=4, epochs=1, progress=False)
    result = bc.fit(X, y, **fast)
    cases = [
        (lambda: result.predict_labels(X), "predict_labels is only defined for classification models."),
        (lambda: bc.train.split_indices(10, 0.0), "val_fraction must lie in (0, 1), got 0.0."),
        (lambda: bc.fit(X, y[:50], **fast), "X has 60 cells but the targets have 50 entries."),
        (lambda: bc.fit(X, y, train_idx=np.arange(40), **fast), "Pass both train_idx and val_idx, or neither."),
        (
            lambda: bc.fit(X, y, seeds=[1, 2], checkpoint="x.pt", **fast),
            "Checkpoints save one fit; train the members one by one to checkpoint them.",
        ),
        (lambda: bc.fit(X, y, seeds="42", **fast), "seeds must be a non-empty list of integers, got ['42']."),
        (
            lambda: bc.fit(X, y, model_factory=bc.baselines.ReluMLP, gene_penalty=0.1, **fast),
            "The penalties act on the bilinear factors W, V: train them with model_factory=None.",
        ),
        (
            lambda: bc.train.ensemble([result, result, bc.fit(X, y, output_names=["z"], **fast)]),
            "Member 2 differs from member 0 in its task, outputs, genes or train/validation split; "
            "an ensemble combines fits of one task on one split.",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            call()


def test_names_timings_and_report_precision_of_a_fit():
    X, y = _quadratic_problem(n=120)
    start = time.perf_counter()
    result = bc.fit(X, y, task="regression", output_names=["rule"], n_hidden=4, epochs=2, progress=False)
    wall = time.perf_counter() - start
    assert result.output_names == ["rule"]
    # cells per second of training: at least the cells seen over the whole call's time
    assert result.timings["train_cells_per_s"] >= 2 * len(result.train_idx) / wall
    labels = np.where(y > 0, "pos", "neg")
    clf = bc.fit(X, labels, n_hidden=4, epochs=2, progress=False)
    table, _ = bc.train.classification_report(clf, X, labels)
    calls, truth = clf.predict_labels(X)[clf.val_idx], labels[clf.val_idx]
    for name in ["neg", "pos"]:
        predicted = calls == name
        assert table.loc[name, "precision"] == (truth[predicted] == name).sum() / max(predicted.sum(), 1)


def test_cells_per_second_count_every_training_cell_over_the_epochs_time(monkeypatch):
    X, y = _quadratic_problem(n=100)
    ticks = iter(np.arange(0.0, 1e6, 0.5))  # a clock that advances half a second per reading
    monkeypatch.setattr(bc.train.time, "perf_counter", lambda: float(next(ticks)))
    result = bc.fit(X, y, task="regression", n_hidden=4, epochs=3, batch_size=16, progress=False)
    assert result.timings["train_cells_per_s"] == 3 * len(result.train_idx) / (3 * 0.5)


def test_the_ensemble_path_keeps_split_names_and_record(tmp_path):
    X, y = _quadratic_problem(n=80)
    labels = np.where(y > 0, "pos", "neg")
    fast = dict(n_hidden=4, epochs=1, progress=False)
    train, val = np.arange(50), np.arange(50, 80)
    genes = [f"g{i}" for i in range(8)]
    both = bc.fit(X, labels, seeds=[1, 2], train_idx=train, val_idx=val, var_names=genes, output_names=["n", "p"],
                  **fast)  # fmt: skip
    assert np.array_equal(both.train_idx, train) and np.array_equal(both.val_idx, val)
    assert both.var_names == genes and both.output_names == ["n", "p"] and both.classes == ["neg", "pos"]
    assert both.task == "classification" and both.timings == {} and "epoch" in both.history
    assert all(m.var_names == genes for m in both.members)
    split = dict(train_idx=train, val_idx=val)
    a = bc.fit(X, y, task="regression", lr=0.01, seed=1, **split, **fast)
    b = bc.fit(X, y, task="regression", lr=0.02, seed=2, **split, **fast)
    a.preprocessing = b.preprocessing = {"target_sum": 1e4}
    merged = bc.train.ensemble([a, b])
    assert merged.settings["lr"] == 0.01 and merged.settings["seeds"] == [1, 2]  # the first member's settings
    assert merged.preprocessing == {"target_sum": 1e4} and merged.history["epoch"].tolist() == [1]
    other = bc.fit(X, y, task="regression", val_idx=np.arange(24), train_idx=np.arange(24, 80), **fast)
    moved = bc.fit(X, y, task="regression", val_idx=np.arange(1, 25), train_idx=np.arange(24, 80), **fast)
    with pytest.raises(ValueError, match="^Member 1 differs from member 0"):
        bc.train.ensemble([other, moved])  # same training cells, other validation cells
    with pytest.raises(TypeError, match="^ensemble needs a non-empty list of FitResult objects.$"):
        bc.train.ensemble([])
    relu = bc.fit(X, y, task="regression", model_factory=functools.partial(bc.baselines.ReluMLP), **fast)
    assert relu.settings["model"].startswith("functools.partial(<class 'bilinear_core.baselines.ReluMLP'>")
    assert bc.fit(X, y, task="regression", bias=True, **fast).model.left.bias is not None


def test_more_refusals_name_the_problem_exactly():
    X, y = _quadratic_problem(n=60)
    fast = dict(task="regression", n_hidden=4, epochs=1, progress=False)
    relu = bc.baselines.ReluMLP
    cases = [
        (lambda: bc.fit(X, y, var_names=["a"], **fast), "var_names has 1 entries for 8 genes (columns of X)"),
        (lambda: bc.fit(X, y, gene_set_penalty=0.1, gene_sets={"s": ["a"]}, **fast),
         "The gene-set penalty needs var_names (the genes of X's columns) to "),
        (lambda: bc.fit(X, y, seeds=[1, 2], model_factory=relu, **fast),
         "seeds= builds an exact ensemble of bilinear MLPs; it cannot train a model_factory."),
        (lambda: bc.fit(X[:5], y[:5], seeds=[1, 2], **fast), "Training needs at least"),
        (lambda: bc.fit(X, y, model_factory=relu, gene_set_penalty=0.1, gene_sets={"s": ["g0"]},
                        var_names=[f"g{i}" for i in range(8)], **fast),
         "The penalties act on the bilinear factors W, V: train them with model_factory=None."),
        (lambda: bc.train.fit_jobs(X, y, {}), "runs must be a non-empty {key: {keyword: value}} dict."),
        (lambda: bc.train.split_indices(10, 1.0), "val_fraction must lie in (0, 1), got 1.0."),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            call()
    train, val = bc.train.split_indices(100)  # 30 % validation, seed 42 by default
    expected = sklearn.model_selection.train_test_split(np.arange(100), test_size=0.3, random_state=42)
    assert np.array_equal(val, np.sort(expected[1])) and np.array_equal(train, np.sort(expected[0]))


def test_settings_records_and_names_by_hand():
    X, y = _quadratic_problem(n=60)
    labels = np.where(y > 0, "pos", "neg")
    fast = dict(n_hidden=4, epochs=1, progress=False)
    clf = bc.fit(X, labels, **fast)
    assert clf.settings["task"] == "classification" and clf.settings["loss"] == "cross_entropy"
    assert TrainSettings(task="classification", loss="cross_entropy").loss == "cross_entropy"
    settings = TrainSettings(task="regression")
    assert TrainSettings.resolve(settings) is settings and TrainSettings.resolve(settings, lr=0.5).lr == 0.5
    assert bc.BilinearMLP(3).n_out == 1
    modules = bc.eigendecompose(bc.BilinearMLP(3, 2))
    assert modules.var_names == ["0", "1", "2"] and modules.output_names == ["0"]
    assert bc.eigendecompose(clf, output_names=["n", "p"]).output_names == ["n", "p"]
    cases = [
        (lambda: bc.eigendecompose("model"), TypeError, "Pass a BilinearMLP or a fit result holding one, got str."),
        (lambda: bc.fit(X, labels[:, None].repeat(2, 1), **fast), ValueError,
         "Classification labels must be 1-d, got shape (60, 2)."),
        (lambda: bc.fit(X, y[:, None, None], task="regression", **fast), ValueError,
         "Regression targets must be 1-d or 2-d, got shape (60, 1, 1)."),
        (lambda: bc.fit(X, np.where(np.arange(60) == 3, np.nan, y), task="regression", **fast), ValueError,
         "The regression targets contains 1 NaN or infinite value(s)"),
        (lambda: bc.fit(X, y, task="regression", output_names=["a", "b"], **fast), ValueError,
         "output_names has 2 entries for 1 outputs."),
        (lambda: TrainSettings(gene_penalty=0.1, gene_set_penalty=0.1), ValueError,
         "gene_penalty and gene_set_penalty exclude each other; set one of them to 0."),
        (lambda: TrainSettings(gene_set_penalty=0.1), ValueError, "gene_set_penalty > 0 needs gene_sets"),
        (lambda: bc.fit(X, y, task="regression", checkpoint="run.ckpt", **fast), TypeError,
         "checkpoint must be a bilinear_core.checkpoint.Checkpoint, e.g. Checkpoint('run.ckpt', every=500); "
         "got 'run.ckpt'."),
        (lambda: bc.fit(X, y, task="regression", resume=True, **fast), TypeError,
         "checkpoint must be a bilinear_core.checkpoint.Checkpoint, e.g. Checkpoint('run.ckpt', every=500) "
         "(resume needs one); got None."),
    ]  # fmt: skip
    for call, error, message in cases:
        with pytest.raises(error, match="^" + re.escape(message)):
            call()
