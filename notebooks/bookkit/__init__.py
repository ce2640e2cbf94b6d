"""The book's own helpers, shared by every chapter: result files, tables, figures, dropdowns, short phrases.

Not part of the library: chapters import it (``import bookkit``) from this folder, and each chapter's own helpers
from the module named after it (``from bookkit import cell_typing as kit``).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import itertools
import os
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import pandas as pd

from bilinear_core.report import ModuleReport

ROOT = Path(__file__).resolve().parents[2]
#: Where chapters save their result tables (CSV): ``$BILINEAR_RESULTS_DIR`` or ``<repo>/_build/extra/results``.
#: ``_build/extra`` is one of the site's ``html_extra_path`` folders, so the files are served at ``results/``.
RESULTS = Path(
    os.environ.get("BILINEAR_RESULTS_DIR", ROOT / "_build" / "extra" / "results")
)
RESULTS.mkdir(parents=True, exist_ok=True)

#: The text column at a 1,400 px window is 772 CSS px, 8.04 in at 96 px an inch; figures up to this width show
#: at their own size, wider ones are scaled down to it.
COLUMN_INCHES = 8.04
#: The smallest text a figure may show on the page, in points.
MIN_TEXT_PT = 9
_table_ids = itertools.count()  # a distinct, reproducible id per table of a page

#: The most columns (index levels included) a table may have and still fit the text column.
MAX_COLUMNS = 8


def setup(torch_threads: int | None = None) -> None:
    """Figures and threads as the book has them; every chapter calls it in its first (hidden) cell.

    Figures are SVG (crisp at any zoom) with text of at least :data:`MIN_TEXT_PT`; ``torch_threads`` caps
    torch's thread pool (on a busy 2-core machine a second thread can slow a small model several-fold).
    """
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("svg")
    mpl.rcParams.update(
        {
            "font.size": 10,
            "axes.titlesize": 10,
            "axes.labelsize": 10,
            "xtick.labelsize": 9,
            "ytick.labelsize": 9,
            "legend.fontsize": 9,
            "legend.title_fontsize": 9,
            "figure.titlesize": 11,
            "svg.hashsalt": "bookkit",  # the same ids in every build
        }
    )
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)


def small_text(fig, column_inches: float = COLUMN_INCHES) -> list[str]:
    """The texts of ``fig`` that would show below :data:`MIN_TEXT_PT` on the page, as ``"text (size pt)"``.

    The figure is drawn as the inline backend saves it (tight bounding box); one wider than ``column_inches``
    is scaled down to the column, and its text with it.
    """
    width = fig.get_tightbbox().width
    scale = min(1.0, column_inches / width)
    texts = [
        t
        for t in fig.findobj(mpl.text.Text)
        if t.get_visible() and t.get_text().strip()
    ]
    small = [t for t in texts if t.get_fontsize() * scale < MIN_TEXT_PT - 1e-6]
    return [f"{t.get_text()!r} ({t.get_fontsize() * scale:.1f} pt)" for t in small]


def _readable(fig):
    small = small_text(fig)
    if small:
        shown = ", ".join(small[:5]) + (" …" if len(small) > 5 else "")
        raise ValueError(
            f"{len(small)} text(s) of this figure would show below {MIN_TEXT_PT} pt at page width: {shown}. "
            "Make the figure narrower or its fonts larger."
        )
    return fig


def figure(name: str, fig=None) -> None:
    """Glue ``fig`` (default: the current figure) as ``name`` for a numbered ``{glue:figure}`` and close it.

    Raises when a text of the figure would show below :data:`MIN_TEXT_PT` at page width.
    """
    from myst_nb import glue

    fig = _readable(fig if fig is not None else plt.gcf())
    glue(name, fig, display=False)
    plt.close(fig)


def figure_markdown(fig, name: str, caption: str) -> str:
    """A MyST ``{figure}`` of ``fig`` (SVG embedded in the page), labelled ``name`` and numbered; closes it.

    For figures inside Markdown that code writes, such as a dropdown; figures of a chapter's own cells use
    :func:`figure` and ``{glue:figure}``.
    """
    buffer = io.BytesIO()
    _readable(fig).savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"```{{figure}} data:image/svg+xml;base64,{data}\n:name: {name}\n\n{caption}\n```"


class Table:
    """A table as the book shows it (see :func:`table`); Jupyter displays it as HTML."""

    def __init__(self, html: str):
        self.html = html

    def _repr_html_(self) -> str:
        return self.html


def _is_text(column: pd.Series) -> bool:
    return not (
        pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    )


def table(
    df: pd.DataFrame,
    *,
    precision: int = 3,
    formats: dict | None = None,
    index: bool = True,
    link: str | None = None,
    note: str | None = None,
) -> Table:
    """``df`` as the book's tables look: fits the text column, "—" for missing values, text left-aligned.

    Numbers get ``precision`` decimals (integers a thousands separator); ``formats`` maps columns to format
    strings or callables. ``link`` names a CSV file the chapter saved in :data:`RESULTS` (the whole table):
    a download link goes under the table. ``note`` (Markdown-free text) goes under it too, e.g. why a cell
    is "—". Raises when the table has more than :data:`MAX_COLUMNS` columns: split it, transpose it or make
    it long.
    """
    n_columns = df.shape[1] + (df.index.nlevels if index else 0)
    if n_columns > MAX_COLUMNS:
        raise ValueError(
            f"a table of {n_columns} columns does not fit the text column (at most {MAX_COLUMNS}): "
            f"split it, transpose it or show it in long format. Columns: {list(df.columns)}"
        )
    shown = df.rename(
        columns=lambda c: c.replace("_", " ") if isinstance(c, str) else c
    )
    styler = shown.style.format(precision=precision, thousands=",", na_rep="—")
    if formats:
        formats = {c.replace("_", " "): f for c, f in formats.items()}
        styler = styler.format(formats, subset=list(formats), na_rep="—")
    text = [c for c in shown.columns if _is_text(shown[c])]
    styler = styler.set_properties(subset=text, **{"text-align": "left"})
    left = [{"selector": "th", "props": "text-align: left"}]
    styler = styler.set_table_styles({c: left for c in text}, overwrite=False)
    styler = styler.set_table_attributes('class="bookkit-table"').set_uuid(
        f"bk{next(_table_ids)}"
    )
    if not index:
        styler = styler.hide(axis="index")
    html = styler.to_html()
    foot = []
    if note:
        foot.append(note)
    if link:
        foot.append(f'Whole table: <a href="../results/{link}" download>{link}</a>')
    if foot:
        html += f'<p class="bookkit-table-note">{" ".join(foot)}</p>'
    return Table(html)


def dropdown(title: str, *parts) -> str:
    """MyST ``{dropdown}`` source holding Markdown strings and tables (:class:`Table` or DataFrame), in order.

    Display it with ``IPython.display.Markdown``; the book renders Markdown outputs as MyST
    (``nb_render_markdown_format: myst`` in ``_config.yml``), so the dropdown is real. Figures go in as
    :func:`figure_markdown` strings.
    """
    body = []
    for part in parts:
        if isinstance(part, pd.DataFrame):
            part = table(part)
        if isinstance(
            part, Table
        ):  # raw HTML stays one block in Markdown only without blank lines
            part = "\n".join(line for line in part.html.splitlines() if line.strip())
        body.append(str(part))
    content = "\n\n".join(body)
    return f"::::{{dropdown}} {title}\n\n{content}\n\n::::"


def data_note(adata, post_n_genes: int = 10_000) -> str:
    """A sentence on the data a chapter uses, from ``adata.uns`` as the pancreas loader and ``pp.preprocess`` write it.

    Names the file and its kind, the cells, the genes the model sees and, for the offline copy (a
    ``size_factor_key`` is recorded), how its gene universe differs from the post's ``post_n_genes`` HVGs.
    """
    for key in ("dataset", "preprocessing"):
        if key not in adata.uns:
            raise KeyError(
                f"adata.uns has no {key!r} entry; load the data with bilinear_core.datasets.pancreas "
                "and bilinear_core.pp.preprocess."
            )
    dataset, prep = adata.uns["dataset"], adata.uns["preprocessing"]
    kept_all = prep["n_genes"] == prep["n_genes_in"] - prep["n_ribosomal_dropped"]
    genes = (
        f"{prep['n_genes_in']:,} genes, of which {prep['n_ribosomal_dropped']:,} ribosomal genes are dropped and "
        + (
            "all others kept"
            if kept_all
            else f"the {prep['n_genes']:,} most variable of the rest kept"
        )
    )
    text = f"We use **{dataset['file']}**, the {dataset['kind']}: {adata.n_obs:,} cells and {genes}, so the model "
    text += f"sees **{adata.n_vars:,} genes**."
    if dataset.get("size_factor_key") is not None:
        text += (
            f" The post used the full scVelo file and {post_n_genes:,} highly variable genes; this offline copy holds "
            f"only the genes chosen by the SuperCell authors, so every gene list is drawn from a "
            f"{post_n_genes / adata.n_vars:.0f}-fold smaller gene universe than the post's (with the full file "
            f"present, the same code keeps {post_n_genes:,})."
        )
    return text


def value_range(values, fmt: str) -> str:
    """``"a to b"`` for the smallest and largest of ``values``, each formatted with ``fmt``."""
    return f"{min(values):{fmt}} to {max(values):{fmt}}"


def significant(
    report: ModuleReport, cutoff: float = 0.05, n: int = 15
) -> ModuleReport:
    """``report`` with only its terms of adjusted p ≤ ``cutoff``, at most ``n`` per sign (for display)."""
    terms = (
        report.enrichment[report.enrichment["adjusted_p"] <= cutoff]
        .groupby("sign", sort=False)
        .head(n)
    )
    return dataclasses.replace(report, enrichment=terms)


def join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def one_based(
    df: pd.DataFrame, column: str = "rank", name: str = "position"
) -> pd.DataFrame:
    """``df`` with its 0-based ``column`` shown as a 1-based ``name`` (1 = first), as the book counts."""
    shown = df.rename(columns={column: name})
    shown[name] = shown[name] + 1
    return shown


def count_phrase(flags, noun: str, plural: str | None = None) -> str:
    """How many of ``flags`` are true, in words: "all 8 cell types", "3 of 8 cell types", "none of the 16 cases".

    ``plural`` is the noun's plural (default: ``noun`` + "s").
    """
    flags = [bool(f) for f in flags]
    hits, total = sum(flags), len(flags)
    plural = noun if total == 1 else plural or f"{noun}s"
    if hits == total:
        return f"all {total} {plural}" if total > 1 else f"the one {noun}"
    if hits == 0:
        return f"none of the {total} {plural}"
    return f"{hits} of {total} {plural}"
