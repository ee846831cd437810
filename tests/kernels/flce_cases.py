"""Shared inputs and the tolerance rule of the kernel tests.

Tolerance rule (as in Cut Cross-Entropy's tests): against an fp64 truth, our error may not exceed the
error of eager HF-style torch in the same dtype (F.linear in that dtype, logits upcast to fp32, then
cross_entropy) plus a small margin relative to the truth's magnitude.
"""
import torch
import torch.nn.functional as F

from hf_pretrain_ext.kernels import fused_linear_cross_entropy, linear_cross_entropy_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MARGIN = {torch.float32: 1e-5, torch.bfloat16: 2e-3, torch.float16: 1e-3, torch.float64: 1e-10}


def make_inputs(shape, dtype, labelled, *, bias=False, seed=0, scale=1.0, device=DEVICE):
    """hidden [B, T, H], weight [V, H], labels [B, T] with `labelled` in {0, 'one', fraction}."""
    *lead, H, V = shape
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*lead, H, generator=g)
    weight = torch.randn(V, H, generator=g) * (scale / H ** 0.5)
    b = torch.randn(V, generator=g) if bias else None
    labels = torch.randint(0, V, tuple(lead), generator=g)
    n = labels.numel()
    count = 1 if labelled == "one" else round(labelled * n)
    ignored = torch.randperm(n, generator=g)[count:]
    labels.view(-1)[ignored] = -100
    cast = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return cast(hidden), cast(weight), labels.to(device), cast(b)


def eager_hf_loss(hidden, weight, labels, bias=None, *, ignore_index=-100, label_smoothing=0.0, z_loss=0.0,
                  softcap=None, reduction="mean", num_items_in_batch=None):
    """What an HF head does: logits on every row in the input dtype, upcast, then cross-entropy."""
    logits = F.linear(hidden, weight, bias).float()
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    logits, y = logits.view(-1, logits.shape[-1]), labels.reshape(-1)
    rows = F.cross_entropy(logits, y, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing)
    if z_loss:
        rows = rows + torch.where(y != ignore_index, z_loss * torch.logsumexp(logits, -1) ** 2, 0.0)
    if reduction == "none":
        return rows.view(labels.shape)
    if reduction == "sum":
        return rows.sum()
    denom = (y != ignore_index).sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch)
    return rows.sum() / denom.clamp(min=1)


def loss_and_grads(fn, hidden, weight, labels, bias, dtype=None, upstream=None, **options):
    """Loss and grads of (hidden, weight, bias), inputs first cast to `dtype` when given."""
    leaves = [None if t is None else t.detach().to(dtype or t.dtype).requires_grad_() for t in (hidden, weight, bias)]
    loss = fn(leaves[0], leaves[1], labels, leaves[2], **options)
    out = loss if upstream is None else (loss * upstream.to(loss.device)).sum()
    grads = torch.autograd.grad(out, [t for t in leaves if t is not None], allow_unused=False)
    return loss.detach(), list(grads)


def assert_within_eager_error(ours, eager, truth, dtype, what):
    truth = truth.double().cpu()
    err_ours = (ours.double().cpu() - truth).abs().max().item() if truth.numel() else 0.0
    err_eager = (eager.double().cpu() - truth).abs().max().item() if truth.numel() else 0.0
    budget = err_eager + MARGIN[dtype] * max(truth.abs().max().item() if truth.numel() else 0.0, 1e-3)
    assert err_ours <= budget, f"{what}: error {err_ours:.3e} > eager {err_eager:.3e} + margin ({budget:.3e})"
    assert torch.isfinite(ours).all(), f"{what}: not finite"


def check_against_reference(hidden, weight, labels, bias, dtype, upstream=None, **options):
    """Runs ours, eager and the fp64 truth and applies the tolerance rule to the loss and every grad."""
    ours = loss_and_grads(fused_linear_cross_entropy, hidden, weight, labels, bias, upstream=upstream, **options)
    eager = loss_and_grads(eager_hf_loss, hidden, weight, labels, bias, upstream=upstream, **options)
    truth = loss_and_grads(linear_cross_entropy_reference, hidden, weight, labels, bias, torch.float64,
                           upstream=upstream, **options)
    names = ["loss", "grad_hidden", "grad_weight", "grad_bias"]
    for name, o, e, t in zip(names, [ours[0]] + ours[1], [eager[0]] + eager[1], [truth[0]] + truth[1]):
        loss_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        assert o.shape == t.shape and o.dtype == (loss_dtype if name == "loss" else dtype), name
        assert_within_eager_error(o, e, t, dtype, name)
    return ours, truth
