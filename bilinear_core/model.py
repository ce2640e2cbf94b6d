"""The bilinear MLP: ``head(dropout(left(x) * right(x)))``."""

from __future__ import annotations

import torch
from torch import nn


class BilinearMLP(nn.Module):
    """One bilinear layer followed by a linear head.

    Parameters
    ----------
    n_in
        Number of input features ``g`` (genes).
    n_hidden
        Hidden width ``h``.
    n_out
        Number of outputs ``t`` (classes or regression targets).
    dropout
        Dropout on the hidden units (0 disables it).
    bias
        Give ``left``, ``right`` and ``head`` a bias. The interaction matrices only
        describe the quadratic part of the map, so keep this ``False`` for exact
        interpretation (the post's setting).
    """

    def __init__(self, n_in: int, n_hidden: int = 128, n_out: int = 1, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        for name, value in {"n_in": n_in, "n_hidden": n_hidden, "n_out": n_out}.items():
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}.")
        self.left = nn.Linear(n_in, n_hidden, bias=bias)  # W: (h, g)
        self.right = nn.Linear(n_in, n_hidden, bias=bias)  # V: (h, g)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(n_hidden, n_out, bias=bias)  # P: (t, h)

    @property
    def n_in(self) -> int:
        return self.left.in_features

    @property
    def n_hidden(self) -> int:
        return self.left.out_features

    @property
    def n_out(self) -> int:
        return self.head.out_features

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden activations ``(W x) ⊙ (V x)``: ``(n, g) -> (n, h)``."""
        return self.left(x) * self.right(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, g) -> (n, t)``."""
        return self.head(self.dropout(self.hidden(x)))
