"""Interpretation: exact low-rank eigendecomposition against the dense ``g × g`` path.

For ``h = 128`` hidden units, ``t = 8`` outputs and ``g`` genes, times and peak memory of

* the dense path (form each ``g × g`` ``Q_a``, ``torch.linalg.eigh``; what the post and the paper's
  code do): ``bilinear_core.eigendecompose(model, dense=True)``;
* the exact low-rank path (one thin QR of ``[Wᵀ Vᵀ]`` shared by all outputs, one ``2h × 2h`` eigh
  per output): ``bilinear_core.eigendecompose(model)``;

plus their agreement over the non-zero spectrum. Every configuration runs in its own process so
that its peak RSS (``ru_maxrss`` minus the RSS before the timed calls) is its own.

The dense path is timed on all ``t`` outputs up to ``--dense-all-max-g`` genes; above that on ONE
output (a model whose head keeps only output 0, same ``W``, ``V``) and multiplied by ``t``, labelled
"×t extrapolated". It is skipped where its estimated peak memory exceeds ``--max-dense-gib``.

Run: ``.venv/bin/python benchmarks/interpretation.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import gc
import json

import _common as common
import numpy as np
import pandas as pd

DENSE_COPIES = 4  # g×g float64 buffers at the dense path's peak (measured: 3.9 at g = 10,000, one output)


def _model(g: int, h: int, t: int, seed: int):
    import torch

    from bilinear_core.model import BilinearMLP

    torch.manual_seed(seed)
    return BilinearMLP(g, h, t)


def _head_subset(model, n_outputs: int):
    """Same ``W``, ``V``; head restricted to the first ``n_outputs`` rows of ``P``."""
    import torch

    from bilinear_core.model import BilinearMLP

    sub = BilinearMLP(model.n_in, model.n_hidden, n_outputs)
    sub.left, sub.right = model.left, model.right
    with torch.no_grad():
        sub.head.weight.copy_(model.head.weight[:n_outputs])
    return sub


def agreement(low, dense, n_outputs: int, separation: float = 1e-3) -> dict:
    """Low-rank vs dense eigenpairs of outputs ``0..n_outputs-1``.

    Eigenvalues: largest ``|Δλ| / max|λ|`` and largest ``|Δλ| / |λ|`` over eigenvalues with
    ``|λ| > 1e-8 max|λ|`` (the non-zero spectrum). Eigenvectors: largest ``1 − |cos|`` over
    eigenpairs whose gap to every other eigenvalue (including the ``g − 2h`` zero ones) exceeds
    ``separation · max|λ|``; closer eigenvalues have no well-defined individual eigenvector.
    """
    rel_max, rel_each, misalign, n_values, n_vectors, n_total = 0.0, 0.0, 0.0, 0, 0, 0
    for a in range(n_outputs):
        lv, dv = low.eigenvalues[a], dense.eigenvalues[a]
        lvec, dvec = low.eigenvectors[a], dense.eigenvectors[a]
        scale = np.abs(dv).max()
        nonzero = np.abs(dv) > 1e-8 * scale
        diff = np.abs(lv - dv)
        rel_max = max(rel_max, diff[nonzero].max() / scale)
        rel_each = max(rel_each, (diff[nonzero] / np.abs(dv[nonzero])).max())
        n_values += int(nonzero.sum())
        n_total += len(dv)
        # gap of each eigenvalue to its neighbours and to the zero eigenvalues
        ordered = np.sort(dv)
        gaps = np.minimum(np.diff(ordered, prepend=-np.inf), np.diff(ordered, append=np.inf))
        gap = np.minimum(gaps[np.argsort(np.argsort(dv))], np.abs(dv))
        separated = nonzero & (gap > separation * scale)
        cos = np.abs((lvec[:, separated] * dvec[:, separated]).sum(axis=0))
        cos /= np.linalg.norm(lvec[:, separated], axis=0) * np.linalg.norm(dvec[:, separated], axis=0)
        if separated.any():
            misalign = max(misalign, float((1.0 - cos).max()))
        n_vectors += int(separated.sum())
    return {
        "max_rel_eigval_diff": float(rel_max),
        "max_rel_eigval_diff_each": float(rel_each),
        "n_eigvals_compared": n_values,
        "max_vec_misalignment": misalign,
        "n_vecs_compared": n_vectors,
        "n_eigenpairs": n_total,
    }


def worker(config: dict) -> dict:
    """One configuration in a fresh process: times, peak RSS above the baseline, agreement (dense)."""
    common.set_threads(config["threads"])
    import bilinear_core as bc

    g, h, t = config["g"], config["h"], config["t"]
    model = _model(g, h, t, config["seed"])
    warm = _model(300, 16, 2, 0)  # load the LAPACK/BLAS code paths outside the timed region
    bc.eigendecompose(warm)
    bc.eigendecompose(warm, dense=True)
    if config["path"] == "lowrank":
        gc.collect()
        before = common.rss_mib()
        times = common.timed(lambda: bc.eigendecompose(model), config["repeats"], warmup=1)
        return {"times": times, "peak_mib": common.max_rss_mib() - before}
    sub = model if config["n_outputs"] == t else _head_subset(model, config["n_outputs"])
    gc.collect()
    before = common.rss_mib()
    kept = {}

    def run():
        kept["dense"] = None  # free the previous result before the next call
        kept["dense"] = bc.eigendecompose(sub, dense=True)

    times = common.timed(run, config["repeats"])
    peak = common.max_rss_mib() - before
    dense = kept["dense"]
    low = bc.eigendecompose(model)
    return {"times": times, "peak_mib": peak, **agreement(low, dense, config["n_outputs"])}


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--genes", default="1000,2000,5000,10000,20000", help="comma-separated g values")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--outputs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the low-rank path")
    parser.add_argument("--dense-repeats", type=int, default=3, help="timed runs of the dense path")
    parser.add_argument("--dense-repeats-large", type=int, default=1, help="timed dense runs for g ≥ 10,000")
    parser.add_argument("--dense-all-max-g", type=int, default=2000, help="largest g timed densely on all outputs")
    parser.add_argument("--max-dense-gib", type=float, default=None, help="skip the dense path above (default RAM/4)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return None

    threads = common.set_threads(args.threads)
    info = common.machine(threads)
    h, t = args.hidden, args.outputs
    max_dense_gib = args.max_dense_gib or info["memory_gib"] / 4
    rows = []
    for g in [int(x) for x in args.genes.split(",")]:
        base = {"g": g, "h": h, "t": t, "seed": args.seed, "threads": threads}
        print(f"g = {g}: low-rank ...", flush=True)
        low = common.run_worker(__file__, {**base, "path": "lowrank", "repeats": args.repeats})
        n_dense = t if g <= args.dense_all_max_g else 1
        estimate_gib = DENSE_COPIES * n_dense * g * g * 8 / 1024**3
        row = {
            "genes": g,
            "lowrank_s_all_outputs": common.median(low.get("times", [])),
            "lowrank_runs": len(low.get("times", [])),
            "lowrank_peak_mib": low.get("peak_mib", np.nan),
        }
        if estimate_gib > max_dense_gib:
            limit = "--max-dense-gib" if args.max_dense_gib else "RAM/4"
            dense = {"error": f"skipped: estimated peak {estimate_gib:.1f} GiB > {max_dense_gib:.1f} GiB ({limit})"}
        else:
            repeats = args.dense_repeats_large if g >= 10_000 else args.dense_repeats
            print(f"g = {g}: dense on {n_dense} output(s), {repeats} run(s) ...", flush=True)
            dense = common.run_worker(__file__, {**base, "path": "dense", "n_outputs": n_dense, "repeats": repeats})
        dense_s = common.median(dense.get("times", [])) if "times" in dense else np.nan
        row.update(
            {
                "dense_outputs_timed": n_dense if "times" in dense else 0,
                "dense_runs": len(dense.get("times", [])),
                "dense_s_per_output": dense_s / n_dense,
                "dense_s_all_outputs": dense_s * t / n_dense,
                "dense_all_outputs_basis": (
                    dense["error"] if "error" in dense else "measured" if n_dense == t else f"×{t} extrapolated"
                ),
                "dense_peak_mib": dense.get("peak_mib", np.nan),
                "speedup": dense_s * t / n_dense / row["lowrank_s_all_outputs"],
            }
        )
        for key in (
            "max_rel_eigval_diff",
            "max_rel_eigval_diff_each",
            "max_vec_misalignment",
            "n_vecs_compared",
            "n_eigenpairs",
        ):
            row[key] = dense.get(key, np.nan)
        if "error" in low:
            row["dense_all_outputs_basis"] += f"; low-rank failed: {low['error']}"
        rows.append(row)
        print(pd.Series(row).to_string(), flush=True)

    table = pd.DataFrame(rows)
    notes = [
        f"h = {h}, t = {t} outputs, random weights (nn.Linear init, seed {args.seed}); float64 throughout.",
        "Times are medians over the runs listed, each in a fresh process after a small warm-up; "
        f"the low-rank path is timed on all {t} outputs (one shared QR).",
        f"Dense times above g = {args.dense_all_max_g} are measured on ONE output and multiplied by {t} "
        "(column dense_all_outputs_basis says which); speed-up = dense_s_all_outputs / lowrank_s_all_outputs.",
        "Peak memory = ru_maxrss after the timed calls minus the RSS before them, in the configuration's own "
        "process (MiB); the dense peak is for the outputs timed.",
        "Agreement over the outputs timed densely: eigenvalues |Δλ|/max|λ| and |Δλ|/|λ| over the 2h non-zero "
        "eigenvalues; eigenvectors 1 − |cos| for eigenvalues separated from all others (and from 0) by more "
        "than 1e-3·max|λ| (n_vecs_compared of n_eigenpairs).",
    ]
    common.save_table(table, "interpretation", info, "Interpretation: dense eigh vs exact low-rank", notes)
    return table


if __name__ == "__main__":
    main()
