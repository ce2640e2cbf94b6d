"""The composition chapter's own helper (notebooks/bookkit/composition.py)."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parents[1] / "notebooks"))  # the book's helpers: bookkit
from bookkit.composition import largest_shifts  # noqa: E402


def test_largest_shifts_orders_by_magnitude_and_keeps_sign():
    shifts = pd.DataFrame({"G1": [0.1, 2.0], "G2": [-1.5, 0.0], "G3": [0.7, -0.3]}, index=["A", "B"])
    # A: |-1.5| > |0.7| > |0.1|; B: |2.0| > |-0.3| > |0.0|; listed in the order asked for
    assert largest_shifts(shifts, ["B", "A"]) == "B: G1 (+2.00), G3 (-0.30); A: G2 (-1.50), G3 (+0.70)"
    assert largest_shifts(shifts, ["A"], n=1) == "A: G2 (-1.50)"
