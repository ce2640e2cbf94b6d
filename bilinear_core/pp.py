"""The post's preprocessing: drop ribosomal protein genes, normalise, log1p, highly variable genes."""

from __future__ import annotations

import re

import numpy as np
import scanpy as sc
from anndata import AnnData
from scipy import sparse

from .checks import check_finite, check_min_cells, get_obs_column

#: Ribosomal protein genes in HGNC (human, ``RPL5``) or MGI (mouse, ``Rpl5``) spelling: ``RPL``/``RPS`` and a
#: number with the paralog and variant suffixes ``A``, ``L``, ``X``, ``Y`` and a digit (``RPL10A``, ``RPL36AL``,
#: ``RPL22L1``, ``RPS4X``, ``RPS4Y1``, ``Rps3a1``) or mouse's retrogene ``rt`` (``Rps27rt``); ``RPLP0``-``RPLP2``;
#: ``RPSA``; and their processed pseudogenes (HGNC ``RPL21P28``, MGI ``Rpl10-ps3``), which hold copies of the parent
#: gene's sequence. Not matched: the kinases ``RPS6KA1``, ``RPS6KB1``, ``RPS6KC1``, ``RPS6KL1`` and ``RPS19BP1``
#: (a digit followed by other letters), lncRNAs such as ``RPL34-DT``, mitochondrial ``MRPL``/``MRPS``.
RIBOSOMAL_PATTERN = re.compile(r"(?:RP[LS]|Rp[ls])(?i:(?:\d+(?:[AXY]?L?\d?|RT)|P\d|A)(?:P\d+|-PS\d+)?)")


def ribosomal_genes(var_names) -> np.ndarray:
    """``(genes,)`` bool mask of the ribosomal protein genes among ``var_names`` (see :data:`RIBOSOMAL_PATTERN`)."""
    return np.array([RIBOSOMAL_PATTERN.fullmatch(str(name)) is not None for name in var_names], dtype=bool)


def drop_genes(adata: AnnData, drop=None) -> AnnData:
    """A copy of ``adata`` without the genes where the ``(genes,)`` bool mask ``drop`` is true.

    ``drop=None`` drops the ribosomal protein genes (:func:`ribosomal_genes`).
    """
    drop = ribosomal_genes(adata.var_names) if drop is None else np.asarray(drop, dtype=bool)
    if drop.shape != (adata.n_vars,):
        raise ValueError(f"drop must be a bool mask of shape ({adata.n_vars},) (one per gene), got {drop.shape}.")
    return adata[:, ~drop].copy()


def normalize_log1p(
    adata: AnnData,
    layer: str | None = "spliced",
    size_factor_key: str | None = None,
    target_sum: float | None = None,
) -> AnnData:
    """Total-count normalisation to ``target_sum`` (default: the median total), then ``log1p``, into ``adata.X``.

    ``size_factor_key`` names an obs column of per-cell totals to divide by instead of the
    totals of the genes present (used for the offline pancreas copy, whose totals over all genes
    are in ``initial_size_spliced``). Give a reference's ``target_sum`` (``result.preprocessing["target_sum"]``)
    to put new cells on its scale. The counts stay in ``adata.layers["counts"]``; the step is recorded in
    ``adata.uns["preprocessing"]`` (``layer``, ``size_factor_key``, ``target_sum``, ``log1p``).
    """
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} not found in adata.layers; available layers: {sorted(adata.layers)}.")
    counts = adata.layers[layer] if layer is not None else adata.X
    counts = sparse.csr_matrix(counts, dtype=np.float32)
    check_finite(counts.data, f"The counts in {'adata.X' if layer is None else f'layer {layer!r}'}")
    if size_factor_key is None:
        totals = np.asarray(counts.sum(axis=1)).ravel()
    else:
        totals = get_obs_column(adata, size_factor_key).to_numpy(dtype=np.float64)
        check_finite(totals, f"adata.obs[{size_factor_key!r}]")
    if (totals <= 0).any():
        raise ValueError(f"{int((totals <= 0).sum())} cell(s) have no counts; filter them out first.")
    if target_sum is not None and not (np.isfinite(target_sum) and target_sum > 0):
        raise ValueError(f"target_sum must be a positive number, got {target_sum!r}.")
    target = float(np.median(totals) if target_sum is None else target_sum)
    adata.layers["counts"] = counts.copy()
    adata.X = sparse.diags((target / totals).astype(np.float32)) @ counts
    sc.pp.log1p(adata)
    adata.uns["preprocessing"] = {
        **adata.uns.get("preprocessing", {}),
        "layer": layer,
        "size_factor_key": size_factor_key,
        "target_sum": target,
        "log1p": True,
    }
    return adata


def preprocess(
    adata: AnnData,
    n_top_genes: int = 10_000,
    layer: str | None = "spliced",
    size_factor_key: str | None = "auto",
    drop_ribosomal: bool = True,
    min_cells: int = 20,
) -> AnnData:
    """The post's pipeline on a copy: drop ribosomal protein genes, normalise + log1p ``layer``, keep HVGs.

    ``size_factor_key`` names an obs column of per-cell totals to normalise by (see :func:`normalize_log1p`);
    ``"auto"`` (default) takes the column the loader recorded in ``adata.uns["dataset"]["size_factor_key"]``
    (the offline pancreas copy's totals over all genes, see :func:`bilinear_core.datasets.pancreas`), and
    otherwise each cell's own total. Ribosomal protein genes (:func:`ribosomal_genes`) are dropped unless
    ``drop_ribosomal=False``. Keeps ``min(n_top_genes, n_genes)`` highly variable genes (scanpy's ``seurat``
    flavour on the log data, ``subset=True``); if that is every gene, all are kept. Records the steps in
    ``adata.uns["preprocessing"]`` (those of :func:`normalize_log1p` and the gene counts), which
    :func:`bilinear_core.tl.train` keeps with the model.
    """
    check_min_cells(adata.n_obs, min_cells, "Preprocessing")
    if size_factor_key == "auto":
        size_factor_key = adata.uns.get("dataset", {}).get("size_factor_key")
    n_in = adata.n_vars
    adata = drop_genes(adata) if drop_ribosomal else adata.copy()
    n_dropped = n_in - adata.n_vars
    normalize_log1p(adata, layer, size_factor_key)
    n_hvg = min(int(n_top_genes), adata.n_vars)
    if n_hvg < adata.n_vars:
        sc.pp.highly_variable_genes(adata, n_top_genes=n_hvg, subset=True)
    adata.uns["preprocessing"].update(
        n_genes_in=int(n_in),
        n_ribosomal_dropped=int(n_dropped),
        n_top_genes_requested=int(n_top_genes),
        n_genes=int(adata.n_vars),
    )
    return adata


def embed(
    adata: AnnData,
    n_pcs: int = 50,
    n_neighbors: int = 30,
    seed: int = 0,
    svd_solver: str | None = None,
    transformer: str | None = None,
    umap_epochs: int | None = None,
) -> AnnData:
    """PCA → neighbours → UMAP with a fixed seed, unless ``adata.obsm["X_umap"]`` already exists.

    ``svd_solver`` (PCA), ``transformer`` (kNN search, e.g. ``"sklearn"`` for exact neighbours) and
    ``umap_epochs`` go to scanpy's ``pca``, ``neighbors`` and ``umap`` (``maxiter``); ``None`` keeps
    scanpy's defaults.
    """
    if "X_umap" in adata.obsm:
        adata.uns.setdefault("umap_source", "stored in the data file")
        return adata
    sc.pp.pca(adata, n_comps=min(n_pcs, adata.n_vars - 1, adata.n_obs - 1), random_state=seed, svd_solver=svd_solver)
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, random_state=seed, transformer=transformer)
    sc.tl.umap(adata, random_state=seed, maxiter=umap_epochs)
    exact = "exact " if transformer == "sklearn" else ""
    adata.uns["umap_source"] = f"computed here (PCA {n_pcs}, {n_neighbors} {exact}neighbours, seed {seed})"
    return adata
