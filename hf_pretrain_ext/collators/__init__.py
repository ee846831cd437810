"""Data collators for every pretraining objective, behind one entry point `build_collator`."""
from .causal import CausalLMCollator
from .denoising import BART_RECIPES, DenoisingCollator
from .mixture import (MixtureDataset, ObjectiveMixtureCollator, TaggedCollator, build_mixture,
                      mixture_rates)
from .mlm import MLMCollator
from .span_corruption import SpanCorruptionCollator, add_sentinel_tokens, t5_input_and_target_lengths

_COLLATORS = {"mlm": MLMCollator, "bart": DenoisingCollator, "t5": SpanCorruptionCollator, "clm": CausalLMCollator}


def build_collator(objective, tokenizer, **options):
    """Return a collator for `objective` usable as Trainer's `data_collator`.

    Options are the collator's fields, e.g. for mlm: mlm_probability, mask_replace_prob, random_replace_prob;
    bart: recipe, mask_ratio, poisson_lambda, replace_length, permute_sentences, rotate, ...; t5: noise_density,
    mean_noise_span_length; clm: packing. All take pad_to_multiple_of and seed."""
    try:
        cls = _COLLATORS[objective]
    except KeyError:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(sorted(_COLLATORS))}") from None
    return cls(tokenizer, **options)


__all__ = ["build_collator", "MLMCollator", "DenoisingCollator", "SpanCorruptionCollator", "CausalLMCollator",
           "BART_RECIPES", "t5_input_and_target_lengths", "add_sentinel_tokens", "build_mixture", "mixture_rates",
           "MixtureDataset", "ObjectiveMixtureCollator", "TaggedCollator"]
