"""Data collators for every pretraining objective, behind one entry point `build_collator`.

mlm: BERT token masking (mlm.py). wwm / ngram / span: whole words, whole-word n-grams or spans, span merged into
one position (spans.py, boundaries from words.py). sop / nsp: sentence pairs with a sentence-order or
next-sentence label, combined with any of mlm / wwm / ngram (pairs.py). Shared masking math: masking.py.
"""
from .mlm import MLMCollator
from .pairs import NextSentenceCollator, SentenceOrderCollator
from .spans import NgramMaskCollator, SpanMaskCollator, WholeWordMaskCollator
from .words import WordBoundaries, add_word_starts

_COLLATORS = {"mlm": MLMCollator, "wwm": WholeWordMaskCollator, "ngram": NgramMaskCollator,
              "span": SpanMaskCollator, "sop": SentenceOrderCollator, "nsp": NextSentenceCollator}


def build_collator(objective, tokenizer, **options):
    """Return a collator for `objective` usable as Trainer's `data_collator`.

    Options are the collator's fields: for all, mlm_probability, mask_replace_prob, random_replace_prob,
    pad_to_multiple_of, seed; for wwm/ngram/span, word_boundaries, segmenter, replace_level, span_distribution,
    max_ngram, geometric_p, max_span_length, long_word_min_chars (wwm), return_span_lengths (span); for sop/nsp,
    max_seq_length, masking and the options of that masking, and for nsp a `pool` of features to draw random
    segments from."""
    try:
        cls = _COLLATORS[objective]
    except KeyError:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(sorted(_COLLATORS))}") from None
    return cls(tokenizer, **options)


__all__ = ["build_collator", "MLMCollator", "WholeWordMaskCollator", "NgramMaskCollator", "SpanMaskCollator",
           "SentenceOrderCollator", "NextSentenceCollator", "WordBoundaries", "add_word_starts"]
