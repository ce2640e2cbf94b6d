"""sci-Plex2 loader and drug names (a fixture with scPerturb's columns), targets, baselines, recovery metrics."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import sparse

from bilinear_core import datasets, enrichment, perturbation, pl, report
from bilinear_core.datasets._sciplex2 import SCIPLEX2, drug_name
from bilinear_core.interpret import Modules

BOOK = Path(__file__).resolve().parents[1] / "notebooks"  # the book's helpers (bookkit) live beside the chapters

SHARED_DESIGN = Path(__file__).resolve().parents[2] / "shared" / "data" / "sciplex2_design.csv"


def scperturb_like(names=("SAHA", "Nutlin", "BMS", "Dex", "control"), doses=("100", "0.5", "0", "0.1", None)):
    """Cells as scPerturb's sci-Plex2 file writes them: its obs columns and value spellings.

    scPerturb splits the hash sample sheet's oligo name (e.g. ``SAHA_100_AE01``) into ``perturbation``,
    ``dose_value`` (a string) and ``well``, labels cells without a hash call ``control`` (no dose, no well)
    and renames ``n.umi`` to ``ncounts``.
    """
    n = len(names)
    rng = np.random.default_rng(0)
    counts = sparse.csr_matrix(rng.poisson(3.0, (n, 20)).astype(np.float32))
    obs = pd.DataFrame(
        {
            "perturbation": list(names),
            "dose_value": list(doses),
            "well": [f"A{i:03d}" if d is not None else None for i, d in enumerate(doses)],
            "ncounts": np.asarray(counts.sum(axis=1)).ravel(),
            "cell_line": "A549",
            "perturbation_type": "drug",
            "organism": "human",
        },
        index=pd.Index([f"cell{i}" for i in range(n)], name="cell_barcode"),
    )
    var = pd.DataFrame(index=pd.Index([f"GENE{i}" for i in range(20)], name="gene_symbol"))
    return AnnData(X=counts, obs=obs, var=var)


def test_loader_reads_and_harmonizes_scperturb_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    scperturb_like().write_h5ad(tmp_path / SCIPLEX2)
    adata = datasets.sciplex2(download=False)
    assert adata.n_obs == 4 and adata.uns["dataset"]["n_unassigned_dropped"] == 1
    assert adata.uns["dataset"]["simulated"] is False and adata.uns["dataset"]["n_cells_in_file"] == 5
    assert list(adata.obs["drug"].astype(str)) == ["SAHA", "Nutlin", "BMS", "Dex"]
    np.testing.assert_array_equal(adata.obs["dose"], [100.0, 0.5, 0.0, 0.1])
    assert list(adata.obs["treatment"].astype(str)) == ["SAHA", "Nutlin", "vehicle", "Dex"]
    assert list(adata.obs["drug"].cat.categories) == list(datasets.DRUGS)
    targets = perturbation.dose_targets(adata, ["Dex", "Nutlin", "SAHA"], drug_key="treatment", control="vehicle")
    expected = np.zeros((4, 3))  # BMS appears only as vehicle here: its cell is the zero vector
    expected[0, 2], expected[1, 1], expected[3, 0] = np.log1p(100), np.log1p(0.5), np.log1p(0.1)
    np.testing.assert_allclose(targets.to_numpy(), expected)


def test_drug_name_mapping():
    spellings = {
        "SAHA": "SAHA",
        "vorinostat": "SAHA",
        "Nutlin-3a": "Nutlin",
        "dexamethasone": "Dex",
        "BMS-345541": "BMS",
    }
    for spelling, name in spellings.items():
        assert drug_name(spelling) == name
    assert set(datasets.DRUG_NAMES.values()) == set(datasets.DRUGS)
    with pytest.raises(ValueError, match=r"Unknown drug 'Aspirin'.*DRUG_NAMES"):
        drug_name("Aspirin")


def test_harmonize_maps_spellings_and_refuses_bad_input():
    out = datasets.harmonize_sciplex2(scperturb_like(("Vorinostat", "nutlin-3a"), ("1", 0.5)))
    assert list(out.obs["drug"].astype(str)) == ["SAHA", "Nutlin"]
    with pytest.raises(ValueError, match=r"unknown drug name\(s\) \['Aspirin'\]"):
        datasets.harmonize_sciplex2(scperturb_like(("SAHA", "Aspirin"), ("1", "1")))
    with pytest.raises(ValueError, match="missing or non-numeric"):
        datasets.harmonize_sciplex2(scperturb_like(("SAHA", "Dex"), ("1", "high")))
    with pytest.raises(ValueError, match="negative dose"):
        datasets.harmonize_sciplex2(scperturb_like(("SAHA",), ("-1",)))
    with pytest.raises(KeyError, match="dose_value"):
        datasets.harmonize_sciplex2(scperturb_like().copy(), dose_key="dose_value ")


def test_fallback_to_simulation(tmp_path, monkeypatch):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(datasets, "simulated_sciplex2", lambda seed: f"simulated with seed {seed}")
    assert datasets.sciplex2_or_simulated(seed=3, download=False) == "simulated with seed 3"


def test_design_is_package_data():
    design = datasets.sciplex2_design()
    assert design.shape == (32, 7) and (design["n_wells"] == 6).all()
    assert design.groupby("drug")["dose"].apply(list).to_dict() == {
        d: [0.0, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0] for d in datasets.DRUGS
    }
    assert (design.loc[design["dose"] == 0, "viability_mean"] == 1.0).all()


@pytest.mark.skipif(not SHARED_DESIGN.is_file(), reason=f"the shared data folder's copy is missing: {SHARED_DESIGN}")
def test_shipped_design_equals_the_shared_data_folder_s_copy():
    pd.testing.assert_frame_equal(datasets.sciplex2_design(), pd.read_csv(SHARED_DESIGN))


def test_wilcoxon_vs_reference_sign():
    rng = np.random.default_rng(0)
    X = rng.normal(1.0, 0.3, (60, 5)).clip(0)
    X[:30, 0] += 2.0  # gene 0 up in group A
    X[:30, 1] = 0.0  # gene 1 down in group A
    obs = pd.DataFrame({"g": ["A"] * 30 + ["ref"] * 30}, index=[f"c{i}" for i in range(60)])
    adata = AnnData(X=X.astype(np.float32), obs=obs)
    z = perturbation.wilcoxon_vs_reference(adata, "g", "ref")
    assert list(z.columns) == ["A"] and list(z.index) == list(adata.var_names)
    assert z.loc["0", "A"] > 4 and z.loc["1", "A"] < -4 and abs(z.loc["2", "A"]) < 3
    with pytest.raises(ValueError, match="Reference 'vehicle' is not"):
        perturbation.wilcoxon_vs_reference(adata, "g", "vehicle")
    adata.obs.loc["c0", "g"] = np.nan
    with pytest.raises(ValueError, match="1 missing value"):
        perturbation.wilcoxon_vs_reference(adata, "g", "ref")


def rank_sum_z(rank_sum, n_group, n_reference):
    """The Wilcoxon rank-sum z-score without tie correction (scanpy's default)."""
    n = n_group + n_reference
    return (rank_sum - n_group * (n + 1) / 2) / np.sqrt(n_group * n_reference * (n + 1) / 12)


def test_wilcoxon_within_gives_each_drug_its_own_vehicle():
    """Dex's vehicle (ethanol) differs from the others' (DMSO): pooling vehicles turns a solvent gene into a hit."""
    solvent = [2.0, 2.2, 2.4, 2.1, 2.3, 2.5, 0.0, 0.1, 0.2, 0.05, 0.15, 0.25]  # high in every ethanol well
    response = [5.0, 5.1, 5.2, 1.0, 1.1, 1.2, 1.0, 1.1, 1.2, 1.05, 1.15, 1.25]  # up in Dex-treated cells only
    obs = pd.DataFrame(
        {
            "drug": ["Dex"] * 6 + ["SAHA"] * 6,
            "treatment": ["Dex"] * 3 + ["vehicle"] * 3 + ["SAHA"] * 3 + ["vehicle"] * 3,
        },
        index=[f"c{i}" for i in range(12)],
    )
    obs["treatment"] = pd.Categorical(obs["treatment"], categories=["vehicle", "Dex", "SAHA"])
    adata = AnnData(X=np.column_stack([solvent, response]).astype(np.float32), obs=obs)
    own = perturbation.wilcoxon_vs_reference(adata, "treatment", "vehicle", within="drug")
    pooled = perturbation.wilcoxon_vs_reference(adata, "treatment", "vehicle")
    assert list(own.columns) == list(pooled.columns) == ["Dex", "SAHA"]
    # solvent gene, Dex: ranks 1, 3, 5 among its own 6 cells, but 4, 6, 8 among Dex's cells and all 6 vehicle cells
    assert own.loc["0", "Dex"] == pytest.approx(rank_sum_z(9, 3, 3), rel=1e-5)
    assert pooled.loc["0", "Dex"] == pytest.approx(rank_sum_z(18, 3, 6), rel=1e-5)
    assert own.loc["0", "Dex"] < 0 < pooled.loc["0", "Dex"]
    # the drug's own response is found either way: Dex's three cells rank highest
    assert own.loc["1", "Dex"] == pytest.approx(rank_sum_z(15, 3, 3), rel=1e-5)
    assert pooled.loc["1", "Dex"] == pytest.approx(rank_sum_z(24, 3, 6), rel=1e-5)
    # SAHA's solvent-gene values interleave with its own vehicle's: ranks 1, 3, 5 again
    assert own.loc["0", "SAHA"] == pytest.approx(rank_sum_z(9, 3, 3), rel=1e-5)
    bad = adata.copy()
    bad.obs.loc["c0", "drug"] = "SAHA"  # a Dex-treated cell in SAHA's wells
    with pytest.raises(ValueError, match=r"Group\(s\) \['Dex'\] occur under several values"):
        perturbation.wilcoxon_vs_reference(bad, "treatment", "vehicle", within="drug")
    bad = adata.copy()
    bad.obs["drug"] = ["Dex"] * 3 + ["Nutlin"] * 3 + ["SAHA"] * 6  # Dex's vehicle wells relabelled
    with pytest.raises(ValueError, match="No 'vehicle' cells with adata.obs\\['drug'\\] == 'Dex'"):
        perturbation.wilcoxon_vs_reference(bad, "treatment", "vehicle", within="drug")
    with pytest.raises(KeyError, match="'plate' not found"):
        perturbation.wilcoxon_vs_reference(adata, "treatment", "vehicle", within="plate")


def recovery_case(tmp_path, monkeypatch):
    """Two simulated drugs with a known truth: A raises GA, GB; B lowers GE, GF; a library with their terms."""
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    (tmp_path / "genesets").mkdir()
    (tmp_path / "genesets" / "RecoveryTestLib.gmt").write_text("T\t\tGA\tGB\nU\t\tGC\tGD\tGE\nV\t\tGE\tGF\n")
    genes = ["GA", "GB", "GC", "GD", "GE", "GF", "GG", "GH"]
    dose = np.array([0, 0, 1, 10, 100] * 2, dtype=float)
    X = np.ones((10, 8), dtype=np.float32)
    X[:5, :2] += np.log1p(dose[:5, None])  # A's cells: GA, GB rise with dose
    X[5:, 4:6] += 5 - np.log1p(dose[5:, None])  # B's cells: GE, GF fall with dose
    X[:5, 7] += 10 - 3 * np.log1p(dose[:5])  # A's cells: GH falls, faster than GA, GB rise
    obs = pd.DataFrame({"drug": ["A"] * 5 + ["B"] * 5, "dose": dose}, index=[f"c{i}" for i in range(10)])
    adata = AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))
    programs = pd.DataFrame(
        {
            "name": ["a up", "b down", "a second"],
            "drug": ["A", "B", "A"],
            "library": "RecoveryTestLib",
            "term": ["T", "V", "U"],
            "direction": ["up", "down", "up"],
            "n_genes_planted": [2, 2, 3],
            "primary": [True, True, False],
        }
    )
    adata.uns["planted"] = {"programs": programs, "genes": {"a up": ["GA", "GB"], "b down": ["GE", "GF"]}}
    vectors = np.zeros((2, 8, 2))
    vectors[0, :, 0] = [0.9, 0.8, 0.1, 0.05, 0.06, 0.07, 0.0, 0.02]  # A, module 0: planted genes lead the + pole
    vectors[1, :, 0] = [0.01, 0.02, 0.0, -0.05, -0.9, -0.8, -0.1, 0.03]  # B, module 0: they lead the − pole
    vectors[:, 2, 1] = 1.0  # module 1 of both: one unplanted gene
    modules = Modules(np.array([[2.0, 1.0], [2.0, 1.0]]), vectors, ["A", "B"], genes)
    adata.obsm["bilinear_scores"] = np.einsum("ng,tgk->ntk", X, vectors)  # B's module 0 rises with dose
    wilcoxon = pd.DataFrame(
        {"A": [3.0, 0.0, 2.5, 0.5, 0.1, -0.2, 0.05, 0.3], "B": [0.1, 0.2, 0.5, -0.3, -4.0, -3.0, 0.4, 0.0]},
        index=genes,
    )
    return adata, modules, wilcoxon


def test_planted_recovery_exact(tmp_path, monkeypatch):
    adata, modules, wilcoxon = recovery_case(tmp_path, monkeypatch)
    table = perturbation.planted_recovery(adata, modules, wilcoxon, n_modules=2, n=2)
    assert list(table.index) == ["A", "B"] and list(table["program"]) == ["a up", "b down"]
    assert list(table["direction"]) == ["up", "down"]
    assert "AUROC best of modules 0–1" in table and "precision top-2 Wilcoxon" in table
    a, b = table.loc["A"], table.loc["B"]
    assert a["planted genes in the model's genes"] == "2 of 2" and a["best module"] == 0
    for row in (a, b):  # module 0 ranks the planted genes first, their term first, its score follows dose
        assert row["AUROC module 0"] == 1.0 and row["AUROC best of modules 0–1"] == 1.0
        assert row["precision top-2 module 0"] == 1.0 and row["term rank module 0"] == 1.0
        assert row["Spearman module 0 vs dose"] == pytest.approx(1.0)
    # B's Wilcoxon ranking is right, signed by the program's direction (its genes have negative z)
    assert b["AUROC Wilcoxon"] == 1.0 and b["precision top-2 Wilcoxon"] == 1.0 and b["term rank Wilcoxon"] == 1.0
    assert b["Spearman Wilcoxon signature vs dose"] == pytest.approx(1.0)
    # A's Wilcoxon ranking puts GB last: AUROC 6/12, top-2 = GA, GC; top-4 = GA, GC, GD, GH favour term U over T
    assert a["AUROC Wilcoxon"] == 0.5 and a["precision top-2 Wilcoxon"] == 0.5 and a["term rank Wilcoxon"] == 2.0
    assert a["Spearman Wilcoxon signature vs dose"] == pytest.approx(1.0)  # GA still rises
    with pytest.raises(KeyError, match="no .other_scores.; run bilinear_core.tl.modules"):
        perturbation.planted_recovery(adata, modules, wilcoxon, key="other")
    del adata.uns["planted"]
    message = "\"adata.uns has no 'planted' entry: only simulated data (datasets.simulate) carry a truth.\""
    with pytest.raises(KeyError, match="^" + re.escape(message) + "$"):
        perturbation.planted_recovery(adata, modules, wilcoxon)


def test_planted_recovery_reads_its_layer_and_finds_the_best_module(tmp_path, monkeypatch):
    adata, modules, wilcoxon = recovery_case(tmp_path, monkeypatch)
    adata.layers["log"], adata.X = adata.X, np.zeros_like(adata.X)
    swapped = Modules(modules.eigenvalues, modules.eigenvectors[:, :, ::-1], ["A", "B"], modules.var_names)
    table = perturbation.planted_recovery(adata, swapped, wilcoxon, n_modules=2, n=2, layer="log")
    assert table["best module"].tolist() == [1, 1] and (table["AUROC best of modules 0–1"] == 1.0).all()
    # the Wilcoxon signature is the layer's expression of its top genes
    assert table["Spearman Wilcoxon signature vs dose"].tolist() == pytest.approx([1.0, 1.0])


def test_recovery_metrics_exact():
    genes = ["a", "b", "c", "d", "e"]
    loadings = np.array([0.9, -0.8, 0.1, 0.05, -0.2])
    assert perturbation.planted_auroc(loadings, genes, {"a", "b"}) == 1.0
    assert perturbation.planted_auroc(loadings, genes, {"c", "d"}) == 0.0
    assert perturbation.pole_precision(loadings, genes, {"a", "c"}, "up", n=2) == 1.0
    assert perturbation.pole_precision(loadings, genes, {"a", "c"}, "down", n=2) == 0.0
    with pytest.raises(ValueError, match="need some, but not all"):
        perturbation.planted_auroc(loadings, genes, {"z"})
    with pytest.raises(ValueError, match="direction"):
        perturbation.pole_precision(loadings, genes, {"a"}, "sideways")
    table = pd.DataFrame({"library": ["L", "L", "M"], "term": ["x", "y", "z"], "p_value": [0.2, 0.01, 0.001]})
    assert perturbation.term_rank(table, "L", "x") == 2 and perturbation.term_rank(table, "L", "y") == 1
    assert np.isnan(perturbation.term_rank(table, "L", "z"))
    assert perturbation.dose_spearman([1, 2, 3], [0, 1, 10]) == pytest.approx(1.0)
    assert np.isnan(perturbation.dose_spearman([1, 1, 1], [0, 1, 10]))
    profile = perturbation.dose_profile(np.array([[1.0, 0.0], [3.0, 0.0], [5.0, 2.0]]), [0, 0, 1])
    assert profile.loc[0.0, ("mean", "module 0")] == 2.0 and profile.loc[0.0, ("sd", "module 0")] == 1.0
    assert profile.loc[1.0, ("n", "cells")] == 1
    r = perturbation.profile_correlation(profile["mean"], [0.0, 1.0])
    assert r["module 0"] == pytest.approx(1.0)
    row = perturbation.program_recovery(loadings, genes, {"a", "c"}, "up", table, "L", "y", [1, 2, 3], [0, 1, 5], n=2)
    assert row == pytest.approx(
        {"n_planted_in_genes": 2, "auroc": 2 / 3, "precision": 1.0, "term_rank": 1.0, "spearman": 1.0}
    )


def test_enrichment_background_is_each_librarys_genes():
    """The explicit per-library background gives Enrichr's default: the hypergeometric test over the library's genes."""
    from scipy.stats import hypergeom

    library = {"T1": ["A", "B", "C", "D"], "T2": ["C", "E", "F"], "T3": ["G", "H", "I", "J", "K", "L"]}
    table = enrichment.enrich(["A", "B", "C"], {"lib": library}, cutoff=1.0, top=None).set_index("term")
    universe = 12  # A..L
    assert table.loc["T1", "p_value"] == pytest.approx(hypergeom.sf(3 - 1, universe, 4, 3))
    assert table.loc["T2", "p_value"] == pytest.approx(hypergeom.sf(1 - 1, universe, 3, 3))


def test_dose_profile_plot_and_count_histogram_and_caption_suffix(monkeypatch):
    monkeypatch.syspath_prepend(str(BOOK))
    from bookkit import interpretation

    profile = perturbation.dose_profile(np.arange(12.0).reshape(6, 2), [0, 0, 1, 1, 5, 5])
    assert pl.dose_profile(profile, title="t (simulated data)").axes[0].get_title() == "t (simulated data)"
    with pytest.raises(KeyError, match="mean"):
        pl.dose_profile(pd.DataFrame({"x": [1]}))
    assert pl.count_histogram([100, 6000, 20000], 5000).axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="positive counts"):
        pl.count_histogram([0, 10], 5)
    genes = pd.DataFrame(
        {
            "output": "o",
            "module": 0,
            "sign": ["positive", "negative"],
            "rank": 0,
            "gene": ["A", "B"],
            "loading": [1, -1],
        }
    )
    rep = report.ModuleReport("o", 0, 1.0, genes, pd.DataFrame(columns=["sign", *enrichment.COLUMNS]))
    parts = interpretation.module_report_parts(rep, caption_suffix=" (simulated data)")
    assert parts[0] == "**Top 1 genes of module 0 (simulated data)**"
    assert all("(simulated data)" in p for p in parts if isinstance(p, str) and p.startswith(("**", "*All")))


def test_embed_passes_solver_transformer_and_epochs(monkeypatch, toy_adata):
    import scanpy as sc

    from bilinear_core import pp

    calls = {}
    monkeypatch.setattr(sc.pp, "pca", lambda adata, **kw: calls.setdefault("pca", kw))
    monkeypatch.setattr(sc.pp, "neighbors", lambda adata, **kw: calls.setdefault("neighbors", kw))
    monkeypatch.setattr(sc.tl, "umap", lambda adata, **kw: calls.setdefault("umap", kw))
    pp.embed(toy_adata, n_pcs=5, n_neighbors=7, seed=3, svd_solver="randomized", transformer="sklearn",
                     umap_epochs=20)  # fmt: skip
    assert calls["pca"] == {"n_comps": 5, "random_state": 3, "svd_solver": "randomized"}
    assert calls["neighbors"] == {"n_neighbors": 7, "random_state": 3, "transformer": "sklearn"}
    assert calls["umap"] == {"random_state": 3, "maxiter": 20}
    assert "7 exact neighbours, seed 3" in toy_adata.uns["umap_source"]


# --- the perturbation chapter's helpers (notebooks/bookkit/perturbations.py) ---


@pytest.fixture
def kit(monkeypatch):
    monkeypatch.syspath_prepend(str(BOOK))
    from bookkit import perturbations

    return perturbations


def enrichment_rows(rows):
    """An enrichment table as module_report stores it (sign, library, term, p-value, adjusted p), by adjusted p."""
    table = pd.DataFrame(rows, columns=["sign", "library", "term", "p_value", "adjusted_p"])
    table["overlap"] = "1/10"
    return table.sort_values(["adjusted_p", "p_value"], kind="stable").reset_index(drop=True)


def planted_terms_case():
    """Two drugs, A (primary 'a up', second 'a bell') and B (primary 'b down'), plus a shared stress set."""
    programs = pd.DataFrame(
        {
            "name": ["a up", "b down", "a bell", "stress"],
            "drug": ["A", "B", "A", "all"],
            "library": ["L", "L", "M", "L"],
            "term": ["TA", "TB", "TC", "TS"],
            "direction": ["up", "down", "up", "up"],
            "primary": [True, True, False, False],
        }
    )
    a = enrichment_rows(
        [
            ("positive", "L", "TX", 1e-9, 1e-8),  # an unplanted term above A's own
            ("positive", "L", "TA", 1e-6, 1e-5),
            ("positive", "M", "TC", 0.2, 0.4),  # A's second program: not significant, still listed
            ("positive", "L", "TS", 1e-3, 0.01),  # stress: significant
            ("negative", "L", "TB", 1e-4, 1e-3),  # B's program on A's negative pole: significant
            ("negative", "L", "TA", 0.3, 0.5),  # A's own set on the wrong pole: not listed
        ]
    )
    b = enrichment_rows(
        [
            ("positive", "L", "TA", 0.01, 0.2),  # A's set, not significant: not listed
            ("positive", "L", "TS", 0.02, 0.3),
        ]
    )  # B's own set has no hit on its negative pole
    reports = {drug: report.ModuleReport(drug, 0, 1.0, pd.DataFrame(), table) for drug, table in (("A", a), ("B", b))}
    adata = AnnData(np.zeros((1, 1), dtype=np.float32))
    adata.uns["planted"] = {"programs": programs}
    return adata, reports, programs


def test_planted_terms_table_lists_own_sets_always_and_others_when_significant(kit):
    adata, reports, programs = planted_terms_case()
    found = kit.planted_terms_table(adata, reports)
    assert list(found.columns) == ["planted set", "planted for", "pole", "rank in library", "adjusted p"]
    assert list(found.index) == ["A", "A", "A", "A", "B"]
    rows = [tuple(r) for r in found.reset_index()[["drug", "planted set", "pole"]].to_numpy()]
    # A: primary first, then its second program, then the other sets by adjusted p; B: its own set only
    assert rows == [
        ("A", "a up", "positive"),
        ("A", "a bell", "positive"),
        ("A", "b down", "negative"),
        ("A", "stress", "positive"),
        ("B", "b down", "negative"),
    ]
    a = found.loc["A"].set_index("planted set")
    assert a.loc["a up", "rank in library"] == 2 and a.loc["a up", "adjusted p"] == 1e-5  # TX ranks first in L
    assert a.loc["a bell", "rank in library"] == 1 and a.loc["a bell", "adjusted p"] == 0.4
    assert a.loc["b down", "rank in library"] == 1 and a.loc["stress", "rank in library"] == 3  # TX, TA, TS
    b = found.loc[["B"]].iloc[0]
    assert np.isnan(b["rank in library"]) and np.isnan(b["adjusted p"])  # no hit: listed, rank missing
    shown = kit.planted_terms_display(found)
    assert list(shown.columns) == ["drug", "planted set", "planted for", "pole", "rank in library", "adjusted p"]
    assert list(shown["drug"]) == ["A", "A", "A", "A", "B"]
    sentence = kit.planted_terms_sentence(found, programs)
    assert "A rank 2 and B no hit" in sentence
    assert "Other drugs' programs come back 1 times, all on the negative pole" in sentence
    assert sentence.endswith("The stress program of dying wells comes back for A.")
    takeaway = kit.planted_terms_takeaway(found, programs)
    assert takeaway.startswith("In module 0's enrichment the drugs' primary programs rank")
    assert takeaway.endswith("and other drugs' programs come back 1 times, all on the negative pole.")


def test_planted_terms_sentence_when_every_primary_program_ranks_first(kit):
    _, _, programs = planted_terms_case()
    found = pd.DataFrame(
        {
            "planted set": ["a up", "b down", "a up"],
            "planted for": ["A", "B", "A"],
            "pole": ["positive", "negative", "positive"],
            "rank in library": [1.0, 1.0, 3.0],
            "adjusted p": [1e-9, 1e-4, 1e-3],
        },
        index=pd.Index(["A", "B", "B"], name="drug"),
    )
    sentence = kit.planted_terms_sentence(found, programs)
    assert sentence.startswith("Each drug's primary program is the top term of its library")
    assert "come back 1 times, all on the negative pole" not in sentence  # A's set on B's positive pole
    assert "come back 1 times, 0 on the negative pole" in sentence


def recovery_rows():
    return pd.DataFrame(
        {
            "program": ["p up", "q down"],
            "direction": ["up", "down"],
            "planted genes in the model's genes": ["8 of 10", "5 of 9"],
            "AUROC module 0": [0.90, 0.60],
            "AUROC best of modules 0–2": [0.90, 0.75],
            "best module": [0, 2],
            "precision top-50 module 0": [0.8, 0.1],
            "term rank module 0": [1.0, np.nan],
            "Spearman module 0 vs dose": [0.9, 0.2],
            "AUROC Wilcoxon": [0.95, 0.59],
            "precision top-50 Wilcoxon": [0.9, 0.2],
            "term rank Wilcoxon": [1.0, 3.0],
            "Spearman Wilcoxon signature vs dose": [0.8, 0.1],
        },
        index=pd.Index(["P", "Q"], name="drug"),
    )


def test_recovery_table_is_long_and_keeps_every_value(kit):
    recovery = recovery_rows()
    shown = kit.recovery_table(recovery)
    assert shown.shape == (4, 4) and shown.index.names == ["drug", "method"]
    assert list(shown.columns) == ["AUROC", "planted share of top 50", "term rank in library", "Spearman with dose"]
    p0 = shown.loc[("P", "module 0")]
    assert list(p0) == [0.90, 0.8, 1.0, 0.9]
    qw = shown.loc[("Q", "Wilcoxon")]
    assert list(qw) == [0.59, 0.2, 3.0, 0.1]
    assert np.isnan(shown.loc[("Q", "module 0"), "term rank in library"])
    text = kit.recovery_sentences(recovery, 5000)
    assert text.startswith("Of each primary program's planted genes, 8 of 10 (P) and 5 of 9 (Q) are among the 5,000")
    assert "better than module 0 for Q (module 2, AUROC 0.75)" in text
    assert text.endswith("Module 0 misses the program of Q (AUROC below 0.65).")
    headline = kit.recovery_headline(recovery)  # P: −0.05 (worse), Q: +0.01 (equal within 0.02)
    assert "as well as it for Q; worse than it for P" in headline and "better" not in headline
    comparison = kit.recovery_comparison(recovery)
    assert comparison.startswith("Module 0 ranks the planted genes as well as the Wilcoxon test for Q and worse for P")
    better = recovery.assign(**{"AUROC Wilcoxon": [0.5, 0.59]})  # P: +0.40
    assert "genes better than the Wilcoxon test for P and as well for Q (" in kit.recovery_comparison(better)
    takeaway = kit.recovery_takeaway(recovery)
    assert "AUROC 0.60 to 0.90" in takeaway and "it does as well for Q and worse for P" in takeaway
    assert "no planted truth" in kit.recovery_takeaway(None)


def test_chapter_sentences_flip_with_real_and_simulated_data(kit):
    simulated = AnnData(np.zeros((1, 1), dtype=np.float32))
    simulated.uns["dataset"] = {"simulated": True, "file": None}
    real = AnnData(np.zeros((1, 1), dtype=np.float32))
    real.uns["dataset"] = {"simulated": False, "file": "srivatsan_2020_sciplex2.h5ad"}
    assert kit.data_label(simulated) == "simulated data" and kit.data_label(real) == "sci-Plex2 data"
    assert kit.simulation_warning(simulated) == kit.SIMULATED_SCIPLEX2 and kit.simulation_warning(real) == ""
    assert kit.sciplex2_name(real) == "the real sci-Plex2 data (srivatsan_2020_sciplex2.h5ad)"
    auroc0 = pd.Series({"P": 0.7, "Q": 0.95})
    recovery = recovery_rows()
    answer = kit.chapter_answer(simulated, recovery, auroc0)
    assert "simulation" in answer and "AUROC 0.60 to 0.90" in answer
    assert "their gene set's rank in its library is 1 (P) and no hit (Q)" in answer
    recovery.loc["Q", "term rank module 0"] = 1.0
    assert "their gene set is the top term of its library" in kit.chapter_answer(simulated, recovery, auroc0)
    real_answer = kit.chapter_answer(real, None, auroc0)
    assert "AUROC 0.70 to 0.95" in real_answer and "hypotheses" in real_answer
    report_ = pd.DataFrame({"MAE, treated cells": [0.2, 1.5]}, index=["SAHA", "Dex"])
    assert kit.hardest_drug_clause(report_) == "as in the post, Dex's dose is the hardest to read"
    assert "here it is SAHA's" in kit.hardest_drug_clause(
        report_.iloc[::-1].assign(**{"MAE, treated cells": [0.2, 1.5]})
    )


def test_design_table_pairs_counts_with_viability(kit):
    cells = pd.DataFrame({"BMS": [1200, 3], "SAHA": [1100, 250]}, index=pd.Index([0.0, 100.0], name="dose"))
    viability = pd.DataFrame(
        {"SAHA": [1.0, 0.41], "BMS": [1.0, 0.026], "Dex": [1.0, 0.9]}, index=pd.Index([0.0, 100.0], name="dose")
    )
    shown = kit.design_table(cells, viability)
    assert list(shown.index) == ["0", "100"] and list(shown.columns) == ["BMS", "SAHA"]
    assert shown.loc["0", "BMS"] == "1,200 (1.00)" and shown.loc["100", "BMS"] == "3 (0.03)"
    assert shown.loc["100", "SAHA"] == "250 (0.41)"


def test_treatment_legend_matches_the_scatter_colours(kit):
    import matplotlib

    matplotlib.use("Agg")
    labels = np.array(["vehicle", "BMS", "SAHA", "Dex", "BMS", "vehicle"])
    values = np.arange(12.0).reshape(6, 2)
    fig = pl.predicted_vs_true(values, values, ["a", "b"], labels=labels)
    kit.add_treatment_legend(fig, labels)
    legend = {h.get_label(): h.get_color() for h in fig.legends[0].legend_handles}
    scatter = fig.axes[0].collections[0]
    colours = scatter.to_rgba(scatter.get_array())
    for label, colour in legend.items():
        np.testing.assert_allclose(
            colours[labels == label], [matplotlib.colors.to_rgba(colour)] * (labels == label).sum()
        )
    assert list(legend) == ["BMS", "Dex", "SAHA", "vehicle"]


def test_moderate_dose_takeaway_follows_the_thresholds(kit):
    table = pd.DataFrame(
        {
            "eigenvalue": [0.3, 0.2],
            "peak dose (mean score)": [100.0, 5.0],
            "r with monotone program's response": [0.99, 0.1],
            "r with moderate-dose response": [-0.1, 0.8],
            "AUROC monotone genes": [0.99, 0.5],
            "AUROC moderate-dose genes": [0.6, 0.75],
        },
        index=pd.Index(["module 0", "module 1"], name="SAHA"),
    )
    assert kit.moderate_dose_takeaway(table).startswith("SAHA's module 1 follows the planted moderate-dose program")
    weak = table.assign(**{"r with moderate-dose response": [-0.1, 0.4]})
    assert kit.moderate_dose_takeaway(weak).startswith("None of SAHA's modules 0–2 follows")
    assert "at best r = 0.40" in kit.moderate_dose_takeaway(weak)
    shown = kit.moderate_dose_display(table)
    assert list(shown.index) == [0, 1] and shown.index.name == "SAHA module"
    assert shown.loc[1, "AUROC, moderate-dose genes"] == 0.75 and shown.loc[0, "peak dose"] == 100.0
    assert "no module among the first three clearly captures" in kit.moderate_dose_sentence(weak)


def test_findings_row_counts_drugs_against_wilcoxon_and_says_when_there_is_no_truth(monkeypatch):
    monkeypatch.syspath_prepend(str(BOOK))
    from bookkit import perturbations as kit

    auroc0 = pd.Series({"P": 0.7, "Q": 0.95})
    recovery = recovery_rows()  # P: 0.05 below Wilcoxon (worse), Q: 0.01 above (as well, within 0.02)
    answer, number = kit.findings_row(recovery, auroc0)
    assert answer.startswith("On simulated data, yes:") and answer.endswith("for 1 of 2 drugs")
    assert number == "planted genes' AUROC 0.60 to 0.90, Wilcoxon 0.59 to 0.95 (simulated data)"
    answer, _ = kit.findings_row(recovery.assign(**{"AUROC Wilcoxon": [0.95, 0.95]}), auroc0)
    assert answer.startswith("On simulated data, no:") and answer.endswith("for none of the 2 drugs")
    assert kit.findings_row(None, auroc0)[1] == "module 0 separates each drug's cells with AUROC 0.70 to 0.95"


def test_further_modules_reads_only_the_reproducible_modules_beyond_0(kit):
    modules = Modules(np.array([[3.0, 1.0, -2.0]]), np.eye(3)[None], ["SAHA"], ["x", "y", "z"])
    genes = pd.DataFrame({"output": "SAHA", "module": 1, "sign": ["positive", "negative"], "rank": 0,
                          "gene": ["y", "z"], "loading": [1.0, -1.0]})  # fmt: skip
    empty = pd.DataFrame(columns=["sign", "term"])
    one = report.ModuleReport("SAHA", 1, 1.0, genes, empty, reproducible=True, split_half_cos=0.85, n_members=2)
    correlations = pd.DataFrame({"output": "SAHA", "module": [0, 1, 2], "r": [0.9, 0.45, 0.1]})
    text = kit.further_modules({("SAHA", 1): one}, "SAHA", modules, correlations)
    assert text.startswith("**Module 1** (reproducible, so read like module 0). Module 1 of SAHA has eigenvalue")
    assert "(0.3× the largest positive eigenvalue and 0.50× the largest negative one" in text
    assert "follow SAHA dose moderately (Pearson r = 0.45)" in text and "|cos| 0.85" in text
    assert kit.further_modules({("SAHA", 1): one}, "Dex", modules, correlations) == (
        "No module of Dex beyond module 0 is reproducible, so none is interpreted."
    )


def test_dose_targets_frame_and_its_errors_by_hand():
    adata = AnnData(np.ones((4, 2)))
    adata.obs_names = ["c0", "c1", "c2", "c3"]
    adata.obs["perturbation"] = ["SAHA", "control", "Dex", "SAHA"]
    adata.obs["dose"] = [10.0, 0.0, 100.0, 1000.0]
    expected = pd.DataFrame(
        {"Dex": [0, 0, np.log1p(100.0), 0], "SAHA": [np.log1p(10.0), 0, 0, np.log1p(1000.0)]},
        index=adata.obs_names,
    )
    pd.testing.assert_frame_equal(perturbation.dose_targets(adata, ["Dex", "SAHA"]), expected)
    adata.obs["dose"] = [-1.0, 0.0, 100.0, -2.0]
    with pytest.raises(ValueError, match=r"^adata.obs\['dose'\] has 2 negative dose\(s\).$"):
        perturbation.dose_targets(adata, ["Dex", "SAHA"])


def test_pole_precision_and_dose_helpers_by_hand():
    genes = [f"g{i}" for i in range(60)]
    loadings = np.linspace(1, -1, 60)  # g0 the largest, g59 the smallest
    planted = {f"g{i}" for i in range(50)} | {"g59"}
    assert perturbation.pole_precision(loadings, genes, planted, "up") == 1.0  # the default n = 50: g0-g49
    assert perturbation.pole_precision(loadings, genes, planted, "down", n=60) == pytest.approx(51 / 60)
    assert perturbation.pole_precision(loadings, genes, planted, "down", n=1) == 1.0
    with pytest.raises(ValueError, match=r"^n must lie in \[1, 60\], got 61.$"):
        perturbation.pole_precision(loadings, genes, planted, "up", n=61)
    with pytest.raises(ValueError, match=r"^loadings has 60 values for 59 genes.$"):
        perturbation.pole_precision(loadings, genes[:59], planted, "up")
    with pytest.raises(ValueError, match=r"^loadings must have one value per gene \(59\), got shape \(60,\).$"):
        perturbation.planted_auroc(loadings, genes[:59], planted)
    assert np.isnan(perturbation.dose_spearman([1.0, 1, 1], [0.0, 1, 2]))
    assert np.isnan(perturbation.dose_spearman([1.0, 2, 3], [1.0, 1, 1]))
    assert perturbation.dose_spearman([1.0, 2, 3], [0.0, 1, 5]) == 1.0
    with pytest.raises(ValueError, match=r"^scores and dose must be 1-d of equal length, got \(3,\) and \(2,\).$"):
        perturbation.dose_spearman([1.0, 2, 3], [0.0, 1])
    with pytest.raises(ValueError, match=r"^dose must have one entry per cell \(3\), got shape \(2,\).$"):
        perturbation.dose_profile(np.ones((3, 2)), [0.0, 1])
    profile = perturbation.dose_profile(np.array([[1.0, 2], [3, 4], [5, 6]]), [0.0, 0, 1])
    assert profile[("mean", "module 1")].tolist() == [3.0, 6.0] and profile[("n", "cells")].tolist() == [2, 1]


def test_perturbation_helpers_edges_by_hand():
    adata = AnnData(np.array([[4_999.0, 0], [4_000, 1_000], [1.0, 0]]))
    adata.layers["big"] = adata.X * 10
    assert perturbation.filter_low_count_cells(adata).n_obs == 1  # exactly 5,000 counts are kept
    assert perturbation.filter_low_count_cells(adata, layer="big").n_obs == 2
    adata.obs["perturbation"], adata.obs["dose"] = ["Dex", "control", "Dex"], [1.0, np.nan, 2.0]
    with pytest.raises(ValueError, match=r"^adata.obs\['dose'\] contains 1 NaN or infinite value\(s\)"):
        perturbation.dose_targets(adata, ["Dex"])
    assert perturbation.dose_spearman([1.0, 2, 1.5], [0.0, 1, 2]) == 0.5  # a range of exactly 1 is no constant
    assert perturbation.dose_spearman([1.0, 3, 2], [0.0, 1, 0.5]) == 1.0
    profile = perturbation.dose_profile(np.array([1.0, 3, 5]), [0.0, 0, 1])  # one score per cell: one module
    assert profile[("mean", "module 0")].tolist() == [2.0, 5.0]
    scores = (1000 + np.random.default_rng(0).normal(size=(40, 1))).astype(np.float32)  # float32, far from 0
    dose = np.repeat(np.float32([0.0, 1.0]), 20)
    profile = perturbation.dose_profile(scores, dose)
    assert profile.index.dtype == np.float64  # float32 doses read as float64
    exact = scores[:, 0].astype(np.float64)
    np.testing.assert_allclose(profile[("mean", "module 0")], [exact[:20].mean(), exact[20:].mean()], rtol=1e-15)
    np.testing.assert_allclose(profile[("sd", "module 0")], [exact[:20].std(), exact[20:].std()], rtol=1e-12)
    r = perturbation.profile_correlation(pd.DataFrame({"m": [1.0, 2, 4]}), [1.0, 2, 3])
    assert r["m"] == pytest.approx(np.corrcoef([1.0, 2, 4], [1.0, 2, 3])[0, 1])
    with pytest.raises(ValueError, match=r"^expected must have one value per dose \(3\), got shape \(2,\).$"):
        perturbation.profile_correlation(pd.DataFrame({"m": [1.0, 2, 4]}), [1.0, 2])
    genes = [f"g{i}" for i in range(60)]
    loadings = np.linspace(1, -1, 60)
    planted = {f"g{i}" for i in range(50)}
    table = pd.DataFrame({"library": ["L"], "term": ["x"], "p_value": [0.1]})
    row = perturbation.program_recovery(loadings, genes, planted, "up", table, "L", "x", [1.0, 2], [0.0, 1])
    assert row["precision"] == 1.0  # the default n = 50: g0–g49, all planted (51 would take g50)


def test_wilcoxon_vs_reference_reads_its_layer_and_names_its_refusals():
    rng = np.random.default_rng(0)
    log = np.log1p(rng.poisson(2.0, size=(12, 4))).astype(np.float32)
    obs = pd.DataFrame(
        {"treatment": ["vehicle"] * 6 + ["Dex"] * 3 + ["SAHA"] * 3, "drug": ["Dex"] * 3 + ["SAHA"] * 3 + ["Dex"] * 3
         + ["SAHA"] * 3},
        index=[f"c{i}" for i in range(12)],
    )  # fmt: skip
    adata = AnnData(np.zeros_like(log), obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(4)]))
    adata.layers["log"] = log
    on_x = AnnData(log.copy(), obs=obs.copy(), var=adata.var.copy())
    for within in (None, "drug"):
        table = perturbation.wilcoxon_vs_reference(adata, "treatment", "vehicle", layer="log", within=within)
        expected = perturbation.wilcoxon_vs_reference(on_x, "treatment", "vehicle", within=within)
        pd.testing.assert_frame_equal(table, expected)
        assert (table.dtypes == np.float64).all()
    adata.obs.loc["c0", "drug"] = np.nan
    with pytest.raises(ValueError, match=r"^adata.obs\['drug'\] has 1 missing value\(s\); drop those cells.$"):
        perturbation.wilcoxon_vs_reference(adata, "treatment", "vehicle", within="drug")
    adata.obs["drug"], adata.obs["treatment"] = "Dex", "vehicle"
    with pytest.raises(ValueError, match=r"^adata.obs\['treatment'\] holds no group other than 'vehicle'.$"):
        perturbation.wilcoxon_vs_reference(adata, "treatment", "vehicle", within="drug")


def padded_case(tmp_path, monkeypatch, n_pad: int):
    """The recovery case with ``n_pad`` more genes without signal after the 8: constant, loading 0, z 0."""
    adata, modules, wilcoxon = recovery_case(tmp_path, monkeypatch)
    genes = list(adata.var_names) + [f"P{i}" for i in range(n_pad)]
    X = np.c_[adata.X, np.ones((10, n_pad), dtype=np.float32)]
    wide = AnnData(X=X, obs=adata.obs, var=pd.DataFrame(index=genes), uns=adata.uns)
    vectors = np.concatenate([modules.eigenvectors, np.zeros((2, n_pad, 2))], axis=1)
    wide.obsm["bilinear_scores"] = np.einsum("ng,tgk->ntk", X, vectors)
    return wide, Modules(modules.eigenvalues, vectors, ["A", "B"], genes), wilcoxon.reindex(genes).fillna(0.0)


def test_planted_recovery_defaults_name_the_columns(tmp_path, monkeypatch):
    adata, modules, wilcoxon = padded_case(tmp_path, monkeypatch, 92)  # 100 genes: poles of the top 50
    table = perturbation.planted_recovery(adata, modules, wilcoxon)
    assert "AUROC best of modules 0–2" in table and "precision top-50 module 0" in table
    assert table.loc["B", "precision top-50 module 0"] == pytest.approx(2 / 50)  # GE, GF and 48 others


def test_planted_recovery_keeps_the_gene_order_among_tied_z_scores(tmp_path, monkeypatch):
    wide, mods, z = padded_case(tmp_path, monkeypatch, 32)
    # B's signed z: 1 for GE and GF and for 11 genes without signal (GG, GH and padding genes), 0 or -1 for the
    # others; ranked in gene order among ties, GE and GF come first, so the signature follows dose
    rng = np.random.default_rng(0)
    signed = rng.choice([1.0, 0.0, -1.0], 40)
    signed[:4] = rng.choice([0.0, -1.0], 4)
    signed[4:6] = 1.0
    assert (signed == 1).sum() == 13 and signed[6:8].tolist() == [1.0, 1.0]
    z["B"] = -signed  # B's program goes down
    table = perturbation.planted_recovery(wide, mods, z, n_modules=2, n=2)
    assert table.loc["B", "Spearman Wilcoxon signature vs dose"] == pytest.approx(1.0)


def test_planted_recovery_ranks_the_term_among_every_term_of_the_library(tmp_path, monkeypatch):
    adata, modules, wilcoxon = recovery_case(tmp_path, monkeypatch)
    # 16 decoy terms of A's four leading genes rank before T (both for module 0 and for the Wilcoxon genes)
    decoys = "".join(f"D{i:02d}\t\tGA\tGB\tGC\tGF\n" for i in range(16))
    (tmp_path / "genesets" / "DecoyTestLib.gmt").write_text("T\t\tGA\tGB\nU\t\tGC\tGD\tGE\nV\t\tGE\tGF\n" + decoys)
    adata.uns["planted"]["programs"]["library"] = "DecoyTestLib"
    table = perturbation.planted_recovery(adata, modules, wilcoxon, n_modules=2, n=2)
    assert table.loc["A", "term rank module 0"] == 17  # after the 16 decoys: Enrichr's 15-term cut would hide it
    assert table.loc["A", "term rank Wilcoxon"] > 15
