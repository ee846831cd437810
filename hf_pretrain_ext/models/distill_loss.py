"""Distillation inside the student's forward, so DDP and FSDP see one ordinary forward and backward.

PretrainTrainer runs the frozen teacher under no_grad (`teacher_target`: the teacher's `distill_side`, then its
LM-head input rows at the labelled positions) and hands its part to the student as a `DistillTarget` (the
`distill` argument of every hfpx LM's forward: hfpx-bert masked LM and pretraining heads, hfpx-gpt, hfpx-bart,
hfpx-t5); the student then returns

    loss = (1 - alpha) * task_loss + alpha * T^2 * KL_T(teacher || student) + cosine * sum(1 - cos(h_s, h_t)) / N

with the task loss (`mlm_loss`; `lm_loss` for causal and seq2seq students), `distill_loss` and `cosine_loss`
beside it. "Labelled positions" are each family's own: masked tokens (BERT), positions whose next token is a
label (GPT: hidden states [:, :-1] against labels [:, 1:]), decoder positions with a label (BART, T5). The KL is taken on the labelled rows only, through
kernels.fused_linear_distillation (no [N, V] logits of either model), summed and divided by num_items_in_batch
like the task loss, so gradient accumulation and DDP average it the same way; T^2 keeps its gradients' scale
independent of T (Hinton et al. 2015). The cosine term (DistilBERT's) compares the last hidden states of every
real token (BERT: input tokens; GPT and the seq2seq decoders: the labelled positions), summed over them and
divided by N, the batch's labelled-token count (num_items_in_batch), so it adds up exactly over accumulated
micro-batches and DDP ranks; with 15% masking it therefore weighs about 1 / 0.15 times its per-token mean, which
is what `cosine_loss` logs. Between different widths the student's states first go through a learned linear
projection to the teacher's width (`add_projection`: a submodule of the student, so DDP and the optimizer see it;
left out of the model's weights and kept beside them in PROJECTION_FILE, so checkpoints resume exactly and the
saved model is the plain architecture).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels import fused_linear_distillation
from .lm_loss import labelled_rows


@dataclass
class DistillTarget:
    """The teacher's side of one batch (no gradients)."""

    rows: torch.Tensor  # [n_labelled, H_t]: head-transformed teacher states at the labelled positions, row-major
    weight: torch.Tensor  # [V, H_t] teacher decoder
    bias: torch.Tensor | None
    temperature: float
    alpha: float
    cosine: float = 0.0
    sequence: torch.Tensor | None = None  # [B, L, H_t] teacher last hidden states (cosine only)
    real: torch.Tensor | None = None  # [B, L] bool: real tokens (cosine only)
    projection: nn.Module | None = None  # the student's H_s -> H_t projection (cosine between widths)


PROJECTION = "distill_projection"  # the student's submodule
PROJECTION_FILE = "distill_projection.safetensors"  # beside the weights of each checkpoint and the final model


def add_projection(student, teacher_width):
    """Give the student a learned projection of its hidden states to the teacher's width (no bias), left out of
    its saved weights (see the top)."""
    width = getattr(student, "distill_width", None) or student.config.hidden_size
    projection = nn.Linear(width, teacher_width, bias=False)
    projection.to(device=student.device, dtype=student.dtype)
    student.add_module(PROJECTION, projection)
    student._keys_to_ignore_on_save = set(student._keys_to_ignore_on_save or ()) | {f"{PROJECTION}.weight"}
    return projection


@dataclass
class TeacherSide:
    """What a model hands a student it teaches, for one batch: its LM-head input states aligned with labels."""

    sequence: torch.Tensor  # [B, T, H] last hidden states, aligned with `labels` (before any head transform)
    labels: torch.Tensor  # [B, T]
    weight: torch.Tensor  # [V, H] decoder
    bias: torch.Tensor | None = None
    transform: object = None  # applied to the gathered rows before the decoder (BERT's head transform)
    real: torch.Tensor | None = None  # [B, T] bool: the tokens the cosine loss compares


def teacher_target(teacher, inputs, alpha, temperature, cosine=0.0, projection=None):
    """The DistillTarget of one training batch from a frozen teacher with a `distill_side(inputs)` method;
    `projection`: the student's, when the cosine loss compares states of different widths."""
    with torch.no_grad():
        side = teacher.distill_side(inputs)
        rows, _ = labelled_rows(side.sequence, side.labels)
        if side.transform is not None:
            rows = side.transform(rows)
    return DistillTarget(rows, side.weight, side.bias, temperature, alpha, cosine,
                         side.sequence if cosine else None, side.real if cosine else None, projection)


def with_distillation(task_loss, rows, weight, bias, targets, sequence_output, target, num_items_in_batch,
                      task_name):
    """(loss, parts): the task loss alone ({task_name: it}) without a teacher's target, else distilled_loss."""
    parts = {task_name: task_loss.detach()}
    if target is None:
        return task_loss, parts
    loss, more = distilled_loss(task_loss, rows, weight, bias, targets, sequence_output, target, num_items_in_batch)
    return loss, {**parts, **more}


def real_tokens(inputs, shape, device):
    """[B, L] bool: packed real tokens (document_ids >= 0), else the attention mask, else every position."""
    if inputs.get("document_ids") is not None:
        return inputs["document_ids"] >= 0
    if inputs.get("attention_mask") is not None:
        return inputs["attention_mask"].bool()
    return torch.ones(shape, dtype=torch.bool, device=device)


def distilled_loss(task_loss, rows, weight, bias, targets, sequence_output, target, num_items_in_batch=None):
    """(loss, parts) of the formula above; rows [n_labelled, H_s] are the student's head-transformed states at the
    labelled positions, targets [n_labelled] their labels, sequence_output [B, L, H_s]."""
    t = float(target.temperature)
    kl = fused_linear_distillation(rows, weight, target.rows, target.weight, targets, bias, target.bias,
                                   temperature=t, num_items_in_batch=num_items_in_batch)
    loss = (1.0 - target.alpha) * task_loss + target.alpha * t * t * kl
    parts = {"distill_loss": kl.detach()}
    if target.cosine:
        student, teacher = sequence_output[target.real], target.sequence[target.real].float()
        student = (student if target.projection is None else target.projection(student)).float()
        gaps = (1.0 - F.cosine_similarity(student, teacher, dim=-1)).sum()
        # summed over real tokens and divided by the batch's labelled-token count, like the MLM loss: exactly
        # additive over accumulated micro-batches and DDP ranks (a per-micro-batch mean would not be)
        denom = len(rows) if num_items_in_batch is None else num_items_in_batch
        loss = loss + target.cosine * gaps / torch.as_tensor(denom, device=gaps.device).clamp(min=1)
        parts["cosine_loss"] = (gaps / max(len(student), 1)).detach()  # logged: the mean over real tokens
    return loss, parts
