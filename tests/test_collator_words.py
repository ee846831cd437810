"""Whole-word collators (wwm, ngram, span): rates over many batches, whole words (English ## and real Chinese with
jieba), span lengths, merged spans, what is never selected, determinism and resume."""
import re

import numpy as np
import pytest
import torch

from hf_pretrain_ext.collators import WordBoundaries, add_word_starts, build_collator
from hf_pretrain_ext.collators.masking import IGNORE_INDEX, select_spans, span_length_cdf
from hf_pretrain_ext.collators.mlm import ordinary_token_ids
from hfpx_testutils import WORDS, shared_lines, tiny_tokenizer, zh_tokenizer

CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")


def english_features(tok, n=64, seed=0, words=(20, 60), start_index=0):
    """[CLS] random words [SEP], many of them several ## pieces, with example_index."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(*words)))) for _ in range(n)]
    ids = tok(texts)["input_ids"]
    return [{"input_ids": x, "example_index": start_index + i} for i, x in enumerate(ids)]


def original_ids(out, feats, pad_id):
    orig = torch.full_like(out["input_ids"], pad_id)
    for i, f in enumerate(feats):
        orig[i, :len(f["input_ids"])] = torch.tensor(f["input_ids"])
    return orig


def word_ids_from_pieces(tok, ids):
    """Word number per token from the ## prefix (-1 for specials): an independent reading of word starts."""
    tokens = tok.convert_ids_to_tokens(ids)
    word, out = -1, []
    for t in tokens:
        if t in tok.all_special_tokens:
            out.append(-1)
            continue
        if not t.startswith("##"):
            word += 1
        out.append(word)
    return np.array(out)


def assert_whole_words(selected_row, word_ids):
    """Every word is either fully selected or not at all."""
    words = word_ids >= 0
    per_word_sel = np.bincount(word_ids[words], weights=selected_row[words])
    per_word_len = np.bincount(word_ids[words])
    assert np.all((per_word_sel == 0) | (per_word_sel == per_word_len))


@pytest.mark.parametrize("objective", ["wwm", "ngram"])
def test_rates_and_80_10_10_over_many_batches_whole_words(objective):
    tok = tiny_tokenizer(120)
    coll = build_collator(objective, tok, seed=1)
    selected = eligible = masked = randomised = kept = 0
    for b in range(12):
        feats = english_features(tok, seed=b, start_index=1000 * b)
        out = coll(feats)
        orig = original_ids(out, feats, tok.pad_token_id)
        sel = out["labels"] != IGNORE_INDEX
        assert torch.equal(out["labels"][sel], orig[sel])
        for i, f in enumerate(feats):
            assert_whole_words(sel[i, :len(f["input_ids"])].numpy(), word_ids_from_pieces(tok, f["input_ids"]))
        selected += int(sel.sum())
        eligible += sum(len(f["input_ids"]) - 2 for f in feats)
        masked += int((out["input_ids"][sel] == tok.mask_token_id).sum())
        kept += int((out["input_ids"][sel] == orig[sel]).sum())
        randomised += int(((out["input_ids"] != orig) & (out["input_ids"] != tok.mask_token_id) & sel).sum())
    assert abs(selected / eligible - 0.15) < 0.01, selected / eligible  # token budget, not word count
    assert abs(masked / selected - 0.8) < 0.02
    assert abs(randomised / selected - 0.1) < 0.02
    assert abs(kept / selected - 0.1) < 0.02


def test_replace_level_word_treats_a_word_as_one():
    tok = tiny_tokenizer(120)
    out = build_collator("wwm", tok, seed=2, replace_level="word", mlm_probability=0.4)(english_features(tok))
    feats = english_features(tok)
    mixed = 0
    for i, f in enumerate(feats):
        words = word_ids_from_pieces(tok, f["input_ids"])
        is_mask = (out["input_ids"][i, :len(words)] == tok.mask_token_id).numpy()
        for w in np.unique(words[(out["labels"][i, :len(words)] != IGNORE_INDEX).numpy()]):
            mixed += len(set(is_mask[words == w])) > 1
    assert mixed == 0
    token_level = build_collator("wwm", tok, seed=2, mlm_probability=0.4)(feats)
    mixed = 0
    for i, f in enumerate(feats):
        words = word_ids_from_pieces(tok, f["input_ids"])
        is_mask = (token_level["input_ids"][i, :len(words)] == tok.mask_token_id).numpy()
        for w in np.unique(words[(token_level["labels"][i, :len(words)] != IGNORE_INDEX).numpy()]):
            mixed += len(set(is_mask[words == w])) > 1
    assert mixed > 0  # per-token decisions do split words between [MASK] and random/kept


@pytest.fixture(scope="module")
def zh_lines():
    return shared_lines("zh_pretrain/CLUECorpusSmall_sampled.txt", 200, min_chars=100)[100:]


def test_chinese_jieba_words_masked_together(zh_lines):
    """Independent check: jieba over each CJK run of the raw text, mapped to tokens through the tokenizer's own
    offsets; every word of 2+ characters is selected whole or not at all."""
    jieba = pytest.importorskip("jieba")
    tok = zh_tokenizer()
    enc = tok(zh_lines, truncation=True, max_length=128, return_offsets_mapping=True)
    feats = [{"input_ids": x, "example_index": i} for i, x in enumerate(enc["input_ids"])]
    coll = build_collator("wwm", tok, seed=3, segmenter="jieba")
    selected = eligible = 0
    whole_words = 0
    for epoch in range(3):
        coll.set_epoch(epoch)
        out = coll(feats)
        sel = (out["labels"] != IGNORE_INDEX).numpy()
        selected += int(sel.sum())
        eligible += sum(len(x) - 2 for x in enc["input_ids"])
        for i, (text, offsets) in enumerate(zip(zh_lines, enc["offset_mapping"])):
            starts = {s: t for t, (s, e) in enumerate(offsets) if e > s}
            n_tok = len(offsets)
            for run in CJK_RUN.finditer(text):
                pos = run.start()
                for word in jieba.lcut(run.group()):
                    toks = [starts.get(pos + k) for k in range(len(word))]
                    pos += len(word)
                    if len(word) < 2 or None in toks or max(toks) >= n_tok - 1:
                        continue  # truncated away, or a single character
                    flags = sel[i, toks]
                    assert flags.all() or not flags.any(), (word, flags)
                    whole_words += bool(flags.all())
    assert whole_words > 300  # many multi-character words were masked, all of them whole
    assert abs(selected / eligible - 0.15) < 0.01


def test_chinese_on_packed_blocks_and_precomputed_word_starts(zh_lines):
    """Blocks from tokenize_and_group (no text, no ref file) mask the same as with a precomputed word_starts
    column, and jieba words span several tokens."""
    pytest.importorskip("jieba")
    from datasets import Dataset, DatasetDict

    from hf_pretrain_ext.data.grouping import tokenize_and_group
    tok = zh_tokenizer()
    blocks = tokenize_and_group(DatasetDict(train=Dataset.from_dict({"text": zh_lines})), tok, 128,
                                load_from_cache=False)["train"]
    coll = build_collator("wwm", tok, seed=4)
    feats = [blocks[i] for i in range(len(blocks))]
    on_the_fly = coll(feats)
    annotated = add_word_starts(blocks, tok)
    pre = coll([annotated[i] for i in range(len(annotated))])
    assert all(torch.equal(on_the_fly[k], pre[k]) for k in on_the_fly)
    starts = np.concatenate([np.asarray(annotated[i]["word_starts"]) for i in range(len(annotated))])
    n_tokens = sum(len(f["input_ids"]) for f in feats)
    assert 0.4 < starts.sum() / n_tokens < 0.85  # jieba joined characters into words


def test_fengshenbang_long_words_always_masked(zh_lines):
    jieba = pytest.importorskip("jieba")
    tok = zh_tokenizer()
    texts = zh_lines[:60]
    enc = tok(texts, truncation=True, max_length=128, return_offsets_mapping=True)
    feats = [{"input_ids": x, "example_index": i} for i, x in enumerate(enc["input_ids"])]
    out = build_collator("wwm", tok, seed=5, long_word_min_chars=4)(feats)
    sel = (out["labels"] != IGNORE_INDEX).numpy()
    long_words = 0
    for i, (text, offsets) in enumerate(zip(texts, enc["offset_mapping"])):
        starts = {s: t for t, (s, e) in enumerate(offsets) if e > s}
        for run in CJK_RUN.finditer(text):
            pos = run.start()
            for word in jieba.lcut(run.group()):
                toks = [starts.get(pos + k) for k in range(len(word))]
                pos += len(word)
                if len(word) >= 4 and None not in toks and max(toks) < len(offsets) - 1:
                    assert sel[i, toks].all(), word
                    long_words += 1
    assert long_words > 20
    with pytest.raises(ValueError, match="whole-word masking"):
        build_collator("ngram", tok, long_word_min_chars=4)


@pytest.mark.parametrize("distribution,expected_mean,longest", [("geometric", 3.78, 10), ("harmonic", 18 / 11, 3)])
def test_span_length_distribution(distribution, expected_mean, longest):
    """Selected spans (in words) follow the drawn distribution: SpanBERT's clipped geometric (p=0.2, max 10:
    mean 3.78) or p(n) ~ 1/n up to 3 (mean 18/11)."""
    rng = np.random.default_rng(0)
    B, W = 64, 512
    starts = np.ones((B, W), dtype=bool)  # one token per word
    eligible = np.ones((B, W), dtype=bool)
    cdf = span_length_cdf(distribution, max_ngram=3, geometric_p=0.2, max_span_length=10)
    lengths = []
    for _ in range(6):
        selected, first, span_tokens = select_spans(starts, eligible, rng.random((B, W)), rng.random((B, W)),
                                                    rng.random(B), 0.15, cdf)
        lengths.append(span_tokens[first])
        assert selected.sum() == span_tokens.sum()
    lengths = np.concatenate(lengths)
    assert abs(lengths.mean() - expected_mean) < 0.12, lengths.mean()
    assert lengths.max() == longest and lengths.min() == 1


def test_spans_cover_whole_words_with_multi_token_words():
    tok = tiny_tokenizer(120)
    feats = english_features(tok, n=32)
    out = build_collator("ngram", tok, seed=6, span_distribution="geometric", mlm_probability=0.3)(feats)
    sel = out["labels"] != IGNORE_INDEX
    for i, f in enumerate(feats):
        assert_whole_words(sel[i, :len(f["input_ids"])].numpy(), word_ids_from_pieces(tok, f["input_ids"]))
    assert abs(int(sel.sum()) / sum(len(f["input_ids"]) - 2 for f in feats) - 0.3) < 0.03


def test_span_merges_each_span_into_one_position():
    tok = tiny_tokenizer(120)
    feats = english_features(tok, n=32)
    coll = build_collator("span", tok, seed=7, return_span_lengths=True, mlm_probability=0.3,
                          mask_replace_prob=1.0, random_replace_prob=0.0)
    out = coll(feats)
    reference = build_collator("ngram", tok, seed=7, mlm_probability=0.3, mask_replace_prob=1.0,
                               random_replace_prob=0.0)(feats)  # same draws, not merged
    for i, f in enumerate(feats):
        n = int(out["attention_mask"][i].sum())
        ids, labels, spans = out["input_ids"][i, :n], out["labels"][i, :n], out["span_lengths"][i, :n]
        assert n == len(f["input_ids"]) - int((spans - 1).clamp(min=0).sum())
        merged = labels != IGNORE_INDEX
        assert torch.equal(merged, spans > 0) and (ids[merged] == tok.mask_token_id).all()
        # expanding each [MASK] back to its span gives the unmerged masking of the same draws
        expanded = torch.cat([ids[j:j + 1].repeat(int(spans[j])) if spans[j] > 0 else ids[j:j + 1]
                              for j in range(n)])
        m = len(f["input_ids"])
        assert torch.equal(expanded, reference["input_ids"][i, :m])
        starts = torch.cumsum(torch.cat([torch.tensor([0]), spans.clamp(min=1)[:-1]]), 0)
        assert torch.equal(labels[merged], reference["labels"][i, starts[merged]])
    assert "span_lengths" not in build_collator("span", tok)(feats)  # off by default: the Trainer passes keys on


@pytest.mark.parametrize("objective", ["wwm", "ngram", "span"])
def test_specials_and_padding_never_selected_random_tokens_ordinary(objective):
    tok = tiny_tokenizer(120)
    feats = english_features(tok, n=32, words=(3, 30))
    out = build_collator(objective, tok, seed=8, mlm_probability=0.9, mask_replace_prob=0.0,
                         random_replace_prob=1.0, pad_to_multiple_of=16)(feats)
    assert out["input_ids"].shape[1] % 16 == 0
    specials = torch.tensor(tok.all_special_ids)
    sel = out["labels"] != IGNORE_INDEX
    assert not torch.isin(out["labels"][sel], specials).any()
    assert torch.isin(out["input_ids"][sel], torch.from_numpy(ordinary_token_ids(tok))).all()
    padded = out["attention_mask"] == 0
    assert padded.any() and (out["labels"][padded] == IGNORE_INDEX).all()
    assert (out["input_ids"][padded] == tok.pad_token_id).all()
    assert (out["input_ids"][:, 0] == tok.cls_token_id).all()


@pytest.mark.parametrize("objective", ["wwm", "ngram", "span"])
def test_texts_shorter_than_a_span(objective):
    """One- and two-word texts: a span is clipped at the text's end; nothing crashes; empty bodies are fine."""
    tok = tiny_tokenizer(120)
    feats = [{"input_ids": tok("fox")["input_ids"], "example_index": 0},
             {"input_ids": tok("kangaroos")["input_ids"], "example_index": 1},
             {"input_ids": [tok.cls_token_id, tok.sep_token_id], "example_index": 2}]
    coll = build_collator(objective, tok, seed=9, mlm_probability=0.5, span_distribution="geometric") \
        if objective != "wwm" else build_collator(objective, tok, seed=9, mlm_probability=0.5)
    hits = 0
    for epoch in range(40):
        coll.set_epoch(epoch)
        out = coll(feats)
        assert (out["labels"][2] == IGNORE_INDEX).all()
        hits += int((out["labels"][1] != IGNORE_INDEX).any())
    assert 5 < hits < 35  # the whole short text is one span, selected with budget probability ~0.5


@pytest.mark.parametrize("objective", ["wwm", "ngram", "span"])
def test_deterministic_batch_independent_and_resumable(objective):
    tok = tiny_tokenizer(120)
    feats = english_features(tok, n=24)
    a = build_collator(objective, tok, seed=5)(feats)
    b = build_collator(objective, tok, seed=5)(feats)
    assert all(torch.equal(a[k], b[k]) for k in a)
    alone = build_collator(objective, tok, seed=5)([feats[3]])
    n = int(alone["attention_mask"].sum())
    assert torch.equal(alone["input_ids"][0, :n], a["input_ids"][3, :n])  # in any batch, the same masking
    assert not torch.equal(build_collator(objective, tok, seed=6)(feats)["labels"], a["labels"])

    # a run over two epochs of 3 batches, and one resumed at epoch 1 batch 2 in a fresh collator
    batches = [feats[i:i + 8] for i in range(0, 24, 8)]
    run = build_collator(objective, tok, seed=5)
    outputs = {}
    for epoch in range(2):
        run.set_epoch(epoch)
        for j, batch in enumerate(batches):
            outputs[epoch, j] = run(batch)
    assert not torch.equal(outputs[0, 0]["labels"], outputs[1, 0]["labels"])
    resumed = build_collator(objective, tok, seed=5)
    resumed.set_epoch(1)
    again = resumed(batches[2])
    assert all(torch.equal(again[k], outputs[1, 2][k]) for k in again)
    assert torch.equal(run.for_eval()(feats)["labels"], a["labels"])


def test_offsets_boundaries_and_clear_errors():
    tok = tiny_tokenizer(120)
    texts = ["the kangaroos jumps over", "seven wizards quietly hex"]
    enc = tok(texts, return_offsets_mapping=True)
    feats = [{"input_ids": x, "offset_mapping": o, "example_index": i}
             for i, (x, o) in enumerate(zip(enc["input_ids"], enc["offset_mapping"]))]
    coll = build_collator("wwm", tok, word_boundaries="offsets", mlm_probability=1.0)
    out = coll(feats)
    assert (out["labels"][out["attention_mask"].bool()] != IGNORE_INDEX).sum() == \
        sum(len(x) - 2 for x in enc["input_ids"])
    boundaries = WordBoundaries(tok, "offsets", "none")
    ids = np.array([enc["input_ids"][0]])
    eligible = ~np.isin(ids, tok.all_special_ids)
    offsets = np.array([enc["offset_mapping"][0]])
    starts = boundaries.word_starts(ids, eligible, offsets)[0]
    words = [tok.decode(ids[0][s:e]) for s, e in zip(np.flatnonzero(starts), list(np.flatnonzero(starts)[1:]) +
                                                        [len(ids[0]) - 1])]
    assert words == ["the", "kangaroos", "jumps", "over"]  # whitespace-delimited, as HF's offsets rule
    with pytest.raises(ValueError, match="offset_mapping"):
        coll([{"input_ids": x, "example_index": i} for i, x in enumerate(enc["input_ids"])])

    class SlowTokenizer:  # what a Python (slow) tokenizer looks like here: no offsets, no backend
        is_fast = False

        def __len__(self):
            return len(tok)

        def __getattr__(self, name):
            return getattr(tok, name)
    with pytest.raises(ValueError, match="needs a fast tokenizer"):
        build_collator("wwm", SlowTokenizer(), word_boundaries="offsets")
    with pytest.raises(ValueError, match="replace_level"):
        build_collator("wwm", tok, replace_level="span")


@pytest.mark.parametrize("trim", [True, False])
def test_byte_level_offsets_give_whole_words(trim):
    """wwm with word_boundaries='offsets' on byte-level BPE: our trained tokenizer trims the space off `Ġcat`'s
    offsets, and a tokenizer that keeps it (trim_offsets=False) is not fooled either: every word of the text is
    selected whole or not at all, and the words are the text's words."""
    from tokenizers import processors

    from hf_pretrain_ext.data.tokenizer import train_byte_bpe
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, 12)) for _ in range(200)]
    tok = train_byte_bpe(texts, 300)
    if not trim:
        tok.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    enc = tok(texts[:64], return_offsets_mapping=True)
    assert (enc["offset_mapping"][0][1][0] > enc["offset_mapping"][0][0][1]) == trim  # the space is in or out
    feats = [{"input_ids": x, "offset_mapping": o, "example_index": i}
             for i, (x, o) in enumerate(zip(enc["input_ids"], enc["offset_mapping"]))]
    out = build_collator("wwm", tok, word_boundaries="offsets", mlm_probability=0.3, seed=1)(feats)
    whole = partial = rows_all = 0
    for row, (text, ids) in enumerate(zip(texts[:64], enc["input_ids"])):
        labelled = (out["labels"][row, :len(ids)] != IGNORE_INDEX).numpy()
        pieces = [tok.convert_ids_to_tokens(i) for i in ids]
        word = -1
        words = []
        for p in pieces:  # the text's words, from the Ġ markers (the first word has none)
            word += p.startswith("Ġ") or word < 0
            words.append(word)
        chosen = 0
        for w in set(words):
            sel = labelled[[k for k, x in enumerate(words) if x == w]]
            whole += sel.all()
            chosen += sel.all()
            partial += sel.any() and not sel.all()
        rows_all += chosen == len(set(words))
        assert {tok.decode([ids[k] for k in range(len(ids)) if words[k] == w]).strip() for w in set(words)} <= \
            set(text.split())
    # about 30% of the words of each row, never a row taken whole (what one-word-per-example masking did)
    assert partial == 0 and rows_all == 0 and 0.2 * 64 * 12 < whole < 0.4 * 64 * 12


@pytest.mark.parametrize("objective", ["span", "ngram"])
def test_spans_never_cross_a_document_boundary(objective):
    """Packed blocks ([CLS] doc [SEP] doc [SEP] ...): a span stops at the inner [SEP]. With merging ('span'),
    each document keeps exactly its own tokens: the ones still there plus what its merged spans covered; the
    issue's example (seed 6) lost "dogs" to a span that started at "mat"."""
    tok = tiny_tokenizer()
    coll = build_collator(objective, tok, seed=6, mlm_probability=0.3, span_distribution="geometric",
                          return_span_lengths=True)
    example = tok("the cat sat on the mat", "dogs bark at night again")["input_ids"]
    rng = np.random.default_rng(0)
    docs = [[int(t) for t in tok(" ".join(rng.choice(WORDS, rng.integers(3, 9))), add_special_tokens=False)
             ["input_ids"]] for _ in range(400)]
    blocks = [example] + [[tok.cls_token_id] + docs[i] + [tok.sep_token_id] + docs[i + 1] + [tok.sep_token_id]
                          + docs[i + 2] + [tok.sep_token_id] for i in range(0, 399 - 2, 3)]
    out = coll([{"input_ids": b, "example_index": i} for i, b in enumerate(blocks)])
    special = set(tok.all_special_ids)
    crossing_possible = 0
    for row, block in enumerate(blocks):
        n = int(out["attention_mask"][row].sum())
        ids, lengths = out["input_ids"][row, :n].tolist(), out["span_lengths"][row, :n].tolist()
        labels = out["labels"][row, :n].tolist()
        sep = tok.sep_token_id
        original = [len(p) for p in _split(block[1:-1], sep)]
        crossing_possible += len(original) > 1
        if objective == "ngram":  # nothing is removed: a span's tokens are never both sides of a [SEP]
            spans_end = [k + span for k, span in enumerate(lengths) if span]
            assert all(block[k] not in special for start, end in zip(
                [k for k, span in enumerate(lengths) if span], spans_end) for k in range(start, end))
            continue
        # per document: tokens left + tokens merged away == the document's own length ([SEP] is never replaced)
        kept, merged = [0], [0]
        for t, span in zip(ids[1:-1], lengths[1:-1]):
            if t == sep:
                kept.append(0)
                merged.append(0)
                continue
            kept[-1] += 1
            merged[-1] += max(span - 1, 0)
        assert [k + m for k, m in zip(kept, merged)] == original, (row, tok.decode(ids))
    assert crossing_possible > 100
    first = tok.decode(out["input_ids"][0][:int(out["attention_mask"][0].sum())])
    assert "dogs" in first or "[MASK] bark" in first.split("[SEP]")[1]


def _split(ids, sep):
    parts, cur = [], []
    for t in ids:
        if t == sep:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    return parts + [cur]


@pytest.mark.parametrize("distribution, tolerance, mean_gap", [("geometric", 0.025, 0.3), ("harmonic", 0.01, 0.03)])
def test_span_lengths_follow_the_drawn_distribution_on_packed_blocks(distribution, tolerance, mean_gap):
    """Blocks of 128 tokens packed from long documents of one-token words: the lengths of the selected spans
    (SpanBERT's clipped Geometric(0.2), or p(n) ~ 1/n up to 3) are the distribution's within a few points."""
    tok = tiny_tokenizer()
    assert all(len(tok.tokenize(w)) == 1 for w in WORDS)  # a span's tokens are its words
    rng = np.random.default_rng(0)
    flat = []
    for _ in range(300):
        flat += tok(" ".join(rng.choice(WORDS, rng.integers(150, 400))), add_special_tokens=False)["input_ids"]
        flat.append(tok.sep_token_id)
    blocks = [[tok.cls_token_id] + flat[i:i + 126] + [tok.sep_token_id] for i in range(0, len(flat) - 126, 126)]
    coll = build_collator("ngram", tok, seed=2, return_span_lengths=True, span_distribution=distribution,
                          max_ngram=3, geometric_p=0.2, max_span_length=10)
    lengths = []
    for i in range(0, len(blocks), 64):
        out = coll([{"input_ids": b, "example_index": k} for k, b in enumerate(blocks[i:i + 64], start=i)])
        lengths += out["span_lengths"][out["span_lengths"] > 0].tolist()
    lengths = np.array(lengths)
    pmf = np.diff(np.r_[0, span_length_cdf(distribution, 3, 0.2, 10)])
    share = np.bincount(lengths, minlength=len(pmf) + 1)[1:] / len(lengths)
    assert len(lengths) > 3000 and len(share) == len(pmf)
    assert np.abs(share - pmf).max() < tolerance, (share.round(3), pmf.round(3))
    assert abs(lengths.mean() - (np.arange(1, len(pmf) + 1) * pmf).sum()) < mean_gap
