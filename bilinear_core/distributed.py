"""Data-parallel training with ``torch.distributed`` (DDP): every rank streams its share of the chunks.

Gradients are averaged over ranks after each step, so ``W`` ranks with ``batch_size`` cells each train
like one process with ``W × batch_size`` cells per batch. Launch with torchrun, e.g. two CPU processes::

    torchrun --standalone --nproc-per-node 2 -m bilinear_core.distributed data/a.h5ad data/b.h5ad \\
        --target cell_type --out model.pt --n-top-genes 5000 --batch-size 256

gloo on CPU, nccl on CUDA (one GPU per process, chosen by ``LOCAL_RANK``, so several nodes work alike:
``torchrun --nnodes N --rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id JOB ...`` on every node). The
global rank 0 writes ``--out`` with :func:`bilinear_core.io.save` (read it back with
:func:`bilinear_core.io.load`) and the ``--checkpoint``; the data, ``--out`` and
``--checkpoint`` paths must name the same files on every node (shared storage). With ``--checkpoint`` and
``--resume`` a job restarted by ``torchrun --max-restarts N`` continues from the last checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
from dataclasses import replace
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import Checkpoint, inject_fault
from .devices import resolve_device
from .io import load, save
from .stream import BUFFER_SIZE, CHUNK_SIZE, H5adStream, fit_stream, streaming_preprocessing
from .train import SETTING_NAMES, FitResult, TrainSettings, bind_checkpoint


class _DDPGroup:
    """The initialised default process group, as :func:`bilinear_core.train.train_model` uses it."""

    def __init__(self, device: torch.device):
        self.rank, self.world_size, self.device = dist.get_rank(), dist.get_world_size(), device

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def all_sum(self, values: list[float]) -> list[float]:
        on = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        summed = torch.tensor(values, dtype=torch.float64, device=on)
        dist.all_reduce(summed)
        return summed.tolist()


def fit_distributed(
    files,
    target_key: str,
    *,
    out=None,
    settings: TrainSettings | None = None,
    preprocessing="normalize_log1p",
    **kwargs,
) -> FitResult:
    """:func:`bilinear_core.stream.fit_stream` in every process of a torchrun launch; rank 0 saves to ``out``.

    ``settings`` and ``kwargs`` as for :func:`~bilinear_core.stream.fit_stream` (``batch_size`` is per
    rank). Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` from the
    environment (torchrun sets them) unless a process group is already initialised. The preprocessing
    statistics (a streaming pass) are computed on rank 0 and sent to the others; pass a
    :class:`~bilinear_core.stream.Preprocessing` to skip that pass. Chunks holding training cells are
    dealt round-robin to the ranks each epoch and every rank takes as many steps as the rank with the
    fewest cells, so up to a chunk per rank is skipped in an epoch (a different one each epoch when shuffling).
    ``checkpoint``/``resume`` and ``num_workers`` (DataLoader reader processes per rank) as for
    :func:`~bilinear_core.stream.fit_stream`; every rank's generators are saved, so a run restarted on as
    many processes continues where the checkpoint was taken.
    """
    settings = TrainSettings.resolve(settings, **{k: kwargs.pop(k) for k in SETTING_NAMES if k in kwargs})
    bind_checkpoint(kwargs.get("checkpoint"), kwargs.get("resume", False))  # fails before any statistics pass
    dev = resolve_device(settings.device)
    if dev.type == "mps":
        raise ValueError("DDP does not run on MPS; use device='cpu'.")
    if dev.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible: start at most one "
                "process per GPU (torchrun --nproc-per-node)."
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    owner = not dist.is_initialized()
    if owner:
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"fit_distributed runs under torchrun (missing environment variables {missing}); e.g. `torchrun "
                "--standalone --nproc-per-node 2 -m bilinear_core.distributed FILES --target KEY --out model.pt`."
            )
        restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) > 0
        if restarted and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            raise RuntimeError(
                "This process is a restart by torchrun, whose shared rendezvous store still holds the failed "
                "attempt's addresses, so the process group cannot form (PyTorch issue #135712, still in torch "
                "2.13): launch torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment and the c10d "
                "rendezvous (--standalone, or --rdzv-backend c10d; a static rendezvous always shares its store)."
            )
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(hours=2))
    try:
        group = _DDPGroup(dev)
        if isinstance(preprocessing, str) and preprocessing == "normalize_log1p":
            n_top_genes = kwargs.pop("n_top_genes", None)

            def statistics():
                with H5adStream(files, kwargs.get("layer")) as stream:
                    return streaming_preprocessing(
                        stream,
                        n_top_genes=n_top_genes,
                        chunk_size=kwargs.get("chunk_size", CHUNK_SIZE),
                        progress=settings.progress,
                    )

            preprocessing = _on_rank0(group.rank, statistics)
        settings = replace(settings, device=dev)
        result = fit_stream(files, target_key, settings=settings, preprocessing=preprocessing, _group=group, **kwargs)
        if out is not None:
            _on_rank0(group.rank, lambda: save(result, out))
        dist.barrier()
        return result
    finally:
        if owner:
            dist.destroy_process_group()


def _on_rank0(rank: int, compute):
    """``compute()`` on rank 0 and its value on every rank; an error there is raised on every rank (no rank
    is left waiting in a collective)."""
    shared = [None]
    if rank == 0:
        try:
            shared[0] = (compute(), None)
        except Exception as err:  # sent to the other ranks, then raised here too
            shared[0] = (None, err)
    dist.broadcast_object_list(shared, src=0)
    value, err = shared[0]
    if err is not None:
        if rank == 0:
            raise err
        raise RuntimeError(f"rank 0 failed: {type(err).__name__}: {err}") from None
    return value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned(rank, world, port, threads, files, target_key, out, kwargs):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(threads)
    fit_distributed(files, target_key, out=out, **kwargs)


def spawn_local(nprocs: int, files, target_key: str, out, *, threads: int = 1, **kwargs) -> FitResult:
    """Run :func:`fit_distributed` in ``nprocs`` local processes (no torchrun needed); return the saved result.

    ``files`` must be paths (they are sent to the new processes); ``threads`` torch threads per process.
    """
    port = _free_port()
    args = (nprocs, port, threads, [str(f) for f in ([files] if isinstance(files, (str, os.PathLike)) else files)])
    torch.multiprocessing.spawn(_spawned, args=(*args, target_key, str(out), kwargs), nprocs=nprocs, join=True)
    return load(out)


def main(argv=None) -> None:
    """Command line for torchrun: ``python -m bilinear_core.distributed FILES --target KEY --out model.pt``."""
    p = argparse.ArgumentParser(prog="python -m bilinear_core.distributed", description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", help=".h5ad files with the same genes (CSR X)")
    p.add_argument("--target", required=True, help="obs column of labels (classification) or obsm/obs target")
    p.add_argument("--out", required=True, help="where rank 0 saves the result (torch.save)")
    p.add_argument("--task", default="classification", choices=["classification", "regression"])
    p.add_argument("--loss", default="huber", help="regression loss: huber, mse or l1")
    p.add_argument("--layer", default=None, help="read this layer instead of X")
    p.add_argument("--no-normalize", action="store_true", help="use the stored values (already normalised)")
    p.add_argument("--n-top-genes", type=int, default=None, help="keep this many HVGs (default: all genes)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64, help="cells per batch per rank")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--n-hidden", type=int, default=128)
    p.add_argument("--val-fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    p.add_argument("--buffer-size", type=int, default=BUFFER_SIZE)
    p.add_argument("--no-shuffle", action="store_true")
    p.add_argument("--prefetch", type=int, default=2, help="chunks read ahead (per worker with --num-workers)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes reading chunks, per rank")
    p.add_argument("--checkpoint", default=None, help="checkpoint file, saved at epoch ends (and --checkpoint-every)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="also save every N optimizer steps")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint when it exists (restarts)")
    p.add_argument("--fail-at-step", type=int, default=None, help="tests: a rank dies at this step, first attempt")
    p.add_argument("--fail-rank", type=int, default=None, help="tests: the rank that dies (default: the last)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--mixed-precision", action="store_true", help="bf16 autocast")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(format="%(name)s: %(message)s")
    logging.getLogger("bilinear_core").setLevel(logging.INFO)  # e.g. where a restarted job resumes
    if a.threads:
        torch.set_num_threads(a.threads)
    if (a.resume or a.checkpoint_every) and not a.checkpoint:
        p.error("--resume and --checkpoint-every need --checkpoint")
    checkpoint = Checkpoint(a.checkpoint, every=a.checkpoint_every) if a.checkpoint else None
    settings = TrainSettings(
        task=a.task, n_hidden=a.n_hidden, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
        weight_decay=a.weight_decay, loss=a.loss, val_fraction=a.val_fraction, seed=a.seed, device=a.device,
        mixed_precision=a.mixed_precision, progress=not a.no_progress,
    )  # fmt: skip
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    first_attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) == 0
    dies = a.fail_at_step is not None and first_attempt and rank == (world - 1 if a.fail_rank is None else a.fail_rank)
    with inject_fault(a.fail_at_step) if dies else contextlib.nullcontext():
        result = fit_distributed(
            a.files, a.target, out=a.out, settings=settings, layer=a.layer, n_top_genes=a.n_top_genes,
            preprocessing="none" if a.no_normalize else "normalize_log1p", chunk_size=a.chunk_size,
            buffer_size=a.buffer_size, shuffle=not a.no_shuffle, prefetch=a.prefetch, num_workers=a.num_workers,
            checkpoint=checkpoint, resume="auto" if a.resume else False,
        )  # fmt: skip
    if rank == 0:
        last = result.history.iloc[-1].to_dict()
        summary = {
            k: {**result.settings, **result.timings}[k]
            for k in ("world_size", "device", "train_cells_per_s", "n_train")
        }
        print(json.dumps({**summary, "out": a.out, **{k: float(v) for k, v in last.items()}}), flush=True)


if __name__ == "__main__":
    main()
