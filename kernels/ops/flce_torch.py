"""Chunked eager-torch backend: only labelled rows are projected, a chunk of rows at a time.

At most one chunk of logits ([C, V] fp32, plus its softcap derivative when softcap is set) is alive at
any time, in forward and in backward; backward recomputes each chunk's logits and turns them into
grad_hidden rows and an fp32 grad_weight accumulator (fp32 whatever the input dtype: bf16 accumulation
across chunks diverges, Liger #512/#827).

Host synchronisation: `keep.nonzero()` syncs once per call (forward and backward each), because the
number of labelled rows decides how many chunks to run and eager torch has no dynamic shapes; the Triton
backend avoids it. This backend also serves fp64 inputs and CPU runs.
"""
import torch
import torch.nn.functional as F

from . import grad_coefficients, row_loss

# Elements of one [C, V] fp32 logits chunk (64 MiB); tests lower it to force many chunks.
CHUNK_ELEMENTS = 1 << 24


def _chunks(idx, vocab_size):
    rows = max(1, CHUNK_ELEMENTS // vocab_size)
    return idx.split(rows)


def _logits(hidden, weight, bias, rows, softcap, acc_dtype):
    """Logits of the chosen rows, [C, V] in acc_dtype; the GEMM runs in the input dtype like eager HF."""
    z = F.linear(hidden.index_select(0, rows), weight, bias).to(acc_dtype)
    if softcap is not None:
        z = torch.tanh(z.div_(softcap)).mul_(softcap)
    return z


def _acc_dtype(hidden):
    return torch.float64 if hidden.dtype == torch.float64 else torch.float32


def flce_forward_torch(hidden, weight, bias, labels, ignore_index, label_smoothing, z_loss, softcap):
    acc = _acc_dtype(hidden)
    keep = labels != ignore_index
    target = torch.zeros(labels.shape, dtype=acc, device=hidden.device)
    logit_sum, lse = torch.zeros_like(target), torch.zeros_like(target)
    idx = keep.nonzero().squeeze(1)  # host sync: see module docstring
    for rows in _chunks(idx, weight.shape[0]):
        z = _logits(hidden, weight, bias, rows, softcap, acc)  # [C, V]
        lse[rows] = torch.logsumexp(z, -1)
        target[rows] = z.gather(1, labels[rows, None]).squeeze(1)
        if label_smoothing:
            logit_sum[rows] = z.sum(-1)
        del z
    return row_loss(lse, target, logit_sum, keep, label_smoothing, z_loss, weight.shape[0])


def flce_backward_torch(grad_loss, grad_lse, hidden, weight, bias, labels, lse, ignore_index, label_smoothing,
                        z_loss, softcap):
    acc = _acc_dtype(hidden)
    keep = labels != ignore_index
    cp, cy, cu = grad_coefficients(grad_loss.to(acc), None if grad_lse is None else grad_lse.to(acc),
                                   lse.to(acc), keep, label_smoothing, z_loss, weight.shape[0])
    grad_hidden = torch.zeros_like(hidden, memory_format=torch.contiguous_format)  # [N, H]
    grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device)  # [V, H] accumulator
    grad_bias = None if bias is None else torch.zeros(bias.shape, dtype=acc, device=bias.device)
    idx = keep.nonzero().squeeze(1)  # host sync: see module docstring
    for rows in _chunks(idx, weight.shape[0]):
        z = _logits(hidden, weight, bias, rows, softcap, acc)  # [C, V]
        cap_grad = None if softcap is None else 1.0 - (z / softcap) ** 2  # d softcap(x) / dx, [C, V]
        g = z.sub_(lse[rows, None]).exp_().mul_(cp[rows, None])  # in place: z becomes dL/dz
        g[torch.arange(len(rows), device=g.device), labels[rows]] -= cy[rows]
        g.sub_(cu[rows, None])
        if cap_grad is not None:
            g.mul_(cap_grad)
            del cap_grad
        grad_hidden[rows] = (g.to(weight.dtype) @ weight).to(hidden.dtype)
        grad_weight.addmm_(g.t(), hidden.index_select(0, rows).to(acc))  # fp32 GEMM, fp32 accumulation
        if grad_bias is not None:
            grad_bias += g.sum(0)
        del g
    return (grad_hidden, grad_weight.to(weight.dtype),
            None if grad_bias is None else grad_bias.to(bias.dtype))
