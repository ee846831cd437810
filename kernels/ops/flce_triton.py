"""Triton backend: masked-row gather, LM-head GEMM and cross-entropy fused, logits never in memory.

forward: grid (row blocks, vocab splits). Each program reads its labelled rows indirectly through
`order` (labelled rows first, built by a stable argsort on the device, so no host sync) and the count
of labelled rows from device memory; programs past it exit at once. It walks its vocab split in
[BLOCK_N, BLOCK_V] tiles with an online softmax and writes partial (lse, target logit, logit sum) per
split; torch merges the splits. Out-of-range vocab columns are -inf in the softmax and 0 in sums, so a
V that is not a multiple of BLOCK_V never adds exp(0) to the LSE (verl #2899).
backward: grid (row blocks, vocab blocks). Each program recomputes its logits tile, turns it into
dL/dlogits and adds G @ W into grad_hidden and G^T @ hidden into grad_weight with fp32 atomics
(so gradients are not bitwise deterministic). Offsets are int64 (flash-attn #714).

Under TRITON_INTERPRET=1 (CPU CI) bf16 tl.dot is wrong, so operands are upcast to fp32 (UPCAST), bf16
atomics fail (all accumulators are fp32), libdevice is missing (tanh is written with tl.exp) and a
single fixed config replaces autotuning.
"""
import os

import torch
import triton
import triton.language as tl

from . import grad_coefficients, row_loss

# Interpreter config; None picks the smallest power of two covering V (at most 2048) or D (at most 256):
# numpy's cost grows with tile count, not size. Tests set small blocks to exercise tails and splits.
INTERPRET_CONFIG = dict(BLOCK_N=16, BLOCK_V=None, BLOCK_D=None, SPLIT_V=None)
# GPU: vocab columns per forward split (a multiple of every BLOCK_V), so few labelled rows still fill the GPU.
GPU_SPLIT_V = 4096


def interpreting():
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@triton.jit
def _tanh(x):
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)  # saturates cleanly to +-1 when exp over/underflows


@triton.jit
def _row_block(ORDER, Y, n_lab, BLOCK_N: tl.constexpr):
    """This program's block (program_id(0)) of the n_lab labelled rows: (original row ids [BLOCK_N], their mask,
    their labels)."""
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < n_lab
    rows = tl.load(ORDER + offs_n, mask=mask_n, other=0)  # original row ids, [BLOCK_N]
    y = tl.load(Y + rows, mask=mask_n, other=0)
    return rows, mask_n, y


@triton.jit
def _hw_chunk(h_base, w_base, mask_n, mask_v, d0, D, stride_hd, stride_wd, UPCAST: tl.constexpr,
              BLOCK_D: tl.constexpr):
    """Columns d0 .. d0 + BLOCK_D of the hidden rows [BLOCK_N, BLOCK_D] and weight rows [BLOCK_V, BLOCK_D] at
    h_base / w_base (0 outside the masks; fp32 when UPCAST), with those columns' offsets and mask."""
    offs_d = d0 + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    w = tl.load(w_base + offs_d[None, :] * stride_wd, mask=mask_v[:, None] & mask_d[None, :], other=0.0)
    h = tl.load(h_base + offs_d[None, :] * stride_hd, mask=mask_n[:, None] & mask_d[None, :], other=0.0)
    if UPCAST:
        w = w.to(tl.float32)
        h = h.to(tl.float32)
    return offs_d, mask_d, h, w


@triton.jit
def _logits_tile(H, W, B, rows, mask_n, offs_v, mask_v, D, stride_hn, stride_hd, stride_wv, stride_wd,
                 softcap, HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr, UPCAST: tl.constexpr,
                 PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):
    """fp32 [BLOCK_N, BLOCK_V] logits (after bias and softcap) of `rows` x `offs_v`."""
    acc = tl.zeros((BLOCK_N, BLOCK_V), dtype=tl.float32)
    h_base = H + rows.to(tl.int64)[:, None] * stride_hn  # [BLOCK_N, 1]
    w_base = W + offs_v.to(tl.int64)[:, None] * stride_wv  # [BLOCK_V, 1]
    for d0 in range(0, D, BLOCK_D):
        _, _, h, w = _hw_chunk(h_base, w_base, mask_n, mask_v, d0, D, stride_hd, stride_wd, UPCAST, BLOCK_D)
        acc = tl.dot(h, tl.trans(w), acc, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(B + offs_v, mask=mask_v, other=0.0).to(tl.float32)[None, :]
    if HAS_SOFTCAP:
        acc = softcap * _tanh(acc / softcap)
    return acc


@triton.jit
def _flce_fwd_kernel(H, W, B, Y, ORDER, N_LAB, P_LSE, P_TGT, P_SUM, N, V, D, stride_hn, stride_hd, stride_wv,
                     stride_wd, split_v, softcap, HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
                     UPCAST: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
                     BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):
    n_lab = tl.load(N_LAB)
    if tl.program_id(0) * BLOCK_N < n_lab:  # a program past the labelled rows exits at once
        rows, mask_n, y = _row_block(ORDER, Y, n_lab, BLOCK_N)
        pid_s = tl.program_id(1)
        m = tl.full((BLOCK_N,), float("-inf"), tl.float32)
        s = tl.zeros((BLOCK_N,), tl.float32)
        tgt = tl.zeros((BLOCK_N,), tl.float32)
        zsum = tl.zeros((BLOCK_N,), tl.float32)
        v_lo = pid_s * split_v
        v_hi = tl.minimum(v_lo + split_v, V)
        for v0 in range(v_lo, v_hi, BLOCK_V):
            offs_v = v0 + tl.arange(0, BLOCK_V)
            mask_v = offs_v < v_hi
            z = _logits_tile(H, W, B, rows, mask_n, offs_v, mask_v, D, stride_hn, stride_hd, stride_wv,
                             stride_wd, softcap, HAS_BIAS, HAS_SOFTCAP, UPCAST, PRECISION, BLOCK_N, BLOCK_V,
                             BLOCK_D)
            z_inf = tl.where(mask_v[None, :], z, float("-inf"))
            m_new = tl.maximum(m, tl.max(z_inf, 1))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z_inf - m_new[:, None]), 1)
            m = m_new
            tgt += tl.sum(tl.where(offs_v[None, :] == y[:, None], z, 0.0), 1)
            zsum += tl.sum(tl.where(mask_v[None, :], z, 0.0), 1)
        out = pid_s.to(tl.int64) * N + rows
        tl.store(P_LSE + out, m + tl.log(s), mask=mask_n)
        tl.store(P_TGT + out, tgt, mask=mask_n)
        tl.store(P_SUM + out, zsum, mask=mask_n)


@triton.jit
def _flce_bwd_kernel(H, W, B, Y, ORDER, N_LAB, LSE, CP, CY, CU, GH, GW, GB, V, D, stride_hn, stride_hd,
                     stride_wv, stride_wd, softcap, HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
                     UPCAST: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
                     BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):
    n_lab = tl.load(N_LAB)
    if tl.program_id(0) * BLOCK_N < n_lab:
        rows, mask_n, y = _row_block(ORDER, Y, n_lab, BLOCK_N)
        offs_v = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
        mask_v = offs_v < V
        z = _logits_tile(H, W, B, rows, mask_n, offs_v, mask_v, D, stride_hn, stride_hd, stride_wv, stride_wd,
                         softcap, HAS_BIAS, HAS_SOFTCAP, UPCAST, PRECISION, BLOCK_N, BLOCK_V, BLOCK_D)
        lse = tl.load(LSE + rows, mask=mask_n, other=0.0)
        cp = tl.load(CP + rows, mask=mask_n, other=0.0)
        cy = tl.load(CY + rows, mask=mask_n, other=0.0)
        cu = tl.load(CU + rows, mask=mask_n, other=0.0)
        g = cp[:, None] * tl.exp(z - lse[:, None]) - cu[:, None]  # dL/dlogits, [BLOCK_N, BLOCK_V]
        g -= tl.where(offs_v[None, :] == y[:, None], cy[:, None], 0.0)
        if HAS_SOFTCAP:
            t = z / softcap
            g *= 1.0 - t * t
        _add_gradients(g, H, W, GH, GW, GB, rows, mask_n, offs_v, mask_v, D, stride_hn, stride_hd, stride_wv,
                       stride_wd, HAS_BIAS, UPCAST, PRECISION, BLOCK_D)


@triton.jit
def _add_gradients(g, H, W, GH, GW, GB, rows, mask_n, offs_v, mask_v, D, stride_hn, stride_hd, stride_wv, stride_wd,
                   HAS_BIAS: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr, BLOCK_D: tl.constexpr):
    """Add a dL/dlogits tile g [BLOCK_N, BLOCK_V] (of `rows` x `offs_v`) into grad_bias (its column sums),
    grad_hidden (G @ W) and grad_weight (G^T @ H), all fp32, with atomics; 0 outside the masks."""
    g = tl.where(mask_n[:, None] & mask_v[None, :], g, 0.0)
    if HAS_BIAS:
        tl.atomic_add(GB + offs_v, tl.sum(g, 0), mask=mask_v)
    if not UPCAST:
        g = g.to(W.dtype.element_ty)  # tensor-core operands in the input dtype, fp32 accumulation
    h_base = H + rows.to(tl.int64)[:, None] * stride_hn
    w_base = W + offs_v.to(tl.int64)[:, None] * stride_wv
    gh_base = GH + rows.to(tl.int64)[:, None] * D
    gw_base = GW + offs_v.to(tl.int64)[:, None] * D
    for d0 in range(0, D, BLOCK_D):
        offs_d, mask_d, h, w = _hw_chunk(h_base, w_base, mask_n, mask_v, d0, D, stride_hd, stride_wd, UPCAST,
                                         BLOCK_D)
        gh = tl.dot(g, w, input_precision=PRECISION)  # [BLOCK_N, BLOCK_D]
        gw = tl.dot(tl.trans(g), h, input_precision=PRECISION)  # [BLOCK_V, BLOCK_D]
        tl.atomic_add(gh_base + offs_d[None, :], gh, mask=mask_n[:, None] & mask_d[None, :])
        tl.atomic_add(gw_base + offs_d[None, :], gw, mask=mask_v[:, None] & mask_d[None, :])


def _gpu_configs(backward=False):
    """Autotune configs. Forward: 64-row tiles only, the smallest Hopper's wgmma takes (16- and 32-row tiles fell
    back to mma.sync on sm_90; a batch with few labelled rows still fills the GPU through the SPLIT_V vocabulary
    splits). Backward: also the 32- and 16-row tiles (they use wgmma there too); the (32, 128, 64) tile runs 8
    warps: with 4 it spilled 16 bytes on sm_80 (bf16/fp16, 255 registers)."""
    tiles = [(64, 128, 64, 8, 3), (64, 64, 64, 4, 3)]
    if backward:
        tiles += [(32, 128, 64, 8, 3), (16, 256, 64, 8, 2)]
    return [triton.Config(dict(BLOCK_N=bn, BLOCK_V=bv, BLOCK_D=bd), num_warps=w, num_stages=st)
            for bn, bv, bd, w, st in tiles]


_fwd_tuned = triton.autotune(_gpu_configs(), key=["V", "D", "HAS_SOFTCAP"])(_flce_fwd_kernel)
_bwd_tuned = triton.autotune(_gpu_configs(backward=True), key=["V", "D", "HAS_SOFTCAP"],
                             reset_to_zero=["GH", "GW", "GB"])(_flce_bwd_kernel)


def _common(hidden, weight, bias, labels, ignore_index):
    """Device-side row partition (labelled rows first) and launch arguments shared by fwd and bwd."""
    if not (hidden.is_cuda or interpreting()):
        raise RuntimeError("the triton backend needs a CUDA tensor or TRITON_INTERPRET=1 set before "
                           "triton is imported; use backend='torch' instead")
    keep = labels != ignore_index
    n_lab = keep.sum()  # stays on the device: no host sync
    order = torch.argsort((~keep).to(torch.uint8), stable=True)  # [N] labelled rows first
    upcast = interpreting() or hidden.dtype == torch.float32
    precision = "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"
    args = dict(HAS_BIAS=bias is not None, UPCAST=upcast, PRECISION=precision)
    return keep, n_lab, order, args


def _interpret_config(V, D):
    cfg = dict(INTERPRET_CONFIG)
    cfg["BLOCK_V"] = cfg["BLOCK_V"] or min(2048, max(16, triton.next_power_of_2(V)))
    cfg["BLOCK_D"] = cfg["BLOCK_D"] or min(256, max(16, triton.next_power_of_2(D)))
    split_v = cfg.pop("SPLIT_V") or V
    return cfg, triton.cdiv(split_v, cfg["BLOCK_V"]) * cfg["BLOCK_V"]  # splits hold whole vocab blocks


def _launch(kernel_plain, kernel_tuned, grid, V, D, *args, **meta):
    if interpreting():
        cfg, _ = _interpret_config(V, D)
        kernel_plain[grid(cfg)](*args, **meta, **cfg)
    else:
        kernel_tuned[grid](*args, **meta)


def flce_forward_triton(hidden, weight, bias, labels, ignore_index, label_smoothing, z_loss, softcap):
    N, D = hidden.shape
    V = weight.shape[0]
    keep, n_lab, order, meta = _common(hidden, weight, bias, labels, ignore_index)
    split_v = _interpret_config(V, D)[1] if interpreting() else GPU_SPLIT_V
    splits = triton.cdiv(V, split_v)
    p_lse, p_tgt, p_sum = (torch.zeros(splits, N, dtype=torch.float32, device=hidden.device) for _ in range(3))
    _launch(_flce_fwd_kernel, _fwd_tuned, lambda c: (triton.cdiv(N, c["BLOCK_N"]), splits), V, D,
            hidden, weight, bias if bias is not None else weight, labels, order, n_lab, p_lse, p_tgt, p_sum,
            N, V, D, hidden.stride(0), hidden.stride(1), weight.stride(0), weight.stride(1), split_v,
            float(softcap or 1.0), HAS_SOFTCAP=softcap is not None, **meta)
    lse = torch.logsumexp(p_lse, 0)  # [N], merging the vocab splits
    return row_loss(lse, p_tgt.sum(0), p_sum.sum(0), keep, label_smoothing, z_loss, V)


def flce_backward_triton(grad_loss, grad_lse, hidden, weight, bias, labels, lse, ignore_index, label_smoothing,
                         z_loss, softcap):
    N, D = hidden.shape
    V = weight.shape[0]
    keep, n_lab, order, meta = _common(hidden, weight, bias, labels, ignore_index)
    cp, cy, cu = (c.float().contiguous() for c in grad_coefficients(
        grad_loss.float(), None if grad_lse is None else grad_lse.float(), lse.float(), keep, label_smoothing,
        z_loss, V))
    grad_hidden = torch.zeros(N, D, dtype=torch.float32, device=hidden.device)
    grad_weight = torch.zeros(V, D, dtype=torch.float32, device=hidden.device)
    grad_bias = torch.zeros(V if bias is not None else 1, dtype=torch.float32, device=hidden.device)
    grid = lambda c: (triton.cdiv(N, c["BLOCK_N"]), triton.cdiv(V, c["BLOCK_V"]))  # noqa: E731
    _launch(_flce_bwd_kernel, _bwd_tuned, grid, V, D,
            hidden, weight, bias if bias is not None else weight, labels, order, n_lab, lse.float().contiguous(),
            cp, cy, cu, grad_hidden, grad_weight, grad_bias, V, D, hidden.stride(0), hidden.stride(1),
            weight.stride(0), weight.stride(1), float(softcap or 1.0), HAS_SOFTCAP=softcap is not None, **meta)
    return (grad_hidden.to(hidden.dtype), grad_weight.to(weight.dtype),
            None if bias is None else grad_bias.to(bias.dtype))
