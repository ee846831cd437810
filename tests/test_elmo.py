"""hfpx-elmo (ELMo's biLM, token input): the forward direction sees only the past, the backward only the future,
neither crosses a document; the loss is the mean of both directions' next / previous-token losses through one
shared softmax (checked against an eager computation); save/reload through Auto*; the loss falls."""
import pytest
import torch
import torch.nn.functional as F

import hf_pretrain_ext  # noqa: F401  (registers hfpx-elmo)
from hf_pretrain_ext.models import HfpxElmoConfig, HfpxElmoForPreTraining
from hfpx_testutils import train_losses

V = 30


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return HfpxElmoForPreTraining(HfpxElmoConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, dropout=0.0,
                                                 initializer_range=0.3, **kw)).eval()


def states(m, ids, positions=None):
    _, fwd, bwd = m.elmo.directions(ids, position_ids=positions)
    return fwd[-1], bwd[-1]


def test_forward_sees_the_past_and_backward_the_future():
    m = model()
    ids = torch.randint(0, V, (1, 9), generator=torch.Generator().manual_seed(1))
    f, b = states(m, ids)
    j = 4
    changed = ids.clone()
    changed[0, j] = (changed[0, j] + 1) % V
    f2, b2 = states(m, changed)
    torch.testing.assert_close(f2[0, :j], f[0, :j])  # forward before j: unchanged
    torch.testing.assert_close(b2[0, j + 1:], b[0, j + 1:])  # backward after j: unchanged
    assert not torch.allclose(f2[0, j:], f[0, j:]) and not torch.allclose(b2[0, :j + 1], b[0, :j + 1])


def test_no_state_crosses_a_document():
    m = model()
    ids = torch.randint(0, V, (2, 10), generator=torch.Generator().manual_seed(2))
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]])
    f, b = states(m, ids, positions)
    # each document alone, as its own row, gives the same states
    for row, (lo, hi) in ((0, (0, 4)), (0, (4, 10)), (1, (0, 7)), (1, (7, 10))):
        fa, ba = states(m, ids[row:row + 1, lo:hi])
        torch.testing.assert_close(f[row, lo:hi], fa[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b[row, lo:hi], ba[0], rtol=1e-5, atol=1e-6)


def test_loss_is_the_mean_of_both_directions():
    m = model()
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, V, (2, 8), generator=g)
    positions = torch.tensor([[0, 1, 2, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6, 7]])
    labels = torch.where(positions == 0, -100, ids)
    labels[1, 7] = -100  # e.g. padding
    loss = m(ids, position_ids=positions, labels=labels).loss
    f, b = states(m, ids, positions)
    logit_f, logit_b = m.lm_head(f), m.lm_head(b)
    fwd = F.cross_entropy(logit_f[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    prev = torch.where(labels[:, 1:] != -100, ids[:, :-1], -100)
    bwd = F.cross_entropy(logit_b[:, 1:].reshape(-1, V), prev.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(loss, (fwd + bwd) / 2, rtol=1e-5, atol=1e-6)


def test_save_reload_and_feature_layers(tmp_path):
    from transformers import AutoModel, AutoModelForPreTraining
    m = model()
    m.save_pretrained(tmp_path)
    again = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[3, 4, 5, 6]])
    torch.testing.assert_close(again(ids).logits, m(ids).logits)
    out = AutoModel.from_pretrained(tmp_path)(ids)
    assert len(out.hidden_states) == 3 and all(h.shape == (1, 4, 16) for h in out.hidden_states)
    emb = m.elmo.embeddings(ids)
    torch.testing.assert_close(out.hidden_states[0], torch.cat([emb, emb], -1))


def test_loss_falls_in_a_few_dozen_steps():
    g = torch.Generator().manual_seed(0)
    ids = (torch.randint(0, 10, (16, 1), generator=g) + torch.arange(10)) % 10  # each token: previous + 1
    labels = ids.clone()
    labels[:, 0] = -100
    losses = train_losses(model(seed=4), dict(input_ids=ids, labels=labels), 40, 0.03)
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_odd_hidden_size_is_refused():
    with pytest.raises(ValueError, match="even"):
        HfpxElmoConfig(hidden_size=15)
