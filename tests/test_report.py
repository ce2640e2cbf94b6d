import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import bilinear_core as bc  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "notebooks"))  # the book's helpers: bookkit
import bookkit  # noqa: E402
from bookkit import interpretation  # noqa: E402


def test_module_report_and_summary():
    torch.manual_seed(0)
    genes = [f"G{i}" for i in range(40)]
    modules = bc.eigendecompose(bc.BilinearMLP(40, 3, 2), output_names=["x", "y"], var_names=genes)
    top = bc.top_genes(modules, "y", min_genes=5)
    positive = top.loc[top["sign"] == "positive", "gene"].tolist()
    library = {"toy": {"planted": positive, "other": genes[::7]}}
    report = bc.report.module_report(modules, "y", min_genes=5, libraries=library, reproducible_only=False)
    assert report.top_table(3)["positive"].tolist() == positive[:3]
    assert report.key_terms("positive") == ["planted"]
    assert report.eigenvalue == modules.values("y")[0]
    summary = interpretation.pole_bullets(report, n_genes=2)
    assert f"led by {positive[0]}, {positive[1]}" in summary and "planted" in summary
    assert "no term passes" in summary.splitlines()[1]


def test_dropdown_markdown():
    fig, ax = plt.subplots(figsize=(4, 3))
    figure = bookkit.figure_markdown(fig, "fig-beta", "Beta cells.")
    text = bookkit.dropdown("Beta", "some *text*", figure, pd.DataFrame({"a": [1.5, np.nan]}))
    assert text.startswith("::::{dropdown} Beta") and text.endswith("::::")
    assert "```{figure} data:image/svg+xml;base64," in text and ":name: fig-beta\n\nBeta cells.\n```" in text
    assert "some *text*" in text
    assert "<td" in text and ">1.500</td>" in text and ">—</td>" in text  # the DataFrame as the book's table
    table_lines = text[text.index("<style") :].splitlines()
    assert all(line.strip() for line in table_lines[: table_lines.index("</table>")])  # one HTML block
    assert not plt.fignum_exists(fig.number)  # embedded figures are closed


def test_table_formats_fits_and_links():
    df = pd.DataFrame({"cell_type": ["Beta", "Alpha"], "n": [1234, 5], "auroc": [0.98765, np.nan]})
    html = bookkit.table(df, precision=2, link="x.csv", note="— : no cells.", index=False)._repr_html_()
    assert ">cell type</th>" in html  # readable header
    assert ">1,234</td>" in html and ">0.99</td>" in html and ">—</td>" in html and "nan" not in html
    assert 'href="../results/x.csv"' in html and "— : no cells." in html
    # the text column, and only it, is left-aligned
    style = html[: html.index("</style>")]
    assert "text-align: left" in style and "row1_col0" in style and "_col1" not in style and "_col2" not in style
    assert "th.col0 {\n  text-align: left" in style and "th.col1" not in style  # and its header
    html = bookkit.table(df, precision=2, formats={"n": "{:.1f}"}, index=False)._repr_html_()
    assert ">1234.0</td>" in html and ">0.99</td>" in html  # a format for one column leaves the others' precision
    with pytest.raises(ValueError, match="9 columns"):
        bookkit.table(pd.DataFrame(np.zeros((2, 8))))  # 8 columns and the index


def test_small_text_scales_wide_figures_to_the_column():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("title", fontsize=10)
    ax.set_xlabel("small", fontsize=8)
    assert [t.split(" ")[0] for t in bookkit.small_text(fig)] == ["'small'"]
    fig.set_size_inches(16, 3)  # shown at about half size: 10 pt becomes ~5 pt
    found = bookkit.small_text(fig)
    assert any(t.startswith("'title'") for t in found)
    width = fig.get_tightbbox().width
    assert f"({10 * bookkit.COLUMN_INCHES / width:.1f} pt)" in next(t for t in found if t.startswith("'title'"))
    with pytest.raises(ValueError, match="below 9 pt"):
        bookkit.figure_markdown(fig, "fig-x", "x")
    plt.close("all")


def test_top_table_is_capped_at_the_list_length():
    torch.manual_seed(0)
    modules = bc.eigendecompose(bc.BilinearMLP(12, 2, 1), var_names=[f"G{i}" for i in range(12)])
    report = bc.report.module_report(
        modules, 0, min_genes=3, libraries={"toy": {"t": ["G0", "G1"]}}, reproducible_only=False
    )
    assert report.top_table(10).shape == (3, 2)


def _adata_with_uns(n_genes_in, n_dropped, n_genes, size_factor_key):
    adata = ad.AnnData(np.zeros((30, n_genes), dtype=np.float32))
    adata.uns["dataset"] = {"file": "toy.h5ad", "kind": "toy copy", "size_factor_key": size_factor_key}
    adata.uns["preprocessing"] = {"n_genes_in": n_genes_in, "n_ribosomal_dropped": n_dropped, "n_genes": n_genes}
    return adata


def test_data_note_states_the_genes_and_the_offline_caveat():
    offline = bookkit.data_note(_adata_with_uns(2_000, 16, 1_984, "initial_size_spliced"))
    assert "30 cells and 2,000 genes, of which 16 ribosomal genes are dropped and all others kept" in offline
    assert "**1,984 genes**" in offline and "5-fold smaller" in offline
    full = bookkit.data_note(_adata_with_uns(27_998, 100, 10_000, None))
    assert "the 10,000 most variable of the rest kept" in full and "offline" not in full
    with pytest.raises(KeyError, match="datasets.pancreas and bilinear_core.pp.preprocess"):
        bookkit.data_note(ad.AnnData(np.zeros((3, 2), dtype=np.float32)))


def test_gene_list_rule_names_the_floor_only_when_it_applies():
    assert interpretation.gene_list_rule(1_984) == (
        "With 1,984 genes, 1% would be only 20 genes, too few for enrichment, so the floor of 50 applies: "
        "each pole here has 50 genes."
    )
    assert interpretation.gene_list_rule(10_000) == "With 10,000 genes each pole has 100 genes (1%)."


def test_library_table_follows_the_stand_ins(monkeypatch, tmp_path):
    monkeypatch.setenv("BILINEAR_DATA_DIR", str(tmp_path))
    (tmp_path / "genesets").mkdir()
    for name in ("Lib_A_Mouse", "Lib_B_2022"):
        (tmp_path / "genesets" / f"{name}.gmt").write_text("set\t\tGENE1\tGENE2\n")
    stand_ins = {"Lib_A_Mouse": "Lib_A_Mouse", "Lib_B_2023": "Lib_B_2022"}
    table = bc.report.library_table(stand_ins, sizes=False)
    assert table.loc["Lib_A_Mouse", "source"] == "Lib_A_Mouse.gmt in data/genesets"
    assert table.index.tolist() == ["Lib_A_Mouse", "Lib_B_2023"]
    assert table["match"].tolist() == ["exact", "stand-in"]
    assert table.loc["Lib_B_2023", "used here"] == "Lib_B_2022"
    assert "1:1-ortholog" in table.loc["Lib_B_2023", "mouse genes matched"]
    assert "mouse symbols" in table.loc["Lib_A_Mouse", "mouse genes matched"]


def test_library_table_of_the_post_covers_seven_libraries():
    table = bc.report.library_table(sizes=False)
    assert len(table) == 7 and set(table["used here"]) == set(bc.datasets.genesets.MOUSE_LIBRARIES)
    assert (table["match"] == "exact").sum() == 4
    assert table.loc["GO_Biological_Process_2023", "source"].endswith("blitzgsea")


def test_one_based_counts_from_one_and_leaves_the_input():
    ranks = pd.DataFrame({"gene": ["A", "B"], "rank": [0, 4]})
    shown = bookkit.one_based(ranks)
    assert shown["position"].tolist() == [1, 5] and list(shown.columns) == ["gene", "position"]
    assert ranks["rank"].tolist() == [0, 4]
