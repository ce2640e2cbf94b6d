import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData
from scipy import sparse

import bilinear_core as bc
from bilinear_core.distributed import fit_distributed, spawn_local
from bilinear_core.io import load, save
from bilinear_core.stream import fit_stream

# 2 ranks × 8 cells per step vs 1 process × 16: the same cells per step, gradients summed in another order
RTOL, ATOL = 1e-5, 1e-6


def _write(path, n=160, g=10, seed=0):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n)
    counts = rng.poisson(1.0 + 3.0 * (group[:, None] == np.arange(g) % 3)).astype(np.float32)
    counts[:, 0] += 1
    adata = AnnData(sparse.csr_matrix(counts))
    adata.var_names = [f"G{i}" for i in range(g)]
    adata.obs["label"] = pd.Categorical(np.array(["a", "b", "c"])[group])
    adata.write_h5ad(path)
    return path


@pytest.mark.processes
def test_two_gloo_processes_equal_one_process_with_the_combined_batch(tmp_path):
    files = [_write(tmp_path / "a.h5ad", n=160, seed=0), _write(tmp_path / "b.h5ad", n=96, seed=1)]
    n = 256
    split = dict(train_idx=np.r_[np.arange(0, 128), np.arange(160, 224)], val_idx=np.r_[128:160, 224:256])
    # chunks of 8 rows without shuffling: rank 0 takes chunks 0, 2, 4, …, rank 1 chunks 1, 3, 5, …; one process with
    # batch 16 sees chunks (0, 1), (2, 3), …: per step the same 16 cells, gradients averaged over 2 × 8 or 1 × 16
    common = dict(n_hidden=6, epochs=3, lr=1e-2, weight_decay=0.05, shuffle=False, chunk_size=8, progress=False)
    single = fit_stream(files, "label", batch_size=16, **split, **common)
    double = spawn_local(2, files, "label", tmp_path / "ddp.pt", batch_size=8, **split, **common)
    assert double.settings["world_size"] == 2
    assert double.settings["n_train"] == single.settings["n_train"] == 192 and n == 256
    for (name, a), b in zip(single.model.named_parameters(), double.model.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL, msg=name)
        assert not torch.equal(a, torch.zeros_like(a))
    np.testing.assert_allclose(double.history["train_loss"], single.history["train_loss"], rtol=RTOL)
    np.testing.assert_allclose(double.history["val_loss"], single.history["val_loss"], rtol=RTOL)
    # the saved file is what interpretation reads
    assert double.var_names == double.settings["var_names"] == single.var_names
    modules = bc.eigendecompose(double)
    assert modules.eigenvalues.shape == (3, 10)


def test_save_and_load_round_trip(tmp_path):
    path = _write(tmp_path / "a.h5ad", n=60)
    result = fit_stream(path, "label", n_hidden=4, epochs=2, batch_size=16, progress=False)
    loaded = load(save(result, tmp_path / "m.pt"))
    for a, b in zip(result.model.parameters(), loaded.model.parameters(), strict=True):
        assert torch.equal(a, b)
    pd.testing.assert_frame_equal(loaded.history, result.history)
    assert loaded.classes == result.classes and loaded.settings == result.settings
    assert loaded.var_names == result.var_names == [f"G{i}" for i in range(10)]
    assert bc.eigendecompose(loaded).var_names == loaded.var_names  # nothing else needed for interpretation
    assert loaded.timings == result.timings
    # NumPy scalars in settings (e.g. an lr from np.logspace) are saved as Python numbers, so they load back
    result.settings["lr"] = np.float64(1e-3)
    assert load(save(result, tmp_path / "np.pt")).settings["lr"] == 1e-3
    np.testing.assert_array_equal(loaded.val_idx, result.val_idx)
    with pytest.raises(FileNotFoundError, match="No saved model"):
        load(tmp_path / "nothing.pt")


def test_more_processes_than_chunks_is_a_clear_error(tmp_path):
    path = _write(tmp_path / "a.h5ad", n=40)
    with pytest.raises(ValueError, match="fewer than the 2 processes: lower chunk_size"):
        fit_stream(path, "label", progress=False, _group=type("Two", (), {"rank": 0, "world_size": 2})())


def test_outside_torchrun_says_how_to_launch(tmp_path, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        fit_distributed(_write(tmp_path / "a.h5ad", n=40), "label", device="cpu")


@pytest.mark.skipif(os.environ.get("BILINEAR_TEST_TORCHRUN") != "1", reason="set BILINEAR_TEST_TORCHRUN=1 (~15 s)")
def test_torchrun_command_line(tmp_path):
    path = _write(tmp_path / "a.h5ad", n=80)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    args = ["-m", "bilinear_core.distributed", str(path), "--target", "label", "--out", str(tmp_path / "m.pt")]
    args += ["--epochs", "2", "--batch-size", "8", "--chunk-size", "16", "--n-hidden", "4", "--threads", "1"]
    args += ["--no-progress"]
    proc = subprocess.run(torchrun + args, capture_output=True, text=True, timeout=300, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2
    assert load(tmp_path / "m.pt").model.n_in == 10


@pytest.mark.skipif(os.environ.get("BILINEAR_TEST_TORCHRUN") != "1", reason="set BILINEAR_TEST_TORCHRUN=1 (~40-65 s)")
def test_elastic_restart_resumes_from_the_last_checkpoint(tmp_path):
    """torchrun --max-restarts 1, 2 gloo processes: rank 1 dies at step 10 of the first attempt; the restarted job
    resumes from the checkpoint of step 9 and ends with the weights and history of an uninterrupted job, bit for bit
    (same ranks, same reductions). Three torchrun attempts of 2 processes each: 40-65 s on the 2 shared cores."""
    path = _write(tmp_path / "a.h5ad", n=160)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    args = ["-m", "bilinear_core.distributed", str(path), "--target", "label", "--epochs", "3", "--batch-size", "8"]
    args += ["--chunk-size", "8", "--buffer-size", "24", "--n-hidden", "4", "--lr", "0.01", "--threads", "1"]
    args += ["--no-progress"]
    env = {**os.environ, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}  # see fit_distributed: torch's restart bug
    run = dict(capture_output=True, text=True, timeout=300, env=env)
    subprocess.run(torchrun + args + ["--out", str(tmp_path / "reference.pt")], check=True, **run)
    checkpoint = ["--checkpoint", str(tmp_path / "run.ckpt"), "--checkpoint-every", "3", "--resume"]
    faulty = ["--max-restarts", "1", *args, "--out", str(tmp_path / "m.pt"), *checkpoint, "--fail-at-step", "10"]
    proc = subprocess.run(torchrun + faulty, **run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("InjectedFault: fault injected at optimizer step 10") == 1  # first attempt only
    # 112 training cells, 7 steps per epoch: checkpoints after steps 3, 6, 7 (epoch end) and 9, then the fault
    assert "Resuming from" in proc.stderr and "at optimizer step 9 (epoch 2, 2 steps into it)" in proc.stderr
    reference, resumed = load(tmp_path / "reference.pt"), load(tmp_path / "m.pt")
    for (name, a), b in zip(reference.model.named_parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b), name
    pd.testing.assert_frame_equal(reference.history, resumed.history, check_exact=True)
