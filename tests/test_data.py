import numpy as np
import pytest
from scipy import sparse

import bilinear_core as bc
from bilinear_core import datasets

OFFLINE = datasets.data_dir() / datasets.PANCREAS_OFFLINE


def test_drop_ribosomal_and_normalise(toy_adata):
    out = bc.preprocess.preprocess(toy_adata, n_top_genes=10_000)
    assert not out.var_names.str.startswith(("Rpl", "Rps")).any()
    assert out.n_vars == 28  # n_top_genes larger than the gene count keeps every gene
    counts = toy_adata[:, out.var_names].layers["spliced"].toarray()
    totals = counts.sum(axis=1)
    # normalize_total to the median total, then log1p
    np.testing.assert_allclose(np.expm1(out.X.toarray()), counts * (np.median(totals) / totals)[:, None], rtol=1e-5)
    assert out.uns["preprocessing"]["n_ribosomal_dropped"] == 2


def test_size_factor_key_replaces_totals(toy_adata):
    toy_adata.obs["size"] = np.linspace(100, 200, 60)
    out = bc.preprocess.preprocess(toy_adata, size_factor_key="size")
    counts = toy_adata[:, out.var_names].layers["spliced"].toarray()
    size = toy_adata.obs["size"].to_numpy()
    np.testing.assert_allclose(np.expm1(out.X.toarray()), counts * (np.median(size) / size)[:, None], rtol=1e-5)


def test_hvg_subset(toy_adata):
    out = bc.preprocess.preprocess(toy_adata, n_top_genes=10)
    assert out.n_vars == 10 and sparse.issparse(out.X)


def test_missing_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"scvelo.datasets.pancreas\(.*pancreas_3696cells_2000genes.h5ad"):
        datasets.pancreas(download=False)
    with pytest.raises(FileNotFoundError, match="srivatsan_2020_sciplex2"):
        datasets.sciplex2(download=False)


def test_corrupted_file_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    (tmp_path / datasets.PANCREAS_OFFLINE).write_bytes(b"not an hdf5 file")
    with pytest.raises(OSError, match="looks corrupted or incomplete: delete it and download"):
        datasets.pancreas(download=False)


def test_prefers_full_file_and_checks_it(tmp_path, monkeypatch, toy_adata):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    (tmp_path / "Pancreas").mkdir()
    toy_adata.write_h5ad(tmp_path / "Pancreas" / datasets.PANCREAS_FULL)
    adata = datasets.pancreas(download=False)
    assert adata.uns["dataset"]["file"] == datasets.PANCREAS_FULL
    assert adata.uns["dataset"]["size_factor_key"] is None
    del toy_adata.obs["clusters"]
    toy_adata.write_h5ad(tmp_path / "Pancreas" / datasets.PANCREAS_FULL)
    with pytest.raises(ValueError, match=r"has no obs\['clusters'\]"):
        datasets.pancreas(download=False)


@pytest.mark.skipif(not OFFLINE.is_file(), reason="offline pancreas copy not linked (run `make data`)")
def test_offline_pancreas_copy():
    adata = datasets.pancreas(download=False)
    assert adata.shape == (3696, 2000)
    assert adata.uns["dataset"]["size_factor_key"] == "initial_size_spliced"
    assert adata.obs["clusters"].value_counts()["Delta"] == 70
    out = bc.preprocess.preprocess(adata, size_factor_key="initial_size_spliced")
    assert out.n_vars == min(10_000, 2000 - adata.var_names.str.startswith(("Rpl", "Rps")).sum())
