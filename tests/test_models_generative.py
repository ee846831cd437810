"""hfpx-gpt, hfpx-bart, hfpx-t5: Auto* registration, stock weight names and loss, num_items_in_batch, zero labels,
packed-document attention isolation, generation."""
import pytest
import torch
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, BartConfig,
                          BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel, T5Config,
                          T5ForConditionalGeneration)

import hf_pretrain_ext  # noqa: F401  (registers the hfpx types)
from hf_pretrain_ext.collators.causal import document_position_ids
from hf_pretrain_ext.models import (HfpxBartConfig, HfpxBartForConditionalGeneration, HfpxGPTConfig,
                                    HfpxGPTForCausalLM, HfpxT5Config, HfpxT5ForConditionalGeneration)

V = 97
SMALL = {
    "gpt": (HfpxGPTConfig, HfpxGPTForCausalLM, GPT2Config, GPT2LMHeadModel,
            dict(vocab_size=V, n_embd=32, n_layer=2, n_head=2, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
                 attn_pdrop=0.0, bos_token_id=1, eos_token_id=1, pad_token_id=0)),
    "bart": (HfpxBartConfig, HfpxBartForConditionalGeneration, BartConfig, BartForConditionalGeneration,
             dict(vocab_size=V, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                  decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, dropout=0.0,
                  max_position_embeddings=64, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                  decoder_start_token_id=2, forced_eos_token_id=2)),
    "t5": (HfpxT5Config, HfpxT5ForConditionalGeneration, T5Config, T5ForConditionalGeneration,
           dict(vocab_size=V, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2, dropout_rate=0.0,
                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)),
}


def make(name, fused=True, stock=False):
    cfg_cls, cls, stock_cfg, stock_cls, kw = SMALL[name]
    torch.manual_seed(0)
    if stock:
        return stock_cls(stock_cfg(**kw))
    return cls(cfg_cls(use_fused_loss=fused, **kw))


def inputs(name, seed=0, frac=0.3, b=3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (b, 14), generator=g)
    if name == "gpt":
        labels = ids.clone()
        labels[torch.rand(b, 14, generator=g) < frac] = -100
        return {"input_ids": ids, "labels": labels}
    labels = torch.randint(3, V, (b, 9), generator=g)
    labels[torch.rand(b, 9, generator=g) < frac] = -100
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


@pytest.mark.parametrize("name, auto, cls_name", [
    ("gpt", AutoModelForCausalLM, "HfpxGPTForCausalLM"), ("gpt", AutoModel, "HfpxGPTModel"),
    ("bart", AutoModelForSeq2SeqLM, "HfpxBartForConditionalGeneration"), ("bart", AutoModel, "HfpxBartModel"),
    ("t5", AutoModelForSeq2SeqLM, "HfpxT5ForConditionalGeneration"), ("t5", AutoModel, "HfpxT5Model")])
def test_auto_classes(name, auto, cls_name):
    config = AutoConfig.for_model(SMALL[name][0].model_type, **SMALL[name][4])
    assert type(auto.from_config(config)).__name__ == cls_name


@pytest.mark.parametrize("name", ["gpt", "bart", "t5"])
@pytest.mark.parametrize("fused", [True, False])
def test_loss_and_grads_match_stock(name, fused):
    ours, stock = make(name, fused).train(), make(name, stock=True).train()
    missing, unexpected = stock.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and not missing
    batch = inputs(name)
    a, b = ours(**batch), stock(**batch)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-5, atol=1e-5)
    a.loss.backward()
    b.loss.backward()
    stock_grads = dict(stock.named_parameters())
    for n, p in ours.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, stock_grads[n].grad, rtol=1e-4, atol=1e-6, msg=n)
    # eval: logits of the labelled target positions only, equal to the stock dense logits there
    ours.eval(), stock.eval()
    sparse, dense = ours(**batch).logits, stock(**batch).logits
    labels = batch["labels"]
    if name == "gpt":
        dense, labels = dense[:, :-1], labels[:, 1:]
    torch.testing.assert_close(sparse, dense[labels != -100], rtol=1e-5, atol=1e-5)
    # without labels: the stock forward
    no_labels = {k: v for k, v in batch.items() if k != "labels"}
    if name != "gpt":
        no_labels["decoder_input_ids"] = torch.full((3, 4), 2)
    torch.testing.assert_close(ours(**no_labels).logits, stock(**no_labels).logits)


@pytest.mark.parametrize("name", ["gpt", "bart", "t5"])
def test_gradient_accumulation_equals_big_batch(name):
    model = make(name).train()
    micro = [inputs(name, seed=s, frac=0.1 + 0.2 * s) for s in range(3)]
    big = {k: torch.cat([m[k] for m in micro]) for k in micro[0]}
    model(**big).loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    count = (lambda lab: lab[:, 1:]) if name == "gpt" else (lambda lab: lab)
    total = sum(int(count(m["labels"]).ne(-100).sum()) for m in micro)
    for m in micro:
        model(**m, num_items_in_batch=torch.tensor(total)).loss.backward()
    for n, p in model.named_parameters():
        if n in ref:
            torch.testing.assert_close(p.grad, ref[n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("name", ["gpt", "bart", "t5"])
@pytest.mark.parametrize("fused", [True, False])
def test_no_labelled_token_gives_zero_loss(name, fused):
    model = make(name, fused).train()
    batch = inputs(name)
    batch["labels"] = torch.full_like(batch["labels"], -100)
    out = model(**batch)
    assert out.loss.item() == 0.0
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_packed_documents_do_not_attend_across():
    """Two documents in one row with per-document positions give the same logits as each alone."""
    model = make("gpt").eval()
    doc_a, doc_b = torch.randint(3, V, (1, 7)), torch.randint(3, V, (1, 6))
    eos = torch.tensor([[1]])
    row = torch.cat([doc_a, eos, doc_b], dim=1)
    positions = torch.from_numpy(document_position_ids(row.numpy(), 1))
    packed = model(input_ids=row, position_ids=positions, use_cache=False).logits
    alone_a = model(input_ids=torch.cat([doc_a, eos], 1)).logits
    alone_b = model(input_ids=doc_b).logits
    torch.testing.assert_close(packed[:, :8], alone_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed[:, 8:], alone_b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["gpt", "bart", "t5"])
def test_save_reload_and_generate(tmp_path, name):
    model = make(name).eval()
    model.save_pretrained(tmp_path)
    auto = AutoModelForCausalLM if name == "gpt" else AutoModelForSeq2SeqLM
    back = auto.from_pretrained(tmp_path).eval()
    assert type(back) is type(model)
    for n, p in model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[n], p, msg=n)
    out = back.generate(input_ids=torch.randint(3, V, (1, 5)), max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 1 and out.shape[1] >= 2
