"""Test-wide setup. Must run before anything imports triton: without a CUDA GPU, Triton kernels run under
its numpy interpreter (TRITON_INTERPRET=1), which triton reads when kernels are defined and launched."""
import os

import torch  # importing torch does not import triton

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
