"""Eager-torch backend of the fused distillation loss: KL(teacher || student) at temperature T on labelled rows.

Only the labelled rows are projected, a chunk of rows at a time ([C, V] fp32 student and teacher logits, at most
CHUNK_ELEMENTS each), and the student's gradients are computed in the same pass (as Liger's fused linear losses
do): the forward holds grad_hidden for the labelled rows and an fp32 grad_weight / grad_bias accumulator, and the
backward only scales them by the incoming gradient, in place, and hands them over (so one backward per loss:
a second, with retain_graph, is refused). Four GEMMs per chunk (student and teacher logits, the two
gradient GEMMs), none recomputed; no [N, V] tensor ever exists. The loss must therefore be a sum over rows (or a
scalar multiple of it: 'mean'), which is what the functional API allows.

Per row, with s = z_student / T and t = z_teacher / T (fp32): loss = sum_v softmax(t) (log_softmax(t) -
log_softmax(s)), and d loss / d z_student = (softmax(s) - softmax(t)) / T. The teacher gets no gradient.
"""
import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 23  # elements of one [C, V] fp32 logits chunk (32 MiB); tests lower it


def _acc(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


class DistillRows(torch.autograd.Function):
    """Summed KL of the rows `idx`; gradients to student hidden, weight and bias (computed in forward)."""

    @staticmethod
    def forward(ctx, s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, idx, temperature):
        acc = _acc(s_hidden.dtype)
        vocab = s_weight.shape[0]
        g_hidden = torch.zeros_like(s_hidden)
        g_weight = torch.zeros(s_weight.shape, dtype=acc, device=s_weight.device)
        g_bias = None if s_bias is None else torch.zeros(vocab, dtype=acc, device=s_weight.device)
        total = torch.zeros((), dtype=acc, device=s_hidden.device)
        inv_t = 1.0 / temperature
        for rows in idx.split(max(1, CHUNK_ELEMENTS // vocab)):
            hs = s_hidden.index_select(0, rows)
            log_s = F.log_softmax(F.linear(hs, s_weight, s_bias).to(acc).mul_(inv_t), dim=-1)
            with torch.no_grad():
                log_t = F.log_softmax(F.linear(t_hidden.index_select(0, rows), t_weight, t_bias).to(acc)
                                      .mul_(inv_t), dim=-1)
            p_t = log_t.exp()
            total += torch.dot(p_t.view(-1), log_t.view(-1)) - torch.dot(p_t.view(-1), log_s.view(-1))
            grad = log_s.exp_().sub_(p_t).mul_(inv_t)  # d loss / d z_student, [C, V], in place of log_s
            g_hidden.index_copy_(0, rows, (grad.to(s_weight.dtype) @ s_weight).to(g_hidden.dtype))
            g_weight.addmm_(grad.t(), hs.to(acc))
            if g_bias is not None:
                g_bias += grad.sum(0)
        ctx.save_for_backward(g_hidden, g_weight, g_bias)
        ctx.has_bias, ctx.used = s_bias is not None, False
        ctx.weight_dtype = s_weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        if ctx.used:
            raise RuntimeError("fused_linear_distillation: a second backward through the same loss is not "
                               "supported (its gradients were computed in the forward and are handed over)")
        ctx.used = True
        g_hidden, g_weight, g_bias = ctx.saved_tensors
        scale = grad_total.to(g_weight.dtype)
        # scaled in place and handed over: the fp32 accumulators are the gradients themselves for fp32 inputs
        gh = g_hidden.mul_(scale.to(g_hidden.dtype))
        gw = g_weight.mul_(scale).to(ctx.weight_dtype)
        gb = g_bias.mul_(scale).to(ctx.weight_dtype) if ctx.has_bias else None
        return gh, gw, gb, None, None, None, None, None
