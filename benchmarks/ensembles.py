"""Ensembles: the cost of k seeds, from training to scored modules, on the offline pancreas copy.

For k = 1, 3, 6 and 10 seeds (the post's cell-typing settings, 70/30 split), one fresh interpreter runs
``bc.tl.train(adata, "clusters", seeds=range(k), n_jobs=2)`` then ``bc.tl.modules`` (exact modules of the
ensemble and, for k ≥ 2, their reproducibility scores). It reports the seconds of each step, the peak
memory of the process tree (the training workers included) and the size of the ensemble's hidden layer.

Run: ``.venv/bin/python benchmarks/ensembles.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import _common as common
import pandas as pd

SETTINGS = dict(n_hidden=128, lr=1e-4, weight_decay=0.35, epochs=100, batch_size=64, progress=False)


def worker(config: dict) -> dict:
    """One configuration in this process: train the ensemble, score its modules, time both."""
    common.set_threads(config["threads"])
    import bilinear_core as bc

    adata = bc.pp.preprocess(bc.datasets.pancreas(), n_top_genes=10_000, layer="spliced")
    with common.TreeMemoryPoller(os.getpid()) as poller:
        start = time.perf_counter()
        seeds = list(range(config["k"]))
        result = bc.tl.train(adata, "clusters", seeds=seeds, n_jobs=config["n_jobs"], **SETTINGS)
        trained = time.perf_counter()
        bc.tl.modules(adata, result)
        done = time.perf_counter()
    return {
        "seeds": config["k"],
        "hidden units": result.model.n_hidden,
        "train s": round(trained - start, 1),
        "modules + reliability s": round(done - trained, 1),
        "peak memory, process tree (MiB)": round(poller.peak_mib),
    }


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 6, 10], help="ensemble sizes k")
    parser.add_argument("--n-jobs", type=int, default=2, help="training processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return pd.DataFrame()
    info = common.machine(args.threads)
    rows = [common.run_worker(__file__, {"k": k, "n_jobs": args.n_jobs, "threads": args.threads}) for k in args.seeds]
    table = pd.DataFrame(rows)
    notes = [f"training in {args.n_jobs} processes; each k in a fresh interpreter"]
    common.save_table(table, "ensembles", info, "Ensembles: the cost of k seeds", notes)
    return table


if __name__ == "__main__":
    main()
