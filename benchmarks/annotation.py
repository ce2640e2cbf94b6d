"""Applying a trained model to new cells: the bilinear model's ``bc.tl.predict`` beside CellTypist and LR.

For each case a reference (labelled cells to train on) and a query (cells to label) are given. Three methods
train on the reference and label the query:

- **bilinear**: ``bc.tl.train(reference, labels, ...)`` at the post's settings (hidden 128, 100 epochs, batch 64,
  lr 1e-4, weight decay 0.35, seed 42; its own 70/30 train/validation split of the reference unless the case
  gives one), then ``bc.tl.predict(query, result)`` (genes aligned by name), read from
  ``query.obs["bilinear_prediction"]``;
- **logreg**: scikit-learn's ``LogisticRegression(max_iter=1000)`` (multinomial, C = 1) on the same
  log-normalised matrices, the query's genes aligned to the reference's by name (missing genes are 0);
- **celltypist**: ``celltypist.train`` then ``celltypist.annotate(majority_voting=False)`` with CellTypist's
  defaults, run by ``benchmarks/celltypist_worker.py`` inside ``.venv-celltypist`` (CellTypist 1.7.1 needs
  scikit-learn < 1.8; ``make bench-celltypist`` creates it), offline. CellTypist gets what it checks for: log1p of
  counts normalised to 10,000 per cell over the genes in the file (``sc.pp.normalize_total(target_sum=1e4)``
  then ``sc.pp.log1p``), written with the labels to two temporary ``.h5ad`` files.

Scores on the query: accuracy and macro-F1 (over the query's true classes, ``bilinear_core.baselines.
classification_scores``); ``train_s`` = wall time of training on the reference (data in memory); ``predict_s`` =
median wall time of labelling the query (``--repeats`` calls). The CellTypist times are measured inside the
worker, without its start-up, imports and file reading. Then, per class, the overlap of CellTypist's top genes
(``model.extract_top_markers(class, N)``, largest positive coefficients) with the positive pole of the bilinear
model's module 0 for that class (``bc.tl.modules`` then ``bilinear_core.interpret.top_genes``: N =
max(1 % of the genes, 50)): the number of shared genes, the Jaccard index and the count expected by chance
(N² / genes).

Built-in cases (no files given):

- ``pbmc68k``: scanpy's bundled ``sc.datasets.pbmc68k_reduced()`` (700 cells; its ``.X`` is scaled, so the
  expression is ``.raw``: 765 genes, log1p of counts normalised to 10,000 over all genes of the original data),
  labels ``bulk_labels``, a stratified 50/50 reference/query split (``train_test_split``, seed 42). CellTypist's
  input: the 765 genes' counts, recovered as ``round(expm1(raw) · n_counts / 10,000)``, renormalised to 10,000.
- ``pancreas``: the trust chapter's split: ``bc.pp.preprocess(bc.datasets.pancreas(), n_top_genes=10_000,
  layer="spliced")``, ``split_train_val_test(n, seed=42, stratify=clusters)``; reference = train + validation
  cells (the bilinear model trains on the chapter's train cells and validates on its validation cells), query =
  test cells, labels ``clusters``. CellTypist's input: ``layers["counts"]`` (the spliced counts of the kept genes)
  normalised to 10,000; the bilinear model and LR see ``X`` (normalised by the totals over all genes, log1p).

Any two AnnData files: ``REF.h5ad QUERY.h5ad --labels COL`` (``--layer`` for log-normalised expression in a layer,
``--use-raw`` for ``.raw``); the query needs the same label column to be scored. CellTypist's counts come from
``--counts-layer`` or a ``counts`` layer in both files, else from ``expm1`` of the expression (right when it is
log1p of per-cell scaled counts).

Run: ``.venv/bin/python benchmarks/annotation.py`` (both built-in cases; ``make bench-celltypist``) or
``.venv/bin/python benchmarks/annotation.py REF.h5ad QUERY.h5ad --labels cell_type`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import _common as common
import numpy as np
import pandas as pd

CT_VENV = common.ROOT / ".venv-celltypist"
CT_PYTHON = CT_VENV / "bin" / "python"
WORKER = Path(__file__).resolve().with_name("celltypist_worker.py")
SEED = 42
# the post's settings (TrainSettings' defaults) with its weight decay 0.35, as the cell-typing chapter trains
SETTINGS = dict(n_hidden=128, epochs=100, batch_size=64, lr=1e-4, weight_decay=0.35, seed=SEED, progress=False)
METHODS = ("bilinear", "logreg", "celltypist")
CASES = ("pbmc68k", "pancreas")


@dataclass
class Case:
    """A reference and a query: expression for the bilinear model and LR, counts for CellTypist."""

    name: str
    reference: object  # AnnData, log-normalised expression in X (or `layer`)
    query: object
    labels: str
    ref_counts: object  # (cells, genes) counts (or per-cell multiples of them) for CellTypist
    query_counts: object
    layer: str | None = None
    train_kwargs: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------- cases


def pbmc68k_case() -> Case:
    import anndata as ad
    import scanpy as sc
    from scipy import sparse
    from sklearn.model_selection import train_test_split

    full = sc.datasets.pbmc68k_reduced()
    raw = sparse.csr_matrix(full.raw.X, dtype=np.float32)
    obs = full.obs[["bulk_labels"]].copy()
    expr = ad.AnnData(raw, obs=obs, var=pd.DataFrame(index=full.raw.var_names.astype(str)))
    # raw = log1p(counts / n_counts · 1e4) with n_counts over all genes of the original data: recover the counts
    counts = raw.copy()
    counts.data = np.expm1(counts.data.astype(np.float64))
    counts = sparse.diags(full.obs["n_counts"].to_numpy(np.float64) / 1e4) @ counts
    deviation = float(np.abs(counts.data - np.round(counts.data)).max())
    counts.data = np.round(counts.data)
    labels = expr.obs["bulk_labels"].astype(str).to_numpy()
    ref_idx, query_idx = train_test_split(np.arange(expr.n_obs), test_size=0.5, random_state=SEED, stratify=labels)
    ref_idx, query_idx = np.sort(ref_idx), np.sort(query_idx)
    notes = [
        "pbmc68k: sc.datasets.pbmc68k_reduced() .raw (700 cells x 765 genes, log1p of counts normalised to 10,000 "
        "over all genes of the original data); stratified 50/50 split, seed 42",
        f"pbmc68k CellTypist input: counts recovered as round(expm1(raw) * n_counts / 1e4) (largest rounding "
        f"{deviation:.3g}), renormalised to 10,000 over the 765 genes, log1p",
    ]
    return Case(
        "pbmc68k",
        expr[ref_idx].copy(),
        expr[query_idx].copy(),
        "bulk_labels",
        counts[ref_idx],
        counts[query_idx],
        notes=notes,
    )


def pancreas_case() -> Case:
    import bilinear_core as bc
    from bilinear_core import baselines as bb

    adata = bc.pp.preprocess(bc.datasets.pancreas(), n_top_genes=10_000, layer="spliced")
    y = np.asarray(pd.Categorical(adata.obs["clusters"])).astype(str)
    train_idx, val_idx, test_idx = bb.split_train_val_test(
        adata.n_obs, test_fraction=0.15, val_fraction=0.3, seed=SEED, stratify=y
    )
    ref_idx = np.sort(np.concatenate([train_idx, val_idx]))
    reference, query = adata[ref_idx].copy(), adata[test_idx].copy()
    counts = adata.layers["counts"]
    train_kwargs = {"train_idx": np.searchsorted(ref_idx, train_idx), "val_idx": np.searchsorted(ref_idx, val_idx)}
    dataset = adata.uns.get("dataset", {})
    notes = [
        f"pancreas: bc.pp.preprocess(bc.datasets.pancreas(), n_top_genes=10_000, layer='spliced') "
        f"({dataset.get('file', 'pancreas')}: {adata.n_obs} cells x {adata.n_vars} genes); the trust chapter's "
        f"split_train_val_test(seed=42, stratified): reference = {len(train_idx)} train + {len(val_idx)} validation "
        f"cells (the bilinear model trains on the train cells, validates on the others), query = {len(test_idx)} "
        "test cells",
        "pancreas CellTypist input: layers['counts'] (spliced counts of the kept genes) normalised to 10,000 over "
        "those genes, log1p; the bilinear model and LR see X (normalised by the totals over all genes, log1p)",
    ]
    return Case(
        "pancreas",
        reference,
        query,
        "clusters",
        counts[ref_idx],
        counts[test_idx],
        train_kwargs=train_kwargs,
        notes=notes,
    )


def files_case(args) -> Case:
    import anndata as ad

    ref, query = ad.read_h5ad(args.reference), ad.read_h5ad(args.query)
    for name, adata in (("reference", ref), ("query", query)):
        if args.use_raw and adata.raw is None:
            raise SystemExit(f"--use-raw: the {name} file has no .raw")
        if args.labels not in adata.obs:
            raise SystemExit(f"--labels {args.labels!r} is not a column of the {name}'s obs: {list(adata.obs)}")
    if args.use_raw:
        ref, query = ref.raw.to_adata(), query.raw.to_adata()
    for adata in (ref, query):
        adata.var_names_make_unique()
    counts_layer = args.counts_layer
    if counts_layer is None and "counts" in ref.layers and "counts" in query.layers:
        counts_layer = "counts"

    def counts(adata):
        if counts_layer is not None:
            return adata.layers[counts_layer]
        from scipy import sparse

        expr = adata.layers[args.layer] if args.layer else adata.X
        expr = sparse.csr_matrix(expr, dtype=np.float64)
        expr.data = np.expm1(expr.data)
        return expr

    source = f"layers[{counts_layer!r}]" if counts_layer else "expm1 of the expression (assumed log1p)"
    name = args.name or f"{Path(args.reference).stem} -> {Path(args.query).stem}"
    notes = [
        f"{name}: reference {args.reference} ({ref.n_obs} x {ref.n_vars}), query {args.query} "
        f"({query.n_obs} x {query.n_vars}), labels {args.labels!r}, expression "
        f"{'.raw.' if args.use_raw else ''}{f'layers[{args.layer!r}]' if args.layer else 'X'}",
        f"{name} CellTypist input: {source}, normalised to 10,000 per cell over the file's genes, log1p",
    ]
    return Case(name, ref, query, args.labels, counts(ref), counts(query), layer=args.layer, notes=notes)


# --------------------------------------------------------------------------------------------- methods


def expression(adata, layer):
    from scipy import sparse

    X = adata.layers[layer] if layer else adata.X
    return sparse.csr_matrix(X, dtype=np.float32)


def aligned(query_X, query_genes, ref_genes):
    """The query's columns in the reference's gene order; genes the query lacks are 0. Returns (X, n_shared)."""
    from scipy import sparse

    idx = pd.Index(query_genes).get_indexer(pd.Index(ref_genes))
    present = idx >= 0
    X = query_X[:, np.where(present, idx, 0)] @ sparse.diags(present.astype(np.float32))
    return sparse.csr_matrix(X), int(present.sum())


def run_logreg(case: Case, repeats: int) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    X_ref = expression(case.reference, case.layer)
    X_query, n_shared = aligned(expression(case.query, case.layer), case.query.var_names, case.reference.var_names)
    y_ref = case.reference.obs[case.labels].astype(str).to_numpy()
    model = LogisticRegression(max_iter=1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X_ref, y_ref)
        train_s = time.perf_counter() - start
    predict_s = common.median(common.timed(lambda: model.predict(X_query), repeats))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {
        "prediction": model.predict(X_query).astype(str),
        "train_s": train_s,
        "predict_s": predict_s,
        "details": {"n_iter": int(np.max(model.n_iter_)), "converged": converged, "query_genes_shared": n_shared},
        "coef": pd.DataFrame(model.coef_, index=model.classes_.astype(str), columns=case.reference.var_names),
    }


def celltypist_input(counts, labels: pd.Series, genes) -> object:
    """AnnData as CellTypist checks it: X = log1p(counts normalised to 10,000 per cell), the labels in obs."""
    import anndata as ad
    import scanpy as sc
    from scipy import sparse

    adata = ad.AnnData(
        sparse.csr_matrix(counts, dtype=np.float32),
        obs=pd.DataFrame({labels.name: pd.Categorical(labels.astype(str))}, index=labels.index.astype(str)),
        var=pd.DataFrame(index=pd.Index(genes).astype(str)),
    )
    totals = np.asarray(adata.X.sum(axis=1)).ravel()
    if (totals <= 0).any():
        raise ValueError(f"{int((totals <= 0).sum())} cell(s) have no counts; CellTypist cannot normalise them.")
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    return adata


def run_celltypist(case: Case, top_n: int, threads: int, repeats: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="celltypist-bench-") as tmp:
        tmp = Path(tmp)
        ref_obs, query_obs = case.reference.obs[case.labels], case.query.obs[case.labels]
        celltypist_input(case.ref_counts, ref_obs, case.reference.var_names).write_h5ad(tmp / "reference.h5ad")
        celltypist_input(case.query_counts, query_obs, case.query.var_names).write_h5ad(tmp / "query.h5ad")
        cmd = [
            str(CT_PYTHON),
            str(WORKER),
            str(tmp / "reference.h5ad"),
            str(tmp / "query.h5ad"),
            "--labels",
            case.labels,
            "--out",
            str(tmp / "out"),
            "--top-n",
            str(top_n),
            "--threads",
            str(threads),
            "--repeats",
            str(repeats),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update({name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=common.ROOT)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"celltypist_worker.py failed (exit {proc.returncode}):\n{tail}")
        summary = json.loads((tmp / "out" / "summary.json").read_text())
        predictions = pd.read_csv(tmp / "out" / "predictions.csv", dtype=str, keep_default_na=False)
        top = pd.read_csv(tmp / "out" / "top_genes.csv", dtype={"class": str, "gene": str}, keep_default_na=False)
    predicted = predictions.set_index("cell")["predicted_label"].reindex(case.query.obs_names.astype(str))
    if predicted.isna().any():
        raise RuntimeError(f"CellTypist returned no label for {int(predicted.isna().sum())} query cell(s)")
    summary["worker_wall_s"] = wall
    return {
        "prediction": predicted.to_numpy().astype(str),
        "train_s": summary["train_s"],
        "predict_s": summary["annotate_s"],
        "details": summary,
        "top": top,
    }


def run_bilinear(case: Case, repeats: int) -> dict:
    import bilinear_core as bc

    start = time.perf_counter()
    result = bc.tl.train(case.reference, case.labels, layer=case.layer, **SETTINGS, **case.train_kwargs)
    train_s = time.perf_counter() - start
    quiet = {"progress": False} if "progress" in inspect.signature(bc.tl.predict).parameters else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict_s = common.median(
            common.timed(lambda: bc.tl.predict(case.query, result, layer=case.layer, **quiet), repeats)
        )
    prediction = case.query.obs["bilinear_prediction"].astype(str).to_numpy()
    start = time.perf_counter()
    mods = bc.tl.modules(case.reference, result)
    modules_s = time.perf_counter() - start
    history = result.history
    details = {
        "train_cells": len(result.train_idx),
        "validation_cells": len(result.val_idx),
        "final_val_accuracy": float(history["val_accuracy"].iloc[-1]) if "val_accuracy" in history else None,
        "modules_s": modules_s,
        "prediction_record": case.query.uns.get("bilinear", {}).get("prediction"),
        "predict_warnings": sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught}),
        "mean_confidence": float(case.query.obs["bilinear_confidence"].mean())
        if "bilinear_confidence" in case.query.obs
        else None,
    }
    return {"prediction": prediction, "train_s": train_s, "predict_s": predict_s, "details": details, "mods": mods}


def module_overlap(case: Case, mods, ct_top: pd.DataFrame) -> pd.DataFrame:
    from bilinear_core.interpret import top_genes

    rows = []
    n_genes = case.reference.n_vars
    for cls in mods.output_names:
        table = top_genes(mods, cls, module=0)
        bilinear = table.loc[table["sign"] == "positive"].sort_values("rank")["gene"].astype(str).tolist()
        celltypist = ct_top.loc[ct_top["class"] == str(cls)].sort_values("rank")["gene"].tolist()[: len(bilinear)]
        shared = set(bilinear) & set(celltypist)
        union = set(bilinear) | set(celltypist)
        rows.append(
            {
                "case": case.name,
                "class": cls,
                "n_top": len(bilinear),
                "celltypist_genes": len(celltypist),
                "overlap": len(shared),
                "jaccard": round(len(shared) / len(union), 3) if union else float("nan"),
                "expected_by_chance": round(len(bilinear) * len(celltypist) / n_genes, 2),
                "shared_genes": " ".join(sorted(shared)),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------- driver


def _plain(value):
    """JSON for NumPy scalars and arrays (and text for anything else)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def markdown(table: pd.DataFrame) -> str:
    """``table`` as a GitHub markdown table (numbers right-aligned)."""
    align = ["--:" if pd.api.types.is_numeric_dtype(table[c]) else ":--" for c in table.columns]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "|".join(align) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |")
    return "\n".join(lines)


def run_case(case: Case, methods, args) -> tuple[list[dict], pd.DataFrame, pd.DataFrame, dict]:
    from bilinear_core.baselines import classification_scores
    from bilinear_core.interpret import n_top_genes

    y_true = case.query.obs[case.labels].astype(str).to_numpy()
    ref_classes = set(case.reference.obs[case.labels].astype(str))
    classes = sorted(set(y_true))
    unseen = int((~np.isin(y_true, sorted(ref_classes))).sum())
    top_n = n_top_genes(case.reference.n_vars)
    print(
        f"\n[{case.name}] reference {case.reference.n_obs} cells, query {case.query.n_obs} cells, "
        f"{case.reference.n_vars} genes, {len(ref_classes)} classes",
        flush=True,
    )
    results = {}
    for method in methods:
        start = time.perf_counter()
        if method == "bilinear":
            results[method] = run_bilinear(case, args.repeats)
        elif method == "logreg":
            results[method] = run_logreg(case, args.repeats)
        else:
            results[method] = run_celltypist(case, top_n, args.threads, args.repeats, args.timeout)
        print(f"  {method}: done in {time.perf_counter() - start:.1f} s", flush=True)
    rows, predictions = [], pd.DataFrame({"case": case.name, "cell": case.query.obs_names, "label": y_true})
    for method, res in results.items():
        scores = classification_scores(y_true, res["prediction"], classes)
        rows.append(
            {
                "case": case.name,
                "method": method,
                "n_reference": case.reference.n_obs,
                "n_query": case.query.n_obs,
                "n_genes": case.reference.n_vars,
                "accuracy": round(scores["accuracy"], 4),
                "macro_f1": round(scores["macro_f1"], 4),
                "train_s": round(res["train_s"], 3),
                "predict_s": round(res["predict_s"], 4),
            }
        )
        predictions[method] = res["prediction"]
    overlap = pd.DataFrame()
    if "bilinear" in results and "celltypist" in results:
        overlap = module_overlap(case, results["bilinear"]["mods"], results["celltypist"]["top"])
    agreement = {
        f"{a} = {b}": round(float((predictions[a] == predictions[b]).mean()), 4)
        for i, a in enumerate(results)
        for b in list(results)[i + 1 :]
    }
    details = {
        "notes": case.notes,
        "query_cells_with_labels_unseen_in_reference": unseen,
        "reference_classes": sorted(ref_classes),
        "n_reference_genes": case.reference.n_vars,
        "agreement": agreement,
        **{method: res["details"] for method, res in results.items()},
    }
    return rows, overlap, predictions, details


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", nargs="?", help="reference .h5ad (labelled cells to train on)")
    parser.add_argument("query", nargs="?", help="query .h5ad (cells to label; needs the labels to be scored)")
    parser.add_argument("--labels", help="obs column of the labels (both files)")
    parser.add_argument("--layer", help="layer of log-normalised expression for the bilinear model and LR")
    parser.add_argument("--use-raw", action="store_true", help="take the expression from .raw")
    parser.add_argument("--counts-layer", help="layer of counts for CellTypist (default: 'counts' if in both)")
    parser.add_argument("--name", help="case name in the tables (default: REF -> QUERY)")
    parser.add_argument("--tag", default="", help="results go to celltypist_TAG*.csv (default: celltypist*.csv)")
    parser.add_argument("--cases", default=",".join(CASES), help="built-in cases without files")
    parser.add_argument("--methods", default=",".join(METHODS), help="methods to run")
    parser.add_argument("--threads", type=int, default=1, help="torch, BLAS and CellTypist threads")
    parser.add_argument("--repeats", type=int, default=3, help="prediction calls timed (median reported)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed to the CellTypist worker")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if unknown := sorted(set(methods) - set(METHODS)):
        parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    if "celltypist" in methods and not CT_PYTHON.exists():
        raise SystemExit(
            f"No CellTypist environment at {CT_VENV.relative_to(common.ROOT)}: run `make bench-celltypist` "
            "(or create it from benchmarks/requirements-celltypist.txt), or pass --methods bilinear,logreg."
        )
    if "bilinear" in methods:
        import bilinear_core as bc

        if not hasattr(bc.tl, "predict"):
            raise SystemExit("bilinear_core.tl.predict is missing in this version of bilinear_core.")
    if (args.reference is None) != (args.query is None):
        parser.error("give both REF.h5ad and QUERY.h5ad, or neither (built-in cases)")
    if args.reference is not None and not args.labels:
        parser.error("--labels is required with files")

    from threadpoolctl import threadpool_limits

    info = common.machine(common.set_threads(args.threads))
    start_all = time.perf_counter()
    if args.reference is not None:
        builders = [lambda: files_case(args)]
    else:
        chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
        if unknown := sorted(set(chosen) - set(CASES)):
            parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
        builders = [{"pbmc68k": pbmc68k_case, "pancreas": pancreas_case}[c] for c in chosen]
    rows, overlaps, predictions, details = [], [], [], {}
    with threadpool_limits(args.threads):
        for build in builders:
            case = build()
            case_rows, overlap, preds, detail = run_case(case, methods, args)
            rows += case_rows
            overlaps.append(overlap)
            predictions.append(preds)
            details[case.name] = detail
    total_s = time.perf_counter() - start_all

    notes = [note for d in details.values() for note in d["notes"]]
    notes += [
        f"bilinear: bc.tl.train at {SETTINGS} then bc.tl.predict; logreg: LogisticRegression(max_iter=1000); "
        "celltypist: celltypist.train defaults (OvR logistic regression, C=1, genes scaled), annotate without "
        "majority voting",
        "train_s: training on the reference (data in memory); predict_s: median of "
        f"{args.repeats} calls labelling the query; CellTypist's times are taken inside its worker process",
        f"threads: {args.threads} (torch, BLAS, CellTypist n_jobs); whole run {total_s:.0f} s",
    ]
    for name, d in details.items():
        if "celltypist" in d:
            ct = d["celltypist"]
            check = ct["expression_check"]
            passed = (check["reference"]["passes_celltypist_check"], check["query"]["passes_celltypist_check"])
            notes.append(
                f"{name}: CellTypist {ct['versions']['celltypist']} with scikit-learn "
                f"{ct['versions']['scikit-learn']}; its expression check passed (reference, query): {passed}; "
                f"warnings: {ct['warnings'] or 'none'}"
            )
        if "bilinear" in d and d["bilinear"]["predict_warnings"]:
            notes.append(f"{name}: bc.tl.predict warned: {d['bilinear']['predict_warnings']}")
        if "logreg" in d and d["logreg"]["query_genes_shared"] < d["n_reference_genes"]:
            notes.append(
                f"{name}: the query has {d['logreg']['query_genes_shared']} of the reference's "
                f"{d['n_reference_genes']} genes (LR reads the others as 0; bc.tl.predict and CellTypist align "
                "by name themselves)"
            )
        if "logreg" in d and not d["logreg"]["converged"]:
            notes.append(f"{name}: LogisticRegression did not converge in 1000 iterations")
        if d["query_cells_with_labels_unseen_in_reference"]:
            notes.append(
                f"{name}: {d['query_cells_with_labels_unseen_in_reference']} query cells carry labels absent from "
                "the reference (always wrong)"
            )
    table = pd.DataFrame(rows)
    stem = "celltypist" + (f"_{args.tag}" if args.tag else "")
    common.save_table(table, stem, info, "Applying a trained model to new cells", notes)
    overlap = pd.concat(overlaps, ignore_index=True) if any(len(o) for o in overlaps) else pd.DataFrame()
    if len(overlap):
        common.save_table(
            overlap,
            f"{stem}_overlap",
            info,
            "CellTypist's top genes vs the bilinear model's module 0 (positive pole), per class",
            ["N = bilinear_core.interpret.n_top_genes(genes); expected_by_chance = N^2 / genes"],
        )
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    pd.concat(predictions, ignore_index=True).to_csv(common.RESULTS / f"{stem}_predictions.csv", index=False)
    details_path = common.RESULTS / f"{stem}_details.json"
    record = {"machine": info, "total_s": total_s, "cases": details}
    details_path.write_text(json.dumps(record, indent=2, default=_plain) + "\n")
    print(f"Per-cell predictions and details in {common.RESULTS.relative_to(common.ROOT)}/{stem}_*")
    print("\n" + markdown(table))
    if len(overlap):
        print("\n" + markdown(overlap.drop(columns="shared_genes")))
    return table


if __name__ == "__main__":
    main()
