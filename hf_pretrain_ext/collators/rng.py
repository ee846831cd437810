"""Per-example random streams.

Every random choice a collator makes for an example comes from a generator seeded by (seed, epoch, example index),
never from global state or batch position: the same example masks the same way whichever batch, worker or
process it lands in, and a run resumed from a checkpoint masks exactly as the uninterrupted one.
"""
import hashlib

import numpy as np


def example_rng(seed, epoch, index):
    """numpy Generator for one example: independent streams for distinct (seed, epoch, index)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index) & 0xFFFFFFFFFFFFFFFF])


def example_keys(features):
    """The `example_index` of each feature; a feature without one is keyed by a hash of its token ids (stable
    across runs, but identical examples then share a stream)."""
    keys = []
    for f in features:
        idx = f.get("example_index")
        if idx is None:
            digest = hashlib.blake2b(np.asarray(f["input_ids"], dtype=np.int64).tobytes(), digest_size=8).digest()
            idx = int.from_bytes(digest, "little")
        keys.append(int(idx))
    return keys
