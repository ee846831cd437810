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


def linear_distillation_reference(student_hidden, student_weight, teacher_hidden, teacher_weight, labels,
                                  student_bias=None, teacher_bias=None, *, temperature=1.0, ignore_index=-100,
                                  reduction="mean", num_items_in_batch=None, backend=None):
    """KL(teacher || student) at `temperature` on labelled rows, from both models' full [N, V] logits (fp32, fp64
    for fp64 input): sum_v p_t (log p_t - log p_s) per row, F.kl_div with log targets; no gradient to the
    teacher. The spec of kernels.distill.fused_linear_distillation."""
    compute = torch.float64 if student_hidden.dtype == torch.float64 else torch.float32

    def logits(h, w, b):
        return F.linear(h.reshape(-1, h.shape[-1]).to(compute), w.to(compute), None if b is None else b.to(compute))

    keep = labels.reshape(-1) != ignore_index
    log_s = F.log_softmax(logits(student_hidden, student_weight, student_bias) / temperature, -1)[keep]
    with torch.no_grad():
        log_t = F.log_softmax(logits(teacher_hidden, teacher_weight, teacher_bias) / temperature, -1)[keep]
    total = F.kl_div(log_s, log_t, log_target=True, reduction="none").sum()
    if reduction == "sum":
        return total
    denom = keep.sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch, device=total.device)
    return total / denom.clamp(min=1)
