"""Helpers of the composition chapter (07)."""

from __future__ import annotations

import pandas as pd


def composition_bullets(summary: pd.DataFrame) -> str:
    """One Markdown bullet per pair of the composition chapter's summary table (``composition_summary.csv``)."""
    lines = []
    for pair, row in summary.iterrows():
        lines.append(
            f"- **{pair}**: AUROC {row['AUROC bilinear']:.2f} bilinear, {row['AUROC logistic']:.2f} logistic, "
            f"{row['AUROC centroid']:.2f} nearest centroid (bilinear single-gene ceiling "
            f"{row['ceiling AUROC (bilinear)']:.2f}); top-two exact {row['top-two bilinear']:.0%}, "
            f"{row['top-two logistic']:.0%}, {row['top-two centroid']:.0%}; subspace overlap {row['overlap']:.2f} "
            f"against a null mean of {row['overlap null mean']:.2f} (p = {row['overlap p']:.3f}); additivity "
            f"R² {row['additivity R²']:.2f} (split-half {row['split-half R²']:.2f})."
        )
    return "\n".join(lines)


def largest_shifts(shifts: pd.DataFrame, conditions, n: int = 2) -> str:
    """``"A: G1 (+1.20), G2 (-0.50); B: …"``: each condition's ``n`` genes of largest mean shift in magnitude.

    ``shifts`` is a ``(conditions, genes)`` table such as :func:`bilinear_core.composition.mean_shifts`'s.
    """
    parts = []
    for condition in conditions:
        row = shifts.loc[condition]
        genes = ", ".join(
            f"{gene} ({row[gene]:+.2f})" for gene in row.abs().nlargest(n).index
        )
        parts.append(f"{condition}: {genes}")
    return "; ".join(parts)
