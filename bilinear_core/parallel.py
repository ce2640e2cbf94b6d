"""Independent jobs (fits, baselines) in worker processes, sharing this process's threads.

Every job of this package is seeded or deterministic, and each worker runs with the same number of torch and
BLAS threads whatever the number of workers, so the results do not depend on how many processes run them.
"""

from __future__ import annotations

import torch

from .checks import check_positive_integers

# nothing here is public API: run_jobs runs the jobs of fit_many, tl.train_many and evaluate_settings (no API page)
__all__: list[str] = []


def _in_worker(threads: int, function, *args):
    """``function(*args)`` in a worker process, with ``threads`` torch and BLAS threads."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        return function(*args)


def run_jobs(jobs: dict, n_jobs: int = 1) -> dict:
    """``{key: function(*args)}`` for ``jobs = {key: (size, function, args)}``, in ``n_jobs`` processes (joblib).

    The largest jobs start first, so that the processes finish together; the processes share this one's torch
    threads (at least one each). With ``n_jobs=1`` or a single job everything runs here, in order of size.
    """
    check_positive_integers(n_jobs=n_jobs)
    order = sorted(jobs, key=lambda key: -jobs[key][0])
    if n_jobs == 1 or len(jobs) < 2:
        return {key: jobs[key][1](*jobs[key][2]) for key in order}
    from joblib import Parallel, delayed

    threads = max(1, torch.get_num_threads() // n_jobs)
    run = Parallel(n_jobs=min(n_jobs, len(jobs)))
    done = run(delayed(_in_worker)(threads, jobs[key][1], *jobs[key][2]) for key in order)
    return dict(zip(order, done))
