"""CellTypist's side of ``benchmarks/annotation.py``: train on a reference, annotate a query, offline.

Runs inside ``.venv-celltypist`` (CellTypist 1.7.1 needs scikit-learn < 1.8; see
``benchmarks/requirements-celltypist.txt``), so it imports neither ``bilinear_core`` nor torch. Both ``.h5ad``
files must carry CellTypist's expected input in ``.X``: log1p of counts normalised to 10,000 per cell
(``celltypist.train``'s check, which only looks at the first cell, stays on unless ``--no-check-expression``).

Steps: ``celltypist.train(reference, labels=COL, ...)`` with CellTypist's defaults (logistic regression, one
vs rest, ``C=1``, lbfgs, ``max_iter`` 1,000 below 50,000 cells, genes standardised and clipped at 10; no
feature selection unless ``--feature-selection``), then ``celltypist.annotate(query, model=..., majority_voting=
False)`` (``mode="best match"``). Written to ``OUT``:

- ``predictions.csv``: ``cell``, ``predicted_label`` per query cell;
- ``top_genes.csv``: ``class``, ``rank``, ``gene``, ``coefficient``: each class's ``--top-n`` genes by
  ``model.extract_top_markers(class, top_n)`` (largest positive coefficients);
- ``summary.json``: wall times of ``train`` and ``annotate`` (data already in memory; the annotate figure is
  the median of ``--repeats`` calls), versions, sizes, the expression check and CellTypist's warnings.

Nothing is downloaded: the model is passed to ``annotate`` as an object, CellTypist's folder
(``$CELLTYPIST_FOLDER``) points into ``OUT``, and its download functions are replaced by ones that raise.

Run: ``.venv-celltypist/bin/python benchmarks/celltypist_worker.py REF.h5ad QUERY.h5ad --labels COL --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", help="reference .h5ad (X: log1p of counts normalised to 10,000)")
    parser.add_argument("query", help="query .h5ad (same expression format)")
    parser.add_argument("--labels", required=True, help="obs column of the reference's labels")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--top-n", type=int, default=50, help="genes per class from extract_top_markers")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads and celltypist's n_jobs")
    parser.add_argument("--repeats", type=int, default=3, help="annotate calls timed (median reported)")
    parser.add_argument("--feature-selection", action="store_true", help="celltypist.train(feature_selection=True)")
    parser.add_argument("--no-check-expression", action="store_true", help="celltypist.train(check_expression=False)")
    return parser.parse_args(argv)


class Collect(logging.Handler):
    """Keep CellTypist's log messages (it logs through the ``celltypist.logger`` logger)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.getMessage()))


def expression_check(adata) -> dict:
    """How far ``expm1(X)`` sums from 10,000 per cell: CellTypist's check (first cell) and over all cells."""
    import numpy as np
    from scipy import sparse

    X = adata.X
    totals = np.asarray((X.expm1() if sparse.issparse(X) else np.expm1(X)).sum(axis=1)).ravel()
    deviation = np.abs(totals - 1e4)
    return {
        "first_cell_total": round(float(totals[0]), 3),
        "max_abs_deviation_from_1e4": round(float(deviation.max()), 4),
        "passes_celltypist_check": bool(deviation[0] <= 1),
        "min_value": float(adata.X.min()),
        "max_value": float(adata.X.max()),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # CellTypist creates its model folder when imported: keep it here, not in ~/.celltypist
    os.environ["CELLTYPIST_FOLDER"] = str(out / "celltypist_home")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)

    import anndata as ad
    import celltypist
    import numpy as np
    import pandas as pd
    import sklearn
    from celltypist import models
    from threadpoolctl import threadpool_limits

    def offline(*_, **__):
        raise RuntimeError("celltypist_worker runs offline: no CellTypist model or index is downloaded")

    for name in ("download_models", "download_model_index", "download_if_required", "_requests_get"):
        setattr(models, name, offline)

    handler = Collect()
    logging.getLogger("celltypist").addHandler(handler)
    logging.getLogger("celltypist").setLevel(logging.INFO)

    reference = ad.read_h5ad(args.reference)
    query = ad.read_h5ad(args.query)
    if args.labels not in reference.obs:
        raise SystemExit(f"--labels {args.labels!r} is not a column of the reference's obs: {list(reference.obs)}")
    checks = {"reference": expression_check(reference), "query": expression_check(query)}

    with warnings.catch_warnings(record=True) as caught, threadpool_limits(args.threads):
        warnings.simplefilter("always")
        start = time.perf_counter()
        model = celltypist.train(
            reference,
            labels=args.labels,
            check_expression=not args.no_check_expression,
            feature_selection=args.feature_selection,
            n_jobs=args.threads,
        )
        train_s = time.perf_counter() - start
        annotate_times, result = [], None
        for _ in range(max(args.repeats, 1)):
            start = time.perf_counter()
            result = celltypist.annotate(query, model=model, majority_voting=False)
            annotate_times.append(time.perf_counter() - start)

    labels = result.predicted_labels["predicted_labels"].astype(str)
    pd.DataFrame({"cell": labels.index.astype(str), "predicted_label": labels.to_numpy()}).to_csv(
        out / "predictions.csv", index=False
    )
    classes = [str(c) for c in model.cell_types]
    rows = []
    coef = model.classifier.coef_
    features = np.asarray(model.features).astype(str)
    for i, cls in enumerate(classes):
        genes = [str(g) for g in model.extract_top_markers(model.cell_types[i], args.top_n)]
        # extract_top_markers' own coefficient vector: one row per class, or ±row 0 for two classes
        row = coef[i] if len(classes) > 2 else (coef[0] if i == 1 else -coef[0])
        lookup = dict(zip(features, row))
        for rank, gene in enumerate(genes):
            rows.append({"class": cls, "rank": rank, "gene": gene, "coefficient": float(lookup[gene])})
    pd.DataFrame(rows).to_csv(out / "top_genes.csv", index=False)

    n_used = int(np.isin(np.asarray(query.var_names).astype(str), features).sum())
    summary = {
        "train_s": train_s,
        "annotate_s": statistics.median(annotate_times),
        "annotate_s_all": annotate_times,
        "n_reference": int(reference.n_obs),
        "n_query": int(query.n_obs),
        "n_reference_genes": int(reference.n_vars),
        "n_query_genes": int(query.n_vars),
        "n_model_features": int(len(features)),
        "n_query_genes_used": n_used,
        "classes": classes,
        "top_n": args.top_n,
        "expression_check": checks,
        "settings": {
            "check_expression": not args.no_check_expression,
            "feature_selection": args.feature_selection,
            "n_jobs": args.threads,
            "majority_voting": False,
            "mode": "best match",
            "solver": model.classifier.solver,
            "max_iter": model.classifier.max_iter,
            "C": model.classifier.C,
            "n_iter": [int(n) for n in np.ravel(model.classifier.n_iter_)],
        },
        "celltypist_log": [f"{level}: {message}" for level, message in handler.records],
        "warnings": sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught}),
        "versions": {
            "python": platform.python_version(),
            "celltypist": celltypist.__version__,
            "scikit-learn": sklearn.__version__,
            "scanpy": version("scanpy"),
            "anndata": ad.__version__,
            "numpy": np.__version__,
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({"train_s": summary["train_s"], "annotate_s": summary["annotate_s"], "out": str(out)}))
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
