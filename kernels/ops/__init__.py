"""Kernels of the fused LM-head loss, one module per backend, sharing the per-row math below.

Both backends implement the same pair over flattened rows (N rows, H hidden, V vocab):
  forward(hidden [N, H], weight [V, H], bias [V] | None, labels [N], ...) -> (loss [N], lse [N]), fp32
  (fp64 for fp64 input), both 0 on ignored rows; and backward(grad_loss [N], grad_lse [N], ..., lse [N])
  -> (grad_hidden [N, H], grad_weight [V, H], grad_bias [V] | None) in the input dtypes.
The op's backward recomputes the logits rather than storing them, so it is correct for any upstream gradient
(reduction="none" with per-token weights, Liger #968) and nothing of size [N, V] outlives forward. In eager
mode the torch backend may instead keep the labelled rows' softmax for backward when it fits a budget
(flce_torch.CachedRows: still correct for any upstream gradient, since it stores probabilities, not gradients).
"""
import torch


def grad_coefficients(grad_loss, grad_lse, lse, keep, label_smoothing, z_loss, vocab_size):
    """Per-row coefficients of d(loss)/d(logits) = cp * softmax - cy * onehot(y) - cu, each [N] fp32.

    loss = lse - (1 - eps) * z_y - eps / V * sum(z) + z_loss * lse^2, hence
    d/dz = p * (g * (1 + 2 z_loss lse) + g_lse) - g (1 - eps) onehot - g eps / V.
    """
    g = torch.where(keep, grad_loss, 0.0)
    cp = g * (1.0 + 2.0 * z_loss * lse)
    if grad_lse is not None:
        cp = cp + torch.where(keep, grad_lse, 0.0)
    return cp, g * (1.0 - label_smoothing), g * (label_smoothing / vocab_size)


def row_loss(lse, target_logit, logit_sum, keep, label_smoothing, z_loss, vocab_size):
    """loss [N] from lse, the target logit and the sum of logits, 0 on ignored rows."""
    loss = lse - (1.0 - label_smoothing) * target_logit
    if label_smoothing:
        loss = loss - (label_smoothing / vocab_size) * logit_sum
    if z_loss:
        loss = loss + z_loss * lse * lse
    return torch.where(keep, loss, 0.0), torch.where(keep, lse, 0.0)
