"""Triton backend of the fused distillation loss: KL(teacher || student) at temperature T on labelled rows, with
neither model's [N, V] logits in memory. Built from the cross-entropy kernels' pieces (flce_triton.py: the
device-side row order with no host sync, the logits tile, launch and autotune helpers).

forward: grid (row blocks, vocab splits). Each program computes, tile by tile over its split, the student's and
the teacher's logits of its labelled rows (s = z_s / T, t = z_t / T) and keeps three online quantities per row:
the student's log-sum-exp, the teacher's log-sum-exp, and the teacher-weighted sum of (t - s), rescaled whenever
the teacher's running maximum grows. Per split it writes (lse_s, lse_t, softmax_t-weighted mean of t - s); torch
merges the splits: KL = sum_v p_t (t - s) - lse_t + lse_s.
backward: grid (row blocks, vocab blocks). Each program recomputes both logits tiles, forms
dKL/dz_s = (softmax(s) - softmax(t)) / T times the row's upstream gradient, and adds G @ W_s into grad_hidden and
G^T @ h_s into grad_weight with fp32 atomics (not bitwise deterministic), as the cross-entropy backward does.
The teacher gets no gradient. Unlike the torch backend (gradients computed in its forward) nothing is kept from
forward but two [N] log-sum-exps, so any number of backward passes works.

Interpreter caveats (TRITON_INTERPRET=1, CPU CI) are those of flce_triton: operands upcast to fp32, fp32
accumulators, one fixed config.
"""
import torch
import triton
import triton.language as tl

from .flce_triton import _add_gradients, _common, _gpu_configs, _interpret_config, _launch, _logits_tile, \
    _row_block, interpreting
from .flce_triton import GPU_SPLIT_V


@triton.jit
def _distill_fwd_kernel(HS, WS, BS, HT, WT, BT, Y, ORDER, N_LAB, P_LSE_S, P_LSE_T, P_CROSS, N, V, DS, DT,
                        stride_hsn, stride_hsd, stride_wsv, stride_wsd, stride_htn, stride_htd, stride_wtv,
                        stride_wtd, split_v, inv_t, HAS_BIAS_S: tl.constexpr, HAS_BIAS_T: tl.constexpr,
                        UPCAST: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):
    n_lab = tl.load(N_LAB)
    if tl.program_id(0) * BLOCK_N < n_lab:  # a program past the labelled rows exits at once
        rows, mask_n, _ = _row_block(ORDER, Y, n_lab, BLOCK_N)
        pid_s = tl.program_id(1)
        m_s = tl.full((BLOCK_N,), float("-inf"), tl.float32)
        m_t = tl.full((BLOCK_N,), float("-inf"), tl.float32)
        sum_s = tl.zeros((BLOCK_N,), tl.float32)
        sum_t = tl.zeros((BLOCK_N,), tl.float32)
        cross = tl.zeros((BLOCK_N,), tl.float32)  # sum_v exp(t - m_t) (t - s)
        v_lo = pid_s * split_v
        v_hi = tl.minimum(v_lo + split_v, V)
        for v0 in range(v_lo, v_hi, BLOCK_V):
            offs_v = v0 + tl.arange(0, BLOCK_V)
            mask_v = offs_v < v_hi
            s = _logits_tile(HS, WS, BS, rows, mask_n, offs_v, mask_v, DS, stride_hsn, stride_hsd, stride_wsv,
                             stride_wsd, 1.0, HAS_BIAS_S, False, UPCAST, PRECISION, BLOCK_N, BLOCK_V,
                             BLOCK_D) * inv_t
            t = _logits_tile(HT, WT, BT, rows, mask_n, offs_v, mask_v, DT, stride_htn, stride_htd, stride_wtv,
                             stride_wtd, 1.0, HAS_BIAS_T, False, UPCAST, PRECISION, BLOCK_N, BLOCK_V,
                             BLOCK_D) * inv_t
            s_inf = tl.where(mask_v[None, :], s, float("-inf"))
            t_inf = tl.where(mask_v[None, :], t, float("-inf"))
            m_s_new = tl.maximum(m_s, tl.max(s_inf, 1))
            sum_s = sum_s * tl.exp(m_s - m_s_new) + tl.sum(tl.exp(s_inf - m_s_new[:, None]), 1)
            m_s = m_s_new
            m_t_new = tl.maximum(m_t, tl.max(t_inf, 1))
            rescale = tl.exp(m_t - m_t_new)
            e_t = tl.exp(t_inf - m_t_new[:, None])  # 0 outside the vocabulary
            sum_t = sum_t * rescale + tl.sum(e_t, 1)
            cross = cross * rescale + tl.sum(e_t * tl.where(mask_v[None, :], t - s, 0.0), 1)
            m_t = m_t_new
        out = pid_s.to(tl.int64) * N + rows
        tl.store(P_LSE_S + out, m_s + tl.log(sum_s), mask=mask_n)
        tl.store(P_LSE_T + out, m_t + tl.log(sum_t), mask=mask_n)
        tl.store(P_CROSS + out, cross / sum_t, mask=mask_n)


@triton.jit
def _distill_bwd_kernel(HS, WS, BS, HT, WT, BT, Y, ORDER, N_LAB, LSE_S, LSE_T, C, GH, GW, GB, V, DS, DT,
                        stride_hsn, stride_hsd, stride_wsv, stride_wsd, stride_htn, stride_htd, stride_wtv,
                        stride_wtd, inv_t, HAS_BIAS_S: tl.constexpr, HAS_BIAS_T: tl.constexpr,
                        UPCAST: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):
    n_lab = tl.load(N_LAB)
    if tl.program_id(0) * BLOCK_N < n_lab:
        rows, mask_n, _ = _row_block(ORDER, Y, n_lab, BLOCK_N)
        offs_v = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
        mask_v = offs_v < V
        t = _logits_tile(HT, WT, BT, rows, mask_n, offs_v, mask_v, DT, stride_htn, stride_htd, stride_wtv,
                         stride_wtd, 1.0, HAS_BIAS_T, False, UPCAST, PRECISION, BLOCK_N, BLOCK_V, BLOCK_D) * inv_t
        lse_t = tl.load(LSE_T + rows, mask=mask_n, other=0.0)
        g = -tl.exp(t - lse_t[:, None])  # -softmax(t)
        s = _logits_tile(HS, WS, BS, rows, mask_n, offs_v, mask_v, DS, stride_hsn, stride_hsd, stride_wsv,
                         stride_wsd, 1.0, HAS_BIAS_S, False, UPCAST, PRECISION, BLOCK_N, BLOCK_V, BLOCK_D) * inv_t
        lse_s = tl.load(LSE_S + rows, mask=mask_n, other=0.0)
        c = tl.load(C + rows, mask=mask_n, other=0.0) * inv_t
        g = (g + tl.exp(s - lse_s[:, None])) * c[:, None]  # dL/dz_s, [BLOCK_N, BLOCK_V]
        _add_gradients(g, HS, WS, GH, GW, GB, rows, mask_n, offs_v, mask_v, DS, stride_hsn, stride_hsd, stride_wsv,
                       stride_wsd, HAS_BIAS_S, UPCAST, PRECISION, BLOCK_D)


_fwd_tuned = triton.autotune(_gpu_configs(), key=["V", "DS", "DT"])(_distill_fwd_kernel)
_bwd_tuned = triton.autotune(_gpu_configs(backward=True), key=["V", "DS", "DT"],
                             reset_to_zero=["GH", "GW", "GB"])(_distill_bwd_kernel)


def _meta(s_hidden, s_weight, s_bias, t_bias, labels, ignore_index):
    keep, n_lab, order, meta = _common(s_hidden, s_weight, s_bias, labels, ignore_index)
    meta["HAS_BIAS_S"] = meta.pop("HAS_BIAS")
    meta["HAS_BIAS_T"] = t_bias is not None
    return keep, n_lab, order, meta


def _operands(s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, labels):
    return (s_hidden, s_weight, s_weight if s_bias is None else s_bias, t_hidden, t_weight,
            t_weight if t_bias is None else t_bias, labels)


def _strides(s_hidden, s_weight, t_hidden, t_weight):
    return (*s_hidden.stride(), *s_weight.stride(), *t_hidden.stride(), *t_weight.stride())


def distill_forward_triton(s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, labels, temperature,
                           ignore_index):
    """(kl [N], lse_s [N], lse_t [N]) in fp32, 0 on ignored rows; hidden [N, Ds] / [N, Dt], weights [V, D*]."""
    N, DS = s_hidden.shape
    DT = t_hidden.shape[1]
    V = s_weight.shape[0]
    keep, n_lab, order, meta = _meta(s_hidden, s_weight, s_bias, t_bias, labels, ignore_index)
    split_v = _interpret_config(V, max(DS, DT))[1] if interpreting() else GPU_SPLIT_V
    splits = triton.cdiv(V, split_v)
    p_lse_s, p_lse_t, p_cross = (torch.zeros(splits, N, dtype=torch.float32, device=s_hidden.device)
                                 for _ in range(3))
    _launch(_distill_fwd_kernel, _fwd_tuned, lambda c: (triton.cdiv(N, c["BLOCK_N"]), splits), V, max(DS, DT),
            *_operands(s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, labels), order, n_lab, p_lse_s,
            p_lse_t, p_cross, N, V, DS, DT, *_strides(s_hidden, s_weight, t_hidden, t_weight), split_v,
            1.0 / temperature, **meta)
    lse_s, lse_t = torch.logsumexp(p_lse_s, 0), torch.logsumexp(p_lse_t, 0)  # merging the vocab splits
    cross = (p_cross * torch.exp(p_lse_t - lse_t)).sum(0)  # sum_v p_t (t - s)
    zero = torch.zeros((), device=s_hidden.device)
    return (torch.where(keep, cross - lse_t + lse_s, zero), torch.where(keep, lse_s, zero),
            torch.where(keep, lse_t, zero))


def distill_backward_triton(grad_rows, s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, labels, lse_s,
                            lse_t, temperature, ignore_index):
    """(grad_hidden, grad_weight, grad_bias | None) of sum(grad_rows * kl), in the student's dtypes."""
    N, DS = s_hidden.shape
    DT = t_hidden.shape[1]
    V = s_weight.shape[0]
    keep, n_lab, order, meta = _meta(s_hidden, s_weight, s_bias, t_bias, labels, ignore_index)
    coeff = torch.where(keep, grad_rows.float(), 0.0).contiguous()
    dev = s_hidden.device
    grad_hidden = torch.zeros(N, DS, dtype=torch.float32, device=dev)
    grad_weight = torch.zeros(V, DS, dtype=torch.float32, device=dev)
    grad_bias = torch.zeros(V if s_bias is not None else 1, dtype=torch.float32, device=dev)
    grid = lambda c: (triton.cdiv(N, c["BLOCK_N"]), triton.cdiv(V, c["BLOCK_V"]))  # noqa: E731
    _launch(_distill_bwd_kernel, _bwd_tuned, grid, V, max(DS, DT),
            *_operands(s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, labels), order, n_lab,
            lse_s.float().contiguous(), lse_t.float().contiguous(), coeff, grad_hidden, grad_weight, grad_bias,
            V, DS, DT, *_strides(s_hidden, s_weight, t_hidden, t_weight), 1.0 / temperature, **meta)
    return (grad_hidden.to(s_hidden.dtype), grad_weight.to(s_weight.dtype),
            None if s_bias is None else grad_bias.to(s_bias.dtype))


class DistillRowsTriton(torch.autograd.Function):
    """Per-row KL [N] (fp32) of all rows, 0 where ignored; gradients to the student's hidden, weight and bias."""

    @staticmethod
    def forward(ctx, s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, labels, temperature, ignore_index):
        kl, lse_s, lse_t = distill_forward_triton(s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, labels,
                                                  temperature, ignore_index)
        ctx.save_for_backward(s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, labels, lse_s, lse_t)
        ctx.options = (temperature, ignore_index)
        return kl

    @staticmethod
    def backward(ctx, grad_rows):
        s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, labels, lse_s, lse_t = ctx.saved_tensors
        gh, gw, gb = distill_backward_triton(grad_rows, s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias,
                                             labels, lse_s, lse_t, *ctx.options)
        return gh, gw, gb, None, None, None, None, None, None
