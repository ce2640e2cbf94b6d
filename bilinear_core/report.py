"""One module's interpretation: top genes per sign, their enrichment and a generated summary."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .enrichment import DEFAULT_LIBRARIES, enrich_modules
from .interpret import Modules, top_genes

SIGNS = ("positive", "negative")


@dataclass
class ModuleReport:
    """Top genes (both signs) and enrichment of one module of one output."""

    output: str
    module: int
    eigenvalue: float
    genes: pd.DataFrame
    enrichment: pd.DataFrame

    def top_table(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` strongest genes per sign side by side (columns ``positive``, ``negative``)."""
        return pd.DataFrame(
            {sign: self.genes.loc[self.genes["sign"] == sign, "gene"].head(n).to_list() for sign in SIGNS},
            index=pd.RangeIndex(n, name="rank"),
        )

    def key_terms(self, sign: str, n: int = 5) -> list[str]:
        """The ``n`` most significant terms of one sign (adjusted p ≤ the cutoff used)."""
        return self.enrichment.loc[self.enrichment["sign"] == sign, "term"].head(n).to_list()

    def summary(self, n_genes: int = 5, n_terms: int = 3) -> str:
        """A templated Markdown interpretation built from the results, one bullet per sign."""
        lines = []
        for sign in SIGNS:
            genes = ", ".join(self.top_table(n_genes)[sign])
            terms = self.key_terms(sign, n_terms)
            enriched = "; ".join(terms) if terms else "no term passes adjusted p ≤ 0.05"
            lines.append(f"- **{sign.capitalize()} pole**: led by {genes}. Enriched: {enriched}.")
        return "\n".join(lines)


def module_report(
    modules: Modules,
    output,
    module: int = 0,
    libraries=DEFAULT_LIBRARIES,
    fraction: float = 0.01,
    min_genes: int = 50,
    **enrich_kwargs,
) -> ModuleReport:
    """Top genes of ``module`` of ``output`` (1 % per sign, at least ``min_genes``) and their enrichment."""
    genes = top_genes(modules, output, module, fraction=fraction, min_genes=min_genes)
    return ModuleReport(
        output=str(genes["output"].iloc[0]),
        module=module,
        eigenvalue=float(modules.values(output)[module]),
        genes=genes,
        enrichment=enrich_modules(genes, libraries, **enrich_kwargs),
    )


def figure_markdown(fig, alt: str = "figure", dpi: int = 100) -> str:
    """A matplotlib figure as a Markdown image with an embedded PNG (closes the figure)."""
    import base64
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def dropdown(title: str, *parts) -> str:
    """MyST ``{dropdown}`` source holding Markdown strings, figures and DataFrames, in order.

    Display it with ``IPython.display.Markdown``; the book renders Markdown outputs as MyST
    (``nb_render_markdown_format: myst`` in ``_config.yml``), so the dropdown is real.
    """
    body = []
    for part in parts:
        if isinstance(part, pd.DataFrame):
            body.append(part.to_markdown())
        elif hasattr(part, "savefig"):
            body.append(figure_markdown(part, alt=title))
        else:
            body.append(str(part))
    content = "\n\n".join(body)
    return f"::::{{dropdown}} {title}\n\n{content}\n\n::::"
