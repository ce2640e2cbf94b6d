"""The command line ``bilinear-core`` (also ``python -m bilinear_core``): train, predict and modules on ``.h5ad``.

Each subcommand is a thin shell over the library: ``train`` runs :func:`bilinear_core.pp.preprocess` (unless
``--no-preprocess``) and :func:`bilinear_core.tl.train` and saves the model (:func:`bilinear_core.io.save`);
``predict`` runs :func:`bilinear_core.tl.predict` (and :func:`bilinear_core.tl.explain`) on a query; ``modules``
writes each output's leading modules (oriented by :func:`bilinear_core.tl.modules` given the trained reference),
their reproducibility and their top genes as CSV tables. Errors a user can fix (a missing file, column or layer,
a model that does not fit the query) end the command with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

__all__ = ["main"]

EXAMPLE = """example:
  bilinear-core train reference.h5ad --target cell_type --model model.pt --out reference_trained.h5ad
  bilinear-core predict model.pt query.h5ad --out query_annotated.h5ad --explain
  bilinear-core modules model.pt --out-dir modules/
"""


def _command(commands, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with an example."""
    return commands.add_parser(
        name, help=help, epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bilinear-core",
        description="Bilinear MLPs for single-cell data: train on a reference, annotate new cells, read the modules.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,predict,modules}")

    train = _command(
        commands,
        "train",
        "train a model on a reference .h5ad and save it",
        "bilinear-core train reference.h5ad --target cell_type --model model.pt --seeds 1 2 3",
    )
    train.add_argument("data", type=Path, help="reference .h5ad (raw counts in --counts-layer, or in X)")
    train.add_argument("--target", required=True, help="obs column of labels (or numeric values) to learn")
    train.add_argument("--model", required=True, type=Path, help="where to save the model (e.g. model.pt)")
    train.add_argument("--out", type=Path, help="write the preprocessed, annotated reference .h5ad here")
    train.add_argument(
        "--counts-layer", default="counts", help="layer of raw counts to normalise (default: counts; 'X': adata.X)"
    )
    train.add_argument("--n-top-genes", type=int, default=10_000, help="highly variable genes kept (default 10000)")
    train.add_argument(
        "--no-preprocess",
        action="store_true",
        help="train on X as it is (already normalised and log1p-transformed; no gene selection)",
    )
    train.add_argument("--task", choices=("classification", "regression"), help="default: guessed from the target")
    train.add_argument("--seed", type=int, default=42, help="seed of the split, weights and batch order (42)")
    train.add_argument("--seeds", type=int, nargs="+", help="train an exact ensemble, one member per seed")
    train.add_argument("--jobs", type=int, default=1, help="processes for the ensemble's members (1)")
    train.add_argument("--epochs", type=int, default=100, help="epochs (100)")
    train.add_argument("--hidden", type=int, default=128, help="hidden units (128)")
    train.add_argument("--batch-size", type=int, default=64, help="cells per batch (64)")
    train.add_argument("--lr", type=float, default=1e-4, help="Adam's learning rate (1e-4, cosine-annealed)")
    train.add_argument("--key", default="bilinear", help="key_added in the written .h5ad (bilinear)")

    predict = _command(
        commands,
        "predict",
        "annotate new cells with a saved model",
        "bilinear-core predict model.pt query.h5ad --out query_annotated.h5ad --explain",
    )
    predict.add_argument("model", type=Path, help="a model saved by `bilinear-core train` or bilinear_core.save")
    predict.add_argument("data", type=Path, help="query .h5ad")
    predict.add_argument("--out", required=True, type=Path, help="write the annotated query .h5ad here")
    predict.add_argument("--layer", help="layer holding the expression (default: X)")
    predict.add_argument(
        "--normalise",
        metavar="COUNTS_LAYER",
        help="normalise this layer of raw counts ('X': adata.X) as the reference was (target sum, log1p) first",
    )
    predict.add_argument("--explain", action="store_true", help="also split each call over the modules")
    predict.add_argument("--n-modules", type=int, default=3, help="modules per sign in the explanation (3)")
    predict.add_argument("--chunk-size", type=int, default=10_000, help="cells read at a time (10000)")
    predict.add_argument("--backed", action="store_true", help="read the query from disk chunk by chunk (large files)")
    predict.add_argument("--key", default="bilinear", help="key_added of the written columns (bilinear)")

    modules = _command(
        commands,
        "modules",
        "write each output's leading modules and top genes as CSV",
        "bilinear-core modules model.pt --out-dir modules/ --n-modules 3",
    )
    modules.add_argument("model", type=Path, help="a model saved by `bilinear-core train` or bilinear_core.save")
    modules.add_argument("--out-dir", required=True, type=Path, help="folder for modules.csv and top_genes.csv")
    modules.add_argument("--n-modules", type=int, default=3, help="modules per sign (3)")
    modules.add_argument("--fraction", type=float, default=0.01, help="share of genes listed per sign (0.01)")
    modules.add_argument(
        "--data",
        type=Path,
        help="the reference .h5ad written by `train --out`: orients each module so that its output's cells score "
        "high (without it a module's sign, and so which gene list is 'positive', is arbitrary)",
    )
    modules.add_argument("--key", default="bilinear", help="key_added of the model in --data (bilinear)")
    return parser


def _train(args) -> None:
    import anndata as ad

    from . import io, pp, tl

    adata = ad.read_h5ad(args.data)
    if not args.no_preprocess:
        layer = None if args.counts_layer == "X" else args.counts_layer
        adata = pp.preprocess(adata, n_top_genes=args.n_top_genes, layer=layer)
    hyper = dict(epochs=args.epochs, n_hidden=args.hidden, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    result = tl.train(
        adata, args.target, task=args.task, key_added=args.key, seeds=args.seeds, n_jobs=args.jobs, **hyper
    )
    io.save(result, args.model)
    print(f"saved the model ({len(result.var_names)} genes, outputs {result.output_names}) to {args.model}")
    if args.out is not None:
        adata.write_h5ad(args.out)
        print(f"wrote {args.out}")


def _predict(args) -> None:
    import anndata as ad

    from . import io, pp, tl

    result = io.load(args.model)
    query = ad.read_h5ad(args.data, backed="r" if args.backed else None)
    if args.normalise is not None:
        if args.backed:
            raise ValueError("--normalise needs the query in memory; drop --backed (or normalise the file first).")
        target = (result.preprocessing or {}).get("target_sum")
        layer = None if args.normalise == "X" else args.normalise
        pp.normalize_log1p(query, layer=layer, target_sum=target)
    common = dict(key_added=args.key, layer=args.layer, chunk_size=args.chunk_size)
    tl.predict(query, result, **common)
    if args.explain:
        tl.explain(query, result, n_modules=args.n_modules, progress=False, **common)
    if args.backed:
        query = query.to_memory()
    query.write_h5ad(args.out)
    if result.task == "classification":
        counts = query.obs[f"{args.key}_prediction"].value_counts()
        print("predicted: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    print(f"wrote {args.out}")


def _modules(args) -> None:
    import anndata as ad
    import pandas as pd

    from . import interpret, io, stability, tl

    result = io.load(args.model)
    if args.data is not None:
        mods = tl.modules(ad.read_h5ad(args.data), result, n_modules=args.n_modules, key_added=args.key)
        table = mods.reliability
    else:
        mods = interpret.leading_modules(result, args.n_modules)
        table = stability.module_reliability(result, args.n_modules, modules=mods)
    r = mods.eigenvalues.shape[1]  # module m is column m (m >= 0) or r + m (m < 0) of the eigenvectors
    top = [
        interpret.top_genes(mods, row.output, row.module % r, fraction=args.fraction).assign(module=row.module)
        for row in table.itertuples()
    ]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out_dir / "modules.csv", index=False)
    pd.concat(top, ignore_index=True).to_csv(args.out_dir / "top_genes.csv", index=False)
    print(f"wrote {args.out_dir / 'modules.csv'} and {args.out_dir / 'top_genes.csv'} ({len(table)} modules)")


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    run = {"train": _train, "predict": _predict, "modules": _modules}[args.command]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default", UserWarning)
            run(args)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bilinear-core {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
