"""apply_fused_loss on stock transformers models: same loss and gradients as the stock loss, clean revert."""
import pytest
import torch
from transformers import (BartConfig, BartForConditionalGeneration, BertConfig, BertForMaskedLM, GPT2Config,
                          GPT2LMHeadModel, T5Config, T5ForConditionalGeneration)

from hf_pretrain_ext.patching import apply_fused_loss, is_patched, revert_fused_loss

V = 101


def tiny(name):
    torch.manual_seed(0)
    if name == "bert":
        return BertForMaskedLM(BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=64, hidden_dropout_prob=0.0,
                                          attention_probs_dropout_prob=0.0))
    if name == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=32, n_layer=1, n_head=2, resid_pdrop=0.0,
                                          embd_pdrop=0.0, attn_pdrop=0.0))
    if name == "bart":
        m = BartForConditionalGeneration(BartConfig(vocab_size=V, d_model=32, encoder_layers=1, decoder_layers=1,
                                                    encoder_attention_heads=2, decoder_attention_heads=2,
                                                    encoder_ffn_dim=64, decoder_ffn_dim=64, dropout=0.0,
                                                    max_position_embeddings=64))
        with torch.no_grad():
            m.final_logits_bias.normal_()  # exercise the bias added after the head
        return m
    return T5ForConditionalGeneration(T5Config(vocab_size=V, d_model=32, d_kv=16, d_ff=64, num_layers=1,
                                               num_heads=2, dropout_rate=0.0, decoder_start_token_id=0))


def inputs(name, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (2, 12), generator=g)
    labels = torch.randint(3, V, (2, 12), generator=g) if name in ("bart", "t5") else ids.clone()
    labels[torch.rand(2, 12, generator=g) < 0.4] = -100
    return {"input_ids": ids, "labels": labels}


def loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["bert", "gpt2", "bart", "t5"])
def test_fused_matches_stock(name):
    model = tiny(name).train()
    batch = inputs(name)
    keys = list(model.state_dict())
    ref_loss, ref_grads = loss_and_grads(model, batch)
    apply_fused_loss(model)
    assert is_patched(model) and model.accepts_loss_kwargs
    out = model(**batch)
    assert out.logits is None
    loss, grads = loss_and_grads(model, batch)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == ref_grads.keys()
    for n in grads:
        torch.testing.assert_close(grads[n], ref_grads[n], rtol=1e-4, atol=1e-6, msg=n)
    assert list(model.state_dict()) == keys
    # evaluation keeps the stock path and its logits
    model.eval()
    assert model(**batch).logits.shape[-1] == V
    revert_fused_loss(model)
    assert not is_patched(model) and "forward" not in model.__dict__
    model.train()
    torch.testing.assert_close(model(**batch).loss, ref_loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_num_items_in_batch_accumulation(name):
    model = apply_fused_loss(tiny(name).train())
    micro = [inputs(name, seed=s) for s in range(3)]
    big = {k: torch.cat([m[k] for m in micro]) for k in micro[0]}
    _, ref = loss_and_grads(model, big)
    count = lambda lab: int((lab[:, 1:] if name == "gpt2" else lab).ne(-100).sum())  # noqa: E731
    total = sum(count(m["labels"]) for m in micro)
    model.zero_grad()
    for m in micro:
        model(**m, num_items_in_batch=torch.tensor(total)).loss.backward()
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, ref[n], rtol=1e-4, atol=1e-6, msg=n)


def test_unsupported_model():
    from transformers import BertForSequenceClassification
    with pytest.raises(ValueError, match="supports"):
        apply_fused_loss(BertForSequenceClassification(BertConfig(vocab_size=V, hidden_size=32,
                                                                  num_hidden_layers=1, num_attention_heads=2,
                                                                  intermediate_size=64)))


def test_signature_kept_for_the_trainer():
    import inspect
    model = apply_fused_loss(tiny("bert"))
    params = inspect.signature(model.forward).parameters
    assert "input_ids" in params and "labels" in params and "self" not in params
