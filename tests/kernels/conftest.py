"""Markers for the kernel tests: `slow` runs only with HFPX_SLOW=1, `gpu` only where CUDA is present."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # flce_cases.py, whatever pytest's import mode


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    slow = pytest.mark.skip(reason="slow: set HFPX_SLOW=1 to run")
    gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if not str(item.fspath).startswith(here):
            continue
        if "slow" in item.keywords and os.environ.get("HFPX_SLOW") != "1":
            item.add_marker(slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(gpu)


@pytest.fixture(params=["torch", "triton"])
def backend(request, monkeypatch):
    """Forces a backend through HFPX_LOSS_BACKEND, as a user would; triton runs interpreted on CPU."""
    if request.param == "triton":
        pytest.importorskip("triton")
    monkeypatch.setenv("HFPX_LOSS_BACKEND", request.param)
    return request.param
