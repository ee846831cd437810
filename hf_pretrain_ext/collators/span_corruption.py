"""T5 span corruption: random noise spans replaced by sentinels in the inputs, the spans themselves as targets.

For a raw block of tokens, round(length * noise_density) tokens in round(noise / mean_noise_span_length) spans are
noise (T5's `random_spans_noise_mask`: span and gap lengths are random segmentations; the mask starts with
non-noise and ends with noise). Inputs: the non-noise tokens, each noise span replaced by the next sentinel
(<extra_id_0>, <extra_id_1>, ...), then EOS. Targets: each sentinel followed by the span it stands for, then EOS.
Inputs + targets give the raw block back exactly (see `reconstruct`). Special tokens inside a block (the EOS or
[SEP] between packed documents) are never noise and no span crosses one: the block's noise tokens and spans are
shared out over the runs between them in proportion to their lengths (`document_noise_mask`), so the totals, and
the input length, stay as they are.

Raw blocks should be `t5_input_and_target_lengths(L)[0]` tokens long so that inputs are exactly L tokens
(512 -> 568 raw, 114 targets; 128 -> 141 raw, 29 targets): `run_pretrain.py --objective t5` groups (packs) the
documents into blocks of that length, EOS between documents. With --line_by_line each document is a block of its
own (truncated to the raw length) and the lengths vary per example. A block of fewer than 2 tokens cannot hold
both a noise and a non-noise token: it is passed through unchanged (inputs = block + EOS, targets = EOS).

Sentinel ids are looked up in the tokenizer by name, never computed (`add_sentinel_tokens` adds missing ones).
Random numbers come per example from (seed, epoch, example_index).
"""
from dataclasses import dataclass

import numpy as np
import torch
from transformers import AddedToken

from ..constants import IGNORE_INDEX
from .base import CollatorBase
from .masking import pad_batch
from .rng import example_keys, example_rng
from .vocab import shift_right, special_table

SENTINEL = "<extra_id_{}>"


def t5_input_and_target_lengths(inputs_length, noise_density=0.15, mean_noise_span_length=3.0):
    """(raw tokens, target tokens) so that span corruption of `raw` tokens gives exactly `inputs_length` inputs.

    As T5's `compute_input_and_target_lengths`: the largest raw length whose inputs (non-noise + one sentinel per
    span + EOS) still fit; targets are noise + one sentinel per span + EOS."""
    def lengths(raw):
        noise = int(round(raw * noise_density))
        spans = int(round(noise / mean_noise_span_length))
        return raw - noise + spans + 1, noise + spans + 1

    raw = inputs_length
    while lengths(raw + 1)[0] <= inputs_length:
        raw += 1
    _, targets = lengths(raw)
    if noise_density == 0.5 and targets > inputs_length:  # T5's own tweak for that density
        raw -= 1
        targets -= 1
    return raw, targets


def noise_span_counts(length, noise_density, mean_noise_span_length):
    """(noise tokens, noise spans) of a block of `length` >= 2 tokens."""
    noise = min(max(int(round(length * noise_density)), 1), length - 1)
    spans = max(int(round(noise / mean_noise_span_length)), 1)
    return noise, min(spans, length - noise)


def random_spans_noise_mask(length, noise_density, mean_noise_span_length, rng):
    """Bool [length]: True on noise tokens. Alternating non-noise/noise spans, starting with non-noise."""
    return spans_mask(length, *noise_span_counts(length, noise_density, mean_noise_span_length), rng)


def spans_mask(length, noise, spans, rng):
    """Bool [length] with exactly `noise` noise tokens in `spans` spans (T5's random segmentations), starting with
    non-noise and ending with noise; needs 1 <= spans <= noise and spans <= length - noise."""
    def segmentation(n_items, n_segments):  # random split of n_items into n_segments non-empty parts
        first = np.zeros(n_items, dtype=bool)
        first[1 + rng.permutation(n_items - 1)[:n_segments - 1]] = True
        return np.bincount(np.cumsum(first), minlength=n_segments)

    interleaved = np.stack([segmentation(length - noise, spans), segmentation(noise, spans)], axis=1).reshape(-1)
    span_id = np.zeros(length, dtype=np.int64)
    span_id[np.cumsum(interleaved)[:-1]] = 1
    return np.cumsum(span_id) % 2 == 1


def document_noise_mask(barrier, noise_density, mean_noise_span_length, rng):
    """The noise mask of a packed block whose `barrier` [length] marks the special tokens (EOS / [SEP] between
    documents): they are never noise and no span crosses them. The block keeps its totals (noise tokens and spans of
    `noise_span_counts(length)`, so inputs stay exactly as long as without barriers); they are shared out over the
    runs between barriers in proportion to their lengths, each run masked on its own. A block without barriers is
    masked exactly as `random_spans_noise_mask` masks it (same draws)."""
    length = len(barrier)
    if not barrier.any():
        return random_spans_noise_mask(length, noise_density, mean_noise_span_length, rng)
    noise, spans = noise_span_counts(length, noise_density, mean_noise_span_length)
    edges = np.flatnonzero(np.diff(np.concatenate([[True], barrier, [True]]).astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]  # the runs of ordinary tokens
    sizes = ends - starts
    run_spans = share_out(spans, sizes, sizes // 2)  # a span needs a noise and a non-noise token of its own
    run_noise = run_spans + share_out(noise - run_spans.sum(), sizes,
                                      np.where(run_spans > 0, sizes - 2 * run_spans, 0))
    mask = np.zeros(length, dtype=bool)
    for start, size, n, s in zip(starts, sizes, run_noise, run_spans):
        if s:
            mask[start:start + size] = spans_mask(size, n, s, rng)
    return mask


def share_out(total, weights, caps):
    """Integers summing to min(total, caps.sum()), each <= its cap, as close as they can be to `total` in proportion
    to `weights`: whole shares first, then one at a time to the run furthest below its share."""
    total = min(int(total), int(caps.sum()))
    share = total * weights / max(weights.sum(), 1)
    out = np.minimum(np.floor(share).astype(np.int64), caps)
    for _ in range(total - int(out.sum())):
        out[np.argmax(np.where(out < caps, share - out, -np.inf))] += 1
    return out


def sentinel_ids(tokenizer):
    """Ids of <extra_id_0>, <extra_id_1>, ... present in the tokenizer, in order (stops at the first missing)."""
    vocab = tokenizer.get_vocab()
    ids = []
    while SENTINEL.format(len(ids)) in vocab:
        ids.append(vocab[SENTINEL.format(len(ids))])
    return np.array(ids, dtype=np.int64)


def add_sentinel_tokens(tokenizer, n=100):
    """Add the missing ones of <extra_id_0> ... <extra_id_{n-1}> as special tokens; returns how many were added
    (resize the model's embeddings afterwards)."""
    vocab = tokenizer.get_vocab()
    missing = [SENTINEL.format(i) for i in range(n) if SENTINEL.format(i) not in vocab]
    if missing:  # lstrip: "any <extra_id_0>," encodes as in training, where the span's leading space (byte-level
        # BPE's Ġ) went with the span; without it a stray space token stands before the sentinel
        tokenizer.add_special_tokens({"extra_special_tokens": [AddedToken(t, lstrip=True, special=True)
                                                               for t in missing]}, replace_extra_special_tokens=False)
    return len(missing)


def reconstruct(input_ids, labels, sentinels):
    """The raw block from one example's inputs and targets (unpadded, each ending with EOS). EOS tokens inside
    the block (document separators) are ordinary tokens here: only the final one is dropped."""
    sentinels = set(int(s) for s in sentinels)
    spans, current = {}, None
    for t in list(labels)[:-1]:
        t = int(t)
        if t in sentinels:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    out = []
    for t in list(input_ids)[:-1]:
        t = int(t)
        if t in sentinels:
            out.extend(spans.get(t, []))
        else:
            out.append(t)
    return out


@dataclass
class SpanCorruptionCollator(CollatorBase):
    """Collate raw token blocks into a T5 span-corruption batch (input_ids, attention_mask, labels,
    decoder_input_ids); seed and epoch: see base.py."""

    tokenizer: object
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0
    decoder_start_token_id: int | None = None
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if not 0.0 < self.noise_density < 1.0:
            raise ValueError(f"noise_density must be in (0, 1), got {self.noise_density}")
        if self.mean_noise_span_length < 1:
            raise ValueError(f"mean_noise_span_length must be >= 1, got {self.mean_noise_span_length}")
        tok = self.tokenizer
        self.sentinels = sentinel_ids(tok)
        if len(self.sentinels) == 0:
            raise ValueError("the tokenizer has no sentinel tokens <extra_id_0>, <extra_id_1>, ...; T5 span "
                             "corruption needs them: add them with hf_pretrain_ext.collators.add_sentinel_tokens"
                             "(tokenizer) and resize the model's embeddings (run_pretrain.py does both)")
        # a BERT WordPiece tokenizer has no eos: its [SEP] ends the sequence, as in the model config the CLI builds
        eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if eos is None or tok.pad_token_id is None:
            raise ValueError("T5 span corruption needs the tokenizer's end-of-sequence (eos, or [SEP]) and pad "
                             "tokens")
        self.eos_id, self.pad_id = eos, tok.pad_token_id
        self.special = special_table(tok)  # never noise; no span crosses one (document separators)
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.pad_id  # T5 convention

    def lengths(self, inputs_length):
        return t5_input_and_target_lengths(inputs_length, self.noise_density, self.mean_noise_span_length)

    def __call__(self, features):
        keys = example_keys(features)
        blocks = [np.asarray(f["input_ids"], dtype=np.int64) for f in features]
        tokens, real = pad_batch(blocks, self.pad_id)
        noise = np.zeros_like(real)  # [B, L]
        for row, (block, key) in enumerate(zip(blocks, keys)):
            if len(block) >= 2:
                noise[row, :len(block)] = document_noise_mask(self.special[block], self.noise_density,
                                                              self.mean_noise_span_length,
                                                              example_rng(self.seed, self.epoch, key))
        passthrough = np.array([len(b) < 2 for b in blocks])[:, None]
        before = np.pad(noise[:, :-1], ((0, 0), (1, 0)))  # noise flag of the previous position
        noise_start = noise & ~before  # first token of each noise span
        clean_start = real & ~noise & (before | (np.arange(noise.shape[1]) == 0)) & ~passthrough
        clean_start &= np.flip(np.cumsum(np.flip(noise, 1), 1), 1) > 0  # a noise span follows (a packed block
        # may end with clean tokens after its last span: they get no sentinel)
        needed = int(noise_start.sum(1).max(initial=0))
        if needed > len(self.sentinels):
            raise ValueError(f"an example needs {needed} sentinels but the tokenizer has {len(self.sentinels)}; "
                             f"add more with add_sentinel_tokens(tokenizer, n) or use shorter blocks")
        # inputs: non-noise tokens, each noise span's first token replaced by its sentinel
        in_values = np.where(noise_start, self.sentinels[np.maximum(np.cumsum(noise_start, 1) - 1, 0)], tokens)
        in_keep = real & (~noise | noise_start)
        # targets: the noise spans, each behind the sentinel of the non-noise span before it (same number)
        out_values = np.where(clean_start, self.sentinels[np.maximum(np.cumsum(clean_start, 1) - 1, 0)], tokens)
        out_keep = noise | clean_start
        inputs = [np.append(r, self.eos_id) for r in np.split(in_values[in_keep], np.cumsum(in_keep.sum(1))[:-1])]
        targets = [np.append(r, self.eos_id) for r in np.split(out_values[out_keep],
                                                              np.cumsum(out_keep.sum(1))[:-1])]
        input_ids, attention = pad_batch(inputs, self.pad_id, self.pad_to_multiple_of)
        labels, _ = pad_batch(targets, IGNORE_INDEX, self.pad_to_multiple_of)
        decoder_input_ids = shift_right(labels, self.decoder_start_token_id, self.pad_id)
        return {"input_ids": torch.from_numpy(input_ids),
                "attention_mask": torch.from_numpy(attention.astype(np.int64)),
                "labels": torch.from_numpy(labels), "decoder_input_ids": torch.from_numpy(decoder_input_ids)}
