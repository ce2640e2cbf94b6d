"""Do output directions compose? Targets, metrics and geometry for combinatorial perturbations.

Conditions are strings: ``"control"``, a single perturbed gene ``"A"`` or a combination ``"A+B"``.
A model trained on single genes has one output per gene; a combination is read as "both of its
members at once". Everything here works on plain arrays and :class:`~bilinear_core.interpret.Modules`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from .checks import as_dense_float
from .interpret import Modules, quadratic_form
from .model import BilinearMLP

# --------------------------------------------------------------------------------------------- conditions


def parse_condition(condition: str, control: str = "control") -> tuple[str, ...]:
    """Members of one condition: ``"control"`` → ``()``, ``"A"`` → ``("A",)``, ``"A+B"`` → ``("A", "B")``."""
    if not isinstance(condition, str):
        raise TypeError(f"A condition must be a string like 'A', 'A+B' or {control!r}, got {condition!r}.")
    if condition == control:
        return ()
    members = tuple(m.strip() for m in condition.split("+"))
    if any(not m for m in members):
        raise ValueError(f"Condition {condition!r} has an empty member; write 'A', 'A+B' or {control!r}.")
    if len(set(members)) != len(members):
        raise ValueError(f"Condition {condition!r} names the same gene twice.")
    return members


#: Kinds of :func:`condition_table`, in display order.
KINDS = ("control", "single", "all members seen", "some members seen", "no member seen")


def condition_table(conditions, control: str = "control") -> pd.DataFrame:
    """The design of a combinatorial screen: one row per condition, indexed by its name.

    ``conditions`` is ``(n,)`` condition strings, one per cell. Columns: ``members`` (tuple),
    ``n_members``, ``n_cells`` and ``kind``, one of :data:`KINDS`: ``control``, ``single`` (one member),
    or for a combination whether all, some or none of its members are conditions of their own (a model
    trained on single perturbations has outputs for those). Rows are sorted by kind, then by name.
    """
    conditions = np.asarray(conditions).astype(str)
    if conditions.ndim != 1 or len(conditions) == 0:
        raise ValueError(f"conditions must be a non-empty 1-d array of strings, got shape {conditions.shape}.")
    names, counts = np.unique(conditions, return_counts=True)
    members = [parse_condition(str(name), control) for name in names]
    singles = {m[0] for m in members if len(m) == 1}

    def kind(m):
        if len(m) < 2:
            return KINDS[len(m)]
        seen = sum(g in singles for g in m)
        return KINDS[2] if seen == len(m) else KINDS[3] if seen else KINDS[4]

    table = pd.DataFrame(
        {
            "members": members,
            "n_members": [len(m) for m in members],
            "n_cells": counts,
            "kind": pd.Categorical([kind(m) for m in members], categories=KINDS),
        },
        index=pd.Index([str(name) for name in names], name="condition"),
    )
    return table.sort_values(["kind", "condition"])


def member_means(table, conditions: Sequence[str], control: str = "control"):
    """For each combination in ``conditions``, the mean of ``table``'s rows of its members.

    ``table`` is a DataFrame or Series indexed by single conditions (e.g. a metric per single gene, one
    column per model); the result, of the same kind, has one row per entry of ``conditions``: e.g. the
    "ceiling" of a pair, what its members score on their own.
    """
    rows = {}
    for condition in map(str, conditions):
        members = list(parse_condition(condition, control))
        missing = [m for m in members if m not in table.index]
        if len(members) < 2 or missing:
            problem = f"no row for member(s) {missing}" if missing else "it is not a combination 'A+B'"
            raise ValueError(f"Cannot average the members of {condition!r}: {problem}.")
        rows[condition] = table.loc[members].mean()
    if isinstance(table, pd.Series):
        return pd.Series(rows, name=table.name).rename_axis(table.index.name)
    values = np.stack([row.to_numpy() for row in rows.values()])
    return pd.DataFrame(values, index=pd.Index(list(rows), name=table.index.name), columns=table.columns)


def indicator_targets(conditions, outputs: Sequence[str], control: str = "control") -> np.ndarray:
    """Indicator targets ``(n, t)``: 1 in the column of every perturbed gene of a cell, 0 elsewhere.

    Parameters
    ----------
    conditions
        ``(n,)`` condition strings (``"A"``, ``"A+B"``, ``control``).
    outputs
        ``t`` output names. Each member of a condition must be one of them. A combination may also be an
        output of its own (``"A+B"`` in ``outputs``): its cells then get a 1 there too, besides A and B.
        Control cells are all zeros.
    """
    outputs = [str(o) for o in outputs]
    if len(set(outputs)) != len(outputs):
        raise ValueError(f"outputs contains duplicates: {outputs}.")
    conditions = np.asarray(conditions).astype(str)
    if conditions.ndim != 1 or len(conditions) == 0:
        raise ValueError(f"conditions must be a non-empty 1-d array of strings, got shape {conditions.shape}.")
    column = {o: i for i, o in enumerate(outputs)}
    targets = np.zeros((len(conditions), len(outputs)), dtype=np.float32)
    unknown: dict[str, set[str]] = {}
    for condition in map(str, np.unique(conditions)):
        members = parse_condition(condition, control)
        missing = [m for m in members if m not in column]
        if missing:
            unknown[condition] = set(missing)
            continue
        own = [condition] if len(members) > 1 and condition in column else []
        targets[np.ix_(conditions == condition, [column[name] for name in (*members, *own)])] = 1.0
    if unknown:
        genes = sorted(set().union(*unknown.values()))
        raise ValueError(
            f"Gene(s) {genes} (in condition(s) {sorted(unknown)}) are not outputs; outputs are {outputs}. "
            "Drop those cells or add the genes as outputs."
        )
    return targets


# --------------------------------------------------------------------------------------------- metrics


def pair_metrics(scores, output_names: Sequence[str], members: Sequence[str]) -> dict:
    """How well the outputs of a condition's members stand out in its cells' output vectors.

    Parameters
    ----------
    scores
        ``(n, t)`` outputs (predictions, logits or any "higher = more likely") of the condition's cells.
    output_names
        ``t`` names of the columns.
    members
        The ``k`` member outputs (two for a pair, one for a single gene or a pair with one seen member).

    Returns
    -------
    dict
        ``n_cells``, ``k``, ``mean_member`` and ``mean_other`` (mean output over cells and member /
        other columns), ``auroc`` (per cell, the fraction of (member, other) column pairs where the
        member's output is higher, ties count ½, averaged over cells: 1 = members always on top,
        0.5 = chance) and ``top_k_exact`` (fraction of cells whose ``k`` highest outputs are exactly
        the members).
    """
    scores = as_dense_float(scores, "scores", dtype=np.float64)
    names = [str(o) for o in output_names]
    if scores.shape[1] != len(names):
        raise ValueError(f"scores have {scores.shape[1]} columns but {len(names)} output names were given.")
    members = [str(m) for m in members]
    missing = [m for m in members if m not in names]
    if missing:
        raise ValueError(f"Member(s) {missing} are not outputs; outputs are {names}.")
    if not members or len(set(members)) != len(members) or len(members) >= len(names):
        raise ValueError(f"members must be 1 to {len(names) - 1} distinct outputs, got {members}.")
    if scores.shape[0] == 0:
        raise ValueError("No cells to score.")
    is_member = np.isin(names, members)
    inside, outside = scores[:, is_member], scores[:, ~is_member]  # (n, k), (n, t - k)
    diff = inside[:, :, None] - outside[:, None, :]  # (n, k, t - k)
    per_cell = ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(1, 2))
    k = len(members)
    # exact top-k: every member beats every other output (ties are not a win)
    top_k = (inside.min(axis=1) > outside.max(axis=1)).mean()
    return {
        "n_cells": int(scores.shape[0]),
        "k": k,
        "mean_member": float(inside.mean()),
        "mean_other": float(outside.mean()),
        "auroc": float(per_cell.mean()),
        "top_k_exact": float(top_k),
    }


def condition_metrics(scores, conditions, output_names: Sequence[str], control: str = "control") -> pd.DataFrame:
    """:func:`pair_metrics` of every condition with at least one member among the outputs, one row each.

    ``scores`` is ``(n, t)``, ``conditions`` ``(n,)``. Members that are not outputs (unseen genes) are
    left out: a pair with one seen member is scored on that member alone (``k = 1``). Columns:
    ``condition``, ``members`` (seen ones, joined by ``+``), ``n_members``, then :func:`pair_metrics`'s.
    """
    scores = as_dense_float(scores, "scores", dtype=np.float64)
    conditions = np.asarray(conditions).astype(str)
    if len(conditions) != scores.shape[0]:
        raise ValueError(f"scores have {scores.shape[0]} rows but there are {len(conditions)} conditions.")
    names = [str(o) for o in output_names]
    rows = []
    for condition in map(str, pd.unique(conditions)):
        members = parse_condition(condition, control)
        seen = [m for m in members if m in names]
        if not seen:
            continue
        metrics = pair_metrics(scores[conditions == condition], names, seen)
        rows.append({"condition": condition, "members": "+".join(seen), "n_members": len(members), **metrics})
    return pd.DataFrame(rows)


def centroid_scores(X_train, labels, X) -> tuple[np.ndarray, list[str]]:
    """Nearest-centroid scores: minus the Euclidean distance of each cell of ``X (n, g)`` to each class mean.

    Class means come from ``X_train (m, g)`` and ``labels (m,)`` (scikit-learn's ``NearestCentroid``).
    Returns scores ``(n, c)`` (higher = closer) and the ``c`` class names in column order.
    """
    from sklearn.neighbors import NearestCentroid

    X_train, X = as_dense_float(X_train, "X_train"), as_dense_float(X, "X")
    labels = np.asarray(labels).astype(str)
    if len(labels) != X_train.shape[0]:
        raise ValueError(f"X_train has {X_train.shape[0]} cells but the labels have {len(labels)} entries.")
    if X.shape[1] != X_train.shape[1]:
        raise ValueError(f"X has {X.shape[1]} genes but X_train has {X_train.shape[1]}.")
    with warnings.catch_warnings():
        # genes constant within a class: scikit-learn warns about its shrinkage statistics, which are not used here
        warnings.filterwarnings("ignore", message=".*within_class_std_dev_", category=UserWarning)
        warnings.filterwarnings("ignore", message="invalid value encountered in divide", category=RuntimeWarning)
        model = NearestCentroid().fit(X_train, labels)
    centroids = model.centroids_.astype(np.float64)
    sq = (X.astype(np.float64) ** 2).sum(1)[:, None] - 2 * X @ centroids.T + (centroids**2).sum(1)[None, :]
    return -np.sqrt(np.maximum(sq, 0.0)), [str(c) for c in model.classes_]


# --------------------------------------------------------------------------------------------- subspaces


def top_subspace(modules: Modules, output, k: int = 3) -> np.ndarray:
    """The ``k`` modules of one output with the largest ``|eigenvalue|``, as columns ``(g, k)``."""
    values = modules.values(output)
    if not 1 <= int(k) <= len(values):
        raise ValueError(f"k must lie in [1, {len(values)}], got {k!r}.")
    order = np.argsort(-np.abs(values), kind="stable")[: int(k)]
    return modules.vectors(output)[:, order]


def _orthonormal(A: np.ndarray, name: str) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    A = A[:, None] if A.ndim == 1 else A
    if A.ndim != 2 or A.shape[1] == 0:
        raise ValueError(f"{name} must be a (g, k) matrix of k ≥ 1 column vectors, got shape {A.shape}.")
    if not np.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    if s[-1] <= 1e-10 * max(s[0], 1e-300):
        raise ValueError(f"The columns of {name} are linearly dependent (or zero): it does not span {A.shape[1]} dims.")
    return U


def principal_angles(A, B) -> np.ndarray:
    """Principal angles (radians, ascending) between the spans of the columns of ``A (g, p)`` and ``B (g, q)``.

    There are ``min(p, q)`` of them; 0 means a shared direction, π/2 orthogonal directions.
    """
    UA, UB = _orthonormal(A, "A"), _orthonormal(B, "B")
    if UA.shape[0] != UB.shape[0]:
        raise ValueError(f"A and B live in different spaces: {UA.shape[0]} and {UB.shape[0]} rows.")
    cosines = np.clip(np.linalg.svd(UA.T @ UB, compute_uv=False), 0.0, 1.0)
    return np.arccos(cosines)


def subspace_overlap(A, B) -> float:
    """Share of the span of ``A (g, p)`` that lies in the span of ``B (g, q)``: ``‖P_B U_A‖²_F / p`` in [0, 1].

    ``U_A`` is an orthonormal basis of ``A`` and ``P_B`` the orthogonal projection onto ``B``'s span:
    the mean squared cosine of the principal angles, counting ``p - min(p, q)`` missing angles as
    right angles. 1 when span(A) ⊆ span(B) (a space with itself), 0 when they are orthogonal; a
    random ``p``-dimensional space overlaps a ``q``-dimensional one by ``q / g`` on average.
    """
    p = _orthonormal(A, "A").shape[1]
    return float((np.cos(principal_angles(A, B)) ** 2).sum() / p)


def overlap_null(
    modules: Modules,
    output,
    members: Sequence[str],
    candidates: Sequence[str],
    k: int = 3,
    reference: Modules | None = None,
) -> tuple[float, np.ndarray]:
    """Overlap of an output's top modules with its members' top modules, and the same for other groups.

    The observed value is :func:`subspace_overlap` of ``output``'s ``k`` top modules (by
    ``|eigenvalue|``) in ``modules`` with the span of all ``members``' ``k`` top modules in
    ``reference`` (default ``modules``; another model's modules are compared in gene space). The null
    puts in the members' place every ``len(members)``-subset of ``candidates`` (outputs of
    ``reference``) that shares no output with ``members`` and is not ``output``, in
    ``itertools.combinations`` order. Returns ``(observed, null)``, ``null`` of shape ``(n_null,)``.
    """
    reference = modules if reference is None else reference
    if list(reference.var_names) != list(modules.var_names):
        raise ValueError("modules and reference were computed on different genes; compare like with like.")
    members = [str(m) for m in members]
    pair_space = top_subspace(modules, output, k)

    def overlap_with(group):
        return subspace_overlap(pair_space, np.hstack([top_subspace(reference, g, k) for g in group]))

    pool = [str(c) for c in candidates if str(c) not in set(members) | {str(output)}]
    null = np.array([overlap_with(group) for group in combinations(pool, len(members))])
    if null.size == 0:
        raise ValueError(f"No null groups: candidates {list(candidates)} leave fewer than {len(members)} outputs.")
    return overlap_with(members), null


def overlap_test(
    modules: Modules, output, members: Sequence[str], candidates: Sequence[str], k: int = 3, reference=None
) -> dict:
    """:func:`overlap_null` summarised: is the members' overlap higher than other groups'?

    Arguments as for :func:`overlap_null` (``reference``: another model's
    :class:`~bilinear_core.interpret.Modules`, or ``None``).

    Returns ``k``, ``overlap`` (observed), ``null_mean``, ``null_sd``, ``null_max``, ``n_null`` and
    ``p_value`` = (1 + #null ≥ observed) / (1 + n_null).
    """
    observed, null = overlap_null(modules, output, members, candidates, k, reference)
    return {
        "k": int(k),
        "overlap": observed,
        "null_mean": float(null.mean()),
        "null_sd": float(null.std()),
        "null_max": float(null.max()),
        "n_null": int(null.size),
        "p_value": float((1 + (null >= observed).sum()) / (1 + null.size)),
    }


def pair_projections(
    means: pd.DataFrame, modules: Modules, pair: str, module: int = 0, control: str = "control"
) -> pd.DataFrame:
    """Scores of mean cells on module ``module`` of each member's ``Q_a``: does the pair move along it?

    ``means`` holds mean expression ``(conditions, genes)`` with rows ``control``, ``"A"``, ``"B"``,
    ``"A+B"``; ``modules`` has outputs ``"A"`` and ``"B"`` (orient them first, e.g. with
    :func:`bilinear_core.interpret.orient_modules`, so that each member's cells score high). One row per
    member with the scores of the control, member, other member and pair means, and ``pair_ratio`` =
    (pair − control) / (member − control): 1 when the pair moves along the module as far as the member
    alone, 0 when it stays at control; ``other_ratio`` the same for the other member alone (large:
    the module is not specific to its member).
    """
    a, b = _members_of(means, pair, control, needed=(control,))
    rows = []
    for member, other in ((a, b), (b, a)):
        vector = modules.vectors(member)[:, module]
        score = {name: float(means.loc[name].to_numpy(np.float64) @ vector) for name in (control, member, other, pair)}
        step = score[member] - score[control]
        rows.append(
            {"pair": pair, "member": member, "other": other, "score_control": score[control],
             "score_member": score[member], "score_other": score[other], "score_pair": score[pair],
             "pair_ratio": (score[pair] - score[control]) / step if step != 0 else np.nan,
             "other_ratio": (score[other] - score[control]) / step if step != 0 else np.nan}
        )  # fmt: skip
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------- expression


def condition_means(X, conditions, var_names: Sequence[str]) -> pd.DataFrame:
    """Mean expression profile of each condition: ``(n, g)`` cells → ``(conditions, genes)`` table."""
    X = as_dense_float(X, dtype=np.float64)
    conditions = np.asarray(conditions).astype(str)
    if len(conditions) != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} cells but there are {len(conditions)} conditions.")
    if X.shape[1] != len(var_names):
        raise ValueError(f"X has {X.shape[1]} genes but {len(var_names)} var names were given.")
    return pd.DataFrame(X, columns=[str(v) for v in var_names]).groupby(conditions, sort=False).mean()


def mean_shifts(X, conditions, var_names: Sequence[str], control: str = "control") -> pd.DataFrame:
    """Mean expression of each condition minus the control mean: ``(conditions, genes)`` table, control dropped."""
    means = condition_means(X, conditions, var_names)
    if control not in means.index:
        raise ValueError(f"No {control!r} cells: shifts are measured against the control mean.")
    return means.drop(index=control) - means.loc[control]


def r2(observed, predicted) -> float:
    """``1 - Σ(obs - pred)² / Σ(obs - mean(obs))²`` over the entries of two equal-shape vectors."""
    observed, predicted = np.asarray(observed, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if observed.shape != predicted.shape:
        raise ValueError(f"observed and predicted differ in shape: {observed.shape} and {predicted.shape}.")
    total = ((observed - observed.mean()) ** 2).sum()
    if total == 0:
        raise ValueError("observed is constant, so R² is undefined.")
    return float(1 - ((observed - predicted) ** 2).sum() / total)


def _members_of(table: pd.DataFrame, pair: str, control: str, needed=()) -> tuple[str, str]:
    """The two members of ``pair``, checking that ``table`` has a row for the pair, both members and ``needed``."""
    members = parse_condition(pair, control)
    if len(members) != 2:
        raise ValueError(f"{pair!r} is not a pair 'A+B'.")
    missing = [c for c in (*needed, pair, *members) if c not in table.index]
    if missing:
        raise ValueError(f"No row for {missing}: needs the pair and both single genes; rows are {list(table.index)}.")
    return members


def additivity(shifts: pd.DataFrame, pair: str, control: str = "control") -> dict:
    """Is the pair's mean shift the sum of its members' shifts?

    ``shifts`` is :func:`mean_shifts`'s table (rows ``"A"``, ``"B"``, ``"A+B"``). Returns ``r2_additive``
    (:func:`r2` of the pair's shift against ``shift_A + shift_B`` over genes), and the least-squares fit
    ``shift_AB ≈ c_A shift_A + c_B shift_B`` (no intercept; Norman et al.'s model): ``coef_a``, ``coef_b``,
    ``r2_fit``.
    """
    a, b = _members_of(shifts, pair, control)
    observed = shifts.loc[pair].to_numpy()
    design = shifts.loc[[a, b]].to_numpy().T  # (g, 2)
    coef, *_ = np.linalg.lstsq(design, observed, rcond=None)
    return {
        "r2_additive": r2(observed, design.sum(axis=1)),
        "coef_a": float(coef[0]),
        "coef_b": float(coef[1]),
        "r2_fit": r2(observed, design @ coef),
    }


def deviating_genes(shifts: pd.DataFrame, pair: str, n: int = 10, control: str = "control") -> pd.DataFrame:
    """The ``n`` genes whose pair shift departs most from the sum of the members' shifts.

    Columns: ``gene``, ``shift_a``, ``shift_b``, ``additive`` (their sum), ``observed`` (pair shift),
    ``residual`` (observed − additive), sorted by ``|residual|``, largest first.
    """
    a, b = _members_of(shifts, pair, control)
    table = pd.DataFrame(
        {"shift_a": shifts.loc[a], "shift_b": shifts.loc[b], "additive": shifts.loc[a] + shifts.loc[b],
         "observed": shifts.loc[pair]}
    )  # fmt: skip
    table["residual"] = table["observed"] - table["additive"]
    order = table["residual"].abs().sort_values(ascending=False, kind="stable").index[: int(n)]
    return table.loc[order].rename_axis("gene").reset_index()


def split_half_r2(X, conditions, condition: str, control: str = "control", seed: int = 0) -> float:
    """Noise reference for shift R²: a condition's mean shift from one half of its cells against the other half.

    The cells of ``condition`` and of ``control`` in ``X (n, g)`` (labelled by ``conditions (n,)``) are each
    split at random (``seed``) into two halves; each half gives a shift (condition mean − control mean) and
    :func:`r2` of one against the other, averaged over both directions, is returned. Perfect
    reproducibility gives 1; each half has half the cells, so a full-size shift is more reproducible than this.
    """
    X = as_dense_float(X, dtype=np.float64)
    conditions = np.asarray(conditions).astype(str)
    rng = np.random.default_rng(seed)
    halves = []
    for name in (condition, control):
        idx = rng.permutation(np.flatnonzero(conditions == name))
        if len(idx) < 4:
            raise ValueError(f"Condition {name!r} has {len(idx)} cells; a split-half estimate needs at least 4.")
        halves.append((idx[: len(idx) // 2], idx[len(idx) // 2 :]))
    (c1, c2), (k1, k2) = halves
    one = X[c1].mean(0) - X[k1].mean(0)
    two = X[c2].mean(0) - X[k2].mean(0)
    return 0.5 * (r2(one, two) + r2(two, one))


def model_cross_terms(
    model: BilinearMLP, means: pd.DataFrame, pair: str, output_names: Sequence[str], control: str = "control"
) -> pd.DataFrame:
    """A bilinear model's outputs on mean cells, and its cross term for a pair.

    ``means`` holds mean expression profiles ``(conditions, genes)`` with rows ``control``, ``"A"``,
    ``"B"`` and ``"A+B"``. For each member output ``a`` the model (no biases: ``y_a = xᵀ Q_a x``) is
    evaluated on the control, A, B and pair means and on the additive cell ``x_A + x_B − x_control``;
    ``cross_term`` = ``y(additive) − y(A) − y(B) + y(control)`` equals ``2 d_Aᵀ Q_a d_B`` exactly
    (``d`` = shift from control), and ``non_additive`` = ``y(pair) − y(additive)`` is what the
    departure of the pair's expression from additivity does to the output.
    """
    if model.left.bias is not None:
        raise ValueError("The cross term is that of the quadratic form: train the model with bias=False.")
    a, b = _members_of(means, pair, control, needed=(control,))
    rows = {name: means.loc[name].to_numpy(np.float64) for name in (control, a, b, pair)}
    points = np.stack([rows[control], rows[a], rows[b], rows[a] + rows[b] - rows[control], rows[pair]])
    outputs = quadratic_form(model, points)  # (5, t)
    names = [str(o) for o in output_names]
    table = []
    for member in (a, b):
        if member not in names:
            raise ValueError(f"Member {member!r} of {pair!r} is not an output; outputs are {names}.")
        y = outputs[:, names.index(member)]
        table.append(
            {"pair": pair, "output": member, "y_control": y[0], "y_a": y[1], "y_b": y[2], "y_additive": y[3],
             "y_pair": y[4], "cross_term": y[3] - y[1] - y[2] + y[0], "non_additive": y[4] - y[3]}
        )  # fmt: skip
    return pd.DataFrame(table)
