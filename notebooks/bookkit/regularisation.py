"""Helpers of the regularisation chapter (06): agreement measures, the stability figure and verdict sentences."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bilinear_core.interpret import Modules
from bilinear_core.perturbation import planted_auroc

from bookkit import join_and


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
    """Test score against module stability across seeds, one point per setting, baselines as lines.

    ``tables`` maps a task to its evaluation table, ``scores`` to the score column plotted and ``chosen`` to
    the setting chosen on validation. Every setting trained with several seeds is a filled marker at its
    module-0 |cos| and an open one at its modules-1–2 |cos|, joined by a line; the baselines and the single
    fit ``post`` are horizontal lines.
    """
    suffix = suffix or {}
    fig, axes = plt.subplots(
        1, len(tables), figsize=(4.8 * len(tables), 4.4), constrained_layout=True
    )
    lines = {
        "linear": ("black", "--"),
        "ReLU MLP": ("tab:red", ":"),
        post: ("tab:gray", "-."),
    }
    for ax, (task, table) in zip(np.atleast_1d(axes), tables.items()):
        score = scores[task]
        nets = table[(table["model"] == "bilinear MLP") & (table["seeds"] > 1)]
        for name, row in nets.iterrows():
            color = "tab:orange" if name == chosen[task] else "tab:blue"
            x = [row["module 0 |cos|"], row["modules 1–2 |cos|"]]
            ax.plot(x, [row[score]] * 2, color=color, lw=0.8)
            ax.scatter(x[0], row[score], color=color, zorder=3)
            ax.scatter(x[1], row[score], facecolor="white", edgecolor=color, zorder=3)
            right = (
                x[0] > 0.35
            )  # the label left of the marker, unless it would leave the axes
            ax.annotate(
                name, (x[0], row[score]), fontsize=8, xytext=(-4 if right else 4, 6),
                textcoords="offset points", ha="right" if right else "left", color=color,
            )  # fmt: skip
        for name, (color, style) in lines.items():
            if name in table.index:
                value = table.loc[name, score]
                ax.axhline(value, color=color, ls=style, lw=1, label=name)
        ax.set(
            xlim=(0, 1.05),
            xlabel="|cos| across seeds (● module 0, ○ modules 1–2)",
            ylabel=score,
            title=f"{task}{suffix.get(task, '')}",
        )
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Held-out score against module stability (orange: the chosen setting)")
    return fig


def _score_sentence(table, score, chosen, control, post) -> str:
    """The chosen setting against the post's, in both schedules, and against the baselines."""
    nets = table[table["model"] == "bilinear MLP"]
    best, linear = nets[score].idxmax(), table.loc["linear", score]
    text = (
        f"chosen on validation: *{chosen}*. {score[0].upper() + score[1:]}: the post's settings "
        f"{table.loc[post, score]:.3f} in 100 epochs and {table.loc[control, score]:.3f} in the sweep's schedule"
    )
    if chosen != control:
        text += f"; *{chosen}* {table.loc[chosen, score]:.3f} in the sweep's schedule"
    reached = "reaches" if nets[score].max() >= linear else "does not reach"
    text += (
        f". The best of any setting, {nets[score].max():.3f} (*{best}*), {reached} the linear baseline's "
        f"{linear:.3f}"
    )
    if "ReLU MLP" in table.index:
        text += f" (ReLU MLP: {table.loc['ReLU MLP', score]:.3f})"
    if table.loc[control, score] < table.loc[post, score] - 0.1:
        text += (
            ". In the sweep's schedule the post's settings are far from their 100-epoch score: on this task "
            "the sweep measures how fast a setting gets there as much as how it regularises"
        )
    return text + "."


def _stability_sentence(table, chosen, control) -> str:
    """Modules 0 and 1–2 across seeds, the post's settings against the chosen setting."""
    columns = ["module 0 |cos|", "modules 1–2 |cos|"]
    cos = table.loc[list(dict.fromkeys([control, chosen])), columns]
    text = (
        f"Across seeds, modules 1–2 agree with |cos| {cos.loc[control, columns[1]]:.2f} under the post's "
        f"settings and {cos.loc[chosen, columns[1]]:.2f} under *{chosen}*, module 0 with "
        f"{cos.loc[control, columns[0]]:.2f} and {cos.loc[chosen, columns[0]]:.2f}: "
    )
    if cos.loc[chosen, columns[1]] >= 0.9:
        return text + f"*{chosen}* makes modules 1–2 stable (≥ 0.9)."
    return text + f"*{chosen}* does not make modules 1–2 stable (≥ 0.9)."


def _recovery_sentences(
    table, control, post, tolerance
) -> tuple[list[str], list[str], bool]:
    """Planted recovery per drug against the Wilcoxon test, and the moderate-dose program's capture."""
    nets = table[table["model"] == "bilinear MLP"]
    wilcoxon = table.loc["Wilcoxon test"]
    already, lifted, below = [], [], []
    for column in [c for c in table if c.startswith("AUROC ")]:
        drug, bar = column.removeprefix("AUROC "), wilcoxon[column] - tolerance
        reach = nets.index[nets[column] >= bar]
        if table.loc[post, column] >= bar:
            already.append(drug)
        elif len(reach):
            names = [f"*{n}*" for n in reach]
            who = join_and(names) if len(names) <= 3 else f"{len(names)} settings"
            if control in reach:
                who += ", the post's settings in the sweep's schedule among them"
            lifted.append(
                f"{drug} ({table.loc[post, column]:.2f} against {wilcoxon[column]:.2f}; reached by {who})"
            )
        else:
            below.append(
                f"{drug} (best {nets[column].max():.2f} against {wilcoxon[column]:.2f})"
            )
    parts = []
    if already:
        parts.append(f"the post's 100-epoch fit reaches it for {join_and(already)}")
    if lifted:
        parts.append(f"falls short for {join_and(lifted)}")
    if below:
        parts.append(f"every setting falls short for {join_and(below)}")
    captured = nets.index[nets["moderate-dose AUROC"] >= 0.7]
    moderate = (
        "The moderate-dose program is captured (one of SAHA's modules 0–2 ranks its genes above the monotone "
        "program's, AUROC ≥ 0.7) by "
        + (join_and([f"*{c}*" for c in captured]) if len(captured) else "no setting")
        + (
            ", not by the post's settings."
            if len(captured) and not {control, post} & set(captured)
            else "."
        )
    )
    return (
        [
            f"Module 0 against the Wilcoxon test's AUROC (within ±{tolerance}): "
            + "; ".join(parts)
            + ".",
            moderate,
        ],
        below,
        len(captured) == 0,
    )


def regularisation_verdict(
    tasks: dict, chosen: dict, control: str, post: str, tolerance: float = 0.02
) -> str:
    """The chapter's verdict as Markdown, generated from its tables.

    ``tasks`` maps a task name to ``(table, score column)``; ``chosen`` maps it to the setting chosen on
    validation. Tables may carry ``marker Jaccard (module 0)`` (cell typing) and ``AUROC <drug>`` and
    ``moderate-dose AUROC`` with a ``Wilcoxon test`` row (simulation).
    """
    lines, failed = [], []
    for task, (table, score) in tasks.items():
        pick = chosen[task]
        body = [_score_sentence(table, score, pick, control, post)]
        body.append(_stability_sentence(table, pick, control))
        nets = table[table["model"] == "bilinear MLP"]
        worse = nets.index[nets[score] < table.loc[control, score] - tolerance]
        if len(worse):
            failed.append(
                f"on {task}, {join_and([f'*{w}*' for w in worse])} lowered the test score"
            )
        if table.loc[pick, "modules 1–2 |cos|"] < 0.9:
            failed.append(f"*{pick}* did not make modules 1–2 stable on {task}")
        if "marker Jaccard (module 0)" in table:
            jaccard = table["marker Jaccard (module 0)"]
            kept = jaccard[pick] >= jaccard[control] - tolerance
            body.append(
                f"Module 0's agreement with the Wilcoxon markers (median Jaccard): {jaccard[control]:.2f} under "
                f"the post's settings, {jaccard[pick]:.2f} under *{pick}*: {'kept' if kept else 'partly lost'}."
            )
            if not kept:
                failed.append(f"*{pick}* kept fewer canonical markers in module 0")
        if any(c.startswith("AUROC ") for c in table):
            sentences, below, missed = _recovery_sentences(
                table, control, post, tolerance
            )
            body += sentences
            if below:
                failed.append(
                    f"no setting lifted module 0 to the Wilcoxon test for {join_and(below)}"
                )
            if missed:
                failed.append("no setting captured the moderate-dose program")
        lines.append(f"- **{task}**: " + " ".join(body))
    if failed:
        lines.append("- **What did not work**: " + "; ".join(failed) + ".")
    return "\n".join(lines)


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


def early_stopping_sentence(tables: dict, post: str, patience: int) -> str:
    """Where early stopping was trained, from the epoch of the post's lowest validation loss per task."""
    best = {task: int(table.loc[post, "best epoch"]) for task, table in tables.items()}
    trained = [t for t, table in tables.items() if "early stopping" in table.index]
    skipped = [t for t in tables if t not in trained]

    def where(tasks):
        return join_and([f"{t} (epoch {best[t]})" for t in tasks])

    text = "- **Early stopping** "
    text += f"was trained on {where(trained)}" if trained else "was trained on no task"
    if skipped:
        text += (
            f"; on {where(skipped)} the post's fit has its lowest validation loss within "
            f"{patience} epochs of its end, so early stopping would not stop it"
        )
    return text + "."


def held_out_sentence(held_out: pd.DataFrame) -> str:
    """One bullet per non-random split of the regularisation chapter: test R² and MAE of every model."""
    lines = []
    for split, table in held_out.groupby(level="split", sort=False):
        table = table.droplevel("split")
        values = "; ".join(
            f"{score}: "
            + ", ".join(f"*{name}* {value:.3g}" for name, value in table[score].items())
            for score in ("test R²", "test MAE")
        )
        nets = table[table["model"] == "bilinear MLP"]
        linear = table.loc["linear"]
        r2 = "above" if nets["test R²"].max() > linear["test R²"] else "below"
        mae = "below" if nets["test MAE"].min() < linear["test MAE"] else "above"
        lines.append(
            f"- **{split}**: {values}. The best bilinear fit is {r2} the linear baseline in R² and {mae} it "
            "in mean absolute error."
        )
    return "\n".join(lines)


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
