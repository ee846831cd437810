"""What every collator shares: the seed and epoch its per-example random numbers come from, and its eval copy.

`CollatorBase` is a dataclass with two keyword-only fields, `seed` (42) and `epoch` (0); keyword-only so that a
subclass's own fields keep their positions (`MLMCollator(tokenizer, 0.15)`). It gives:
- `set_epoch(epoch)`: PretrainTrainer calls it at the start of every epoch, so example k of epoch e is drawn from
  (seed, e, k) (see rng.py) and a resumed run draws what the interrupted one would have;
- `for_eval(seed=None, **changes)`: a copy at epoch 0, so every evaluation draws the held-out set identically,
  optionally with another seed or other fields changed (nsp: `for_eval(pool=eval_dataset)`);
- `copy(**changes)`: the copy both use, `dataclasses.replace` (a collator with its own __init__ overrides it).
`as_collator(fn)` wraps a plain callable (a collator from elsewhere: it has no seed or epoch of ours) in a
`CallableCollator`, so the mixtures handle every component the same way. `WrappingCollator` is the base of
collators around another one (mixture.TaggedCollator, schedule.ScheduledCollator).
"""
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(kw_only=True, eq=False)
class CollatorBase:
    """Base of the collators: `seed` and `epoch` (keyword-only), `set_epoch`, `for_eval` and `copy`."""

    seed: int = 42
    epoch: int = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def for_eval(self, seed=None, **changes):
        """A copy at epoch 0 (and optionally another seed, other fields): every evaluation draws alike."""
        return self.copy(epoch=0, seed=self.seed if seed is None else seed, **changes)

    def copy(self, **changes):
        """A new collator with the same options but `changes` (its tables are rebuilt by __post_init__)."""
        return dataclasses.replace(self, **changes)


@dataclass(eq=False)
class CallableCollator(CollatorBase):
    """A plain callable as a collator: it draws nothing from seed and epoch (kept, unused), so set_epoch only
    records the epoch and for_eval is a copy around the same callable."""

    collate: Callable

    def __call__(self, features):
        return self.collate(features)


@dataclass(eq=False)
class WrappingCollator(CollatorBase):
    """A collator around another (`collator`, a plain callable is wrapped by as_collator), which draws the random
    numbers: set_epoch is passed on to it, and for_eval is its own evaluation copy (the wrapper is dropped)."""

    collator: Callable

    def __post_init__(self):
        self.collator = as_collator(self.collator)

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.collator.set_epoch(epoch)

    def for_eval(self, seed=None, **changes):
        return self.collator.for_eval(seed, **changes)


def as_collator(collator):
    """`collator` itself when it is a CollatorBase, else a CallableCollator around it."""
    return collator if isinstance(collator, CollatorBase) else CallableCollator(collator)


def unwrapped(collator):
    """The callable a CallableCollator wraps; any other collator itself."""
    return collator.collate if isinstance(collator, CallableCollator) else collator
