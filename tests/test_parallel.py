"""Independent jobs in worker processes (bilinear_core.parallel)."""

import pytest
import torch

from bilinear_core.parallel import run_jobs


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.processes
def test_workers_share_the_callers_threads_and_results_keep_their_keys(two_threads):
    jobs = {key: (size, torch.get_num_threads, ()) for key, size in [("small", 1), ("big", 5), ("mid", 3)]}
    here = run_jobs(jobs, n_jobs=1)
    assert list(here) == ["big", "mid", "small"]  # largest first
    assert set(here.values()) == {2}  # run here, with this process's threads
    workers = run_jobs(jobs, n_jobs=2)
    assert set(workers) == set(jobs) and set(workers.values()) == {1}  # two workers, one thread each
    assert run_jobs({"one": (1, pow, (2, 10))}, n_jobs=2) == {"one": 1024}  # a single job runs here


def test_n_jobs_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="n_jobs must be a positive integer"):
        run_jobs({"a": (1, int, ())}, n_jobs=0)
