"""Checkpoints of training, which an interrupted run resumes from (a trained model is saved with
:func:`bilinear_core.io.save`).

Every checkpoint is written atomically (``bilinear_core.io.atomic_save``), so a crash during a save leaves
the previous file intact.

A :class:`Checkpoint` passed to :func:`~bilinear_core.train.fit`, :func:`~bilinear_core.stream.fit_stream` or
:func:`~bilinear_core.distributed.fit_distributed` (``checkpoint=Checkpoint("run.ckpt", every=500)``, with
``resume=``) keeps the model, the optimizer, the learning-rate schedule, every random number generator (torch's
global one and the batch order's, NumPy's, Python's), the position (epoch, steps taken in it, the running loss
sums) and the history so far. A resumed run regenerates the interrupted epoch's batches from the state saved at its
start and skips those already taken, so it ends with the weights of an uninterrupted run (bit for bit in one
process).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.optimizer import register_optimizer_step_post_hook

from .checks import check_positive_integers
from .io import STATE_FORMAT, atomic_save, plain, read_payload

# public API (the API reference documents these); Checkpointer serves the training loop, and
# inject_fault / InjectedFault are a test hook (tests and `python -m bilinear_core.distributed --fail-at-step`)
__all__ = ["Checkpoint"]

STATE_KEYS = ("identity", "position", "model", "optimizer", "scheduler", "history", "ranks")
# settings a resumed run may change: where it runs, what it shows and how fast it reads, not which batches it takes
MAY_CHANGE = ("device", "progress", "files", "prefetch", "num_workers")
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class Checkpoint:
    """Where training keeps its checkpoint, and how often it saves it.

    Saved after every ``every`` optimizer steps (``None``: only at epoch ends) and at the end of every epoch,
    atomically, by one process (global rank 0 under DDP; the path must then be on storage that every node sees).
    Pass it as ``checkpoint=`` to :func:`~bilinear_core.train.fit`, :func:`~bilinear_core.stream.fit_stream` or
    :func:`~bilinear_core.distributed.fit_distributed`, with ``resume=``: ``False`` (default) starts afresh and
    overwrites the file, ``True`` continues from it (it must exist), ``"auto"`` continues when it exists and starts
    afresh otherwise (what a restarted job needs). The file stays after training, holding the final state.
    """

    path: str | Path
    every: int | None = None

    def __post_init__(self):
        if not isinstance(self.path, str | os.PathLike) or not str(self.path):
            raise TypeError(f"Checkpoint path must be a file path, got {self.path!r}.")
        if self.every is not None:
            check_positive_integers(every=self.every)

    def _bind(self, resume=False, **run) -> Checkpointer:
        """This checkpoint for one run: reads the file when resuming (an error names a missing, truncated or
        foreign file) and, given the run's ``settings``, ``var_names``, ``output_names``, ``train_idx`` and
        ``val_idx``, refuses a checkpoint written with other ones, naming the differences."""
        if not (resume is True or resume is False or (isinstance(resume, str) and resume == "auto")):
            raise ValueError(f"resume must be True, False or 'auto', got {resume!r}.")
        path = Path(self.path)
        state = None
        if resume is True or (resume == "auto" and path.exists()):
            state = read_payload(path, STATE_FORMAT, "training checkpoint")
            missing = [key for key in STATE_KEYS if key not in state]
            if missing:
                raise ValueError(f"{path} is an incomplete training checkpoint: it lacks {missing}.")
        identity = _identity(**run) if run else None
        if state is not None and identity is not None:
            differences = _differences(state["identity"], identity)
            if differences:
                raise ValueError(
                    f"Cannot resume from {path}: it was written by a run with other settings or data: "
                    f"{'; '.join(differences)}. Resume with the checkpoint's settings and data, or start afresh "
                    "(resume=False, or another checkpoint path)."
                )
        return Checkpointer(path, self.every, state, identity)


def _identity(settings: dict, var_names, output_names, train_idx, val_idx) -> dict:
    """What a resumed run must share with the checkpoint: settings (less ``MAY_CHANGE``), genes, outputs, split."""
    split = hashlib.sha256()
    for idx in (train_idx, val_idx):
        split.update(np.asarray(idx, dtype=np.int64).tobytes() + b";")
    return {
        "settings": plain({k: v for k, v in settings.items() if k not in (*MAY_CHANGE, "var_names")}),
        "var_names": None if var_names is None else [str(v) for v in var_names],
        "output_names": [str(v) for v in output_names],
        "split": split.hexdigest(),
    }


def _differences(saved: dict, run: dict) -> list[str]:
    """How the run's identity differs from the checkpoint's, one phrase per difference."""
    out = [
        f"{name}: {_list_difference(saved[key], run[key])}"
        for key, name in (("var_names", "genes (var_names)"), ("output_names", "outputs"))
        if saved[key] != run[key]
    ]
    a, b = _flat(saved["settings"]), _flat(run["settings"])
    for key in [*a, *(k for k in b if k not in a)]:
        if a.get(key, "unset") != b.get(key, "unset"):
            out.append(f"{key}: {_short(a.get(key, 'unset'))} in the checkpoint, {_short(b.get(key, 'unset'))} now")
    if saved["split"] != run["split"]:
        out.append("the training/validation split: other cells")
    return out


def _list_difference(saved, run) -> str:
    if saved is None or run is None:
        return f"{_short(saved)} in the checkpoint, {_short(run)} now"
    n = min(len(saved), len(run))
    diff = [i for i in range(n) if saved[i] != run[i]]
    where = f"first difference at position {diff[0]}: {saved[diff[0]]!r} in the checkpoint, {run[diff[0]]!r} now"
    return f"{len(saved)} in the checkpoint, {len(run)} now, " + (where if diff else f"the first {n} agree")


def _flat(settings: dict, prefix: str = "") -> dict:
    """Nested settings (e.g. ``preprocessing``) as ``{"preprocessing.target_sum": ...}``."""
    out = {}
    for key, value in settings.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _short(value) -> str:
    return f"{len(value)} entries" if isinstance(value, list) and len(value) > 4 else repr(value)


class Checkpointer:
    """A :class:`Checkpoint` bound to one run (see ``Checkpoint._bind``): what
    :func:`~bilinear_core.train.train_model` calls to restore a resumed run and to save as it trains."""

    def __init__(self, path: Path, every: int | None, state: dict | None, identity: dict | None):
        self.path, self.every, self.state, self.identity = path, every, state, identity
        self.global_step, self.replay = 0, None

    def attach(self, model, optimizer, scheduler, source, group, rows: list, stopper=None) -> tuple[int, int, tuple]:
        """Keep what is saved; when resuming, restore it (``rows`` gets the history so far, the early ``stopper``
        its record). Returns where training starts: ``(epoch, steps taken in it, their (loss, metric, cells) sums)``.
        """
        self.model, self.optimizer, self.scheduler, self.source, self.group = model, optimizer, scheduler, source, group
        self.rows, self.stopper, self.device = rows, stopper, next(model.parameters()).device
        state = self.state
        if state is None:
            return 0, 0, (0.0, 0.0, 0)
        if len(state["ranks"]) != group.world_size:
            raise ValueError(
                f"Cannot resume from {self.path}: it was written by {len(state['ranks'])} process(es), this run has "
                f"{group.world_size}."
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rows.extend(state["history"])
        if stopper is not None:
            vars(stopper).update(state["stopper"])
        mine = state["ranks"][group.rank]
        source.load_state_dict(mine["source"])
        _set_rng_states(mine["rng"], self.device)
        position = state["position"]
        self.global_step = position["global_step"]
        log.info(
            "Resuming from %s at optimizer step %d (epoch %d, %d steps into it).",
            self.path, self.global_step, position["epoch"] + 1, position["step"],
        )  # fmt: skip
        self.state = None  # restored once; free the memory
        return position["epoch"], position["step"], tuple(mine["sums"])

    def start_epoch(self) -> None:
        """Remember the source's state at the epoch's start: a resumed run regenerates the epoch's batches from it."""
        self.replay = self.source.state_dict()

    def step(self, epoch: int, done: int, sums: tuple) -> None:
        """After each optimizer step (``done`` steps of epoch ``epoch``): save every ``every`` steps."""
        self.global_step += 1
        if self.every is not None and self.global_step % self.every == 0:
            self._save(epoch, done, sums, self.replay)

    def end_epoch(self, epoch: int, stop: bool = False) -> None:
        """After epoch ``epoch``'s validation and history row: save the start of the next epoch (with ``stop``, an
        early stop, the end of training)."""
        last = self.identity["settings"]["epochs"] if stop else epoch + 1
        self._save(last, 0, (0.0, 0.0, 0), self.source.state_dict())

    def _save(self, epoch: int, done: int, sums: tuple, source_state: dict) -> None:
        mine = {"source": source_state, "sums": [float(sums[0]), float(sums[1]), int(sums[2])]}
        mine["rng"] = _rng_states(self.device)
        ranks = [mine]
        if self.group.world_size > 1:  # every rank's generators and sums, saved by rank 0
            ranks = [None] * self.group.world_size
            dist.all_gather_object(ranks, mine)
        if self.group.rank != 0:
            return
        payload = {
            "format": STATE_FORMAT,
            "identity": self.identity,
            "position": {"epoch": epoch, "step": done, "global_step": self.global_step},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": plain(list(self.rows)),
            "stopper": None if self.stopper is None else dict(vars(self.stopper)),
            "ranks": ranks,
        }
        atomic_save(payload, self.path)


def _rng_states(device: torch.device) -> dict:
    """This process's global random number generators: torch (and CUDA's on ``device``), NumPy, Python."""
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002 (the global generator other libraries use)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": numpy_state,
        "python": random.getstate(),
    }


def _set_rng_states(states: dict, device: torch.device) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)
    numpy_state = dict(states["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(numpy_state)  # noqa: NPY002
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------------------------------------- faults
class InjectedFault(RuntimeError):
    """The failure :func:`inject_fault` raises."""


@contextlib.contextmanager
def inject_fault(step: int):
    """Fault injection, for tests of resuming: inside the block, the ``step``-th optimizer step raises
    :class:`InjectedFault` (after updating the weights, before that step's checkpoint)."""
    check_positive_integers(step=step)
    taken = 0

    def hook(optimizer, args, kwargs):
        nonlocal taken
        taken += 1
        if taken == step:
            raise InjectedFault(f"fault injected at optimizer step {step}")

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield
    finally:
        handle.remove()
