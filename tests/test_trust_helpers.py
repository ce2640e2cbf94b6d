"""Helpers of the trust chapter (05): display tables keep every number, figures read at page width."""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "notebooks"))  # the book's helpers: bookkit
import bookkit  # noqa: E402
from bookkit import trust as kit  # noqa: E402

CLASSES = ["Ductal", "Ngn3 low EP", "Ngn3 high EP", "Pre-endocrine", "Beta", "Alpha", "Delta", "Epsilon"]
FREQS = [f"frequency {i}" for i in range(4)]


@pytest.fixture
def cell_scores():
    rng = np.random.default_rng(0)
    index = ["accuracy", "macro_f1"] + [f"recall {c}" for c in CLASSES]
    columns = ["bilinear MLP", "bilinear MLP (wd tuned)", "ReLU MLP", "linear"]
    return pd.DataFrame(rng.uniform(0.5, 1, (len(index), 4)), index=index, columns=columns)


@pytest.fixture
def freq_scores():
    rng = np.random.default_rng(1)
    index = ["mae", "r2"] + [f"mae {f}" for f in FREQS] + [f"r2 {f}" for f in FREQS]
    return pd.DataFrame(rng.uniform(-0.2, 1, (len(index), 2)), index=index, columns=["bilinear MLP", "linear"])


@pytest.fixture
def stability():
    """A stability table as bilinear_core.stability.stability_table writes it: set, module, output."""
    rng = np.random.default_rng(2)
    rows = [
        dict(varied=v, module_name=m, output=o)
        for v in ("seed", "split")
        for m in ("0", "1", "2", "last")
        for o in CLASSES
    ]
    table = pd.DataFrame(rows)
    for column in ("mean_abs_cos", "mean_jaccard", "eigenvalue_mean", "eigenvalue_cv"):
        table[column] = rng.uniform(0, 1, len(table))
    return table


def test_frequency_score_table_has_every_score_once_and_nothing_missing(freq_scores):
    shown = kit.frequency_score_table(freq_scores, FREQS)
    assert not shown.isna().any().any()
    assert list(shown.index) == [*FREQS, "mean over frequencies"]
    for model, name in kit.FREQ_MODELS.items():
        for f in FREQS:
            assert shown.loc[f, ("R²", name)] == freq_scores.loc[f"r2 {f}", model]
            assert shown.loc[f, ("MAE", name)] == freq_scores.loc[f"mae {f}", model]
        assert shown.loc["mean over frequencies", ("R²", name)] == freq_scores.loc["r2", model]
        assert shown.loc["mean over frequencies", ("MAE", name)] == freq_scores.loc["mae", model]


def test_cell_score_table_renames_only(cell_scores):
    shown = kit.cell_score_table(cell_scores)
    np.testing.assert_array_equal(shown.to_numpy(), cell_scores.to_numpy())
    assert list(shown.index[:2]) == ["accuracy", "macro-F1"]
    assert "logistic regression" in shown.columns and "linear" not in shown.columns


def test_stability_long_keeps_module_0_values_in_output_order(stability):
    shown = kit.stability_long(stability, CLASSES)
    assert list(shown.index.get_level_values(0)[::2]) == CLASSES
    assert list(shown.columns) == list(kit.STABILITY_COLUMNS.values())
    expected = stability[(stability["module_name"] == "0") & (stability["output"] == "Delta")]
    expected = expected.set_index("varied")
    for varied, label in kit.VARIED.items():
        assert shown.loc[("Delta", label), "mean |cos|"] == expected.loc[varied, "mean_abs_cos"]
        assert shown.loc[("Delta", label), "eigenvalue CV"] == expected.loc[varied, "eigenvalue_cv"]
    assert bookkit.table(shown)  # fits the column limit


def test_tuning_table_marks_the_chosen_value():
    one = pd.DataFrame({"value": [0.1, 1.0], "validation accuracy": [0.8, 0.9], "selected": [False, True]})
    tuning = pd.concat({"a": one, "b": one.assign(selected=[True, False])}, names=["model", "row"])
    shown = kit.tuning_table(tuning)
    assert list(shown["chosen"]) == ["", "✓", "✓", ""]
    assert list(shown["model"]) == ["a", "a", "b", "b"]
    assert "selected" not in shown
    assert "✓" in bookkit.table(shown, formats={"value tried": "{:g}"}, index=False).html


def test_weight_decay_table_writes_the_decays_as_given():
    summary = pd.DataFrame({"mean_abs_cos": [0.9, 0.8, 0.7]}, index=pd.Index([0.35 / 10, 0.35, 0.35 * 10]))
    assert list(kit.weight_decay_table(summary).index) == ["0.035", "0.35", "3.5"]


def test_gap_phrase_direction_and_chance():
    assert kit.gap_phrase(-0.012, "logistic regression", 0.3) == (
        "1.2 percentage points less accurate than logistic regression, a difference within chance"
    )
    assert "more accurate" in kit.gap_phrase(0.02, "x", 0.001)
    assert kit.gap_phrase(0.02, "x", 0.001).endswith("more than chance")


def test_figures_read_at_page_width(cell_scores, freq_scores, stability):
    overlap = pd.DataFrame(
        [
            dict(output=o, pole=p, jaccard=0.3, overlap=20, adjusted_p=1e-12)
            for o in CLASSES
            for p in ("positive", "negative")
        ]
    )
    wd = pd.DataFrame([dict(weight_decay=w, output=o, mean_abs_cos=0.9) for w in (0.035, 0.35, 3.5) for o in CLASSES])
    energy = pd.concat(
        {
            "cell typing": pd.DataFrame({"top_1": 0.5, "top_3": 0.9, "top_10": 1.0}, index=CLASSES),
            "frequencies": pd.DataFrame({"top_1": 0.1, "top_3": 0.2, "top_10": 0.4}, index=FREQS),
        },
        names=["task", "output"],
    )
    figures = [
        kit.test_scores_figure(cell_scores, freq_scores),
        kit.marker_overlap_heatmap(overlap, CLASSES, 20),
        kit.stability_heatmaps(stability, CLASSES, ["0", "1", "2", "last"], n_runs=3),
        kit.weight_decay_heatmap(wd, CLASSES, n_runs=3),
        kit.spectrum_energy_figure(energy),
    ]
    for fig in figures:
        assert bookkit.small_text(fig) == []
        assert fig.get_size_inches()[0] <= bookkit.COLUMN_INCHES
        plt.close(fig)


def _agreement(cosines: dict) -> pd.DataFrame:
    """An ensemble_agreement-like table: ``{(size, module): [cos per output]}``, two groups at size 1."""
    rows = []
    for (size, module), values in cosines.items():
        for group in range(2 if size == 1 else 1):
            for i, value in enumerate(values):
                rows.append(dict(task="cell typing", size=size, group=group, output=f"o{i}", module=module,
                                 split_half_cos=value + (0.02 if group else -0.02) * (size == 1)))  # fmt: skip
    return pd.DataFrame(rows)


def test_agreement_summary_and_the_seeds_sentence():
    modules = kit.AGREEMENT_MODULES
    cosines = {(k, m): [0.9, 0.95, 0.97] if m in (0, -1) else [0.3, 0.4 + 0.02 * k, 0.85] for k in (1, 3, 10)
               for m in modules}  # fmt: skip
    cosines[10, 1] = [0.8, 0.85, 0.9]
    summary = kit.agreement_summary(_agreement(cosines))
    # median over outputs of the mean over groups: the ±0.02 of the two size-1 groups cancel
    assert summary.loc[("cell typing", 1), 0] == pytest.approx(0.95)
    assert summary.loc[("cell typing", 3), 2] == pytest.approx(0.46)
    assert list(summary.columns) == modules and kit.agreement_table(summary).columns[3] == "module −1"
    assert kit.seeds_needed(summary, "cell typing", 1, 0.8) == 10
    assert kit.seeds_needed(summary, "cell typing", 2, 0.8) is None
    assert kit.seeds_sentence(summary, "cell typing", 0.8) == (
        "For cell typing, the median split-half |cos| reaches 0.8 for modules 0 and −1 already between single "
        "fits, for module 1 from 10 seeds per ensemble and for module 2 not with up to 10"
    )
    low = summary * 0.1
    assert kit.seeds_sentence(low, "cell typing", 0.8) == (
        "For cell typing, no module reaches 0.8 with up to 10 seeds per ensemble"
    )
    fig = kit.agreement_figure(summary, 0.8, 0.02)
    assert [ax.get_title() for ax in fig.axes] == ["cell typing"]
    plt.close(fig)


def test_count_phrase():
    assert bookkit.count_phrase([True] * 8, "cell type") == "all 8 cell types"
    assert bookkit.count_phrase([True, False, True], "case") == "2 of 3 cases"
    assert bookkit.count_phrase([False] * 16, "case") == "none of the 16 cases"
    assert bookkit.count_phrase([True], "frequency") == "the one frequency"
