"""Training: seconds per epoch at the post's settings against the matmul-bound time on this machine.

Models: cell typing (cross-entropy on ``clusters``, weight decay 0.35) and transcriptional
frequencies (Huber on 4 frequencies), hidden 128, batch 64, lr 1e-4, Adam + cosine annealing, 70/30
split, trained with ``bilinear_core.tl.train`` on the offline pancreas copy (2,000 genes, less the
ribosomal protein genes) and with ``bilinear_core.fit`` on synthetic data of the post's size (3,696 cells ×
10,000 genes).

The bound: in the same process, ``torch.matmul`` of the shapes one epoch needs, timed alone —
per batch the forward ``(64, g) @ (g, 2h)`` (left and right layers together) and the weight
gradient ``(2h, 64) @ (64, g)``, plus the validation forward ``(n_val, g) @ (g, 2h)``. The input
needs no gradient, so the backward pass of the bilinear layer is one matmul, not two.

Run: ``.venv/bin/python benchmarks/training.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import math

import _common as common
import numpy as np
import pandas as pd

N_CELLS, SYNTHETIC_GENES, N_CLASSES, N_FREQS = 3696, 10_000, 8, 4
SETTINGS = dict(n_hidden=128, batch_size=64, lr=1e-4, seed=42, progress=False)  # TrainSettings fields


def matmul_bound(g: int, h: int, n_val: int, batch: int, repeats: int = 30) -> dict:
    """Median seconds of the epoch's big matmuls, timed alone (float32, no autograd)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, g, generator=gen)
    w = torch.randn(2 * h, g, generator=gen)  # stored like nn.Linear weights: (out, in)
    dy = torch.randn(batch, 2 * h, generator=gen)
    x_val = torch.rand(n_val, g, generator=gen)
    with torch.no_grad():
        fwd = common.median(common.timed(lambda: x @ w.T, repeats, warmup=5))
        bwd = common.median(common.timed(lambda: dy.T @ x, repeats, warmup=5))
        val = common.median(common.timed(lambda: x_val @ w.T, max(repeats // 3, 3), warmup=2))
    return {"fwd": fwd, "bwd": bwd, "val": val}


def adam_epoch(g: int, h: int, t: int, n_batches: int, settings: dict, repeats: int = 3) -> dict:
    """Seconds of one epoch's Adam steps alone (parameters of the model's shapes, random gradients).

    ``fused``: PyTorch's fused CPU kernel, which ``bilinear_core.fit`` uses (reruns bit-identical; its rounding
    differs slightly from the other implementations); ``foreach``: the multi-tensor implementation, for comparison.
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    shapes = [(h, g), (h, g), (t, h)]
    out = {}
    for name, kwargs in {"foreach": {"foreach": True}, "fused": {"fused": True}}.items():
        params = [torch.randn(shape, generator=gen, requires_grad=True) for shape in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        optimizer = torch.optim.Adam(
            params,
            lr=settings["lr"],
            weight_decay=settings["weight_decay"],
            decoupled_weight_decay=settings["decoupled_weight_decay"],
            **kwargs,
        )

        def epoch(optimizer=optimizer):
            for _ in range(n_batches):
                optimizer.step()

        out[name] = common.median(common.timed(epoch, repeats, warmup=1))
    return out


def epoch_flops(g: int, h: int, t: int, n_train: int, n_val: int) -> float:
    """Matmul FLOPs of one epoch: training forward + weight gradients + head backward, validation forward."""
    train = n_train * (2 * 2 * g * h + 2 * h * t)  # left, right, head
    backward = n_train * (2 * 2 * g * h + 2 * 2 * h * t)  # W, V weight grads; head weight + input grads
    return float(train + backward + n_val * (2 * 2 * g * h + 2 * h * t))


def time_fit(fit, epochs: int, repeats: int) -> tuple[list[float], object]:
    """Seconds of ``repeats`` fits of ``epochs`` epochs after one untimed 1-epoch warm-up fit."""
    fit(1)
    result = {}

    def run():
        result["fit"] = fit(epochs)

    times = common.timed(run, repeats)
    return times, result["fit"]


def problems(args):
    """(name, data, genes, fit(epochs) -> FitResult) for each benchmarked model."""
    import bilinear_core as bc

    adata = bc.datasets.pancreas()
    adata = bc.pp.preprocess(
        adata, n_top_genes=10_000, layer="spliced", size_factor_key=adata.uns["dataset"]["size_factor_key"]
    )
    bc.frequencies.transcriptional_frequencies(adata, n_freqs=N_FREQS)
    offline = f"pancreas offline ({adata.n_obs} × {adata.n_vars})"
    yield (
        "cell typing",
        offline,
        adata.n_vars,
        lambda e: bc.tl.train(adata, "clusters", weight_decay=0.35, epochs=e, **SETTINGS),
    )
    yield (
        "frequencies",
        offline,
        adata.n_vars,
        lambda e: bc.tl.train(adata, "X_freq", n_targets=N_FREQS, loss="huber", epochs=e, **SETTINGS),
    )
    if args.skip_synthetic:
        return
    rng = np.random.default_rng(0)
    X = np.log1p(rng.poisson(0.3, size=(N_CELLS, SYNTHETIC_GENES))).astype(np.float32)
    labels = rng.integers(0, N_CLASSES, N_CELLS).astype(str)
    freqs = rng.standard_normal((N_CELLS, N_FREQS)).astype(np.float32)
    synthetic = f"synthetic ({N_CELLS} × {SYNTHETIC_GENES})"
    yield (
        "cell typing",
        synthetic,
        SYNTHETIC_GENES,
        lambda e: bc.fit(X, labels, task="classification", weight_decay=0.35, epochs=e, **SETTINGS),
    )
    yield (
        "frequencies",
        synthetic,
        SYNTHETIC_GENES,
        lambda e: bc.fit(X, freqs, task="regression", loss="huber", epochs=e, **SETTINGS),
    )


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per timed fit")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--skip-synthetic", action="store_true", help="only the offline pancreas data")
    args = parser.parse_args(argv)
    threads = common.set_threads(args.threads)
    info = common.machine(threads)
    h, batch = SETTINGS["n_hidden"], SETTINGS["batch_size"]
    rows = []
    for model, data, g, fit in problems(args):
        print(f"{model} on {data}: {args.repeats} × {args.epochs} epochs ...", flush=True)
        times, result = time_fit(fit, args.epochs, args.repeats)
        n_train, n_val, t = len(result.train_idx), len(result.val_idx), result.model.n_out
        epoch_s = common.median(times) / args.epochs
        mm = matmul_bound(g, h, n_val, batch)
        n_batches = math.ceil(n_train / batch)
        bound_s = n_batches * (mm["fwd"] + mm["bwd"]) + mm["val"]
        adam = adam_epoch(g, h, t, n_batches, result.settings)
        peak_flops = (n_batches * 2 * (2 * batch * g * 2 * h) + 2 * n_val * g * 2 * h) / bound_s
        flops = epoch_flops(g, h, t, n_train, n_val)
        rows.append(
            {
                "model": model,
                "data": data,
                "n_train": n_train,
                "epoch_s": epoch_s,
                "runs": len(times),
                "epoch_gflop": flops / 1e9,
                "achieved_gflops": flops / epoch_s / 1e9,
                "matmul_peak_gflops": peak_flops / 1e9,
                "matmul_bound_epoch_s": bound_s,
                "epoch_over_bound": epoch_s / bound_s,
                "adam_epoch_s": adam["foreach"],
                "matmul_plus_adam_s": bound_s + adam["fused"],
                "adam_fused_epoch_s": adam["fused"],
                "last_val_metric": float(result.history.iloc[-1, -1]),
            }
        )
        print(pd.Series(rows[-1]).to_string(), flush=True)
    table = pd.DataFrame(rows)
    decay = "decoupled (AdamW-style)" if result.settings["decoupled_weight_decay"] else "as an L2 term in the gradient"
    notes = [
        f"Settings: hidden {h}, batch {batch}, lr 1e-4, Adam with weight decay {decay} (0.35 for cell typing, 0 for "
        f"frequencies), cosine annealing, 70/30 split, seed 42, float32; {args.epochs} epochs per fit.",
        f"epoch_s = median over {args.repeats} fits of (fit wall time / epochs), each after a 1-epoch warm-up fit; "
        "it includes the per-epoch validation pass and the fit's one-off set-up (densify, split, model init).",
        "matmul_bound_epoch_s = batches × (t[(64,g)@(g,2h)] + t[(2h,64)@(64,g)]) + t[(n_val,g)@(g,2h)], each "
        "timed alone with torch.matmul in the same process (median of 30); matmul_peak_gflops is their rate.",
        "epoch_gflop counts the matmul FLOPs an epoch needs (forward, weight gradients, head backward, "
        "validation); achieved_gflops = epoch_gflop / epoch_s. Target: epoch_over_bound ≤ 2.",
        "adam_epoch_s: the epoch's optimizer steps timed alone (multi-tensor foreach Adam, same weight-decay "
        "setting); adam_fused_epoch_s: the same with PyTorch's fused CPU Adam, which bilinear_core.fit uses "
        "(matmul_plus_adam_s adds it to the bound).",
        "last_val_metric: validation accuracy (cell typing) or MAE (frequencies) after the last epoch; "
        "synthetic labels/targets are random, so only the timing is meaningful there.",
    ]
    common.save_table(table, "training", info, "Training: seconds per epoch vs the matmul bound", notes)
    return table


if __name__ == "__main__":
    main()
