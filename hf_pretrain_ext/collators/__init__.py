"""Data collators for every pretraining objective, behind one entry point `build_collator`."""
from .mlm import MLMCollator

_COLLATORS = {"mlm": MLMCollator}


def build_collator(objective, tokenizer, **options):
    """Return a collator for `objective` usable as Trainer's `data_collator`.

    Options are the collator's fields (e.g. mlm_probability, mask_replace_prob, random_replace_prob,
    pad_to_multiple_of, seed)."""
    try:
        cls = _COLLATORS[objective]
    except KeyError:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(sorted(_COLLATORS))}") from None
    return cls(tokenizer, **options)


__all__ = ["build_collator", "MLMCollator"]
