"""Eager-torch backend: only labelled rows are projected; cached when they fit, else a chunk of rows at a time.

Cached (`CachedRows`, eager mode, no softcap, the labelled rows' logits within CACHE_ELEMENTS): forward computes
the labelled rows' logits in one GEMM and turns that buffer in place into their softmax (ATen's fused softmax
kernel writing over its input; lse = max logit - log(max probability), and the largest probability is at least
1 / V, so the log never underflows), which backward turns in place into the logits' gradient before the two
gradient GEMMs: three GEMMs in all, as a hand-written gather + F.linear + F.cross_entropy does, where recomputing
costs a fourth (on CPU the GEMMs are nearly all of the time). Memory: one [n_labelled, V] fp32 buffer from
forward to backward, against eager's logits, log-softmax and gradient. On CPU that buffer and grad_weight come
from workspace.py (reused while nothing else references them: no page faults of fresh memory on every call).
A second backward through the same graph (retain_graph) finds the buffer used and recomputes. It stores
probabilities, not gradients, so any upstream gradient is exact. Under torch.compile the op below is used (it
cannot carry a data-dependent buffer between forward and backward).

Chunked (the torch.library op's implementation):

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

from . import grad_coefficients, row_loss, workspace

# Elements of one [C, V] fp32 logits chunk (64 MiB); tests lower it to force many chunks.
CHUNK_ELEMENTS = 1 << 24
# Largest [n_labelled, V] logits buffer kept from forward to backward (1 GiB fp32); 0 turns caching off.
CACHE_ELEMENTS = 1 << 28


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


def target_terms(g, targets, cy, cu):
    """dL/dz of a block of rows from g = softmax * cp [C, V] (in place): minus cy at each row's target, minus cu
    everywhere (label smoothing; None when it is zero). See grad_coefficients."""
    g[torch.arange(len(targets), device=g.device), targets] -= cy
    if cu is not None:
        g.sub_(cu[:, None])
    return g


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
        g = target_terms(z.sub_(lse[rows, None]).exp_().mul_(cp[rows, None]), labels[rows], cy[rows], cu[rows])
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


def cached_rows_index(weight, labels, ignore_index, softcap):
    """The labelled rows' indices [n] when the cached path applies (eager mode, no softcap, their logits within
    the budget), else None. Its one host sync (nonzero) is the one the chunked path makes too; CachedRows takes
    the indices, so the cached path syncs once."""
    if softcap is not None or torch.compiler.is_compiling() or CACHE_ELEMENTS <= 0:
        return None
    idx = (labels != ignore_index).nonzero().squeeze(1)
    return idx if len(idx) * weight.shape[0] <= CACHE_ELEMENTS else None


def softmax_in_place(z):
    """z [n, V] becomes its softmax along V; returns each row's logsumexp. ATen's fused softmax writes over its
    input (one pass, vectorised); should a torch refuse the aliasing, four plain in-place passes do it."""
    top = z.amax(-1)
    try:
        torch.ops.aten._softmax.out(z, -1, False, out=z)
    except RuntimeError:
        z.sub_(top[:, None]).exp_()
        z.div_(z.sum(-1, keepdim=True))
    return top - z.amax(-1).log()  # the largest probability is >= 1 / V: no underflow


class CachedRows(torch.autograd.Function):
    """(loss [N], lse [N]) like the op, keeping the labelled rows' softmax for backward (module docstring)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, idx, ignore_index, label_smoothing, z_loss):
        """idx: the labelled rows, from cached_rows_index."""
        acc = _acc_dtype(hidden)
        keep = labels != ignore_index
        rows = hidden.index_select(0, idx)
        z = workspace.take("softmax", (len(idx), weight.shape[0]), acc, hidden.device)  # [n, V]
        if weight.dtype == acc:
            torch.mm(rows, weight.t(), out=z) if bias is None else torch.addmm(bias, rows, weight.t(), out=z)
        else:
            z.copy_(F.linear(rows, weight, bias))
        full = torch.zeros(labels.shape, dtype=acc, device=hidden.device)
        target = full.index_put((idx,), z.gather(1, labels[idx, None]).squeeze(1))
        logit_sum = full.index_put((idx,), z.sum(-1)) if label_smoothing else full
        lse = full.index_put((idx,), softmax_in_place(z))
        ctx.save_for_backward(hidden, weight, bias, labels, idx, rows, lse)
        ctx.options = (ignore_index, label_smoothing, z_loss)
        ctx.buffer = z  # not a saved tensor: backward turns it into the gradient in place, then drops it
        return row_loss(lse, target, logit_sum, keep, label_smoothing, z_loss, weight.shape[0])

    @staticmethod
    def backward(ctx, grad_loss, grad_lse):
        hidden, weight, bias, labels, idx, rows, lse = ctx.saved_tensors
        ignore_index, label_smoothing, z_loss = ctx.options
        p, ctx.buffer = ctx.buffer, None
        if p is None:  # a second backward (retain_graph): the buffer became the first one's gradient; recompute
            gh, gw, gb = flce_backward_torch(grad_loss, grad_lse, hidden, weight, bias, labels, lse, ignore_index,
                                             label_smoothing, z_loss, None)
            return gh, gw, gb, None, None, None, None, None
        acc = p.dtype
        keep = labels != ignore_index
        cp, cy, cu = grad_coefficients(grad_loss.to(acc), None if grad_lse is None else grad_lse.to(acc),
                                       lse, keep, label_smoothing, z_loss, weight.shape[0])
        g = target_terms(p.mul_(cp[idx, None]), labels[idx], cy[idx], cu[idx] if label_smoothing else None)
        grad_hidden = torch.zeros_like(hidden, memory_format=torch.contiguous_format)
        grad_hidden[idx] = (g.to(weight.dtype) @ weight).to(hidden.dtype)
        if weight.dtype == acc:  # the caller's gradient, in a pooled buffer only while nothing else holds it
            grad_weight = torch.mm(g.t(), rows, out=workspace.take("grad_weight", weight.shape, acc, weight.device,
                                                                   exact=True))
        else:
            grad_weight = (g.t() @ rows.to(acc)).to(weight.dtype)
        grad_bias = None if bias is None else g.sum(0).to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None, None, None
