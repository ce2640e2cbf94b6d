"""Training from ``.h5ad`` files on disk: CSR row chunks, a bounded shuffle buffer, densified per batch.

Memory is O(chunk + buffer + batch) for the expression matrix, never O(cells × genes). Per-cell
vectors (targets, the train/validation split, per-cell totals in the statistics pass) are held in
memory: a few bytes per cell.

Reading order: the rows of every file are cut into chunks of ``chunk_size`` consecutive rows. An epoch
visits the chunks in a seeded random order (in file order with ``shuffle=False``), normalises each
chunk on the CPU (size factors, ``log1p``, model genes) into a buffer of at most ``buffer_size`` cells,
and draws batches from a seeded permutation of the buffer. When one buffer holds every training cell,
the batches are exactly those of :func:`~bilinear_core.train.fit` with the same seed.
"""

from __future__ import annotations

import contextlib
import numbers
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from anndata.io import read_elem
from scipy import sparse
from tqdm import tqdm

from .checks import check_min_cells, check_positive_integers
from .devices import resolve_device
from .pp import ribosomal_genes
from .train import (
    MIN_CELLS,
    Batches,
    FitResult,
    SingleProcess,
    TrainSettings,
    bind_checkpoint,
    encode_targets,
    resolve_split,
    train_model,
)

# public API (the API reference documents these); StreamSource is the source of the training loop that
# fit_stream runs (also under distributed.fit_distributed)
__all__ = [
    "H5adStream",
    "Preprocessing",
    "streaming_preprocessing",
    "fit_stream",
]

CHUNK_SIZE = 8_192
BUFFER_SIZE = 65_536


# --------------------------------------------------------------------------------------------------- sources
class _Source:
    """One ``.h5ad`` file (read with h5py, row slices of its CSR ``X``) or one AnnData (backed or in memory)."""

    def __init__(self, item, layer: str | None = None):
        self._file = None
        if isinstance(item, AnnData):
            self.name = str(item.filename) if item.isbacked else "AnnData (in memory)"
            if layer is not None and layer not in item.layers:
                raise KeyError(f"{self.name}: layer {layer!r} not found; available layers: {sorted(item.layers)}.")
            self._X = item.X if layer is None else item.layers[layer]
            self._obs, self._obsm = item.obs, item.obsm
            self.n_obs, self.var_names = item.n_obs, pd.Index(item.var_names.astype(str))
            self._check_unique()
            return
        path = Path(item)
        self.name = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"No such .h5ad file: {path} (resolved: {path.resolve()}).")
        try:
            self._file = h5py.File(path, "r")
        except OSError as err:
            raise OSError(f"{path}: cannot be opened as an .h5ad (HDF5) file: {err}") from None
        f = self._file
        if layer is None:
            X = f.get("X")
        else:
            X = f["layers"].get(layer) if "layers" in f else None
            if X is None:
                available = sorted(f["layers"]) if "layers" in f else []
                raise KeyError(f"{path}: layer {layer!r} not found; available layers: {available}.")
        if X is None:
            raise ValueError(f"{path}: the file has no X matrix.")
        if isinstance(X, h5py.Group):
            kind = X.attrs.get("encoding-type", "")
            if kind != "csr_matrix":
                raise ValueError(
                    f"{path}: X is stored as {kind!r}; streaming reads rows and needs CSR "
                    "(rewrite it with adata.X = scipy.sparse.csr_matrix(adata.X); adata.write_h5ad(...))."
                )
            self.n_obs = int(X.attrs["shape"][0])
        else:
            self.n_obs = int(X.shape[0])
        self._X = X
        self.var_names = pd.Index(read_elem(f["var"]).index.astype(str))
        self._check_unique()

    def _check_unique(self) -> None:
        if not self.var_names.is_unique:
            duplicated = list(self.var_names[self.var_names.duplicated()].unique()[:5])
            raise ValueError(
                f"{self.name}: gene names are not unique (e.g. {duplicated}); call adata.var_names_make_unique() "
                "and save the file again."
            )

    def rows(self, start: int, stop: int) -> sparse.csr_matrix:
        """Rows ``[start, stop)`` as CSR float32, refusing NaN/inf."""
        X = self._X
        if isinstance(X, h5py.Group):
            indptr = X["indptr"][start : stop + 1].astype(np.int64)
            lo, hi = int(indptr[0]), int(indptr[-1])
            data, indices = X["data"][lo:hi], X["indices"][lo:hi]
            chunk = sparse.csr_matrix((data, indices, indptr - lo), shape=(stop - start, len(self.var_names)))
        else:  # an h5py dense dataset, a backed sparse dataset, or an in-memory matrix
            chunk = X[start:stop]
            chunk = sparse.csr_matrix(chunk) if not sparse.issparse(chunk) else chunk.tocsr()
        chunk = chunk.astype(np.float32, copy=False)
        if not np.isfinite(chunk.data).all():
            bad = int((~np.isfinite(chunk.data)).sum())
            raise ValueError(
                f"{self.name}: rows {start}–{stop - 1} contain {bad} NaN or infinite value(s); "
                "impute or drop them before training (e.g. remove the affected cells)."
            )
        return chunk

    def obs_column(self, key: str):
        if self._file is None:
            if key not in self._obs.columns:
                raise KeyError(f"{self.name}: column {key!r} not in obs; available columns: {list(self._obs.columns)}.")
            column = self._obs[key]
            return pd.Categorical(column) if isinstance(column.dtype, pd.CategoricalDtype) else column.to_numpy()
        obs = self._file["obs"]
        columns = [str(c) for c in obs.attrs.get("column-order", [])]
        if key not in columns:
            raise KeyError(f"{self.name}: column {key!r} not in obs; available columns: {columns}.")
        return read_elem(obs[key])

    def obsm(self, key: str) -> np.ndarray | None:
        if self._file is None:
            return np.asarray(self._obsm[key]) if key in self._obsm else None
        return (
            np.asarray(read_elem(self._file["obsm"][key]))
            if "obsm" in self._file and key in self._file["obsm"]
            else None
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class H5adStream:
    """One or more ``.h5ad`` files (or AnnData objects) read as one cells × genes matrix, chunk by chunk.

    Every file must have the first file's genes in the same order. Use as a context manager, or call
    ``close()``.
    """

    def __init__(self, files, layer: str | None = None):
        items = [files] if isinstance(files, (str, Path, AnnData)) else list(files)
        if not items:
            raise ValueError("No input files given.")
        self.items, self.layer = items, layer  # to open them again in another process
        self.sources: list[_Source] = []
        try:
            for item in items:
                self.sources.append(_Source(item, layer))
                _check_same_genes(self.sources[0], self.sources[-1])
        except Exception:
            self.close()
            raise
        self.var_names = self.sources[0].var_names
        self.offsets = np.cumsum([0] + [s.n_obs for s in self.sources])
        self.n_obs = int(self.offsets[-1])

    def chunks(self, chunk_size: int) -> np.ndarray:
        """``(k, 3)`` array of ``(source, start, stop)``: consecutive row ranges within each file."""
        out = [
            (i, start, min(start + chunk_size, src.n_obs))
            for i, src in enumerate(self.sources)
            for start in range(0, src.n_obs, chunk_size)
        ]
        return np.asarray(out, dtype=np.int64).reshape(-1, 3)

    def read(self, chunk) -> sparse.csr_matrix:
        """The rows of one ``(source, start, stop)`` chunk."""
        i, start, stop = (int(v) for v in chunk)
        return self.sources[i].rows(start, stop)

    def read_cells(self, chunk, cells: np.ndarray, transform) -> sparse.csr_matrix:
        """Rows of ``cells`` (global ids, sorted, all inside ``chunk``), normalised by ``transform``."""
        block = transform(self.read(chunk))
        if len(cells) == block.shape[0]:
            return block
        return block[cells - self.offsets[chunk[0]] - chunk[1]]

    def obs_column(self, key: str):
        """``obs[key]`` of all files concatenated; categories keep the first file's order, then new ones."""
        parts = [src.obs_column(key) for src in self.sources]
        if all(isinstance(p, pd.Categorical) for p in parts):
            categories = list(dict.fromkeys(c for p in parts for c in p.categories))
            return pd.Categorical(np.concatenate([np.asarray(p, dtype=object) for p in parts]), categories=categories)
        return np.concatenate([np.asarray(p) for p in parts])

    def targets(self, key: str):
        """A regression target: ``obsm[key]`` (``(n, t)``) or a numeric ``obs[key]``."""
        parts = [src.obsm(key) for src in self.sources]
        if all(p is not None for p in parts):
            return np.concatenate(parts)
        return self.obs_column(key)

    def close(self) -> None:
        for src in self.sources:
            src.close()

    def __enter__(self) -> H5adStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_same_genes(first: _Source, other: _Source) -> None:
    a, b = first.var_names, other.var_names
    if len(a) == len(b) and (a == b).all():
        return
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    where = (
        f"first difference at position {diff[0]}: {b[diff[0]]!r} where {first.name} has {a[diff[0]]!r}"
        if len(diff)
        else f"the first {n} genes agree"
    )
    raise ValueError(
        f"{other.name} has different genes (var_names) from the first file {first.name}: "
        f"{len(b)} vs {len(a)} genes, {where}. All files must list the same genes in the same order."
    )


# --------------------------------------------------------------------------------------------- preprocessing
@dataclass
class Preprocessing:
    """How raw rows become model inputs; computed by :func:`streaming_preprocessing` or given.

    ``genes``: the model's input genes, in order. With ``normalize`` each cell's counts are divided by
    its total over ``counted_genes`` (all genes when ``None``) and multiplied by ``target_sum`` (the
    median total, as :func:`bilinear_core.pp.normalize_log1p`), then ``log1p``; without it the
    stored values are used as they are. ``gene_stats`` (not saved) holds the per-gene mean, dispersion
    and normalised dispersion of the HVG selection.
    """

    genes: list[str]
    normalize: bool = True
    target_sum: float | None = None
    counted_genes: list[str] | None = None
    gene_stats: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "gene_stats"}

    def bind(self, var_names: pd.Index) -> _Transform:
        return _Transform(self, var_names)


class _Transform:
    """A :class:`Preprocessing` applied to CSR chunks of files with genes ``var_names``."""

    def __init__(self, prep: Preprocessing, var_names: pd.Index):
        if prep.normalize and (prep.target_sum is None or not prep.target_sum > 0):
            raise ValueError(f"Preprocessing.normalize needs a positive target_sum, got {prep.target_sum!r}.")
        missing = pd.Index(prep.genes).difference(var_names)
        if len(missing):
            raise KeyError(f"{len(missing)} model gene(s) are not in the files, e.g. {list(missing[:5])}.")
        self.prep, self.n_genes = prep, len(prep.genes)
        self.column = np.full(len(var_names), -1, dtype=np.int64)
        self.column[var_names.get_indexer(prep.genes)] = np.arange(self.n_genes)
        counted = var_names if prep.counted_genes is None else pd.Index(prep.counted_genes)
        self.counted = var_names.isin(counted)

    def __call__(self, chunk: sparse.csr_matrix) -> sparse.csr_matrix:
        """Normalised, ``log1p``-transformed rows restricted to the model genes: ``(n, g_all) -> (n, g_model)``."""
        n = chunk.shape[0]
        rows = np.repeat(np.arange(n), np.diff(chunk.indptr))
        data = chunk.data.astype(np.float32, copy=True)
        if self.prep.normalize:
            counted = self.counted[chunk.indices]
            totals = np.bincount(rows[counted], weights=data[counted], minlength=n)
            if (totals <= 0).any():
                raise ValueError(f"{int((totals <= 0).sum())} cell(s) have no counts; filter them out first.")
            data *= (self.prep.target_sum / totals).astype(np.float32)[rows]
            np.log1p(data, out=data)
        column = self.column[chunk.indices]
        keep = column >= 0
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[keep], minlength=n), out=indptr[1:])
        return sparse.csr_matrix((data[keep], column[keep], indptr), shape=(n, self.n_genes))


def streaming_preprocessing(
    files,
    *,
    n_top_genes: int | None = None,
    normalize: bool = True,
    drop_ribosomal: bool = True,
    layer: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: bool = True,
) -> Preprocessing:
    """One streaming pass: per-cell totals (size factors) and per-gene mean/variance, then HVGs.

    Mirrors :func:`bilinear_core.pp.preprocess`: the ribosomal protein genes
    (:func:`~bilinear_core.pp.ribosomal_genes`) are dropped unless ``drop_ribosomal=False``, totals are
    summed over the remaining genes, the target is their median, and the
    ``n_top_genes`` highly variable genes are chosen as scanpy's ``seurat`` flavour does (20 bins of
    log mean, normalised log dispersion of the normalised counts). ``n_top_genes=None`` keeps all genes.
    """
    with _as_stream(files, layer) as stream:
        var_names = stream.var_names
        kept = ~ribosomal_genes(var_names) if drop_ribosomal else np.ones(len(var_names), bool)
        n_cells, g = stream.n_obs, len(var_names)
        totals = np.empty(n_cells)
        s1, s2 = np.zeros(g), np.zeros(g)  # Σ c/total and Σ (c/total)² per gene; × target (²) afterwards
        pos = 0
        chunks = stream.chunks(chunk_size)
        for chunk in tqdm(chunks, desc="preprocessing statistics", disable=not progress, unit="chunk"):
            X = stream.read(chunk)
            n = X.shape[0]
            rows = np.repeat(np.arange(n), np.diff(X.indptr))
            counted = kept[X.indices]
            data = X.data.astype(np.float64)
            t = np.bincount(rows[counted], weights=data[counted], minlength=n) if normalize else np.ones(n)
            if normalize and (t <= 0).any():
                raise ValueError(
                    f"{stream.sources[chunk[0]].name}: {int((t <= 0).sum())} cell(s) in rows {chunk[1]}–{chunk[2] - 1} "
                    "have no counts; filter them out first."
                )
            totals[pos : pos + n] = t
            pos += n
            u = data / t[rows]
            s1 += np.bincount(X.indices, weights=u, minlength=g)
            s2 += np.bincount(X.indices, weights=u * u, minlength=g)
    check_min_cells(n_cells, 2, "Preprocessing statistics")
    target = float(np.median(totals)) if normalize else 1.0
    mean = s1 * target / n_cells
    var = (s2 * target**2 / n_cells - mean**2) * n_cells / (n_cells - 1)
    genes = var_names[kept]
    stats = _seurat_hvg(mean[kept], var[kept], genes, n_top_genes)
    return Preprocessing(
        genes=list(genes[stats["highly_variable"].to_numpy()]),
        normalize=normalize,
        target_sum=target if normalize else None,
        counted_genes=list(genes) if normalize and not kept.all() else None,
        gene_stats=stats,
    )


def _seurat_hvg(mean: np.ndarray, var: np.ndarray, genes: pd.Index, n_top: int | None, n_bins: int = 20):
    """scanpy's ``flavor="seurat"`` selection from per-gene mean and variance of the normalised counts."""
    mean = mean.copy()
    mean[mean == 0] = 1e-12
    dispersion = var / mean
    dispersion[dispersion == 0] = np.nan
    df = pd.DataFrame({"means": np.log1p(mean), "dispersions": np.log(dispersion)}, index=genes)
    df["mean_bin"] = pd.cut(df["means"], bins=n_bins)
    stats = df.groupby("mean_bin", observed=True)["dispersions"].agg(avg="mean", dev="std")
    single = stats["dev"].isnull()  # one gene in the bin: normalised dispersion 1, as scanpy
    stats.loc[single, "dev"], stats.loc[single, "avg"] = stats.loc[single, "avg"], 0
    stats = stats.loc[df["mean_bin"]].set_index(df.index)
    df["dispersions_norm"] = (df["dispersions"] - stats["avg"]) / stats["dev"]
    if n_top is None or n_top >= len(df):
        df["highly_variable"] = True
        return df
    norm = df["dispersions_norm"].to_numpy()
    cutoff = np.sort(norm[~np.isnan(norm)])[::-1][min(int(n_top), int((~np.isnan(norm)).sum())) - 1]
    df["highly_variable"] = np.nan_to_num(norm, nan=-np.inf) >= cutoff
    return df


def _as_stream(files, layer):
    """A context opening ``files``; an open :class:`H5adStream` is used as is and left open."""
    return contextlib.nullcontext(files) if isinstance(files, H5adStream) else H5adStream(files, layer)


# ---------------------------------------------------------------------------------------------------- batches
def _epoch_chunks(chunks, counts, shuffle: bool, rng: np.random.Generator, rank: int, world: int):
    """This rank's chunks for one epoch and every rank's number of training cells.

    Only chunks holding training cells are dealt, round-robin in a seeded order, so every rank gets at
    least one when there are at least ``world`` such chunks (checked by the caller).
    """
    order = rng.permutation(len(chunks)) if shuffle else np.arange(len(chunks))
    order = order[np.asarray(counts)[order] > 0]
    return order[rank::world], [int(counts[order[r::world]].sum()) for r in range(world)]


class _Chunks(torch.utils.data.Dataset):
    """Chunk reads for :func:`_read`: ``(chunk, cells)`` -> the normalised CSR rows of ``cells`` (sorted global ids).

    In the main process it reads the open ``stream``; a DataLoader worker process opens the files again (h5py
    handles do not cross processes): backed AnnData by their file, AnnData in memory as they are.
    """

    def __init__(self, stream: H5adStream, transform: _Transform, table: np.ndarray):
        self.items = [Path(i.filename) if isinstance(i, AnnData) and i.isbacked else i for i in stream.items]
        self.layer, self.transform, self.table = stream.layer, transform, table
        self._stream, self._pid = stream, os.getpid()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_stream": None, "_pid": None}

    def __getitem__(self, request) -> sparse.csr_matrix:
        if self._pid != os.getpid():  # a worker process: its own file handles
            self._stream, self._pid = H5adStream(self.items, self.layer), os.getpid()
        k, cells = request
        return self._stream.read_cells(self.table[k], cells, self.transform)


def _shareable(X: sparse.csr_matrix):
    """A CSR matrix as tensors, which DataLoader workers hand over in shared memory (no copy through a pipe)."""
    return X.shape, *(torch.from_numpy(a) for a in (X.data, X.indices, X.indptr))


def _read(chunks: _Chunks, requests: list, prefetch: int, num_workers: int):
    """Yield the CSR rows of each ``(chunk, cells)`` of ``requests``, in order: with ``num_workers`` DataLoader
    worker processes (each ``prefetch`` chunks ahead, at least 1), else in this process, ``prefetch`` chunks ahead in
    a background thread (h5py reads and NumPy normalisation overlap with training; 0: read in line)."""
    if num_workers:
        loader = torch.utils.data.DataLoader(
            chunks, batch_size=None, sampler=requests, num_workers=num_workers, collate_fn=_shareable,
            prefetch_factor=max(prefetch, 1), generator=torch.Generator(),  # its seed: not from torch's global RNG
        )  # fmt: skip
        batches = iter(loader)
        try:
            for shape, *arrays in batches:
                yield sparse.csr_matrix(tuple(a.numpy() for a in arrays), shape=shape)
        finally:
            batches._shutdown_workers()  # at once, also when training stops early
        return
    if prefetch < 1:
        yield from (chunks[r] for r in requests)
        return
    pool, pending = ThreadPoolExecutor(max_workers=1), deque()
    try:
        for i, request in enumerate(requests):
            pending.append(pool.submit(chunks.__getitem__, request))
            if i >= prefetch:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _plan(order, cells_in, batch_size: int, buffer_size: int, shuffle: bool, generator: torch.Generator):
    """An epoch's batches as cell ids, one buffer drain at a time, without reading any data.

    The chunks ``order`` (non-empty ones) fill a buffer; once it holds ``buffer_size`` cells it is sorted by cell
    and permuted (``shuffle``; else kept in file order), cut into full batches, and the rest stays for the next
    drain; the last drain yields every cell left. Yields ``(chunks of order read so far, buffer cells, batches,
    rest)``, the last two as positions into the buffer cells.
    """
    carry, start, held = np.empty(0, dtype=np.int64), 0, 0

    def drain(stop: int, final: bool):
        cells = np.concatenate([carry, *(cells_in[k] for k in order[start:stop])])
        if shuffle:  # sorted, then permuted: one buffer holding every cell reproduces fit's randperm
            cells = np.sort(cells)
            perm = torch.randperm(len(cells), generator=generator).numpy()
        else:
            perm = np.arange(len(cells))
        n_out = len(perm) if final else len(perm) - len(perm) % batch_size
        return stop, cells, [perm[a : a + batch_size] for a in range(0, n_out, batch_size)], perm[n_out:]

    for i, k in enumerate(order):
        held += len(cells_in[k])
        if held >= buffer_size:
            stop, cells, batches, rest = drained = drain(i + 1, final=False)
            yield drained
            carry, start, held = cells[rest], stop, len(rest)
    if held:
        yield drain(len(order), final=True)


def _batches(read, order, cells_in, batch_size, buffer_size, shuffle, generator, steps=None, skip=0):
    """Yield ``(global cell ids, CSR rows)``: batches ``skip`` to ``steps - 1`` (default: to the end) of the epoch
    over chunks ``order`` (``cells_in[k]``: chunk k's cells), read by ``read(requests)`` (:func:`_read`).

    The batches are those of :func:`_plan`. Batches taken before a checkpoint are skipped unread: the first drain
    with a batch to yield reads its cells from the chunks that hold them, and each later drain its own chunks.
    """
    order = [k for k in order if len(cells_in[k])]
    steps = np.inf if steps is None else steps
    drains, taken = _plan(order, cells_in, batch_size, buffer_size, shuffle, generator), 0
    while taken < steps:  # skip whole drains; stop pulling once `steps` batches are planned (as the epoch does)
        drain = next(drains, None)
        if drain is None:
            return
        stop, cells, batches, rest = drain
        if taken + len(batches) > skip:
            break
        taken += len(batches)
    else:
        return
    held = [(k, cells_in[k][np.isin(cells_in[k], cells)]) for k in order[:stop]]
    held = [(k, c) for k, c in held if len(c)]
    blocks = read(held + [(k, cells_in[k]) for k in order[stop:]])
    try:
        X = _arrange(np.concatenate([c for _, c in held]), [next(blocks) for _ in held], cells)
        position, step = skip - taken, skip
        while True:
            for pick in batches[position:]:
                if step >= steps:
                    return
                yield cells[pick], X[pick]
                step += 1
            drain = next(drains, None) if step < steps else None
            if drain is None:
                return
            ids, carried, X = cells[rest], X[rest], None  # the drained buffer goes before the next is stacked
            new, (stop, cells, batches, rest), position = order[stop : drain[0]], drain, 0
            ids = np.concatenate([ids, *(cells_in[k] for k in new)])
            X = _arrange(ids, [carried, *(next(blocks) for _ in new)], cells)
    finally:
        blocks.close()  # stops the reader thread or worker processes


def _arrange(ids: np.ndarray, blocks: list, cells: np.ndarray) -> sparse.csr_matrix:
    """The rows of the stacked ``blocks`` (cells ``ids``; the list is emptied) in the order of ``cells``."""
    X = sparse.vstack(blocks, format="csr")
    blocks.clear()  # only the stacked copy stays
    if np.array_equal(ids, cells):
        return X
    sorter = np.argsort(ids)
    return X[sorter[np.searchsorted(ids, cells, sorter=sorter)]]


def _dense(X: sparse.csr_matrix, device: torch.device) -> torch.Tensor:
    """Densify a CSR batch on ``device``: ``(b, g)`` float32 (SciPy on the CPU, torch on an accelerator)."""
    return torch.from_numpy(X.toarray()) if device.type == "cpu" else _dense_on(X, device)


def _dense_on(X: sparse.csr_matrix, device: torch.device) -> torch.Tensor:
    """Copy the CSR arrays to ``device`` and densify there (only the non-zeros cross the bus)."""
    per_row = torch.from_numpy(np.diff(X.indptr).astype(np.int64)).to(device, non_blocking=True)
    col = torch.from_numpy(X.indices.astype(np.int64)).to(device, non_blocking=True)
    val = torch.from_numpy(X.data).to(device, non_blocking=True)
    row = torch.repeat_interleave(torch.arange(X.shape[0], device=device), per_row, output_size=X.nnz)
    out = torch.zeros(X.shape, dtype=val.dtype, device=device)
    out[row, col] = val  # CSR entries are unique per (row, column)
    return out


# --------------------------------------------------------------------------------------------------- training
class StreamSource:
    """Training batches and validation cells read from an open :class:`H5adStream`, for
    :func:`~bilinear_core.train.train_model`.

    The rows are cut into chunks of ``chunk_size``; each epoch the chunks holding training cells are
    dealt round-robin (in a seeded order with ``shuffle``) to the ``world_size`` processes, read and
    normalised by ``preprocessing`` (``prefetch`` chunks ahead in a thread, or in ``num_workers`` DataLoader
    worker processes: the same batches either way) into a shuffle buffer of ``buffer_size`` cells and cut into
    batches densified on ``device``. Every process takes as many steps as the one with the fewest training
    cells. Validation reads the chunks that hold validation cells.
    """

    def __init__(
        self,
        stream: H5adStream,
        preprocessing: Preprocessing,
        targets: torch.Tensor,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        settings: TrainSettings,
        device: torch.device,
        *,
        shuffle: bool = True,
        chunk_size: int = CHUNK_SIZE,
        buffer_size: int = BUFFER_SIZE,
        prefetch: int = 2,
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.stream, self.targets, self.device = stream, targets, device
        self.transform = preprocessing.bind(stream.var_names)
        self.shuffle, self.buffer_size = shuffle, buffer_size
        self.batch_size, self.rank, self.world_size = settings.batch_size, rank, world_size
        self.table = stream.chunks(chunk_size)
        self.read = partial(
            _read, _Chunks(stream, self.transform, self.table), prefetch=prefetch, num_workers=num_workers
        )
        starts = stream.offsets[self.table[:, 0]] + self.table[:, 1]
        stops = stream.offsets[self.table[:, 0]] + self.table[:, 2]
        self.train_in, self.val_in = (
            [cells[a:b] for a, b in zip(np.searchsorted(cells, starts), np.searchsorted(cells, stops))]
            for cells in (train_idx, val_idx)
        )
        self.train_counts = np.array([len(c) for c in self.train_in])
        if (self.train_counts > 0).sum() < world_size:
            suggestion = max(1, len(train_idx) // (4 * world_size))
            raise ValueError(
                f"{int((self.train_counts > 0).sum())} chunk(s) of {chunk_size} rows hold training cells, fewer than "
                f"the {world_size} processes: lower chunk_size (e.g. to {suggestion})."
            )
        self.n_train, self.name = len(train_idx), f"bilinear {settings.task} (streaming)"
        self.chunk_rng = np.random.default_rng(settings.seed)
        self.generator = torch.Generator().manual_seed(settings.seed + rank)

    def train_batches(self, skip: int = 0) -> Batches:
        mine, per_rank = _epoch_chunks(
            self.table, self.train_counts, self.shuffle, self.chunk_rng, self.rank, self.world_size
        )
        steps = min(-(-c // self.batch_size) for c in per_rank)  # every rank takes the same number of steps
        batches = _batches(
            self.read, mine, self.train_in, self.batch_size, self.buffer_size, self.shuffle, self.generator, steps,
            skip,
        )  # fmt: skip
        try:
            for cells, X in batches:
                yield _dense(X, self.device), self.targets[cells].to(self.device)
        finally:
            batches.close()  # stops the reader thread or worker processes

    def state_dict(self) -> dict:
        return {"chunk_rng": self.chunk_rng.bit_generator.state, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.chunk_rng.bit_generator.state = state["chunk_rng"]
        self.generator.set_state(state["generator"])

    def val_batches(self, batch: int = 2048) -> Batches:
        for k in range(self.rank, len(self.val_in), self.world_size):
            cells = self.val_in[k]
            if len(cells):
                X = self.stream.read_cells(self.table[k], cells, self.transform)
                for a in range(0, len(cells), batch):
                    yield _dense(X[a : a + batch], self.device), self.targets[cells[a : a + batch]].to(self.device)


def fit_stream(
    files,
    target_key: str,
    *,
    settings: TrainSettings | None = None,
    layer: str | None = None,
    preprocessing: Preprocessing | str = "normalize_log1p",
    n_top_genes: int | None = None,
    train_idx: np.ndarray | None = None,
    val_idx: np.ndarray | None = None,
    shuffle: bool = True,
    chunk_size: int = CHUNK_SIZE,
    buffer_size: int = BUFFER_SIZE,
    prefetch: int = 2,
    num_workers: int = 0,
    checkpoint=None,
    resume=False,
    _group=None,
    **hyperparameters,
) -> FitResult:
    """Train a :class:`~bilinear_core.model.BilinearMLP` on cells streamed from ``.h5ad`` files.

    The training of :func:`~bilinear_core.train.fit` (same settings, same loop, same split for the same
    seed), with the cells read from disk instead of memory.

    Parameters
    ----------
    files
        A path, an AnnData (backed or not), or a list of them, read as one data set (same genes, same order).
    target_key
        ``obs`` column of class labels (classification), or ``obsm`` key / numeric ``obs`` column (regression).
    settings, hyperparameters
        A :class:`~bilinear_core.train.TrainSettings` and/or its fields as keywords, as in
        :func:`~bilinear_core.train.fit`; batches are densified on ``device``.
    layer
        Read this layer instead of ``X``.
    preprocessing, n_top_genes
        ``"normalize_log1p"`` (default): a first streaming pass computes size factors and, with
        ``n_top_genes``, the HVGs (see :func:`streaming_preprocessing`); ``"none"``: the stored values,
        all genes; or a :class:`Preprocessing` computed before.
    train_idx, val_idx
        A fixed split; otherwise ``settings.val_fraction`` of the cells are held out with ``settings.seed``.
    shuffle, chunk_size, buffer_size
        Chunks of ``chunk_size`` rows in a seeded random order, batches drawn from a seeded permutation of a
        buffer of at most ``buffer_size`` cells (plus one chunk). ``shuffle=False``: file order.
    prefetch, num_workers
        Chunks are read and normalised in ``num_workers`` DataLoader worker processes, each ``prefetch`` chunks
        ahead (at least 1), or with ``num_workers=0`` in this process, ``prefetch`` chunks ahead in a
        background thread (0: in line). The batches do not depend on either.
    checkpoint, resume
        A :class:`~bilinear_core.checkpoint.Checkpoint` and whether to continue from it (``True``, or
        ``"auto"``: when the file exists), as in :func:`~bilinear_core.train.fit`. A resumed run regenerates
        the interrupted epoch's chunk order and buffer permutations and skips the batches already taken
        without reading them. ``prefetch``, ``num_workers``, ``device`` and the file paths may change.

    Notes
    -----
    Validation runs after every epoch over the chunks that hold validation cells: with the default random
    split that is every chunk, so for large data pass a contiguous ``val_idx`` (e.g. the last file's cells).
    The result's ``var_names`` (and ``settings["var_names"]``) are the model's input genes and
    ``settings["preprocessing"]`` the :class:`Preprocessing` as a dict.
    """
    settings = TrainSettings.resolve(settings, **hyperparameters)
    check_positive_integers(chunk_size=chunk_size, buffer_size=buffer_size)
    for name, value in (("prefetch", prefetch), ("num_workers", num_workers)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be an integer of at least 0, got {value!r}.")
    bind_checkpoint(checkpoint, resume)  # a wrong checkpoint or resume fails before the statistics pass
    if isinstance(preprocessing, str) and preprocessing not in ("normalize_log1p", "none"):
        raise ValueError(f"preprocessing must be 'normalize_log1p', 'none' or a Preprocessing, got {preprocessing!r}.")
    if n_top_genes is not None and not (isinstance(preprocessing, str) and preprocessing == "normalize_log1p"):
        raise ValueError(
            "n_top_genes needs preprocessing='normalize_log1p' (the statistics pass); a given Preprocessing's "
            "genes are the model's."
        )
    group = _group or SingleProcess()
    dev = resolve_device(settings.device)
    with _as_stream(files, layer) as stream:
        n = stream.n_obs
        check_min_cells(n, MIN_CELLS, "Training")
        if preprocessing == "none":
            prep = Preprocessing(genes=list(stream.var_names), normalize=False)
        elif isinstance(preprocessing, str):
            progress = settings.progress and group.rank == 0
            prep = streaming_preprocessing(stream, n_top_genes=n_top_genes, chunk_size=chunk_size, progress=progress)
        else:
            prep = preprocessing
        task = settings.task
        labels = stream.obs_column(target_key) if task == "classification" else stream.targets(target_key)
        targets, names, classes = encode_targets(labels, task, n)
        train_idx, val_idx = (np.sort(idx) for idx in resolve_split(targets, settings, train_idx, val_idx))
        reading = dict(
            shuffle=shuffle, chunk_size=chunk_size, buffer_size=buffer_size, prefetch=prefetch, num_workers=num_workers
        )
        record = settings.record(
            len(train_idx), len(val_idx), dev, streaming=True, **reading, world_size=group.world_size,
            files=[s.name for s in stream.sources], var_names=list(prep.genes), preprocessing=prep.to_dict(),
        )  # fmt: skip
        checkpoint = bind_checkpoint(
            checkpoint, resume, settings=record, var_names=prep.genes, output_names=names, train_idx=train_idx,
            val_idx=val_idx,
        )  # fmt: skip
        source = StreamSource(
            stream, prep, targets, train_idx, val_idx, settings, dev, **reading, rank=group.rank,
            world_size=group.world_size,
        )  # fmt: skip
        model, history, timings = train_model(
            source, settings, len(prep.genes), len(names), dev, group=group, checkpoint=checkpoint
        )
    made = {"log1p": prep.normalize, "target_sum": prep.target_sum, "layer": layer}
    return FitResult(
        model, history, train_idx, val_idx, task, names, classes, list(prep.genes), record, timings, preprocessing=made
    )
