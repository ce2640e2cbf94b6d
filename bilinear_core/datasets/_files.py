"""Where data files are found: ``$BILINEAR_DATA_DIR`` or ``data/`` at the repository root."""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
from anndata import AnnData


def data_dir() -> Path:
    """Where data files are looked for: ``$BILINEAR_DATA_DIR`` or ``<repo>/data``."""
    return Path(os.environ.get("BILINEAR_DATA_DIR", Path(__file__).resolve().parents[2] / "data"))


def read_h5ad(path: Path, what: str, how_to_get: str) -> AnnData:
    """Read an ``.h5ad``; a truncated or foreign file raises an error saying what it is and ``how_to_get`` it."""
    try:
        return ad.read_h5ad(path)
    except Exception as err:  # h5py/anndata raise many types for truncated or foreign files
        raise OSError(
            f"Could not read {what} from {path} ({type(err).__name__}: {err}). The file looks corrupted "
            f"or incomplete: delete it and {how_to_get}"
        ) from err


def find(names: list[str]) -> Path | None:
    """The first of ``names`` found in the data dir (or its ``Pancreas`` folder), else ``None``."""
    for name in names:
        for folder in (data_dir(), data_dir() / "Pancreas"):
            if (folder / name).is_file():
                return folder / name
    return None
