"""Checkpoints: atomic writes, resumed runs equal to uninterrupted ones, clear errors for bad files and settings."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData
from scipy import sparse
from torch.optim.optimizer import register_optimizer_step_post_hook

import bilinear_core as bc
from bilinear_core.checkpoint import Checkpoint, InjectedFault, inject_fault
from bilinear_core.io import atomic_save, load, save
from bilinear_core.stream import fit_stream

# dropout draws from torch's global generator at every step, so its state must be restored too
MEMORY = dict(task="regression", n_hidden=4, epochs=3, batch_size=16, lr=1e-2, weight_decay=0.05, dropout=0.2)
STREAM = dict(n_hidden=4, epochs=3, batch_size=16, lr=1e-2, weight_decay=0.05, dropout=0.2, chunk_size=8)


def _regression(n=120, g=8):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, g)).astype(np.float32)
    return X, X[:, 0] * X[:, 1] - X[:, 2] ** 2


def _h5ad(path, n=200, g=12):
    rng = np.random.default_rng(1)
    group = rng.integers(0, 2, n)
    counts = rng.poisson(np.where(group[:, None] == 1, 3.0, 1.0), size=(n, g)).astype(np.float32)
    counts[:, -1] += 1
    adata = AnnData(sparse.csr_matrix(counts))
    adata.var_names = [f"G{i}" for i in range(g)]
    adata.obs["label"] = pd.Categorical(np.where(group == 1, "up", "down"))
    adata.write_h5ad(path)
    return path


def _assert_identical(a, b):
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)


class _Steps:
    """Counts optimizer steps taken inside the block."""

    def __enter__(self):
        self.n, self.handle = 0, register_optimizer_step_post_hook(lambda *_: setattr(self, "n", self.n + 1))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _interrupt(fit, fault_step, **kwargs):
    with pytest.raises(InjectedFault, match=f"step {fault_step}"), inject_fault(fault_step):
        fit(**kwargs)


# 84 training cells in batches of 16: 6 steps per epoch, 18 in all; checkpoints every 4 steps and at epoch ends
@pytest.mark.parametrize(
    ("fault_step", "resumed_from"), [(3, 0), (6, 4), (7, 6), (11, 8), (18, 16)], ids=lambda v: str(v)
)
def test_interrupted_and_resumed_fit_is_bit_identical(tmp_path, fault_step, resumed_from):
    """Killed at a step, resumed from the last checkpoint (mid-epoch, at an epoch's end, or none yet): same weights
    and history, to the bit, as a fit never interrupted, and only the missing steps are taken again."""
    X, y = _regression()
    reference = bc.fit(X, y, progress=False, **MEMORY)
    checkpoint = Checkpoint(tmp_path / "run.ckpt", every=4)
    fit = lambda **kw: bc.fit(X, y, checkpoint=checkpoint, progress=False, **MEMORY, **kw)  # noqa: E731
    _interrupt(fit, fault_step)
    assert checkpoint_exists(checkpoint) == (resumed_from > 0)
    with _Steps() as steps:
        resumed = fit(resume="auto")
    assert steps.n == 18 - resumed_from
    _assert_identical(reference, resumed)


def checkpoint_exists(checkpoint):
    return os.path.exists(checkpoint.path)


def test_resume_with_early_stopping_keeps_its_record(tmp_path):
    """The early stopper's best loss, patience count and best weights travel in the checkpoint."""
    X, y = _regression()
    settings = {**MEMORY, "epochs": 8, "lr": 0.2, "patience": 1}
    reference = bc.fit(X, y, progress=False, **settings)
    assert len(reference.history) < 8  # it did stop early
    checkpoint = Checkpoint(tmp_path / "run.ckpt")
    fit = lambda **kw: bc.fit(X, y, checkpoint=checkpoint, progress=False, **settings, **kw)  # noqa: E731
    _interrupt(fit, 6 * (len(reference.history) - 1) + 2)
    _assert_identical(reference, fit(resume=True))
    _assert_identical(reference, fit(resume=True))  # resuming a finished run trains nothing and gives the same


# 140 training cells: 9 steps per epoch, checkpoints every 4 steps and at epoch ends; (reader workers before, after)
@pytest.mark.parametrize(
    ("fault_step", "resumed_from", "workers"),
    [
        pytest.param(5, 4, (0, 0), id="mid-epoch"),
        pytest.param(11, 9, (0, 1), id="epoch-end", marks=pytest.mark.processes),
        pytest.param(22, 20, (2, 0), id="workers", marks=pytest.mark.processes),
    ],
)
def test_interrupted_and_resumed_streaming_is_bit_identical(tmp_path, fault_step, resumed_from, workers):
    """Shuffled chunks and a bounded buffer: the resumed epoch regenerates its chunk order and buffer permutations
    and skips the batches taken, whatever reader (thread or worker processes) each attempt uses."""
    path = _h5ad(tmp_path / "a.h5ad")
    reading = dict(buffer_size=40, progress=False, **STREAM)
    reference = fit_stream(path, "label", **reading)
    assert len(reference.train_idx) == 140
    checkpoint = Checkpoint(tmp_path / "run.ckpt", every=4)
    fit = lambda **kw: fit_stream(path, "label", checkpoint=checkpoint, **reading, **kw)  # noqa: E731
    _interrupt(fit, fault_step, num_workers=workers[0])
    with _Steps() as steps:
        resumed = fit(resume=True, num_workers=workers[1])
    assert steps.n == 27 - resumed_from
    _assert_identical(reference, resumed)
    assert resumed.settings["num_workers"] == workers[1]


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """The third save dies half-written (disk full): the file still holds the second, and resuming from it gives
    the uninterrupted weights; no temporary file is left behind."""
    X, y = _regression()
    reference = bc.fit(X, y, progress=False, **MEMORY)
    checkpoint = Checkpoint(tmp_path / "run.ckpt", every=4)
    real_save, saves = torch.save, []

    def failing_save(payload, f):
        saves.append(payload["position"])
        if len(saves) == 3:
            f.write(b"PK\x03\x04 half a zip archive")
            raise OSError(28, "No space left on device")
        real_save(payload, f)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        bc.fit(X, y, checkpoint=checkpoint, progress=False, **MEMORY)
    monkeypatch.setattr(torch, "save", real_save)
    assert saves[1] == {"epoch": 1, "step": 0, "global_step": 6} and saves[2]["global_step"] == 8
    assert os.listdir(tmp_path) == ["run.ckpt"]
    with _Steps() as steps:
        resumed = bc.fit(X, y, checkpoint=checkpoint, resume=True, progress=False, **MEMORY)
    assert steps.n == 12
    _assert_identical(reference, resumed)


def test_atomic_save_replaces_or_keeps_the_file(tmp_path, monkeypatch):
    path = atomic_save({"value": 1}, tmp_path / "sub" / "f.pt")  # creates the folder
    assert torch.load(path)["value"] == 1
    atomic_save({"value": 2}, path)
    assert torch.load(path)["value"] == 2

    def no_rename(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="rename failed"):
        atomic_save({"value": 3}, path)
    assert torch.load(path)["value"] == 2 and os.listdir(path.parent) == ["f.pt"]


def test_truncated_foreign_and_mixed_up_files_are_named_errors(tmp_path):
    X, y = _regression()
    checkpoint = Checkpoint(tmp_path / "run.ckpt")
    result = bc.fit(X, y, checkpoint=checkpoint, progress=False, **MEMORY)
    data = (tmp_path / "run.ckpt").read_bytes()
    resume = lambda path: bc.fit(X, y, checkpoint=Checkpoint(path), resume=True, progress=False, **MEMORY)  # noqa: E731
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.ckpt cannot be read as a training checkpoint .*truncated, corrupt"):
        resume(tmp_path / "cut.ckpt")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes\.txt cannot be read as a training checkpoint"):
        resume(tmp_path / "notes.txt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt is not a training checkpoint .*a dict without a format tag"):
        resume(tmp_path / "other.pt")
    save(result, tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"model\.pt is not a training checkpoint .*saved by bilinear_core.save"):
        resume(tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"run\.ckpt is not a saved model .*holds a training checkpoint"):
        load(tmp_path / "run.ckpt")
    payload = torch.load(tmp_path / "run.ckpt", weights_only=True)
    del payload["optimizer"]
    torch.save(payload, tmp_path / "part.ckpt")
    with pytest.raises(ValueError, match=r"part\.ckpt is an incomplete training checkpoint: it lacks \['optimizer'\]"):
        resume(tmp_path / "part.ckpt")
    with pytest.raises(FileNotFoundError, match=r"No training checkpoint at .*missing\.ckpt"):
        resume(tmp_path / "missing.ckpt")


def test_resume_with_other_settings_genes_or_split_is_refused(tmp_path):
    X, y = _regression()
    genes = [f"G{i}" for i in range(8)]
    checkpoint = Checkpoint(tmp_path / "run.ckpt")
    bc.fit(X, y, checkpoint=checkpoint, var_names=genes, progress=False, **MEMORY)
    resume = lambda **kw: bc.fit(X, y, checkpoint=checkpoint, resume=True, progress=False, **{**MEMORY, **kw})  # noqa: E731
    with pytest.raises(ValueError, match=r"run\.ckpt.*other settings.*lr: 0\.01 in the checkpoint, 0\.001 now"):
        resume(var_names=genes, lr=1e-3)
    with pytest.raises(ValueError, match=r"n_hidden: 4 in the checkpoint, 8 now; epochs: 3 in the checkpoint, 5 now"):
        resume(var_names=genes, n_hidden=8, epochs=5)
    other = [*genes[:5], "Other", *genes[6:]]
    with pytest.raises(ValueError, match=r"genes \(var_names\): 8 in the checkpoint, 8 now, first difference at "):
        resume(var_names=other)
    with pytest.raises(ValueError, match=r"position 5: 'G5' in the checkpoint, 'Other' now"):
        resume(var_names=other)
    with pytest.raises(ValueError, match=r"training/validation split: other cells"):
        resume(var_names=genes, train_idx=np.arange(84), val_idx=np.arange(84, 120))
    with pytest.raises(ValueError, match=r"seed: 42 in the checkpoint, 7 now"):
        resume(var_names=genes, seed=7)
    # what may change: where it runs and what it shows
    bc.fit(X, y, checkpoint=checkpoint, resume=True, var_names=genes, device="cpu", progress=True, **MEMORY)


def test_bad_checkpoint_arguments_fail_before_training(tmp_path):
    X, y = _regression()
    with pytest.raises(TypeError, match=r"checkpoint must be a bilinear_core\.checkpoint\.Checkpoint.*'run\.ckpt'"):
        bc.fit(X, y, checkpoint="run.ckpt", **MEMORY)
    with pytest.raises(TypeError, match=r"\(resume needs one\)"):
        bc.fit(X, y, resume=True, **MEMORY)
    with pytest.raises(ValueError, match="resume must be True, False or 'auto', got 'yes'"):
        bc.fit(X, y, checkpoint=Checkpoint(tmp_path / "c.ckpt"), resume="yes", **MEMORY)
    with pytest.raises(ValueError, match="every must be a positive integer, got 0"):
        Checkpoint(tmp_path / "c.ckpt", every=0)
    with pytest.raises(TypeError, match="Checkpoint path must be a file path, got None"):
        Checkpoint(None)
    with pytest.raises(FileNotFoundError, match=r"No training checkpoint at .*none\.ckpt"):  # before the statistics
        fit_stream(tmp_path / "no_data.h5ad", "label", checkpoint=Checkpoint(tmp_path / "none.ckpt"), resume=True)
    with pytest.raises(ValueError, match="num_workers must be an integer of at least 0, got -1"):
        fit_stream(tmp_path / "no_data.h5ad", "label", num_workers=-1)
