"""Helpers added for the cell-typing chapter: module orientation, AUROC, marker ranks, summaries, overview figure."""

import dataclasses
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from anndata import AnnData  # noqa: E402

import bilinear_core as bc  # noqa: E402
from bilinear_core.interpret import Modules, gene_ranks, module_auroc, orient_modules, quadratic_form  # noqa: E402
from bilinear_core.report import ModuleReport, enrichment_table, summary_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "notebooks"))  # the book's helpers: bookkit
import bookkit  # noqa: E402
from bookkit import cell_typing as kit  # noqa: E402
from bookkit.cell_typing import class_dropdown  # noqa: E402
from bookkit.interpretation import (  # noqa: E402
    describe_gene_ranks,
    enrichment_display,
    module_interpretation,
    module_report_parts,
    readable,
    top_genes_display,
)


def _modules_2genes():
    """One output, two genes, modules e0 (λ = 2) and e1 (λ = -1)."""
    return Modules(np.array([[2.0, -1.0]]), np.eye(2)[None], ["a"], ["g0", "g1"])


def test_orient_modules_exact_flip():
    # cells of "a" have less of gene 0 and more of gene 1: module 0 must flip, module 1 must not
    X = np.array([[3.0, 0.0], [2.0, 1.0], [0.0, 2.0], [1.0, 3.0]])
    oriented = orient_modules(_modules_2genes(), X, np.array(["b", "b", "a", "a"]))
    np.testing.assert_array_equal(oriented.vectors("a"), [[-1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(oriented.values("a"), [2.0, -1.0])
    # a numeric target is read as one column per output: anti-correlated with gene 1 flips module 1 only
    oriented = orient_modules(_modules_2genes(), X, np.array([4.0, 3.0, 2.0, 1.0]))
    np.testing.assert_array_equal(oriented.vectors("a"), [[1.0, 0.0], [0.0, -1.0]])


def test_orient_modules_on_a_model(small_model):
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, size=(90, 12))
    labels = np.array(["x", "y", "z"] * 30)
    modules = bc.eigendecompose(small_model, output_names=["x", "y", "z"])
    oriented = orient_modules(modules, X, labels)
    flipped = 0
    for out in ["x", "y", "z"]:
        scores = X @ oriented.vectors(out)
        cov = ((scores - scores.mean(0)) * ((labels == out) - (labels == out).mean())[:, None]).sum(0)
        assert np.all(cov >= -1e-9)  # target cells score high on every module
        same = np.isclose(oriented.vectors(out), modules.vectors(out)).all(axis=0)
        opposite = np.isclose(oriented.vectors(out), -modules.vectors(out)).all(axis=0)
        assert np.all(same ^ opposite)  # only signs change
        flipped += int(opposite.sum())
    assert flipped > 0
    np.testing.assert_array_equal(oriented.eigenvalues, modules.eigenvalues)
    # predictions are unchanged: Σ λ (x·v)² still equals the model output
    recon = ((X @ oriented.vectors("y")) ** 2 * oriented.values("y")).sum(axis=1)
    np.testing.assert_allclose(recon, quadratic_form(small_model, X)[:, 1], rtol=1e-6)
    # numeric (n, t) targets (regression): each column orients its own output
    targets = np.c_[labels == "x", labels == "y", labels == "z"].astype(float)
    np.testing.assert_array_equal(orient_modules(modules, X, targets).eigenvectors, oriented.eigenvectors)


def test_orient_modules_errors():
    modules, X = _modules_2genes(), np.ones((4, 2))
    with pytest.raises(ValueError, match=r"Output\(s\) \['a'\] never occur"):
        orient_modules(modules, X, np.array(["b", "b", "c", "c"]))
    with pytest.raises(ValueError, match="shape"):
        orient_modules(modules, X, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="3 entries"):
        orient_modules(modules, X, np.array(["a", "b", "a"]))
    with pytest.raises(ValueError, match="NaN"):
        orient_modules(modules, X, np.array([1.0, np.nan, 0.0, 2.0]))
    with pytest.raises(ValueError, match="X has 3 genes"):
        orient_modules(modules, np.ones((4, 3)), np.array(["a", "b", "a", "b"]))


def test_module_auroc_exact():
    scores = np.array([[1.0, 4.0, 1.0], [2.0, 3.0, 1.0], [3.0, 2.0, 1.0], [4.0, 1.0, 1.0]])
    np.testing.assert_allclose(module_auroc(scores, [False, False, True, True]), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(module_auroc(scores[:, 0], [False, True, False, True]), [0.75])
    with pytest.raises(ValueError, match="some cells, but not all"):
        module_auroc(scores, [True] * 4)
    with pytest.raises(ValueError, match="one entry per cell"):
        module_auroc(scores, [True, False])


def _five_gene_modules():
    vector = np.array([0.5, -0.2, 0.1, -0.7, 0.3])
    return Modules(np.array([[1.0]]), vector[None, :, None], ["a"], ["g0", "g1", "g2", "g3", "g4"])


def test_gene_ranks_and_sentence():
    ranks = gene_ranks(_five_gene_modules(), "a", ["g0", "G3", "nope", "g2"], min_genes=2)
    assert ranks["symbol"].tolist() == ["g0", "g3", None, "g2"]
    assert ranks["sign"].tolist() == ["positive", "negative", None, "positive"]
    assert ranks["rank"].tolist() == [0, 0, pd.NA, 2]
    assert ranks["in_top"].tolist() == [True, True, False, False]  # top lists hold 2 genes per sign here
    assert ranks["loading"].iloc[1] == pytest.approx(-0.7)
    assert describe_gene_ranks(ranks, n_top=2) == (
        "g0 (positive, position 1) and g3 (negative, position 1) are in the top-2 list of their sign; "
        "g2 (positive, position 3) is outside the top lists; nope is not among the genes of the data."
    )
    assert describe_gene_ranks(ranks, n_top=2, detail_outside=False).endswith(
        "in the top-2 list of their sign; 1 gene is outside the top lists; nope is not among the genes of the data."
    )
    with pytest.raises(KeyError, match="gene_ranks"):
        describe_gene_ranks(pd.DataFrame({"gene": ["x"]}), n_top=2)


def _report(output="a", terms=("T1", "T2"), library="toy"):
    genes = bc.top_genes(_five_gene_modules(), "a", min_genes=2).assign(output=output)
    enrichment = pd.DataFrame(
        {
            "sign": ["positive"] * len(terms),
            "library": library,
            "term": list(terms),
            "overlap": "1/3",
            "p_value": 0.001,
            "adjusted_p": [0.0123, 0.04][: len(terms)],
        }
    )
    return ModuleReport(output=output, module=0, eigenvalue=1.0, genes=genes, enrichment=enrichment)


def test_summary_table_and_parts():
    reports = {"a": _report("a"), "b": _report("b", terms=())}
    metrics = pd.DataFrame({"recall": [0.9, 0.4]}, index=["a", "b"])
    table = summary_table(reports, metrics, n_genes=2)
    assert table.index.tolist() == ["a", "b"]
    assert table.loc["a", "positive genes"] == "g0, g4" and table.loc["a", "negative genes"] == "g3, g1"
    assert table.loc["a", "positive terms"] == "T1" and table.loc["b", "positive terms"] == "–"
    assert table.loc["b", "recall"] == 0.4 and table.columns[0] == "recall"
    assert "positive terms" not in summary_table(list(reports.values()), n_terms=0, n_genes=2)
    with pytest.raises(KeyError, match=r"no row for output\(s\) \['b'\]"):
        summary_table(reports, metrics.loc[["a"]])
    with pytest.raises(ValueError, match="ModuleReport"):
        summary_table([])

    shown = enrichment_table(reports["a"], "positive")
    assert shown["term"].tolist() == ["T1", "T2"] and shown["adjusted p"].tolist() == ["0.012", "0.04"]
    with pytest.raises(ValueError, match="sign must be one of"):
        enrichment_table(reports["a"], "up")
    parts = module_report_parts(reports["a"], n_genes=2)
    top = parts[1]  # the top table, ranked from 1 as the book counts
    assert top.index.tolist() == [1, 2] and top.index.name == "rank"
    assert top.to_numpy().tolist() == reports["a"].top_table(2).to_numpy().tolist()
    assert top.to_numpy().tolist() == [["g0", "g3"], ["g4", "g1"]]  # loadings 0.5, 0.3 and -0.7, -0.2
    texts = [p for p in parts if isinstance(p, str)]
    assert "- Positive: T1; T2\n- Negative: none" in texts
    assert texts[-3] == "No term passes adjusted p ≤ 0.05."  # the negative pole has no term
    assert texts[-1] == "*All 2 negative genes*: g3, g1"
    without = module_report_parts(reports["a"], n_genes=2, key_terms=False)
    assert [p for p in without if isinstance(p, str) and "Key terms" in p] == []
    assert len(without) == len(parts) - 2 and without[-1] == parts[-1]
    assert [type(p) for p in parts].count(pd.DataFrame) == 2  # top-gene table and the positive enrichment


def test_enrichment_display_fits_the_column():
    long_term = "REACTOME_REGULATION_OF_BETA_CELL_DEVELOPMENT"
    report = _report(terms=(long_term, "T2"), library="GO_Biological_Process_2023")
    shown = enrichment_display(report, "positive")
    assert shown.columns.tolist() == ["term", "library", "overlap", "adjusted p"]
    assert shown.index.tolist() == [1, 2] and shown.index.name == "rank"  # ranked from 1
    assert shown["term"].tolist() == ["REACTOME REGULATION OF BETA CELL DEVELOPMENT", "T2"]  # can wrap
    assert shown["library"].tolist() == ["GO Biological Process 2023"] * 2
    assert shown["adjusted p"].tolist() == ["0.012", "0.04"]
    assert len(enrichment_display(report, "negative")) == 0
    assert readable("a_b_c") == "a b c" and readable("Tight junction") == "Tight junction"
    assert top_genes_display(report, 1).index.tolist() == [1]
    # the saved enrichment keeps the libraries' own spelling
    assert report.enrichment["term"].iloc[0] == long_term


def test_class_dropdown_holds_figure_interpretation_tables_and_ranks():
    modules = _five_gene_modules()
    ranks = gene_ranks(modules, "a", ["g0", "g2", "nope"], min_genes=2)
    fig, _ = plt.subplots(figsize=(4, 3))
    figure = bookkit.figure_markdown(fig, "fig-celltyping-a", "Cell type a.")
    text = class_dropdown("a", figure, _report(), modules, auroc=0.75, ranks=ranks)
    assert text.startswith("::::{dropdown} a\n")
    assert "```{figure} data:image/svg+xml;base64," in text and ":name: fig-celltyping-a" in text
    assert text.index("```{figure}") < text.index("**Module 0.**")  # the figure comes first
    assert not plt.fignum_exists(fig.number)  # the embedded figure is closed
    assert "generated" not in text.lower()
    assert "**Module 0.** Module 0 of a has eigenvalue λ = 1" in text
    assert "separates a cells from the rest with AUROC 0.75 (a cells score high)" in text
    assert "- **Positive pole**: led by g0, g4. Enriched: T1; T2." in text
    assert "Key terms" not in text  # named by the interpretation already
    assert "**Enrichment of the positive pole** (top 15 by adjusted p)" in text  # module_report_parts follow
    assert text.endswith(  # 5 genes: top lists of 2 per sign; genes outside them only counted
        "**The post's top-10 genes (both poles) in our module 0**: g0 (positive, position 1) is in the top-2 "
        "list of their sign; 1 gene is outside the top lists; nope is not among the genes of the data.\n\n::::"
    )
    assert "top-10" not in class_dropdown("a", figure, _report(), modules, auroc=0.75)


def test_figure_names_and_captions():
    assert kit.figure_name("Ngn3 high EP") == "fig-celltyping-ngn3-high-ep"
    assert kit.figure_name("Pre-endocrine") == "fig-celltyping-pre-endocrine"
    modules = Modules(np.array([[3.0, 2.0, 1.0, -1.0]]), np.eye(4)[None], ["Alpha"], list("wxyz"))
    caption = kit.modules_caption("Alpha", 0.9812, modules)
    assert "Module 0 separates Alpha cells from the rest with AUROC 0.98." in caption
    assert caption.endswith("The reproducibility of these modules is unknown (a single fit).")
    modules.reliability = _reliability("Alpha", {0: 0.97, 1: 0.42, 2: 0.8})
    assert kit.modules_caption("Alpha", 0.9812, modules).endswith(
        "Split-half |cos| over the 6-seed ensemble (reproducible from 0.8, see {ref}`trust-ensembles`); "
        "reproducible: module 0 (0.97) and module 2 (0.80); not reproducible, so not interpreted: module 1 (0.42)."
    )


def _reliability(output: str, cosines: dict) -> pd.DataFrame:
    """A reliability table as bc.tl.module_reliability gives it, for a 6-seed ensemble, from split-half |cos|."""
    return pd.DataFrame(
        {
            "output": output,
            "module": list(cosines),
            "split_half_cos": list(cosines.values()),
            "n_members": 6,
            "reproducible": pd.array([c >= 0.8 for c in cosines.values()], dtype="boolean"),
        }
    )


def test_reliability_sentences_gate_the_interpretation():
    modules = Modules(np.array([[3.0, 1.0, -2.0]]), np.eye(3)[None], ["Beta"], ["x", "y", "z"])
    genes = bc.top_genes(modules, "Beta", min_genes=1)
    empty = pd.DataFrame(columns=["sign", "term"])
    kept = ModuleReport("Beta", 0, 3.0, genes, empty, reproducible=True, split_half_cos=0.91, n_members=6)
    text = module_interpretation(kept, modules, n_genes=1)
    assert "It is reproducible: the two halves of the 6-seed ensemble give it with |cos| 0.91 (rule: ≥ 0.8" in text
    assert "**Positive pole**: led by x." in text
    dropped = dataclasses.replace(kept, reproducible=False, split_half_cos=0.31)
    text = module_interpretation(dropped, modules, auroc=0.9, n_genes=1)
    assert "It is not reproducible" in text and "|cos| 0.31" in text
    assert text.endswith("Its genes are listed but not interpreted.") and "Positive pole" not in text
    assert "unknown (a single fit)" in module_interpretation(ModuleReport("Beta", 0, 3.0, genes, empty), modules)
    small = Modules(np.array([[10.0, 0.5, -10.0]]), np.eye(3)[None], ["Beta"], ["x", "y", "z"])
    text = module_interpretation(ModuleReport("Beta", 1, 0.5, genes, empty), small)
    assert "carries 0.12% of ‖Q‖²" in text  # 0.25 / 200.25, not rounded to 0%


def test_library_and_summary_displays_fit():
    table = pd.DataFrame(
        {
            "used here": ["GO_Molecular_Function_2022", "KEGG_2019_Mouse"],
            "match": ["stand-in", "exact"],
            "source": ["x.gmt in data/genesets", "y"],
            "gene sets": [1963, 303],
            "mouse genes matched": ["by upper-cased symbol to human symbols", "by symbol (mouse)"],
        },
        index=pd.Index(["GO_Molecular_Function_2023", "KEGG_2019_Mouse"], name="post's library"),
    )
    shown = kit.library_display(table)
    assert shown.index.tolist() == ["GO Molecular Function 2023", "KEGG 2019 Mouse"]
    assert shown["symbols"].tolist() == ["human (upper-cased)", "mouse"]
    assert shown["gene sets"].tolist() == [1963, 303]
    assert shown.shape[1] + 1 <= bookkit.MAX_COLUMNS
    summary = pd.DataFrame(  # the columns in the order the chapter's summary_table call gives them
        [[10, 0.9, 0.95, 0.5, 0.9, "0 (0.95)", 0, 0.01, "A, B", "C", "TERM_ONE", "–"]],
        index=pd.Index(["Beta"], name="output"),
        columns=["validation cells", "validation accuracy", "AUROC module 0", "share of ‖Q‖² in λ0",
                 "|λmin| / λ0", "best of modules 0–2 (AUROC)", "module", "eigenvalue", *kit.SUMMARY_GENES],
    )  # fmt: skip
    numbers, genes = kit.summary_numbers(summary), kit.summary_genes(summary)
    assert numbers.columns.tolist() == ["cell type", *kit.SUMMARY_NUMBERS]
    assert numbers["cell type"].tolist() == ["Beta"] and numbers["eigenvalue"].tolist() == [0.01]
    assert genes["positive terms"].tolist() == ["TERM ONE"] and genes["negative terms"].tolist() == ["–"]
    assert summary.loc["Beta", "positive terms"] == "TERM_ONE"  # the saved summary is left as it is
    # together they show every column of the summary but the constant module number, each fitting the column
    assert set(numbers.columns) | set(genes.columns) == set(summary.columns) - {"module"} | {"cell type"}
    html = bookkit.table(numbers, index=False, formats=kit.SUMMARY_FORMATS).html  # raises above MAX_COLUMNS
    assert ">0.900</td>" in html and ">0.0100</td>" in html and ">0.50</td>" in html
    bookkit.table(genes, index=False)


def test_module_interpretation_numbers():
    modules = Modules(np.array([[3.0, 1.0, -2.0]]), np.eye(3)[None], ["Beta"], ["x", "y", "z"])
    genes = bc.top_genes(modules, "Beta", min_genes=1)
    report = ModuleReport("Beta", 0, 3.0, genes, pd.DataFrame(columns=["sign", "term"]))
    text = module_interpretation(report, modules, auroc=0.904, n_genes=1)
    # 3 / 1, 3 / |-2| and 9 / (9 + 1 + 4)
    assert "λ = 3 (3.0× the next positive eigenvalue and 1.50× the largest negative one in magnitude)" in text
    assert "carries 64% of ‖Q‖²." in text
    assert "separates Beta cells from the rest with AUROC 0.90 (Beta cells score high)" in text
    assert "**Positive pole**: led by x." in text
    assert "score low" in module_interpretation(report, modules, auroc=0.2, target="β")
    negative = ModuleReport("Beta", 2, -2.0, genes, pd.DataFrame(columns=["sign", "term"]))
    text = module_interpretation(negative, modules)
    assert "λ = -2 (0.67× the largest positive one in magnitude) and carries 29% of ‖Q‖²." in text
    assert "AUROC" not in text


def test_module_overview_figure():
    modules = Modules(np.array([[2.0, 1.0, -0.5]]), np.eye(3)[None], ["A"], ["x", "y", "z"])
    labels = np.array(["A"] * 5 + ["B"] * 5)
    scores = np.c_[np.arange(10.0), np.arange(10.0)[::-1], np.zeros(10)]
    fig = bc.pl.module_overview(modules, "A", scores, labels)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[1:] == [
        "module 0: λ = 2\nreproducibility unknown\nAUROC(A) = 0.00",
        "module 1: λ = 1\nreproducibility unknown\nAUROC(A) = 1.00",
        "module 2: λ = -0.5\nreproducibility unknown\nAUROC(A) = 0.50",
    ]
    plt.close(fig)
    fig = bc.pl.module_overview(modules, "A", scores[:, :2], labels, target=np.arange(10.0))
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()][1:] == [
        "module 0: λ = 2\nreproducibility unknown\nr = 1.00",
        "module 1: λ = 1\nreproducibility unknown\nr = -1.00",
    ]
    plt.close(fig)
    with pytest.raises(ValueError, match="highlight 'C' is not a label"):
        bc.pl.module_overview(modules, "A", scores, labels, highlight="C")
    with pytest.raises(ValueError, match="labels have 3 entries"):
        bc.pl.module_overview(modules, "A", scores, labels[:3])


def test_real_model_orientation_gives_auroc_above_half():
    """On a model trained to tell two planted groups apart, the oriented module 0 scores the target high."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.gamma(1.0, size=(120, 10)).astype(np.float32)
    labels = np.repeat(["A", "B"], 60)
    X[:60, 0] += 3.0  # A expresses gene 0
    X[60:, 1] += 3.0  # B expresses gene 1
    result = bc.fit(X, labels, epochs=30, lr=1e-2, n_hidden=4, progress=False)
    modules = orient_modules(bc.eigendecompose(result.model, result.output_names), X, labels)
    for out in ("A", "B"):
        auroc = module_auroc(bc.module_scores(X, modules, out, n_modules=1), labels == out)
        assert auroc[0] > 0.9


def test_further_modules_read_reproducible_modules_beyond_0_like_module_0():
    modules = Modules(np.array([[3.0, 1.0, -2.0]]), np.eye(3)[None], ["Beta"], ["x", "y", "z"])
    genes = bc.top_genes(modules, "Beta", module=1, min_genes=1)
    empty = pd.DataFrame(columns=["sign", "term"])
    one = ModuleReport("Beta", 1, 1.0, genes, empty, reproducible=True, split_half_cos=0.9, n_members=6)
    auroc = pd.DataFrame([[0.99, 0.7, 0.5]], index=["Beta"])
    parts = kit.further_modules({("Beta", 1): one}, "Beta", modules, auroc)
    assert parts[0].startswith("**Module 1** (reproducible, so read like module 0). Module 1 of Beta has")
    assert "AUROC 0.70" in parts[0] and "|cos| 0.90" in parts[0]
    assert list(parts[1].columns) == ["positive", "negative"]  # its top genes
    assert kit.further_modules({("Beta", 1): one}, "Alpha", modules, auroc) == []


def test_calls_and_the_commonest_error_counted_by_hand():
    adata = AnnData(np.zeros((6, 1), dtype=np.float32))
    adata.obs["truth"] = ["A", "A", "A", "B", "B", "C"]
    adata.obs["m_prediction"] = ["A", "B", "B", "C", "B", "A"]  # A → B twice, B → C once, C → A once
    assert list(kit.calls(adata, "truth", "m")) == ["A → A", "A → B", "A → B", "B → C", "B → B", "C → A"]
    assert kit.commonest_error(adata, "truth", "m") == ("A", "B", 2)


def test_error_sentences_flip_with_the_data():
    columns = ["module 0", "module -1", "rest"]
    truth = pd.DataFrame([[4.0, -1.0, 0.0], [3.9, -1.0, 0.0]], columns=columns)  # as much of the true program
    called = pd.DataFrame([[1.0, -2.0, 0.0], [3.0, -2.0, 0.0]], columns=columns)  # more of the called one
    text = kit.error_sentences(truth, called, "EP", "Ductal")
    assert "contributes 4.0 to the EP logit of the cells called correctly and 3.9" in text
    assert "carry about as much of the EP program and more of the Ductal one" in text
    assert "(2.9 for EP, 1.0 for Ductal; correct calls 3.0 and -1.0)" in text
    assert text.endswith("show that the Ductal program they carry decides the call.")
    lacking = kit.error_sentences(truth.assign(**{"module 0": [4.0, 1.0]}), called, "EP", "Ductal")
    assert "carry less of the EP program" in lacking and "the EP program they lack decides" in lacking
