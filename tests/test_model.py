"""hfpx-bert: Auto* registration, stock-BERT weight compatibility, sparse-prediction loss, num_items_in_batch."""
import pytest
import torch
from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining,
                          AutoModelForSequenceClassification, BertConfig, BertForMaskedLM, BertForPreTraining)

import hf_pretrain_ext  # noqa: F401  (registers hfpx-bert)
from hf_pretrain_ext.models import HfpxBertConfig, HfpxBertForMaskedLM, HfpxBertForPreTraining

SMALL = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def batch(seed=0, b=3, length=20, frac=0.3, vocab=97):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, length), generator=g)
    labels = torch.where(torch.rand(b, length, generator=g) < frac, ids, torch.full_like(ids, -100))
    return ids, labels


@pytest.mark.parametrize("auto, cls_name", [(AutoModel, "HfpxBertModel"), (AutoModelForMaskedLM, "HfpxBertForMaskedLM"),
                                            (AutoModelForPreTraining, "HfpxBertForPreTraining"),
                                            (AutoModelForSequenceClassification,
                                             "HfpxBertForSequenceClassification")])
def test_auto_classes(auto, cls_name):
    config = AutoConfig.for_model("hfpx-bert", **SMALL)
    assert type(auto.from_config(config)).__name__ == cls_name


@pytest.mark.parametrize("fused", [True, False])
def test_loss_matches_stock_bert(fused):
    torch.manual_seed(0)
    ours = HfpxBertForMaskedLM(HfpxBertConfig(use_fused_loss=fused, **SMALL)).eval()
    stock = BertForMaskedLM(BertConfig(**SMALL)).eval()
    missing, unexpected = stock.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and not [k for k in missing if "decoder" not in k]
    stock.tie_weights()
    ids, labels = batch()
    a, b = ours(input_ids=ids, labels=labels), stock(input_ids=ids, labels=labels)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-5, atol=1e-5)
    # sparse logits are the labelled rows of the dense ones, in row-major order
    torch.testing.assert_close(a.logits, b.logits[labels != -100], rtol=1e-5, atol=1e-5)
    dense = ours(input_ids=ids)
    torch.testing.assert_close(dense.logits, b.logits, rtol=1e-5, atol=1e-5)


def test_stock_checkpoint_loads_both_ways(tmp_path):
    stock = BertForPreTraining(BertConfig(**SMALL))
    stock.save_pretrained(tmp_path / "stock")
    ours = HfpxBertForPreTraining.from_pretrained(tmp_path / "stock")
    for name, p in stock.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], p, msg=name)
    ours.save_pretrained(tmp_path / "ours")
    back = BertForPreTraining.from_pretrained(tmp_path / "ours")
    for name, p in back.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], p, msg=name)


@pytest.mark.parametrize("fused", [True, False])
def test_gradient_accumulation_equals_big_batch(fused):
    """4 micro-batches with num_items_in_batch (what the Trainer passes) == one batch of all 4."""
    torch.manual_seed(0)
    model = HfpxBertForMaskedLM(HfpxBertConfig(use_fused_loss=fused, **SMALL))
    micro = [batch(seed=s, frac=0.1 + 0.2 * s) for s in range(4)]
    ids, labels = torch.cat([m[0] for m in micro]), torch.cat([m[1] for m in micro])
    model(input_ids=ids, labels=labels).loss.backward()
    big = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    total = sum(int((m[1] != -100).sum()) for m in micro)
    for i, l in micro:
        model(input_ids=i, labels=l, num_items_in_batch=torch.tensor(total)).loss.backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, big[n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("fused", [True, False])
def test_no_labelled_token_gives_zero_loss_and_finite_grads(fused):
    model = HfpxBertForMaskedLM(HfpxBertConfig(use_fused_loss=fused, **SMALL))
    ids, _ = batch()
    out = model(input_ids=ids, labels=torch.full_like(ids, -100))
    assert out.loss.item() == 0.0
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_pretraining_head_sentence_loss():
    torch.manual_seed(0)
    model = HfpxBertForPreTraining(HfpxBertConfig(**SMALL))
    ids, labels = batch()
    out = model(input_ids=ids, labels=labels, sentence_order_label=torch.tensor([0, 1, 1]))
    torch.testing.assert_close(out.loss, out.mlm_loss + out.sop_loss)
    assert out.seq_relationship_logits.shape == (3, 2)


@pytest.mark.parametrize("cls", [HfpxBertForMaskedLM, HfpxBertForPreTraining])
def test_decoder_tied_to_embeddings(cls):
    model = cls(HfpxBertConfig(**SMALL))
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias


@pytest.mark.parametrize("auto", [AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining,
                                  AutoModelForSequenceClassification])
def test_sinusoidal_position_init_fresh_only(auto, tmp_path):
    from hf_pretrain_ext.models.modeling_hfpx_bert import sinusoidal_table
    config = HfpxBertConfig(**SMALL, position_embedding_init="sinusoidal")
    model = auto.from_config(config)
    table = model.base_model.embeddings.position_embeddings.weight
    assert torch.allclose(table, sinusoidal_table(64, 32, 0.02).float())
    assert table.pow(2).mean().sqrt().item() == pytest.approx(0.02, rel=1e-4)
    assert table[0, 1].item() == pytest.approx(0.02 / 0.5 ** 0.5, rel=1e-4)  # cos(0), scaled to RMS 0.02
    assert model.base_model.embeddings.word_embeddings.weight.std().item() == pytest.approx(0.02, rel=0.1)
    with torch.no_grad():
        table.add_(1.0)  # a checkpoint's own values must survive loading
    model.save_pretrained(tmp_path)
    loaded = auto.from_pretrained(tmp_path)
    assert torch.equal(loaded.base_model.embeddings.position_embeddings.weight, table)
    plain = auto.from_config(HfpxBertConfig(**SMALL)).base_model.embeddings.position_embeddings.weight
    assert not torch.allclose(plain, sinusoidal_table(64, 32, 0.02).float(), atol=1e-2)
    with pytest.raises(ValueError, match="position_embedding_init"):
        HfpxBertConfig(**SMALL, position_embedding_init="rotary")
