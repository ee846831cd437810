"""Eager torch reference for the fused LM-head loss: the spec that tests and benchmarks both import.

It materialises all [N, V] logits on every row, in fp32 (fp64 when given fp64), so it is slow and memory
hungry on purpose: nothing clever can hide a semantic difference. Semantics: label smoothing exactly as
torch.nn.functional.cross_entropy(label_smoothing=...), z-loss adds z_loss * logsumexp(logits)^2 per
labelled row, softcap applies softcap * tanh(logits / softcap) before the softmax (Gemma style).
"""
import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def linear_cross_entropy_reference(hidden, weight, labels, bias=None, *, ignore_index=-100, label_smoothing=0.0,
                                   z_loss=0.0, softcap=None, reduction="mean", num_items_in_batch=None,
                                   backend=None):
    """Loss of F.linear(hidden, weight, bias) against labels; `backend` is accepted and ignored."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    compute_dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    h = hidden.reshape(-1, hidden.shape[-1]).to(compute_dtype)  # [N, H]
    y = labels.reshape(-1)  # [N]
    logits = F.linear(h, weight.to(compute_dtype), None if bias is None else bias.to(compute_dtype))  # [N, V]
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    keep = y != ignore_index
    rows = F.cross_entropy(logits, y, ignore_index=ignore_index, reduction="none",
                           label_smoothing=label_smoothing)  # [N], 0 where ignored
    if z_loss:
        rows = rows + torch.where(keep, z_loss * torch.logsumexp(logits, -1) ** 2, 0.0)
    if reduction == "none":
        return rows.view(labels.shape)
    total = rows.sum()
    if reduction == "sum":
        return total
    denom = keep.sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch, device=total.device)
    return total / denom.clamp(min=1)
