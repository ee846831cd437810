"""BART denoising: per-example budgets, span-length statistics, replace_length semantics, permutation/rotation are
permutations, insertion, determinism, recipes and bad input."""
import math

import numpy as np
import pytest
import torch

from hf_pretrain_ext.collators import BART_RECIPES, build_collator
from hf_pretrain_ext.collators.denoising import sample_span_lengths
from hfpx_testutils import english_documents
from hfpx_testutils import tiny_bpe_tokenizer as _tiny_bpe


def tiny_bpe_tokenizer():
    return _tiny_bpe(seq2seq=True)  # BART's layout: <s> and </s> are two tokens


def features(tok, n=32, seed=0, **kw):
    docs = english_documents(n, seed=seed, **kw)
    return [{"input_ids": ids, "example_index": i}
            for i, ids in enumerate(tok(docs, add_special_tokens=False)["input_ids"])]


def only(**kw):
    """Every noising function off except those given."""
    base = dict(mask_ratio=0.0, permute_sentences=0.0, rotate=0.0, insert_ratio=0.0, mask_random=0.0)
    return {**base, **kw}


def test_span_lengths_budget_and_poisson_statistics():
    rng = np.random.default_rng(0)
    lengths, zeros = [], 0
    for budget in (1, 7, 300) * 200:
        spans = sample_span_lengths(rng, budget, 3.5)
        assert spans.sum() == budget and (spans >= 0).all() and spans[-1] >= 1
        if budget == 300:
            lengths.append(spans[:-1])  # the last one is trimmed to the budget
    lengths = np.concatenate(lengths)
    assert abs(lengths.mean() - 3.5) < 0.05
    assert abs((lengths == 0).mean() - math.exp(-3.5)) < 0.005


@pytest.mark.parametrize("unit", ["word", "token"])
def test_infilling_budget_is_per_example(unit):
    tok = tiny_bpe_tokenizer()
    coll = build_collator("bart", tok, **only(mask_ratio=0.3, mask_unit=unit))
    for f in features(tok, n=20):
        tokens = coll.wrapped(f["input_ids"])
        rng = np.random.default_rng(f["example_index"])
        starts, ends, inserts = coll.infill_spans(tokens, rng)
        units = np.flatnonzero(coll.word_starts(tokens))
        budget = math.ceil(len(units) * 0.3)
        # spans cover whole units and their lengths add up to the budget (zero-length spans, inserted as masks,
        # add nothing), less what a span starting near </s> could not cover
        covered = sum(int(((units >= s) & (units < e)).sum()) for s, e in zip(starts, ends))
        assert covered <= budget and (covered == budget or ends.max() == len(tokens) - 1)
        assert 0 <= inserts <= budget
        assert (starts >= 1).all() and (ends <= len(tokens) - 1).all()


def test_mask_ratio_and_span_length_statistics_in_batches():
    """replace_length=-1 keeps lengths, so masked positions can be counted: the masked token fraction is close
    to mask_ratio (a bit below: spans may overlap), and masked runs average about lambda tokens."""
    tok = tiny_bpe_tokenizer()
    coll = build_collator("bart", tok, **only(mask_ratio=0.3, mask_unit="token", replace_length=-1,
                                              poisson_lambda=3.0))
    masked = total = 0
    runs = []
    for b in range(6):
        out = coll(features(tok, n=32, seed=b, sentences=(8, 12)))
        m = (out["input_ids"] == tok.mask_token_id) & (out["attention_mask"] == 1)
        masked += int(m.sum())
        total += int(out["attention_mask"].sum()) - 2 * len(m)
        for row in m.numpy():
            edges = np.diff(np.concatenate([[0], row.astype(int), [0]]))
            runs.extend(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
    assert 0.24 < masked / total <= 0.31
    assert 3.0 < np.mean(runs) < 5.0  # merged overlapping spans make runs a little longer than lambda


def test_replace_length_semantics():
    tok = tiny_bpe_tokenizer()
    feats = features(tok, n=8)
    # lambda 8: (almost) no zero-length span, so no inserted mask changes the lengths
    lengths = {rl: build_collator("bart", tok, **only(mask_ratio=0.3, replace_length=rl, poisson_lambda=8.0))(feats)
               for rl in (-1, 0, 1)}
    full = lengths[-1]
    assert torch.equal(full["attention_mask"].sum(1), (full["labels"] != -100).sum(1))  # same length
    assert (lengths[0]["input_ids"] != tok.mask_token_id).all()  # deletion leaves no mask
    n_masks = ((lengths[1]["input_ids"] == tok.mask_token_id).sum(1))
    assert (lengths[0]["attention_mask"].sum(1) + n_masks == lengths[1]["attention_mask"].sum(1)).all()
    # a masked span becomes a single mask: never two masks in a row unless two spans just touch
    assert (lengths[1]["attention_mask"].sum(1) < full["attention_mask"].sum(1)).all()


def test_zero_length_spans_become_insertions():
    tok = tiny_bpe_tokenizer()
    coll = build_collator("bart", tok, **only(mask_ratio=0.3, poisson_lambda=0.3, replace_length=-1))
    out = coll(features(tok, n=16))
    # with lambda 0.3 most spans have length 0: inserted masks make inputs longer than the originals
    assert (out["attention_mask"].sum(1) > (out["labels"] != -100).sum(1)).any()


@pytest.mark.parametrize("options", [dict(permute_sentences=1.0), dict(rotate=1.0),
                                     dict(permute_sentences=0.5, rotate=1.0)])
def test_permutation_and_rotation_are_permutations(options):
    tok = tiny_bpe_tokenizer()
    coll = build_collator("bart", tok, **only(**options))
    feats = features(tok, n=32)
    out = coll(feats)
    changed = 0
    for i, f in enumerate(feats):
        src = out["input_ids"][i][out["attention_mask"][i] == 1].tolist()
        tgt = out["labels"][i][out["labels"][i] != -100].tolist()
        assert sorted(src) == sorted(tgt) and src[0] == tgt[0] == tok.bos_token_id and src[-1] == tok.eos_token_id
        assert tgt[1:-1] == f["input_ids"]
        changed += src != tgt
    assert changed > 16


def test_sentence_permutation_moves_whole_sentences():
    tok = tiny_bpe_tokenizer()
    coll = build_collator("bart", tok, **only(permute_sentences=1.0))
    docs = ["The quick fox jumps. A lazy dog sleeps! Seven wizards hex? Pale lights glow."]
    ids = tok(docs, add_special_tokens=False)["input_ids"][0]
    out = coll([{"input_ids": ids, "example_index": 3}])
    text = tok.decode(out["input_ids"][0][1:-1])
    sentences = {"The quick fox jumps.", "A lazy dog sleeps!", "Seven wizards hex?", "Pale lights glow."}
    pieces = [p.strip() for p in text.replace(".", ".|").replace("!", "!|").replace("?", "?|").split("|")]
    assert {p for p in pieces if p} == sentences


def test_insertion_and_token_level_functions():
    tok = tiny_bpe_tokenizer()
    feats = features(tok, n=8)
    n_orig = torch.tensor([len(f["input_ids"]) + 2 for f in feats])
    ins = build_collator("bart", tok, **only(insert_ratio=0.2))(feats)
    assert (ins["attention_mask"].sum(1) == n_orig + torch.ceil(n_orig * 0.2).long()).all()
    dele = build_collator("bart", tok, **only(token_delete_ratio=0.25))(feats)
    assert (dele["attention_mask"].sum(1) < n_orig).all()
    msk = build_collator("bart", tok, **only(token_mask_ratio=0.25))(feats)
    assert (msk["attention_mask"].sum(1) == n_orig).all()
    assert ((msk["input_ids"] == tok.mask_token_id).sum(1) >= torch.ceil((n_orig - 2) * 0.25).long() - 1).all()


def test_batch_fields_decoder_inputs_and_padding():
    tok = tiny_bpe_tokenizer()
    out = build_collator("bart", tok, pad_to_multiple_of=8)(features(tok, n=4))
    assert set(out) == {"input_ids", "attention_mask", "labels", "decoder_input_ids"}
    assert out["input_ids"].shape[1] % 8 == 0 and out["labels"].shape[1] % 8 == 0
    assert (out["decoder_input_ids"][:, 0] == tok.eos_token_id).all()
    labels = out["labels"]
    shifted = torch.where(labels[:, :-1] == -100, tok.pad_token_id, labels[:, :-1])
    assert torch.equal(out["decoder_input_ids"][:, 1:], shifted)


def test_deterministic_per_example_and_epoch():
    tok = tiny_bpe_tokenizer()
    feats = features(tok, n=6)
    a = build_collator("bart", tok, seed=3)(feats)
    b = build_collator("bart", tok, seed=3)(feats)
    assert all(torch.equal(a[k], b[k]) for k in a)
    alone = build_collator("bart", tok, seed=3)([feats[2]])
    n = int(alone["attention_mask"].sum())
    assert torch.equal(alone["input_ids"][0, :n], a["input_ids"][2, :n])
    coll = build_collator("bart", tok, seed=3)
    coll.set_epoch(1)
    assert not torch.equal(coll(feats)["input_ids"], a["input_ids"])
    assert torch.equal(coll.for_eval()(feats)["input_ids"], a["input_ids"])


def test_recipes_and_overrides():
    tok = tiny_bpe_tokenizer()
    released = build_collator("bart", tok)
    assert (released.mask_ratio, released.mask_random, released.poisson_lambda, released.replace_length,
            released.permute_sentences, released.rotate, released.mask_unit) == (0.3, 0.1, 3.5, 1, 1.0, 0.0, "word")
    paper = build_collator("bart", tok, recipe="paper", rotate=0.5)
    assert (paper.poisson_lambda, paper.mask_random, paper.mask_unit, paper.rotate) == (3.0, 0.0, "token", 0.5)
    assert set(BART_RECIPES) == {"released", "paper"}


def test_bad_input():
    from hf_pretrain_ext.data.tokenizer import train_byte_bpe
    tok = tiny_bpe_tokenizer()
    with pytest.raises(ValueError, match="replace_length"):
        build_collator("bart", tok, replace_length=2)
    with pytest.raises(ValueError, match="unknown BART recipe"):
        build_collator("bart", tok, recipe="nope")
    no_mask = train_byte_bpe(["a b c d e f g"] * 10, 300)
    no_mask.mask_token = None
    with pytest.raises(ValueError, match="no mask token"):
        build_collator("bart", no_mask)
    # documents shorter than one span: spans are cut at </s>, nothing breaks
    out = build_collator("bart", tok)([{"input_ids": [], "example_index": 0}, {"input_ids": [50], "example_index": 1}])
    assert (out["input_ids"][:, 0] == tok.bos_token_id).all()


def test_one_token_for_bos_and_eos():
    """GPT-2-style tokenizer (bos = eos = decoder start): labels drop the leading bos, so generation from the
    decoder start token does not meet eos at its first step; with BART's layout they keep it."""
    for tok, keeps_bos in ((_tiny_bpe(), False), (tiny_bpe_tokenizer(), True)):
        coll = build_collator("bart", tok, **only(mask_ratio=0.3))
        feats = features(tok, n=4)
        out = coll(feats)
        for i, f in enumerate(feats):
            labels = out["labels"][i][out["labels"][i] != -100].tolist()
            expected = ([tok.bos_token_id] if keeps_bos else []) + list(f["input_ids"]) + [tok.eos_token_id]
            assert labels == expected
            assert out["decoder_input_ids"][i, 0] == tok.eos_token_id
            assert out["decoder_input_ids"][i, 1:len(labels)].tolist() == labels[:-1]


@pytest.mark.parametrize("replace_length", [-1, 1, 0])
def test_infilling_spans_stop_at_the_separator_between_packed_documents(replace_length):
    """A packed block <s> doc </s> doc </s> doc </s>: no span covers the inner </s>, so every document keeps its
    end and the next document's first words are never swallowed by a span that began in the one before."""
    tok = tiny_bpe_tokenizer()
    eos = tok.eos_token_id
    docs = [tok(d, add_special_tokens=False)["input_ids"] for d in english_documents(300, seed=5)]
    blocks = [docs[i] + [eos] + docs[i + 1] + [eos] + docs[i + 2] for i in range(0, 297, 3)]
    coll = build_collator("bart", tok, seed=0, mask_ratio=0.4, poisson_lambda=3.5, replace_length=replace_length,
                          permute_sentences=0.0, rotate=0.0, insert_ratio=0.0, mask_random=0.0)
    out = coll([{"input_ids": b, "example_index": i} for i, b in enumerate(blocks)])
    for row, block in enumerate(blocks):
        ids = out["input_ids"][row][out["attention_mask"][row].bool()].tolist()
        assert ids.count(eos) == 3, (row, ids)  # two inner separators + the final </s>, none masked or deleted
