"""Whole-word masking ('wwm'), whole-word n-gram masking ('ngram') and merged-span masking ('span').

All three select whole words (see words.py for where boundaries come from) in spans of 1 or more words until
mlm_probability of each example's eligible tokens are selected (masking.select_spans), then replace:
- replace_level='token' (default, as Google's WWM): each selected token independently becomes [MASK] /
  a random ordinary token / stays (mask_replace_prob / random_replace_prob / rest);
- replace_level='word': the choice is made once per word and applies to all its tokens.
Span lengths (in words): 'wwm' always 1; 'ngram' and 'span' draw n <= max_ngram with p(n) proportional to 1/n
(span_distribution='harmonic'), or Geometric(geometric_p) clipped at max_span_length words
(span_distribution='geometric', SpanBERT). A text shorter than a drawn span makes one span of the whole text
(spans are clipped at the end of the example, and of each packed document: no span crosses a special token; the
budget decides which spans, not their length, but its crossing rule favours short ones a little: masking.py's
docstring has the measured distribution).

'span' (merge_spans=True) replaces each selected span by a single position, as BART's replace_length=1: the span's
first token is kept at that position and replaced like any selected token (80% [MASK], 10% a random token, 10%
left), its other tokens are removed and the row is re-padded. The label at the merged position is the span's
first token, so the stock MLM head (hfpx-bert, BertForMaskedLM) trains on it unchanged: it learns to predict the
first token of a hidden span of unknown length. With return_span_lengths=True the batch also holds
`span_lengths` [B, L] (tokens the span covered, at merged positions, 0 elsewhere) for a model or loss that wants
them; it is off by default because the Trainer hands every batch key to the model's forward.

Fengshenbang's variant (long_word_min_chars=4, wwm only): words made only of CJK characters with at least that
many characters are always selected and every other word independently with probability mlm_probability (the
rate is then above mlm_probability; there is no token budget).
"""
from dataclasses import dataclass, field

import numpy as np
import torch

from .masking import (document_ids, merge_spans, pad_batch, replace_selected, select_spans, span_length_cdf,
                      stack_draws, words_from_starts)
from .mlm import MLMCollator
from .rng import example_keys, example_rng
from .words import WordBoundaries

_DRAW_ROWS = 5  # per token: span length, visiting order, replacement kind, random token; [4, 0]: crossing coin


@dataclass
class WordMaskCollator(MLMCollator):
    """Base of the whole-word collators; use WholeWordMaskCollator, NgramMaskCollator or SpanMaskCollator."""

    word_boundaries: str = "auto"
    segmenter: str = "jieba"
    replace_level: str = "token"
    span_distribution: str = "harmonic"
    max_ngram: int = 3
    geometric_p: float = 0.2
    max_span_length: int = 10
    long_word_min_chars: int | None = None
    merge_spans: bool = False
    return_span_lengths: bool = False
    boundaries: WordBoundaries = field(init=False, repr=False)
    length_cdf: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        super().__post_init__()
        if self.replace_level not in ("token", "word"):
            raise ValueError(f"replace_level must be 'token' or 'word', got {self.replace_level!r}")
        if self.max_ngram < 1 or self.max_span_length < 1:
            raise ValueError("max_ngram and max_span_length must be at least 1")
        if not 0.0 < self.geometric_p <= 1.0:
            raise ValueError(f"geometric_p must be in (0, 1], got {self.geometric_p}")
        if self.long_word_min_chars is not None and self.span_distribution != "one":
            raise ValueError("long_word_min_chars (Fengshenbang's variant) applies to whole-word masking ('wwm') "
                             "only")
        self.boundaries = WordBoundaries(self.tokenizer, self.word_boundaries, self.segmenter)
        self.length_cdf = span_length_cdf(self.span_distribution, self.max_ngram, self.geometric_p,
                                          self.max_span_length)

    def draw(self, rng, n):
        return rng.random((_DRAW_ROWS, n))

    def __call__(self, features):
        ids, real = pad_batch([f["input_ids"] for f in features], self.tokenizer.pad_token_id,
                              self.pad_to_multiple_of)
        draws = stack_draws([self.draw(example_rng(self.seed, self.epoch, k), len(f["input_ids"]))
                             for k, f in zip(example_keys(features), features)], ids.shape[1], _DRAW_ROWS)
        return self.to_tensors(self.apply(ids, real, draws, **self.carried(features, ids.shape[1])))

    @staticmethod
    def carried(features, width):
        """offset_mapping / word_starts / document ids from the features, padded to [B, W(, 2)], when every feature
        has them."""
        out = {}
        docs = document_ids(features, width)
        if docs is not None:
            out["documents"] = docs
        if all("word_starts" in f for f in features):
            out["precomputed"], _ = pad_batch([f["word_starts"] for f in features], 0)
            out["precomputed"] = np.pad(out["precomputed"], ((0, 0), (0, width - out["precomputed"].shape[1])))
            out["precomputed"] = out["precomputed"].astype(bool)
        elif all("offset_mapping" in f for f in features):
            offsets = np.zeros((len(features), width, 2), dtype=np.int64)
            for row, f in enumerate(features):
                o = np.asarray(f["offset_mapping"], dtype=np.int64).reshape(-1, 2)
                offsets[row, :len(o)] = o
            out["offsets"] = offsets
        return out

    def apply(self, ids, real, draws, offsets=None, precomputed=None, documents=None):
        """Mask a padded batch given per-token draws [5, B, W]; returns a dict of numpy arrays."""
        eligible = real & ~np.isin(ids, self.special_ids)
        starts = self.boundaries.word_starts(ids, eligible, offsets, precomputed)
        always = None
        if self.long_word_min_chars is not None:
            word_of_token, _, word_tokens = words_from_starts(starts, eligible)
            chars, all_cjk = self.boundaries.word_char_lengths(ids, word_of_token, eligible, len(word_tokens))
            always = all_cjk & (chars >= self.long_word_min_chars)
        cross = draws[4, :, 0] if ids.shape[1] else np.ones(len(ids))
        # spans stop at special tokens: the [SEP] between two packed documents is never inside one
        selected, first, span_tokens = select_spans(starts, eligible, draws[0], draws[1], cross,
                                                    self.mlm_probability, self.length_cdf, always,
                                                    barrier=real & ~eligible if len(self.length_cdf) > 1 else None)
        kind = draws[2]
        if self.replace_level == "word":
            # the first token's draw decides for the whole word: carry it forward over continuation tokens
            word_pos = np.where(starts, np.arange(ids.shape[1])[None, :], 0)
            np.maximum.accumulate(word_pos, axis=1, out=word_pos)
            kind = np.take_along_axis(kind, word_pos, axis=1)
        out, labels = replace_selected(ids, selected, kind, draws[3], self.tokenizer.mask_token_id,
                                       self.ordinary_ids, self.mask_replace_prob, self.random_replace_prob)
        if self.merge_spans:
            shifted = documents + 1 if documents is not None else np.zeros_like(ids)  # merge pads extras with 0
            out, real, labels, span_tokens, shifted = merge_spans(out, real, labels, selected, first,
                                                                  self.tokenizer.pad_token_id,
                                                                  self.pad_to_multiple_of, extra=(span_tokens, shifted))
            documents = shifted - 1 if documents is not None else None
        batch = {"input_ids": out, "attention_mask": real.astype(np.int64), "labels": labels}
        if documents is not None:
            batch["document_ids"] = documents
        if self.return_span_lengths:
            batch["span_lengths"] = span_tokens
        return batch

    @staticmethod
    def to_tensors(batch):
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


@dataclass
class WholeWordMaskCollator(WordMaskCollator):
    """'wwm': whole words (span length 1), WordPiece `##`, offsets, or jieba for Chinese."""

    span_distribution: str = "one"


@dataclass
class NgramMaskCollator(WordMaskCollator):
    """'ngram': whole-word n-grams, p(n) ~ 1/n up to max_ngram, or geometric spans (SpanBERT)."""


@dataclass
class SpanMaskCollator(WordMaskCollator):
    """'span': whole-word n-grams, each selected span merged into a single masked position."""

    merge_spans: bool = True
