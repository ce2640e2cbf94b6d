"""Save a trained :class:`~bilinear_core.train.FitResult` to one file and load it back for interpretation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .model import BilinearMLP
from .train import FitResult

FORMAT = "bilinear_core.FitResult/1"


def save_result(result: FitResult, path) -> Path:
    """``torch.save`` the model's state dict (on the CPU) and everything :func:`load_result` needs.

    Only a :class:`~bilinear_core.model.BilinearMLP` can be saved (other architectures have no rebuild recipe here).
    """
    model = result.model
    if not isinstance(model, BilinearMLP):
        raise TypeError(f"save_result saves BilinearMLP models, got {type(model).__name__}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "architecture": {
            "n_in": model.n_in,
            "n_hidden": model.n_hidden,
            "n_out": model.n_out,
            "dropout": float(model.dropout.p),
            "bias": model.left.bias is not None,
        },
        "history": {str(c): result.history[c].tolist() for c in result.history.columns},
        "train_idx": torch.from_numpy(np.asarray(result.train_idx, dtype=np.int64)),
        "val_idx": torch.from_numpy(np.asarray(result.val_idx, dtype=np.int64)),
        "task": result.task,
        "output_names": list(result.output_names),
        "classes": None if result.classes is None else list(result.classes),
        "var_names": None if result.var_names is None else [str(v) for v in result.var_names],
        "settings": _plain(result.settings),
        "timings": _plain(result.timings),
    }
    torch.save(payload, path)
    return path


def load_result(path, device: str = "cpu") -> FitResult:
    """The :class:`~bilinear_core.train.FitResult` saved by :func:`save_result` (model on ``device``, in eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No saved model at {path} (resolved: {path.resolve()}).")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} was not written by bilinear_core.checkpoint.save_result.")
    model = BilinearMLP(**payload["architecture"])
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return FitResult(
        model=model,
        history=pd.DataFrame(payload["history"]),
        train_idx=payload["train_idx"].numpy(),
        val_idx=payload["val_idx"].numpy(),
        task=payload["task"],
        output_names=payload["output_names"],
        classes=payload["classes"],
        var_names=payload.get("var_names"),
        settings=payload["settings"],
        timings=payload.get("timings", {}),
    )


def _plain(value):
    """``value`` with NumPy scalars and arrays as Python ones, so that ``weights_only`` loading reads it back."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
