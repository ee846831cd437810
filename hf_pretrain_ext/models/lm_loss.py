"""The loss path shared by hfpx-gpt, hfpx-bart and hfpx-t5: LM head + cross-entropy on labelled rows only.

Hidden states of the positions that have a label are gathered first ([n_labelled, H]), then projected and scored
through hf_pretrain_ext.kernels.fused_linear_cross_entropy (config.use_fused_loss) or an eager projection. The loss
is a sum over labelled tokens divided by `num_items_in_batch` when the Trainer passes it (gradient accumulation
and DDP then give the per-token mean of the global batch), else by this batch's labelled count; a batch without
any label gives 0 with a gradient path, never NaN.
"""
import torch
from torch import nn

from ..kernels import fused_linear_cross_entropy

IGNORE_INDEX = -100


def labelled_rows_loss(config, hidden, weight, labels, bias=None, num_items_in_batch=None, training=True):
    """hidden: [B, T, H] aligned with labels: [B, T] (already shifted for causal LMs).

    Returns (loss, logits): logits are [n_labelled, V] in row-major order of the labelled positions when not
    training, None when training with the fused loss (never materialised)."""
    flat_labels = labels.reshape(-1)
    rows = (flat_labels != IGNORE_INDEX).nonzero().squeeze(-1)  # [n_labelled]
    hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows)  # [n_labelled, H]
    targets = flat_labels.index_select(0, rows)
    logits = None
    if getattr(config, "use_fused_loss", True):
        loss = fused_linear_cross_entropy(hidden, weight, targets, bias, num_items_in_batch=num_items_in_batch,
                                          backend=getattr(config, "loss_backend", "auto"))
        if not training:
            logits = nn.functional.linear(hidden, weight, bias)
    else:
        logits = nn.functional.linear(hidden, weight, bias)
        loss = nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
        denom = num_items_in_batch if num_items_in_batch is not None else targets.numel()
        loss = loss / torch.as_tensor(denom, device=loss.device).clamp(min=1)
    return loss, logits
