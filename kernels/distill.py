"""fused_linear_distillation: KL(teacher || student) at temperature T from both models' last hidden states and LM
heads, on labelled rows only, without either [N, V] logits tensor (ops/distill_torch.py says how).

    loss = fused_linear_distillation(student_hidden, student.lm_head.weight, teacher_hidden,
                                     teacher.lm_head.weight, labels, temperature=2.0)

student_hidden [..., Hs] and teacher_hidden [..., Ht] are the hidden states that feed each LM head (after BERT's
head transform, GPT's final LayerNorm), weights [V, Hs] / [V, Ht] over one vocabulary, labels [...]:
ignore_index marks rows that are not distilled (MLM: unmasked tokens). Per labelled row the loss is
sum_v p_t(v) (log p_t(v) - log p_s(v)), p = softmax(logits / T); the usual T^2 factor (Hinton et al.) is the
caller's. reduction 'mean' (over labelled rows, or num_items_in_batch) or 'sum'; per-row losses ('none') are not
offered, because the gradients are computed in the forward for the summed loss. The teacher gets no gradient.
backend: 'torch' is the chunked torch backend (ops/distill_torch.py, CPU and GPU; gradients computed in its
forward, one backward per loss), 'triton' the Triton kernels (ops/distill_triton.py: CUDA, or the interpreter
under TRITON_INTERPRET=1; logits recomputed in backward). 'auto' takes Triton for bf16/fp16 CUDA tensors and the
torch backend otherwise (fp32 on a GPU: cuBLAS, as for the cross-entropy head); HFPX_LOSS_BACKEND=torch|triton
overrides it, as it does for fused_linear_cross_entropy. fp64 always runs the torch backend.
Reference: reference.linear_distillation_reference.
"""
import torch

from .functional import resolve_backend
from .ops import distill_torch


def fused_linear_distillation(student_hidden, student_weight, teacher_hidden, teacher_weight, labels,
                              student_bias=None, teacher_bias=None, *, temperature=1.0, ignore_index=-100,
                              reduction="mean", num_items_in_batch=None, backend="auto"):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r} (per-row losses are not offered: "
                         "the gradients are computed in the forward for the summed loss)")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if student_hidden.shape[:-1] != labels.shape or teacher_hidden.shape[:-1] != labels.shape:
        raise ValueError(f"labels {tuple(labels.shape)} must match both hidden states without their last dim; got "
                         f"student {tuple(student_hidden.shape)}, teacher {tuple(teacher_hidden.shape)}")
    if student_weight.shape[0] != teacher_weight.shape[0]:
        raise ValueError(f"student and teacher must share one vocabulary: {student_weight.shape[0]} vs "
                         f"{teacher_weight.shape[0]} rows in their LM heads")
    for name, h, w in (("student", student_hidden, student_weight), ("teacher", teacher_hidden, teacher_weight)):
        if w.dim() != 2 or w.shape[1] != h.shape[-1]:
            raise ValueError(f"{name} weight must be [V, {h.shape[-1]}], got {tuple(w.shape)}")
    if torch.is_autocast_enabled(student_hidden.device.type):  # like F.linear under autocast
        dtype = torch.get_autocast_dtype(student_hidden.device.type)
        cast = (lambda t: None if t is None else t.to(dtype))  # noqa: E731
        student_hidden, student_weight, student_bias = map(cast, (student_hidden, student_weight, student_bias))
        teacher_hidden, teacher_weight, teacher_bias = map(cast, (teacher_hidden, teacher_weight, teacher_bias))
    s_hidden = student_hidden.reshape(-1, student_hidden.shape[-1])
    t_hidden = teacher_hidden.reshape(-1, teacher_hidden.shape[-1]).to(s_hidden.dtype)
    t_weight = teacher_weight.to(student_weight.dtype)
    t_bias = None if teacher_bias is None else teacher_bias.to(student_weight.dtype)
    rows = labels.reshape(-1).to(torch.long).contiguous()
    backend = resolve_backend(backend, s_hidden.device)
    if s_hidden.dtype == torch.float64 or (s_hidden.is_cuda and s_hidden.dtype == torch.float32):
        backend = "torch"  # fp64 everywhere, fp32 on a GPU (cuBLAS; the fp32 Triton tiles spill, docs/kernels.md)
    teacher = (t_hidden.detach(), t_weight.detach(), None if t_bias is None else t_bias.detach())
    if backend == "triton":
        from .ops import distill_triton  # imported lazily: importing triton is slow and optional
        total = distill_triton.DistillRowsTriton.apply(s_hidden, student_weight, student_bias, *teacher, rows,
                                                       float(temperature), int(ignore_index)).sum()
        count = (rows != ignore_index).sum()  # stays on the device
    else:
        idx = (rows != ignore_index).nonzero().squeeze(1)  # one host sync: the number of chunks
        total = distill_torch.DistillRows.apply(s_hidden, student_weight, student_bias, *teacher, idx,
                                                float(temperature))
        count = len(idx)
    if reduction == "sum":
        return total
    denom = torch.as_tensor(count if num_items_in_batch is None else num_items_in_batch, device=total.device)
    return total / denom.clamp(min=1)
