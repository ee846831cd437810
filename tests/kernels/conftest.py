"""Kernel-test fixtures (the `slow`/`gpu` skip rule lives in tests/conftest.py)."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # flce_cases.py, whatever pytest's import mode


@pytest.fixture(params=["torch", "torch-chunked", "triton"])
def backend(request, monkeypatch):
    """Forces a backend through HFPX_LOSS_BACKEND, as a user would; triton runs interpreted on CPU. "torch" is the
    torch backend as it runs in eager mode (the labelled rows' softmax cached from forward to backward when it
    fits), "torch-chunked" the same backend with caching off (chunks, logits recomputed in backward: the path of
    torch.compile and of large batches); both return the backend name "torch"."""
    if request.param == "triton":
        pytest.importorskip("triton")
    if request.param == "torch-chunked":
        from hf_pretrain_ext.kernels.ops import flce_torch
        monkeypatch.setattr(flce_torch, "CACHE_ELEMENTS", 0)
    name = request.param.split("-")[0]
    monkeypatch.setenv("HFPX_LOSS_BACKEND", name)
    return name
