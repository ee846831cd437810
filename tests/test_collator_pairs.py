"""Sentence splitting, sentence chunks from documents, SOP and NSP collators (label balance, pair layout,
truncation, random segments from other documents, determinism)."""
import logging

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict

from hf_pretrain_ext.collators import build_collator
from hf_pretrain_ext.collators.masking import IGNORE_INDEX
from hf_pretrain_ext.collators.pairs import truncate_pair
from hf_pretrain_ext.data.pairs import chunk_document, prepare_sentence_examples
from hf_pretrain_ext.data.sentences import split_sentences
from hfpx_testutils import WORDS, shared_lines, tiny_tokenizer, zh_tokenizer


def test_split_sentences_english_and_chinese():
    assert split_sentences('He left at 3.5 p.m. today. Then e.g. this went! Did it? "Yes." The end') == \
        ["He left at 3.5 p.m. today.", "Then e.g. this went!", "Did it?", '"Yes."', "The end"]
    assert split_sentences("他说：“你好。”我们走吧！真的吗？好的……那就这样吧。最后一句") == \
        ["他说：“你好。”", "我们走吧！", "真的吗？", "好的……", "那就这样吧。", "最后一句"]
    assert split_sentences("Line one\nLine two. Three\n\n") == ["Line one", "Line two.", "Three"]
    assert split_sentences("   ") == []


def test_chunk_document():
    sents = [[1] * 5, [2] * 5, [3] * 5, [4] * 5, [5] * 2]
    chunks = chunk_document(sents, 10)
    assert [len(c) for c in chunks] == [2, 3]  # the lone last sentence joins the previous chunk
    assert chunk_document([[1, 2]], 10) == []  # one sentence: no pair
    assert chunk_document([[1] * 50, [2] * 3], 10) == [[[1] * 10, [2] * 3]]  # long sentences are cut


def english_documents(n_docs=40, seed=0):
    rng = np.random.default_rng(seed)
    docs = []
    for d in range(n_docs):
        n_sent = 1 if d % 10 == 0 else int(rng.integers(2, 9))
        docs.append(" ".join(" ".join(rng.choice(WORDS, size=int(rng.integers(4, 12)))).capitalize() + "."
                             for _ in range(n_sent)))
    return docs


@pytest.fixture(scope="module")
def prepared():
    tok = tiny_tokenizer()
    raw = DatasetDict(train=Dataset.from_dict({"text": english_documents()}))
    return tok, prepare_sentence_examples(raw, tok, 48, load_from_cache=False)["train"]


def test_prepare_sentence_examples(prepared, caplog):
    tok, ds = prepared
    assert set(ds.column_names) == {"input_ids", "sentence_lengths", "document_index", "example_index"}
    assert all(len(x) >= 2 for x in ds["sentence_lengths"])
    assert all(sum(s) == len(x) for s, x in zip(ds["sentence_lengths"], ds["input_ids"]))
    assert {0, 10, 20, 30}.isdisjoint(ds["document_index"])  # single-sentence documents are skipped
    assert ds["example_index"] == list(range(len(ds)))
    raw = DatasetDict(train=Dataset.from_dict({"text": english_documents()}))
    with caplog.at_level(logging.INFO, logger="hf_pretrain_ext"):
        prepare_sentence_examples(raw, tok, 48, load_from_cache=False)
    assert "4 documents with fewer than 2 sentences skipped" in caplog.text


def test_sop_layout_labels_and_balance(prepared):
    tok, ds = prepared
    feats = [ds[i] for i in range(len(ds))]
    coll = build_collator("sop", tok, max_seq_length=48, mlm_probability=0.0, seed=1)
    labels = []
    for epoch in range(8):
        coll.set_epoch(epoch)
        out = coll(feats)
        assert out["input_ids"].shape[1] <= 48
        labels.append(out["sentence_order_label"])
        for i, f in enumerate(feats):
            n = int(out["attention_mask"][i].sum())
            ids, types = out["input_ids"][i, :n].tolist(), out["token_type_ids"][i, :n].tolist()
            sep1 = ids.index(tok.sep_token_id)
            assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
            assert types == [0] * (sep1 + 1) + [1] * (n - sep1 - 1)
            a, b = ids[1:sep1], ids[sep1 + 1:-1]
            assert a and b
            original = f["input_ids"]
            joined = b + a if out["sentence_order_label"][i] == 1 else a + b
            if len(original) <= 45:  # not truncated: the pair is the chunk, in or out of order
                assert joined == original
    labels = torch.cat(labels).float()
    assert abs(labels.mean().item() - 0.5) < 0.05, labels.mean()


@pytest.mark.parametrize("masking", ["mlm", "wwm", "ngram"])
def test_sop_with_masking(prepared, masking):
    tok, ds = prepared
    feats = [ds[i] for i in range(len(ds))]
    out = build_collator("sop", tok, max_seq_length=48, masking=masking, mlm_probability=0.3, seed=2,
                         pad_to_multiple_of=8)(feats)
    assert out["input_ids"].shape[1] % 8 == 0 and out["token_type_ids"].shape == out["input_ids"].shape
    sel = out["labels"] != IGNORE_INDEX
    eligible = (out["attention_mask"] == 1) & ~torch.isin(out["input_ids"], torch.tensor(tok.all_special_ids)) | sel
    assert abs(sel.sum().item() / eligible.sum().item() - 0.3) < 0.05
    assert not torch.isin(out["labels"][sel], torch.tensor(tok.all_special_ids)).any()
    with pytest.raises(ValueError, match="masking for sentence pairs"):
        build_collator("sop", tok, max_seq_length=48, masking="span")


def test_nsp_random_segments_from_other_documents(prepared):
    tok, ds = prepared
    feats = [ds[i] for i in range(len(ds))]
    coll = build_collator("nsp", tok, max_seq_length=48, mlm_probability=0.0, seed=3, pool=ds)
    by_doc = {}
    for f in feats:
        by_doc.setdefault(f["document_index"], []).append(" ".join(map(str, f["input_ids"])))
    labels = []
    for epoch in range(6):
        coll.set_epoch(epoch)
        out = coll(feats)
        labels.append(out["next_sentence_label"])
        for i, f in enumerate(feats):
            n = int(out["attention_mask"][i].sum())
            ids = out["input_ids"][i, :n].tolist()
            sep1 = ids.index(tok.sep_token_id)
            b = " ".join(map(str, ids[sep1 + 1:-1]))
            own = any(b in text for text in by_doc[f["document_index"]])
            if out["next_sentence_label"][i] == 0:
                assert own
            else:
                assert any(b in t for d, texts in by_doc.items() if d != f["document_index"] for t in texts)
    labels = torch.cat(labels).float()
    assert abs(labels.mean().item() - 0.5) < 0.06
    with pytest.raises(ValueError, match="pool"):
        build_collator("nsp", tok, max_seq_length=48)


@pytest.mark.parametrize("objective", ["sop", "nsp"])
def test_pairs_deterministic_batch_independent_resumable(prepared, objective):
    tok, ds = prepared
    feats = [ds[i] for i in range(len(ds))]
    extra = {"pool": ds} if objective == "nsp" else {}
    make = lambda: build_collator(objective, tok, max_seq_length=48, seed=4, masking="wwm", **extra)  # noqa: E731
    a, b = make()(feats), make()(feats)
    assert all(torch.equal(a[k], b[k]) for k in a)
    alone = make()([feats[5]])
    n = int(alone["attention_mask"].sum())
    assert torch.equal(alone["input_ids"][0, :n], a["input_ids"][5, :n])
    coll = make()
    coll.set_epoch(3)
    later = coll(feats[8:16])
    resumed = make()
    resumed.set_epoch(3)
    assert all(torch.equal(later[k], resumed(feats[8:16])[k]) for k in later)
    assert torch.equal(coll.for_eval()(feats)["input_ids"], a["input_ids"])


def test_truncate_pair_matches_megatron_loop():
    """Closed-form truncation gives the lengths and front/back split of Megatron's token-by-token loop."""
    def megatron(a, b, max_tokens, rng):
        a, b = list(a), list(b)
        while len(a) + len(b) > max_tokens:
            longer = a if len(a) > len(b) else b
            if rng.random() < 0.5:
                del longer[0]
            else:
                longer.pop()
        return a, b

    rng = np.random.default_rng(0)
    for la, lb, m in [(30, 5, 20), (10, 10, 15), (5, 30, 20), (12, 13, 11), (3, 4, 10)]:
        a, b = np.arange(la), 100 + np.arange(lb)
        ours = [truncate_pair(a, b, m, rng) for _ in range(2000)]
        ref = [megatron(a, b, m, rng) for _ in range(2000)]
        assert {(len(x), len(y)) for x, y in ours} == {(len(x), len(y)) for x, y in ref}
        if la + lb > m:
            mean_front = np.mean([x[0] if len(x) else 0 for x, _ in ours])
            ref_front = np.mean([x[0] if len(x) else 0 for x, _ in ref])
            assert abs(mean_front - ref_front) < 0.3


def test_chinese_sop_with_jieba_wwm():
    pytest.importorskip("jieba")
    tok = zh_tokenizer()
    lines = shared_lines("zh_pretrain/CLUECorpusSmall_sampled.txt", 60, min_chars=200)
    ds = prepare_sentence_examples(DatasetDict(train=Dataset.from_dict({"text": lines})), tok, 128,
                                   load_from_cache=False)["train"]
    assert len(ds) > 60
    out = build_collator("sop", tok, max_seq_length=128, masking="wwm", seed=5)([ds[i] for i in range(64)])
    sel = out["labels"] != IGNORE_INDEX
    assert out["input_ids"].shape == out["token_type_ids"].shape and sel.any()
    assert 0.2 < out["sentence_order_label"].float().mean() < 0.8


@pytest.mark.parametrize("objective", ["sop", "nsp"])
def test_word_starts_from_the_text_travel_with_their_tokens(objective):
    """#17: with DocumentWordStarts the chunks carry word starts found on each sentence's text (jieba for Chinese),
    and the pair the collator builds masks by exactly those flags: every word whole or not at all."""
    pytest.importorskip("jieba")
    from hf_pretrain_ext.collators import DocumentWordStarts
    tok = zh_tokenizer()
    lines = shared_lines("zh_pretrain/CLUECorpusSmall_sampled.txt", 40, min_chars=200)
    starts = DocumentWordStarts(tok, "auto", "jieba")
    ds = prepare_sentence_examples(DatasetDict(train=Dataset.from_dict({"text": lines})), tok, 512,
                                   load_from_cache=False, word_starts=starts)["train"]
    plain = prepare_sentence_examples(DatasetDict(train=Dataset.from_dict({"text": lines})), tok, 512,
                                      load_from_cache=False)["train"]
    assert ds["input_ids"] == plain["input_ids"] and ds["sentence_lengths"] == plain["sentence_lengths"]
    assert all(len(w) == len(i) for w, i in zip(ds["word_starts"], ds["input_ids"]))
    options = {"pool": ds} if objective == "nsp" else {}
    coll = build_collator(objective, tok, max_seq_length=512, masking="wwm", seed=3, mlm_probability=0.3, **options)
    seen = {}
    apply = coll.masker.apply
    coll.masker.apply = lambda ids, real, draws, **kw: seen.update(kw, ids=ids) or apply(ids, real, draws, **kw)
    feats = [ds[i] for i in range(min(32, len(ds)))]
    out = coll(feats)
    flags, ids = seen["precomputed"], seen["ids"]
    label = out["sentence_order_label" if objective == "sop" else "next_sentence_label"]
    for row, f in enumerate(feats):
        ordinary = ids[row] >= 0
        ordinary &= ~np.isin(ids[row], tok.all_special_ids)
        seq, marks = ids[row][ordinary], flags[row][ordinary]
        if objective == "sop" and len(seq) == len(f["input_ids"]):  # not truncated: A B or B A of the chunk
            cut = int((out["token_type_ids"][row] == 1).sum()) - 1  # swapped: the second segment is A, the cut
            order = np.r_[cut:len(seq), 0:cut] if int(label[row]) else np.arange(len(seq))
            assert seq.tolist() == np.asarray(f["input_ids"])[order].tolist()
            assert marks.astype(int).tolist() == np.asarray(f["word_starts"])[order].tolist()
        # every word (a start and the continuations after it; truncation may cut a word at the front of a
        # segment: the token after [SEP] then starts one) is selected whole or not at all
        after_special = np.r_[True, ~ordinary[:-1]][ordinary]
        selected = (out["labels"][row].numpy() != IGNORE_INDEX)[ordinary]
        word = np.cumsum(marks | after_special)
        for w in np.unique(word[selected]):
            assert selected[word == w].all(), (row, w)
