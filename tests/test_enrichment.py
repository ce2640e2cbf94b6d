import sys

import numpy as np
import pytest
from scipy.stats import hypergeom

from bilinear_core import enrichment
from bilinear_core.datasets import genesets


@pytest.fixture
def toy_library():
    universe = [f"G{i}" for i in range(40)]
    return {
        "set_a": universe[:10],
        "set_b": universe[5:25],
        "set_c": universe[20:40],
        "set_d": universe[30:35],
    }


def test_pvalues_equal_scipy_hypergeometric(toy_library):
    genes = ["g0", "G1", "G2", "G3", "G6", "G21", "G22"]  # case does not matter
    table = enrichment.enrich(genes, {"toy": toy_library}, cutoff=1.0, top=None)
    assert set(table["term"]) == {"set_a", "set_b", "set_c"}  # set_d has no hit
    universe = 40  # background defaults to every gene of the library
    for row in table.itertuples():
        members = set(toy_library[row.term])
        hits = len(members & {g.upper() for g in genes})
        expected = hypergeom.sf(hits - 1, universe, len(members), len(genes))
        assert row.p_value == pytest.approx(expected, rel=1e-10)
        assert row.overlap == f"{hits}/{len(members)}"
    assert "g0" in table.loc[table["term"] == "set_a", "genes"].item()  # reported in the query's spelling


def test_benjamini_hochberg_by_hand(toy_library):
    genes = ["G0", "G1", "G2", "G3", "G6", "G21", "G22"]
    table = enrichment.enrich(genes, {"toy": toy_library}, cutoff=1.0, top=None)
    p = table.set_index("term")["p_value"]
    ranked = p.sort_values()
    m = len(ranked)
    raw = ranked.to_numpy() * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(raw[::-1])[::-1], 1.0)
    np.testing.assert_allclose(table.set_index("term").loc[ranked.index, "adjusted_p"], adjusted, rtol=1e-12)


def test_cutoff_top_and_background(toy_library):
    genes = ["G0", "G1", "G2", "G3", "G4", "G5"]
    strict = enrichment.enrich(genes, {"toy": toy_library}, cutoff=0.05)
    assert (strict["adjusted_p"] <= 0.05).all() and list(strict["term"]) == ["set_a"]
    assert len(enrichment.enrich(genes, {"toy": toy_library}, cutoff=1.0, top=1)) == 1
    # a smaller background makes the same overlap less surprising
    small_bg = enrichment.enrich(genes, {"toy": toy_library}, background=[f"G{i}" for i in range(12)], cutoff=1.0)
    full_bg = enrichment.enrich(genes, {"toy": toy_library}, cutoff=1.0)
    assert small_bg.set_index("term").loc["set_a", "p_value"] > full_bg.set_index("term").loc["set_a", "p_value"]


@pytest.mark.parametrize("with_background", [False, True])
def test_local_test_equals_gseapy_enrich_exactly(with_background):
    """The vectorised test gives gseapy.enrich's values bit for bit on a real library (KEGG 2021 Human)."""
    import gseapy

    library = genesets.load_library("KEGG_2021_Human")
    every = sorted(set().union(*library.values()))
    rng = np.random.default_rng(0)
    query = sorted(rng.choice(every, size=120, replace=False).tolist() + ["NOT_A_GENE"])
    background = set(rng.choice(every, size=4_000, replace=False)) | {"NOT_A_GENE"} if with_background else None
    ours = enrichment.enrich(query, ["KEGG_2021_Human"], background=background, cutoff=1.0, top=None)
    theirs = gseapy.enrich(
        gene_list=query, gene_sets=library, background=background or set(every), outdir=None, no_plot=True
    ).results
    theirs = theirs.sort_values(["Adjusted P-value", "P-value"], kind="stable").reset_index(drop=True)
    assert len(ours) == len(theirs) > 50
    assert ours["term"].tolist() == theirs["Term"].tolist()
    assert ours["overlap"].tolist() == theirs["Overlap"].tolist()
    for mine, gseapys in [
        ("p_value", "P-value"),
        ("adjusted_p", "Adjusted P-value"),
        ("odds_ratio", "Odds Ratio"),
        ("combined_score", "Combined Score"),
    ]:
        np.testing.assert_array_equal(ours[mine].to_numpy(), theirs[gseapys].to_numpy(dtype=float))
    assert ours["genes"].tolist() == [";".join(sorted(g.split(";"))) for g in theirs["Genes"]]


def test_read_gmt_enrichr_format(tmp_path):
    path = tmp_path / "lib.gmt"
    path.write_text("Term one\t\tabc1\tDEF2,1.0\t\nTerm two\tna\tXYZ\n")
    assert genesets.read_gmt(path) == {"Term one": ["ABC1", "DEF2"], "Term two": ["XYZ"]}
    (tmp_path / "empty.gmt").write_text("\n")
    with pytest.raises(ValueError, match="no gene sets"):
        genesets.read_gmt(tmp_path / "empty.gmt")


def test_packaged_libraries_load():
    library = genesets.load_library("KEGG_2021_Human")
    assert len(library) == 320
    assert "INS" in library["Insulin secretion"]
    assert "blitzgsea" in genesets.library_path("GO_Biological_Process_2023").parts  # Apache-2.0
    with pytest.raises(FileNotFoundError, match="not found"):
        genesets.load_library("No_Such_Library_2099")
    assert "pyenrichr" not in sys.modules  # its sdist's licence is non-commercial: nothing may import it


@pytest.mark.skipif(
    "WikiPathway_2023_Human" not in genesets.available_libraries(["WikiPathway_2023_Human"]),
    reason="gene-set libraries not linked (run `make data`)",
)
def test_wikipathways_from_the_data_dir():
    path = genesets.library_path("WikiPathway_2023_Human")
    assert path == genesets.data_dir() / "genesets" / "WikiPathway_2023_Human.gmt"
    library = genesets.load_library("WikiPathway_2023_Human")
    assert len(library) == 801
    table = enrichment.enrich(library["Insulin Signaling WP481"][:20], ["WikiPathway_2023_Human"], cutoff=1.0)
    assert table.loc[0, "term"] == "Insulin Signaling WP481" and table.loc[0, "overlap"].startswith("20/")


def test_empty_gene_list():
    with pytest.raises(ValueError, match="^The gene list is empty.$"):
        enrichment.enrich([], {"toy": {"a": ["X"]}})
    assert enrichment.enrich(["X"], {}).columns.tolist() == enrichment.COLUMNS  # no library: an empty table


def test_mouse_and_human_library_sets(monkeypatch, tmp_path, request):
    genesets.load_library.cache_clear()
    request.addfinalizer(genesets.load_library.cache_clear)  # the toy library must not outlive this test
    # the post's seven stand-ins for mouse data, their human counterparts, each read from where it lives
    assert len(genesets.MOUSE_LIBRARIES) == len(genesets.HUMAN_LIBRARIES) == 7
    assert set(genesets.POST_LIBRARIES) == set(genesets.POST_STAND_INS)
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    (tmp_path / "genesets").mkdir()
    (tmp_path / "genesets" / "KEGG_2019_Mouse.gmt").write_text("Insulin secretion\t\tINS1\tINS2\tPDX1\n")
    available = genesets.available_libraries(genesets.MOUSE_LIBRARIES)
    assert available == ["GO_Biological_Process_2023", "KEGG_2019_Mouse"]  # packaged + the one GMT written here
    # Enrichr's mouse libraries are upper case: mouse symbols match case-insensitively and come back as given
    table = enrichment.enrich(["Ins1", "Ins2", "Gcg"], ["KEGG_2019_Mouse"], cutoff=1.0, background=None)
    assert table.loc[0, "genes"] == "Ins1;Ins2"


def test_two_libraries_are_adjusted_each_on_its_own(toy_library):
    """Benjamini–Hochberg runs within each library: the second library's terms do not change the first's."""
    other = {f"extra_{i}": [f"G{j}" for j in range(i, i + 8)] for i in range(0, 30, 3)}
    genes = ["G0", "G1", "G2", "G3", "G6", "G21", "G22"]
    both = enrichment.enrich(genes, {"toy": toy_library, "other": other}, cutoff=1.0, top=None)
    assert set(both["library"]) == {"toy", "other"}
    for name, library in (("toy", toy_library), ("other", other)):
        alone = enrichment.enrich(genes, {name: library}, cutoff=1.0, top=None).set_index("term")
        part = both[both["library"] == name].set_index("term")
        p = part["p_value"].sort_values()
        m = len(p)  # BH by hand over this library's tested terms only
        adjusted = np.minimum(np.minimum.accumulate((p.to_numpy() * m / np.arange(1, m + 1))[::-1])[::-1], 1.0)
        np.testing.assert_allclose(part.loc[p.index, "adjusted_p"], adjusted, rtol=1e-12)
        np.testing.assert_allclose(part.loc[p.index, "adjusted_p"], alone.loc[p.index, "adjusted_p"], rtol=1e-12)


def test_online_query_sends_the_list_and_reads_enrichrs_table(monkeypatch):
    """The web path (no internet here): what is sent to gseapy.enrichr, and Enrichr's table read into ours."""
    import gseapy
    import pandas as pd

    sent = {}
    web = pd.DataFrame(
        {
            "Gene_set": ["KEGG_2019_Mouse", "KEGG_2019_Mouse", "GO_2022"],
            "Term": ["Insulin secretion", "Cell cycle", "Glucose response"],
            "Overlap": ["2/80", "1/120", "2/40"],
            "P-value": ["0.001", "0.2", "0.0001"],
            "Adjusted P-value": ["0.002", "0.2", "0.0003"],
            "Odds Ratio": ["12.5", "1.5", "30"],
            "Combined Score": ["86.3", "2.4", "276.3"],
            "Genes": ["INS1;PDX1", "MKI67", "INS1;GCK"],
        }
    )

    def enrichr(**kwargs):
        sent.update(kwargs)
        return type("Result", (), {"results": web})()

    monkeypatch.setattr(gseapy, "enrichr", enrichr)
    table = enrichment.enrich(["Ins1", "Pdx1", "Gck", "Mki67"], ["KEGG_2019_Mouse", "GO_2022"], online=True)
    assert sent == {
        "gene_list": ["Ins1", "Pdx1", "Gck", "Mki67"],
        "gene_sets": ["KEGG_2019_Mouse", "GO_2022"],
        "organism": "mouse",
        "outdir": None,
    }
    expected = pd.DataFrame(
        {
            "library": ["GO_2022", "KEGG_2019_Mouse"],
            "term": ["Glucose response", "Insulin secretion"],
            "overlap": ["2/40", "2/80"],
            "p_value": [0.0001, 0.001],
            "adjusted_p": [0.0003, 0.002],
            "odds_ratio": [30.0, 12.5],
            "combined_score": [276.3, 86.3],
            "genes": ["Gck;Ins1", "Ins1;Pdx1"],  # in the query's spelling, sorted
        }
    )
    pd.testing.assert_frame_equal(table, expected)
    enrichment.enrich(["Ins1"], ["GO_2022"], online=True, organism="human")
    assert sent["organism"] == "human"


def test_at_most_fifteen_terms_by_default_and_modules_keep_their_sign_order(toy_library):
    import pandas as pd

    library = {f"term{i:02d}": [f"G{j}" for j in range(0, 40, 2)] + [f"Y{i}"] for i in range(20)}
    library["other"] = [f"X{j}" for j in range(30)]
    genes = [f"G{j}" for j in range(0, 12, 2)]
    assert len(enrichment.enrich(genes, {"toy": library}, cutoff=1.0)) == 15
    top = pd.DataFrame({"sign": ["positive"] * 6 + ["negative"] * 3, "gene": [*genes, "X1", "X2", "X3"]})
    table = enrichment.enrich_modules(top, {"toy": library}, cutoff=1.0, top=None)
    negative = enrichment.enrich(["X1", "X2", "X3"], {"toy": library}, cutoff=1.0, top=None)
    positive = enrichment.enrich(genes, {"toy": library}, cutoff=1.0, top=None)
    expected = pd.concat([positive.assign(sign="positive"), negative.assign(sign="negative")], ignore_index=True)
    pd.testing.assert_frame_equal(table, expected[["sign", *enrichment.COLUMNS]])


def test_default_libraries_offline():
    table = enrichment.enrich(["INS", "GCG", "SST", "PPY", "GCK"], cutoff=1.0, top=None)
    assert set(table["library"]) <= set(genesets.DEFAULT_LIBRARIES) and len(table) > 0
