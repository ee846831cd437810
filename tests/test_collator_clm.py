"""Causal-LM collator: packed documents keep labels and positions inside each document; plain blocks."""
import numpy as np
import torch

from hf_pretrain_ext.collators import build_collator
from hf_pretrain_ext.collators.causal import document_position_ids
from hfpx_testutils import tiny_bpe_tokenizer


def packed_rows(tok, n=16, length=64, seed=0):
    """Blocks cut from a stream of random-length documents joined by EOS (as tokenize_and_group makes them)."""
    rng = np.random.default_rng(seed)
    stream = []
    while len(stream) < n * length:
        stream += rng.integers(10, len(tok) - 10, size=int(rng.integers(1, 30))).tolist() + [tok.eos_token_id]
    return [{"input_ids": stream[i * length:(i + 1) * length], "example_index": i} for i in range(n)]


def test_labels_never_cross_a_document_boundary():
    tok = tiny_bpe_tokenizer()
    feats = packed_rows(tok)
    feats[-1]["input_ids"] = feats[-1]["input_ids"][:40]  # a short, padded row
    out = build_collator("clm", tok)(feats)
    ids, labels, pos = out["input_ids"].numpy(), out["labels"].numpy(), out["position_ids"].numpy()
    assert "attention_mask" not in out and out["use_cache"] is False
    doc = np.cumsum(np.pad(ids[:, :-1] == tok.eos_token_id, ((0, 0), (1, 0))), axis=1)  # document number
    for r in range(len(ids)):
        for t in range(1, ids.shape[1]):
            if labels[r, t] != -100:  # the target at t is predicted from position t - 1: same document
                assert doc[r, t] == doc[r, t - 1] and labels[r, t] == ids[r, t]
                assert pos[r, t] == pos[r, t - 1] + 1
    # each document's closing EOS is a target; the first token after it is not
    after_eos = np.pad(ids[:, :-1] == tok.eos_token_id, ((0, 0), (1, 0)))
    assert (labels[after_eos] == -100).all() and (pos[after_eos] == 0).all()
    eos_targets = (ids == tok.eos_token_id) & (np.arange(ids.shape[1]) > 0) & ~after_eos
    assert (labels[eos_targets] == tok.eos_token_id).all()
    assert (labels[-1, 40:] == -100).all() and (labels[:, 0] == -100).all()


def test_position_ids():
    ids = np.array([[5, 6, 2, 7, 8, 9, 2, 4], [2, 3, 3, 3, 3, 2, 2, 1]])
    assert document_position_ids(ids, 2).tolist() == [[0, 1, 2, 0, 1, 2, 3, 0], [0, 0, 1, 2, 3, 4, 0, 0]]


def test_plain_blocks():
    tok = tiny_bpe_tokenizer()
    feats = packed_rows(tok, n=4)
    feats[0]["input_ids"] = feats[0]["input_ids"][:10]
    out = build_collator("clm", tok, packing="none", pad_to_multiple_of=16)(feats)
    assert "position_ids" not in out and out["input_ids"].shape[1] % 16 == 0
    real = out["attention_mask"] == 1
    expected = torch.where(real, out["input_ids"], torch.full_like(out["input_ids"], -100))
    expected[:, 0] = -100
    assert torch.equal(out["labels"], expected)
