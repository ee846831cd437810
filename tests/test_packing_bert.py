"""Document-aware packing in hfpx-bert: several documents in one row (document_ids, per-document positions,
block-diagonal attention) give the same logits and MLM loss as each document run alone."""
import pytest
import torch

from hf_pretrain_ext.models import HfpxBertConfig, HfpxBertForMaskedLM
from hf_pretrain_ext.models.modeling_hfpx_bert import document_attention_mask, document_position_ids

SMALL = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
LENGTHS = (5, 7, 4)  # three documents packed into one row of 20 with 4 padding tokens
PAD = 4


def documents(seed=0):
    g = torch.Generator().manual_seed(seed)
    docs = [torch.randint(5, 97, (n,), generator=g) for n in LENGTHS]
    labels = [torch.where(torch.rand(n, generator=g) < 0.4, d, torch.full_like(d, -100)) for n, d in zip(LENGTHS, docs)]
    for lab, d in zip(labels, docs):
        lab[1] = d[1]  # at least one label per document
    return docs, labels


def packed(docs, labels):
    ids = torch.cat(docs + [torch.zeros(PAD, dtype=torch.long)])[None]
    lab = torch.cat(labels + [torch.full((PAD,), -100)])[None]
    doc_ids = torch.cat([torch.full((n,), i) for i, n in enumerate(LENGTHS)] + [torch.full((PAD,), -1)])[None]
    return ids, lab, doc_ids


def test_position_ids_and_mask():
    doc_ids = torch.tensor([[0, 0, 1, 1, 1, -1]])
    assert document_position_ids(doc_ids).tolist() == [[0, 1, 0, 1, 2, 0]]
    allowed = document_attention_mask(doc_ids, torch.float32)[0, 0] == 0
    assert allowed[0].tolist() == [True, True, False, False, False, False]
    assert allowed[3].tolist() == [False, False, True, True, True, False]
    assert allowed[5].tolist() == [False, False, False, False, False, True]  # padding sees only itself


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("fused", [True, False])
def test_packed_row_equals_documents_alone(attn, fused):
    torch.manual_seed(0)
    model = HfpxBertForMaskedLM(HfpxBertConfig(use_fused_loss=fused, attn_implementation=attn, **SMALL)).eval()
    docs, labels = documents()
    ids, lab, doc_ids = packed(docs, labels)
    with torch.no_grad():
        alone = [model(input_ids=d[None]).logits[0] for d in docs]  # [n, V] each
        together = model(input_ids=ids, document_ids=doc_ids).logits[0]  # [20, V]
        torch.testing.assert_close(together[:sum(LENGTHS)], torch.cat(alone), rtol=1e-5, atol=1e-5)
        out = model(input_ids=ids, document_ids=doc_ids, labels=lab)
        flat_alone, flat_labels = torch.cat(alone), torch.cat(labels)
        expected = torch.nn.functional.cross_entropy(flat_alone, flat_labels, ignore_index=-100)
        torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.logits, flat_alone[flat_labels != -100], rtol=1e-5, atol=1e-5)


def test_without_document_ids_documents_leak():
    """The check above is sensitive: plain packing (one position run, full attention) changes the logits."""
    torch.manual_seed(0)
    model = HfpxBertForMaskedLM(HfpxBertConfig(**SMALL)).eval()
    docs, labels = documents()
    ids, _, _ = packed(docs, labels)
    with torch.no_grad():
        leaky = model(input_ids=ids[:, :sum(LENGTHS)]).logits[0]
        alone = torch.cat([model(input_ids=d[None]).logits[0] for d in docs])
    assert not torch.allclose(leaky, alone, atol=1e-3)


def test_packed_training_step_gradients_match():
    torch.manual_seed(0)
    model = HfpxBertForMaskedLM(HfpxBertConfig(**SMALL)).train()
    docs, labels = documents(1)
    ids, lab, doc_ids = packed(docs, labels)
    n = int((lab != -100).sum())
    model(input_ids=ids, document_ids=doc_ids, labels=lab).loss.backward()
    packed_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for d, y in zip(docs, labels):  # each alone, summed with the packed row's divisor
        model(input_ids=d[None], labels=y[None], num_items_in_batch=n).loss.backward()
    for a, b in zip(packed_grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
