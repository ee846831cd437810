"""The torch backend's reused CPU buffers (kernels/ops/workspace.py): reused when nothing holds them, never written
over while anything does (a pending backward, a gradient the caller kept, an accumulated .grad), per thread, and
off when asked."""
import threading

import pytest
import torch

from flce_cases import make_inputs
from hf_pretrain_ext.kernels import fused_linear_cross_entropy, linear_cross_entropy_reference, release_workspace, \
    workspace_bytes
from hf_pretrain_ext.kernels.ops import workspace


@pytest.fixture(autouse=True)
def torch_backend(monkeypatch):
    monkeypatch.setenv("HFPX_LOSS_BACKEND", "torch")
    release_workspace()
    yield
    release_workspace()


def _inputs(seed=0, labelled=0.5):
    hidden, weight, labels, bias = make_inputs((2, 16, 8, 50), torch.float32, labelled, bias=True, seed=seed,
                                               device="cpu")
    return [t.requires_grad_() for t in (hidden, weight, bias)], labels


def _grads(fn, leaves, labels, **options):
    return torch.autograd.grad(fn(leaves[0], leaves[1], labels, leaves[2], **options), leaves)


def _close(a, b):
    return all(torch.allclose(x, y, atol=1e-6, rtol=1e-5) for x, y in zip(a, b))


def test_buffers_are_reused_once_the_caller_drops_the_gradient():
    leaves, labels = _inputs()
    first = _grads(fused_linear_cross_entropy, leaves, labels)
    held = workspace_bytes()
    assert held >= 50 * 8 * 4  # grad_weight [50, 8] fp32 at least
    first_ptr = first[1].data_ptr()
    del first
    second = _grads(fused_linear_cross_entropy, leaves, labels)
    assert second[1].data_ptr() == first_ptr  # the same memory, not a fresh allocation
    assert workspace_bytes() == held
    assert _close(second, _grads(linear_cross_entropy_reference, leaves, labels))


def test_a_kept_gradient_is_never_written_over():
    leaves, labels = _inputs(seed=0)
    first = _grads(fused_linear_cross_entropy, leaves, labels)
    kept = [g.clone() for g in first]
    other, other_labels = _inputs(seed=1)
    second = _grads(fused_linear_cross_entropy, other, other_labels)
    assert second[1].data_ptr() != first[1].data_ptr()
    assert all(torch.equal(a, b) for a, b in zip(first, kept))
    assert _close(second, _grads(linear_cross_entropy_reference, other, other_labels))


def test_two_forwards_before_one_backward():
    """The first forward's softmax is still pending when the second one runs: the second gets its own buffer."""
    leaves, labels = _inputs(seed=0)
    other, other_labels = _inputs(seed=1)
    loss_a = fused_linear_cross_entropy(leaves[0], leaves[1], labels, leaves[2], label_smoothing=0.1)
    loss_b = fused_linear_cross_entropy(other[0], other[1], other_labels, other[2], z_loss=1e-3)
    grads_b = torch.autograd.grad(loss_b, other)
    grads_a = torch.autograd.grad(loss_a, leaves)
    assert _close(grads_a, _grads(linear_cross_entropy_reference, leaves, labels, label_smoothing=0.1))
    assert _close(grads_b, _grads(linear_cross_entropy_reference, other, other_labels, z_loss=1e-3))


def test_accumulated_gradients_over_micro_batches():
    """.backward() twice (gradient accumulation): the first gradient becomes weight.grad, which the second call
    must add to, not overwrite."""
    leaves, labels = _inputs(seed=0)
    _, labels_2 = _inputs(seed=1)
    for y in (labels, labels_2):
        fused_linear_cross_entropy(leaves[0], leaves[1], y, leaves[2]).backward()
    ours = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    for y in (labels, labels_2):
        linear_cross_entropy_reference(leaves[0], leaves[1], y, leaves[2]).backward()
    assert _close(ours, [t.grad for t in leaves])


def test_no_row_labelled_and_every_row_labelled():
    for labelled in (0.0, 1.0):
        leaves, labels = _inputs(labelled=labelled)
        for _ in range(2):
            assert _close(_grads(fused_linear_cross_entropy, leaves, labels),
                          _grads(linear_cross_entropy_reference, leaves, labels))


def test_each_thread_has_its_own_pool():
    leaves, labels = _inputs()
    _grads(fused_linear_cross_entropy, leaves, labels)
    seen = {}

    def work():
        seen["before"] = workspace_bytes()
        seen["grads"] = _grads(fused_linear_cross_entropy, leaves, labels)
        seen["after"] = workspace_bytes()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["before"] == 0 and seen["after"] > 0
    assert _close(seen["grads"], _grads(linear_cross_entropy_reference, leaves, labels))


def test_off_and_released(monkeypatch):
    leaves, labels = _inputs()
    _grads(fused_linear_cross_entropy, leaves, labels)
    assert workspace_bytes() > 0
    release_workspace()
    assert workspace_bytes() == 0
    monkeypatch.setattr(workspace, "WORKSPACE_ELEMENTS", 0)
    grads = _grads(fused_linear_cross_entropy, leaves, labels)
    assert workspace_bytes() == 0
    assert _close(grads, _grads(linear_cross_entropy_reference, leaves, labels))
