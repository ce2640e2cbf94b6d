"""Helpers of the regularisation chapter (06): agreement measures, display tables, the stability figure, and the
sentences that change with the data (the dose task runs on real or simulated sci-Plex2)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from bilinear_core.interpret import Modules
from bilinear_core.perturbation import planted_auroc

import bookkit
from bookkit import join_and


def single_threaded_pools() -> None:
    """Limit the BLAS and OpenMP thread pools of every library loaded so far to one thread (threadpoolctl).

    The chapter's fits run in two processes, one thread each. Only libraries already imported are limited,
    so call it after the imports.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def marker_agreement(modules: Modules, markers: dict, n_genes: int) -> float:
    """Median over outputs of the Jaccard index of module 0's better-matching pole with the output's markers.

    :func:`bilinear_core.stability.marker_overlap` (the trust chapter's measure), one number per fit.
    """
    from bilinear_core.stability import marker_overlap

    overlap = marker_overlap(modules, markers, module=0, n_genes=n_genes)
    return float(overlap.groupby("output")["jaccard"].max().median())


def _moderate_programs(adata) -> tuple[str, str, str]:
    """``(drug, monotone program, moderate-dose program)`` of the simulation's bell-shaped program."""
    programs = adata.uns["planted"]["programs"]
    bell = programs[programs["shape"] == "bell"].iloc[0]
    hill = programs[(programs["drug"] == bell["drug"]) & programs["primary"]].iloc[0]
    return bell["drug"], hill["name"], bell["name"]


def planted_aurocs(adata, modules: Modules, n_modules: int = 3) -> pd.Series:
    """Planted-truth recovery of one fit on the simulation: one value per drug and the moderate-dose capture.

    ``AUROC <drug>``: the drug's primary planted genes ranked by |loading| in module 0 (sign-free, so the
    modules need no orientation). ``moderate-dose AUROC``: among the drug's modules 0 … ``n_modules − 1``
    whose loadings rank the moderate-dose program's genes above the monotone program's, the highest
    AUROC of the moderate-dose genes (NaN when no module does).
    """
    planted = adata.uns["planted"]
    programs = planted["programs"]
    genes = adata.var_names
    values = {
        f"AUROC {p.drug}": planted_auroc(
            modules.vectors(p.drug)[:, 0], genes, planted["genes"][p.name]
        )
        for p in programs[programs["primary"]].itertuples()
    }
    drug, hill, bell = _moderate_programs(adata)
    vectors = modules.vectors(drug)[:, :n_modules]
    captured = []
    for m in range(vectors.shape[1]):
        moderate = planted_auroc(vectors[:, m], genes, planted["genes"][bell])
        if moderate > planted_auroc(vectors[:, m], genes, planted["genes"][hill]):
            captured.append(moderate)
    values["moderate-dose AUROC"] = max(captured) if captured else np.nan
    return pd.Series(values)


def wilcoxon_aurocs(adata, wilcoxon: pd.DataFrame) -> pd.Series:
    """The Wilcoxon baseline of :func:`planted_aurocs`: each drug's primary planted genes ranked by |z|."""
    planted = adata.uns["planted"]
    programs = planted["programs"]
    return pd.Series(
        {
            f"AUROC {p.drug}": planted_auroc(
                wilcoxon[p.drug].to_numpy(), adata.var_names, planted["genes"][p.name]
            )
            for p in programs[programs["primary"]].itertuples()
        }
    )


def stability_figure(
    tables: dict, scores: dict, chosen: dict, post: str, suffix: dict | None = None
):
    """Test score against module stability across seeds, one panel per task, two panels a row.

    ``tables`` maps a task to its evaluation table, ``scores`` to the score column plotted and ``chosen`` to
    the setting chosen on validation. Every setting trained with several seeds is a filled marker at its
    module-0 |cos| and an open one at its modules-1–2 |cos|, joined by a line; the baselines and the single
    fit ``post`` are horizontal lines. ``suffix`` adds to a task's panel title (e.g. "(simulated data)").
    The legend takes the panel left free; the figure fits the text column with text of at least 9 pt.
    """
    suffix = suffix or {}
    n_rows = (len(tables) + 2) // 2  # the panels plus the legend, two a row
    fig, axes = plt.subplots(
        n_rows, 2, figsize=(8.0, 3.4 * n_rows), constrained_layout=True
    )
    axes = np.atleast_1d(axes).ravel()
    lines = {
        "linear": ("black", "--", "linear (logistic / ridge)"),
        "ReLU MLP": ("tab:red", ":", "ReLU MLP"),
        post: ("tab:gray", "-.", f"{post}, one seed"),
    }
    for ax, (task, table) in zip(axes, tables.items()):
        score = scores[task]
        nets = table[(table["model"] == "bilinear MLP") & (table["seeds"] > 1)]
        levels = [table.loc[n, score] for n in lines if n in table.index]
        for name, row in nets.iterrows():
            color = "tab:orange" if name == chosen[task] else "tab:blue"
            x = [row["module 0 |cos|"], row["modules 1–2 |cos|"]]
            ax.plot(x, [row[score]] * 2, color=color, lw=0.8)
            ax.scatter(x[0], row[score], color=color, zorder=3)
            ax.scatter(x[1], row[score], facecolor="white", edgecolor=color, zorder=3)
            # the label left of the marker, unless it would leave the axes
            right = x[0] > 0.5
            # and under it, unless a line of the panel runs closer under than over it
            y = row[score]
            under = min((y - v for v in levels if v < y), default=np.inf)
            over = min((v - y for v in levels if v > y), default=np.inf)
            up = under < over
            ax.annotate(
                name, (x[0], y), fontsize=9, xytext=(-4 if right else 4, 6 if up else -6),
                textcoords="offset points", ha="right" if right else "left",
                va="bottom" if up else "top", color=color,
            )  # fmt: skip
        for name, (color, style, _) in lines.items():
            if name in table.index:
                ax.axhline(table.loc[name, score], color=color, ls=style, lw=1)
        ax.margins(y=0.15)  # room for the labels under the points
        ax.set(
            xlim=(0, 1.05),
            xlabel="|cos| across seeds",
            ylabel=score,
            title=f"{task}{suffix.get(task, '')}",
        )
    for ax in axes[len(tables) :]:
        ax.axis("off")
    handles = [
        Line2D([], [], color="tab:blue", marker="o", lw=0.8, label="post settings, 3 seeds"),
        Line2D([], [], color="tab:orange", marker="o", lw=0.8, label="chosen setting, 3 seeds"),
        Line2D([], [], color="gray", marker="o", ls="", label="filled: module 0"),
        Line2D([], [], color="gray", marker="o", ls="", markerfacecolor="white",
               label="open: modules 1–2"),
        *[Line2D([], [], color=c, ls=s, lw=1, label=label) for c, s, label in lines.values()],
    ]  # fmt: skip
    axes[-1].legend(handles=handles, loc="center", frameon=False)
    return fig


def regularisation_headline(
    tables: dict, scores: dict, chosen: dict, post: str, suffix: dict | None = None
) -> str:
    """The regularisation chapter in two sentences, for the book's introduction (plain text: glued).

    Per task the best test score of any bilinear setting against the linear baseline; then on how many
    tasks the setting chosen on validation makes modules 1–2 agree across seeds (|cos| ≥ 0.9).
    """
    suffix = suffix or {}
    parts = []
    for task, table in tables.items():
        score = scores[task]
        nets = table[table["model"] == "bilinear MLP"]
        best = nets[score].idxmax()
        name = "the post's 100-epoch fit" if best == post else f"“{best}”"
        parts.append(
            f"{task}{suffix.get(task, '')} {nets.loc[best, score]:.3f} with {name}, linear "
            f"{table.loc['linear', score]:.3f}"
        )
    cos = {t: tables[t].loc[chosen[t], "modules 1–2 |cos|"] for t in tables}
    stable = [t for t, value in cos.items() if value >= 0.9]
    where = join_and(stable) if stable else "no task"
    values = ", ".join(f"{value:.2f}" for value in cos.values())
    return (
        "Best held-out score of any bilinear setting against the linear baseline: "
        + "; ".join(parts)
        + f". The setting chosen on validation makes modules 1–2 stable on {where} "
        f"(|cos| across seeds {values})."
    )


def side_by_side(tables: dict, scores: dict, rows: dict) -> pd.DataFrame:
    """Each task's ``rows`` (setting names): test score, gap, stability, genes, cost and planted recovery."""
    columns = [
        "gap (val − train loss)",
        "best epoch",
        "genes used",
        "module 0 |cos|",
        "modules 1–2 |cos|",
        "relative cost",
    ]
    frames = {}
    for task, table in tables.items():
        names = [name for name in dict.fromkeys(rows[task]) if name in table.index]
        frame = table.loc[names, columns].copy()
        frame.insert(0, "test score", table.loc[names, scores[task]])
        frame.insert(0, "score", scores[task].removeprefix("test "))
        drugs = [c for c in table if c.startswith("AUROC ")]
        if drugs:
            frame["planted AUROC (mean over drugs)"] = table.loc[names, drugs].mean(
                axis=1
            )
            frame["moderate-dose AUROC"] = table.loc[names, "moderate-dose AUROC"]
        frames[task] = frame
    return pd.concat(frames, names=["task", "setting"])


#: The post's settings in the sweep's schedule: the control every setting of a sweep is compared with.
CONTROL = "post settings"
#: The post's own fit, 100 epochs, one seed: the reference.
POST = "post (100 epochs)"
#: Two scores within this of each other count as equal.
TOLERANCE = 0.02
#: The linear baseline's name on the page, by the kind of target.
LINEAR = {"accuracy": "logistic regression", "R²": "ridge regression"}


def _metric(table: pd.DataFrame) -> str:
    return "accuracy" if "test accuracy" in table else "R²"


def simulated_note(adata) -> str:
    """The warning at the top of the dose task when its cells are simulated; "" on the real sci-Plex2 file."""
    if not adata.uns["dataset"]["simulated"]:
        return ""
    return (
        ":::{admonition} Simulated data\n:class: warning\n"
        "The sci-Plex2 expression file could not be loaded here, so the dose task of this chapter (this "
        "section, the dose panel of {numref}`fig-reg-stability` and the held-out dose split) runs on "
        "simulated cells: sci-Plex2's design (drugs, doses, wells) with expression simulated by "
        "`bilinear_core.datasets.simulate` and gene programs planted by us. Its numbers test the options "
        "against a known truth; they are not findings about the drugs.\n:::"
    )


def with_recovery(adata, evaluation, wilcoxon: pd.DataFrame) -> pd.DataFrame:
    """The dose task's evaluation table with planted-truth recovery, when the cells are simulated.

    On the simulation, the columns of :func:`planted_aurocs` for every setting (module 0 of its first seed)
    and a ``Wilcoxon test`` row with :func:`wilcoxon_aurocs` of ``wilcoxon`` (|z| per gene and drug). On
    the real sci-Plex2 file there is no planted truth, and the table comes back as it is.
    """
    table = evaluation.table.copy()
    if not adata.uns["dataset"]["simulated"]:
        return table
    recovery = {n: planted_aurocs(adata, m[0]) for n, m in evaluation.modules.items()}
    recovery["Wilcoxon test"] = wilcoxon_aurocs(adata, wilcoxon)
    table = pd.concat([table, pd.DataFrame(recovery).T], axis=1)
    table.loc["Wilcoxon test", "model"] = "Wilcoxon test"
    return table


# ----------------------------------------------------------------------------------------- display tables
def _number_format(fmt: str):
    """A cell formatter: ``fmt`` with a true minus sign."""
    return lambda value: f"{value:{fmt}}".replace("-", "−")


def _titled(
    title: str,
    df: pd.DataFrame,
    *,
    precision: int = 3,
    formats: dict | None = None,
    **kwargs,
) -> bookkit.Table:
    """:func:`bookkit.table` of ``df`` under a bold title line (every table of the chapter has one).

    Every number column gets a format (counts with a thousands separator, other numbers ``precision``
    decimals, minus signs as "−"); ``formats`` maps columns to format specs that override it. They go to
    :func:`bookkit.table` for all columns at once: a partial ``formats`` there resets the other columns to
    pandas' default format.
    """
    full = {}
    for column in df.columns:
        if pd.api.types.is_integer_dtype(df[column]):
            full[column] = _number_format(",d")
        elif pd.api.types.is_float_dtype(df[column]):
            full[column] = _number_format(f",.{precision}f")
    full |= {c: _number_format(f) for c, f in (formats or {}).items()}
    shown = bookkit.table(df, formats=full, **kwargs)
    return bookkit.Table(
        f'<p class="bookkit-table-title"><strong>{title}</strong></p>{shown.html}'
    )


def accuracy_table(
    table: pd.DataFrame, *, title: str, link: str, gap_format: str | None = None
):
    """One task's held-out scores and what training did, one row per setting and baseline (7 columns).

    Validation and test score, the second test measure, the gap between validation and training loss at the
    epoch the model holds, that epoch of the epochs trained, the genes used and the relative cost. The
    linear baseline is named for what it is (logistic or ridge regression).
    """
    metric = _metric(table)
    second = "test macro-F1" if metric == "accuracy" else "test MAE"
    rows = table[table["model"] != "Wilcoxon test"]
    epochs = [
        None if pd.isna(best) else f"{best} of {trained}"
        for best, trained in zip(rows["best epoch"], rows["epochs trained"])
    ]
    shown = pd.DataFrame(
        {
            f"validation {metric}": rows[f"validation {metric}"],
            f"test {metric}": rows[f"test {metric}"],
            second: rows[second],
            "loss gap (val − train)": rows["gap (val − train loss)"],
            "epoch kept": epochs,
            "genes used": rows["genes used"],
            "relative cost": rows["relative cost"],
        },
        index=rows.index,
    ).rename(index={"linear": LINEAR[metric]})
    note = (
        "Loss gap: validation minus training loss at the epoch kept (the last one, or with early stopping "
        "the one of lowest validation loss). Relative cost: epochs × weights updated per step, against the "
        "post's 100-epoch fit. “—”: not defined for a baseline (a linear model has no epochs; the baselines "
        "use every gene and are not trained by the loop whose cost is counted)."
    )
    formats = {"loss gap (val − train)": gap_format} if gap_format else None
    return _titled(title, shown, formats=formats, link=link, note=note)


def marker_table(table: pd.DataFrame, *, title: str, link: str):
    """Cell typing: each bilinear setting's test accuracy, genes used and module 0's marker agreement."""
    nets = table[table["model"] == "bilinear MLP"]
    shown = nets[["test accuracy", "genes used", "marker Jaccard (module 0)"]].rename(
        columns={"marker Jaccard (module 0)": "marker Jaccard, module 0"}
    )
    return _titled(
        title, shown, precision=2, formats={"test accuracy": ".3f"}, link=link
    )


def planted_table(adata, table: pd.DataFrame, *, title: str, link: str):
    """Simulation only: module 0's AUROC of each drug's planted genes, and the moderate-dose capture.

    ``None`` when ``table`` has no planted-truth columns (the real sci-Plex2 file).
    """
    drugs = [c for c in table if c.startswith("AUROC ")]
    if not drugs:
        return None
    drug = _moderate_programs(adata)[0]
    rows = table[table["model"].isin(["bilinear MLP", "Wilcoxon test"])]
    shown = rows[drugs + ["moderate-dose AUROC"]].rename(
        columns={c: c.removeprefix("AUROC ") for c in drugs}
        | {"moderate-dose AUROC": f"{drug}, moderate dose"}
    )
    note = (
        f"“—” under {drug}, moderate dose: none of {drug}'s modules 0–2 ranks the moderate-dose program "
        "above the monotone one (the Wilcoxon test has no modules)."
    )
    return _titled(title, shown, link=link, note=note)


def summary_table(side: pd.DataFrame, labels: dict, *, title: str, link: str):
    """The reference, the control and the chosen setting of each task: score, genes, cost and stability."""
    columns = [
        "test score",
        "genes used",
        "relative cost",
        "module 0 |cos|",
        "modules 1–2 |cos|",
    ]
    shown = side[columns].rename(index=labels, level="task")
    note = "“—”: the post's 100-epoch fit was trained with one seed, so it has no agreement across seeds."
    return _titled(title, shown, link=link, note=note)


def held_out_table(held_out: pd.DataFrame, *, title: str, links: list[str]):
    """The non-random splits: validation and test scores and genes used of every model.

    ``links`` names the splits' CSV files in :data:`bookkit.RESULTS`; the note under the table links them.
    """
    columns = ["validation R²", "test R²", "test MAE", "genes used"]
    shown = held_out[columns].rename(index={"linear": LINEAR["R²"]}, level="setting")
    files = join_and([f'<a href="../results/{f}" download>{f}</a>' for f in links])
    note = f"“—”: ridge regression uses every gene. Whole tables: {files}."
    return _titled(title, shown, note=note)


# ---------------------------------------------------------------------------------- glued numbers, prose
def glue_task(prefix: str, table: pd.DataFrame, chosen: str) -> None:
    """Glue one task's numbers for the prose, as ``<prefix>_<name>``.

    ``post``, ``control`` and ``chosen_score`` (test score of the post's 100-epoch fit, the post's settings
    in the sweep's schedule and the chosen setting), ``chosen`` (its name), ``linear``, ``relu`` (when
    present), ``cos0_control``, ``cos0_chosen``, ``cos12_control``, ``cos12_chosen``; ``best`` and
    ``worst`` test scores of the bilinear settings with their ``best_name`` and ``worst_name``;
    ``gap_post``, ``gap_control``, ``gap_chosen`` (validation minus training loss); ``genes_all`` (genes
    of the post's fit), ``genes_min`` with ``genes_min_name``, ``chosen_cost``; and, with marker
    agreement, ``jaccard_post``, ``jaccard_control``, ``jaccard_chosen``, ``jaccard_best`` with its
    setting ``jaccard_best_name`` and test score ``jaccard_best_score``.
    """
    from myst_nb import glue

    score = f"test {_metric(table)}"
    values = {
        "post": table.loc[POST, score],
        "control": table.loc[CONTROL, score],
        "chosen": chosen,
        "chosen_score": table.loc[chosen, score],
        "linear": table.loc["linear", score],
        "cos0_control": table.loc[CONTROL, "module 0 |cos|"],
        "cos0_chosen": table.loc[chosen, "module 0 |cos|"],
        "cos12_control": table.loc[CONTROL, "modules 1–2 |cos|"],
        "cos12_chosen": table.loc[chosen, "modules 1–2 |cos|"],
    }
    nets = table[table["model"] == "bilinear MLP"]
    gap = "gap (val − train loss)"
    values |= {
        "best": nets[score].max(),
        "best_name": nets[score].idxmax(),
        "worst": nets[score].min(),
        "worst_name": nets[score].idxmin(),
        "gap_post": table.loc[POST, gap],
        "gap_control": table.loc[CONTROL, gap],
        "gap_chosen": table.loc[chosen, gap],
        "genes_all": table.loc[POST, "genes used"],
        "genes_min": nets["genes used"].min(),
        "genes_min_name": nets["genes used"].idxmin(),
        "chosen_cost": table.loc[chosen, "relative cost"],
    }
    if "ReLU MLP" in table.index:
        values["relu"] = table.loc["ReLU MLP", score]
    if "marker Jaccard (module 0)" in table:
        jaccard = table["marker Jaccard (module 0)"]
        best = jaccard.idxmax()
        values |= {
            "jaccard_post": jaccard[POST],
            "jaccard_control": jaccard[CONTROL],
            "jaccard_chosen": jaccard[chosen],
            "jaccard_best": jaccard[best],
            "jaccard_best_name": best,
            "jaccard_best_score": table.loc[best, score],
        }
    for name, value in values.items():
        glue(
            f"{prefix}_{name}",
            value if isinstance(value, str) else float(value),
            display=False,
        )


def early_stopping_sentence(tables: dict, labels: dict, patience: int) -> str:
    """Where early stopping was trained and what it did, from the epoch of the post's lowest validation loss."""
    best = {task: int(table.loc[POST, "best epoch"]) for task, table in tables.items()}
    trained = [t for t, table in tables.items() if "early stopping" in table.index]
    skipped = [t for t in tables if t not in trained]
    sentences = []
    for task in trained:
        table, metric = tables[task], _metric(tables[task])
        row = table.loc["early stopping"]
        sentences.append(
            f"On {labels[task]} the post's fit has its lowest validation loss at epoch {best[task]} of 100, "
            f"so early stopping was trained there: it stopped after {int(row['epochs trained'])} epochs, "
            f"with test {metric} {row[f'test {metric}']:.3f} against {table.loc[POST, f'test {metric}']:.3f} "
            "for the full 100 epochs."
        )
    if skipped:
        where = join_and([f"{labels[t]} (epoch {best[t]})" for t in skipped])
        sentences.append(
            f"On {where} the lowest validation loss comes within {patience} epochs of the end, so early "
            "stopping would not stop the fit and was not trained."
        )
    return " ".join(sentences)


def dose_sentences(table: pd.DataFrame, chosen: str, label: str) -> str:
    """The dose task in a few sentences: scores against the linear baseline, stability, planted recovery."""
    nets = table[table["model"] == "bilinear MLP"]
    score = "test R²"
    best, linear = nets[score].idxmax(), table.loc["linear", score]
    name = "the post's 100-epoch fit" if best == POST else f"*{best}*"
    relation = (
        "above"
        if nets.loc[best, score] > linear + TOLERANCE
        else (
            f"level (within {TOLERANCE}) with"
            if nets.loc[best, score] >= linear - TOLERANCE
            else "below"
        )
    )
    text = (
        f"On the dose task ({label}) the bilinear settings reach test R² {nets[score].min():.3f} to "
        f"{nets[score].max():.3f}; the best, {name}, is {relation} ridge regression's {linear:.3f}. "
        f"The chosen setting, *{chosen}*, agrees across seeds with |cos| "
        f"{table.loc[chosen, 'module 0 |cos|']:.2f} in module 0 and "
        f"{table.loc[chosen, 'modules 1–2 |cos|']:.2f} in modules 1–2, against "
        f"{table.loc[CONTROL, 'module 0 |cos|']:.2f} and {table.loc[CONTROL, 'modules 1–2 |cos|']:.2f} "
        "under the post's settings."
    )
    if any(c.startswith("AUROC ") for c in table):
        text += " " + _recovery_sentences(table, nets)
    return text


def _recovery_sentences(table: pd.DataFrame, nets: pd.DataFrame) -> str:
    """Planted recovery per drug against the Wilcoxon test, and the moderate-dose program's capture."""
    wilcoxon = table.loc["Wilcoxon test"]
    level, short = [], []
    for column in [c for c in table if c.startswith("AUROC ")]:
        drug = column.removeprefix("AUROC ")
        post, bar = table.loc[POST, column], wilcoxon[column] - TOLERANCE
        if post >= bar:
            level.append(drug)
            continue
        reach = nets.index[nets[column] >= bar]
        n_other = len(nets) - 1  # the post's 100-epoch fit is the one compared
        who = (
            f"{len(reach)} of the {n_other} other settings"
            if len(reach)
            else "no setting"
        )
        if CONTROL in reach:
            who += ", the post's settings in the sweep's schedule among them"
        short.append(
            f"{drug} ({post:.3f} against {wilcoxon[column]:.3f}; reached by {who})"
        )
    parts = []
    if level:
        parts.append(f"is level with it for {join_and(level)}")
    if short:
        parts.append(f"falls short for {join_and(short)}")
    text = (
        "Module 0 of the post's 100-epoch fit, scored against the Wilcoxon test's AUROC of the planted "
        f"genes, {' and '.join(parts)}."
    )
    captured = nets.index[nets["moderate-dose AUROC"] >= 0.7]
    if len(captured):
        names = join_and([f"*{c}*" for c in captured])
        text += (
            f" The moderate-dose program comes out as a module of its own (AUROC ≥ 0.7) only under {names}"
            + (
                ", not under the post's settings."
                if not {CONTROL, POST} & set(captured)
                else "."
            )
        )
    else:
        text += " No setting brings out the moderate-dose program as a module of its own (AUROC ≥ 0.7)."
    return text


def _number(value: float, fmt: str) -> str:
    """``value`` formatted with a true minus sign."""
    return f"{value:{fmt}}".replace("-", "−")


def held_out_sentence(split: str, table: pd.DataFrame) -> str:
    """One non-random split in a sentence: which model predicts the held-out cells best, in R² and in MAE.

    ``split`` completes "With …" (e.g. "the Alpha lineage held out of the frequency task"); each measure
    names the best model and the next best, with their values.
    """
    table = table.rename(index={"linear": LINEAR["R²"]})

    def best(column, ascending):
        ranked = table[column].sort_values(ascending=ascending)
        (first, a), (second, b) = list(ranked.items())[:2]
        return first, f"{_number(a, '.3g')}, against {_number(b, '.3g')} for {second}"

    r2, r2_values = best("test R²", ascending=False)
    mae, mae_values = best("test MAE", ascending=True)
    text = f"With {split}, {r2} has the highest test R² ({r2_values})"
    if mae == r2:
        return text + f" and the lowest mean absolute error ({mae_values})."
    return text + f", and {mae} the lowest mean absolute error ({mae_values})."


def dose_takeaway(table: pd.DataFrame, chosen: str, label: str) -> str:
    """The dose task in one plain-text sentence (glued into the takeaways): stability and, on simulated
    cells, the moderate-dose program."""
    before = table.loc[CONTROL, "modules 1–2 |cos|"]
    after = table.loc[chosen, "modules 1–2 |cos|"]
    verdict = (
        "reproducible" if after >= 0.9 else "still short of reproducible (|cos| ≥ 0.9)"
    )
    text = (
        f"On the dose task ({label}) the setting chosen on validation, “{chosen}”, moves the agreement of "
        f"modules 1–2 across seeds from {before:.2f} to {after:.2f}, {verdict}"
    )
    if "moderate-dose AUROC" in table:
        nets = table[table["model"] == "bilinear MLP"]
        captured = nets.index[nets["moderate-dose AUROC"] >= 0.7]
        text += (
            "; the moderate-dose program comes out as a module of its own only under "
            + join_and([f"“{c}”" for c in captured])
            if len(captured)
            else "; no setting brings out the moderate-dose program as a module of its own"
        )
    return text + "."


def findings_answer(tables: dict, chosen: dict) -> str:
    """The chapter's answer for the introduction's findings table (plain text: glued).

    Does a regularised fit make more modules readable: whether the setting chosen on validation makes
    modules 1–2 agree across seeds (|cos| ≥ 0.9), per task.
    """
    stable = [
        t
        for t, table in tables.items()
        if table.loc[chosen[t], "modules 1–2 |cos|"] >= 0.9
    ]
    if not stable:
        return "No: under the setting chosen on validation, modules 1–2 still change with the seed on every task"
    if len(stable) == len(tables):
        return "Yes: the setting chosen on validation makes modules 1–2 agree across seeds on every task"
    return f"Only on {join_and(stable)}: there the setting chosen on validation makes modules 1–2 agree across seeds"


def findings_number(tables: dict, chosen: dict, labels: dict) -> str:
    """The introduction's key number: modules 1–2 |cos| under each chosen setting, and the best cell-typing
    accuracy against logistic regression (plain text: glued). ``labels`` names the tasks (e.g. "simulated
    dose")."""
    cos = ", ".join(
        f"{table.loc[chosen[t], 'modules 1–2 |cos|']:.2f} ({labels[t]})"
        for t, table in tables.items()
    )
    text = f"modules 1–2 |cos| across seeds {cos}"
    cells = tables.get("cell typing")
    if cells is not None:
        nets = cells[cells["model"] == "bilinear MLP"]
        text += (
            f"; best test accuracy {nets['test accuracy'].max():.1%} "
            f"(logistic regression {cells.loc['linear', 'test accuracy']:.1%})"
        )
    return text
