"""nn.Module wrapper around fused_linear_cross_entropy: holds the loss options, owns no parameters.

The head weight is passed in at call time (model.lm_head.weight, or the tied embedding) rather than
copied in, so tied embeddings and ZeRO-3/FSDP gathering keep working: read the weight inside the
wrapped module's forward, where the sharding framework has gathered it.
"""
import torch

from .functional import BACKENDS, fused_linear_cross_entropy
from .reference import REDUCTIONS


class FusedLinearCrossEntropy(torch.nn.Module):
    def __init__(self, ignore_index=-100, label_smoothing=0.0, z_loss=0.0, softcap=None, reduction="mean",
                 backend="auto"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.ignore_index, self.label_smoothing, self.z_loss = ignore_index, label_smoothing, z_loss
        self.softcap, self.reduction, self.backend = softcap, reduction, backend

    def forward(self, hidden, weight, labels, bias=None, num_items_in_batch=None):
        """hidden [..., H], weight [V, H], labels [...] -> loss (scalar, or [...] for reduction='none')."""
        return fused_linear_cross_entropy(
            hidden, weight, labels, bias, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
            z_loss=self.z_loss, softcap=self.softcap, reduction=self.reduction,
            num_items_in_batch=num_items_in_batch, backend=self.backend)

    def extra_repr(self):
        return (f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}, "
                f"z_loss={self.z_loss}, softcap={self.softcap}, reduction={self.reduction!r}, "
                f"backend={self.backend!r}")
