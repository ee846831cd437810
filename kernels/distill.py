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
backend: 'auto' and 'torch' run the chunked torch backend (CPU and GPU); a Triton backend is not written yet.
Reference: reference.linear_distillation_reference.
"""
import torch

from .ops import distill_torch


def fused_linear_distillation(student_hidden, student_weight, teacher_hidden, teacher_weight, labels,
                              student_bias=None, teacher_bias=None, *, temperature=1.0, ignore_index=-100,
                              reduction="mean", num_items_in_batch=None, backend="auto"):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r} (per-row losses are not offered: "
                         "the gradients are computed in the forward for the summed loss)")
    if backend not in ("auto", "torch"):
        raise ValueError(f"backend must be 'auto' or 'torch' (no Triton backend yet), got {backend!r}")
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
    rows = labels.reshape(-1)
    idx = (rows != ignore_index).nonzero().squeeze(1)  # one host sync: the number of chunks
    total = distill_torch.DistillRows.apply(s_hidden, student_weight, student_bias, t_hidden.detach(),
                                            t_weight.detach(), None if t_bias is None else t_bias.detach(), idx,
                                            float(temperature))
    if reduction == "sum":
        return total
    denom = torch.as_tensor(len(idx) if num_items_in_batch is None else num_items_in_batch, device=total.device)
    return total / denom.clamp(min=1)
