"""Out-of-sample evaluation of training settings on any AnnData and any split: one tidy table of measures.

:func:`evaluate_settings` trains a bilinear model per setting (and per seed) on one train / validation / test
split of ``adata``, fits the linear and ReLU baselines on the same cells, and tabulates, per setting, what
the regularisation chapter of the book measures: the test score, the train−validation gap and the epoch of
the best validation loss, the genes the model uses, the training cost relative to a reference setting and,
for settings trained with several seeds, how stable the modules are. The split is random (stratified for
classification), or holds out every cell of one group (``held_out=("plate", "P3")``: a study, plate, dose or
cell type unseen in training), or is given as index arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from anndata import AnnData

from .baselines import (
    ReluMLP,
    classification_scores,
    fit_logistic,
    fit_ridge,
    regression_scores,
    split_train_val_test,
)
from .checks import get_matrix, get_obs_column
from .interpret import Modules, eigendecompose
from .parallel import run_jobs
from .regularisation import active_genes
from .stability import module_stability
from .tl import target_values
from .train import FitResult, TrainSettings, fit_jobs, split_indices

#: Default grid of the inverse regularisation ``C`` of the logistic-regression baseline (the trust chapter's).
LOGISTIC_CS = (0.003, 0.01, 0.03, 0.1, 0.3)
#: Default grid of the ``alpha`` of the ridge-regression baseline (the trust chapter's).
RIDGE_ALPHAS = (1.0, 10.0, 100.0, 1_000.0, 10_000.0)
#: The baselines :func:`evaluate_settings` can add.
BASELINES = ("linear", "ReLU MLP")


def held_out_split(
    adata: AnnData,
    held_out: tuple | None = None,
    *,
    split: tuple | None = None,
    labels=None,
    test_fraction: float = 0.15,
    val_fraction: float = 0.3,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint, sorted ``(train, val, test)`` indices into ``adata``'s cells.

    ``held_out=(column, value)`` (or ``(column, [values])``) makes every cell with that ``adata.obs`` value the
    test set; ``split=(train, val, test)`` gives the three index arrays; otherwise a random
    ``test_fraction`` is the test set (:func:`~bilinear_core.baselines.split_train_val_test`). The cells
    outside the test set are split ``1 − val_fraction`` / ``val_fraction`` into training and validation with
    ``seed``, stratified on ``labels (n,)`` when given.
    """
    n = adata.n_obs
    if split is not None and held_out is not None:
        raise ValueError("Give held_out or split, not both.")
    if split is not None:
        parts = [np.sort(np.asarray(p, dtype=np.int64)) for p in split]
        if len(parts) != 3 or any(p.ndim != 1 or len(p) == 0 for p in parts):
            raise ValueError("split must be three non-empty 1-d index arrays (train, val, test).")
        joined = np.concatenate(parts)
        if joined.min() < 0 or joined.max() >= n or len(np.unique(joined)) != len(joined):
            raise ValueError(f"split must hold disjoint indices in [0, {n}).")
        return parts[0], parts[1], parts[2]
    labels = None if labels is None else np.asarray(labels).astype(str)
    if held_out is None:
        return split_train_val_test(
            n, test_fraction=test_fraction, val_fraction=val_fraction, seed=seed, stratify=labels
        )
    column, values = held_out
    values = [values] if np.ndim(values) == 0 else list(values)
    is_test = get_obs_column(adata, column).isin(values).to_numpy()
    if not is_test.any() or is_test.all():
        raise ValueError(f"held_out={held_out!r} selects {int(is_test.sum())} of {n} cells; need some, not all.")
    rest = np.flatnonzero(~is_test)
    train, val = split_indices(len(rest), val_fraction, seed, None if labels is None else labels[rest])
    return rest[train], rest[val], np.flatnonzero(is_test)


@dataclass
class Evaluation:
    """What :func:`evaluate_settings` returns.

    ``table`` has one row per setting and baseline (index ``setting``), measures as columns; ``fits`` and
    ``modules`` hold each setting's fits and their modules, one per seed (the setting's own seed first);
    ``settings`` the resolved :class:`~bilinear_core.train.TrainSettings`; ``baselines`` the fitted baseline
    models; ``train_idx``, ``val_idx``, ``test_idx`` the split.
    """

    table: pd.DataFrame
    fits: dict[str, list[FitResult]]
    modules: dict[str, list[Modules]]
    settings: dict[str, TrainSettings]
    baselines: dict[str, object]
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    task: str = "classification"
    output_names: list[str] = field(default_factory=list)

    def best(self, names: Sequence[str] | None = None) -> str:
        """The setting among ``names`` (default: every setting) with the highest validation score, first on ties."""
        names = list(self.fits) if names is None else list(names)
        missing = sorted(set(names) - set(self.fits))
        if missing:
            raise KeyError(f"No setting(s) {missing} in this evaluation ({list(self.fits)}).")
        scores = self.table.loc[names, f"validation {_metric_names(self.task)[0]}"].to_numpy()
        return names[int(np.argmax(scores))]


def _scores(task: str, y_true, y_pred, names) -> pd.Series:
    if task == "classification":
        return classification_scores(y_true, y_pred, names)
    return regression_scores(y_true, y_pred, names)


def _metric_names(task: str) -> tuple[str, str]:
    """The table's validation/test score (higher = better) and second test measure."""
    return ("accuracy", "macro-F1") if task == "classification" else ("R²", "MAE")


def _predict(model, X, task: str):
    """Labels (classification) or predictions ``(n, t)`` of a fit or a scikit-learn baseline."""
    if isinstance(model, FitResult):
        return model.predict_labels(X) if task == "classification" else model.predict(X)
    pred = model.predict(X)
    return np.asarray(pred).astype(str) if task == "classification" else np.asarray(pred).reshape(len(X), -1)


def _row(model, X, y, split, task: str, names) -> dict:
    """Validation and test scores of one model, plus what its history says (for networks)."""
    train, val, test = split
    main, second = _metric_names(task)
    key = "accuracy" if task == "classification" else "r2"
    val_scores = _scores(task, y[val], _predict(model, X[val], task), names)
    test_scores = _scores(task, y[test], _predict(model, X[test], task), names)
    row = {
        f"validation {main}": float(val_scores[key]),
        f"test {main}": float(test_scores[key]),
        f"test {second}": float(test_scores["macro_f1" if task == "classification" else "mae"]),
    }
    if isinstance(model, FitResult):
        history = model.history
        # the epoch whose weights the model holds: the best one with early stopping, else the last
        epoch = model.best_epoch if model.settings.get("patience") else int(history["epoch"].iloc[-1])
        at = history.loc[history["epoch"] == epoch].iloc[0]
        row.update(
            {
                "gap (val − train loss)": float(at["val_loss"] - at["train_loss"]),
                "best epoch": model.best_epoch,
                "epochs trained": len(history),
            }
        )
    return row


def _trained_weights(result: FitResult) -> int:
    """Weights updated per step: the model's, with the latent copies of a gene-set fit counted."""
    model = result.model
    count = sum(p.numel() for p in model.parameters())
    latent = result.settings.get("latent_inputs")
    return count if latent is None else count + 2 * model.n_hidden * (latent - model.n_in)


def _median_cos(runs: list[Modules], modules: Sequence[int]) -> float:
    """Median over outputs (and the given modules) of the mean pairwise ``|cos|`` across runs."""
    return float(np.median(np.concatenate([module_stability(runs, module=m)["mean_abs_cos"] for m in modules])))


def evaluate_settings(
    adata: AnnData,
    target,
    settings: dict,
    *,
    task: str | None = None,
    layer: str | None = None,
    n_targets: int | None = None,
    output_names: list[str] | None = None,
    held_out: tuple | None = None,
    split: tuple | None = None,
    test_fraction: float = 0.15,
    val_fraction: float = 0.3,
    split_seed: int = 42,
    seeds: dict | None = None,
    reference: str | None = None,
    baselines: Sequence[str] = BASELINES,
    relu_settings: dict | None = None,
    linear_grid: Sequence[float] | None = None,
    n_modules: int = 3,
    previous: Evaluation | None = None,
    n_jobs: int = 1,
    **common,
) -> Evaluation:
    """Train every setting on one split of ``adata`` and tabulate held-out measures, with baselines beside them.

    Parameters
    ----------
    adata, target, task, layer, n_targets
        The data and what to predict, as for :func:`bilinear_core.tl.train` (an ``.obs`` column of labels,
        numeric ``.obs`` column(s) or an ``.obsm`` key).
    settings
        ``{name: {field: value}}``: the settings to compare, each on top of ``common`` (fields of
        :class:`~bilinear_core.train.TrainSettings` shared by all, e.g. ``progress=False``); or
        ``{name: TrainSettings}``, used as they are (e.g. another evaluation's ``settings``).
    held_out, split, test_fraction, val_fraction, split_seed
        The split, see :func:`held_out_split` (classification labels stratify the random parts).
    seeds
        ``{name: (seed, …)}``: settings trained with several seeds (the first gives the test scores); the
        others use their own seed. Two or more seeds give the stability columns.
    reference
        The setting the training cost is relative to (default: the first).
    baselines, relu_settings
        Which of ``"linear"`` (logistic regression or ridge, regularisation chosen on validation) and
        ``"ReLU MLP"`` (:class:`~bilinear_core.baselines.ReluMLP` trained with the reference's settings
        without the penalties on the bilinear factors, and with the fields in ``relu_settings``) to add.
    linear_grid
        The linear baseline's grid: inverse regularisation ``C`` of logistic regression (default
        :data:`LOGISTIC_CS`) or ``alpha`` of ridge regression (default :data:`RIDGE_ALPHAS`).
    n_modules
        Modules compared across seeds: module 0 and modules ``1 … n_modules − 1``.
    previous
        An earlier :class:`Evaluation` on the same data and split: fits and baselines it holds for the same
        settings and seeds are reused, not retrained.
    n_jobs
        Fits run in this many processes at once (joblib), which share this process's torch threads (at
        least one each); every fit is seeded, so the results do not depend on ``n_jobs``.

    Returns
    -------
    An :class:`Evaluation`; its ``table`` has per row: ``validation <score>`` (what choices are made on),
    ``test <score>`` and a second test measure (accuracy and macro-F1, or mean R² and MAE over outputs),
    ``gap (val − train loss)`` at the epoch whose weights the model holds, ``best epoch`` (lowest
    validation loss), ``epochs trained``, ``genes used`` (genes with a non-zero weight in ``W`` or ``V``),
    ``relative cost`` (epochs × weights updated per step, relative to ``reference``: a deterministic
    stand-in for training time), ``seeds``, ``module 0 |cos|`` and ``modules 1–k |cos|`` (median over
    outputs of the mean pairwise ``|cos|`` across seeds; NaN with one seed) and ``model``.
    """
    if not settings:
        raise ValueError("Give at least one setting to evaluate.")
    unknown = sorted(set(seeds or {}) - set(settings))
    if unknown:
        raise KeyError(f"seeds names setting(s) {unknown} that are not in settings ({list(settings)}).")
    reference = next(iter(settings)) if reference is None else reference
    if reference not in settings:
        raise KeyError(f"reference {reference!r} is not one of the settings ({list(settings)}).")
    bad = sorted(set(baselines) - set(BASELINES))
    if bad:
        raise ValueError(f"Unknown baseline(s) {bad}; choose from {list(BASELINES)}.")
    values, task = target_values(adata, target, task, n_targets)
    X = get_matrix(adata, layer)
    labels = values if task == "classification" else None
    train, val, test = held_out_split(
        adata, held_out, split=split, labels=labels, test_fraction=test_fraction, val_fraction=val_fraction,
        seed=split_seed,
    )  # fmt: skip
    before = None if previous is None else (previous.train_idx, previous.val_idx, previous.test_idx)
    if before is not None and not all(np.array_equal(a, b) for a, b in zip((train, val, test), before)):
        raise ValueError("previous was evaluated on another split; its fits cannot be reused.")
    y = np.asarray(values).astype(str) if task == "classification" else np.asarray(values).reshape(adata.n_obs, -1)
    resolved = {name: _resolve(s, task, common) for name, s in settings.items()}
    done = [] if previous is None else [(s, r) for name in previous.fits for s, r in _seeded(previous, name)]
    fit_kwargs = dict(train_idx=train, val_idx=val, var_names=adata.var_names, output_names=output_names)
    plan, results, to_fit = {}, {}, {}
    for name, base in resolved.items():
        plan[name] = [(name, int(seed)) for seed in (seeds or {}).get(name, (base.seed,))]
        for key in plan[name]:
            current = TrainSettings.resolve(base, seed=key[1])
            reused = [r for s, r in done if s == current]
            if reused:
                results[key] = reused[0]
            else:
                to_fit[key] = {"settings": current}
    fitted = {} if previous is None else dict(previous.baselines)
    if "ReLU MLP" in baselines and "ReLU MLP" not in fitted:
        plain = dict(l1_penalty=0.0, gene_penalty=0.0, gene_set_penalty=0.0, gene_sets=None)
        relu = TrainSettings.resolve(resolved[reference], **plain | dict(relu_settings or {}))
        to_fit["ReLU MLP"] = {"settings": relu, "model_factory": ReluMLP}
    jobs = fit_jobs(X, values, to_fit, **fit_kwargs) if to_fit else {}
    if "linear" in baselines and "linear" not in fitted:
        jobs["linear"] = (np.inf, _fit_linear, (X, y, train, val, task, linear_grid))  # the slowest: first
    results.update(run_jobs(jobs, n_jobs))
    fitted.update({name: results.pop(name) for name in BASELINES if name in results})
    fits = {name: [results[key] for key in keys] for name, keys in plan.items()}
    modules = {name: [eigendecompose(r) for r in runs] for name, runs in fits.items()}
    rows = {}
    first = fits[reference][0]
    names = first.classes if task == "classification" else first.output_names
    cost = len(first.history) * _trained_weights(first)
    later = list(range(1, n_modules))
    for name, runs in fits.items():
        row = _row(runs[0], X, y, (train, val, test), task, names)
        several = len(runs) > 1
        row.update(
            {
                "genes used": int(active_genes(runs[0].model).sum()),
                "relative cost": len(runs[0].history) * _trained_weights(runs[0]) / cost,
                "seeds": len(runs),
                "module 0 |cos|": _median_cos(modules[name], [0]) if several else np.nan,
                f"modules 1–{n_modules - 1} |cos|": _median_cos(modules[name], later) if several and later else np.nan,
                "model": "bilinear MLP",
            }
        )
        rows[name] = row
    for baseline in baselines:
        rows[baseline] = {**_row(fitted[baseline], X, y, (train, val, test), task, names), "model": baseline}
    table = pd.DataFrame.from_dict(rows, orient="index")
    counts = ["best epoch", "epochs trained", "genes used", "seeds"]
    table[counts] = table[counts].astype("Int64")  # counts stay integers next to the baselines' blanks
    table.index.name = "setting"
    return Evaluation(table, fits, modules, resolved, fitted, train, val, test, task, list(first.output_names))


def _resolve(setting, task: str, common: dict) -> TrainSettings:
    """One setting: a dict of fields on top of the shared fields ``common``, or a TrainSettings as it is."""
    if isinstance(setting, TrainSettings):
        if setting.task != task:
            raise ValueError(f"A setting trains task {setting.task!r}, the target is a {task} target.")
        return setting
    return TrainSettings.resolve(task=task, **{**common, **dict(setting)})


def _seeded(evaluation: Evaluation, name: str):
    """``(settings with the run's seed, fit)`` of every run of one setting of an earlier evaluation."""
    for result in evaluation.fits[name]:
        yield TrainSettings.resolve(evaluation.settings[name], seed=int(result.settings["seed"])), result


def _fit_linear(X, y, train, val, task: str, grid=None):
    """The linear baseline: logistic regression (C) or ridge regression (alpha), chosen on validation."""
    if task == "classification":
        return fit_logistic(X, y, train, val, Cs=LOGISTIC_CS if grid is None else tuple(grid))[0]
    return fit_ridge(X, y, train, val, alphas=RIDGE_ALPHAS if grid is None else tuple(grid))[0]
