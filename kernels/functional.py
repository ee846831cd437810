"""Functional API: argument checks, backend choice, the torch.library op and the reductions.

The op `hf_pretrain_ext::flce_rows` maps flattened rows to per-row (loss, lse), both [N] with static
shapes, so torch.compile(fullgraph=True) traces a model that uses it without graph breaks: the
data-dependent gather of labelled rows happens inside the opaque op (register_fake only has to give
[N]-shaped outputs). Its backward is a second op, so compiled backward graphs need no Python fallback.
Reductions are plain torch on the [N] rows: "mean" divides by the labelled-row count or by
num_items_in_batch (gradient accumulation, Liger #802); no row labelled gives a zero loss whose
gradients are zeros, not None (DDP), and never NaN (torchtune #2341).
"""
import importlib.util
import os
from typing import Optional

import torch
from torch import Tensor

from .ops import flce_torch
from .reference import REDUCTIONS

HAS_TRITON = importlib.util.find_spec("triton") is not None
BACKENDS = ("auto", "torch", "triton")
BACKEND_ENV = "HFPX_LOSS_BACKEND"  # torch|triton: overrides the `backend` argument everywhere


def resolve_backend(backend, device):
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced:
        if forced not in ("torch", "triton"):
            raise ValueError(f"{BACKEND_ENV} must be 'torch' or 'triton', got {forced!r}")
        backend = forced
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "triton" if HAS_TRITON and device.type == "cuda" else "torch"
    if backend == "triton" and not HAS_TRITON:
        raise RuntimeError("backend='triton' requested but triton is not installed")
    return backend


def _backend_impl(backend, dtype):
    if backend == "triton" and dtype != torch.float64:  # fp64 stays on the torch path
        from .ops import flce_triton  # imported lazily: importing triton is slow and optional
        return flce_triton.flce_forward_triton, flce_triton.flce_backward_triton
    return flce_torch.flce_forward_torch, flce_torch.flce_backward_torch


@torch.library.custom_op("hf_pretrain_ext::flce_rows", mutates_args=())
def flce_rows(hidden: Tensor, weight: Tensor, bias: Optional[Tensor], labels: Tensor, ignore_index: int,
              label_smoothing: float, z_loss: float, softcap: Optional[float], backend: str) -> tuple[Tensor, Tensor]:
    """(loss, lse) per row, [N] each, 0 on ignored rows; hidden [N, H], weight [V, H], labels [N]."""
    forward, _ = _backend_impl(backend, hidden.dtype)
    return forward(hidden, weight, bias, labels, ignore_index, label_smoothing, z_loss, softcap)


@flce_rows.register_fake
def _flce_rows_fake(hidden, weight, bias, labels, ignore_index, label_smoothing, z_loss, softcap, backend):
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    return hidden.new_empty(labels.shape, dtype=acc), hidden.new_empty(labels.shape, dtype=acc)


@torch.library.custom_op("hf_pretrain_ext::flce_rows_backward", mutates_args=())
def flce_rows_backward(grad_loss: Tensor, grad_lse: Optional[Tensor], hidden: Tensor, weight: Tensor,
                       bias: Optional[Tensor], labels: Tensor, lse: Tensor, ignore_index: int,
                       label_smoothing: float, z_loss: float, softcap: Optional[float],
                       backend: str) -> tuple[Tensor, Tensor, Tensor]:
    """(grad_hidden, grad_weight, grad_bias); grad_bias is an empty tensor when there is no bias."""
    _, backward = _backend_impl(backend, hidden.dtype)
    gh, gw, gb = backward(grad_loss, grad_lse, hidden, weight, bias, labels, lse, ignore_index,
                          label_smoothing, z_loss, softcap)
    return gh, gw, hidden.new_empty(0) if gb is None else gb


@flce_rows_backward.register_fake
def _flce_rows_backward_fake(grad_loss, grad_lse, hidden, weight, bias, labels, lse, *options):
    # contiguous, as both backends return them (empty_like would keep the strides of a transposed view, and
    # Inductor then rejects the real kernel's output: "incorrect fake kernel")
    gb = hidden.new_empty(0) if bias is None else bias.new_empty(bias.shape)
    return hidden.new_empty(hidden.shape), weight.new_empty(weight.shape), gb


def _setup_context(ctx, inputs, output):
    hidden, weight, bias, labels, *options = inputs
    ctx.save_for_backward(hidden, weight, bias, labels, output[1])
    ctx.options = options


def _backward(ctx, grad_loss, grad_lse):
    hidden, weight, bias, labels, lse = ctx.saved_tensors
    if grad_loss is None:
        grad_loss = torch.zeros_like(lse)
    gh, gw, gb = flce_rows_backward(grad_loss.contiguous(), grad_lse, hidden, weight, bias, labels, lse,
                                    *ctx.options)
    return gh, gw, (None if bias is None else gb), None, None, None, None, None, None


flce_rows.register_autograd(_backward, setup_context=_setup_context)


def fused_linear_cross_entropy(hidden, weight, labels, bias=None, *, ignore_index=-100, label_smoothing=0.0,
                               z_loss=0.0, softcap=None, reduction="mean", num_items_in_batch=None,
                               backend="auto"):
    """Cross-entropy of F.linear(hidden, weight, bias) against labels without materialising the logits.

    hidden [..., H], labels [...] (ignore_index marks rows without a target), weight [V, H], bias [V].
    Returns a float32 scalar (float64 for float64 input), or per-row losses shaped like labels for
    reduction="none" (0 where ignored). Semantics are those of reference.linear_cross_entropy_reference.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if hidden.shape[:-1] != labels.shape:
        raise ValueError(f"labels {tuple(labels.shape)} must match hidden {tuple(hidden.shape)} without H")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight must be [V, {hidden.shape[-1]}], got {tuple(weight.shape)}")
    if torch.is_autocast_enabled(hidden.device.type):  # like F.linear under autocast (Trainer --bf16/--fp16)
        dtype = torch.get_autocast_dtype(hidden.device.type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    if weight.dtype != hidden.dtype or (bias is not None and bias.dtype != hidden.dtype):
        raise ValueError("hidden, weight and bias must share one dtype")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if softcap is not None and softcap <= 0:
        raise ValueError(f"softcap must be positive or None, got {softcap}")
    backend = resolve_backend(backend, hidden.device)
    if backend == "triton" and hidden.dtype == torch.float32 and hidden.is_cuda:
        # fp32 on a GPU runs the torch backend (cuBLAS GEMMs): the fp32 Triton configs spill registers or exceed
        # shared memory (docs/kernels.md). Under TRITON_INTERPRET=1 on CPU fp32 still runs the Triton kernels.
        backend = "torch"
    rows_hidden = hidden.reshape(-1, hidden.shape[-1])  # [N, H], a view when possible
    rows_labels = labels.reshape(-1).to(torch.long).contiguous()  # [N]; int32 labels are fine too
    check_labels(rows_labels, weight.shape[0], int(ignore_index))
    bias = None if bias is None else bias.contiguous()
    idx = flce_torch.cached_rows_index(weight, rows_labels, ignore_index, softcap) if backend == "torch" else None
    if idx is not None:
        loss, _ = flce_torch.CachedRows.apply(rows_hidden, weight, bias, rows_labels, idx, int(ignore_index),
                                              float(label_smoothing), float(z_loss))
    else:
        loss, _ = flce_rows(rows_hidden, weight, bias, rows_labels, int(ignore_index), float(label_smoothing),
                            float(z_loss), None if softcap is None else float(softcap), backend)
    if reduction == "none":
        return loss.view(labels.shape)
    total = loss.sum()
    if reduction == "sum":
        return total
    if num_items_in_batch is None:
        denom = (rows_labels != ignore_index).sum()
    elif isinstance(num_items_in_batch, Tensor):
        denom = num_items_in_batch.to(device=total.device)
    else:
        denom = torch.tensor(num_items_in_batch, device=total.device)
    return total / denom.clamp(min=1)


def check_labels(labels, vocab_size, ignore_index):
    """Every label is in [0, vocab_size) or ignore_index, for both backends alike (an out-of-range label would
    otherwise give a finite, wrong loss in the Triton kernels). On CPU (eager) the error names the bad value; on an
    accelerator, or while compiling, the check is `torch._assert_async`: no host sync, the message names the
    bounds."""
    bad = ((labels < 0) | (labels >= vocab_size)) & (labels != ignore_index)
    message = f"labels must be in [0, {vocab_size}) (the vocabulary size) or {ignore_index} (ignore_index)"
    if labels.device.type == "cpu" and not torch.compiler.is_compiling():
        if bool(bad.any()):
            raise ValueError(f"{message}; got {int(labels[bad][0])}")
    else:
        torch._assert_async(~bad.any(), message)
