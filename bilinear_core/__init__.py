"""Bilinear MLPs for single-cell analysis: models, training, exact interpretation, frequencies, enrichment.

Training beyond memory is imported on its own, so that the common path stays light:
``bilinear_core.stream`` (from ``.h5ad`` files on disk), ``bilinear_core.distributed`` (PyTorch DDP under
``torchrun``), ``bilinear_core.checkpoint`` (save and load a fit) and ``bilinear_core.devices``.
"""

from . import (
    composition,
    datasets,
    enrichment,
    frequencies,
    interpret,
    perturbation,
    plotting,
    preprocess,
    report,
    simulate,
    train,
)
from .interpret import Modules, eigendecompose, module_scores, top_genes
from .model import BilinearMLP
from .train import FitResult, fit, train_classifier, train_regressor

__all__ = [
    "BilinearMLP",
    "FitResult",
    "Modules",
    "composition",
    "datasets",
    "eigendecompose",
    "enrichment",
    "fit",
    "frequencies",
    "interpret",
    "module_scores",
    "perturbation",
    "plotting",
    "preprocess",
    "report",
    "simulate",
    "top_genes",
    "train",
    "train_classifier",
    "train_regressor",
]
__version__ = "0.1.0"
