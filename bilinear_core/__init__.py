"""Bilinear MLPs for single-cell analysis: models, training, exact interpretation, frequencies, enrichment."""

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
