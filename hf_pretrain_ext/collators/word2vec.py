"""Training pairs for word2vec (CBOW and skip-gram with negative sampling), drawn as word2vec.c draws them.

From each example (a block of token ids; documents are split at the separator tokens, and windows never cross
one) the collator
- drops frequent tokens: a token of corpus frequency f = count / total is kept with probability
  min(1, (sqrt(f / t) + 1) * t / f), t = `subsample` (word2vec.c's formula; 0 keeps everything);
- for each kept position draws a window b uniformly from 1 .. `window` (the original's "reduced window", which
  weighs near words more), then makes skip-gram pairs (centre -> each word within b) or one CBOW example
  (the words within b -> centre);
- draws `negatives` noise words per pair from the unigram distribution raised to `noise_power` (0.75).
Every draw comes from the example's own generator (seed, epoch, example_index; rng.py), so a batch is the same
whichever worker or process builds it, and a resumed run draws what the interrupted one would have. Special
tokens (padding, separators, [CLS], ...) are never inputs, targets or noise.

`counts` [V] are the corpus token counts the objective takes from the training set (`token_counts`).
"""
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import IGNORE_INDEX
from .base import CollatorBase
from .rng import example_keys, example_rng


def token_counts(rows, vocab_size):
    """[V] int64 counts of the token ids in `rows` (an iterable of id lists)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for ids in rows:
        counts += np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    return counts


@dataclass(eq=False)
class Word2VecCollator(CollatorBase):
    counts: np.ndarray  # [V] corpus counts
    special_ids: tuple = ()  # never inputs, targets or noise
    separator_ids: tuple = ()  # document boundaries inside a block
    architecture: str = "skipgram"
    window: int = 5
    negatives: int = 5
    subsample: float = 1e-3
    noise_power: float = 0.75

    def __post_init__(self):
        if self.architecture not in ("skipgram", "cbow"):
            raise ValueError(f"architecture must be 'skipgram' or 'cbow', got {self.architecture!r}")
        if self.window < 1 or self.negatives < 1:
            raise ValueError("window and negatives must be at least 1")
        counts = np.asarray(self.counts, dtype=np.float64).copy()
        self.ordinary = np.ones(len(counts), dtype=bool)
        self.ordinary[list(self.special_ids)] = False
        counts[~self.ordinary] = 0.0
        if counts.sum() <= 0:
            raise ValueError("word2vec needs token counts with at least one ordinary token")
        noise = counts ** self.noise_power
        self.noise = noise / noise.sum()  # the noise distribution, [V]
        self.noise_cdf = np.cumsum(self.noise)
        freq = counts / counts.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = (np.sqrt(freq / self.subsample) + 1) * self.subsample / freq if self.subsample > 0 else \
                np.ones_like(freq)
        self.keep = np.where(freq > 0, np.minimum(keep, 1.0), 1.0)

    def draw_noise(self, rng, shape):
        """Noise ids of `shape` from the unigram^noise_power distribution (inverse CDF)."""
        u = rng.random(shape) * self.noise_cdf[-1]
        return np.minimum(np.searchsorted(self.noise_cdf, u, side="right"), len(self.noise) - 1)

    def pairs(self, ids, rng):
        """(inputs [P, C], input_mask [P, C], targets [P]) of one example (vectorised over window offsets)."""
        ids = np.asarray(ids, dtype=np.int64)
        width = 1 if self.architecture == "skipgram" else 2 * self.window
        inputs, masks, targets = [], [], []
        cuts = np.flatnonzero(np.isin(ids, self.separator_ids)) if self.separator_ids else np.array([], int)
        for doc in np.split(ids, cuts):
            doc = doc[self.ordinary[doc]]
            doc = doc[rng.random(len(doc)) < self.keep[doc]]  # subsampling of frequent tokens
            n = len(doc)
            if n < 2:
                continue
            spans = rng.integers(1, self.window + 1, size=n)  # the reduced window of each position
            # context[i, j]: the word at offset -1, +1, -2, +2, ... of position i, or -1 (outside b or the doc)
            context = np.full((n, 2 * self.window), -1, dtype=np.int64)
            pos = np.arange(n)
            for o in range(1, self.window + 1):
                for j, other in ((2 * o - 2, pos - o), (2 * o - 1, pos + o)):
                    ok = (other >= 0) & (other < n) & (spans >= o)
                    context[ok, j] = doc[other[ok]]
            real = context >= 0
            if self.architecture == "skipgram":
                centre, col = np.nonzero(real)
                inputs.append(doc[centre][:, None])
                masks.append(np.ones((len(centre), 1), dtype=bool))
                targets.append(context[centre, col])
            else:
                has = real.any(1)
                inputs.append(np.maximum(context[has], 0))
                masks.append(real[has])
                targets.append(doc[has])
        if not targets:
            return np.zeros((0, width), np.int64), np.zeros((0, width), bool), np.zeros(0, np.int64)
        return np.concatenate(inputs), np.concatenate(masks), np.concatenate(targets)

    def __call__(self, features):
        parts = []
        for key, f in zip(example_keys(features), features):
            rng = example_rng(self.seed, self.epoch, key)
            inputs, mask, targets = self.pairs(f["input_ids"], rng)
            parts.append((inputs, mask, targets, self.draw_noise(rng, (len(targets), self.negatives))))
        width = 1 if self.architecture == "skipgram" else 2 * self.window
        inputs, mask, targets, noise = (np.concatenate(x) if len(x) else None for x in zip(*parts))
        if targets is None or not len(targets):  # nothing survived subsampling: one ignored pair
            inputs, mask = np.zeros((1, width), np.int64), np.zeros((1, width), bool)
            targets, noise = np.full(1, IGNORE_INDEX), np.zeros((1, self.negatives), np.int64)
        return {"input_ids": torch.from_numpy(inputs), "input_mask": torch.from_numpy(mask),
                "labels": torch.from_numpy(targets), "negatives": torch.from_numpy(noise)}
