"""What both command lines (`run_pretrain.py` and `run_finetune.py`) share, so neither imports the other.

Parsing (flags or one .json/.yaml config file, values coerced by the flags' own types, counts checked before any
work), the output-directory check, logging, the sequence length a model allows, resuming, the end-of-training
checks, and `run_command`: parse, claim the output directory, run; a user error is one `error:` line and its exit
status.
"""
import argparse
import json
import logging
import signal
import sys
from pathlib import Path

import datasets
import transformers
import yaml
from transformers import AutoConfig
from transformers.hf_argparser import string_to_bool

from .errors import UserError
from .rundir import CHECKPOINT_RECORD, OutputDir, checkpoint_problem, holds_something, newest_intact_checkpoint
from .trainer import last_complete_checkpoint

logger = logging.getLogger("hf_pretrain_ext")


def complement_help(parser):
    """HfArgumentParser gives each `--no_<flag>` the help text of `--<flag>`: say what it does instead."""
    for action in parser._actions:
        names = [o for o in action.option_strings if o.startswith("--no_")]
        if names:
            flag = names[0][len("--no_"):]
            action.help = f"Turn --{flag} off (the same as --{flag} false)."
    return parser


def is_config_file(argv):
    """Whether a command line is a single .json/.yaml config file instead of flags."""
    return len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml"))


def parse_dataclasses(parser, argv=None):
    """Parse a command line, or a single .json/.yaml config file, with an HfArgumentParser; bad values and
    unknown config keys become UserError (one line), YAML is read with safe_load only."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if is_config_file(argv):
            parsed = parser.parse_dict(read_config_file(parser, argv[0]))
        else:
            parsed = parser.parse_args_into_dataclasses(args=argv)
    except UserError:
        raise
    except (ValueError, TypeError, KeyError) as e:  # TrainingArguments' own checks, bad config-file keys
        raise UserError(" ".join(str(e).split())) from None
    check_counts(parsed)
    return parsed


def read_config_file(parser, name):
    """A .json/.yaml config file as a dict whose values have the types of the flags they set: strings for bool
    flags ("no", "false") become booleans, numbers given as strings are converted, and a value of the wrong type
    or outside a flag's choices is a one-line error naming the key. YAML is read with safe_load only."""
    path = Path(name)
    if not path.is_file():
        raise UserError(f"config file {name}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except UnicodeDecodeError:
        raise UserError(f"config file {name}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise UserError(f"config file {name}: not valid JSON ({e})") from None
    except yaml.YAMLError as e:  # python/object tags and the like are refused, never run
        raise UserError(f"config file {name}: not plain YAML: {' '.join(str(e).split())[:200]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {name}: the top level must be a mapping of flag names to values, got a "
                        f"{type(data).__name__}")
    actions = {a.dest: a for a in parser._actions if a.option_strings and not a.option_strings[0].startswith("--no_")}
    return {key: _coerce(name, key, value, actions.get(key)) for key, value in data.items()}


def _coerce(name, key, value, action):
    if action is None or value is None or isinstance(value, (list, dict)):
        return value  # unknown keys are refused by parse_dict; lists and mappings go through as they are
    kind = action.type
    try:
        if kind is string_to_bool:
            value = value if isinstance(value, bool) else string_to_bool(value) if isinstance(value, str) else None
            if value is None:
                raise ValueError
        elif kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            converted = kind(float(value)) if kind is int and isinstance(value, float) else kind(value)
            if kind is int and isinstance(value, float) and converted != value:
                raise ValueError
            value = converted
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        wanted = "true or false" if kind is string_to_bool else f"a{'n' if kind is int else ''} {kind.__name__}"
        raise UserError(f"config file {name}: {key}: expected {wanted}, got {value!r}") from None
    if action.choices is not None and value not in action.choices:
        raise UserError(f"config file {name}: {key}: {value!r} is not one of {list(action.choices)}")
    return value


def check_counts(parsed):
    """Counts that must be positive, checked before any work (the Trainer and datasets fail late or obscurely)."""
    for args in parsed:
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if hasattr(args, name) and getattr(args, name) < 1:
                raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}")
        for name in ("preprocessing_num_workers", "max_train_samples", "max_eval_samples", "max_test_samples"):
            value = getattr(args, name, None)
            if value is not None and value < 1:
                raise UserError(f"--{name} must be at least 1 (or left out), got {value}")


def asked_for(argv, flag):
    """Whether --<flag> was given: on the command line, or as a key of a single .json/.yaml config file."""
    if is_config_file(argv):
        text = Path(argv[0]).read_text(encoding="utf-8")
        data = json.loads(text) if argv[0].endswith(".json") else yaml.safe_load(text)
        return isinstance(data, dict) and flag in data
    return any(a == f"--{flag}" or a.startswith(f"--{flag}=") for a in argv)


def check_output_dir(training_args, pretrain_args):
    """Refuse to write into a directory that already holds something, unless resuming or told to overwrite."""
    out = Path(training_args.output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--output_dir {out}: exists and is not a directory")
    if not out.is_dir() or not holds_something(out):
        return None
    last = last_complete_checkpoint(str(out))
    if training_args.resume_from_checkpoint is not None or pretrain_args.overwrite_output_dir:
        return last
    what = "a previous run" if (out / CHECKPOINT_RECORD).exists() or last else "files"
    raise UserError(f"--output_dir {out} already holds {what}; pass --overwrite_output_dir to write into it, "
                    f"--resume_from_checkpoint to continue it, or choose another --output_dir")


def setup_logging(training_args):
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    # a bar for each long preprocessing step (tokenizing, grouping, word boundaries / jieba), like training's own
    if training_args.disable_tqdm:
        datasets.utils.logging.disable_progress_bar()
    else:
        datasets.utils.logging.enable_progress_bar()


def load_config_name(name, common):
    try:
        return AutoConfig.from_pretrained(name, **common)
    except (OSError, ValueError) as e:
        raise UserError(f"--config_name {name}: could not load a config ({' '.join(str(e).split())[:200]})") from None


# models whose position ids start after the padding index (RoBERTa family): two positions are never usable
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "roberta-prelayernorm": 2}


def resolve_max_seq_length(data_args, model, fresh):
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None:
        positions -= _POSITION_OFFSET.get(model.config.model_type, 0)
    length = data_args.max_seq_length or (128 if fresh else min(512, positions or 512))
    if positions is not None and length > positions:
        raise UserError(f"--max_seq_length {length} is larger than the model's {positions} positions "
                        f"(max_position_embeddings)")
    return length


def take(ds, n):
    """The first n examples of a Dataset or a stream (all of them when n is None)."""
    if ds is None or n is None:
        return ds
    return ds.select(range(min(len(ds), n))) if hasattr(ds, "select") else ds.take(n)


def resolve_resume(training_args, last_checkpoint):
    """The checkpoint folder to resume from (--resume_from_checkpoint True: the newest complete one), or None."""
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None or not training_args.do_train:
        return None
    if checkpoint in ("True", "true", True):
        newest = newest_intact_checkpoint(training_args.output_dir) if last_checkpoint is not None else None
        if newest is None:
            raise UserError(f"--resume_from_checkpoint: no checkpoint in {training_args.output_dir}")
        return newest
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        raise UserError(f"--resume_from_checkpoint {checkpoint}: not an intact checkpoint ({problem})")
    return checkpoint


def check_stopped(trainer):
    """End the run here when training stopped early: a signal (checkpoint saved) or a non-finite loss."""
    out = trainer.args.output_dir
    if trainer.nonfinite.bad_step is not None:
        raise UserError(f"loss became {trainer.nonfinite.bad_value} at step {trainer.nonfinite.bad_step}; stopped "
                        f"without saving. Last good checkpoint: {last_complete_checkpoint(out) or '(none)'}")
    if trainer.signal_stop.received is not None:
        name = trainer.signal_stop.received
        print(f"stopped by {name} at step {trainer.state.global_step}; checkpoint saved: "
              f"{last_complete_checkpoint(out)}. Continue with --resume_from_checkpoint True", flush=True)
        raise SystemExit(128 + int(getattr(signal, name)))


def run_command(parse, run_fn, argv=None):
    """Shared by both CLIs: parse, claim the output directory, run; a user error is one line and its exit code,
    Ctrl-C before the Trainer's own handler is installed is one line and 130."""
    try:
        args = parse(argv)
        with OutputDir(args[3].output_dir, args[3].process_index == 0, sys.argv) as owned:
            return run_fn(*args, owned=owned)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:  # before the Trainer's own handler is installed (e.g. during tokenizer training)
        print("error: interrupted before training started; nothing was kept", file=sys.stderr)
        raise SystemExit(130) from None
