"""Save a trained model to one versioned file and load it back (``bc.save``, ``bc.load``).

The file (PyTorch's zip format, read with ``weights_only=True``, so loading runs no code from it) holds the
weights, the genes and outputs in the model's order, the task, the training settings, history and split, the
preprocessing :func:`bilinear_core.pp.preprocess` applied to the reference (recorded by
:func:`bilinear_core.tl.train`), an ensemble's members, the file format's version and the version of
``bilinear_core`` that wrote it. A loaded model predicts bit for bit as the saved one. Files are written
atomically (``atomic_save``): into a temporary file in the same folder, flushed and ``fsync``-ed, then renamed
over the target, so a crash during a save leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .model import BilinearMLP
from .train import FitResult

# public API (the API reference documents these); atomic_save, read_payload and plain serve bilinear_core.checkpoint
__all__ = ["save", "load", "FORMAT"]

#: The format tag and version of a saved model. Version 2 added ``preprocessing`` and ``bilinear_core_version``.
FORMAT = "bilinear_core.FitResult/2"
#: The format tag and version of a training checkpoint (:mod:`bilinear_core.checkpoint`).
STATE_FORMAT = "bilinear_core.TrainingState/1"
#: What the files of this package hold, named in the error when one is read as another.
KINDS = {
    FORMAT: "a trained model saved by bilinear_core.save (read it with bilinear_core.load)",
    STATE_FORMAT: "a training checkpoint (resume from it with checkpoint=Checkpoint(path), resume=True)",
}


def atomic_save(payload, path) -> Path:
    """``torch.save(payload)`` to ``path`` atomically: a temporary file next to it, flushed and ``fsync``-ed, then
    renamed over ``path`` (``os.replace``). A crash leaves the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX; folders cannot be opened on Windows)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return path


def read_payload(path, expected: str, what: str) -> dict:
    """The payload of a file of this package in format ``expected``, or an error naming the file and the fault."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No {what} at {path} (resolved: {path.resolve()}).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(
            f"{path} cannot be read as a {what} ({path.stat().st_size:,} bytes): the file is truncated, corrupt or "
            f"not written by bilinear_core ({type(err).__name__}: {reason})."
        ) from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if found == expected:
        return payload
    kind, version = str(found).rsplit("/", 1) if found and "/" in str(found) else (found, None)
    if version is not None and kind == expected.rsplit("/", 1)[0]:
        written = payload.get("bilinear_core_version", "0.1.0 or earlier")
        raise ValueError(
            f"{path} is a {what} in format version {version} (written by bilinear_core {written}); this version of "
            f"bilinear_core reads format version {expected.rsplit('/', 1)[1]}. Load it with the version that wrote "
            "it, or train the model again."
        )
    held = KINDS.get(found, f"format {found!r}" if found else f"a {type(payload).__name__} without a format tag")
    raise ValueError(f"{path} is not a {what} of bilinear_core: it holds {held}.")


def plain(value):
    """``value`` with NumPy scalars and arrays as Python ones, so that ``weights_only`` loading reads it back."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def save(result: FitResult, path) -> Path:
    """Save a trained model (a :class:`~bilinear_core.train.FitResult`) to one file at ``path``, atomically.

    Weights (on the CPU), genes, outputs, task, settings, history, split, the preprocessing of the reference
    (``result.preprocessing``) and an ensemble's members; :func:`load` reads it back. Only a
    :class:`~bilinear_core.model.BilinearMLP` can be saved (other architectures have no rebuild recipe here).
    Returns the path.
    """
    from . import __version__

    if not isinstance(result, FitResult):
        raise TypeError(f"save takes the FitResult that training returned, got {type(result).__name__}.")
    return atomic_save({"format": FORMAT, "bilinear_core_version": __version__, **_payload(result)}, path)


def load(path, device: str = "cpu") -> FitResult:
    """The :class:`~bilinear_core.train.FitResult` that :func:`~bilinear_core.io.save` wrote to ``path``.

    The model is on ``device``, in eval mode. A file from another format version, a training checkpoint, or a
    file not written by this package is a ``ValueError`` that says which.
    """
    return _from_payload(read_payload(path, FORMAT, "saved model"), device)


def _payload(result: FitResult) -> dict:
    """What :func:`save` stores of one fit (and, recursively, of an ensemble's members)."""
    model = result.model
    if not isinstance(model, BilinearMLP):
        raise TypeError(f"save saves BilinearMLP models, got {type(model).__name__}.")
    return {
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
        "settings": plain(result.settings),
        "timings": plain(result.timings),
        "preprocessing": plain(result.preprocessing),
        "members": None if result.members is None else [_payload(m) for m in result.members],
    }


def _from_payload(payload: dict, device: str) -> FitResult:
    members = payload.get("members")
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
        members=None if members is None else [_from_payload(m, device) for m in members],
        preprocessing=payload.get("preprocessing"),
    )
