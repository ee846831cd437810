"""--mixture in run_pretrain.py: what is mixed (objectives or files), whether the run can honour it, and the data.

'bart=0.7,t5=0.3' / 'mlm,wwm,span' mixes objectives: any registered objectives whose models are of one kind and
that prepare and label examples the same way with the same model head (check_objective_mixture); the run's model is
the first one's, blocks have the shortest length any of them needs, word starts are packed when one needs them,
and each example goes to one objective's collator (collators.mixture.ObjectiveMixtureCollator).
'a.txt=0.3,b.txt=0.7' / 'a.txt,b.txt' mixes training files (examples-proportionally with --mixture_cap and
--mixture_temperature when no rates are given), with any objective: every row is tagged with its file. Either way
each component's loss is logged as <name>_loss.
"""
import logging
from dataclasses import dataclass, replace

import datasets

from .collators.mixture import build_mixture, check_rates
from .errors import UserError
from .registry import get_objective, objective_names

logger = logging.getLogger("hf_pretrain_ext")


@dataclass
class MixtureSpec:
    kind: str  # "objectives" or "files"
    names: list
    rates: list | None  # None: equal (objectives) or examples-proportional (files)


def parse_mixture(spec):
    """The components and rates of a --mixture value; a mixture that cannot be honoured is a UserError."""
    names, rates = [], []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        name, _, rate = part.rpartition("=") if "=" in part else (part, "", None)
        names.append(name.strip())
        if rate is not None:
            try:
                rates.append(float(rate))
            except ValueError:
                raise UserError(f"--mixture {spec!r}: rate {rate!r} of {name!r} is not a number") from None
    if len(names) < 2:
        raise UserError(f"--mixture {spec!r}: a mixture needs at least two components")
    if len(set(names)) != len(names):
        raise UserError(f"--mixture {spec!r}: a component is named twice")
    if rates and len(rates) != len(names):
        raise UserError(f"--mixture {spec!r}: give a rate for every component or for none")
    if rates:
        try:
            check_rates(rates, len(names))
        except ValueError as e:
            raise UserError(f"--mixture {spec!r}: {e}") from None
    known = objective_names()
    is_objective = [n in known for n in names]
    if any(is_objective) and not all(is_objective):
        raise UserError(f"--mixture {spec!r}: mix either objectives or files, not both")
    if all(is_objective):
        check_objective_mixture(spec, names)
        return MixtureSpec("objectives", names, rates or None)
    return MixtureSpec("files", names, rates or None)


def check_objective_mixture(spec, names):
    """Objectives mix when they train one kind of model with one head, on examples prepared the same way and
    labelled the same way; anything else is a one-line error naming the difference."""
    first, *others = [get_objective(n) for n in names]
    for other in others:
        if other.kind != first.kind:
            raise UserError(f"--mixture {spec!r}: {first.name} ({first.kind}) and {other.name} ({other.kind}) are "
                            f"objectives of different model families and cannot share a model")
        differences = [f"{what} {a} vs {b}" for what, a, b in (
            ("model head", first.auto_class, other.auto_class), ("examples", first.examples, other.examples),
            ("labels", first.label_names, other.label_names)) if a != b]
        if differences:
            raise UserError(f"--mixture {spec!r}: {first.name} and {other.name} cannot share a model and a batch "
                            f"({'; '.join(differences)})")


def resolve_mixture_objective(pretrain_args, objective_given):
    """A mixture of objectives decides the objective: without --objective it is the mixture's first component; an
    --objective outside the mixture is a one-line error. Returns the spec (None without --mixture)."""
    if not pretrain_args.mixture:
        return None
    spec = parse_mixture(pretrain_args.mixture)
    if spec.kind == "objectives":
        if objective_given and pretrain_args.objective not in spec.names:
            raise UserError(f"--objective {pretrain_args.objective} is not one of the --mixture objectives "
                            f"({', '.join(spec.names)}): leave --objective out, or name one of them")
        if not objective_given:
            pretrain_args.objective = spec.names[0]
    return spec


def run_objectives(pretrain_args, spec):
    """The objectives this run trains: those of `spec` (the parsed --mixture, or None) when it mixes objectives,
    else --objective alone."""
    names = spec.names if spec is not None and spec.kind == "objectives" else [pretrain_args.objective]
    return [get_objective(n) for n in names]


def load_file_mixture(spec, data_args, model_args, seed, load_raw_datasets):
    """One raw DatasetDict per training file of the mixture (each with its own held-out split)."""
    if data_args.streaming or data_args.dataset_name:
        raise UserError("--mixture of files works with local --train_file-style files, without --streaming")
    return {name: load_raw_datasets(replace(data_args, train_file=name, validation_file=None), model_args, seed)
            for name in spec.names}


def joined_raw(raws):
    """The files' raw splits joined (the tokenizer is trained on all of them)."""
    return datasets.DatasetDict({k: datasets.concatenate_datasets([r[k] for r in raws.values() if k in r])
                                 for k in ("train", "validation") if any(k in r for r in raws.values())})


def build_file_mixture(spec, grouped, pretrain_args, seed):
    """The training MixtureDataset of a file mixture from each file's grouped examples."""
    trains = {name: grouped[name]["train"] for name in spec.names}
    empty = [n for n, ds in trains.items() if len(ds) == 0]
    if empty:
        raise UserError(f"--mixture: {', '.join(empty)} yield no training examples")
    rates = dict(zip(spec.names, spec.rates)) if spec.rates else "proportional"
    try:
        mixture = build_mixture(trains, rates=rates, cap=pretrain_args.mixture_cap,
                                temperature=pretrain_args.mixture_temperature, seed=seed)
    except ValueError as e:
        raise UserError(f"--mixture: {e}") from None
    logger.info("mixture rates: %s", ", ".join(f"{n}={r:.4f}" for n, r in zip(spec.names, mixture.rates)))
    return mixture


def concat_validation(grouped):
    """The files' held-out examples, one after another, re-indexed (example_index unique again)."""
    parts = [g["validation"] for g in grouped.values() if g.get("validation") is not None]
    if not parts:
        return None
    joined = datasets.concatenate_datasets([p.remove_columns("example_index") for p in parts])
    return joined.add_column("example_index", list(range(len(joined))))
