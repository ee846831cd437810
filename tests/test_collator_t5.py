"""T5 span corruption: the length helper, exact reconstruction, sentinels by name, EOS, statistics, determinism,
short documents and tokenizers without sentinels."""
import numpy as np
import pytest
import torch

from hf_pretrain_ext.collators import add_sentinel_tokens, build_collator, t5_input_and_target_lengths
from hf_pretrain_ext.collators.span_corruption import random_spans_noise_mask, reconstruct, sentinel_ids
from hfpx_testutils import tiny_bpe_tokenizer


@pytest.mark.parametrize("inputs, raw, targets", [(512, 568, 114), (128, 141, 29), (1024, 1137, 229)])
def test_length_helper(inputs, raw, targets):
    assert t5_input_and_target_lengths(inputs, 0.15, 3.0) == (raw, targets)


def blocks(tok, n, length, seed=0):
    rng = np.random.default_rng(seed)
    ordinary = [i for i in range(len(tok)) if i not in set(tok.all_special_ids)]
    return [{"input_ids": rng.choice(ordinary, size=length).tolist(), "example_index": i} for i in range(n)]


@pytest.mark.parametrize("inputs_length", [512, 128])
def test_exact_lengths_and_reconstruction(inputs_length):
    tok = tiny_bpe_tokenizer(sentinels=True)
    coll = build_collator("t5", tok, seed=1)
    raw, targets = coll.lengths(inputs_length)
    feats = blocks(tok, 8, raw)
    feats[3]["input_ids"][10] = tok.eos_token_id  # a document separator: never noise, lengths unchanged
    out = coll(feats)
    assert out["input_ids"].shape == (8, inputs_length) and out["labels"].shape == (8, targets)
    assert (out["attention_mask"] == 1).all() and (out["labels"] != -100).all()
    assert (out["input_ids"][:, -1] == tok.eos_token_id).all() and (out["labels"][:, -1] == tok.eos_token_id).all()
    for i, f in enumerate(feats):
        assert reconstruct(out["input_ids"][i].tolist(), out["labels"][i].tolist(), coll.sentinels) \
            == f["input_ids"]
    # sentinels appear in order: <extra_id_0>, <extra_id_1>, ... in inputs and targets alike
    sentinels = torch.from_numpy(coll.sentinels)
    for row in (out["input_ids"][0], out["labels"][0]):
        used = row[torch.isin(row, sentinels)]
        assert torch.equal(used, sentinels[:len(used)])
    assert (out["labels"][:, 0] == sentinels[0]).all()
    assert (out["decoder_input_ids"][:, 0] == tok.pad_token_id).all()


def test_variable_lengths_and_padding_reconstruct():
    tok = tiny_bpe_tokenizer(sentinels=True)
    coll = build_collator("t5", tok, pad_to_multiple_of=8)
    feats = [{"input_ids": f["input_ids"][:n], "example_index": i}
             for i, (f, n) in enumerate(zip(blocks(tok, 6, 80), (2, 3, 7, 30, 61, 80)))]
    out = coll(feats)
    assert out["input_ids"].shape[1] % 8 == 0 and out["labels"].shape[1] % 8 == 0
    for i, f in enumerate(feats):
        inputs = out["input_ids"][i][out["attention_mask"][i] == 1].tolist()
        labels = out["labels"][i][out["labels"][i] != -100].tolist()
        assert reconstruct(inputs, labels, coll.sentinels) == f["input_ids"]


def test_documents_shorter_than_a_span_pass_through():
    tok = tiny_bpe_tokenizer(sentinels=True)
    out = build_collator("t5", tok)([{"input_ids": [], "example_index": 0}, {"input_ids": [40], "example_index": 1}])
    assert out["input_ids"][1, :2].tolist() == [40, tok.eos_token_id]
    assert out["labels"][1].tolist()[0] == tok.eos_token_id and out["labels"][0].tolist()[0] == tok.eos_token_id


def test_spans_never_cross_a_document_separator():
    """#17: in packed blocks (EOS between documents) no noise span covers or crosses a separator, the block keeps
    its noise and span totals (inputs exactly max_seq_length), and the raw block is reconstructed exactly."""
    from hf_pretrain_ext.collators.span_corruption import document_noise_mask, noise_span_counts
    tok = tiny_bpe_tokenizer(sentinels=True)
    coll = build_collator("t5", tok, seed=3)
    raw, _ = coll.lengths(128)
    rng = np.random.default_rng(5)
    feats = blocks(tok, 64, raw, seed=2)
    for f in feats:  # documents of 3 to 60 tokens packed back to back
        cut = 0
        while True:
            cut += int(rng.integers(3, 60))
            if cut >= raw:
                break
            f["input_ids"][cut] = tok.eos_token_id
    out = coll(feats)
    assert out["input_ids"].shape == (64, 128)
    sentinels = set(coll.sentinels.tolist())
    for i, f in enumerate(feats):
        labels = out["labels"][i].tolist()
        assert reconstruct(out["input_ids"][i].tolist(), labels, coll.sentinels) == f["input_ids"]
        assert tok.eos_token_id not in labels[:-1]  # no target span holds a separator
        inputs = out["input_ids"][i].tolist()
        assert inputs.count(tok.eos_token_id) == f["input_ids"].count(tok.eos_token_id) + 1
        assert len(sentinels & set(inputs)) == noise_span_counts(raw, 0.15, 3.0)[1]
    # blocks without separators are masked exactly as before (same draws)
    for k in range(50):
        assert (document_noise_mask(np.zeros(141, bool), 0.15, 3.0, np.random.default_rng(k))
                == random_spans_noise_mask(141, 0.15, 3.0, np.random.default_rng(k))).all()


def test_noise_statistics():
    rng = np.random.default_rng(0)
    spans, noise = [], []
    for _ in range(300):
        mask = random_spans_noise_mask(568, 0.15, 3.0, rng)
        assert not mask[0] and mask[-1]  # starts with non-noise, ends with noise
        noise.append(mask.mean())
        edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
        spans.extend(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
    assert abs(np.mean(noise) - 85 / 568) < 1e-9  # exactly round(568 * 0.15) noise tokens every time
    assert abs(np.mean(spans) - 85 / 28) < 1e-9 and len(spans) == 300 * 28


def test_sentinels_by_name_not_arithmetic():
    from hf_pretrain_ext.data.tokenizer import train_byte_bpe
    tok = train_byte_bpe(["a b c d e f g h"] * 10, 300)
    # added in a scrambled order, so ids do not decrease from the end of the vocabulary
    order = [5, 0, 3, 1, 4, 2]
    tok.add_special_tokens({"extra_special_tokens": [f"<extra_id_{i}>" for i in order]})
    ids = sentinel_ids(tok)
    assert [tok.convert_ids_to_tokens(int(i)) for i in ids] == [f"<extra_id_{i}>" for i in range(6)]


def test_missing_sentinels_clear_error_and_adding_them():
    from hf_pretrain_ext.data.tokenizer import train_byte_bpe
    tok = train_byte_bpe(["a b c d e f g h"] * 10, 300)
    with pytest.raises(ValueError, match="no sentinel tokens <extra_id_0>.*add_sentinel_tokens"):
        build_collator("t5", tok)
    n = len(tok)
    assert add_sentinel_tokens(tok, 3) == 3 and len(tok) == n + 3 and add_sentinel_tokens(tok, 3) == 0
    # an added sentinel takes the space before it (byte-level BPE spans start with their Ġ), saved and reloaded too
    assert tok("c <extra_id_0> d")["input_ids"] == tok("c<extra_id_0> d")["input_ids"]
    coll = build_collator("t5", tok)
    with pytest.raises(ValueError, match="needs 28 sentinels but the tokenizer has 3"):
        coll(blocks(tok, 1, 568))


def test_deterministic_per_example_and_epoch():
    tok = tiny_bpe_tokenizer(sentinels=True)
    feats = blocks(tok, 4, 141)
    a = build_collator("t5", tok, seed=2)(feats)
    alone = build_collator("t5", tok, seed=2)([feats[1]])
    assert torch.equal(alone["input_ids"][0], a["input_ids"][1])
    coll = build_collator("t5", tok, seed=2)
    coll.set_epoch(3)
    assert not torch.equal(coll(feats)["input_ids"], a["input_ids"])
    assert torch.equal(coll.for_eval()(feats)["labels"], a["labels"])
