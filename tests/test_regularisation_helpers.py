"""Helpers of the regularisation chapter (notebooks/bookkit/regularisation.py): display tables, the stability
figure and the sentences that change with the data, on small evaluation tables written out by hand."""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "notebooks"))  # the book's helpers: bookkit
import bookkit  # noqa: E402
from bookkit import regularisation as kit  # noqa: E402

NAN = np.nan


def _table(task="regression", cos12=(0.12, 0.44), early=True, planted=True):
    """An evaluation table as ``evaluate_settings`` returns it (plus recovery), three settings and baselines."""
    metric, second = ("accuracy", "macro-F1") if task == "classification" else ("R²", "MAE")
    rows = {
        "post (100 epochs)": [0.47, 0.478, 0.28, 0.016, 12, 100, 1000, 1.0, 1, NAN, NAN, "bilinear MLP"],
        "post settings": [0.45, 0.454, 0.29, -0.006, 12, 15, 1000, 0.15, 3, 0.81, cos12[0], "bilinear MLP"],
        "gene sets 0.1": [0.46, 0.463, 0.28, -0.007, 15, 15, 990, 0.22, 3, 0.93, cos12[1], "bilinear MLP"],
        "linear": [0.46, 0.464, 0.35, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, "linear"],
    }
    if early:
        rows["early stopping"] = [0.46, 0.461, 0.29, -0.004, 12, 15, 1000, 0.15, 1, NAN, NAN, "bilinear MLP"]
    columns = [
        f"validation {metric}", f"test {metric}", f"test {second}", "gap (val − train loss)", "best epoch",
        "epochs trained", "genes used", "relative cost", "seeds", "module 0 |cos|", "modules 1–2 |cos|", "model",
    ]  # fmt: skip
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    counts = ["best epoch", "epochs trained", "genes used", "seeds"]
    table[counts] = table[counts].astype("Int64")
    if planted:
        # drug A: the post's fit is level with the Wilcoxon test; drug B: it falls short, one other setting reaches
        table["AUROC A"] = [0.99, 0.98, 0.97, NAN] + ([0.99] if early else [])
        table["AUROC B"] = [0.80, 0.85, 0.97, NAN] + ([0.90] if early else [])
        table["moderate-dose AUROC"] = [0.61, NAN, 0.75, NAN] + ([0.60] if early else [])
        wilcoxon = {"AUROC A": 0.99, "AUROC B": 0.96, "model": "Wilcoxon test"}
        table = pd.concat([table, pd.DataFrame(wilcoxon, index=["Wilcoxon test"])])
    return table


def _cells(html: str) -> list[str]:
    """The texts of the ``<td>`` cells of ``html``, in order."""
    return [cell.split(">", 1)[1].split("</td>", 1)[0] for cell in html.split("<td")[1:]]


def test_accuracy_table_fits_the_column_names_the_baseline_and_dashes_what_a_baseline_lacks():
    shown = kit.accuracy_table(_table(), title="Dose (simulated data)", link="x.csv")
    html = shown.html
    assert html.startswith('<p class="bookkit-table-title"><strong>Dose (simulated data)</strong></p>')
    assert "Wilcoxon test" not in html  # not a model with scores
    assert "ridge regression" in html and ">linear<" not in html
    assert "12 of 100" in html  # the epoch kept, of the epochs trained
    assert "−0.006" in html  # a true minus sign
    assert "1,000" in html  # counts with a thousands separator
    assert "nan" not in html.lower()
    row = html[html.index("ridge regression") :]
    # scores to three decimals; gap, epoch, genes and cost are not defined for a linear model
    assert _cells(row)[:7] == ["0.460", "0.464", "0.350", "—", "—", "—", "—"]
    assert 'href="../results/x.csv"' in html


def test_planted_table_only_on_simulated_cells():
    class Simulated:
        uns = {
            "planted": {
                "programs": pd.DataFrame(
                    {
                        "name": ["b_hill", "b_bell"],
                        "drug": ["B", "B"],
                        "shape": ["hill", "bell"],
                        "primary": [True, False],
                    }
                )
            }
        }

    assert kit.planted_table(Simulated, _table(planted=False), title="t", link="x.csv") is None
    html = kit.planted_table(Simulated, _table(), title="t", link="x.csv").html
    assert "Wilcoxon test" in html and "B, moderate dose" in html and ">AUROC A<" not in html
    assert "ridge regression" not in html and ">linear<" not in html  # baselines without modules are left out


def test_dose_sentences_compare_each_drug_with_the_wilcoxon_test():
    text = kit.dose_sentences(_table(), "gene sets 0.1", "simulated data")
    assert "level (within 0.02) with ridge regression's 0.464" in text  # 0.478 against 0.464
    assert "level with it for A" in text
    # drug B: 0.80 against 0.96; of the 3 other settings only gene sets 0.1 (0.97) reaches 0.94
    assert "B (0.800 against 0.960; reached by 1 of the 3 other settings)" in text
    assert "only under *gene sets 0.1*, not under the post's settings" in text
    assert "AUROC" not in kit.dose_sentences(_table(planted=False), "gene sets 0.1", "sci-Plex2 data")


def test_dose_takeaway_says_whether_modules_1_2_become_reproducible():
    short = kit.dose_takeaway(_table(), "gene sets 0.1", "simulated data")
    assert "from 0.12 to 0.44, still short of reproducible" in short
    assert "only under “gene sets 0.1”" in short
    stable = kit.dose_takeaway(_table(cos12=(0.2, 0.95), planted=False), "gene sets 0.1", "sci-Plex2 data")
    assert stable.endswith("from 0.20 to 0.95, reproducible.")


def test_early_stopping_sentence_names_where_it_was_trained_and_why_not_elsewhere():
    tables = {"dose": _table(), "cells": _table(early=False)}
    tables["cells"].loc["post (100 epochs)", "best epoch"] = 98
    names = {"dose": "the dose task", "cells": "cell typing"}
    text = kit.early_stopping_sentence(tables, names, patience=3)
    assert "On the dose task the post's fit has its lowest validation loss at epoch 12 of 100" in text
    assert "stopped after 15 epochs, with test R² 0.461 against 0.478" in text
    assert "On cell typing (epoch 98) the lowest validation loss comes within 3 epochs of the end" in text


def test_held_out_sentence_names_the_best_and_next_best_model_per_measure():
    table = pd.DataFrame(
        {"test R²": [0.39, 0.389, 0.477], "test MAE": [0.421, 0.412, 0.428]},
        index=["post settings", "gene sets 0.1", "linear"],
    )
    assert kit.held_out_sentence("dose 10 held out", table) == (
        "With dose 10 held out, ridge regression has the highest test R² (0.477, against 0.39 for post "
        "settings), and gene sets 0.1 the lowest mean absolute error (0.412, against 0.421 for post settings)."
    )
    table["test MAE"] = [0.5, 0.6, 0.1]
    table["test R²"] = [-25.5, -9.77, -4.85]
    assert kit.held_out_sentence("one lineage held out", table) == (
        "With one lineage held out, ridge regression has the highest test R² (−4.85, against −9.77 for gene "
        "sets 0.1) and the lowest mean absolute error (0.1, against 0.5 for post settings)."
    )


def test_held_out_table_links_every_split_s_file():
    tables = {"lineage": _table(planted=False), "dose": _table(planted=False)}
    held_out = pd.concat(tables, names=["split", "setting"])
    html = kit.held_out_table(held_out, title="t", links=["a.csv", "b.csv"]).html
    assert 'href="../results/a.csv"' in html and 'href="../results/b.csv"' in html
    assert html.count(">ridge regression<") == 2 and ">linear<" not in html  # one per split, renamed


def test_stability_figure_is_readable_at_page_width_two_panels_a_row():
    tables = {"a": _table(), "b": _table(), "c": _table()}
    scores = dict.fromkeys(tables, "test R²")
    chosen = dict.fromkeys(tables, "gene sets 0.1")
    fig = kit.stability_figure(tables, scores, chosen, "post (100 epochs)", suffix={"c": " (simulated data)"})
    try:
        assert bookkit.small_text(fig) == []
        panels = [ax for ax in fig.axes if ax.axison]
        assert len(panels) == 3 and fig.axes[0].get_gridspec().ncols == 2
        assert [ax.get_title() for ax in panels] == ["a", "b", "c (simulated data)"]
        assert fig.get_size_inches()[0] <= bookkit.COLUMN_INCHES
    finally:
        plt.close(fig)


def test_summary_table_relabels_tasks_and_dashes_single_seed_stability():
    tables = {"dose": _table()}
    side = kit.side_by_side(tables, {"dose": "test R²"}, {"dose": ["post (100 epochs)", "post settings"]})
    html = kit.summary_table(side, {"dose": "dose (simulated data) (R²)"}, title="t", link="s.csv").html
    assert "dose (simulated data) (R²)" in html
    # test score, genes used, relative cost, then no stability for the one-seed fit
    assert _cells(html[html.index("post (100 epochs)") :])[:5] == ["0.478", "1,000", "1.000", "—", "—"]


def test_findings_for_the_introduction_follow_modules_1_2_stability():
    tables = {"cell typing": _table("classification", cos12=(0.15, 0.15)), "dose": _table(cos12=(0.12, 0.44))}
    chosen = dict.fromkeys(tables, "gene sets 0.1")
    assert kit.findings_answer(tables, chosen).startswith("No: ")
    labels = {"cell typing": "cell typing", "dose": "simulated dose"}
    assert kit.findings_number(tables, chosen, labels) == (
        "modules 1–2 |cos| across seeds 0.15 (cell typing), 0.44 (simulated dose); "
        "best test accuracy 47.8% (logistic regression 46.4%)"
    )
    tables["dose"] = _table(cos12=(0.12, 0.95))
    assert kit.findings_answer(tables, chosen).startswith("Only on dose: ")
