"""MLM collator: selection rate, 80/10/10 split, what is never selected, determinism, per-example seeds."""
import numpy as np
import pytest
import torch

from hf_pretrain_ext.collators import build_collator
from hf_pretrain_ext.collators.mlm import ordinary_token_ids
from hfpx_testutils import tiny_tokenizer


def batch_features(tok, n=64, length=60, seed=0):
    rng = np.random.default_rng(seed)
    ordinary = ordinary_token_ids(tok)
    feats = []
    for i in range(n):
        body = rng.choice(ordinary, size=int(rng.integers(length // 2, length))).tolist()
        feats.append({"input_ids": [tok.cls_token_id] + body + [tok.sep_token_id], "example_index": i})
    return feats


def test_rates_over_many_batches():
    tok = tiny_tokenizer()
    coll = build_collator("mlm", tok, mlm_probability=0.15, seed=1)
    selected = masked = randomised = kept = eligible = 0
    for b in range(20):
        feats = batch_features(tok, seed=b)
        for f in feats:
            f["example_index"] += 1000 * b
        out = coll(feats)
        orig = torch.full_like(out["input_ids"], tok.pad_token_id)
        for i, f in enumerate(feats):
            orig[i, :len(f["input_ids"])] = torch.tensor(f["input_ids"])
        sel = out["labels"] != -100
        assert torch.equal(out["labels"][sel], orig[sel])
        selected += int(sel.sum())
        eligible += sum(len(f["input_ids"]) - 2 for f in feats)
        masked += int((out["input_ids"][sel] == tok.mask_token_id).sum())
        kept += int((out["input_ids"][sel] == orig[sel]).sum())
        randomised += int(((out["input_ids"] != orig) & (out["input_ids"] != tok.mask_token_id) & sel).sum())
    assert abs(selected / eligible - 0.15) < 0.01
    # random replacements may hit the original token (1/len(ordinary) of the time); counted as kept
    assert abs(masked / selected - 0.8) < 0.02
    assert abs(randomised / selected - 0.1) < 0.015
    assert abs(kept / selected - 0.1) < 0.015


def test_specials_and_padding_never_selected_and_random_tokens_ordinary():
    tok = tiny_tokenizer()
    coll = build_collator("mlm", tok, mlm_probability=0.9, mask_replace_prob=0.0, random_replace_prob=1.0, seed=3)
    out = coll(batch_features(tok, n=32))
    specials = torch.tensor(tok.all_special_ids)
    assert not torch.isin(out["input_ids"][out["labels"] != -100], specials).any()
    padded = out["attention_mask"] == 0
    assert padded.any() and (out["labels"][padded] == -100).all()
    assert (out["labels"][:, 0] == -100).all()  # [CLS]
    assert (out["input_ids"][padded] == tok.pad_token_id).all()


def test_deterministic_and_independent_of_batch_composition():
    tok = tiny_tokenizer()
    feats = batch_features(tok, n=8)
    a = build_collator("mlm", tok, seed=5)(feats)
    b = build_collator("mlm", tok, seed=5)(feats)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # example 3 alone, or in another batch, gets the same mask
    alone = build_collator("mlm", tok, seed=5)([feats[3]])
    n = len(feats[3]["input_ids"])
    assert torch.equal(alone["labels"][0, :n], a["labels"][3, :n])
    other_seed = build_collator("mlm", tok, seed=6)(feats)
    assert not torch.equal(other_seed["labels"], a["labels"])
    coll = build_collator("mlm", tok, seed=5)
    coll.set_epoch(1)
    assert not torch.equal(coll(feats)["labels"], a["labels"])  # a new epoch masks differently
    assert torch.equal(coll.for_eval()(feats)["labels"], a["labels"])  # evaluation always uses epoch 0


def test_pad_to_multiple_of():
    tok = tiny_tokenizer()
    out = build_collator("mlm", tok, pad_to_multiple_of=8)(batch_features(tok, n=4, length=13))
    assert out["input_ids"].shape[1] % 8 == 0


def test_bad_options():
    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match="unknown objective"):
        build_collator("nope", tok)
    with pytest.raises(ValueError, match="sum to at most 1"):
        build_collator("mlm", tok, mask_replace_prob=0.8, random_replace_prob=0.3)
