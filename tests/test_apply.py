"""A trained model on new cells: gene alignment, input checks, predict, explain, save/load and the command line.

Oracles: the model's weights applied by hand in NumPy to a matrix aligned by hand, SciPy's softmax, dense
interaction matrices and their eigendecomposition (``numpy.linalg.eigh``).
"""

import subprocess
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse
from scipy.special import softmax

import bilinear_core as bc
from bilinear_core import FitResult
from bilinear_core.interpret import contributions, gene_shares, interaction_matrices
from bilinear_core.io import FORMAT

GENES = [f"g{i}" for i in range(20)]
CLASSES = ["A", "B", "C"]


def _result(task="classification", bias=False, n_out=3, seed=0) -> FitResult:
    """A fit result around a random bilinear model on GENES (no training needed to test applying it)."""
    torch.manual_seed(seed)
    model = bc.BilinearMLP(len(GENES), 6, n_out, bias=bias).eval()
    names = CLASSES if task == "classification" else [f"y{i}" for i in range(n_out)]
    history = pd.DataFrame({"epoch": [1], "val_loss": [0.0]})
    return FitResult(
        model, history, np.arange(5), np.arange(5, 8), task, names, names if task == "classification" else None,
        list(GENES), {"seed": seed}, preprocessing={"log1p": True, "target_sum": 1000.0},
    )  # fmt: skip


def _by_hand(model, X) -> np.ndarray:
    """``P ((W x) ⊙ (V x))`` in float64 NumPy: the oracle for the model's outputs."""
    W, V, P = (m.weight.detach().double().numpy() for m in (model.left, model.right, model.head))
    return ((X @ W.T) * (X @ V.T)) @ P.T


def _log_expression(n=40, seed=1) -> np.ndarray:
    """Log1p-normalised-looking values: non-integers in [0, 3], half of them zero."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.1, 3.0, (n, len(GENES))) * (rng.random((n, len(GENES))) < 0.5)).astype(np.float32)


def _query(X, genes) -> ad.AnnData:
    query = ad.AnnData(X.astype(np.float32))
    query.var_names = list(genes)
    query.obs_names = [f"c{i}" for i in range(len(X))]
    return query


def test_shuffled_missing_and_extra_genes_give_the_predictions_of_the_aligned_matrix():
    result, X = _result(), _log_expression()
    rng = np.random.default_rng(2)
    kept = rng.permutation(len(GENES))[:16]  # 4 genes missing, the rest shuffled
    extra = rng.uniform(0, 2, (len(X), 3)).astype(np.float32)
    query = _query(np.c_[X[:, kept], extra], [GENES[i] for i in kept] + ["x1", "x2", "x3"])
    with pytest.warns(UserWarning, match=r"4 of the model's 20 genes are missing .* carry \d+\.\d% of the model"):
        bc.tl.predict(query, result, progress=False)
    aligned = np.zeros_like(X)
    aligned[:, kept] = X[:, kept]  # by hand: the model's order, missing genes zero
    logits = _by_hand(result.model, aligned.astype(np.float64))
    probabilities = softmax(logits, axis=1)
    np.testing.assert_allclose(query.obsm["bilinear_probabilities"].to_numpy(), probabilities, rtol=1e-5, atol=1e-7)
    assert list(query.obsm["bilinear_probabilities"].columns) == CLASSES
    np.testing.assert_allclose(query.obs["bilinear_confidence"], probabilities.max(axis=1), rtol=1e-5)
    assert list(query.obs["bilinear_prediction"].astype(str)) == list(np.array(CLASSES)[logits.argmax(axis=1)])
    # the missing genes' share of the model's weight, against the dense interaction matrices
    Q = interaction_matrices(result.model).numpy()
    missing = sorted(set(range(len(GENES))) - set(kept))
    expected = (Q[:, missing, :] ** 2).sum() / (Q**2).sum()
    record = query.uns["bilinear"]["prediction"]
    assert record["n_genes_missing"] == 4 and record["n_genes_extra"] == 3
    np.testing.assert_allclose(record["missing_weight_share"], expected, rtol=1e-10)


def test_gene_shares_are_the_rows_of_the_dense_interaction_matrices():
    result = _result(n_out=3)
    Q = interaction_matrices(result.model).numpy()
    rows = (Q**2).sum(axis=(0, 2)) / (Q**2).sum()
    np.testing.assert_allclose(gene_shares(result), rows, rtol=1e-10)
    np.testing.assert_allclose(gene_shares(result, [3, 7]), rows[[3, 7]], rtol=1e-10)


def test_regression_predictions_in_obsm_and_all_genes_present_warns_nothing():
    result, X = _result("regression", n_out=2), _log_expression()
    query = _query(X, GENES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bc.tl.predict(query, result, progress=False)
    table = query.obsm["bilinear_prediction"]
    assert list(table.columns) == ["y0", "y1"]
    np.testing.assert_allclose(table.to_numpy(), _by_hand(result.model, X.astype(np.float64)), rtol=1e-5, atol=1e-7)


def test_too_few_genes_duplicates_and_unnamed_models_are_refused():
    result, X = _result(), _log_expression()
    few = _query(X[:, :9], GENES[:9])  # 9 of 20 genes: 45 % < 50 %
    with pytest.raises(ValueError, match=r"holds 9 of the model's 20 genes \(45%\), fewer than min_overlap = 50%"):
        bc.tl.predict(few, result, progress=False)
    with pytest.warns(UserWarning, match="11 of the model's 20 genes are missing"):
        bc.tl.predict(few, result, min_overlap=0.4, progress=False)  # allowed when asked for
    twice = _query(X[:, :2], ["g0", "g0"])
    with pytest.raises(ValueError, match="not unique"):
        bc.tl.predict(twice, result, progress=False)
    unnamed = _result()
    unnamed.var_names = None
    with pytest.raises(ValueError, match="no gene names"):
        bc.tl.predict(_query(X, GENES), unnamed, progress=False)
    with pytest.raises(ValueError, match="no cells"):
        bc.tl.predict(_query(X[:0], GENES), result, progress=False)


def test_raw_counts_and_scaled_values_are_refused_and_another_scale_warns():
    result = _result()
    rng = np.random.default_rng(0)
    counts = rng.poisson(5, (30, len(GENES))).astype(np.float32)
    with pytest.raises(ValueError, match=r"looks like raw counts .*target_sum=1000"):
        bc.tl.predict(_query(counts, GENES), result, progress=False)
    scaled = counts - counts.mean(axis=0)
    with pytest.raises(ValueError, match="negative values .* looks scaled"):
        bc.tl.predict(_query(scaled, GENES), result, progress=False)
    big = np.log1p(counts * 20)  # each cell sums to ~2,000 counts: twice the reference's target of 1,000
    with pytest.warns(UserWarning, match="more than the reference's normalisation target of 1,000"):
        bc.tl.predict(_query(big, GENES), result, progress=False)
    bc.tl.predict(_query(counts, GENES), result, check_input=False, progress=False)  # on request


def test_a_backed_query_read_in_chunks_equals_the_query_in_memory(tmp_path):
    result, X = _result(), _log_expression(n=45)
    query = _query(X, GENES)
    query.X = sparse.csr_matrix(query.X)
    query.write_h5ad(tmp_path / "q.h5ad")
    bc.tl.predict(query, result, progress=False)
    backed = ad.read_h5ad(tmp_path / "q.h5ad", backed="r")
    bc.tl.predict(backed, result, chunk_size=7, progress=False)  # 7 chunks, the last of 3 cells
    np.testing.assert_array_equal(backed.obsm["bilinear_probabilities"], query.obsm["bilinear_probabilities"])
    bc.tl.explain(backed, result, chunk_size=7, progress=False)
    bc.tl.explain(query, result, progress=False)
    np.testing.assert_allclose(backed.obsm["bilinear_contributions"], query.obsm["bilinear_contributions"])


def test_explain_splits_each_output_exactly_over_the_modules():
    result, X = _result(), _log_expression(n=25)
    query = _query(X, GENES)
    bc.tl.explain(query, result, n_modules=2, progress=False)
    table = query.obsm["bilinear_contributions"]
    assert list(table.columns) == ["module 0", "module 1", "module -2", "module -1", "rest"]
    logits = _by_hand(result.model, X.astype(np.float64))
    explained = np.array([CLASSES.index(c) for c in query.obs["bilinear_explained"]])
    np.testing.assert_array_equal(explained, logits.argmax(axis=1))  # the predicted class
    np.testing.assert_allclose(table.sum(axis=1), logits[np.arange(len(X)), explained], rtol=1e-9, atol=1e-12)
    # each term against NumPy's eigendecomposition of the dense Q_a
    Q = interaction_matrices(result.model).numpy()
    for cell, a in enumerate(explained):
        values, vectors = np.linalg.eigh(Q[a])  # ascending
        terms = values * (X[cell].astype(np.float64) @ vectors) ** 2
        expected = [terms[-1], terms[-2], terms[1], terms[0]]
        np.testing.assert_allclose(table.iloc[cell, :4], expected, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(table.iloc[cell, 4], terms[2:-2].sum(), rtol=1e-6, atol=1e-10)


def test_explain_another_output_per_cell_and_its_errors():
    result, X = _result(), _log_expression(n=12)
    query = _query(X, GENES)
    query.obs["truth"] = np.resize(CLASSES, 12)
    bc.tl.explain(query, result, output="truth", key_added="true", progress=False)
    assert list(query.obs["true_explained"].astype(str)) == list(query.obs["truth"])
    logits = _by_hand(result.model, X.astype(np.float64))
    chosen = logits[np.arange(12), [CLASSES.index(c) for c in query.obs["truth"]]]
    np.testing.assert_allclose(query.obsm["true_contributions"].sum(axis=1), chosen, rtol=1e-9, atol=1e-12)
    bc.tl.explain(query, result, output="B", key_added="b", progress=False)
    np.testing.assert_allclose(query.obsm["b_contributions"].sum(axis=1), logits[:, 1], rtol=1e-9, atol=1e-12)
    with pytest.raises(KeyError, match="neither one of the model's outputs"):
        bc.tl.explain(query, result, output="nothing", progress=False)
    query.obs["bad"] = "D"
    with pytest.raises(ValueError, match=r"Unknown output\(s\) \['D'\]"):
        bc.tl.explain(query, result, output="bad", progress=False)
    with pytest.raises(ValueError, match="bias=False"):
        bc.tl.explain(query, _result(bias=True), progress=False)
    with pytest.raises(ValueError, match="name the one to explain"):
        bc.tl.explain(query, _result("regression", n_out=2), progress=False)
    with pytest.raises(ValueError, match="one output per cell"):
        contributions(result, X, ["A"])


def test_contributions_figure_and_its_errors():
    result, X = _result(), _log_expression(n=30)
    query = _query(X, GENES)
    with pytest.raises(KeyError, match="run bilinear_core.tl.explain first"):
        bc.pl.contributions(query, "group")
    bc.tl.explain(query, result, progress=False)
    query.obs["group"] = np.resize(["u", "v"], 30)
    fig = bc.pl.contributions(query, "group", title="t")
    bars = fig.axes[0].patches
    assert len(bars) == 2 * 8  # 2 groups x (6 modules, rest, output)
    u = query.obsm["bilinear_contributions"][query.obs["group"].to_numpy() == "u"]
    np.testing.assert_allclose([b.get_height() for b in bars[:8]], [*u.mean(), u.sum(axis=1).mean()], rtol=1e-6)
    with pytest.raises(ValueError, match=r"unknown: \['w'\]"):
        bc.pl.contributions(query, "group", groups=["u", "w"])
    bc.tl.explain(query, result, output="C", key_added="c", progress=False)
    two = bc.pl.contributions(query, "group", key=["bilinear", "c"], title=["calls", "C"])
    assert [ax.get_title() for ax in two.axes] == ["calls", "C"]
    c = query.obsm["c_contributions"][query.obs["group"].to_numpy() == "v"]
    heights = [b.get_height() for b in two.axes[1].patches[8:]]
    np.testing.assert_allclose(heights, [*c.mean(), c.sum(axis=1).mean()], rtol=1e-6)
    with pytest.raises(ValueError, match="one title per key"):
        bc.pl.contributions(query, "group", key=["bilinear", "c"], title=["one"])


def test_save_and_load_predict_bit_identically_and_keep_what_was_recorded(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 20)).astype(np.float32), np.resize(CLASSES, 60)
    result = bc.fit(X, y, var_names=GENES, n_hidden=4, epochs=2, batch_size=16, progress=False)
    result.preprocessing = {"log1p": True, "target_sum": 812.5, "layer": "spliced"}
    loaded = bc.load(bc.save(result, tmp_path / "m.pt"))
    np.testing.assert_array_equal(loaded.predict(X), result.predict(X))
    for a, b in zip(loaded.model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded.var_names == GENES and loaded.classes == CLASSES and loaded.preprocessing == result.preprocessing
    assert loaded.settings == result.settings
    pd.testing.assert_frame_equal(loaded.history, result.history)
    with pytest.raises(TypeError, match="takes the FitResult"):
        bc.save(result.model, tmp_path / "x.pt")


def test_files_not_from_this_package_or_from_another_version_are_named_errors(tmp_path):
    result = _result()
    path = bc.save(result, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT and payload["bilinear_core_version"] == bc.__version__
    payload["format"], payload["bilinear_core_version"] = "bilinear_core.FitResult/1", "0.0.9"
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"format version 1 \(written by bilinear_core 0\.0\.9\); .* reads format ver"):
        bc.load(tmp_path / "old.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt is not a saved model of bilinear_core: it holds a dict without"):
        bc.load(tmp_path / "other.pt")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match=r"notes\.txt cannot be read as a saved model"):
        bc.load(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="No saved model at"):
        bc.load(tmp_path / "missing.pt")


def test_train_records_the_preprocessing_that_predict_checks_against():
    rng = np.random.default_rng(0)
    labels = np.repeat(CLASSES, 20)
    counts = rng.poisson(np.where(labels[:, None] == "B", 15.0, 3.0) * np.ones((1, len(GENES))))
    adata = ad.AnnData(counts.astype(np.float32))
    adata.var_names, adata.obs["cell_type"] = GENES, labels
    adata = bc.pp.preprocess(adata, n_top_genes=20, layer=None, min_cells=10)
    totals = counts.sum(axis=1)
    assert adata.uns["preprocessing"]["target_sum"] == np.median(totals)  # the median total, as recorded
    result = bc.tl.train(adata, "cell_type", n_hidden=4, epochs=2, batch_size=16, progress=False)
    assert result.preprocessing["target_sum"] == np.median(totals) and result.preprocessing["log1p"]
    query = ad.AnnData(counts[:10].astype(np.float32))
    query.var_names = GENES
    with pytest.raises(ValueError, match=f"target_sum={np.median(totals):g}"):
        bc.tl.predict(query, result, progress=False)
    bc.pp.normalize_log1p(query, layer=None, target_sum=result.preprocessing["target_sum"])
    expected = np.log1p(counts[:10] / totals[:10, None] * np.median(totals))  # normalised by hand
    np.testing.assert_allclose(query.X.toarray(), expected, rtol=1e-5)
    bc.tl.predict(query, result, progress=False)
    np.testing.assert_array_equal(query.obs["bilinear_prediction"], result.predict_labels(adata.X[:10].toarray()))


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "bilinear_core", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.processes
def test_command_line_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(CLASSES, 30)
    rate = np.full((90, len(GENES)), 4.0)
    rate[labels == "B", :4] *= 6
    reference = ad.AnnData(rng.poisson(rate).astype(np.float32))
    reference.var_names, reference.obs["cell_type"] = GENES, labels
    reference.layers["counts"] = reference.X.copy()
    reference.write_h5ad(tmp_path / "ref.h5ad")
    query = reference[::3, ::-1].copy()  # other cells' order, genes reversed
    query.write_h5ad(tmp_path / "query.h5ad")

    train = _cli(
        "train", "ref.h5ad", "--target", "cell_type", "--model", "m.pt", "--out", "ref_out.h5ad", "--epochs", "3",
        "--hidden", "4", "--batch-size", "16", "--n-top-genes", "20", cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    assert "saved the model (20 genes" in train.stdout
    predict = _cli(
        "predict", "m.pt", "query.h5ad", "--out", "q_out.h5ad", "--normalise", "counts", "--explain", cwd=tmp_path
    )
    assert predict.returncode == 0, predict.stderr
    modules = _cli("modules", "m.pt", "--out-dir", "mods", "--data", "ref_out.h5ad", "--n-modules", "2", cwd=tmp_path)
    assert modules.returncode == 0, modules.stderr

    # the same by hand: the model loaded, the query normalised with the reference's target and aligned
    result = bc.load(tmp_path / "m.pt")
    annotated = ad.read_h5ad(tmp_path / "q_out.h5ad")
    trained = ad.read_h5ad(tmp_path / "ref_out.h5ad")
    counts = query.layers["counts"][:, [list(query.var_names).index(g) for g in result.var_names]]
    totals = query.layers["counts"].sum(axis=1)  # every gene counts (none is ribosomal)
    X = np.log1p(counts / totals[:, None] * result.preprocessing["target_sum"])
    expected = np.array(result.classes)[_by_hand(result.model, X).argmax(axis=1)]
    assert list(annotated.obs["bilinear_prediction"].astype(str)) == list(expected)
    assert trained.uns["bilinear"]["settings"]["epochs"] == 3
    np.testing.assert_allclose(
        annotated.obsm["bilinear_contributions"].sum(axis=1), _by_hand(result.model, X).max(axis=1), rtol=1e-4
    )
    table = pd.read_csv(tmp_path / "mods" / "modules.csv")
    assert list(table["module"]) == [0, 1, -1, -2] * 3 and set(table["output"]) == set(CLASSES)
    top = pd.read_csv(tmp_path / "mods" / "top_genes.csv")
    assert set(top["module"]) == {0, 1, -1, -2} and set(top["gene"]) <= set(GENES)

    missing = _cli("train", "ref.h5ad", "--target", "nothing", "--model", "x.pt", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith(
        "bilinear-core train: error: Target 'nothing' is neither"
    )
    assert "Traceback" not in missing.stderr
    foreign = _cli("predict", "ref.h5ad", "query.h5ad", "--out", "x.h5ad", cwd=tmp_path)
    assert foreign.returncode == 2 and "cannot be read as a saved model" in foreign.stderr
    usage = _cli("--help", cwd=tmp_path)
    assert usage.returncode == 0 and "bilinear-core predict model.pt query.h5ad" in usage.stdout


def test_predict_records_how_genes_matched_and_keeps_every_class_as_a_category():
    result, X = _result(), _log_expression(n=3)
    query = _query(X[:, ::-1], GENES[::-1])  # every gene, in reverse order
    query.layers["norm"], query.X = query.X.copy(), np.full(query.shape, 9.0, dtype=np.float32)  # X is not read
    query.uns["bilinear"] = {"kept": 1}
    bc.tl.predict(query, result, layer="norm", progress=False)
    assert query.uns["bilinear"] == {
        "kept": 1,
        "prediction": {
            "task": "classification", "layer": "norm", "n_genes_model": 20, "n_genes_missing": 0,
            "missing_weight_share": 0.0, "n_genes_extra": 0,
        },
    }  # fmt: skip
    logits = _by_hand(result.model, X.astype(np.float64))
    np.testing.assert_allclose(query.obsm["bilinear_probabilities"], softmax(logits, axis=1), rtol=1e-5)
    assert query.obs["bilinear_prediction"].cat.categories.tolist() == CLASSES  # also classes no cell got
    assert query.obs["bilinear_prediction"].tolist() == [CLASSES[i] for i in logits.argmax(axis=1)]
    with pytest.raises(ValueError, match="^The query has no cells.$"):
        bc.tl.predict(_query(X[:0], GENES), result, progress=False)


def test_softmax_of_logits_far_apart_between_cells():
    logits = np.array([[1000.0, 999.0], [0.0, 1.0], [-1000.0, -1001.0]])
    np.testing.assert_allclose(bc.tl._softmax(logits), softmax(logits, axis=1), rtol=1e-12)


def test_explain_reads_the_layer_and_checks_the_input_like_predict():
    result, X = _result(), _log_expression(n=6)
    query = _query(X, GENES)
    bc.tl.explain(query, result, progress=False)
    layered = _query(np.full(X.shape, 9.0), GENES)
    layered.layers["norm"] = X
    bc.tl.explain(layered, result, layer="norm", progress=False)
    pd.testing.assert_frame_equal(layered.obsm["bilinear_contributions"], query.obsm["bilinear_contributions"])
    assert layered.obs["bilinear_explained"].cat.categories.tolist() == CLASSES
    single = query[:1].copy()  # one cell explained on one class: every class stays a category
    bc.tl.explain(single, result, output="B", progress=False)
    assert single.obs["bilinear_explained"].cat.categories.tolist() == CLASSES
    counts = np.random.default_rng(0).poisson(5, (30, len(GENES))).astype(np.float32)
    with pytest.raises(ValueError, match="looks like raw counts"):
        bc.tl.explain(_query(counts, GENES), result, progress=False)
    one = _result("regression", n_out=1)
    bc.tl.explain(query, one, progress=False)  # a single output needs no name
    assert (query.obs["bilinear_explained"] == "y0").all()
