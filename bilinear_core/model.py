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


def ensemble(models) -> BilinearMLP:
    """The mean of ``k`` bilinear MLPs as one bilinear MLP, exactly.

    Hidden units are concatenated (``W``, ``V``: ``(k·h, g)``) and the heads placed side by side and divided
    by ``k`` (``P``: ``(t, k·h)``; head biases averaged), so the output is the members' mean output and every
    interaction matrix ``Q_a`` the members' mean ``Q_a``: the ensemble is interpreted like one model. Members
    need the same inputs, outputs and biases; the ensemble is on the CPU, in eval mode.
    """
    models = list(models)
    if not models or not all(isinstance(m, BilinearMLP) for m in models):
        raise TypeError("ensemble needs a non-empty list of BilinearMLP models.")
    first = models[0]
    bias = first.left.bias is not None
    for i, m in enumerate(models[1:], start=1):
        if (m.n_in, m.n_out, m.left.bias is not None) != (first.n_in, first.n_out, bias):
            raise ValueError(
                f"Member {i} has {m.n_in} inputs, {m.n_out} outputs (bias={m.left.bias is not None}); member 0 has "
                f"{first.n_in}, {first.n_out} (bias={bias}): an ensemble needs the same inputs, outputs and biases."
            )
    k = len(models)
    merged = BilinearMLP(first.n_in, sum(m.n_hidden for m in models), first.n_out, first.dropout.p, bias)
    with torch.no_grad():
        for name in ("left", "right"):
            for part in ("weight", "bias") if bias else ("weight",):
                getattr(getattr(merged, name), part).copy_(
                    torch.cat([getattr(getattr(m, name), part).detach().cpu() for m in models])
                )
        merged.head.weight.copy_(torch.cat([m.head.weight.detach().cpu() for m in models], dim=1) / k)
        if bias:
            merged.head.bias.copy_(torch.stack([m.head.bias.detach().cpu() for m in models]).mean(dim=0))
    return merged.eval()
