"""Plant known defects, one at a time, in a copy of ``bilinear_core`` and check that the test suite fails.

Each defect is a one-line replacement in one module (the list of issue #24 and a few more); the copy is put first
on the import path of a ``pytest`` run from a scratch folder, so the tests import the defective package. Prints,
per defect, whether the suite failed and the first failing test. Run: ``.venv/bin/python tools/plant_defects.py``
(~1 min per defect; ``--tests tests/test_train.py …`` to run a subset, ``NAME …`` to plant only some).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name: (module, original line part, defective replacement)
DEFECTS = {
    "predict negated": (
        "train.py", "return self.model(X).float().cpu().numpy()", "return -self.model(X).float().cpu().numpy()"
    ),
    "weight decay ignored": ("train.py", "weight_decay=settings.weight_decay,", "weight_decay=0.0,"),
    "decoupled decay ignored": (
        "train.py", "decoupled_weight_decay=settings.decoupled_weight_decay,", "decoupled_weight_decay=False,"
    ),
    "no cosine schedule": ("train.py", "        scheduler.step()\n", "        pass\n"),
    "regression loss always MSE": ("train.py", "REGRESSION_LOSSES[settings.loss]()", "nn.MSELoss()"),
    "dropout forced to 0": (
        "train.py", "dropout=settings.dropout, bias=settings.bias", "dropout=0.0, bias=settings.bias"
    ),
    "validation scored on training cells": (
        "evaluation.py",
        "val_scores = _scores(task, y[val], _predict(model, X[val], task), names)",
        "val_scores = _scores(task, y[train], _predict(model, X[train], task), names)",
    ),
    "recall computed as precision": (
        "train.py",
        '"recall": diag / np.maximum(counts.sum(axis=1).to_numpy(), 1),',
        '"recall": diag / np.maximum(counts.sum(axis=0).to_numpy(), 1),',
    ),
    "orientation on all cells": (
        "tl.py",
        "orient_modules(mods, X[result.train_idx], labels[result.train_idx])",
        "orient_modules(mods, X, labels)",
    ),
    "modules ignore the training layer": (
        "tl.py", '    layer = None if record is None else record.get("layer")\n', "    layer = None\n"
    ),
    "missing genes not zeroed": (
        "apply.py",
        "X = np.zeros((rows.stop - start, len(alignment.columns))",
        "X = np.ones((rows.stop - start, len(alignment.columns))",
    ),
}  # fmt: skip


def plant(name: str, tests: list[str]) -> tuple[bool, str]:
    """Run ``tests`` against a copy of the package with defect ``name``; (suite failed, first failing test)."""
    module, original, defective = DEFECTS[name]
    with tempfile.TemporaryDirectory() as scratch:
        package = Path(scratch) / "bilinear_core"
        shutil.copytree(ROOT / "bilinear_core", package, ignore=shutil.ignore_patterns("__pycache__"))
        path = package / module
        text = path.read_text()
        if text.count(original) != 1:
            raise SystemExit(f"{name}: the line to replace occurs {text.count(original)} times in {module}")
        path.write_text(text.replace(original, defective))
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            *(str(ROOT / t) for t in tests),
        ]
        run = subprocess.run(command, cwd=scratch, capture_output=True, text=True)  # cwd first on sys.path
    failed = [
        line.split(" - ")[0].removeprefix("FAILED ") for line in run.stdout.splitlines() if line.startswith("FAILED")
    ]
    return run.returncode != 0, Path(failed[0]).name if failed else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="defects to plant (default: all)")
    parser.add_argument("--tests", nargs="+", default=["tests"], help="test paths, relative to the repository")
    args = parser.parse_args()
    names = args.names or list(DEFECTS)
    print("| defect | module | caught by |\n|---|---|---|")
    missed = []
    for name in names:
        failed, first = plant(name, args.tests)
        print(f"| {name} | `{DEFECTS[name][0]}` | {f'`{first}`' if failed else '**not caught**'} |", flush=True)
        missed += [] if failed else [name]
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
