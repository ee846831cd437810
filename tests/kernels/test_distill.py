"""fused_linear_distillation against the fp64 reference, on both backends (torch; Triton under the CPU interpreter):
loss and the student's gradients (hidden, weight, bias) across dtypes, odd shapes (student and teacher of
different widths), 0 / 1 / 15% / 100% labelled rows, T != 1, many chunks (torch) / vocabulary splits, tails in
every tile dimension (Triton); the teacher gets no gradient; bad arguments are refused."""
import os

import pytest
import torch

from hf_pretrain_ext.kernels import fused_linear_distillation, linear_distillation_reference
from hf_pretrain_ext.kernels.ops import distill_torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # the Triton cases run on the GPU when there is one

# fp64 always runs the torch backend: the Triton cases start at fp32
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]

SMALL = (3, 37, 29, 41, 123)  # B, T, H student, H teacher, V
BERT = (2, 16, 768, 768, 30522)
TOL = {torch.float64: (1e-10, 1e-12), torch.float32: (2e-5, 1e-6), torch.bfloat16: (3e-2, 2e-3),
       torch.float16: (1e-2, 5e-4)}


def make(shape, dtype, labelled, bias, seed=0):
    b, t, hs, ht, v = shape
    g = torch.Generator().manual_seed(seed)
    s_h = torch.randn(b, t, hs, generator=g)
    t_h = torch.randn(b, t, ht, generator=g)
    s_w = torch.randn(v, hs, generator=g) / hs ** 0.5 * 2
    t_w = torch.randn(v, ht, generator=g) / ht ** 0.5 * 3
    s_b = torch.randn(v, generator=g) * 0.1 if bias else None
    t_b = torch.randn(v, generator=g) * 0.1 if bias else None
    labels = torch.randint(0, v, (b, t), generator=g)
    if labelled == "one":
        keep = torch.zeros(b * t, dtype=torch.bool)
        keep[7] = True
    else:
        keep = torch.rand(b * t, generator=g) < labelled
    labels = torch.where(keep.view(b, t), labels, torch.full_like(labels, -100))
    cast = (lambda x: None if x is None else x.to(device=DEVICE, dtype=dtype))  # noqa: E731
    return [cast(x) for x in (s_h, s_w, s_b, t_h, t_w, t_b)], labels.to(DEVICE)


def check(shape, dtype, labelled, bias=False, temperature=1.0, **options):
    (s_h, s_w, s_b, t_h, t_w, t_b), labels = make(shape, dtype, labelled, bias)
    leaves = [x.detach().clone().requires_grad_() for x in (s_h, s_w) + ((s_b,) if bias else ())]
    ours = fused_linear_distillation(leaves[0], leaves[1], t_h, t_w, labels, leaves[2] if bias else None, t_b,
                                     temperature=temperature, **options)
    ours.backward()
    ref_leaves = [x.detach().cpu().double().requires_grad_() for x in (s_h, s_w) + ((s_b,) if bias else ())]
    ref = linear_distillation_reference(ref_leaves[0], ref_leaves[1], t_h.cpu().double(), t_w.cpu().double(),
                                        labels.cpu(), ref_leaves[2] if bias else None,
                                        None if t_b is None else t_b.cpu().double(), temperature=temperature,
                                        **options)
    ref.backward()
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(ours.double().cpu(), ref, rtol=rtol, atol=atol)
    for mine, want in zip(leaves, ref_leaves):
        assert mine.grad is not None and mine.grad.dtype == mine.dtype
        scale = want.grad.abs().max().item() or 1.0
        torch.testing.assert_close(mine.grad.double().cpu(), want.grad, rtol=rtol, atol=atol + rtol * scale)


@pytest.fixture(params=["torch", "triton"])
def small_chunks(request, monkeypatch):
    """Each backend with small tiles: torch in chunks of 7 rows; Triton (interpreted) in 16 x 32 x 16 tiles and
    vocabulary splits of 64 columns, so V=123, H=29 / 41 leave tails everywhere and rows span blocks."""
    monkeypatch.setattr(distill_torch, "CHUNK_ELEMENTS", 7 * SMALL[-1])
    if request.param == "triton":
        pytest.importorskip("triton")
        from hf_pretrain_ext.kernels.ops import flce_triton
        monkeypatch.setattr(flce_triton, "INTERPRET_CONFIG", dict(BLOCK_N=16, BLOCK_V=32, BLOCK_D=16, SPLIT_V=64))
    monkeypatch.setenv("HFPX_LOSS_BACKEND", request.param)
    return request.param


@pytest.mark.parametrize("labelled", [0.0, "one", 0.15, 1.0], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_small_odd_shape(small_chunks, dtype, labelled):
    if small_chunks == "triton" and dtype == torch.float64:
        pytest.skip("fp64 runs the torch backend")
    if small_chunks == "triton" and dtype == torch.float16 and os.environ.get("HFPX_SLOW") != "1":
        pytest.skip("slow: set HFPX_SLOW=1 to run (bf16 covers half precision in the interpreter)")
    # T = 1 and T != 1 both, bias on the 15% rows (every fraction crosses chunk boundaries but 0 and one)
    check(SMALL, dtype, labelled, bias=labelled == 0.15, temperature=1.0 if labelled in (0.0, "one") else 2.5)
    if labelled == "one":
        check(SMALL, dtype, labelled, temperature=0.5)


@pytest.mark.parametrize("options", [dict(reduction="sum"), dict(num_items_in_batch=41),
                                     dict(num_items_in_batch=torch.tensor(41))], ids=["sum", "int", "tensor"])
def test_reductions(small_chunks, options):
    check(SMALL, torch.float32, 0.15, bias=True, temperature=2.0, **options)


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=pytest.mark.slow)], ids=str)
def test_bert_shape(dtype):
    check(BERT, dtype, 0.15, bias=True, temperature=2.0)


def test_triton_bert_vocabulary(monkeypatch):
    # V=30522 in the interpreter's default tiles (2048 columns: the last tile mostly outside the vocabulary)
    pytest.importorskip("triton")
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "triton")
    check((1, 24, 64, 96, 30522), torch.float32, 0.15, bias=True, temperature=2.0)


def test_triton_allows_a_second_backward(monkeypatch):
    # the Triton backend keeps only two log-sum-exps per row and recomputes the logits in backward
    pytest.importorskip("triton")
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "triton")
    (s_h, s_w, _, t_h, t_w, _), labels = make(SMALL, torch.float32, 0.15, False)
    s_h.requires_grad_()
    loss = fused_linear_distillation(s_h, s_w, t_h, t_w, labels, temperature=2.0)
    first, = torch.autograd.grad(loss, s_h, retain_graph=True)
    second, = torch.autograd.grad(loss * 3, s_h)
    torch.testing.assert_close(second, first * 3)


def test_nothing_labelled_gives_zero_and_zero_gradients(small_chunks):
    (s_h, s_w, _, t_h, t_w, _), labels = make(SMALL, torch.float32, 0.0, False)
    s_h.requires_grad_()
    loss = fused_linear_distillation(s_h, s_w, t_h, t_w, labels)
    loss.backward()
    assert float(loss.detach()) == 0.0 and s_h.grad is not None and not s_h.grad.any()


def test_the_teacher_gets_no_gradient_and_a_perfect_student_none(small_chunks):
    (s_h, s_w, _, _, _, _), labels = make(SMALL, torch.float32, 1.0, False)
    teacher_h, teacher_w = s_h.clone().requires_grad_(), s_w.clone().requires_grad_()
    s_h.requires_grad_()
    loss = fused_linear_distillation(s_h, s_w, teacher_h, teacher_w, labels, temperature=3.0)
    loss.backward()
    assert abs(float(loss)) < 1e-6 and s_h.grad.abs().max() < 1e-6  # same model: KL 0, gradient 0
    assert teacher_h.grad is None and teacher_w.grad is None


def test_bad_arguments():
    (s_h, s_w, _, t_h, t_w, _), labels = make(SMALL, torch.float32, 0.15, False)
    with pytest.raises(ValueError, match="one vocabulary"):
        fused_linear_distillation(s_h, s_w, t_h, t_w[:-1], labels)
    with pytest.raises(ValueError, match="per-row"):
        fused_linear_distillation(s_h, s_w, t_h, t_w, labels, reduction="none")
    with pytest.raises(ValueError, match="backend must be one of"):
        fused_linear_distillation(s_h, s_w, t_h, t_w, labels, backend="cuda")
    with pytest.raises(ValueError, match="temperature"):
        fused_linear_distillation(s_h, s_w, t_h, t_w, labels, temperature=0)
    with pytest.raises(ValueError, match="must match"):
        fused_linear_distillation(s_h, s_w, t_h[:, :-1], t_w, labels)


def test_a_second_backward_is_refused(monkeypatch):
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "torch")
    (s_h, s_w, _, t_h, t_w, _), labels = make(SMALL, torch.float32, 0.15, False)
    s_h.requires_grad_()
    loss = fused_linear_distillation(s_h, s_w, t_h, t_w, labels)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="second backward"):
        loss.backward()
