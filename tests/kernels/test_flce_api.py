"""Public API: backend selection, argument checks, the module wrapper, layouts (non-contiguous, tied
embeddings, fp64), the reference's own semantics, and that the torch backend never holds [N, V] logits."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from flce_cases import DEVICE, check_against_reference, make_inputs
from hf_pretrain_ext.kernels import FusedLinearCrossEntropy, fused_linear_cross_entropy, \
    linear_cross_entropy_reference, resolve_backend
from hf_pretrain_ext.kernels.ops import flce_torch


def test_backend_selection(monkeypatch):
    monkeypatch.delenv("HFPX_LOSS_BACKEND", raising=False)
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    assert resolve_backend("torch", torch.device("cuda")) == "torch"
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "triton")
    assert resolve_backend("torch", torch.device("cpu")) == "triton"  # the variable wins
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "cuda")
    with pytest.raises(ValueError, match="HFPX_LOSS_BACKEND"):
        resolve_backend("auto", torch.device("cpu"))
    monkeypatch.delenv("HFPX_LOSS_BACKEND")
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("liger", torch.device("cpu"))


def test_triton_on_cpu_without_interpreter_raises(monkeypatch):
    pytest.importorskip("triton")
    import hf_pretrain_ext.kernels.ops.flce_triton  # noqa: F401  (kernels are built at import: keep the real mode)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    hidden, weight, labels, _ = make_inputs((1, 4, 8, 16), torch.float32, 0.5, device="cpu")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        fused_linear_cross_entropy(hidden, weight, labels, backend="triton")


@pytest.mark.parametrize("bad", [dict(reduction="avg"), dict(label_smoothing=1.5), dict(softcap=0.0)])
def test_bad_options_raise(bad):
    hidden, weight, labels, _ = make_inputs((1, 4, 8, 16), torch.float32, 0.5)
    with pytest.raises(ValueError):
        fused_linear_cross_entropy(hidden, weight, labels, **bad)


def test_bad_shapes_raise():
    hidden, weight, labels, _ = make_inputs((1, 4, 8, 16), torch.float32, 0.5)
    with pytest.raises(ValueError, match="labels"):
        fused_linear_cross_entropy(hidden, weight, labels[:, :3])
    with pytest.raises(ValueError, match="weight"):
        fused_linear_cross_entropy(hidden, weight[:, :5], labels)
    with pytest.raises(ValueError, match="dtype"):
        fused_linear_cross_entropy(hidden, weight.double(), labels)


def test_module_wrapper_matches_functional(backend):
    hidden, weight, labels, bias = make_inputs((2, 7, 16, 50), torch.float32, 0.5, bias=True)
    module = FusedLinearCrossEntropy(label_smoothing=0.1, z_loss=1e-3, reduction="sum")
    expected = fused_linear_cross_entropy(hidden, weight, labels, bias, label_smoothing=0.1, z_loss=1e-3,
                                          reduction="sum")
    assert torch.equal(module(hidden, weight, labels, bias), expected)
    assert list(module.state_dict()) == [] and "z_loss=0.001" in repr(module)
    with pytest.raises(ValueError):
        FusedLinearCrossEntropy(reduction="avg")


def test_noncontiguous_inputs(backend):
    hidden, weight, labels, bias = make_inputs((3, 11, 31, 123), torch.float32, 0.5, bias=True)
    hidden_t = hidden.transpose(0, 1).contiguous().transpose(0, 1)  # [B, T, H] with strides of [T, B, H]
    weight_t = weight.t().contiguous().t()  # [V, H] with strides (1, V)
    labels_t = labels.t().contiguous().t()
    assert not (hidden_t.is_contiguous() or weight_t.is_contiguous() or labels_t.is_contiguous())
    check_against_reference(hidden_t, weight_t, labels_t, bias, torch.float32, label_smoothing=0.1)


def test_tied_embeddings_accumulate_both_gradients(backend):
    """The head weight is also the input embedding: autograd must sum both uses' gradients."""
    _, weight, labels, _ = make_inputs((2, 13, 31, 123), torch.float32, 0.4)
    ids = torch.randint(0, 123, labels.shape, generator=torch.Generator().manual_seed(3)).to(DEVICE)
    grads = []
    for loss_fn in (fused_linear_cross_entropy, linear_cross_entropy_reference):
        emb = weight.clone().requires_grad_()
        hidden = torch.tanh(F.embedding(ids, emb))  # [B, T, H]
        loss_fn(hidden, emb, labels, z_loss=1e-3).backward()
        grads.append(emb.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_fp64_inputs_match_reference(backend):
    hidden, weight, labels, bias = make_inputs((2, 9, 31, 123), torch.float64, 0.5, bias=True)
    check_against_reference(hidden, weight, labels, bias, torch.float64, softcap=3.0, label_smoothing=0.2)


def test_reference_semantics_equal_torch_cross_entropy():
    """mean over labelled rows and label smoothing exactly as F.cross_entropy; z-loss as lse^2."""
    hidden, weight, labels, bias = make_inputs((2, 9, 31, 123), torch.float64, 0.5, bias=True)
    logits = F.linear(hidden, weight, bias).view(-1, 123)
    y = labels.view(-1)
    expected = F.cross_entropy(logits, y, label_smoothing=0.2)
    ours = linear_cross_entropy_reference(hidden, weight, labels, bias, label_smoothing=0.2)
    assert torch.allclose(ours, expected)
    z = linear_cross_entropy_reference(hidden, weight, labels, bias, z_loss=0.5, reduction="sum")
    keep = y != -100
    manual = (F.cross_entropy(logits, y, reduction="sum") + 0.5 * (torch.logsumexp(logits[keep], -1) ** 2).sum())
    assert torch.allclose(z, manual)


class MaxTensorSize(TorchDispatchMode):
    """Largest tensor (in elements) any op creates while active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_torch_backend_never_materialises_all_logits(monkeypatch):
    """256 labelled rows, V=1000, chunks of 16 rows (softcap: the chunked path): nothing near [256, 1000] may
    ever exist."""
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "torch")
    monkeypatch.setattr(flce_torch, "CHUNK_ELEMENTS", 16 * 1000)
    hidden, weight, labels, bias = make_inputs((4, 64, 8, 1000), torch.float32, 1.0, bias=True, device="cpu")
    leaves = [t.requires_grad_() for t in (hidden, weight, bias)]
    with MaxTensorSize() as probe:
        loss = fused_linear_cross_entropy(*leaves[:2], labels, leaves[2], softcap=5.0, label_smoothing=0.1)
        torch.autograd.grad(loss, leaves)
    assert probe.largest <= 16 * 1000, probe.largest  # one chunk of logits; weight is 8 * 1000


def test_cached_rows_only_within_the_budget(monkeypatch):
    """Eager torch backend: the labelled rows' softmax is kept from forward to backward only when it fits
    CACHE_ELEMENTS ([256, 1000] here); one element over the budget and it runs in chunks again (inside the
    torch.library op, whose outputs are all the probe sees: [N] rows)."""
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "torch")
    monkeypatch.setattr(flce_torch, "CHUNK_ELEMENTS", 16 * 1000)
    hidden, weight, labels, bias = make_inputs((4, 64, 8, 1000), torch.float32, 1.0, bias=True, device="cpu")
    leaves = [t.requires_grad_() for t in (hidden, weight, bias)]
    for budget, largest in ((256 * 1000, 256 * 1000), (256 * 1000 - 1, 16 * 1000)):
        monkeypatch.setattr(flce_torch, "CACHE_ELEMENTS", budget)
        with MaxTensorSize() as probe:
            grads = torch.autograd.grad(fused_linear_cross_entropy(*leaves[:2], labels, leaves[2]), leaves)
        assert probe.largest == largest if budget == 256 * 1000 else probe.largest <= largest, probe.largest
        if budget == 256 * 1000:
            cached = grads
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(cached, grads))


def test_cached_rows_second_backward_recomputes(monkeypatch):
    """retain_graph: the cached buffer becomes the gradient in the first backward; a second one recomputes and
    gives the same gradients (with label smoothing and z-loss, whose terms the buffer also carries)."""
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "torch")
    hidden, weight, labels, bias = make_inputs((2, 16, 8, 50), torch.float32, 0.5, bias=True, device="cpu")
    leaves = [t.requires_grad_() for t in (hidden, weight, bias)]
    loss = fused_linear_cross_entropy(*leaves[:2], labels, leaves[2], label_smoothing=0.1, z_loss=1e-3)
    first = torch.autograd.grad(loss, leaves, retain_graph=True)
    second = torch.autograd.grad(loss, leaves)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(first, second))


def test_int32_labels(backend):
    hidden, weight, labels, _ = make_inputs((2, 9, 16, 50), torch.float32, 0.5)
    expected = fused_linear_cross_entropy(hidden, weight, labels)
    assert torch.equal(fused_linear_cross_entropy(hidden, weight, labels.int()), expected)


def test_autocast_computes_in_the_autocast_dtype():
    """Under autocast (Trainer --bf16) fp32 weights meet bf16 hidden states: cast both, as F.linear does there,
    and hand fp32 gradients back to the fp32 leaves."""
    hidden, weight, labels, bias = make_inputs((2, 9, 16, 50), torch.float32, 0.5, bias=True, device="cpu")
    leaves = [t.requires_grad_() for t in (hidden, weight, bias)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fused_linear_cross_entropy(*leaves[:2], labels, leaves[2], backend="torch")
    expected = fused_linear_cross_entropy(*[t.detach().bfloat16() for t in leaves[:2]], labels,
                                          leaves[2].detach().bfloat16(), backend="torch")
    assert torch.equal(loss, expected)
    grads = torch.autograd.grad(loss, leaves)
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_softmax_in_place_and_its_fallback(monkeypatch):
    """The cached path's softmax over its own buffer, and lse from the largest probability, match torch's, also
    through the plain fallback used should ATen refuse to write over the input."""
    z = torch.randn(5, 300, generator=torch.Generator().manual_seed(0)) * 30
    want_p, want_lse = torch.softmax(z, -1), torch.logsumexp(z, -1)
    for broken in (False, True):
        if broken:
            def refuse(*args, **kwargs):
                raise RuntimeError("aliasing refused")
            monkeypatch.setattr(torch.ops.aten._softmax, "out", refuse)
        buf = z.clone()
        lse = flce_torch.softmax_in_place(buf)
        assert torch.allclose(buf, want_p, atol=1e-6) and torch.allclose(lse, want_lse, atol=1e-4)
