"""Scale: streaming training from disk vs in memory, peak memory, two processes (DDP, gloo), and a GPU mode.

Writes a synthetic ``.h5ad`` (CSR ``X`` written chunk by chunk, never whole in memory: every gene of every
cell is non-zero with probability ``--density``, counts 1–9, 8 random labels) under
``benchmarks/results/scale/`` (git-ignored) and deletes it at the end unless ``--keep``. Each measurement runs
in a fresh process (peak = ``ru_maxrss``; for the two DDP ranks the larger rank), one epoch, hidden 128, lr 1e-4,
Adam + cosine, the last 1 % of cells (at most 10,000) held out as the validation set:

- ``read``: read and normalise every chunk (size factors, log1p) without training: the data path alone, in this
  process (0 workers) or in ``--workers`` DataLoader worker processes (the reader of ``fit_stream(num_workers=)``)
- ``stats``: the streaming preprocessing pass of ``fit_stream`` (per-cell totals, per-gene mean/variance)
- ``stream``: ``bilinear_core.stream.fit_stream`` on the whole file (once per ``--workers`` count) and on its
  first ``--memory-cells`` cells
- ``memory``: ``bilinear_core.fit`` on those first cells densified in memory (the data-resident figure)
- ``ddp2``: ``bilinear_core.distributed.spawn_local(2, ...)`` on those first cells, half the batch per rank

``cells/s`` is training cells over the call's wall time (validation and set-up included); ``loop cells/s``
counts only the training loop (``timings["train_cells_per_s"]``). ``peak RSS, all processes`` sums the RSS of the
process and its reader workers (polled every 50 ms; forked workers share the parent's library pages, which the sum
counts once per process). GPU mode: ``--device cuda --genes 5000,20000 --workers 0,8`` (see ``scale_gpu.sh``)
runs ``read`` and ``stream`` per worker count and ``memory`` (data on the GPU) per gene count.

Run: ``nice .venv/bin/python benchmarks/scale.py`` (``--help`` for options; ~15 min and 4 GB of disk here).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import time
from dataclasses import replace
from pathlib import Path

import _common as common
import numpy as np
import pandas as pd

DIR = common.RESULTS / "scale"


def write_synthetic(path: Path, n_cells: int, n_genes: int, density: float, seed: int = 0, chunk: int = 8192) -> dict:
    """Write a CSR ``.h5ad`` chunk by chunk: Bernoulli(``density``) non-zeros (geometric gaps), counts 1–9."""
    import h5py
    from anndata.io import write_elem

    rng = np.random.default_rng(seed)
    mean = n_genes * density
    draws = int(math.ceil(mean + 6 * math.sqrt(mean) + 10))  # enough gaps to pass the last gene (6 sd)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with h5py.File(path, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        X = f.create_group("X")
        X.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_cells, n_genes)})
        data = X.create_dataset("data", shape=(0,), maxshape=(None,), dtype="float32", chunks=(1 << 20,))
        indices = X.create_dataset("indices", shape=(0,), maxshape=(None,), dtype="int32", chunks=(1 << 20,))
        indptr = X.create_dataset("indptr", shape=(n_cells + 1,), dtype="int64")
        nnz = 0
        indptr[0] = 0
        for lo in range(0, n_cells, chunk):
            rows = min(chunk, n_cells - lo)
            cols = np.cumsum(rng.geometric(density, size=(rows, draws)), axis=1, dtype=np.int64) - 1
            keep = cols < n_genes
            cols = cols[keep].astype(np.int32)
            vals = rng.integers(1, 10, size=len(cols)).astype(np.float32)
            for ds, values in ((data, vals), (indices, cols)):
                ds.resize((nnz + len(cols),))
                ds[nnz:] = values
            indptr[lo + 1 : lo + rows + 1] = nnz + np.cumsum(keep.sum(axis=1))
            nnz += len(cols)
        labels = pd.Categorical.from_codes(rng.integers(0, 8, n_cells), [f"type{i}" for i in range(8)])
        write_elem(f, "obs", pd.DataFrame({"label": labels}, index=pd.RangeIndex(n_cells).astype(str)))
        write_elem(f, "var", pd.DataFrame(index=[f"gene{i}" for i in range(n_genes)]))
        for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            write_elem(f, key, {})
    return {"seconds": time.perf_counter() - start, "nnz": nnz, "bytes": path.stat().st_size}


def split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Train on the first cells, validate on the last 1 % (at most 10,000): contiguous, validation reads few chunks."""
    n_val = max(1, min(10_000, n // 100))
    return np.arange(n - n_val), np.arange(n - n_val, n)


def worker(cfg: dict) -> dict:
    """One measurement in this fresh process."""
    import torch

    torch.set_num_threads(cfg["threads"])
    from bilinear_core.stream import H5adStream, Preprocessing, _Chunks, _read, fit_stream, streaming_preprocessing
    from bilinear_core.train import TrainSettings

    path, cells, device = cfg["path"], cfg.get("cells"), cfg.get("device", "cpu")
    prep_path = Path(cfg["prep"])
    settings = TrainSettings(
        n_hidden=128, epochs=1, batch_size=cfg["batch"], lr=1e-4, seed=42, progress=False, device=device,
        mixed_precision=cfg.get("mixed_precision", False),
    )  # fmt: skip
    workers = cfg.get("workers", 0)
    reading = dict(chunk_size=cfg["chunk"], buffer_size=cfg["buffer"], prefetch=cfg.get("prefetch", 2))
    kind = cfg["kind"]
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimizer imports torch._dynamo: seconds
    tree = common.TreeMemoryPoller(os.getpid()).__enter__()
    start = time.perf_counter()
    out: dict = {}
    if kind == "stats":
        prep = streaming_preprocessing(path, chunk_size=cfg["chunk"], progress=False)
        prep_path.write_text(json.dumps(prep.to_dict()))
        out["cells"] = cfg["n_cells"]
    else:
        prep = Preprocessing(**json.loads(prep_path.read_text()))
    if kind == "read":  # in line without workers: one core's rate
        n = cells or cfg["n_cells"]
        with H5adStream(path) as stream:
            table = stream.chunks(cfg["chunk"])
            requests = [(k, np.arange(a, min(b, n))) for k, (_, a, b) in enumerate(table) if a < n]
            chunks = _Chunks(stream, prep.bind(stream.var_names), table)
            prefetch = reading["prefetch"] if workers else 0
            out["cells"] = sum(X.shape[0] for X in _read(chunks, requests, prefetch, workers))
    if kind in ("stream", "memory", "ddp2"):
        n = cells or cfg["n_cells"]
        train_idx, val_idx = split(n)
        out["cells"] = len(train_idx)
    if kind == "stream":
        result = fit_stream(
            path, "label", settings=settings, preprocessing=prep, train_idx=train_idx, val_idx=val_idx, **reading,
            num_workers=workers,
        )  # fmt: skip
    elif kind == "memory":
        import bilinear_core as bc

        with H5adStream(path) as stream:
            transform = prep.bind(stream.var_names)
            table = stream.chunks(cfg["chunk"])
            X = np.zeros((n, len(prep.genes)), dtype=np.float32)
            for chunk in table[table[:, 1] < n]:
                stop = min(int(chunk[2]), n)
                X[chunk[1] : stop] = transform(stream.read(chunk)).toarray()[: stop - chunk[1]]
            labels = stream.obs_column("label")[:n]
        start = time.perf_counter()  # time the fit, not the densifying read
        result = bc.fit(X, labels, settings=settings, train_idx=train_idx, val_idx=val_idx)
    elif kind == "ddp2":
        from bilinear_core.distributed import spawn_local

        result = spawn_local(
            2, path, "label", DIR / "ddp2.pt", threads=cfg["threads"], preprocessing=prep, train_idx=train_idx,
            val_idx=val_idx, settings=replace(settings, batch_size=cfg["batch"] // 2), **reading,
        )  # fmt: skip
    if kind in ("stream", "memory", "ddp2"):
        out["loop_cells_per_s"] = result.timings["train_cells_per_s"]
    out["seconds"] = time.perf_counter() - start
    tree.__exit__()
    out["peak_mib"], out["peak_tree_mib"] = common.max_rss_mib(), tree.peak_mib
    if kind == "ddp2":
        out["peak_mib"] = max(out["peak_mib"], resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return out


def run(kind: str, cfg: dict, label: str, rows: list, timeout: float) -> None:
    print(f"  {label}: {kind} …", flush=True)
    res = common.run_worker(__file__, {**cfg, "kind": kind}, timeout=timeout)
    if "error" in res:
        print(f"    error: {res['error']}", flush=True)
    cells_per_s = res["cells"] / res["seconds"] if "seconds" in res else None
    rows.append(
        {
            "data": label,
            "what": kind,
            "device": cfg.get("device", "cpu") + (" bf16" if cfg.get("mixed_precision") else ""),
            "prefetch": cfg.get("prefetch", 2) if kind in ("stream", "ddp2") or cfg.get("workers") else None,
            "workers": cfg.get("workers", 0) if kind in ("read", "stream") else None,
            "cells": res.get("cells"),
            "seconds": round(res["seconds"], 1) if "seconds" in res else None,
            "cells/s": round(cells_per_s) if cells_per_s else None,
            "loop cells/s": round(res["loop_cells_per_s"]) if "loop_cells_per_s" in res else None,
            "peak RSS (MiB)": round(res["peak_mib"]) if "peak_mib" in res else None,
            "peak RSS, all processes (MiB)": round(res["peak_tree_mib"]) if "peak_tree_mib" in res else None,
            "error": res.get("error", ""),
        }
    )
    print(f"    {rows[-1]}", flush=True)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1_000_000, help="cells in the on-disk data set")
    parser.add_argument("--genes", default="5000", help="gene counts, comma-separated (one data set each)")
    parser.add_argument("--density", type=float, default=0.1, help="fraction of non-zero entries")
    parser.add_argument("--memory-cells", type=int, default=100_000, help="first cells for the in-memory comparison")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--buffer-size", type=int, default=65_536)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--workers", default="0", help="reader worker counts for read/stream on the whole file")
    parser.add_argument("--skip-small", action="store_true", help="skip the first --memory-cells comparisons")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--mixed-precision", action="store_true", help="also run bf16 autocast (GPU mode)")
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the written data sets")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return pd.DataFrame()

    info = common.machine(args.threads)
    rows, notes, workers = [], [], [int(w) for w in args.workers.split(",")]
    for g in (int(x) for x in args.genes.split(",")):
        path = DIR / f"synthetic_{args.cells}x{g}.h5ad"
        label = f"{args.cells:,} × {g:,}"
        dense_gib = args.cells * g * 4 / 1024**3
        print(f"writing {path} ({label}, dense float32 would be {dense_gib:.1f} GiB) …", flush=True)
        written = write_synthetic(path, args.cells, g, args.density)
        notes.append(
            f"{label}: {written['nnz']:,} non-zeros, {written['bytes'] / 1024**3:.2f} GiB on disk "
            f"(dense float32: {dense_gib:.1f} GiB), written in {written['seconds']:.0f} s"
        )
        cfg = dict(
            path=str(path), n_cells=args.cells, batch=args.batch_size, chunk=args.chunk_size, buffer=args.buffer_size,
            threads=args.threads, device=args.device, prep=str(DIR / f"prep_{g}.json"),
        )  # fmt: skip
        small = {**cfg, "cells": min(args.memory_cells, args.cells)}
        small_label = f"first {small['cells']:,} × {g:,}" if small["cells"] < args.cells else label
        try:
            run("stats", cfg, label, rows, args.timeout)
            for w in workers:
                run("read", {**cfg, "workers": w}, label, rows, args.timeout)
                run("stream", {**cfg, "workers": w}, label, rows, args.timeout)
            if not args.skip_small:
                if small["cells"] < args.cells:
                    run("read", small, small_label, rows, args.timeout)
                    run("stream", small, small_label, rows, args.timeout)
                if args.device == "cpu":
                    run("stream", {**small, "prefetch": 0}, small_label, rows, args.timeout)
                run("memory", small, small_label, rows, args.timeout)
            if args.mixed_precision:
                run(
                    "stream",
                    {**small, "workers": workers[-1], "mixed_precision": True},
                    small_label,
                    rows,
                    args.timeout,
                )
                run("memory", {**small, "mixed_precision": True}, small_label, rows, args.timeout)
            if not args.skip_ddp and args.device == "cpu":
                run("ddp2", small, small_label, rows, args.timeout)
        finally:
            if not args.keep:
                path.unlink(missing_ok=True)
    if not args.keep:
        shutil.rmtree(DIR, ignore_errors=True)
    table = pd.DataFrame(rows)
    notes += [
        f"batch {args.batch_size} (ddp2: {args.batch_size // 2} per rank, same global batch), chunk "
        f"{args.chunk_size} rows, shuffle buffer {args.buffer_size:,} cells, 2 chunks read ahead in a thread "
        f"(prefetch 0: read in line) or per reader worker process, hidden 128, 1 epoch, "
        f"{args.threads} torch thread(s) per process; read with 0 workers: in line",
        "cells/s: training cells / wall time of the call (validation on 1 % of cells and set-up included); "
        "loop cells/s: the training loop alone; memory: fit() on data already densified in memory",
    ]
    name = "scale" if args.device == "cpu" else f"scale_{args.device}"
    common.save_table(table, name, info, "Scale: streaming from disk vs in memory", notes)
    return table


if __name__ == "__main__":
    main()
