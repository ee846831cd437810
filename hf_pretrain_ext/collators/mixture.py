"""Mixing datasets, or objectives, at set rates: examples-proportional mixing with a cap and a temperature.

`mixture_rates(sizes, cap=K, temperature=T)` is the T5 paper's rule: r_m = min(n_m, K) / sum_n min(n_n, K), then
r_m ** (1 / T) renormalised (T = 1 is plain capped proportional mixing, large T tends to equal mixing).
`build_mixture(components, rates=..., cap=..., temperature=...)`:
- components that are datasets (anything with len() and integer indexing) -> a `MixtureDataset`: example i of the
  mixture is drawn from component m with probability rate_m, and takes the next example of a seeded shuffle of
  that component (reshuffled each time it is used up). Draws come from the mixture seed, so the mixture is the
  same sequence on every run and every resume. Each example carries `example_index` = i (unique in the mixture,
  for the collators' per-example seeds) and `mixture_component` = m.
- components that are collators (callables, one per objective) -> an `ObjectiveMixtureCollator`: each example is
  given to objective m with probability rate_m, drawn per example from (seed, epoch, example_index).
Both tag each batch row with its component, and `PretrainTrainer` logs a `<name>_loss` per component.
Explicit rates must be non-negative and sum to 1; a component of size 0 is an error (it could never be drawn,
and a rate for it would be silently redistributed).
"""
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from ..constants import IGNORE_INDEX
from .base import CollatorBase, WrappingCollator, as_collator, unwrapped
from .rng import example_keys, example_rng

_MIX_STREAM = 0x4D4958  # offsets the mixture's seed so its draws are independent of the collators' own


def mixture_rates(sizes, cap=None, temperature=1.0):
    """Examples-proportional rates with cap K and temperature T (T5 paper, section 3.5.2)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if sizes.ndim != 1 or len(sizes) == 0:
        raise ValueError("a mixture needs at least one component")
    if (sizes <= 0).any():
        raise ValueError(f"mixture component sizes must be positive, got {sizes.tolist()}")
    if cap is not None and cap <= 0:
        raise ValueError(f"the mixing cap K must be positive, got {cap}")
    if temperature <= 0:
        raise ValueError(f"the mixing temperature T must be positive, got {temperature}")
    capped = np.minimum(sizes, cap) if cap is not None else sizes
    rates = capped / capped.sum()
    rates = rates ** (1.0 / temperature)
    return rates / rates.sum()


def check_rates(rates, n):
    rates = np.asarray(rates, dtype=np.float64)
    if rates.shape != (n,):
        raise ValueError(f"expected {n} mixture rates, got {rates.tolist()}")
    if (rates < 0).any() or not math.isclose(rates.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(f"mixture rates must be >= 0 and sum to 1, got {rates.tolist()} (sum {rates.sum():g})")
    return rates


def _named(components):
    if isinstance(components, Mapping):
        return [str(k) for k in components], list(components.values())
    components = list(components)
    return [str(i) for i in range(len(components))], components


def resolve_rates(rates, names, sizes, cap=None, temperature=1.0):
    """`rates` as an array: 'proportional' (needs sizes), 'equal', a mapping name -> rate, or a sequence."""
    if isinstance(rates, str):
        if rates == "proportional":
            if sizes is None:
                raise ValueError("'proportional' rates need component sizes; give explicit rates for objectives")
            return mixture_rates(sizes, cap, temperature)
        if rates == "equal":
            return np.full(len(names), 1.0 / len(names))
        raise ValueError(f"unknown rates {rates!r}: use 'proportional', 'equal' or explicit rates")
    if isinstance(rates, Mapping):
        unknown = set(map(str, rates)) - set(names)
        if unknown:
            raise ValueError(f"rates for unknown mixture components {sorted(unknown)}; components: {names}")
        rates = [rates.get(n, 0.0) for n in names]
    return check_rates(rates, len(names))


def build_mixture(components, rates="proportional", cap=None, temperature=1.0, seed=42, num_examples=None,
                  names=None):
    """A MixtureDataset (components are datasets) or an ObjectiveMixtureCollator (components are collators)."""
    keys, values = _named(components)
    names = list(names) if names is not None else keys
    if all(callable(v) and not hasattr(v, "__getitem__") for v in values):
        sizes = None
        return ObjectiveMixtureCollator(dict(zip(names, values)), resolve_rates(rates, names, sizes), seed=seed)
    sizes = [len(v) for v in values]
    empty = [n for n, s in zip(names, sizes) if s == 0]
    if empty:
        raise ValueError(f"mixture components {empty} have no examples")
    return MixtureDataset(values, resolve_rates(rates, names, sizes, cap, temperature), names, seed=seed,
                          num_examples=num_examples)


class MixtureDataset(torch.utils.data.Dataset):
    """Map-style mixture: a fixed, seeded sequence of (component, example) draws; len = num_examples (default:
    the sum of the component sizes)."""

    def __init__(self, datasets, rates, names, seed=42, num_examples=None):
        self.datasets, self.names = list(datasets), list(names)
        self.rates = check_rates(rates, len(self.datasets))
        n = int(num_examples if num_examples is not None else sum(len(d) for d in self.datasets))
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _MIX_STREAM])
        self.component = rng.choice(len(self.datasets), size=n, p=self.rates)
        # the k-th draw of component m takes element k of an endless sequence of shuffles of m
        self.rows = np.empty(n, dtype=np.int64)
        for m, ds in enumerate(self.datasets):
            where = np.flatnonzero(self.component == m)
            epochs = -(-len(where) // len(ds)) if len(where) else 0
            order = np.concatenate([rng.permutation(len(ds)) for _ in range(epochs)]) if epochs else []
            self.rows[where] = order[:len(where)]

    def __len__(self):
        return len(self.component)

    def __getitem__(self, i):
        m = int(self.component[i])
        example = dict(self.datasets[m][int(self.rows[i])])
        example["example_index"] = int(i)
        example["mixture_component"] = m
        return example

    def counts(self):
        return np.bincount(self.component, minlength=len(self.datasets))


def concat_batches(batches, pad_values):
    """Right-pad the [B_i, L_i] tensors of several batches to a common width and stack them."""
    keys = set(batches[0])
    for b in batches[1:]:
        if set(b) != keys:
            raise ValueError(f"mixed objectives produce different batch fields ({sorted(keys)} vs {sorted(b)}); "
                             f"only objectives of one model family can be mixed")
    out = {}
    for k in batches[0]:
        width = max(b[k].shape[1] for b in batches)
        out[k] = torch.cat([torch.nn.functional.pad(b[k], (0, width - b[k].shape[1]), value=pad_values.get(k, 0))
                            for b in batches])
    return out


@dataclass
class TaggedCollator(WrappingCollator):
    """Wrap a collator for a dataset mixture: the batch also gets `mixture_component` [B] from the features.

    The wrapped collator (a plain callable is wrapped by base.as_collator) draws the random numbers: set_epoch is
    passed on to it, and for_eval is its own evaluation copy, untagged (held-out rows carry no component)."""

    component_names: list

    def __call__(self, features):
        batch = self.collator(features)
        batch["mixture_component"] = torch.tensor([int(f.get("mixture_component", 0)) for f in features])
        return batch


@dataclass
class ObjectiveMixtureCollator(CollatorBase):
    """Give each example to one of several objective collators at the given rates; rows are grouped by objective
    and padded to a common width, and `mixture_component` [B] says which objective made each row. Plain callables
    among the collators are wrapped by base.as_collator; set_epoch and for_eval reach every component."""

    collators: dict
    rates: np.ndarray
    component_names: list = field(init=False)

    def __post_init__(self):
        self.collators = {name: as_collator(c) for name, c in self.collators.items()}
        self.component_names = list(self.collators)
        self.rates = check_rates(self.rates, len(self.collators))
        self._cum = np.cumsum(self.rates)
        own = [unwrapped(c) for c in self.collators.values()]
        pads = {c.tokenizer.pad_token_id for c in own if hasattr(c, "tokenizer")}
        self.pad_values = {"input_ids": pads.pop() if len(pads) == 1 else 0, "decoder_input_ids": 0,
                           "labels": IGNORE_INDEX, "attention_mask": 0, "position_ids": 0,
                           "document_ids": -1}
        if own and hasattr(own[0], "decoder_start_token_id"):
            self.pad_values["decoder_input_ids"] = own[0].tokenizer.pad_token_id

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        for c in self.collators.values():
            c.set_epoch(epoch)

    def for_eval(self, seed=None, **changes):
        """Every component's evaluation copy (with `seed` when given), mixed at epoch 0."""
        evals = {name: c.for_eval(seed) for name, c in self.collators.items()}
        return super().for_eval(seed, collators=evals, **changes)

    def assign(self, features):
        """Component index of each feature, drawn from (seed, epoch, example_index) on a stream of its own."""
        draws = [example_rng(self.seed + _MIX_STREAM, self.epoch, k).random() for k in example_keys(features)]
        return np.minimum(np.searchsorted(self._cum, draws, side="right"), len(self.rates) - 1)

    def __call__(self, features):
        assigned = self.assign(features)
        batches, tags = [], []
        for m, collator in enumerate(self.collators.values()):
            rows = np.flatnonzero(assigned == m)
            if len(rows):
                batches.append(collator([features[i] for i in rows]))
                tags.append(torch.full((len(rows),), m, dtype=torch.long))
        batch = concat_batches(batches, self.pad_values)
        batch["mixture_component"] = torch.cat(tags)
        return batch
