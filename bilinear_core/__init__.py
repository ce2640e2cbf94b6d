"""Bilinear MLPs for single-cell analysis: training, exact weight-based interpretation and analyses.

The scanpy-style face works on AnnData: :mod:`~bilinear_core.pp` (preprocessing), :mod:`~bilinear_core.tl`
(training and modules, written into ``adata``) and :mod:`~bilinear_core.pl` (figures). Underneath, the
array-level functions :func:`fit` (``seeds=…``: an exact ensemble; :func:`fit_many`: independent fits in
parallel processes) and :func:`eigendecompose` serve people who hold arrays. A trained model is saved
and loaded with :func:`~bilinear_core.io.save` and :func:`~bilinear_core.io.load` (:mod:`~bilinear_core.io`) and
applied to new cells with :func:`bilinear_core.tl.predict` and :func:`bilinear_core.tl.explain`
(:mod:`~bilinear_core.apply`); the command line ``bilinear-core`` (``python -m bilinear_core``) trains, predicts and
writes module tables from ``.h5ad`` files.
Analyses:
:mod:`~bilinear_core.enrichment`, :mod:`~bilinear_core.frequencies`, :mod:`~bilinear_core.composition`,
:mod:`~bilinear_core.perturbation`, :mod:`~bilinear_core.baselines`, :mod:`~bilinear_core.stability`,
:mod:`~bilinear_core.evaluation` (held-out comparison of training settings, e.g. the penalties of
:mod:`~bilinear_core.regularisation`);
data sources: :mod:`~bilinear_core.datasets`.

Training beyond memory is imported on its own, so that the common path stays light:
``bilinear_core.stream`` (from ``.h5ad`` files on disk), ``bilinear_core.distributed`` (PyTorch DDP under
``torchrun``), ``bilinear_core.checkpoint`` (training checkpoints and resume) and
``bilinear_core.devices``.
"""

from . import (
    apply,
    baselines,
    composition,
    datasets,
    enrichment,
    evaluation,
    frequencies,
    interpret,
    io,
    perturbation,
    pl,
    pp,
    regularisation,
    report,
    stability,
    tl,
    train,
)
from .interpret import Modules, eigendecompose, module_scores, top_genes
from .io import load, save
from .model import BilinearMLP
from .train import FitResult, TrainSettings, ensemble, fit, fit_many

__all__ = [
    "BilinearMLP",
    "FitResult",
    "Modules",
    "TrainSettings",
    "apply",
    "baselines",
    "composition",
    "datasets",
    "eigendecompose",
    "enrichment",
    "ensemble",
    "evaluation",
    "fit",
    "fit_many",
    "frequencies",
    "interpret",
    "io",
    "load",
    "module_scores",
    "perturbation",
    "pl",
    "pp",
    "regularisation",
    "report",
    "save",
    "stability",
    "tl",
    "top_genes",
    "train",
]
__version__ = "0.1.0"
