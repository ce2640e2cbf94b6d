"""Where training runs: device names resolved with clear errors, optional bf16 autocast."""

from __future__ import annotations

import contextlib

import torch

# public API (the API reference documents these); check_device, autocast and model_device serve the training loop
__all__ = ["resolve_device"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def check_device(device: str | torch.device) -> str:
    """The device's name, or a ``ValueError`` for a name that is none of ``DEVICES`` (``"cuda:N"`` allowed)."""
    if isinstance(device, torch.device):
        device = str(device)
    kind, _, index = device.partition(":") if isinstance(device, str) else (None, "", "")
    if kind not in DEVICES or (index and not index.isdigit()):
        raise ValueError(f"device must be one of {DEVICES} (optionally 'cuda:N'), got {device!r}.")
    return device


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, else MPS, else CPU; ``"cpu"``, ``"cuda"`` (or ``"cuda:1"``), ``"mps"`` as named.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when the named device is not usable here.
    """
    device = check_device(device)
    kind = device.split(":")[0]
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} was requested but CUDA is not available (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda}); use device='cpu' or 'auto', or install a CUDA build of torch."
            )
        index = int(device.split(":")[1]) if ":" in device else None
        if index is not None and index >= torch.cuda.device_count():
            raise RuntimeError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible.")
    if kind == "mps" and not _mps_available():
        raise RuntimeError(f"device={device!r} was requested but Apple's MPS backend is not available here.")
    return torch.device(device)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when ``enabled``; otherwise a no-op context (float32 exactly as before)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
