"""One test per bug that peers shipped (docs peers.md), for both backends where it applies.

Not applicable here: reading lm_head.weight under ZeRO-3/FSDP (the caller passes the weight, see
module.py), Liger's fp32-accumulation opt-in (we always accumulate grad_weight in fp32).
"""
import pytest
import torch

from flce_cases import DEVICE, check_against_reference, loss_and_grads, make_inputs
from hf_pretrain_ext.kernels import fused_linear_cross_entropy
from hf_pretrain_ext.kernels.functional import flce_rows
from hf_pretrain_ext.kernels.ops import flce_torch


@pytest.mark.parametrize("vocab", [123, 30522, 50257])
def test_vocab_tail_adds_no_exp0_to_lse(backend, vocab):
    """verl #2899: all logits near -40, so a padded column counted as exp(0) would dominate the LSE."""
    hidden, weight, labels, _ = make_inputs((1, 8, 16, vocab), torch.float32, 0.4)
    bias = torch.full((vocab,), -40.0, device=DEVICE)
    loss, lse = flce_rows(hidden.view(-1, 16), weight, bias, labels.view(-1), -100, 0.0, 0.0, None, backend)
    logits = hidden.view(-1, 16).double() @ weight.double().t() + bias.double()
    keep = labels.view(-1) != -100
    expected = torch.where(keep, torch.logsumexp(logits, -1), 0.0)
    assert torch.allclose(lse.double(), expected, atol=1e-4), (lse, expected)


def test_gradient_accumulation_matches_one_big_batch(backend):
    """Liger #802: 4 micro-batches with num_items_in_batch = total labelled count == one big batch."""
    hidden, weight, labels, bias = make_inputs((8, 47, 31, 123), torch.float32, 0.15, bias=True)
    big = loss_and_grads(fused_linear_cross_entropy, hidden, weight, labels, bias)
    total = (labels != -100).sum()
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    h = hidden.clone().requires_grad_()
    losses = [fused_linear_cross_entropy(h[i:i + 2], w, labels[i:i + 2], b, num_items_in_batch=total)
              for i in range(0, 8, 2)]
    for loss in losses:
        loss.backward()
    assert torch.allclose(sum(losses), big[0], rtol=1e-5)
    for ours, ref in zip([h.grad, w.grad, b.grad], big[1]):
        assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-7)


def test_reduction_none_with_token_weights(backend):
    """Liger #968: gradients of sum(weight_i * loss_i) must follow each row's own upstream weight."""
    hidden, weight, labels, bias = make_inputs((2, 47, 31, 123), torch.float32, 0.5, bias=True)
    token_weights = torch.linspace(0, 3, labels.numel()).view(labels.shape)
    check_against_reference(hidden, weight, labels, bias, torch.float32, upstream=token_weights,
                            reduction="none", label_smoothing=0.1, z_loss=1e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_weight_grad_accumulates_in_fp32(backend, dtype, monkeypatch):
    """Liger #512/#827: grad_weight summed over 512 one-row chunks (torch) or 32 row blocks (Triton)."""
    monkeypatch.setattr(flce_torch, "CHUNK_ELEMENTS", 256)  # one row per chunk at V=256
    hidden, weight, labels, _ = make_inputs((4, 128, 64, 256), dtype, 1.0)
    check_against_reference(hidden, weight, labels, None, dtype)


@pytest.mark.parametrize("reduction,num_items", [("mean", None), ("mean", 0), ("mean", 5), ("sum", None),
                                                 ("none", None)])
def test_all_labels_ignored_gives_zero_loss_and_zero_grads(backend, reduction, num_items):
    """torchtune #2341 (NaN when every label is ignored) and DDP: grads are zeros, not None."""
    hidden, weight, labels, bias = make_inputs((2, 5, 31, 123), torch.float32, 0.0, bias=True)
    leaves = [t.requires_grad_() for t in (hidden, weight, bias)]
    loss = fused_linear_cross_entropy(*leaves[:2], labels, leaves[2], reduction=reduction,
                                      num_items_in_batch=num_items)
    assert torch.isfinite(loss).all() and (loss == 0).all()
    grads = torch.autograd.grad(loss.sum(), leaves)
    assert all(g is not None and torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_mean_with_zero_num_items_and_labels_is_finite(backend):
    hidden, weight, labels, _ = make_inputs((2, 5, 31, 123), torch.float32, 0.5)
    assert torch.isfinite(fused_linear_cross_entropy(hidden, weight, labels, num_items_in_batch=0))


def test_compiled_fullgraph_matches_eager_and_zeroes_ignored_rows(monkeypatch):
    """torch.compile(fullgraph=True) traces through the torch.library op (no graph break) and returns
    exact zeros on ignored rows for reduction='none' (peers returned garbage there under compile)."""
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "torch")
    torch._dynamo.reset()
    hidden, weight, labels, bias = make_inputs((2, 9, 16, 50), torch.float32, 0.3, bias=True)

    def step(h, w, b, y):
        rows = fused_linear_cross_entropy(h, w, y, b, reduction="none", label_smoothing=0.1)
        mean = fused_linear_cross_entropy(h, w, y, b, z_loss=1e-3, num_items_in_batch=(y != -100).sum())
        return rows, mean

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    rows, mean = compiled(*leaves, labels)
    grads = torch.autograd.grad(mean + rows.sum(), leaves)
    ref_leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    ref_rows, ref_mean = step(*ref_leaves, labels)
    ref_grads = torch.autograd.grad(ref_mean + ref_rows.sum(), ref_leaves)
    assert torch.equal(rows[labels == -100], torch.zeros_like(rows[labels == -100]))
    assert torch.allclose(rows, ref_rows) and torch.allclose(mean, ref_mean)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grads, ref_grads))


@pytest.mark.gpu
def test_triton_path_has_no_host_sync(monkeypatch):
    """.item()/nonzero syncs break CUDA graphs: the Triton path keeps the labelled count on the device."""
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "triton")
    hidden, weight, labels, bias = make_inputs((4, 128, 256, 30522), torch.bfloat16, 0.15, bias=True)
    leaves = [t.requires_grad_() for t in (hidden, weight, bias)]
    num_items = (labels != -100).sum()
    fused_linear_cross_entropy(*leaves[:2], labels, leaves[2], num_items_in_batch=num_items)  # autotune first
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = fused_linear_cross_entropy(*leaves[:2], labels, leaves[2], num_items_in_batch=num_items)
        torch.autograd.grad(loss, leaves)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
@pytest.mark.slow
def test_int64_offsets_on_large_weight(monkeypatch):
    """flash-attn #714: weight with V*H > 2**31 elements; offsets must not wrap in int32."""
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "triton")
    V, H = 2 ** 18 + 7, 2 ** 13
    g = torch.Generator(device="cuda").manual_seed(0)
    weight = (torch.randn(V, H, device="cuda", generator=g, dtype=torch.bfloat16) * H ** -0.5)
    hidden = torch.randn(4, H, device="cuda", dtype=torch.bfloat16, generator=g)
    labels = torch.tensor([V - 1, V - 3, 5, -100], device="cuda")
    ours = fused_linear_cross_entropy(hidden, weight, labels, reduction="none")
    logits = (hidden[:3].float() @ weight.float().t())
    expected = torch.nn.functional.cross_entropy(logits, labels[:3], reduction="none")
    assert torch.allclose(ours[:3], expected, atol=2e-2), (ours, expected)


@pytest.mark.slow
def test_inductor_fullgraph_model(monkeypatch):
    """Same as above through Inductor (about 20 s of C++ compilation on CPU, hence slow)."""
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "torch")
    torch._dynamo.reset()
    embed, head = torch.nn.Embedding(50, 16), torch.nn.Linear(16, 50)
    ids = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    labels = torch.where(torch.arange(8) % 2 == 0, ids, -100)

    def loss_fn(ids, labels):
        return fused_linear_cross_entropy(torch.tanh(embed(ids)), head.weight, labels, head.bias)

    compiled = torch.compile(loss_fn, fullgraph=True)
    params = [embed.weight, head.weight, head.bias]
    grads = torch.autograd.grad(compiled(ids, labels), params)
    ref = torch.autograd.grad(loss_fn(ids, labels), params)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, ref))


@pytest.mark.parametrize("bad", [123, 500, -5])
def test_out_of_range_labels_are_refused_naming_the_bound(backend, bad):
    """#18: a label >= V or < 0 (other than ignore_index) is an error with the same message on both backends
    (the Triton kernels gave a finite, wrong loss; the torch backend an indexing error); ignore_index may be any
    value outside the vocabulary."""
    hidden, weight, labels, _ = make_inputs((1, 4, 16, 123), torch.float32, 1.0)
    labels.view(-1)[2] = bad
    with pytest.raises((ValueError, RuntimeError), match=r"labels must be in \[0, 123\).*got " + str(bad)):
        fused_linear_cross_entropy(hidden, weight, labels)
    labels.view(-1)[2] = -1
    loss = fused_linear_cross_entropy(hidden, weight, labels, ignore_index=-1)
    assert torch.isfinite(loss)


def test_compiled_backward_with_transposed_views(monkeypatch):
    """#18: hidden and weight as dense transposed views through torch.compile with Inductor (about 20 s of C++
    compilation on CPU): it asserts the real kernels' output strides against the fake kernels' ("incorrect fake
    kernel" before: the fakes kept the views' strides, the kernels return contiguous gradients)."""
    import torch._inductor.config as inductor_config
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)  # a cached graph would hide a changed fake
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "torch")
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    hidden_t = torch.randn(16, 10, generator=g, requires_grad=True)  # hidden = hidden_t.t(): [10, 16]
    weight_t = torch.randn(16, 50, generator=g, requires_grad=True)  # weight = weight_t.t(): [50, 16]
    labels = torch.randint(0, 50, (10,), generator=g)

    def loss_fn(h, w, y):
        return fused_linear_cross_entropy(h.t(), w.t(), y)

    compiled = torch.compile(loss_fn, fullgraph=True)
    got = torch.autograd.grad(compiled(hidden_t, weight_t, labels), (hidden_t, weight_t))
    want = torch.autograd.grad(loss_fn(hidden_t, weight_t, labels), (hidden_t, weight_t))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, want))
