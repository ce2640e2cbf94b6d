"""Apply a trained model to new cells: align their genes to the model's, check their expression against the
reference's preprocessing, and read them in chunks (so that a backed query larger than memory works).

:func:`bilinear_core.tl.predict` and :func:`bilinear_core.tl.explain` are the AnnData face of these.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from anndata import AnnData
from scipy import sparse
from tqdm import tqdm

from .checks import check_finite
from .interpret import gene_shares
from .pp import ribosomal_genes

# public API (the API reference documents these)
__all__ = ["MIN_OVERLAP", "Alignment", "align_genes", "check_expression", "aligned_chunks"]

#: The least share of the model's genes a query must hold; below it :func:`align_genes` refuses. With half the
#: genes missing (read as zero) a cell's ``xᵀ Q_a x`` loses the terms of those genes and of their pairs with
#: every other gene, so predictions say more about the gaps than about the cells.
MIN_OVERLAP = 0.5
#: A query whose cells sum (in counts, ``expm1`` of the values, over non-ribosomal genes) to more than this many
#: times the reference's ``target_sum`` was normalised to another scale: a warning.
SCALE_TOLERANCE = 1.5


@dataclass(frozen=True)
class Alignment:
    """Where each of the model's genes is in the query.

    ``columns`` ``(model genes,)``: the query's column of each model gene, ``-1`` where missing (read as zero);
    ``missing``: the missing genes' names; ``missing_share``: their share of the model's weight
    (:func:`bilinear_core.interpret.gene_shares`); ``n_extra``: query genes the model does not use.
    """

    columns: np.ndarray
    missing: list[str]
    missing_share: float
    n_extra: int


def align_genes(query_genes, result, min_overlap: float = MIN_OVERLAP) -> Alignment:
    """Match the query's genes to those of a fit ``result`` by name (any order; extra genes ignored).

    Missing genes are read as zeros, with a warning giving how many and their share of the model's weight;
    fewer than ``min_overlap`` of the model's genes present is a ``ValueError``, as are duplicate query genes
    and a model without gene names.
    """
    if result.var_names is None:
        raise ValueError("The model has no gene names (var_names): train it with var_names to apply it by gene name.")
    query = [str(g) for g in query_genes]
    position = {}
    for i, gene in enumerate(query):
        if gene in position:
            raise ValueError(f"The query's genes are not unique (e.g. {gene!r}); run query.var_names_make_unique().")
        position[gene] = i
    model_genes = [str(g) for g in result.var_names]
    columns = np.array([position.get(g, -1) for g in model_genes], dtype=np.int64)
    missing_idx = np.flatnonzero(columns < 0)
    n, n_model = len(model_genes) - len(missing_idx), len(model_genes)
    if not 0.0 <= min_overlap <= 1.0:
        raise ValueError(f"min_overlap must lie in [0, 1], got {min_overlap!r}.")
    if n < min_overlap * n_model or n == 0:
        example = ", ".join(model_genes[:3])
        raise ValueError(
            f"The query holds {n} of the model's {n_model} genes ({n / n_model:.0%}), fewer than min_overlap = "
            f"{min_overlap:.0%}: predictions would rest on the missing genes. Check that the gene names use the "
            f"model's identifiers (e.g. {example}) and species."
        )
    share = float(gene_shares(result, missing_idx).sum()) if len(missing_idx) else 0.0
    alignment = Alignment(columns, [model_genes[i] for i in missing_idx], share, len(query) - n)
    if len(missing_idx):
        warnings.warn(
            f"{len(missing_idx)} of the model's {n_model} genes are missing from the query and read as zero "
            f"(e.g. {', '.join(alignment.missing[:3])}); they carry {share:.1%} of the model's weight (‖Q‖²).",
            UserWarning,
            stacklevel=4,  # the caller of bilinear_core.tl.predict / explain
        )
    return alignment


def aligned_chunks(
    adata: AnnData, alignment: Alignment, layer: str | None = None, chunk_size: int = 10_000, progress: bool = False
) -> Iterator[tuple[slice, np.ndarray]]:
    """``(rows, X)`` for chunks of ``chunk_size`` cells: ``X`` ``(cells, model genes)`` float32 in the model's gene
    order, zeros for missing genes. Reads ``adata.X`` or ``layer`` a chunk at a time (backed files too)."""
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} not found in the query's layers; available layers: {sorted(adata.layers)}.")
    matrix = adata.X if layer is None else adata.layers[layer]
    if matrix is None:
        raise ValueError("The query has no expression matrix (adata.X is None); pass layer=….")
    present = np.flatnonzero(alignment.columns >= 0)
    source = alignment.columns[present]
    name = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    bar = tqdm(total=adata.n_obs, desc="bilinear predict", unit="cell", unit_scale=True, disable=not progress)
    for start in range(0, adata.n_obs, chunk_size):
        rows = slice(start, min(start + chunk_size, adata.n_obs))
        chunk = matrix[rows]
        X = np.zeros((rows.stop - start, len(alignment.columns)), dtype=np.float32)
        X[:, present] = sparse.csr_matrix(chunk)[:, source].toarray() if sparse.issparse(chunk) else chunk[:, source]
        check_finite(X, f"The query's {name}")
        bar.update(rows.stop - start)
        yield rows, X
    bar.close()


def check_expression(adata: AnnData, preprocessing: dict | None, layer: str | None = None, n_cells: int = 1000):
    """Compare the query's first ``n_cells`` cells with the reference's ``preprocessing`` (as recorded by
    :func:`bilinear_core.pp.normalize_log1p`).

    Where the reference was log-normalised: raw counts or negative (scaled) values are a ``ValueError``, and
    cells summing (``expm1``, over the non-ribosomal genes) to more than ``SCALE_TOLERANCE`` times the reference's
    ``target_sum`` a warning (normalised to another total, which scales every output). Without a record nothing
    can be checked.
    """
    if not preprocessing or not preprocessing.get("log1p"):
        return
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    sample = (adata.X if layer is None else adata.layers[layer])[: min(n_cells, adata.n_obs)]
    sample = sparse.csr_matrix(sample, dtype=np.float64)
    target = preprocessing.get("target_sum")
    advice = (
        f"normalise its counts as the reference's were: bc.pp.normalize_log1p(query, layer=…, target_sum={target:.6g})"
        if target
        else "normalise and log1p its counts as the reference's were"
    )
    values = sample.data[sample.data != 0]
    if values.size and values.min() < 0:
        raise ValueError(
            f"The query's {where} holds negative values (min {values.min():.3g}): it looks scaled or centred "
            f"(e.g. sc.pp.scale), while the model was trained on log1p-normalised expression. Predict from the "
            f"log-normalised values (layer=…, or adata.raw.to_adata()), or {advice}."
        )
    if values.size and np.all(values == np.round(values)) and values.max() > 1:
        raise ValueError(
            f"The query's {where} looks like raw counts (all {values.size:,} non-zero values checked are integers, "
            f"max {values.max():.0f}), while the model was trained on log1p-normalised expression: {advice}."
        )
    if target:
        counted = sample[:, np.flatnonzero(~ribosomal_genes(adata.var_names))]
        median = float(np.median(np.asarray(counted.expm1().sum(axis=1)).ravel()))
        if median > SCALE_TOLERANCE * target:
            warnings.warn(
                f"The query's cells sum to a median of {median:,.0f} counts (expm1 of {where}, non-ribosomal genes), "
                f"more than the reference's normalisation target of {target:,.0f}: it was normalised to another "
                f"total, which scales every output; {advice}.",
                UserWarning,
                stacklevel=4,  # the caller of bilinear_core.tl.predict / explain
            )
