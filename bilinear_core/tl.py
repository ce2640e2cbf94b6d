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
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from .checks import get_matrix, get_obs_column
from .interpret import Modules, eigendecompose, module_scores, orient_modules
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
    (task, target, output names, classes, settings, history) and ``adata.obs[f"{key_added}_split"]``.
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
    for key_added in runs:
        result = results[key_added]
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
