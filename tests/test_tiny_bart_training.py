"""The tiny BART preset trains: its encoder output stays input-dependent (regression: with bart-base's
scale_embedding=False this preset's encoder collapsed to one vector within 50 steps at lr 1e-3, and the decoder
learnt an unconditional LM that ignored the input)."""
import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM

import hf_pretrain_ext  # noqa: F401
from hf_pretrain_ext.collators import build_collator
from hf_pretrain_ext.models.configuration_hfpx_seq2seq import TINY_BART
from hfpx_testutils import english_documents, tiny_bpe_tokenizer


def encoder_spread_after_training(steps=60, **overrides):
    tok = tiny_bpe_tokenizer(seq2seq=True)
    config = AutoConfig.for_model("hfpx-bart", **{**TINY_BART, **overrides}, vocab_size=len(tok),
                                  pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                  eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(config)
    docs = tok(english_documents(256, sentences=(4, 8)), add_special_tokens=False)["input_ids"]
    feats = [{"input_ids": ids[:100], "example_index": i} for i, ids in enumerate(docs)]
    collator = build_collator("bart", tok, decoder_start_token_id=config.decoder_start_token_id)
    fixed = collator(feats[:16])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 1e-3 * min(1.0, (step + 1) / 10)
        batch = collator([feats[i] for i in torch.randint(len(feats), (16,), generator=g).tolist()])
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        out = model.get_encoder()(input_ids=fixed["input_ids"], attention_mask=fixed["attention_mask"])
    real = fixed["attention_mask"].bool()
    return out.last_hidden_state[real].std(0).mean().item()


def test_tiny_bart_encoder_does_not_collapse():
    assert encoder_spread_after_training() > 0.1


@pytest.mark.slow
def test_without_scaled_embeddings_the_encoder_collapses():
    """The failure the preset avoids, reproduced (so the test above can fail)."""
    assert encoder_spread_after_training(scale_embedding=False) < 0.05
