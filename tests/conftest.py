"""Test-wide setup. Must run before anything imports triton: without a CUDA GPU, Triton kernels run under
its numpy interpreter (TRITON_INTERPRET=1), which triton reads when kernels are defined and launched.
Markers: `slow` tests run only with HFPX_SLOW=1, `gpu` tests only where CUDA is present. The Hub is off."""
import os

import pytest
import torch  # importing torch does not import triton

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")  # no test may reach the network


def pytest_collection_modifyitems(config, items):
    slow = pytest.mark.skip(reason="slow: set HFPX_SLOW=1 to run")
    gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and os.environ.get("HFPX_SLOW") != "1":
            item.add_marker(slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(gpu)
