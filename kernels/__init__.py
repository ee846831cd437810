"""Fused masked-gather + LM-head projection + cross-entropy (placeholder: eager implementation).

PLACEHOLDER, replaced by the kernels work (issue 3): the API below is final, the body is plain eager torch.
"""
import torch
import torch.nn.functional as F


def fused_linear_cross_entropy(hidden, weight, labels, bias=None, *, ignore_index=-100, label_smoothing=0.0,
                               z_loss=0.0, softcap=None, reduction="mean", num_items_in_batch=None,
                               backend="auto"):
    h = hidden.reshape(-1, hidden.shape[-1])
    y = labels.reshape(-1)
    keep = y != ignore_index
    logits = F.linear(h[keep], weight, bias).float()
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    rows = F.cross_entropy(logits, y[keep], reduction="none", label_smoothing=label_smoothing)
    if z_loss:
        rows = rows + z_loss * torch.logsumexp(logits, -1) ** 2
    if reduction == "none":
        out = torch.zeros(y.shape, dtype=rows.dtype, device=rows.device).masked_scatter(keep, rows)
        return out.view(labels.shape)
    total = rows.sum() + 0.0 * (h.sum() + weight.sum())  # keeps a gradient path when no row is labelled
    if reduction == "sum":
        return total
    denom = num_items_in_batch if num_items_in_batch is not None else keep.sum().clamp(min=1)
    return total / denom
