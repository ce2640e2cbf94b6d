"""A simulated sci-Plex2 on the real design, with planted drug programs: the perturbation chapter's offline data.

The experimental design is real (:func:`bilinear_core.datasets.sciplex2_design`: 4 drugs × 8 doses × 6
wells and each condition's measured viability); the expression is not. Every cell gets negative-binomial
counts around log-normal gene means, with library sizes spread so that about 40 % of cells pass the post's
5,000-count filter. Drugs shift real gene sets by Hill dose-responses (:data:`PROGRAMS`), a shared stress
program follows ``1 − viability`` (:data:`STRESS`) and a treatment-independent cell-cycle axis varies from
cell to cell (:data:`CELL_CYCLE`). The truth is stored in ``adata.uns["planted"]``.

All effect sizes and settings below were fixed before the chapter was first run, each with its reason; they
are not tuned to the method's results. The gene sets are a test design, not a claim about the drugs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ._sciplex2 import DRUGS, VEHICLE, sciplex2_design
from .genesets import load_library

#: Cells in total; the real scPerturb file has 24,262.
N_CELLS = 24_000
#: Genes; the union of GO BP 2023, Hallmark 2020 and WikiPathways 2023 symbols is ~15,800 (the issue asks 10k–20k).
N_GENES = 15_000
#: Median and log-sd of the cells' expected library sizes, so that 39 % of cells reach 5,000 counts (post ~10k of
#: ~25k).
LIBRARY_MEDIAN, LIBRARY_SDLOG = 4_000.0, 0.8
#: Log-sd of the genes' mean expression, ~3 orders of magnitude between common and rare genes, as in UMI data.
GENE_MEAN_SDLOG = 1.7
#: Negative-binomial overdispersion (variance μ + φμ²), a moderate cell-to-cell variability of a cell line.
DISPERSION = 0.25
#: Counts per cell from the untreated pool (ambient RNA, poor capture). A cell with total t carries the drug
#: signal in only a fraction ``1 − min(AMBIENT_COUNTS / t, MAX_AMBIENT_FRACTION)`` of its counts, so
#: low-count cells are diluted (why the post's count filter cleaned the clusters).
AMBIENT_COUNTS, MAX_AMBIENT_FRACTION = 1_000.0, 0.9
#: Each planted gene's share of its program's log-fold change, uniform in this range (mean 1).
GENE_WEIGHT_RANGE = (0.5, 1.5)
#: Libraries the gene universe is drawn from (all read locally; see :mod:`bilinear_core.datasets.genesets`).
UNIVERSE_LIBRARIES = ("GO_Biological_Process_2023", "MSigDB_Hallmark_2020", "WikiPathway_2023_Human")


@dataclass(frozen=True)
class Program:
    """One planted gene program: a real gene set shifted by a dose-response in one drug's cells.

    ``lfc`` is the natural-log fold change at full response (times each gene's weight), signed by
    ``direction``. ``shape="hill"``: response ``d^n / (d^n + ec50^n)``; ``shape="bell"``: that rise times
    ``1 − `` a second Hill curve at ``ec50_off``, scaled to peak at 1 over the design's dose range.
    """

    name: str
    drug: str
    library: str
    term: str
    direction: str
    lfc: float
    ec50: float
    hill: float = 1.0
    shape: str = "hill"
    ec50_off: float = np.nan
    rationale: str = ""


#: Drug programs, in allocation order (a gene shared by two sets is planted only in the first).
PROGRAMS = (
    Program("p53 targets", "Nutlin", "MSigDB_Hallmark_2020", "p53 Pathway", "up", 1.5, ec50=1.0,
            rationale="MDM2 inhibition stabilises p53 in p53-wild-type A549: strong induction of its targets"),
    Program("NF-κB targets", "BMS", "MSigDB_Hallmark_2020", "TNF-alpha Signaling via NF-kB", "down", 1.0, ec50=5.0,
            rationale="IKK inhibition lowers basal NF-κB activity, which is modest in unstimulated A549"),
    Program("glucocorticoid receptor targets", "Dex", "WikiPathway_2023_Human",
            "Glucocorticoid Receptor Pathway WP2880", "up", 0.4, ec50=0.1,
            rationale="weak, and saturated from the lowest dose (GR responds at nM); the post found Dex hardest"),
    Program("cholesterol homeostasis", "SAHA", "MSigDB_Hallmark_2020", "Cholesterol Homeostasis", "up", 2.0, ec50=5.0,
            rationale="HDAC inhibitors give sci-Plex's strongest responses, incl. cholesterol/acetyl-CoA genes"),
    Program("interferon-α response, moderate doses", "SAHA", "MSigDB_Hallmark_2020", "Interferon Alpha Response", "up",
            1.0, ec50=0.5, shape="bell", ec50_off=10.0,
            rationale="a second program peaking at moderate doses, to test the post's reading of modules 1 and 2"),
)  # fmt: skip
#: Shared stress program of every drug, log-fold change ``lfc × (1 − viability)`` of the cell's well.
STRESS = Program("stress (all drugs)", "all", "MSigDB_Hallmark_2020", "Unfolded Protein Response", "up", 1.0,
                 ec50=np.nan, shape="viability",
                 rationale="dying wells share a stress response: drugs become partly confusable, as in screens",
                 )  # fmt: skip
#: Treatment-independent cell-cycle axis, per-cell log-fold change ``N(0, lfc²)``; structure the model must ignore.
CELL_CYCLE = Program("cell cycle (no drug)", "none", "MSigDB_Hallmark_2020", "E2F Targets", "up", 0.3,
                     ec50=np.nan, shape="random",
                     rationale="proliferating A549 cells differ in cycle phase whatever the treatment")  # fmt: skip


def hill(dose, ec50: float, n: float = 1.0) -> np.ndarray:
    """Hill response ``d^n / (d^n + ec50^n)`` in [0, 1); 0 at dose 0."""
    dose = np.asarray(dose, dtype=np.float64)
    if (dose < 0).any() or not ec50 > 0 or not n > 0:
        raise ValueError("hill needs non-negative doses and positive ec50 and n.")
    return dose**n / (dose**n + ec50**n)


def response(program: Program, dose, dose_range=(0.1, 100.0)) -> np.ndarray:
    """The fraction of ``program.lfc`` reached at each dose ``(n,)`` (bell shapes peak at 1 within ``dose_range``)."""
    if program.shape == "hill":
        return hill(dose, program.ec50, program.hill)
    if program.shape == "bell":
        grid = np.geomspace(*dose_range, 400)
        peak = (hill(grid, program.ec50, program.hill) * (1 - hill(grid, program.ec50_off, program.hill))).max()
        return hill(dose, program.ec50, program.hill) * (1 - hill(dose, program.ec50_off, program.hill)) / peak
    raise ValueError(f"Program {program.name!r} has no dose-response (shape {program.shape!r}).")


def gene_universe(libraries=UNIVERSE_LIBRARIES) -> list[str]:
    """Sorted union of the gene symbols of ``libraries`` (real human symbols, upper case)."""
    genes = set()
    for name in libraries:
        genes.update(*load_library(name).values())
    return sorted(genes)


def _program_genes(programs, gene_sets: dict, universe: set) -> dict[str, list[str]]:
    """Each program's planted genes: its set within the universe minus genes already taken by earlier programs."""
    taken, planted = set(), {}
    for program in programs:
        key = (program.library, program.term)
        if key not in gene_sets:
            raise KeyError(f"Gene set {program.term!r} of {program.library!r} is not available for {program.name!r}.")
        genes = sorted((set(gene_sets[key]) & universe) - taken)
        if not genes:
            raise ValueError(f"Program {program.name!r} has no genes left in the universe.")
        planted[program.name] = genes
        taken.update(genes)
    return planted


def _load_sets(programs) -> dict:
    return {(p.library, p.term): load_library(p.library).get(p.term, []) for p in programs}


def _cells(design: pd.DataFrame, n_cells: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per cell: drug, dose, well and the well's viability; cells per well ∝ the well's viability."""
    wells = design.loc[design.index.repeat(design["n_wells"])].reset_index(drop=True)
    wells["replicate"] = wells.groupby(["drug", "dose"]).cumcount() + 1
    viability = rng.normal(wells["viability_mean"], wells["viability_sd"])
    wells["viability"] = np.clip(viability, 1e-3, None)
    counts = rng.multinomial(n_cells, wells["viability"] / wells["viability"].sum())
    cells = wells.loc[wells.index.repeat(counts), ["drug", "dose", "replicate", "viability"]].reset_index(drop=True)
    cells["well"] = [f"{d}_{x:g}_{r}" for d, x, r in zip(cells["drug"], cells["dose"], cells["replicate"])]
    return cells.drop(columns="replicate")


def _nb_chunk(mu: np.ndarray, r: float, rng: np.random.Generator) -> sparse.csr_matrix:
    """Negative-binomial counts (mean ``mu``, size ``r``) for a dense ``(cells, genes)`` block, returned sparse.

    Exact and cheap for sparse data: a cell-gene entry is zero when an exponential variate exceeds
    ``-log P(0) = r log(1 + μ/r)``; only non-zero entries get a value, from the NB conditioned on ≥ 1
    (inversion with the same uniform for small means, rejection for large ones).
    """
    threshold = r * np.log1p(mu / np.float32(r))
    expo = rng.standard_exponential(mu.shape, dtype=np.float32)
    flat = np.flatnonzero(expo.ravel() < threshold.ravel())
    m = mu.ravel()[flat].astype(np.float64)
    u = np.exp(-expo.ravel()[flat].astype(np.float64))  # uniform in [P(0), 1): the same draw decides the value
    values = np.zeros(len(flat), dtype=np.float64)
    idx = np.flatnonzero(m <= 1.0)  # inversion: X = min{k ≥ 1 : F(k) ≥ u}
    p, u = m[idx] / (m[idx] + r), u[idx]
    pmf = (1.0 - p) ** r
    cdf = pmf.copy()
    for k in range(1, 60):
        pmf *= ((k - 1 + r) / k) * p
        cdf += pmf
        done = cdf >= u
        values[idx[done]] = k
        keep = ~done
        idx, p, u, pmf, cdf = idx[keep], p[keep], u[keep], pmf[keep], cdf[keep]
        if not idx.size:
            break
    todo = np.concatenate([np.flatnonzero(m > 1.0), idx])  # rejection (and round-off leftovers of the inversion)
    while todo.size:
        draws = rng.negative_binomial(r, r / (r + m[todo]))
        values[todo] = draws
        todo = todo[draws == 0]
    rows, cols = np.divmod(flat, mu.shape[1])
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=mu.shape[0]))])
    return sparse.csr_matrix((values.astype(np.float32), cols.astype(np.int32), indptr), shape=mu.shape)


def sciplex2(
    seed: int = 0,
    n_cells: int = N_CELLS,
    n_genes: int = N_GENES,
    programs=PROGRAMS,
    stress: Program | None = STRESS,
    cell_cycle: Program | None = CELL_CYCLE,
    genes=None,
    gene_sets: dict | None = None,
    design: pd.DataFrame | None = None,
    chunk_size: int = 1_000,
) -> AnnData:
    """Simulated sci-Plex2 counts on the real design: ``(n_cells, n_genes)`` sparse counts with planted truth.

    Parameters
    ----------
    seed
        Seeds everything: the same seed gives byte-identical data.
    n_cells, n_genes
        Total cells (spread over the 192 wells in proportion to each well's viability, drawn from the
        measured mean ± sd) and genes (all planted genes plus a seeded sample of
        :func:`~bilinear_core.datasets.simulate.gene_universe`).
    programs, stress, cell_cycle
        The planted programs (defaults: :data:`~bilinear_core.datasets.simulate.PROGRAMS`,
        :data:`~bilinear_core.datasets.simulate.STRESS`, :data:`~bilinear_core.datasets.simulate.CELL_CYCLE`;
        ``None`` leaves stress or cell cycle out).
    genes, gene_sets
        Gene universe (default :func:`~bilinear_core.datasets.simulate.gene_universe`) and
        ``{(library, term): genes}`` for the programs (default: read from the local libraries); for tests
        with small made-up sets.
    design
        Design table like :func:`bilinear_core.datasets.sciplex2_design` (the default).
    chunk_size
        Cells generated at a time (memory ``~ 3 × chunk_size × n_genes × 4`` bytes).

    Returns
    -------
    AnnData with counts in ``X`` (CSR, float32); ``obs``: ``drug``, ``dose``, ``well``, ``viability``,
    ``treatment`` (the drug, or ``"vehicle"`` at dose 0), ``ncounts``, ``sim_library_size`` (expected
    total), ``sim_ambient_fraction``, ``sim_cell_cycle``; ``var["planted_program"]`` (``""`` for none);
    ``uns["planted"]`` with ``programs`` (one row per program, incl. stress and cell cycle), ``genes``
    and ``weights`` per program and ``settings``; ``uns["dataset"]``.
    """
    design = sciplex2_design() if design is None else design
    missing = {"drug", "dose", "viability_mean", "viability_sd", "n_wells"} - set(design.columns)
    if missing:
        raise ValueError(f"The design table lacks column(s) {sorted(missing)}.")
    if int(n_cells) < 1 or int(n_genes) < 2 or int(chunk_size) < 1:
        raise ValueError("n_cells, chunk_size must be positive and n_genes at least 2.")
    all_programs = [*programs, *(p for p in (stress, cell_cycle) if p is not None)]
    unknown = sorted({p.drug for p in programs} - set(design["drug"]))
    if unknown:
        raise ValueError(f"Program drug(s) {unknown} are not in the design ({sorted(design['drug'].unique())}).")
    rng = np.random.default_rng(seed)
    gene_sets = _load_sets(all_programs) if gene_sets is None else gene_sets
    universe = sorted(gene_universe() if genes is None else {str(g) for g in genes})
    planted = _program_genes(all_programs, gene_sets, set(universe))
    planted_genes = sorted(set().union(*planted.values()))
    if len(planted_genes) > n_genes:
        raise ValueError(f"n_genes={n_genes} is smaller than the {len(planted_genes)} planted genes.")
    others = sorted(set(universe) - set(planted_genes))
    n_other = min(n_genes - len(planted_genes), len(others))
    var_names = sorted(planted_genes + list(rng.choice(others, size=n_other, replace=False)))
    g = len(var_names)
    column = {name: i for i, name in enumerate(var_names)}

    log_q = rng.normal(0.0, GENE_MEAN_SDLOG, g)
    q = np.exp(log_q - log_q.max())
    q /= q.sum()
    weights = {p.name: rng.uniform(*GENE_WEIGHT_RANGE, len(planted[p.name])) for p in all_programs}

    cells = _cells(design, int(n_cells), rng)
    n = len(cells)
    library = np.exp(rng.normal(np.log(LIBRARY_MEDIAN), LIBRARY_SDLOG, n))
    ambient = np.minimum(AMBIENT_COUNTS / library, MAX_AMBIENT_FRACTION)
    cycle = rng.normal(0.0, 1.0, n)

    affected = np.array([column[x] for x in planted_genes])
    slot = {name: i for i, name in enumerate(planted_genes)}
    effects = np.zeros((n, len(affected)))  # natural-log fold change of each affected gene in each cell
    dose = cells["dose"].to_numpy(dtype=np.float64)
    drug = cells["drug"].to_numpy(dtype=str)
    dose_range = (dose[dose > 0].min(), dose.max()) if (dose > 0).any() else (0.1, 100.0)
    for p in all_programs:
        idx = np.array([slot[x] for x in planted[p.name]])
        sign = 1.0 if p.direction == "up" else -1.0
        if p.shape == "viability":
            strength = 1.0 - np.clip(cells["viability"].to_numpy(), 0.0, 1.0)
        elif p.shape == "random":
            strength = cycle
        else:
            strength = np.where(drug == p.drug, response(p, dose, dose_range), 0.0)
        effects[:, idx] += np.outer(sign * p.lfc * strength, weights[p.name])
    norm = 1.0 + (np.expm1(effects) * q[affected]).sum(axis=1)  # Σ_g q_g e^{effect}: keeps each profile summing to 1

    r = 1.0 / DISPERSION
    blocks = []
    for start in range(0, n, int(chunk_size)):
        rows = slice(start, min(start + int(chunk_size), n))
        own = (1.0 - ambient[rows]) / norm[rows]
        mu = np.outer(library[rows] * (own + ambient[rows]), q).astype(np.float32)
        mu[:, affected] = (
            library[rows, None] * q[affected] * (own[:, None] * np.exp(effects[rows]) + ambient[rows, None])
        ).astype(np.float32)
        blocks.append(_nb_chunk(mu, r, rng))
    X = sparse.vstack(blocks, format="csr")

    obs = pd.DataFrame(index=pd.Index([f"sim_cell_{i:05d}" for i in range(n)], name="cell"))
    present = set(drug)
    obs["drug"] = pd.Categorical(drug, categories=[d for d in DRUGS if d in present] + sorted(present - set(DRUGS)))
    obs["dose"] = dose
    obs["well"] = cells["well"].to_numpy()
    obs["viability"] = cells["viability"].to_numpy()
    treatments = [VEHICLE, *obs["drug"].cat.categories]
    obs["treatment"] = pd.Categorical(np.where(dose > 0, drug, VEHICLE), categories=treatments)
    obs["ncounts"] = np.asarray(X.sum(axis=1)).ravel()
    obs["sim_library_size"] = library
    obs["sim_ambient_fraction"] = ambient
    obs["sim_cell_cycle"] = cycle
    var = pd.DataFrame(index=pd.Index(var_names, name="gene_symbol"))
    var["planted_program"] = ""
    for p in all_programs:
        var.loc[planted[p.name], "planted_program"] = p.name
    table = pd.DataFrame([asdict(p) for p in all_programs])
    table["n_genes_in_set"] = [len(gene_sets[(p.library, p.term)]) for p in all_programs]
    table["n_genes_planted"] = [len(planted[p.name]) for p in all_programs]
    table["primary"] = ~table.duplicated("drug") & table["drug"].isin(set(design["drug"]))
    settings = dict(
        seed=int(seed), n_cells=int(n), n_genes=int(g), library_median=LIBRARY_MEDIAN, library_sdlog=LIBRARY_SDLOG,
        gene_mean_sdlog=GENE_MEAN_SDLOG, dispersion=DISPERSION, ambient_counts=AMBIENT_COUNTS,
        max_ambient_fraction=MAX_AMBIENT_FRACTION, gene_weight_range=list(GENE_WEIGHT_RANGE),
    )  # fmt: skip
    adata = AnnData(X=X, obs=obs, var=var)
    adata.uns["planted"] = {
        "programs": table,
        "genes": {name: np.asarray(genes, dtype=str) for name, genes in planted.items()},
        "weights": {name: w for name, w in weights.items()},
        "settings": settings,
    }
    adata.uns["dataset"] = {
        "name": "sci-Plex2 (simulated)",
        "file": None,
        "simulated": True,
        "kind": "simulated on the real sci-Plex2 design (bilinear_core.datasets.simulate)",
        "n_cells": int(n),
        "n_genes_in_file": int(g),
    }
    return adata


def _planted(adata: AnnData) -> dict:
    """``adata.uns["planted"]``, with a clear error for data that are not simulated."""
    if "planted" not in adata.uns:
        raise KeyError("adata.uns has no 'planted' entry: only simulated data (bilinear_core.datasets.simulate) do.")
    return adata.uns["planted"]


def planted_genes(adata: AnnData, drug: str, primary_only: bool = True) -> list[str]:
    """Genes planted for ``drug`` (its primary program, or all its programs), from ``adata.uns["planted"]``."""
    planted = _planted(adata)
    table = planted["programs"]
    rows = table[(table["drug"] == drug) & (table["primary"] | (not primary_only))]
    if rows.empty:
        raise ValueError(f"No program was planted for {drug!r}; planted drugs: {sorted(table['drug'].unique())}.")
    return sorted(set().union(*(planted["genes"][name] for name in rows["name"])))


def planted_response(adata: AnnData, program: str, dose) -> np.ndarray:
    """The planted dose-response of ``program`` (a name in ``adata.uns["planted"]["programs"]``) at ``dose`` ``(n,)``.

    Bell-shaped responses are scaled to peak at 1 over the data's non-zero dose range, as in :func:`sciplex2`.
    """
    table = _planted(adata)["programs"].set_index("name")
    if program not in table.index:
        raise KeyError(f"No planted program {program!r}; programs are {list(table.index)}.")
    fields = {k: table.loc[program, k] for k in Program.__dataclass_fields__ if k != "name"}
    doses = adata.obs["dose"].to_numpy(dtype=np.float64)
    dose_range = (doses[doses > 0].min(), doses.max()) if (doses > 0).any() else (0.1, 100.0)
    return response(Program(name=program, **fields), dose, dose_range)
