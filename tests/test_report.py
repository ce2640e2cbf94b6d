import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import bilinear_core as bc  # noqa: E402


def test_module_report_and_summary():
    torch.manual_seed(0)
    genes = [f"G{i}" for i in range(40)]
    modules = bc.eigendecompose(bc.BilinearMLP(40, 3, 2), output_names=["x", "y"], var_names=genes)
    top = bc.top_genes(modules, "y", min_genes=5)
    positive = top.loc[top["sign"] == "positive", "gene"].tolist()
    library = {"toy": {"planted": positive, "other": genes[::7]}}
    report = bc.report.module_report(modules, "y", min_genes=5, libraries=library)
    assert report.top_table(3)["positive"].tolist() == positive[:3]
    assert report.key_terms("positive") == ["planted"]
    assert report.eigenvalue == modules.values("y")[0]
    summary = report.summary(n_genes=2)
    assert f"led by {positive[0]}, {positive[1]}" in summary and "planted" in summary
    assert "no term passes" in summary.splitlines()[1]


def test_dropdown_markdown():
    fig, ax = plt.subplots()
    text = bc.report.dropdown("Beta", "some *text*", fig, pd.DataFrame({"a": [1]}))
    assert text.startswith("::::{dropdown} Beta") and text.endswith("::::")
    assert "data:image/png;base64," in text and "some *text*" in text
    assert "|   a |" in text  # the DataFrame as a Markdown table
    assert not plt.fignum_exists(fig.number)  # embedded figures are closed


def test_top_table_is_capped_at_the_list_length():
    torch.manual_seed(0)
    modules = bc.eigendecompose(bc.BilinearMLP(12, 2, 1), var_names=[f"G{i}" for i in range(12)])
    report = bc.report.module_report(modules, 0, min_genes=3, libraries={"toy": {"t": ["G0", "G1"]}})
    assert report.top_table(10).shape == (3, 2)
