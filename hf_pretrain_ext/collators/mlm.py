"""BERT masked-LM collator: select, then replace with [MASK] / a random ordinary token / keep.

Selection: each non-special, non-padding token independently with probability `mlm_probability`. Of the
selected tokens, `mask_replace_prob` become [MASK], `random_replace_prob` a random token drawn from the ordinary
vocabulary only (never a special or added token, unlike HF's collator), the rest stay. Labels are the original
ids at selected positions and -100 elsewhere. Random numbers come per example from (seed, epoch, example_index)
(see rng.py), as many as the example has tokens, so an example masks the same way in any batch; the batch work is
vectorised numpy (masking.py), with one short loop over examples to draw their numbers. Examples packed with
packing='documents' carry `document_lengths`; the batch then holds `document_ids` [B, L] (-1 on padding).
"""
from dataclasses import dataclass, field

import numpy as np
import torch

from .base import CollatorBase
from .masking import (IGNORE_INDEX, document_ids, ordinary_token_ids, pad_batch, replace_selected,  # noqa: F401
                      stack_draws)
from .rng import example_keys, example_rng


@dataclass
class MLMCollator(CollatorBase):
    """Collate tokenized examples into an MLM batch (input_ids, attention_mask, labels); seed and epoch: see
    base.py."""

    tokenizer: object
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    special_ids: np.ndarray = field(init=False, repr=False)
    ordinary_ids: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        if not 0.0 <= self.mlm_probability <= 1.0:
            raise ValueError(f"mlm_probability must be in [0, 1], got {self.mlm_probability}")
        if self.mask_replace_prob < 0 or self.random_replace_prob < 0 or \
                self.mask_replace_prob + self.random_replace_prob > 1.0:
            raise ValueError("mask_replace_prob and random_replace_prob must be >= 0 and sum to at most 1")
        if self.tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token; MLM needs one")
        if self.tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token")
        self.special_ids = np.array(sorted(set(self.tokenizer.all_special_ids)), dtype=np.int64)
        self.ordinary_ids = ordinary_token_ids(self.tokenizer)

    def draw(self, rng, n):
        """An example's uniforms: [3, n] (selection, replacement kind, random token)."""
        return rng.random((3, n))

    def __call__(self, features):
        ids, real = pad_batch([f["input_ids"] for f in features], self.tokenizer.pad_token_id,
                              self.pad_to_multiple_of)
        draws = stack_draws([self.draw(example_rng(self.seed, self.epoch, k), len(f["input_ids"]))
                             for k, f in zip(example_keys(features), features)], ids.shape[1], 3)
        batch = self.apply(ids, real, draws)
        docs = document_ids(features, ids.shape[1])
        if docs is not None:  # packed documents: each attends to itself, positions restart (hfpx-bert)
            batch["document_ids"] = docs
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    def apply(self, ids, real, draws, **unused):
        """Mask a padded batch given draws [3, B, W]; returns a dict of numpy arrays."""
        input_ids, labels = self.mask(ids, real, draws)
        return {"input_ids": input_ids, "attention_mask": real.astype(np.int64), "labels": labels}

    def mask(self, ids, real, draws):
        """Apply 80/10/10 masking given uniform draws [3, B, L]; returns (input_ids, labels)."""
        eligible = real & ~np.isin(ids, self.special_ids)
        selected = eligible & (draws[0] < self.mlm_probability)
        return replace_selected(ids, selected, draws[1], draws[2], self.tokenizer.mask_token_id, self.ordinary_ids,
                                self.mask_replace_prob, self.random_replace_prob)
