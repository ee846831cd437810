"""BERT masked-LM collator: select, then replace with [MASK] / a random ordinary token / keep.

Selection: each non-special, non-padding token independently with probability `mlm_probability`. Of the
selected tokens, `mask_replace_prob` become [MASK], `random_replace_prob` a random token drawn from the ordinary
vocabulary only (never a special or added token, unlike HF's collator), the rest stay. Labels are the original
ids at selected positions and -100 elsewhere. Random numbers come per example from (seed, epoch, example_index)
(see rng.py); the batch work is vectorised numpy, with one short loop over examples to draw their numbers.
"""
from dataclasses import dataclass, field

import numpy as np
import torch

from .rng import example_keys, example_rng

IGNORE_INDEX = -100


def ordinary_token_ids(tokenizer):
    """Ids a random replacement may take: the vocabulary minus special and added tokens."""
    vocab_size = len(tokenizer)
    excluded = set(tokenizer.all_special_ids)
    excluded.update(getattr(tokenizer, "added_tokens_decoder", {}).keys())
    keep = np.ones(vocab_size, dtype=bool)
    keep[[i for i in excluded if 0 <= i < vocab_size]] = False
    return np.flatnonzero(keep)


def pad_batch(sequences, pad_id, pad_to_multiple_of=None):
    """Right-pad int sequences into an [B, L] int64 array plus a bool mask of real tokens."""
    lengths = np.array([len(s) for s in sequences])
    width = int(lengths.max()) if len(sequences) else 0
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    real = np.arange(width)[None, :] < lengths[:, None]
    ids[real] = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(sequences) else []
    return ids, real


@dataclass
class MLMCollator:
    """Collate tokenized examples into an MLM batch (input_ids, attention_mask, labels)."""

    tokenizer: object
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    seed: int = 42
    epoch: int = 0
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

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __call__(self, features):
        ids, real = pad_batch([f["input_ids"] for f in features], self.tokenizer.pad_token_id,
                              self.pad_to_multiple_of)
        keys = example_keys(features)
        # [B, L] uniform draws: selection, replacement kind, random token; one generator per example
        draws = np.empty((3,) + ids.shape)
        for row, key in enumerate(keys):
            draws[:, row] = example_rng(self.seed, self.epoch, key).random((3, ids.shape[1]))
        input_ids, labels = self.mask(ids, real, draws)
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(real.astype(np.int64)),
                "labels": torch.from_numpy(labels)}

    def mask(self, ids, real, draws):
        """Apply 80/10/10 masking given uniform draws [3, B, L]; returns (input_ids, labels)."""
        eligible = real & ~np.isin(ids, self.special_ids)
        selected = eligible & (draws[0] < self.mlm_probability)
        labels = np.where(selected, ids, IGNORE_INDEX)
        to_mask = selected & (draws[1] < self.mask_replace_prob)
        to_random = selected & ~to_mask & (draws[1] < self.mask_replace_prob + self.random_replace_prob)
        out = ids.copy()
        out[to_mask] = self.tokenizer.mask_token_id
        random_tokens = self.ordinary_ids[(draws[2] * len(self.ordinary_ids)).astype(np.int64)
                                          .clip(0, len(self.ordinary_ids) - 1)]
        out[to_random] = random_tokens[to_random]
        return out, labels

    def for_eval(self, seed=None):
        """A copy with a fixed epoch (0), so every evaluation masks the held-out set identically."""
        clone = MLMCollator(self.tokenizer, self.mlm_probability, self.mask_replace_prob, self.random_replace_prob,
                            self.pad_to_multiple_of, self.seed if seed is None else seed, 0)
        return clone
