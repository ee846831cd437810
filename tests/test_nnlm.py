"""hfpx-nnlm (Bengio et al. 2003): the fused loss equals the eager softmax of y = b + W x + U tanh(d + H x), the
context never reaches into another document, save/reload through Auto*, and the loss falls in a few dozen steps."""
import pytest
import torch
import torch.nn.functional as F

import hf_pretrain_ext  # noqa: F401  (registers hfpx-nnlm)
from hf_pretrain_ext.models import HfpxNNLMConfig, HfpxNNLMForCausalLM
from hfpx_testutils import train_losses

V = 40


def model(direct=True, seed=0, **kw):
    torch.manual_seed(seed)
    return HfpxNNLMForCausalLM(HfpxNNLMConfig(vocab_size=V, context_size=3, embedding_size=8, hidden_size=12,
                                              direct_connections=direct, initializer_range=0.5, **kw))


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (2, 10), generator=g)
    labels = ids.clone()
    labels[:, 0] = -100
    labels[1, 6] = -100
    return ids, labels


def eager_logits(m, ids, position_ids=None):
    """y = b + W x + U tanh(d + H x) written out from the paper, context built by hand."""
    n, emb = m.config.context_size, m.nnlm.context.embed.weight
    rows = []
    for b in range(ids.shape[0]):
        row = []
        for t in range(ids.shape[1]):
            pos = t if position_ids is None else int(position_ids[b, t])
            slots = [emb[ids[b, t - k]] if pos >= k else m.nnlm.context.start[k] for k in range(n)]
            x = torch.cat(slots)
            y = m.lm_head(torch.tanh(m.nnlm.hidden(x)))
            if m.direct is not None:
                y = y + m.direct(x)
            row.append(y)
        rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize("direct", [True, False])
def test_fused_loss_and_logits_are_the_papers(direct):
    m = model(direct)
    ids, labels = batch()
    want_logits = eager_logits(m, ids)
    torch.testing.assert_close(m(ids).logits, want_logits, rtol=1e-5, atol=1e-5)
    want = F.cross_entropy(want_logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    m.train()
    loss = m(ids, labels=labels).loss
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in m.named_parameters()}
    m.zero_grad()
    want.backward()
    # the reference's graph is built from the same parameters: their gradients must match too
    for k, p in m.named_parameters():
        torch.testing.assert_close(grads[k], p.grad, rtol=1e-4, atol=1e-6, msg=k)


def test_context_stops_at_document_starts():
    m = model().eval()
    ids, _ = batch()
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3, 4, 5]] * 2)  # a second document starts at column 4
    out = m(ids, position_ids=positions).logits
    torch.testing.assert_close(out, eager_logits(m, ids, positions), rtol=1e-5, atol=1e-5)
    changed = ids.clone()
    changed[:, :4] = (changed[:, :4] + 7) % V  # another first document
    again = m(changed, position_ids=positions).logits
    torch.testing.assert_close(again[:, 4:], out[:, 4:])  # the second document cannot see it
    assert not torch.allclose(again[:, :4], out[:, :4])


def test_save_reload_through_auto(tmp_path):
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
    m = model()
    m.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "hfpx-nnlm"
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids, _ = batch()
    torch.testing.assert_close(again(ids).logits, m(ids).logits)
    base = AutoModel.from_pretrained(tmp_path)
    out = base(ids)
    assert out.last_hidden_state.shape == (2, 10, 12) and len(out.hidden_states) == 1


def test_loss_falls_in_a_few_dozen_steps():
    g = torch.Generator().manual_seed(0)
    # a learnable stream: each token is (previous + 1) mod 10 inside a vocabulary of 40
    ids = (torch.randint(0, 10, (16, 1), generator=g) + torch.arange(12)) % 10
    losses = train_losses(model(seed=3), dict(input_ids=ids, labels=ids.clone()), 40, 0.05)
    assert losses[-1] < 0.2 * losses[0], losses[::10]
