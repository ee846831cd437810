"""Kernel-test fixtures (the `slow`/`gpu` skip rule lives in tests/conftest.py)."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # flce_cases.py, whatever pytest's import mode


@pytest.fixture(params=["torch", "triton"])
def backend(request, monkeypatch):
    """Forces a backend through HFPX_LOSS_BACKEND, as a user would; triton runs interpreted on CPU."""
    if request.param == "triton":
        pytest.importorskip("triton")
    monkeypatch.setenv("HFPX_LOSS_BACKEND", request.param)
    return request.param
