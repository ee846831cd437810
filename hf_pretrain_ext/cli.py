"""`run_pretrain.py` / `hf-pretrain`: the run_mlm.py-style pretraining flow.

parse arguments -> check the output directory -> load text -> tokenizer (given, or trained on the training
files) -> config and model (fresh tiny hfpx-bert by default, or a checkpoint) -> tokenize and group inside
`main_process_first()` -> PretrainTrainer -> save model, tokenizer, metrics, loss curve -> evaluate (perplexity,
masked-token accuracy beside the most-frequent-token baseline). User mistakes end as one `error:` line and exit
status 2; nothing already in the output directory is overwritten unless --overwrite_output_dir is given.
"""
import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import datasets
import torch
import transformers
import yaml
from transformers import (AutoConfig, AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer, HfArgumentParser,
                          set_seed)

from . import generative
from .args import (SENTENCE_OBJECTIVES, DataTrainingArguments, ModelArguments, PretrainArguments,
                   PretrainTrainingArguments)
from .collators import DocumentWordStarts, build_collator
from .data.grouping import tokenize_and_group
from .data.loading import SAMPLE_CORPUS, load_raw_datasets
from .data.pairs import prepare_sentence_examples
from .data.tokenizer import train_tokenizer
from .errors import UserError
from .hub import prepare_upload, push_folder
from .metrics import MaskedTokenAccuracy, most_frequent_token, perplexity, preprocess_logits_for_metrics
from .models import TINY_BERT, HfpxBertConfig, HfpxBertForMaskedLM, HfpxBertForPreTraining
from .patching import apply_fused_loss
from .plotting import plot_loss_curve
from .rundir import (OutputDir, check_weights, checkpoint_problem, holds_something, newest_intact_checkpoint,
                     run_record, supersede_other_runs)
from .trainer import PretrainTrainer, last_complete_checkpoint

logger = logging.getLogger("hf_pretrain_ext")
RUN_RECORD = "hfpx_run.json"
ARG_CLASSES = (ModelArguments, DataTrainingArguments, PretrainArguments, PretrainTrainingArguments)


def make_parser():
    return complement_help(HfArgumentParser(ARG_CLASSES))


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
    from transformers.hf_argparser import string_to_bool
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


def _asked_for(argv, flag):
    """Whether --<flag> was given: on the command line, or as a key of a single .json/.yaml config file."""
    if is_config_file(argv):
        text = Path(argv[0]).read_text(encoding="utf-8")
        data = json.loads(text) if argv[0].endswith(".json") else yaml.safe_load(text)
        return isinstance(data, dict) and flag in data
    return any(a == f"--{flag}" or a.startswith(f"--{flag}=") for a in argv)


def parse_args(argv=None):
    """The four pretraining argument dataclasses, with what the flags given (not their defaults) mean:
    - neither --do_train nor --do_eval: both; one of them alone: that one (`--do_eval false`: train only, `--do_train
      false`: evaluate only); a run that would do neither is an error. TrainingArguments turns do_eval on by itself
      for --eval_strategy steps/epoch: that alone does not mean "evaluate only".
    - --num_train_epochs without --max_steps: the epochs decide (the default job's 600 steps do not apply);
    - --mixture of objectives without --objective: the objective is the mixture's (its first component)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    model_args, data_args, pretrain_args, training_args = parse_dataclasses(make_parser(), argv)
    asked = lambda flag: _asked_for(argv, flag)  # noqa: E731
    if not asked("do_train") and not asked("do_eval"):
        training_args.do_train = training_args.do_eval = True
    elif asked("do_eval") and not asked("do_train"):
        training_args.do_train = not training_args.do_eval
    elif asked("do_train") and not asked("do_eval") and not training_args.do_train:
        training_args.do_eval = True
    if not training_args.do_train and not training_args.do_eval:
        raise UserError("nothing to do: --do_train and --do_eval are both false")
    if training_args.max_steps == 0 or training_args.max_steps < -1:
        raise UserError(f"--max_steps {training_args.max_steps}: give a positive number of optimizer steps, or -1 "
                        f"to train for --num_train_epochs")
    if asked("num_train_epochs") and not asked("max_steps"):
        training_args.max_steps = -1
    if training_args.max_steps < 0 and training_args.num_train_epochs <= 0:
        raise UserError(f"--num_train_epochs {training_args.num_train_epochs}: must be > 0 when --max_steps is not "
                        f"given")
    generative.resolve_mixture_objective(pretrain_args, asked("objective"), asked("use_fused_loss"))
    check_config_overrides(model_args.config_overrides)
    if training_args.push_to_hub and not training_args.hub_model_id:
        raise UserError("--push_to_hub needs --hub_model_id (e.g. your-name/my-bert), with --hub_dry_run too: it "
                        "names the repository in the model card")
    return model_args, data_args, pretrain_args, training_args


def check_config_overrides(spec):
    """--config_overrides must be key=value pairs; a size, count or length cannot be zero or negative."""
    if not spec:
        return
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--config_overrides {spec!r}: {part!r} is not key=value (e.g. "
                            f"'hidden_size=256,num_hidden_layers=4')")
        try:
            number = float(value)
        except ValueError:
            continue
        if number <= 0 and not key.strip().endswith(("_id", "_eps", "_prob", "_dropout", "dropout")) \
                and key.strip().endswith(("size", "layers", "heads", "dim", "_ff", "d_kv", "embeddings", "n_embd",
                                          "n_layer", "n_head", "n_inner", "n_positions", "d_model")):
            raise UserError(f"--config_overrides: {key.strip()}={value} must be positive")


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
    what = "a previous run" if (out / RUN_RECORD).exists() or last else "files"
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


def load_tokenizer(model_args, pretrain_args, raw, training_args, resume_checkpoint=None):
    """The given tokenizer, or one trained on the training split (main process first, then loaded by the rest).

    A resumed run reuses the tokenizer saved in its checkpoint (training is deterministic, but the training files
    may have changed since)."""
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if name is None and resume_checkpoint is not None and Path(resume_checkpoint, "tokenizer.json").is_file():
        name = resume_checkpoint
    if name is not None:
        try:
            return AutoTokenizer.from_pretrained(name, cache_dir=model_args.cache_dir, token=model_args.token,
                                                 trust_remote_code=model_args.trust_remote_code)
        except (OSError, ValueError) as e:  # missing, unreadable, or no tokenizer file at all
            raise UserError(f"could not load a tokenizer from {name}: {' '.join(str(e).split())[:200]}") from None
    kind = pretrain_args.tokenizer_type
    if kind == "auto":
        kind = "bpe" if generative.is_generative(pretrain_args.objective) else "wordpiece"
    tok_dir = Path(training_args.output_dir) / "tokenizer"
    with training_args.main_process_first(desc="tokenizer training"):
        if training_args.process_index == 0 or not (tok_dir / "tokenizer.json").exists():
            start = time.time()
            seq2seq = any(o in generative.SEQ2SEQ_OBJECTIVES for o in generative.mixture_objectives(pretrain_args))
            tokenizer = train_tokenizer(raw["train"], kind, pretrain_args.tokenizer_vocab_size,
                                        lowercase=pretrain_args.lowercase, seq2seq=seq2seq,
                                        progress=not training_args.disable_tqdm)
            if training_args.process_index == 0:
                tokenizer.save_pretrained(str(tok_dir))
            logger.info("trained a %s tokenizer with %d tokens in %.1fs", kind, len(tokenizer), time.time() - start)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    return tokenizer


def load_model(model_args, pretrain_args, tokenizer):
    """A checkpoint (stock BERT is loaded as hfpx-bert: same weights, correct loss), or a fresh model; with a
    sentence head (*ForPreTraining) for sop/nsp."""
    with_sentence_head = pretrain_args.objective in SENTENCE_OBJECTIVES
    hfpx_class = HfpxBertForPreTraining if with_sentence_head else HfpxBertForMaskedLM
    auto_class = AutoModelForPreTraining if with_sentence_head else AutoModelForMaskedLM
    common = dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token,
                  trust_remote_code=model_args.trust_remote_code)
    if model_args.model_name_or_path:
        check_weights(model_args.model_name_or_path)
        try:
            config = AutoConfig.from_pretrained(model_args.config_name or model_args.model_name_or_path, **common)
        except (OSError, ValueError) as e:
            raise UserError(f"could not load a config from {model_args.config_name or model_args.model_name_or_path}"
                            f": {' '.join(str(e).split())[:200]}") from None
        if model_args.config_overrides:
            raise UserError("--config_overrides only applies when training from scratch (no --model_name_or_path)")
        dtype = model_args.torch_dtype if model_args.torch_dtype in (None, "auto") else model_args.torch_dtype
        if config.model_type in ("bert", "hfpx-bert"):
            config = HfpxBertConfig(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
            config.use_fused_loss = pretrain_args.use_fused_loss
            model = hfpx_class.from_pretrained(model_args.model_name_or_path, config=config, dtype=dtype, **common)
        else:
            model = auto_class.from_pretrained(model_args.model_name_or_path, config=config, dtype=dtype, **common)
    else:
        if model_args.config_name:
            config = load_config_name(model_args.config_name, common)
        elif model_args.model_type == "hfpx-bert":
            config = HfpxBertConfig(**TINY_BERT)
        else:
            try:
                config = AutoConfig.for_model(model_args.model_type)
            except ValueError:
                raise UserError(f"unknown --model_type {model_args.model_type!r}") from None
        config.vocab_size = len(tokenizer)
        config.pad_token_id = tokenizer.pad_token_id
        if model_args.config_overrides:
            try:
                config.update_from_string(model_args.config_overrides)
            except ValueError as e:
                raise UserError(f"--config_overrides: {e}") from None
        if isinstance(config, HfpxBertConfig):
            config.use_fused_loss = pretrain_args.use_fused_loss
        try:
            model = auto_class.from_config(config, trust_remote_code=model_args.trust_remote_code)
        except (ValueError, RuntimeError) as e:  # hidden_size not a multiple of the heads, a negative size, ...
            raise UserError(f"the model config does not fit: {' '.join(str(e).split())[:300]}") from None
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        logger.warning("tokenizer has %d tokens, model %d embeddings: resizing", len(tokenizer),
                       model.get_input_embeddings().weight.shape[0])
        model.resize_token_embeddings(len(tokenizer))
    if pretrain_args.use_fused_loss:
        apply_fused_loss(model)  # after any resize: it patches the output-embedding module in place
    return model


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


_WORD_OPTIONS = ("word_boundaries", "segmenter", "replace_level")
_NGRAM_OPTIONS = _WORD_OPTIONS + ("span_distribution", "max_ngram", "geometric_p", "max_span_length")
_MASKING_OPTIONS = {"mlm": (), "wwm": _WORD_OPTIONS + ("long_word_min_chars",), "ngram": _NGRAM_OPTIONS,
                    "span": _NGRAM_OPTIONS}


def collator_options(pretrain_args, data_args, training_args, max_seq_length, train_ds):
    """build_collator keyword arguments for the chosen objective, from the argument dataclasses."""
    masking = pretrain_args.token_masking()
    options = dict(mlm_probability=data_args.mlm_probability, pad_to_multiple_of=data_args.pad_to_multiple_of,
                   seed=training_args.seed)
    options.update({name: getattr(pretrain_args, name) for name in _MASKING_OPTIONS[masking]})
    if pretrain_args.objective in SENTENCE_OBJECTIVES:
        options.update(max_seq_length=max_seq_length, masking=masking)
    if pretrain_args.objective == "nsp":
        if data_args.streaming:
            raise UserError("--objective nsp draws random segments from the whole training set; it cannot stream")
        options["pool"] = train_ds
    return options


def has_ordinary_token(dataset, tokenizer, column="input_ids"):
    """Whether a tokenized dataset holds any token that is not special (a corpus of "[CLS] [SEP]" strings trains on
    nothing: loss 0, gradient 0)."""
    special = set(tokenizer.all_special_ids)
    if isinstance(dataset, datasets.Dataset):
        rows = (ids for start in range(0, len(dataset), 1000) for ids in dataset[start:start + 1000][column])
    else:  # a mixture of datasets: example by example (the first ordinary token ends the search)
        rows = (dataset[i][column] for i in range(len(dataset)))
    return any(any(i not in special for i in ids) for ids in rows)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def main(argv=None):
    return run_command(parse_args, run, argv)


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


def new_run_record(saved, pretrain_args):
    """This run's identity: a resumed run continues the identity of the checkpoint it resumes (`saved`, that
    checkpoint's record, or None)."""
    return {"run_id": (saved or {}).get("run_id") or uuid.uuid4().hex, "objective": pretrain_args.objective}


def check_resume_matches(resume, saved, record, model):
    """The checkpoint `resume` (its record `saved`) must come from the same configuration: objective, sequence
    length, tokenizer and model shape (a new --max_steps, learning rate schedule end or logging is fine)."""
    changes = [f"{key} {saved[key]!r} -> {record[key]!r}" for key in ("objective", "max_seq_length", "model_type",
                                                                        "tokenizer_vocab_sha")
               if key in saved and key in record and saved[key] != record[key]]
    try:
        config = json.loads(Path(resume, "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    now = model.config.to_dict()
    changes += [f"{k} {config[k]!r} -> {now[k]!r}" for k in SHAPE_KEYS if k in config and k in now
                and config[k] != now[k]]
    if changes:
        raise UserError(f"--resume_from_checkpoint {resume} was saved by a run with another configuration "
                        f"({'; '.join(changes)}): resume with the same flags, or start a new run in another "
                        f"--output_dir")


SHAPE_KEYS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_position_embeddings", "d_model", "d_ff", "num_layers", "num_decoder_layers",
              "encoder_layers", "decoder_layers", "n_embd", "n_layer", "n_head")


def vocab_sha(tokenizer):
    return hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()[:16]


def run(model_args, data_args, pretrain_args, training_args, owned=None):
    setup_logging(training_args)
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning needs an accelerator; avoids a warning per loader
    last_checkpoint = check_output_dir(training_args, pretrain_args)
    set_seed(training_args.seed)
    started = time.time()

    mixture = generative.parse_mixture(pretrain_args.mixture) if pretrain_args.mixture else None
    file_mixture = mixture is not None and mixture.kind == "files"
    if file_mixture:  # one raw DatasetDict per file; the tokenizer is trained on all of them
        raws = generative.load_file_mixture(mixture, data_args, model_args, training_args.seed, load_raw_datasets)
        raw = datasets.DatasetDict({k: datasets.concatenate_datasets([r[k] for r in raws.values() if k in r])
                                    for k in ("train", "validation") if any(k in r for r in raws.values())})
    else:
        raw = load_raw_datasets(data_args, model_args, training_args.seed)
    resume = resolve_resume(training_args, last_checkpoint)
    saved = run_record(resume) if resume is not None else None
    record = new_run_record(saved, pretrain_args)
    if resume is None and pretrain_args.overwrite_output_dir and training_args.process_index == 0:
        moved = supersede_other_runs(training_args.output_dir, record["run_id"])
        if moved:
            print(f"--overwrite_output_dir: the checkpoints of the previous run were moved to {moved}", flush=True)
    tokenizer = load_tokenizer(model_args, pretrain_args, raw, training_args, resume)
    if generative.is_generative(pretrain_args.objective):
        tokenizer = generative.prepare_tokenizer(tokenizer, pretrain_args)
        model = generative.load_model(model_args, pretrain_args, tokenizer)
    else:
        model = load_model(model_args, pretrain_args, tokenizer)
    max_seq_length = resolve_max_seq_length(data_args, model, fresh=model_args.model_name_or_path is None)
    logger.info("model %s: %.2fM parameters, vocab %d, max_seq_length %d", model.config.model_type,
                count_parameters(model) / 1e6, len(tokenizer), max_seq_length)
    record.update({"model_type": model.config.model_type, "max_seq_length": max_seq_length,
                   "tokenizer_vocab_sha": vocab_sha(tokenizer)})
    if saved is not None:
        check_resume_matches(resume, saved, record, model)

    block_length = max_seq_length
    if generative.is_generative(pretrain_args.objective):
        block_length = generative.group_length(pretrain_args, max_seq_length, tokenizer)
    # whole-word objectives: word boundaries from each document's own text (jieba for Chinese), packed with the ids
    starts = (DocumentWordStarts(tokenizer, pretrain_args.word_boundaries, pretrain_args.segmenter)
              if pretrain_args.objective in ("wwm", "ngram", "span") else None)
    with training_args.main_process_first(desc="tokenizing and grouping"):
        group = lambda r: tokenize_and_group(r, tokenizer, block_length, data_args.line_by_line,  # noqa: E731
                                             data_args.preprocessing_num_workers, not data_args.overwrite_cache,
                                             word_starts=starts)
        if pretrain_args.objective in SENTENCE_OBJECTIVES:
            lm = prepare_sentence_examples(raw, tokenizer, max_seq_length, data_args.preprocessing_num_workers,
                                           not data_args.overwrite_cache)
        elif file_mixture:
            parts = {name: group(r) for name, r in raws.items()}
            lm = {"train": generative.build_file_mixture(mixture, parts, pretrain_args, training_args.seed),
                  "validation": generative.concat_validation(parts)}
        else:
            lm = group(raw)
    train_ds, eval_ds = lm.get("train"), lm.get("validation")
    train_ds = take(train_ds, data_args.max_train_samples)
    eval_ds = take(eval_ds, data_args.max_eval_samples)
    if training_args.do_eval and eval_ds is None:
        raise UserError("evaluation needs a --validation_file or --validation_split_percentage > 0")

    # The Trainer's own hub sync would push hfpx code-dependent checkpoints during training; we push the stock
    # export with a model card once, at the end.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    if resume is not None and data_args.streaming and training_args.do_train:
        train_ds = skip_consumed(train_ds, resume, training_args)
    preprocess = preprocess_logits_for_metrics
    eval_options = {}
    if generative.is_generative(pretrain_args.objective):
        collator = generative.build_training_collator(tokenizer, pretrain_args, data_args, training_args, model,
                                                      mixture.names if file_mixture else None)
        preprocess = generative.metrics_preprocessor(pretrain_args.objective)
    else:
        collator = build_collator(pretrain_args.objective, tokenizer,
                                  **collator_options(pretrain_args, data_args, training_args, max_seq_length,
                                                     train_ds))
        if pretrain_args.objective == "nsp" and eval_ds is not None and len(set(eval_ds["document_index"])) > 1:
            eval_options["pool"] = eval_ds  # random segments from held-out documents (else from the training ones)
        if pretrain_args.objective in SENTENCE_OBJECTIVES:  # so evaluation computes the loss with both labels
            training_args.label_names = ["labels", collator.label_name]
    eval_collator = collator.for_eval(**eval_options) if hasattr(collator, "for_eval") else collator
    if training_args.do_train and not data_args.streaming and not has_ordinary_token(train_ds, tokenizer):
        raise UserError("the training data has no token to learn from: every token is a special token "
                        f"({', '.join(tokenizer.all_special_tokens[:6])}) or padding")
    baseline_id = most_frequent_token(train_ds, tokenizer.all_special_ids)
    trainer = PretrainTrainer(
        model=model, args=training_args, data_collator=collator, eval_data_collator=eval_collator,
        train_dataset=train_ds if training_args.do_train else None,
        eval_dataset=eval_ds if training_args.do_eval else None, processing_class=tokenizer,
        compute_metrics=MaskedTokenAccuracy(baseline_id) if training_args.do_eval else None,
        preprocess_logits_for_metrics=preprocess if training_args.do_eval else None, run_record=record)

    out = Path(training_args.output_dir)
    record.update({"train_file": data_args.train_file or str(SAMPLE_CORPUS), "dataset_name": data_args.dataset_name,
                   "argv": sys.argv})
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        (out / RUN_RECORD).write_text(json.dumps(record, indent=2))
    if owned is not None:
        owned.started()  # from here on a failure keeps what is in the output directory

    if resume is not None and data_args.streaming:
        trainer.restore_rng_on_first_step(resume)
    results = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume)
        check_stopped(trainer)
        trainer.save_model()
        metrics = dict(train_result.metrics, train_samples=len(train_ds) if not data_args.streaming else -1)
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        results.update(metrics)
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(eval_ds) if not data_args.streaming else -1
        metrics["perplexity"] = perplexity(metrics["eval_loss"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        results.update(metrics)

    if trainer.is_world_process_zero():
        if pretrain_args.plot and plot_loss_curve(trainer.state.log_history, out / "loss_curve.png",
                                                  f"{model.config.model_type} {pretrain_args.objective}"):
            logger.info("loss curve: %s", out / "loss_curve.png")
        if push_to_hub:
            publish(out, pretrain_args, data_args, training_args, max_seq_length, results)
        auto = (generative.auto_class(pretrain_args.objective).__name__
                if generative.is_generative(pretrain_args.objective) else "AutoModelForPreTraining"
                if pretrain_args.objective in SENTENCE_OBJECTIVES else "AutoModelForMaskedLM")
        print_summary(out, results, time.time() - started, auto)
    return results


def publish(out, pretrain_args, data_args, training_args, max_seq_length, results):
    """Build the upload folder (stock export + model card) and push it, unless --hub_dry_run."""
    data = [data_args.dataset_name or data_args.train_file or f"the package's sample corpus ({SAMPLE_CORPUS.name})"]
    hyper = {"objective": pretrain_args.objective, "max_seq_length": max_seq_length,
             "mlm_probability": data_args.mlm_probability, "learning_rate": training_args.learning_rate,
             "per_device_train_batch_size": training_args.per_device_train_batch_size,
             "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
             "max_steps": training_args.max_steps, "seed": training_args.seed}
    metrics = {k: v for k, v in results.items() if k.startswith("eval_") or k == "perplexity"}
    folder = prepare_upload(out, out / "hub_upload", pretrain_args.objective, data, hyper, metrics,
                            repo_id=training_args.hub_model_id, license=pretrain_args.hub_license)
    if pretrain_args.hub_dry_run:
        logger.info("hub dry run: the folder that would be uploaded is %s", folder)
        print(f"hub dry run: would upload {folder} to {training_args.hub_model_id}", flush=True)
        return
    push_folder(folder, training_args.hub_model_id, training_args.hub_token, training_args.hub_private_repo)
    print(f"uploaded {folder} to https://huggingface.co/{training_args.hub_model_id}", flush=True)


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


def skip_consumed(stream, checkpoint, training_args):
    """Resume a stream where the checkpoint left it: drop the examples its optimizer steps consumed before they
    reach the data loader (they are read and tokenized again, but not collated or trained on), and tell the
    Trainer not to skip batches itself. Exact within the first pass over the stream; example_index is kept, so
    masks are drawn exactly as in the uninterrupted run."""
    step = json.loads(Path(checkpoint, "trainer_state.json").read_text())["global_step"]
    consumed = (step * training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
                * training_args.world_size)
    training_args.ignore_data_skip = True
    logger.info("resuming the stream after %d examples (%d steps)", consumed, step)
    return stream.skip(consumed)


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


def print_summary(out, results, seconds, auto="AutoModelForMaskedLM"):
    lines = [f"\nDone in {seconds / 60:.1f} min. Results in {out}/"]
    if "eval_accuracy" in results:
        what = "masked-token" if auto in ("AutoModelForMaskedLM", "AutoModelForPreTraining") else "target-token"
        lines.append(f"  held-out {what} accuracy: {results['eval_accuracy']:.4f}   "
                     f"most-frequent-token baseline: {results.get('eval_baseline_accuracy', float('nan')):.4f}")
        lines.append(f"  held-out perplexity: {results['perplexity']:.2f}   (eval loss {results['eval_loss']:.4f})")
    lines.append("Load it with:\n"
                 "  import hf_pretrain_ext  # registers the hfpx-* model types\n"
                 f"  from transformers import {auto}, AutoTokenizer\n"
                 f"  model = {auto}.from_pretrained({os.fspath(out)!r})\n"
                 f"  tokenizer = AutoTokenizer.from_pretrained({os.fspath(out)!r})")
    print("\n".join(lines), flush=True)
