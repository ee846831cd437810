"""BART denoising collator, faithful to fairseq's `DenoisingDataset`, with every noising function combinable.

Each example is wrapped as <s> tokens </s> (unless the tokenizer's template already does so) and noised in
fairseq's order, each function with its own rate:
  sentence permutation (`permute_sentences`: the fraction of sentences shuffled among themselves),
  token masking (`token_mask_ratio`: single tokens -> <mask>), token deletion (`token_delete_ratio`),
  text infilling (`mask_ratio` of words or tokens, `mask_unit`, spans ~ Poisson(`poisson_lambda`) or of length 1,
      `replace_length` 0: delete the span, 1: one <mask> for the span, -1: a <mask> per token; a span of length 0
      becomes an inserted <mask>; `mask_random`: a span's mask is a random token instead),
  insertion (`insert_ratio`), document rotation (with probability `rotate`).
The budget is per example (ceil(ratio * units in this example)), never per batch. The first and last tokens
(<s>, </s>) are never noised. labels are the original wrapped tokens and decoder_input_ids are the labels
shifted right behind the decoder start token (BART uses </s>). With a tokenizer whose bos is the decoder start
token (GPT-2's one <|endoftext|> for bos and eos) the labels drop their leading bos: the model would otherwise learn
to emit it first, and generate() would read it as eos and stop at once.

Defaults come from a recipe: "released" is the recipe fairseq released for bart.large (fairseq #1899: mask 0.3,
mask_random 0.1, poisson_lambda 3.5, word-level span-poisson, replace_length 1, permute_sentences 1, rotate 0,
insert 0); "paper" is the paper's text infilling (30% of tokens, Poisson(3), no random replacement) plus
sentence permutation. Any field given explicitly overrides the recipe.

Deviations from fairseq, on purpose: random replacements are drawn from the ordinary vocabulary only (fairseq
draws any id >= 1, specials included); a run of consecutive sentence-end tokens stays with the sentence it ends
(fairseq moves all but the first to the next sentence). Random numbers come per example from
(seed, epoch, example_index) (see rng.py), so a resumed run noises identically.
"""
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..constants import IGNORE_INDEX
from ..data.grouping import special_affixes
from .base import CollatorBase
from .masking import ordinary_token_ids, pad_batch
from .rng import example_keys, example_rng
from .vocab import sentence_end_table, shift_right, special_table, word_start_table

BART_RECIPES = {
    "released": dict(mask_ratio=0.3, mask_random=0.1, poisson_lambda=3.5, mask_unit="word",
                     span_distribution="poisson", replace_length=1, permute_sentences=1.0, rotate=0.0,
                     insert_ratio=0.0),
    "paper": dict(mask_ratio=0.3, mask_random=0.0, poisson_lambda=3.0, mask_unit="token",
                  span_distribution="poisson", replace_length=1, permute_sentences=1.0, rotate=0.0,
                  insert_ratio=0.0),
}


def sample_span_lengths(rng, budget, poisson_lambda):
    """Poisson span lengths summing exactly to `budget` (fairseq: draw, extend until enough, trim the last).

    Zero lengths are kept (the caller turns them into insertions)."""
    lengths = rng.poisson(poisson_lambda, size=budget)
    cum = np.cumsum(lengths)
    while cum[-1] < budget:
        lengths = np.concatenate([lengths, rng.poisson(poisson_lambda, size=budget)])
        cum = np.cumsum(lengths)
    last = int(np.searchsorted(cum, budget))  # first index where the running total reaches the budget
    lengths = lengths[:last + 1].copy()
    lengths[last] = budget - (cum[last - 1] if last > 0 else 0)
    return lengths


def _coverage(n, starts, ends):
    """Bool [n]: positions inside any half-open range [starts[k], ends[k])."""
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    return np.cumsum(delta[:n]) > 0


@dataclass
class DenoisingCollator(CollatorBase):
    """Collate tokenized examples into a BART denoising batch (input_ids, attention_mask, labels,
    decoder_input_ids). Fields left at None take their value from `recipe`; seed and epoch: see base.py."""

    tokenizer: object
    recipe: str = "released"
    mask_ratio: float | None = None
    mask_random: float | None = None
    poisson_lambda: float | None = None
    mask_unit: str | None = None
    span_distribution: str | None = None
    replace_length: int | None = None
    permute_sentences: float | None = None
    rotate: float | None = None
    insert_ratio: float | None = None
    token_mask_ratio: float = 0.0
    token_delete_ratio: float = 0.0
    max_length: int | None = None
    decoder_start_token_id: int | None = None
    pad_to_multiple_of: int | None = None
    _tables: dict = field(init=False, repr=False, default=None)

    def __post_init__(self):
        if self.recipe not in BART_RECIPES:
            raise ValueError(f"unknown BART recipe {self.recipe!r}; known: {', '.join(BART_RECIPES)}")
        for name, value in BART_RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name in ("mask_ratio", "mask_random", "permute_sentences", "rotate", "insert_ratio",
                     "token_mask_ratio", "token_delete_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.replace_length not in (-1, 0, 1):
            raise ValueError(f"replace_length must be -1, 0 or 1, got {self.replace_length}")
        if self.mask_unit not in ("word", "token"):
            raise ValueError(f"mask_unit must be 'word' or 'token', got {self.mask_unit!r}")
        if self.span_distribution not in ("poisson", "single"):
            raise ValueError(f"span_distribution must be 'poisson' or 'single', got {self.span_distribution!r}")
        if self.span_distribution == "poisson" and self.poisson_lambda <= 0:
            raise ValueError(f"poisson_lambda must be > 0, got {self.poisson_lambda}")
        tok = self.tokenizer
        needs_mask = self.mask_ratio > 0 or self.token_mask_ratio > 0 or self.insert_ratio > 0
        if needs_mask and tok.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token; BART masking, infilling and insertion need one "
                             "(add one, e.g. tokenizer.add_special_tokens({'mask_token': '<mask>'}), and resize "
                             "the model's embeddings)")
        if tok.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token")
        self.bos_id = tok.bos_token_id if tok.bos_token_id is not None else tok.cls_token_id
        self.eos_id = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if self.bos_id is None or self.eos_id is None:
            raise ValueError("BART denoising needs begin- and end-of-sequence tokens (bos/eos or cls/sep)")
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.eos_id
        prefix, suffix = special_affixes(tok)
        self.wrap = not (prefix == [self.bos_id] and suffix == [self.eos_id])
        self._tables = {"special": special_table(tok), "word_start": word_start_table(tok),
                        "sentence_end": sentence_end_table(tok), "ordinary": ordinary_token_ids(tok)}

    # -- one example ---------------------------------------------------------------------------------------
    def wrapped(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        if self.wrap:
            ids = np.concatenate([[self.bos_id], ids, [self.eos_id]])
        return ids

    def noise(self, tokens, rng):
        """Noised source for one wrapped example [n] (n >= 2)."""
        src = tokens
        if self.permute_sentences > 0:
            src = self.permute(src, rng)
        if self.token_mask_ratio > 0:
            src = self.mask_single_tokens(src, rng, delete=False)
        if self.token_delete_ratio > 0:
            src = self.mask_single_tokens(src, rng, delete=True)
        if self.mask_ratio > 0:
            src = self.infill(src, rng)
        if self.insert_ratio > 0:
            src = self.insert(src, math.ceil(len(src) * self.insert_ratio), rng)
        if self.rotate > 0 and rng.random() < self.rotate:
            src = self.rotate_document(src, rng)
        if self.max_length is not None and len(src) > self.max_length:
            src = np.concatenate([src[:self.max_length - 1], [self.eos_id]])
        return src

    def random_tokens(self, rng, n):
        ordinary = self._tables["ordinary"]
        return ordinary[rng.integers(0, len(ordinary), size=n)]

    def permute(self, src, rng):
        """Shuffle ceil(p * k) of the k sentences among themselves; <s> and </s> stay in place."""
        n = len(src)
        if n < 4:
            return src
        ends_sentence = self._tables["sentence_end"][src[1:n - 1]]  # interior tokens
        ends_sentence[-1] = True  # the last interior token ends the last sentence
        run_end = ends_sentence & ~np.append(ends_sentence[1:], False)
        ends = np.flatnonzero(run_end) + 2  # exclusive end positions in src
        starts = np.concatenate([[1], ends[:-1]])
        k = len(ends)
        num_to_permute = math.ceil(k * self.permute_sentences)
        chosen = rng.permutation(k)[:num_to_permute]
        ordering = np.arange(k)
        ordering[chosen] = chosen[rng.permutation(num_to_permute)]
        return np.concatenate([src[:1], *[src[starts[i]:ends[i]] for i in ordering], src[-1:]])

    def word_starts(self, src):
        n = len(src)
        if self.mask_unit == "token":
            starts = np.ones(n, dtype=bool)
        else:
            starts = self._tables["word_start"][src]
            starts[1:] |= self._tables["special"][src[:-1]]  # a document's first word has no leading space
        starts[0] = starts[-1] = False
        return starts

    def mask_single_tokens(self, src, rng, delete):
        """Token masking / deletion: ceil(ratio * ordinary interior tokens) single tokens."""
        ratio = self.token_delete_ratio if delete else self.token_mask_ratio
        candidates = np.flatnonzero(~self._tables["special"][src])
        candidates = candidates[(candidates > 0) & (candidates < len(src) - 1)]
        k = math.ceil(len(candidates) * ratio)
        if k == 0:
            return src
        chosen = rng.choice(candidates, size=k, replace=False)
        if delete:
            keep = np.ones(len(src), dtype=bool)
            keep[chosen] = False
            return src[keep]
        out = src.copy()
        out[chosen] = self.tokenizer.mask_token_id
        randomised = chosen[rng.random(k) < self.mask_random]
        out[randomised] = self.random_tokens(rng, len(randomised))
        return out

    def infill_spans(self, src, rng):
        """(starts, ends, num_inserts): the text-infilling spans of one example as half-open token ranges.

        The budget is ceil(mask_ratio * units) where units are the example's words (or tokens); each span
        covers `length` units from a distinct randomly chosen unit start and never covers a special token: it
        stops before </s>, and in a packed block before the separator between two documents (a span reaching a
        document's end is clipped there, as fairseq clips at the example's end)."""
        n = len(src)
        special = self._tables["special"][src].copy()
        special[0] = special[-1] = True
        unit_starts = np.flatnonzero(self.word_starts(src) & ~special)
        n_units = len(unit_starts)
        budget = math.ceil(n_units * self.mask_ratio)
        empty = np.zeros(0, dtype=np.int64)
        if budget == 0:
            return empty, empty, 0
        if self.span_distribution == "poisson":
            lengths = sample_span_lengths(rng, budget, self.poisson_lambda)
            num_inserts = int((lengths == 0).sum())
            lengths = lengths[lengths > 0]
        else:
            lengths, num_inserts = np.ones(budget, dtype=np.int64), 0
        chosen = rng.permutation(n_units)[:len(lengths)]
        # unit k spans [unit_starts[k], unit_end[k]): up to the next unit or the next special token
        special_at = np.flatnonzero(special)
        next_special = special_at[np.searchsorted(special_at, unit_starts, side="right")]
        unit_end = np.minimum(np.append(unit_starts[1:], n - 1), next_special)
        part = np.cumsum(special)[unit_starts]  # which document (stretch between specials) each unit is in
        last_of_part = np.searchsorted(part, part, side="right") - 1
        last = np.minimum(chosen + lengths - 1, last_of_part[chosen])
        return unit_starts[chosen], unit_end[last], num_inserts

    def infill(self, src, rng):
        starts, ends, num_inserts = self.infill_spans(src, rng)
        n = len(src)
        if len(starts):
            span_random = rng.random(len(starts)) < self.mask_random
            tail = _coverage(n, starts + 1, ends)  # span tokens after each span's first token
            head = np.zeros(n, dtype=bool)
            head[starts] = True
            out = src.copy()
            if self.replace_length == 0:
                keep = ~(head | tail)
            elif self.replace_length == 1:  # one mask per (merged) span, at its first token
                keep = ~tail
                out[head & keep] = self.tokenizer.mask_token_id
                rand_heads = starts[span_random & keep[starts]]
                out[rand_heads] = self.random_tokens(rng, len(rand_heads))
            else:  # a mask per token
                keep = np.ones(n, dtype=bool)
                out[head | tail] = self.tokenizer.mask_token_id
                rand = _coverage(n, starts[span_random], ends[span_random])
                out[rand] = self.random_tokens(rng, int(rand.sum()))
            src = out[keep]
        if num_inserts:
            src = self.insert(src, num_inserts, rng)
        return src

    def insert(self, src, n_insert, rng):
        """Insert n masks (ceil(n * mask_random) of them random tokens) at random interior positions."""
        total = len(src) + n_insert
        positions = rng.permutation(total - 2)[:n_insert] + 1
        is_new = np.zeros(total, dtype=bool)
        is_new[positions] = True
        out = np.empty(total, dtype=np.int64)
        num_random = math.ceil(n_insert * self.mask_random)
        out[positions[num_random:]] = self.tokenizer.mask_token_id
        out[positions[:num_random]] = self.random_tokens(rng, len(positions[:num_random]))
        out[~is_new] = src
        return out

    def rotate_document(self, src, rng):
        """Rotate the interior so that it starts at a random token; <s> and </s> stay in place."""
        n = len(src)
        if n < 4:
            return src
        offset = int(rng.integers(1, n - 1))
        return np.concatenate([src[:1], src[offset:-1], src[1:offset], src[-1:]])

    # -- the batch ------------------------------------------------------------------------------------------
    def __call__(self, features):
        keys = example_keys(features)
        targets = [self.wrapped(f["input_ids"]) for f in features]
        sources = [self.noise(t, example_rng(self.seed, self.epoch, k)) for t, k in zip(targets, keys)]
        pad = self.tokenizer.pad_token_id
        input_ids, real = pad_batch(sources, pad, self.pad_to_multiple_of)
        if self.bos_id == self.decoder_start_token_id:  # one token for bos and eos (GPT-2's <|endoftext|>)
            targets = [t[1:] if len(t) and t[0] == self.bos_id else t for t in targets]
        labels, _ = pad_batch(targets, IGNORE_INDEX, self.pad_to_multiple_of)
        decoder_input_ids = shift_right(labels, self.decoder_start_token_id, pad)
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(real.astype(np.int64)),
                "labels": torch.from_numpy(labels), "decoder_input_ids": torch.from_numpy(decoder_input_ids)}
