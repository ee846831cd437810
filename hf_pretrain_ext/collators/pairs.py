"""Sentence-pair collators: sentence-order prediction ('sop', ALBERT) and next-sentence prediction ('nsp', BERT).

Input features are sentence chunks from data.pairs.prepare_sentence_examples (`input_ids`, `sentence_lengths`,
`document_index`, `example_index`). For each example, from its own stream rng.example_rng(seed, epoch, index):
- the chunk is split at a random sentence boundary a_end in [1, n_sentences): A = sentences before, B = after;
- sop: A and B are swapped with probability 0.5; sentence_order_label 1 = swapped, 0 = in order;
- nsp: with probability 0.5 B is replaced by sentences of another document (next_sentence_label 1 = random,
  0 = true continuation, BertForPreTraining's convention): a pool example of another document is drawn from the
  same stream, and B is its sentences from a random start, as many as fit beside A. The pool (the prepared
  dataset itself, or any indexable of such features) is held by the collator, so the choice depends only on
  (seed, epoch, index);
- the pair is truncated to max_seq_length - 3 tokens as Megatron does: tokens come off the longer side, each from
  its front or its back with probability 0.5 (drawn in closed form: a binomial count per side);
- [CLS] A [SEP] B [SEP] with token_type_ids 0 then 1 is masked by `masking` ('mlm', 'wwm' or 'ngram', with
  that collator's options). Word boundaries: the features' `word_starts` when they carry them
  (prepare_sentence_examples with a DocumentWordStarts: found on the text, what run_pretrain.py does), else those
  of the masking collator on the assembled pair. Each token travels through the split, the swap, the random
  segment and the truncation as one integer, id * 2 + word start, so the flags always stay with their tokens.
"""
import numpy as np
import torch

from .base import CollatorBase
from .masking import pad_batch, stack_draws
from .rng import example_keys, example_rng

_MAX_TRIES = 20  # draws of a random pool example before giving up on finding another document


def truncate_pair(a, b, max_tokens, rng):
    """Trim token arrays a, b to at most max_tokens together, Megatron's way, in closed form."""
    excess = len(a) + len(b) - max_tokens
    if excess <= 0:
        return a, b
    a_longer = len(a) > len(b)
    first = min(excess, abs(len(a) - len(b)))  # evens them out, from the longer side
    rest = excess - first  # then alternately, starting with b (Megatron trims b on a tie)
    trim_a = (first if a_longer else 0) + rest // 2
    trim_b = (0 if a_longer else first) + rest - rest // 2
    out = []
    for seq, trim in ((a, trim_a), (b, trim_b)):
        front = int(rng.binomial(trim, 0.5)) if trim else 0
        out.append(seq[front:len(seq) - (trim - front)])
    return out[0], out[1]


class SentencePairCollator(CollatorBase):
    """Base: subclasses set `label_name` and implement `make_pair(feature, a_end, rng)`. Not a dataclass (the
    masking collator's options pass through **masking_options): `copy` rebuilds it from its arguments."""

    label_name = None

    def __init__(self, tokenizer, max_seq_length, masking="mlm", pad_to_multiple_of=None, seed=42, epoch=0,
                 **masking_options):
        from . import build_collator
        if masking not in ("mlm", "wwm", "ngram"):
            raise ValueError(f"masking for sentence pairs must be 'mlm', 'wwm' or 'ngram', got {masking!r}")
        if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
            raise ValueError("sentence pairs need a tokenizer with [CLS] and [SEP] tokens")
        if max_seq_length < 5:
            raise ValueError(f"max_seq_length must be at least 5 for a pair, got {max_seq_length}")
        self.tokenizer, self.max_seq_length, self.masking = tokenizer, int(max_seq_length), masking
        self.pad_to_multiple_of, self.seed, self.epoch = pad_to_multiple_of, seed, int(epoch)
        self.masking_options = masking_options
        self.masker = build_collator(masking, tokenizer, seed=seed, **masking_options)

    def arguments(self):
        """The keyword arguments that rebuild this collator."""
        return dict(tokenizer=self.tokenizer, max_seq_length=self.max_seq_length, masking=self.masking,
                    pad_to_multiple_of=self.pad_to_multiple_of, seed=self.seed, epoch=self.epoch,
                    **self.masking_options)

    def copy(self, **changes):
        """A new collator with the same arguments but `changes` (for_eval: epoch 0, maybe a seed or nsp's pool);
        its masker is built again with the new seed."""
        return self.__class__(**{**self.arguments(), **changes})

    @staticmethod
    def tokens(feature):
        """A feature's tokens as id * 2 + word start (0 without a word_starts column)."""
        ids = np.asarray(feature["input_ids"], dtype=np.int64) * 2
        return ids + np.asarray(feature["word_starts"], dtype=np.int64) if "word_starts" in feature else ids

    def __call__(self, features):
        cls_id, sep_id = 2 * self.tokenizer.cls_token_id + 1, 2 * self.tokenizer.sep_token_id + 1
        max_tokens = self.max_seq_length - 3
        sequences, types, labels, draws = [], [], [], []
        for key, f in zip(example_keys(features), features):
            rng = example_rng(self.seed, self.epoch, key)
            ids = self.tokens(f)
            bounds = np.cumsum(f["sentence_lengths"])
            if len(bounds) < 2:
                raise ValueError("a sentence-pair example needs at least two sentences; prepare the data with "
                                 "hf_pretrain_ext.data.pairs.prepare_sentence_examples")
            a_end = int(rng.integers(1, len(bounds)))
            a, b, label = self.make_pair(f, ids, int(bounds[a_end - 1]), rng, max_tokens)
            a, b = truncate_pair(a, b, max_tokens, rng)
            seq = np.concatenate([[cls_id], a, [sep_id], b, [sep_id]]).astype(np.int64)
            sequences.append(seq)
            types.append(np.concatenate([np.zeros(len(a) + 2, np.int64), np.ones(len(b) + 1, np.int64)]))
            labels.append(label)
            draws.append(self.masker.draw(rng, len(seq)))
        packed, real = pad_batch(sequences, 2 * self.tokenizer.pad_token_id, self.pad_to_multiple_of)
        ids, starts = packed >> 1, (packed & 1).astype(bool)
        token_types, _ = pad_batch(types, 0, self.pad_to_multiple_of)
        given = {"precomputed": starts} if all("word_starts" in f for f in features) else {}
        batch = self.masker.apply(ids, real, stack_draws(draws, ids.shape[1], draws[0].shape[0]), **given)
        batch["token_type_ids"] = token_types
        batch[self.label_name] = np.array(labels, dtype=np.int64)
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


class SentenceOrderCollator(SentencePairCollator):
    """'sop': ALBERT's sentence-order prediction; sentence_order_label 1 = the two segments were swapped."""

    label_name = "sentence_order_label"

    def make_pair(self, feature, ids, cut, rng, max_tokens):
        a, b = ids[:cut], ids[cut:]
        if rng.random() < 0.5:
            return b, a, 1
        return a, b, 0


class NextSentenceCollator(SentencePairCollator):
    """'nsp': BERT's next-sentence prediction; next_sentence_label 1 = B comes from another document."""

    label_name = "next_sentence_label"

    def __init__(self, tokenizer, max_seq_length, masking="mlm", pad_to_multiple_of=None, seed=42, epoch=0,
                 pool=None, **masking_options):
        super().__init__(tokenizer, max_seq_length, masking, pad_to_multiple_of, seed, epoch, **masking_options)
        if pool is None:
            raise ValueError("nsp needs a `pool` of prepared sentence chunks to draw random segments from (the "
                             "training dataset itself, from prepare_sentence_examples)")
        documents = pool["document_index"] if hasattr(pool, "column_names") else [p["document_index"] for p in pool]
        if len(set(documents)) < 2:
            raise ValueError("nsp needs a pool with chunks of at least two documents")
        self.pool = pool

    def arguments(self):
        return {**super().arguments(), "pool": self.pool}

    def make_pair(self, feature, ids, cut, rng, max_tokens):
        a = ids[:cut]
        if rng.random() < 0.5:
            return a, ids[cut:], 0
        for _ in range(_MAX_TRIES):
            other = self.pool[int(rng.integers(len(self.pool)))]
            if other["document_index"] != feature["document_index"]:
                break
        else:  # a pool almost all from this document: keep the true continuation rather than loop for ever
            return a, ids[cut:], 0
        lengths = np.asarray(other["sentence_lengths"])
        start = int(rng.integers(len(lengths)))
        bounds = np.cumsum(lengths[start:])
        room = max(max_tokens - len(a), 1)
        n = max(1, int(np.searchsorted(bounds, room, side="right")))  # whole sentences that fit, at least one
        offset = int(lengths[:start].sum())
        b = self.tokens(other)[offset:offset + int(bounds[n - 1])]
        return a, b, 1
