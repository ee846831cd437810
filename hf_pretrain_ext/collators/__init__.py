"""Data collators for every pretraining objective, behind one entry point `build_collator`.

mlm: BERT token masking (mlm.py). wwm / ngram / span: whole words, whole-word n-grams or spans, span merged into
one position (spans.py, boundaries from words.py). sop / nsp: sentence pairs with a sentence-order or
next-sentence label, combined with any of mlm / wwm / ngram (pairs.py). Shared masking math: masking.py.
bart: fairseq denoising (denoising.py). t5: span corruption (span_corruption.py). clm: causal LM with
document-aware packing (causal.py). Mixtures of datasets or objectives: mixture.py. Every collator derives from
`CollatorBase` (base.py: seed, epoch, set_epoch, for_eval), which a collator of your own should too.
"""
from .base import CollatorBase
from .causal import CausalLMCollator
from .denoising import BART_RECIPES, DenoisingCollator
from .mixture import (MixtureDataset, ObjectiveMixtureCollator, TaggedCollator, build_mixture,
                      mixture_rates)
from .mlm import MLMCollator
from .pairs import NextSentenceCollator, SentenceOrderCollator
from .span_corruption import SpanCorruptionCollator, add_sentinel_tokens, t5_input_and_target_lengths
from .spans import NgramMaskCollator, SpanMaskCollator, WholeWordMaskCollator
from .doc_words import DocumentWordStarts
from .words import WordBoundaries, add_word_starts

_COLLATORS = {"mlm": MLMCollator, "wwm": WholeWordMaskCollator, "ngram": NgramMaskCollator,
              "span": SpanMaskCollator, "sop": SentenceOrderCollator, "nsp": NextSentenceCollator,
              "bart": DenoisingCollator, "t5": SpanCorruptionCollator, "clm": CausalLMCollator}


def build_collator(objective, tokenizer, **options):
    """Return a collator for `objective` usable as Trainer's `data_collator`.

    Options are the collator's fields: for all, pad_to_multiple_of and seed; mlm: mlm_probability,
    mask_replace_prob, random_replace_prob; wwm/ngram/span: word_boundaries, segmenter, replace_level,
    span_distribution, max_ngram, geometric_p, max_span_length, long_word_min_chars (wwm), return_span_lengths
    (span); sop/nsp: max_seq_length, masking and the options of that masking, and for nsp a `pool` of features
    to draw random segments from; bart: recipe, mask_ratio, poisson_lambda, replace_length, permute_sentences,
    rotate, ...; t5: noise_density, mean_noise_span_length; clm: packing."""
    try:
        cls = _COLLATORS[objective]
    except KeyError:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(sorted(_COLLATORS))}") from None
    return cls(tokenizer, **options)


__all__ = ["build_collator", "CollatorBase", "MLMCollator", "WholeWordMaskCollator", "NgramMaskCollator", "SpanMaskCollator",
           "SentenceOrderCollator", "NextSentenceCollator", "WordBoundaries", "add_word_starts",
           "DocumentWordStarts",
           "DenoisingCollator", "SpanCorruptionCollator", "CausalLMCollator", "BART_RECIPES",
           "t5_input_and_target_lengths", "add_sentinel_tokens", "build_mixture", "mixture_rates",
           "MixtureDataset", "ObjectiveMixtureCollator", "TaggedCollator"]
