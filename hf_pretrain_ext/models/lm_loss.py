"""The loss path shared by hfpx-bert, hfpx-gpt, hfpx-bart and hfpx-t5: LM head + cross-entropy on labelled rows.

Hidden states of the positions that have a label are gathered first ([n_labelled, H]), then projected and scored
through hf_pretrain_ext.kernels.fused_linear_cross_entropy (config.use_fused_loss) or an eager projection. The loss
is a sum over labelled tokens divided by `num_items_in_batch` when the Trainer passes it (gradient accumulation
and DDP then give the per-token mean of the global batch), else by this batch's labelled count; a batch without
any label gives 0 with a gradient path, never NaN.

`labelled_rows_loss` is the gather (`labelled_rows`) then the head and loss (`head_loss`); hfpx-bert calls the two
itself with its head transform in between (and, with sparse_prediction off, `head_loss` on every row, the
unlabelled ones ignored).
"""
import torch
from torch import nn

from ..constants import IGNORE_INDEX
from ..kernels import fused_linear_cross_entropy



def labelled_rows(hidden, labels):
    """(hidden rows [n_labelled, H], their targets [n_labelled]) of the positions of labels [B, T] that have a label
    (row-major order); hidden: [B, T, H]."""
    flat_labels = labels.reshape(-1)
    rows = (flat_labels != IGNORE_INDEX).nonzero().squeeze(-1)  # [n_labelled]
    return hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows), flat_labels.index_select(0, rows)


def head_loss(config, hidden, weight, targets, bias=None, num_items_in_batch=None, training=True):
    """LM head + cross-entropy of rows hidden [N, H] against targets [N] (IGNORE_INDEX rows score nothing).

    config.use_fused_loss (default on): hf_pretrain_ext.kernels.fused_linear_cross_entropy with
    config.loss_backend; else an eager projection and a float32 cross-entropy. Either way a sum over the labelled
    rows divided by num_items_in_batch, or by their count when it is None (at least 1). Returns (loss, logits):
    logits [N, V] when not training, None when training with the fused loss (never materialised)."""
    logits = None
    if getattr(config, "use_fused_loss", True):
        loss = fused_linear_cross_entropy(hidden, weight, targets, bias, num_items_in_batch=num_items_in_batch,
                                          backend=getattr(config, "loss_backend", "auto"))
        if not training:
            logits = nn.functional.linear(hidden, weight, bias)
    else:
        logits = nn.functional.linear(hidden, weight, bias)
        loss = nn.functional.cross_entropy(logits.float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")
        denom = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE_INDEX).sum()
        loss = loss / torch.as_tensor(denom, device=loss.device).clamp(min=1)
    return loss, logits


def labelled_rows_loss(config, hidden, weight, labels, bias=None, num_items_in_batch=None, training=True,
                       distill=None):
    """hidden: [B, T, H] aligned with labels: [B, T] (already shifted for causal LMs).

    Returns (loss, logits, parts): logits are [n_labelled, V] in row-major order of the labelled positions when not
    training, None when training with the fused loss (never materialised); with a teacher's `distill` target
    (models/distill_loss.py) the loss is the distilled one and parts holds `lm_loss`, `distill_loss` (and
    `cosine_loss`), else parts is empty."""
    rows, targets = labelled_rows(hidden, labels)
    loss, logits = head_loss(config, rows, weight, targets, bias, num_items_in_batch, training)
    if distill is None:
        return loss, logits, {}
    from .distill_loss import with_distillation  # it imports labelled_rows from here
    loss, parts = with_distillation(loss, rows, weight, bias, targets, hidden, distill, num_items_in_batch,
                                    "lm_loss")
    return loss, logits, parts
