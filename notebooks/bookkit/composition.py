"""Helpers of the composition chapter (07)."""

from __future__ import annotations

import pandas as pd


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
