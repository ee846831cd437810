"""Fused masked-gather + LM-head projection + cross-entropy for pretraining heads (hf_pretrain_ext.kernels).

Only rows with a label (e.g. the 15% masked tokens of MLM) go through the [V, H] GEMM, and the [N, V]
logits never exist in full: the Triton backend (CUDA) keeps them in registers, the torch backend (CPU,
fallback) holds one chunk at a time. See docs/kernels.md for the design and its limits.

    from hf_pretrain_ext.kernels import fused_linear_cross_entropy
    loss = fused_linear_cross_entropy(hidden, model.lm_head.weight, labels, num_items_in_batch=n)

backend="auto" picks triton on CUDA when triton is importable and torch otherwise; the environment
variable HFPX_LOSS_BACKEND=torch|triton forces one.

`fused_linear_distillation` (distill.py) is the distillation counterpart: KL(teacher || student) at temperature
T on the labelled rows, from both models' hidden states and heads, chunked (torch backend only so far).
"""
from .distill import fused_linear_distillation
from .functional import BACKEND_ENV, HAS_TRITON, fused_linear_cross_entropy, resolve_backend
from .ops.workspace import release_workspace, workspace_bytes
from .module import FusedLinearCrossEntropy
from .reference import linear_cross_entropy_reference, linear_distillation_reference

__all__ = ["fused_linear_cross_entropy", "FusedLinearCrossEntropy", "linear_cross_entropy_reference",
           "fused_linear_distillation", "linear_distillation_reference", "resolve_backend", "HAS_TRITON",
           "BACKEND_ENV", "release_workspace", "workspace_bytes"]
