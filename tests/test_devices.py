import numpy as np
import pandas as pd
import pytest
import torch

import bilinear_core as bc
from bilinear_core.devices import autocast, model_device, resolve_device


def _data(n=80, g=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, g)).astype(np.float32)
    return X, np.where(X[:, 0] * X[:, 1] > 0, "same", "diff")


def test_explicit_cpu_equals_default_bit_for_bit():
    X, labels = _data()
    kwargs = dict(n_hidden=4, epochs=3, batch_size=16, lr=1e-2, weight_decay=0.1, progress=False)
    default, cpu = bc.fit(X, labels, **kwargs), bc.fit(X, labels, device="cpu", **kwargs)
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("'auto' is not the CPU on this machine")
    for a, b in zip(default.model.parameters(), cpu.model.parameters(), strict=True):
        assert torch.equal(a, b)
    pd.testing.assert_frame_equal(default.history, cpu.history, check_exact=True)
    assert cpu.settings["device"] == "cpu"
    assert cpu.settings["mixed_precision"] is False


def test_unknown_device_is_a_value_error():
    X, labels = _data()
    with pytest.raises(ValueError, match="device must be one of"):
        bc.fit(X, labels, device="tpu", epochs=1, progress=False)
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device(3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_when_unavailable_says_so():
    X, labels = _data()
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        bc.fit(X, labels, device="cuda", epochs=1, progress=False)


def test_mixed_precision_trains_and_interpretation_reads_float64():
    X, labels = _data(n=200)
    result = bc.fit(X, labels, n_hidden=4, epochs=20, batch_size=16, lr=1e-2, mixed_precision=True, progress=False)
    assert result.settings["mixed_precision"] is True
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
    assert result.model.left.weight.dtype == torch.float32  # autocast keeps float32 master weights
    assert result.predict(X).dtype == np.float32
    modules = bc.eigendecompose(result.model, result.output_names, [f"g{i}" for i in range(6)])
    assert modules.eigenvalues.dtype == np.float64


def test_autocast_disabled_is_a_no_op_and_model_device():
    model = bc.BilinearMLP(5, 3, 2)
    assert model_device(model) == torch.device("cpu")
    x = torch.ones(2, 5)
    with autocast(torch.device("cpu"), enabled=False):
        assert model(x).dtype == torch.float32
    with autocast(torch.device("cpu"), enabled=True):
        assert model(x).dtype == torch.bfloat16
