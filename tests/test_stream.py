from functools import partial

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch
from anndata import AnnData, read_h5ad
from scipy import sparse

import bilinear_core as bc
from bilinear_core.stream import (
    H5adStream,
    Preprocessing,
    _batches,
    _Chunks,
    _dense_on,
    _read,
    fit_stream,
    streaming_preprocessing,
)
from bilinear_core.train import TrainSettings

SMALL = dict(n_hidden=4, batch_size=16, lr=1e-2, weight_decay=0.05, progress=False)


def _counts(n=200, g=12, seed=0):
    """Poisson counts whose two groups differ in genes 0–3, with labels and a 2-column regression target."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n)
    rates = np.where(group[:, None] == 1, np.r_[np.full(4, 4.0), np.ones(g - 4)], np.ones(g))
    counts = rng.poisson(rates).astype(np.float32)
    counts[:, -1] += 1  # every cell has counts
    labels = np.where(group == 1, "up", "down")
    target = np.c_[counts[:, 0] - counts[:, 1], counts[:, 2]].astype(np.float32)
    return counts, labels, target


def _write(tmp_path, counts, labels, target, name, genes=None):
    adata = AnnData(sparse.csr_matrix(counts))
    adata.var_names = genes if genes is not None else [f"G{i}" for i in range(counts.shape[1])]
    adata.obs_names = [f"{name}_{i}" for i in range(len(counts))]
    adata.obs["label"] = pd.Categorical(labels, categories=["down", "up"])
    adata.obsm["target"] = target
    path = tmp_path / f"{name}.h5ad"
    adata.write_h5ad(path)
    return path


def _assert_same_weights(a, b):
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb), name


def test_no_shuffle_equals_fit_on_the_same_batch_order(tmp_path):
    """Files written in the order fit's seeded permutation visits the training cells: bit-identical weights."""
    counts, labels, target = _counts()
    n_train = 150
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(42)).numpy()  # fit's epoch-1 order
    order = np.r_[perm, np.arange(n_train, len(counts))]
    files = [
        _write(tmp_path, counts[order[:90]], labels[order[:90]], target[order[:90]], "a"),
        _write(tmp_path, counts[order[90:]], labels[order[90:]], target[order[90:]], "b"),
    ]
    prep = streaming_preprocessing(files, progress=False)
    X = prep.bind(pd.Index([f"G{i}" for i in range(12)]))(sparse.csr_matrix(counts)).toarray()
    split = dict(train_idx=np.arange(n_train), val_idx=np.arange(n_train, len(counts)))
    reference = bc.fit(X, pd.Categorical(labels, categories=["down", "up"]), epochs=1, **split, **SMALL)
    streamed = fit_stream(
        files, "label", preprocessing=prep, epochs=1, shuffle=False, chunk_size=7, **split, **SMALL
    )  # chunks of 7 rows: batches span chunk and file boundaries
    _assert_same_weights(reference, streamed)
    assert streamed.history["train_loss"].iloc[0] == reference.history["train_loss"].iloc[0]
    assert streamed.history["val_loss"].iloc[0] == pytest.approx(reference.history["val_loss"].iloc[0], rel=1e-6)
    assert streamed.classes == reference.classes == ["down", "up"]


def test_one_buffer_reproduces_fit_over_epochs(tmp_path):
    """With a buffer that holds every cell, the seeded in-buffer shuffle is fit's randperm: same weights, 3 epochs."""
    counts, labels, target = _counts()
    files = [_write(tmp_path, counts[:120], labels[:120], target[:120], "a")]
    files.append(_write(tmp_path, counts[120:], labels[120:], target[120:], "b"))
    prep = streaming_preprocessing(files, progress=False)
    X = prep.bind(pd.Index([f"G{i}" for i in range(12)]))(sparse.csr_matrix(counts)).toarray()
    settings = TrainSettings(epochs=3, **SMALL)  # one settings object for both data sources
    reference = bc.fit(X, pd.Categorical(labels, categories=["down", "up"]), settings=settings)
    streamed = fit_stream(files, "label", settings=settings, preprocessing=prep, chunk_size=9, buffer_size=10_000)
    np.testing.assert_array_equal(streamed.val_idx, reference.val_idx)  # same stratified split
    _assert_same_weights(reference, streamed)
    np.testing.assert_array_equal(streamed.history["train_loss"], reference.history["train_loss"])
    np.testing.assert_allclose(streamed.history["val_loss"], reference.history["val_loss"], rtol=1e-6)


def test_bounded_buffer_visits_each_cell_once_in_a_seeded_order(tmp_path):
    counts, labels, target = _counts(n=100)
    with H5adStream(_write(tmp_path, counts, labels, target, "a")) as stream:
        table = stream.chunks(7)
        cells_in = [np.arange(a, b) for _, a, b in table]
        chunks = _Chunks(
            stream, Preprocessing(genes=list(stream.var_names), normalize=False).bind(stream.var_names), table
        )

        def epoch(seed, prefetch=2, **kwargs):
            order = np.random.default_rng(seed).permutation(len(table))
            gen = torch.Generator().manual_seed(seed)
            read = partial(_read, chunks, prefetch=prefetch, num_workers=0)
            return list(_batches(read, order, cells_in, 8, 20, True, gen, **kwargs))

        batches = epoch(0)
        ids = np.concatenate([cells for cells, _ in batches])
        np.testing.assert_array_equal(np.sort(ids), np.arange(100))  # every cell once
        assert not np.array_equal(ids, np.arange(100))  # shuffled
        assert [len(c) for c, _ in batches] == [8] * 12 + [4]  # full batches, one partial at the end
        np.testing.assert_array_equal(batches[3][1].toarray(), counts[batches[3][0]])  # rows travel with their ids
        np.testing.assert_array_equal(ids, np.concatenate([c for c, _ in epoch(0)]))  # seeded
        assert not np.array_equal(ids, np.concatenate([c for c, _ in epoch(1)]))
        np.testing.assert_array_equal(ids, np.concatenate([c for c, _ in epoch(0, prefetch=0)]))  # read in line
        gen = torch.Generator().manual_seed(0)
        early = _batches(
            partial(_read, chunks, prefetch=3, num_workers=0), range(len(table)), cells_in, 8, 20, True, gen
        )
        next(early)
        early.close()  # stopping early shuts the reader thread down
        # skipping batches (a resumed epoch) yields the rest, row for row, without reading the skipped ones alone
        for skip in (0, 1, 2, 5, 12, 13):
            rest = epoch(0, skip=skip)
            assert len(rest) == 13 - skip
            for (ca, Xa), (cb, Xb) in zip(rest, batches[skip:], strict=True):
                np.testing.assert_array_equal(ca, cb)
                np.testing.assert_array_equal(Xa.toarray(), Xb.toarray())
        assert len(epoch(0, steps=5)) == 5 and len(epoch(0, steps=5, skip=3)) == 2


def test_streaming_statistics_match_in_memory_preprocessing(tmp_path):
    rng = np.random.default_rng(3)
    counts = rng.negative_binomial(2, rng.uniform(0.05, 0.9, 40), size=(300, 40)).astype(np.float32)
    counts[:, 0] += 1
    genes = [f"G{i}" for i in range(37)] + ["RPS6KA1", "Rpl3", "Rps6"]
    path = _write(tmp_path, counts, np.repeat(["down", "up"], 150), counts[:, :2], "a", genes=genes)
    prep = streaming_preprocessing(path, n_top_genes=15, chunk_size=64, progress=False)
    memory = bc.pp.preprocess(read_h5ad(path), n_top_genes=15, layer=None)
    assert prep.genes == list(memory.var_names)  # same HVGs (scanpy seurat flavour), Rpl3/Rps6 dropped
    assert prep.counted_genes == genes[:38]  # the kinase RPS6KA1 is no ribosomal protein: kept and counted
    assert prep.target_sum == pytest.approx(np.median(counts[:, :38].sum(axis=1)), rel=1e-12)
    X = prep.bind(pd.Index(genes))(sparse.csr_matrix(counts)).toarray()
    np.testing.assert_allclose(X, memory.X.toarray(), rtol=1e-6, atol=1e-6)
    # the seurat statistics themselves, against scanpy on the normalised data
    full = bc.pp.normalize_log1p(read_h5ad(path)[:, :38].copy(), layer=None)
    hvg = sc.pp.highly_variable_genes(full, n_top_genes=15, flavor="seurat", inplace=False)
    np.testing.assert_allclose(prep.gene_stats["dispersions_norm"], hvg["dispersions_norm"], rtol=1e-4)


def test_regression_from_obsm_and_interpretation(tmp_path):
    counts, labels, target = _counts()
    path = _write(tmp_path, counts, labels, target, "a")
    result = fit_stream(
        read_h5ad(path, backed="r"), "target", task="regression", epochs=2, n_top_genes=8, chunk_size=50, **SMALL
    )
    assert result.output_names == ["0", "1"]
    assert len(result.settings["var_names"]) == 8
    modules = bc.eigendecompose(result.model, result.output_names, result.settings["var_names"])
    assert modules.eigenvectors.shape == (2, 8, 8)
    assert np.isfinite(result.history.to_numpy()).all()


def test_in_memory_anndata_streams_like_its_file_and_torch_densify(tmp_path):
    counts, labels, target = _counts(n=80)
    path = _write(tmp_path, counts, labels, target, "a")
    kwargs = dict(epochs=2, chunk_size=16, buffer_size=32, **SMALL)
    from_file, from_memory = fit_stream(path, "label", **kwargs), fit_stream(read_h5ad(path), "label", **kwargs)
    _assert_same_weights(from_file, from_memory)
    X = sparse.random(7, 9, density=0.3, format="csr", dtype=np.float32, random_state=0)
    np.testing.assert_array_equal(_dense_on(X, torch.device("cpu")).numpy(), X.toarray())  # the accelerator path


def test_shuffled_streaming_reruns_are_identical_and_record_their_reading(tmp_path):
    """Chunk order, bounded buffer and read-ahead thread: a rerun gives the same weights, history and settings."""
    counts, labels, target = _counts(n=120)
    path = _write(tmp_path, counts, labels, target, "a")
    kwargs = dict(epochs=3, chunk_size=8, buffer_size=24, prefetch=3, **SMALL)
    a, b = fit_stream(path, "label", **kwargs), fit_stream(path, "label", **kwargs)
    _assert_same_weights(a, b)
    pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)
    assert a.settings == b.settings
    c = fit_stream(path, "label", **{**kwargs, "seed": 7})
    assert not torch.equal(a.model.left.weight, c.model.left.weight)
    keys = list(a.settings)  # the reading after the training settings, before loss, split sizes and device
    assert keys[keys.index("streaming") :] == [
        "streaming", "shuffle", "chunk_size", "buffer_size", "prefetch", "num_workers", "world_size", "files",
        "var_names", "preprocessing", "loss", "n_train", "n_val", "device",
    ]  # fmt: skip
    assert a.settings["buffer_size"] == 24 and a.settings["files"] == [str(path)]
    assert a.var_names == a.settings["var_names"] == [f"G{i}" for i in range(12)]


def test_bad_input_errors(tmp_path):
    counts, labels, target = _counts(n=40)
    good = _write(tmp_path, counts, labels, target, "good")
    with pytest.raises(FileNotFoundError, match=r"missing\.h5ad"):
        fit_stream([good, tmp_path / "missing.h5ad"], "label", progress=False)
    genes = [f"G{i}" for i in range(12)]
    genes[5] = "Other"
    other = _write(tmp_path, counts, labels, target, "other", genes=genes)
    with pytest.raises(ValueError, match=r"other\.h5ad.*position 5: 'Other'.*'G5'"):
        fit_stream([good, other], "label", progress=False)
    fewer = _write(tmp_path, counts[:, :10], labels, target, "fewer")
    with pytest.raises(ValueError, match=r"fewer\.h5ad.*10 vs 12 genes"):
        H5adStream([good, fewer])
    with pytest.raises(KeyError, match=r"'cell_type' not in obs.*'label'"):
        fit_stream(good, "cell_type", progress=False)
    nan = counts.copy()
    nan[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"nan\.h5ad: rows .* 1 NaN"):
        fit_stream(_write(tmp_path, nan, labels, target, "nan"), "label", progress=False)
    with pytest.raises(ValueError, match="device must be one of"):
        fit_stream(good, "label", device="gpu", progress=False)
    for bad, message in [
        (dict(chunk_size=0), "chunk_size must be a positive integer, got 0"),
        (dict(buffer_size=1.5), "buffer_size must be a positive integer"),
        (dict(prefetch=-1), "prefetch must be an integer of at least 0"),
        (dict(preprocessing="zscore"), "preprocessing must be 'normalize_log1p', 'none' or a Preprocessing"),
        (dict(epochs=0), "epochs must be a positive integer"),
    ]:
        with pytest.raises(ValueError, match=message):  # before any file is opened
            fit_stream(tmp_path / "missing.h5ad", "label", progress=False, **bad)


def test_duplicate_genes_and_unused_n_top_genes_are_clear_errors(tmp_path):
    counts, labels, target = _counts(n=40, g=6)
    path = _write(tmp_path, counts, labels, target, "dup", genes=["A", "B", "C", "A", "D", "E"])
    with pytest.raises(ValueError, match=r"gene names are not unique \(e.g. \['A'\]\)"):
        fit_stream(path, "label", epochs=1, **SMALL)
    path = _write(tmp_path, counts, labels, target, "ok")
    with pytest.raises(ValueError, match="n_top_genes needs preprocessing='normalize_log1p'"):
        fit_stream(path, "label", preprocessing="none", n_top_genes=3, epochs=1, **SMALL)


def test_epoch_chunks_deal_only_chunks_with_training_cells():
    from bilinear_core.stream import _epoch_chunks

    counts = np.array([5, 0, 3, 0, 4, 2])
    for shuffle in (False, True):
        dealt = [_epoch_chunks(np.zeros((6, 3)), counts, shuffle, np.random.default_rng(0), r, 2) for r in range(2)]
        mine = np.concatenate([d[0] for d in dealt])
        assert sorted(mine) == [0, 2, 4, 5]  # every non-empty chunk once, no empty one
        assert dealt[0][1] == dealt[1][1] and sum(dealt[0][1]) == counts.sum()
        assert all(counts[d[0]].sum() == d[1][r] for r, d in enumerate(dealt))


@pytest.mark.processes
def test_reader_workers_give_the_same_batches_and_weights(tmp_path):
    """0 workers (a read-ahead thread), 1 or 2 DataLoader worker processes: identical batches, rows and weights."""
    counts, labels, target = _counts(n=150)
    files = [_write(tmp_path, counts[:70], labels[:70], target[:70], "a")]
    files.append(_write(tmp_path, counts[70:], labels[70:], target[70:], "b"))
    with H5adStream(files) as stream:
        table = stream.chunks(8)
        cells_in = [np.arange(a, b) + stream.offsets[i] for i, a, b in table]
        chunks = _Chunks(stream, streaming_preprocessing(stream, progress=False).bind(stream.var_names), table)

        def epoch(workers):
            order, gen = np.random.default_rng(3).permutation(len(table)), torch.Generator().manual_seed(3)
            read = partial(_read, chunks, prefetch=1, num_workers=workers)
            return list(_batches(read, order, cells_in, 8, 24, True, gen))

        batches = epoch(0)
        assert sorted(np.concatenate([c for c, _ in batches])) == list(range(150))
        for workers in (1, 2):
            for (ca, Xa), (cb, Xb) in zip(batches, epoch(workers), strict=True):
                np.testing.assert_array_equal(ca, cb)
                np.testing.assert_array_equal(Xa.toarray(), Xb.toarray())
    kwargs = dict(epochs=2, chunk_size=8, buffer_size=24, dropout=0.1, **SMALL)
    a, b, c = (fit_stream(files, "label", num_workers=w, **kwargs) for w in (0, 1, 2))
    _assert_same_weights(a, b)
    _assert_same_weights(a, c)
    pd.testing.assert_frame_equal(a.history, c.history, check_exact=True)
    # workers open the files themselves: a backed AnnData by its path, one in memory as it is
    d = fit_stream([read_h5ad(files[0], backed="r"), read_h5ad(files[1])], "label", num_workers=2, **kwargs)
    _assert_same_weights(a, d)


def test_streamed_regression_equals_fit_in_memory(tmp_path):
    """Regression on an obsm target: streaming with one buffer takes fit's batches, so the weights are fit's."""
    counts, labels, target = _counts()
    files = [_write(tmp_path, counts[:120], labels[:120], target[:120], "a")]
    files.append(_write(tmp_path, counts[120:], labels[120:], target[120:], "b"))
    prep = streaming_preprocessing(files, progress=False)
    X = prep.bind(pd.Index([f"G{i}" for i in range(12)]))(sparse.csr_matrix(counts)).toarray()
    settings = TrainSettings(task="regression", loss="l1", epochs=3, **SMALL)
    reference = bc.fit(X, target, settings=settings)
    streamed = fit_stream(files, "target", settings=settings, preprocessing=prep, chunk_size=9, buffer_size=10_000)
    np.testing.assert_array_equal(streamed.val_idx, reference.val_idx)
    _assert_same_weights(reference, streamed)
    np.testing.assert_array_equal(streamed.history["train_loss"], reference.history["train_loss"])
    np.testing.assert_allclose(streamed.history["val_mae"], reference.history["val_mae"], rtol=1e-6)
    assert streamed.preprocessing == {"log1p": True, "target_sum": prep.target_sum, "layer": None}
