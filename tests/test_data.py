import inspect
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from anndata import AnnData
from scipy import sparse

import bilinear_core as bc
from bilinear_core import datasets
from bilinear_core.datasets import _sciplex2

OFFLINE = datasets.data_dir() / datasets.PANCREAS_OFFLINE
ALL_GENES = datasets.data_dir() / "pancreas_50cells_allgenes.h5ad"


def test_drop_ribosomal_and_normalise(toy_adata):
    out = bc.pp.preprocess(toy_adata, n_top_genes=10_000)
    assert not out.var_names.str.startswith(("Rpl", "Rps")).any()
    assert out.n_vars == 28  # n_top_genes larger than the gene count keeps every gene
    counts = toy_adata[:, out.var_names].layers["spliced"].toarray()
    totals = counts.sum(axis=1)
    # normalize_total to the median total, then log1p
    np.testing.assert_allclose(np.expm1(out.X.toarray()), counts * (np.median(totals) / totals)[:, None], rtol=1e-5)
    assert out.uns["preprocessing"]["n_ribosomal_dropped"] == 2
    kept = bc.pp.preprocess(toy_adata, drop_ribosomal=False)
    assert kept.n_vars == 30 and kept.uns["preprocessing"]["n_ribosomal_dropped"] == 0


def test_ribosomal_genes_are_ribosomal_proteins_only():
    ribosomal = [
        *("RPL5", "RPS27A", "RPLP0", "RPLP2", "RPSA", "RPL10A", "RPS4X", "RPS4Y1", "RPL36AL", "RPL22L1", "RPS27L"),
        *("Rpl13a", "Rps4x", "Rplp1", "Rpsa", "Rps3a1", "Rps27rt", "Rpl7l1"),  # mouse (MGI) spelling
        *("RPL21P28", "RPL13AP5", "RPSAP58", "Rpl10-ps3", "Rps18-ps3"),  # processed pseudogenes
    ]
    other = [
        *("RPS6KA1", "RPS6KB1", "RPS6KC1", "RPS6KL1", "Rps6ka1", "Rps6kb2", "RPS19BP1", "Rps19bp1"),
        *("MRPL13", "MRPS5", "Mrpl3", "RPL34-DT", "RPS6KA2-AS1", "rpl5", "RPL", "RPSX", "GAPDH"),
    ]
    mask = bc.pp.ribosomal_genes(ribosomal + other)
    assert mask.dtype == bool and mask.shape == (len(ribosomal) + len(other),)
    assert [g for g, m in zip(ribosomal, mask) if not m] == []
    assert [g for g, m in zip(other, mask[len(ribosomal) :]) if m] == []


def test_drop_genes_takes_a_mask(toy_adata):
    out = bc.pp.drop_genes(toy_adata, np.arange(30) < 3)
    assert list(out.var_names[:2]) == ["Gene3", "Gene4"] and out.n_vars == 27
    assert list(bc.pp.drop_genes(toy_adata).var_names) == [f"Gene{i}" for i in range(28)]
    with pytest.raises(ValueError, match=r"bool mask of shape \(30,\)"):
        bc.pp.drop_genes(toy_adata, [True, False])


def test_size_factor_key_replaces_totals(toy_adata):
    toy_adata.obs["size"] = np.linspace(100, 200, 60)
    out = bc.pp.preprocess(toy_adata, size_factor_key="size")
    counts = toy_adata[:, out.var_names].layers["spliced"].toarray()
    size = toy_adata.obs["size"].to_numpy()
    np.testing.assert_allclose(np.expm1(out.X.toarray()), counts * (np.median(size) / size)[:, None], rtol=1e-5)
    # "auto" (the default) takes the column a loader recorded, and each cell's own total without one
    toy_adata.uns["dataset"] = {"size_factor_key": "size"}
    np.testing.assert_array_equal(bc.pp.preprocess(toy_adata).X.toarray(), out.X.toarray())
    del toy_adata.uns["dataset"]
    own = bc.pp.preprocess(toy_adata)
    assert own.uns["preprocessing"]["size_factor_key"] is None and (own.X != out.X).nnz > 0


def test_hvg_subset(toy_adata):
    out = bc.pp.preprocess(toy_adata, n_top_genes=10)
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
    out = bc.pp.preprocess(adata, size_factor_key="initial_size_spliced")
    # the same 16 genes as the post's prefix rule (Rpl/Rps): 15 ribosomal proteins and the pseudogene Rps18-ps3
    assert out.uns["preprocessing"]["n_ribosomal_dropped"] == 16 and out.n_vars == 1984


@pytest.mark.skipif(not ALL_GENES.is_file(), reason="50-cell all-genes pancreas file not linked (run `make data`)")
@pytest.mark.filterwarnings("ignore:Element .* was written without encoding metadata")  # scVelo's old test file
def test_all_genes_keep_the_kinases():
    var_names = pd.Index(sc.read_h5ad(ALL_GENES, backed="r").var_names)
    mask = bc.pp.ribosomal_genes(var_names)
    prefix = var_names.str.startswith(("Rpl", "Rps"))
    assert mask.sum() == 102 and prefix.sum() == 113
    kinases = [*(f"Rps6ka{i}" for i in range(1, 7)), "Rps6kb1", "Rps6kb2", "Rps6kc1", "Rps6kl1"]
    assert sorted(var_names[prefix & ~mask]) == sorted([*kinases, "Rps19bp1"])
    assert not (mask & ~prefix).any()


# sci-Plex2: scPerturb's file, the authors' hash filters, pertpy's download (never over the network here)


def scperturb_hashed():
    """Six cells as scPerturb's sci-Plex2 file writes them, with its hash columns (the authors' pData).

    Cell 0 passes every filter; 1 fails the ratio; 2 the q-value; 3 the hash UMIs; 4 has no ratio (NaN) and too
    few hash UMIs; 5 has no hash call at all (``control``, NaN everywhere).
    """
    counts = sparse.csr_matrix(np.random.default_rng(0).poisson(3.0, (6, 20)).astype(np.float32))
    obs = pd.DataFrame(
        {
            "perturbation": ["SAHA", "Nutlin", "BMS", "Dex", "SAHA", "control"],
            "dose_value": ["100", "0.5", "0", "0.1", "1", None],
            "hash_umis": [31.0, 200.0, 50.0, 30.0, 12.0, np.nan],
            "top_to_second_best_ratio": [10.5, 10.0, 40.0, 25.0, np.nan, np.nan],
            "qval_demultiplexing": [0.009, 0.001, 0.01, 0.0, 0.5, np.nan],
            "ncounts": np.asarray(counts.sum(axis=1)).ravel(),
        },
        index=pd.Index([f"cell{i}" for i in range(6)], name="cell_barcode"),
    )
    return AnnData(X=counts, obs=obs, var=pd.DataFrame(index=[f"GENE{i}" for i in range(20)]))


def test_authors_hash_filters_by_default():
    out = datasets.harmonize_sciplex2(scperturb_hashed())
    assert list(out.obs_names) == ["cell0"]
    assert out.obs["treatment"].tolist() == ["SAHA"] and out.obs["dose"].tolist() == [100.0]
    harmonized = out.uns["harmonized"]
    assert harmonized["n_cells_in"] == 6 and harmonized["n_unassigned_dropped"] == 1
    # among the five assigned cells: each filter's failures, and the cells failing any of them
    assert harmonized["n_failing"] == {"top_to_second_best_ratio": 2, "qval_demultiplexing": 2, "hash_umis": 2}
    assert harmonized["n_filtered"] == 4
    assert harmonized["cell_filters"] == "top_to_second_best_ratio > 10, qval_demultiplexing < 0.01, hash_umis > 30"
    assert list(datasets.HASH_FILTERS) == ["top_to_second_best_ratio", "qval_demultiplexing", "hash_umis"]


def test_hash_filters_off_or_absent():
    off = datasets.harmonize_sciplex2(scperturb_hashed(), filter_cells=False)
    assert list(off.obs_names) == [f"cell{i}" for i in range(5)]
    assert off.uns["harmonized"]["n_filtered"] == 0 and off.uns["harmonized"]["n_failing"] == {}
    assert off.uns["harmonized"]["cell_filters"] == "off (filter_cells=False)"
    bare = scperturb_hashed()
    bare.obs = bare.obs.drop(columns=list(datasets.HASH_FILTERS))
    absent = datasets.harmonize_sciplex2(bare)
    assert absent.n_obs == 5 and absent.uns["harmonized"]["cell_filters"] == "none (no hash columns in the file)"


def test_hash_filters_refuse_partial_or_text_columns():
    partial = scperturb_hashed()
    del partial.obs["hash_umis"]
    with pytest.raises(ValueError, match=r"but not \['hash_umis'\].*filter_cells=False"):
        datasets.harmonize_sciplex2(partial)
    assert datasets.harmonize_sciplex2(partial, filter_cells=False).n_obs == 5
    text = scperturb_hashed()
    text.obs["hash_umis"] = ["many", "31", "50", "30", "12", None]
    with pytest.raises(ValueError, match=r"adata.obs\['hash_umis'\] holds non-numeric values"):
        datasets.harmonize_sciplex2(text)


def test_sciplex2_file_is_filtered_and_counted(tmp_path, monkeypatch):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    scperturb_hashed().write_h5ad(tmp_path / _sciplex2.SCIPLEX2)
    dataset = datasets.sciplex2(download=False).uns["dataset"]
    assert (dataset["n_cells_in_file"], dataset["n_unassigned_dropped"], dataset["n_hash_filtered"]) == (6, 1, 4)
    assert dataset["n_cells"] == 1 and dataset["downloaded"] is False
    assert datasets.sciplex2(download=False, filter_cells=False).n_obs == 5


@pytest.fixture
def offline(monkeypatch):
    """No network: the HEAD probe of pertpy's URL fails as it does without internet (DNS error)."""

    def no_network(request, timeout=None):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


@pytest.fixture
def pertpy_download(monkeypatch):
    """pertpy's downloader, replaced: records its calls and writes ``scperturb_hashed()`` where pertpy's would."""
    import pertpy.data._datasets as pertpy_datasets

    calls = []

    def fake_download(url, output_file_name, output_path, **kwargs):
        calls.append(url)
        Path(output_path).mkdir(parents=True, exist_ok=True)  # as pertpy's does
        scperturb_hashed().write_h5ad(Path(output_path) / output_file_name)
        return Path(output_path) / output_file_name

    monkeypatch.setattr(pertpy_datasets, "_download", fake_download)
    return calls


def test_download_url_is_pertpys():
    import pertpy as pt

    assert _sciplex2.SCIPLEX2_URL in inspect.getsource(pt.data.srivatsan_2020_sciplex2)


def test_offline_fails_fast_without_asking_pertpy(tmp_path, monkeypatch, offline, pertpy_download):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"cannot be reached; download it with `pertpy"):
        datasets.sciplex2()
    assert time.perf_counter() - start < 2 and pertpy_download == []
    monkeypatch.setattr(datasets, "simulated_sciplex2", lambda seed: f"simulation {seed}")
    assert datasets.sciplex2_or_simulated(seed=7) == "simulation 7"


def test_download_through_pertpy_lands_in_the_data_dir(tmp_path, monkeypatch, pertpy_download):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(_sciplex2, "_reachable", lambda url: True)
    before = sc.settings.datasetdir
    adata = datasets.sciplex2()
    assert pertpy_download == [_sciplex2.SCIPLEX2_URL]
    assert (tmp_path / "data" / _sciplex2.SCIPLEX2).is_file() and sc.settings.datasetdir.resolve() == before.resolve()
    assert adata.uns["dataset"]["downloaded"] is True and adata.n_obs == 1
    # the next call reads the stored file and asks pertpy nothing
    again = datasets.sciplex2()
    assert again.uns["dataset"]["downloaded"] is False and pertpy_download == [_sciplex2.SCIPLEX2_URL]


def test_failed_download_is_file_not_found(tmp_path, monkeypatch):
    import pertpy.data._datasets as pertpy_datasets

    def broken(*args, **kwargs):
        raise ConnectionError("connection reset by peer")

    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(_sciplex2, "_reachable", lambda url: True)
    monkeypatch.setattr(pertpy_datasets, "_download", broken)
    before = sc.settings.datasetdir
    with pytest.raises(FileNotFoundError, match=r"pertpy's download failed \(connection reset by peer\)"):
        datasets.sciplex2()
    assert sc.settings.datasetdir.resolve() == before.resolve() and not (tmp_path / _sciplex2.SCIPLEX2).exists()
