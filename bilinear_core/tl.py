"""Tools over AnnData: train a bilinear model on ``adata`` and write its modules and cell scores into it.

The scanpy-style face of :func:`~bilinear_core.train.fit` and
:func:`~bilinear_core.interpret.eigendecompose`. Results land in ``adata`` under one ``key_added``
(default ``"bilinear"``):

- ``adata.uns[key_added]``: task, target, output names, settings, per-epoch history and, after
  :func:`modules`, the eigenvalues ``(outputs, 2h)``;
- ``adata.obs[f"{key_added}_split"]``: ``"train"`` or ``"validation"`` per cell;
- ``adata.varm[f"{key_added}_modules"]``: leading eigenvectors ``(genes, outputs, modules)``;
- ``adata.obsm[f"{key_added}_scores"]``: cell scores on them ``(cells, outputs, modules)``;
- ``adata.uns[key_added]["reliability"]``: how reproducible each module is
  (:func:`module_reliability`; scored for ensembles, trained with ``seeds=…``).

All of it survives ``adata.write_h5ad`` / ``anndata.read_h5ad``; :func:`get_modules` reads the modules back.
:func:`train_many` trains several models (settings, seeds) side by side, each under its own key.

A trained model applies to new cells, aligned by gene name: :func:`predict` writes
``obs[f"{key_added}_prediction"]`` (and the class probabilities and confidence), :func:`explain` splits each
call exactly over the modules of the output it explains (``obsm[f"{key_added}_contributions"]``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from .apply import MIN_OVERLAP, align_genes, aligned_chunks, check_expression
from .checks import check_positive_integers, get_matrix, get_obs_column
from .interpret import Modules, contributions, eigendecompose, leading_modules, module_scores, orient_modules
from .stability import module_reliability as reliability_table
from .train import FitResult, fit_many

SPLIT_LABELS = ("train", "validation")


def target_values(adata: AnnData, target, task: str | None = None, n_targets: int | None = None):
    """The values to train on and the task they imply.

    ``target`` is an ``.obsm`` key (regression on its first ``n_targets`` columns), one ``.obs`` column
    (classification of its labels, or regression when it is numeric) or a list of numeric ``.obs``
    columns (regression). ``task`` overrides the guess (e.g. ``"classification"`` of integer labels).
    Returns ``(values, task)``: ``pd.Categorical`` labels or a float array ``(n,)``/``(n, t)``.
    """
    if isinstance(target, str) and target in adata.obsm:
        values = np.asarray(adata.obsm[target], dtype=np.float64)
        values = values if n_targets is None else values[:, :n_targets]
        task = task or "regression"
    elif isinstance(target, str):
        if target not in adata.obs:
            raise KeyError(
                f"Target {target!r} is neither in adata.obsm ({sorted(adata.obsm)}) "
                f"nor in adata.obs ({list(adata.obs.columns)})."
            )
        column = adata.obs[target]
        numeric = pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype)
        task = task or ("regression" if numeric else "classification")
        values = pd.Categorical(column) if task == "classification" else column.to_numpy(dtype=np.float64)
    else:
        columns = [get_obs_column(adata, c) for c in target]
        values, task = np.column_stack([c.to_numpy(dtype=np.float64) for c in columns]), task or "regression"
    if task == "classification" and not isinstance(values, pd.Categorical):
        raise ValueError(f"Classification needs one obs column of labels, not {target!r}.")
    return values, task


def _h5ad_safe(value):
    """``value`` with ``None`` entries dropped and tuples as lists, so that ``write_h5ad`` can store it."""
    if isinstance(value, dict):
        return {str(k): _h5ad_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple | list):
        return [_h5ad_safe(v) for v in value]
    return value


def train(
    adata: AnnData,
    target,
    *,
    task: str | None = None,
    layer: str | None = None,
    n_targets: int | None = None,
    key_added: str = "bilinear",
    **kwargs,
) -> FitResult:
    """Train a bilinear model of ``target`` from ``adata.X`` (or ``layer``) and record it in ``adata``.

    ``target`` and ``task`` as in :func:`target_values`; keyword arguments go to
    :func:`~bilinear_core.train.fit` (the post's settings by default; ``seeds=[…]`` and ``n_jobs`` train an
    exact ensemble, whose modules :func:`modules` scores for reproducibility). Writes ``adata.uns[key_added]``
    (task, target, output names, classes, settings, history) and ``adata.obs[f"{key_added}_split"]``; the
    result's ``preprocessing`` keeps ``adata.uns["preprocessing"]`` and the layer read, for :func:`predict`.
    """
    runs = {key_added: kwargs}
    return train_many(adata, target, runs, task=task, layer=layer, n_targets=n_targets)[key_added]


def train_many(
    adata: AnnData,
    target,
    runs: dict,
    *,
    task: str | None = None,
    layer: str | None = None,
    n_targets: int | None = None,
    n_jobs: int = 1,
    **common,
) -> dict[str, FitResult]:
    """Several :func:`train` runs of one target, ``{key_added: keywords}``, in ``n_jobs`` processes at once.

    Each run trains with ``common`` updated by its own keywords (:func:`~bilinear_core.train.fit_many`) and
    is recorded under its key as :func:`train` records it. Returns ``{key_added: FitResult}``.
    """
    values, task = target_values(adata, target, task, n_targets)
    X = get_matrix(adata, layer)
    results = fit_many(X, values, runs, n_jobs=n_jobs, task=task, var_names=adata.var_names, **common)
    made = {**adata.uns.get("preprocessing", {}), "input_layer": layer}
    for key_added in runs:
        result = results[key_added]
        result.preprocessing = made
        split = np.full(adata.n_obs, SPLIT_LABELS[0], dtype=object)
        split[result.val_idx] = SPLIT_LABELS[1]
        adata.obs[f"{key_added}_split"] = pd.Categorical(split, categories=SPLIT_LABELS)
        adata.uns[key_added] = _h5ad_safe(
            {
                "task": task,
                "target": target if isinstance(target, str) else list(target),
                "n_targets": n_targets,
                "layer": layer,
                "output_names": result.output_names,
                "classes": result.classes,
                "settings": result.settings,
                "history": result.history,
            }
        )
    return {key_added: results[key_added] for key_added in runs}


def modules(
    adata: AnnData,
    result: FitResult,
    *,
    n_modules: int = 3,
    orient: bool = True,
    key_added: str = "bilinear",
) -> Modules:
    """Every output's modules, written to ``adata`` with the cells' scores on the leading ``n_modules``.

    With ``orient`` (default) each module's sign is chosen so that the output's target scores high on
    the training cells (:func:`~bilinear_core.interpret.orient_modules`: one-vs-rest for classes, the
    covariance with the target for regression), which needs ``adata.uns[key_added]`` as :func:`train`
    wrote it. For an ensemble the ``n_modules`` leading modules of both poles are scored for reproducibility
    (:func:`bilinear_core.stability.module_reliability`, stored in ``adata.uns[key_added]["reliability"]`` and
    returned as ``Modules.reliability``); for a single fit that table says the reproducibility is unknown.
    Returns the full :class:`~bilinear_core.interpret.Modules` (all ``2h`` eigenpairs).
    """
    if result.var_names is not None and list(adata.var_names) != list(result.var_names):
        raise ValueError(
            f"adata has {adata.n_vars} genes that are not the {len(result.var_names)} genes the model was trained on "
            "(same genes in the same order needed)."
        )
    record = adata.uns.get(key_added)
    layer = None if record is None else record.get("layer")
    X = get_matrix(adata, layer)
    mods = eigendecompose(result, var_names=adata.var_names if result.var_names is None else None)
    if orient:
        if record is None:
            raise KeyError(f"adata.uns has no {key_added!r}: train with bilinear_core.tl.train, or pass orient=False.")
        values, _ = target_values(adata, record["target"], record["task"], record.get("n_targets"))
        labels = np.asarray(values, dtype=object if record["task"] == "classification" else np.float64)
        mods = orient_modules(mods, X[result.train_idx], labels[result.train_idx])
    k = min(int(n_modules), mods.eigenvectors.shape[2])
    if k < 1:
        raise ValueError(f"n_modules must be a positive integer, got {n_modules!r}.")
    leading = mods.eigenvectors[:, :, :k].astype(np.float32)  # (outputs, genes, modules)
    adata.varm[f"{key_added}_modules"] = np.ascontiguousarray(leading.transpose(1, 0, 2))
    scores = [module_scores(X, mods, output, k) for output in range(len(mods.output_names))]
    adata.obsm[f"{key_added}_scores"] = np.stack(scores, axis=1)
    mods.reliability = reliability_table(result, k, modules=mods)
    adata.uns.setdefault(key_added, {})
    adata.uns[key_added].update(
        eigenvalues=mods.eigenvalues, output_names=list(mods.output_names), reliability=mods.reliability
    )
    return mods


def get_modules(adata: AnnData, key: str = "bilinear") -> Modules:
    """The modules :func:`modules` stored in ``adata`` (the leading ones, with every eigenvalue)."""
    name = f"{key}_modules"
    if name not in adata.varm or key not in adata.uns or "eigenvalues" not in adata.uns[key]:
        raise KeyError(f"No modules under {key!r} in adata (varm {name!r}, uns[{key!r}]); run bc.tl.modules first.")
    vectors = np.asarray(adata.varm[name]).transpose(1, 0, 2)
    return Modules(
        eigenvalues=np.asarray(adata.uns[key]["eigenvalues"]),
        eigenvectors=vectors,
        output_names=[str(o) for o in adata.uns[key]["output_names"]],
        var_names=[str(v) for v in adata.var_names],
        reliability=_reliability(adata, key, required=False),
    )


def module_reliability(adata: AnnData, key: str = "bilinear") -> pd.DataFrame:
    """How reproducible the modules :func:`modules` stored under ``key`` are, as a tidy table.

    One row per output, pole and rank: ``output``, ``pole``, ``rank``, ``module`` (0, 1, … from the most
    positive eigenvalue; -1, -2, … from the most negative), ``eigenvalue``, ``share`` (its part of
    ``‖Q_a‖²_F``, ``λ² / Σλ²``), ``member_cos``, ``split_half_cos``, ``n_members`` and ``reproducible``
    (``<NA>`` for a single fit: unknown). See :func:`bilinear_core.stability.module_reliability` for the
    scores and the rule.
    """
    return _reliability(adata, key, required=True)


def _reliability(adata: AnnData, key: str, required: bool) -> pd.DataFrame | None:
    record = adata.uns.get(key, {})
    if "reliability" not in record:
        if required:
            raise KeyError(f"adata.uns[{key!r}] holds no module reliability; run bc.tl.modules first.")
        return None
    table = pd.DataFrame(record["reliability"]).reset_index(drop=True)
    table["reproducible"] = table["reproducible"].astype("boolean")
    return table


def _apply(
    query: AnnData,
    result: FitResult,
    layer: str | None = None,
    chunk_size: int = 10_000,
    min_overlap: float = MIN_OVERLAP,
    check_input: bool = True,
    progress: bool = True,
):
    """Aligned chunks ``(rows, X)`` of ``query`` for ``result``, after checking the genes and the expression."""
    check_positive_integers(chunk_size=chunk_size)
    if query.n_obs == 0:
        raise ValueError("The query has no cells.")
    alignment = align_genes(query.var_names, result, min_overlap)
    if check_input:
        check_expression(query, result.preprocessing, layer)
    return alignment, aligned_chunks(query, alignment, layer, chunk_size, progress)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict(
    query: AnnData,
    result: FitResult,
    *,
    key_added: str = "bilinear",
    layer: str | None = None,
    chunk_size: int = 10_000,
    min_overlap: float = MIN_OVERLAP,
    check_input: bool = True,
    progress: bool = True,
) -> None:
    """Apply a trained model to new cells, matching their genes to the model's by name.

    ``query.X`` (or ``layer``) must hold expression prepared as the reference's was (e.g. by
    :func:`bilinear_core.pp.normalize_log1p` with the reference's ``target_sum``); genes may come in any order,
    extra genes are ignored, missing ones read as zero with a warning, and fewer than ``min_overlap`` of the
    model's genes is an error (:func:`bilinear_core.apply.align_genes`). With ``check_input`` the first cells are
    compared with the reference's recorded preprocessing (raw counts or scaled values are errors,
    :func:`bilinear_core.apply.check_expression`). Cells are read ``chunk_size`` at a time, so a backed query
    (``anndata.read_h5ad(path, backed="r")``) larger than memory works.

    Classification writes ``obs[f"{key_added}_prediction"]`` (the class), ``obsm[f"{key_added}_probabilities"]``
    (softmax of the outputs, one column per class) and ``obs[f"{key_added}_confidence"]`` (the largest
    probability); regression writes ``obsm[f"{key_added}_prediction"]`` (one column per output). How the genes
    matched goes to ``uns[key_added]["prediction"]``.
    """
    alignment, chunks = _apply(query, result, layer, chunk_size, min_overlap, check_input, progress)
    outputs = np.concatenate([result.predict(X) for _, X in chunks])
    names = [str(o) for o in result.output_names]
    if result.task == "classification":
        probabilities = _softmax(outputs.astype(np.float64))
        query.obs[f"{key_added}_prediction"] = pd.Categorical(
            np.asarray(names)[probabilities.argmax(axis=1)], categories=names
        )
        query.obs[f"{key_added}_confidence"] = probabilities.max(axis=1, initial=0.0)
        query.obsm[f"{key_added}_probabilities"] = pd.DataFrame(probabilities, index=query.obs_names, columns=names)
    else:
        query.obsm[f"{key_added}_prediction"] = pd.DataFrame(outputs, index=query.obs_names, columns=names)
    record = dict(query.uns.get(key_added, {}))
    record["prediction"] = {
        "task": result.task,
        "layer": layer,
        "n_genes_model": len(alignment.columns),
        "n_genes_missing": len(alignment.missing),
        "missing_weight_share": alignment.missing_share,
        "n_genes_extra": alignment.n_extra,
    }
    query.uns[key_added] = record


def explain(
    query: AnnData, result: FitResult, *, output=None, n_modules: int = 3, key_added: str = "bilinear", **reading
) -> None:
    """Split each cell's output exactly over the modules of ``Q_a``: ``y_a(x) = Σ_k λ_k (v_kᵀ x)²``.

    The output explained is the predicted class (classification, ``output=None``), one output name for every
    cell, or an ``obs`` column naming one per cell (e.g. the true labels, to see what a wrong call lacked);
    regression with several outputs needs ``output``. Writes ``obsm[f"{key_added}_contributions"]``: one column
    per leading module, ``module 0`` … ``module {n_modules-1}`` from the most positive eigenvalue and
    ``module -{n_modules}`` … ``module -1`` (``-1``: the most negative), each ``λ_k (v_kᵀ x)²``, then ``rest``
    (every other eigenpair), summing to the model's output; ``obs[f"{key_added}_explained"]`` names the output
    explained. Module numbers are those of :func:`modules`. Genes are aligned, checked and read as in
    :func:`predict`, whose ``layer``, ``chunk_size``, ``min_overlap``, ``check_input`` and ``progress`` it takes
    (``reading``); the model must have no biases (:func:`bilinear_core.interpret.contributions`).
    """
    _, chunks = _apply(query, result, **reading)
    names = [str(o) for o in result.output_names]
    if output is None and result.task == "regression" and len(names) > 1:
        raise ValueError(f"The model has {len(names)} outputs; name the one to explain (output=…), one of {names}.")
    if output is None or str(output) in names:
        per_cell = None if output is None else np.full(query.n_obs, str(output), dtype=object)
    elif isinstance(output, str) and output in query.obs:
        per_cell = query.obs[output].astype(str).to_numpy(dtype=object)
    else:
        raise KeyError(f"output {output!r} is neither one of the model's outputs {names} nor a column of query.obs.")
    leading = leading_modules(result, n_modules)
    parts, explained = [], []
    for rows, X in chunks:
        chosen = per_cell[rows] if per_cell is not None else np.asarray(names)[result.predict(X).argmax(axis=1)]
        parts.append(contributions(result, X, chosen, n_modules, modules=leading))
        explained.append(chosen)
    table = pd.concat(parts, ignore_index=True)
    table.index = query.obs_names
    query.obsm[f"{key_added}_contributions"] = table
    query.obs[f"{key_added}_explained"] = pd.Categorical(np.concatenate(explained), categories=names)
