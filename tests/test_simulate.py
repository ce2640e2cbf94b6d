"""The simulated sci-Plex2: design, counts, planted programs, determinism (small sizes, made-up gene sets)."""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from scipy import sparse, stats

from bilinear_core import datasets
from bilinear_core.datasets import genesets, simulate
from bilinear_core.datasets.simulate import Program

GENES = [f"G{i:04d}" for i in range(400)]
SETS = {
    ("test", "UP"): GENES[:40],
    ("test", "DOWN"): GENES[30:70],  # overlaps UP: the shared genes stay with UP only
    ("test", "STRESS"): GENES[70:100],
}
PROGRAMS = (
    Program("up program", "Nutlin", "test", "UP", "up", 1.5, ec50=1.0),
    Program("down program", "BMS", "test", "DOWN", "down", 1.0, ec50=5.0),
)
STRESS = Program("stress", "all", "test", "STRESS", "up", 1.0, ec50=np.nan, shape="viability")


def small(seed=0, n_cells=3000, **kwargs):
    kwargs = {"programs": PROGRAMS, "stress": STRESS, "cell_cycle": None, "genes": GENES, "gene_sets": SETS} | kwargs
    return simulate.sciplex2(seed=seed, n_cells=n_cells, n_genes=300, **kwargs)


@pytest.fixture(scope="module")
def sim():
    return small()


def test_shapes_columns_and_truth(sim):
    assert sim.shape == (3000, 300) and sparse.issparse(sim.X)
    assert {"drug", "dose", "well", "viability", "treatment", "ncounts"} <= set(sim.obs.columns)
    counts = sim.X.data
    assert (counts > 0).all() and np.array_equal(counts, np.round(counts))  # stored non-zeros are whole counts
    np.testing.assert_allclose(sim.obs["ncounts"], np.asarray(sim.X.sum(axis=1)).ravel())
    assert (sim.obs.loc[sim.obs["dose"] == 0, "treatment"] == datasets.VEHICLE).all()
    treated = sim.obs["dose"] > 0
    assert (sim.obs.loc[treated, "treatment"].astype(str) == sim.obs.loc[treated, "drug"].astype(str)).all()
    table = sim.uns["planted"]["programs"].set_index("name")
    up, down = sim.uns["planted"]["genes"]["up program"], sim.uns["planted"]["genes"]["down program"]
    assert list(up) == GENES[:40] and list(down) == GENES[40:70]  # disjoint: overlap kept by the first program
    assert table.loc["down program", "n_genes_planted"] == 30 and table.loc["down program", "n_genes_in_set"] == 40
    assert table["primary"].to_dict() == {"up program": True, "down program": True, "stress": False}
    assert set(up) | set(down) <= set(sim.var_names)
    assert (sim.var.loc[list(up), "planted_program"] == "up program").all()
    assert simulate.planted_genes(sim, "Nutlin") == sorted(up)


def test_design_and_viability_respected(sim):
    design = datasets.sciplex2_design()
    conditions = set(zip(sim.obs["drug"].astype(str), sim.obs["dose"]))
    assert conditions <= set(zip(design["drug"], design["dose"]))
    assert sim.obs.groupby(["drug", "dose"], observed=True)["well"].nunique().max() <= 6
    per_condition = sim.obs.groupby(["drug", "dose"], observed=True).size()
    merged = design.set_index(["drug", "dose"]).join(per_condition.rename("cells")).fillna({"cells": 0})
    assert stats.spearmanr(merged["cells"], merged["viability_mean"]).statistic > 0.9
    # the deadliest conditions (viability < 1 %) keep almost no cells, vehicles keep the most
    assert merged.loc[merged["viability_mean"] < 0.01, "cells"].max() < 0.05 * merged["cells"].max()


def test_same_seed_byte_identical_other_seed_differs():
    a, b, c = small(seed=1, n_cells=800), small(seed=1, n_cells=800), small(seed=2, n_cells=800)
    for attr in ("data", "indices", "indptr"):
        assert getattr(a.X, attr).tobytes() == getattr(b.X, attr).tobytes()
    pd.testing.assert_frame_equal(a.obs, b.obs)
    assert list(a.var_names) == list(b.var_names)
    assert a.X.shape != c.X.shape or a.X.data.tobytes() != c.X.data.tobytes()


def _log_mean(sim, cells, genes):
    counts = sim[cells, genes].X.toarray()
    totals = np.asarray(sim[cells].X.sum(axis=1)).ravel()
    return np.log1p(counts / totals[:, None] * 1e4).mean()


def test_planted_genes_shift_in_stated_direction(sim):
    obs = sim.obs
    up, down = list(sim.uns["planted"]["genes"]["up program"]), list(sim.uns["planted"]["genes"]["down program"])
    others = [g for g in sim.var_names if sim.var.loc[g, "planted_program"] == ""]
    for drug, genes, sign in (("Nutlin", up, 1), ("BMS", down, -1)):
        high = ((obs["drug"] == drug) & obs["dose"].between(5, 10)).to_numpy()
        vehicle = ((obs["drug"] == drug) & (obs["dose"] == 0)).to_numpy()
        shift = _log_mean(sim, high, genes) - _log_mean(sim, vehicle, genes)
        control = _log_mean(sim, high, others) - _log_mean(sim, vehicle, others)
        assert sign * (shift - control) > 0.15  # relative to unplanted genes (with 300 genes, composition moves them)
    # a drug's program does not move in another drug's cells
    dex_high, dex_vehicle = ((obs["drug"] == "Dex") & (obs["dose"] >= 50)).to_numpy(), (obs["treatment"] == "vehicle")
    dex_shift = _log_mean(sim, dex_high, up) - _log_mean(sim, dex_vehicle.to_numpy(), up)
    assert abs(dex_shift - (_log_mean(sim, dex_high, others) - _log_mean(sim, dex_vehicle.to_numpy(), others))) < 0.1


def test_fraction_passing_count_filter(sim):
    passing = (sim.obs["ncounts"] >= 5_000).mean()
    assert 0.32 < passing < 0.46  # designed for ~39 % (the post kept ~10k of ~25k)


def test_low_count_cells_are_diluted(sim):
    """The ambient share falls with library size, so low-count cells carry less of the drug signal."""
    ambient = sim.obs["sim_ambient_fraction"].to_numpy()
    library = sim.obs["sim_library_size"].to_numpy()
    assert stats.spearmanr(ambient, library).statistic < -0.99
    assert ambient.max() <= simulate.MAX_AMBIENT_FRACTION


def test_negative_binomial_moments():
    rng = np.random.default_rng(0)
    means = np.array([0.05, 0.5, 3.0, 40.0], dtype=np.float32)
    mu = np.repeat(means[:, None], 60_000, axis=1)
    X = simulate._nb_chunk(mu, 4.0, rng).toarray()
    np.testing.assert_allclose(X.mean(axis=1), means, rtol=0.03)
    np.testing.assert_allclose(X.var(axis=1), means + means**2 / 4.0, rtol=0.06)
    np.testing.assert_allclose((X == 0).mean(axis=1), (1 + means / 4.0) ** -4.0, atol=0.005)


def test_dose_responses():
    assert simulate.hill(1.0, ec50=1.0) == pytest.approx(0.5)
    assert simulate.hill(0.0, ec50=1.0) == 0
    bell = Program("b", "SAHA", "x", "y", "up", 1.0, ec50=0.5, shape="bell", ec50_off=10.0)
    grid = np.geomspace(0.1, 100, 400)
    values = simulate.response(bell, grid)
    assert values.max() == pytest.approx(1.0) and 0.5 < grid[values.argmax()] < 10
    assert simulate.response(bell, np.array([0.0]))[0] == 0
    with pytest.raises(ValueError, match="no dose-response"):
        simulate.response(STRESS, grid)
    with pytest.raises(ValueError, match="non-negative"):
        simulate.hill(-1.0, 1.0)


def test_planted_response_reads_the_truth(sim):
    doses = np.array([0.0, 1.0, 100.0])
    np.testing.assert_allclose(simulate.planted_response(sim, "up program", doses), simulate.hill(doses, 1.0))
    with pytest.raises(KeyError, match="No planted program"):
        simulate.planted_response(sim, "nope", doses)


def test_bad_input():
    with pytest.raises(ValueError, match="lacks column"):
        small(design=datasets.sciplex2_design().drop(columns="viability_mean"))
    with pytest.raises(ValueError, match="not in the design"):
        small(programs=(Program("x", "Aspirin", "test", "UP", "up", 1.0, ec50=1.0),))
    with pytest.raises(ValueError, match="smaller than the"):
        simulate.sciplex2(n_cells=100, n_genes=50, programs=PROGRAMS, stress=STRESS, cell_cycle=None, genes=GENES,
                          gene_sets=SETS)  # fmt: skip
    with pytest.raises(KeyError, match="not available"):
        small(gene_sets={("test", "UP"): GENES[:10]})
    with pytest.raises(KeyError, match="only simulated data"):
        simulate.planted_genes(AnnData(np.zeros((2, 2))), "SAHA")


def test_default_programs_use_real_gene_sets():
    needed = {p.library for p in (*simulate.PROGRAMS, simulate.STRESS, simulate.CELL_CYCLE)}
    if set(genesets.available_libraries(sorted(needed))) != needed:
        pytest.skip("gene-set libraries not linked (run `make data`)")
    sim = simulate.sciplex2(seed=0, n_cells=300, n_genes=2_000)
    table = sim.uns["planted"]["programs"]
    assert set(table["drug"]) == {"BMS", "Dex", "Nutlin", "SAHA", "all", "none"}
    assert (table["n_genes_planted"] > 10).all()
    assert sim.n_vars == 2_000 and "CDKN1A" in set(sim.uns["planted"]["genes"]["p53 targets"])
