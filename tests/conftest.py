import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from anndata import AnnData
from scipy import sparse

from bilinear_core import BilinearMLP

# Under `make mutation` each mutant runs in a process of its own: tests marked `processes` (worker pools, DataLoader
# workers, command-line subprocesses) would start and import torch in fresh processes for every mutant, ~10 s each,
# and leave loky workers behind. They are skipped there; the equality of the parallel and serial paths they check is
# not what the mutants change. `make test` runs them.
UNDER_MUTATION = bool(os.environ.get("MUTANT_UNDER_TEST"))


def pytest_collection_modifyitems(config, items):
    if UNDER_MUTATION:
        skip = pytest.mark.skip(reason="starts processes; skipped under mutation testing")
        for item in items:
            if "processes" in item.keywords:
                item.add_marker(skip)
        _fastest_first(items)


def _fastest_first(items):
    """Order a mutant's tests so that the first failure (mutmut stops there) comes soon: test files by their
    fastest test, then tests by duration, from the durations mutmut recorded (``mutants/mutmut-stats.json``).
    A file's tests stay together, so its module-scoped fixtures are built once."""
    stats = Path("mutmut-stats.json")
    if not stats.is_file():
        return
    seconds = json.loads(stats.read_text()).get("duration_by_test", {})
    cost = {item: seconds.get(item.nodeid, 0.0) for item in items}
    first = {}
    for item in items:
        first[item.path] = min(first.get(item.path, np.inf), cost[item])
    items.sort(key=lambda item: (first[item.path], str(item.path), cost[item]))


@pytest.fixture(scope="session")
def n_jobs():
    """Worker processes for fits trained in parallel where that is not what a test checks: 2, or 1 under
    mutation testing."""
    return 1 if UNDER_MUTATION else 2


@pytest.fixture
def small_model():
    """A random float64 bilinear model: g = 12 genes, h = 4 hidden, t = 3 outputs."""
    torch.manual_seed(0)
    return BilinearMLP(12, 4, 3).double()


@pytest.fixture
def toy_adata():
    """60 cells × 30 genes of Poisson counts in two labelled groups, with a spliced layer."""
    rng = np.random.default_rng(0)
    rates = np.r_[np.full(15, 2.0), np.full(15, 0.5)]
    counts = rng.poisson(np.r_[[rates] * 30, [rates[::-1]] * 30]).astype(np.float32)
    adata = AnnData(X=sparse.csr_matrix(counts))
    adata.layers["spliced"] = adata.X.copy()
    adata.obs["clusters"] = np.repeat(["A", "B"], 30)
    adata.var_names = [f"Gene{i}" for i in range(28)] + ["Rpl3", "Rps6"]
    return adata
