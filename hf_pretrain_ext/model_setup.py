"""The model of a pretraining run, for any registered objective: a checkpoint or a fresh model of its family.

A checkpoint of one of our families or of the stock architecture behind it (bert, gpt2, bart, t5: same weight
names) loads into our class, so it trains with the fused loss and the correct loss scaling; any other checkpoint
keeps its own class (loaded through the objective's Auto* class) and gets the patched fused loss. A fresh model
is the objective's family at its tiny preset (or --model_type / --config_name), plus --config_overrides, with
the tokenizer's vocabulary size and special-token ids. The model's kind (encoder, decoder, seq2seq) must be the
objective's; the embeddings grow to the tokenizer's size when it has more tokens.
"""
import logging
import re
from types import SimpleNamespace

import transformers
from transformers import AutoConfig

from .entry import load_config_name
from .errors import UserError
from .patching import set_fused_loss
from .registry import get_family
from .rundir import check_weights

logger = logging.getLogger("hf_pretrain_ext")


def _short(e, n=200):
    return " ".join(str(e).split())[:n]


def load_model(model_args, pretrain_args, tokenizer, objective):
    common = dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token,
                  trust_remote_code=model_args.trust_remote_code)
    if model_args.model_name_or_path:
        model = from_checkpoint(model_args, objective, common)
    else:
        model = from_scratch(model_args, tokenizer, objective, common)
    check_kind(objective, model.config)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        logger.warning("tokenizer has %d tokens, model %d embeddings: resizing", len(tokenizer),
                       model.get_input_embeddings().weight.shape[0])
        model.resize_token_embeddings(len(tokenizer))
    set_fused_loss(model, pretrain_args.use_fused_loss)  # after any resize: it patches the head module in place
    return model


def from_checkpoint(model_args, objective, common):
    if model_args.config_overrides:
        raise UserError("--config_overrides only applies when training from scratch (no --model_name_or_path)")
    path = model_args.model_name_or_path
    check_weights(path)
    source = model_args.config_name or path
    try:
        config = AutoConfig.from_pretrained(source, **common)
    except (OSError, ValueError) as e:
        raise UserError(f"could not load a config from {source}: {_short(e)}") from None
    family = get_family(config.model_type)
    if family is not None and objective.auto_class in family.models:
        config = family.config_class(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
        cls = family.models[objective.auto_class]
    else:
        cls = getattr(transformers, objective.auto_class)
    check_kind(objective, config)
    try:
        return cls.from_pretrained(path, config=config, dtype=model_args.torch_dtype, **common)
    except ValueError as e:
        raise UserError(f"--objective {objective.name} needs a {objective.auto_class[9:]} model: {_short(e)}") from None


def from_scratch(model_args, tokenizer, objective, common):
    if model_args.config_name:
        config = load_config_name(model_args.config_name, common)
    else:
        config = fresh_config(model_args.model_type or objective.family, tokenizer, objective.kind)
    config.vocab_size = len(tokenizer)
    if model_args.config_overrides:
        try:
            config.update_from_string(model_args.config_overrides)
        except (ValueError, AttributeError) as e:
            raise UserError(f"--config_overrides: {e}") from None
    check_kind(objective, config)
    try:
        return getattr(transformers, objective.auto_class).from_config(
            config, trust_remote_code=model_args.trust_remote_code)
    except (ValueError, RuntimeError) as e:  # hidden_size not a multiple of the heads, a negative size, ...
        raise UserError(f"the model config does not fit ({config.model_type} for --objective {objective.name}): "
                        f"{_short(e, 300)}") from None


def fresh_config(model_type, tokenizer, kind):
    """A config of `model_type` (the family's tiny preset for ours) with the tokenizer's special-token ids (for a
    decoder or seq2seq `kind` also bos / eos / decoder start: eos falls back to [SEP], bos to eos)."""
    family = get_family(model_type)
    preset = family.preset if family is not None and family.model_type == model_type else {}
    try:
        config = AutoConfig.for_model(model_type, **preset)
    except ValueError:
        raise UserError(f"unknown --model_type {model_type!r}") from None
    config.pad_token_id = tokenizer.pad_token_id
    if kind == "encoder":
        return config
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    config.eos_token_id = eos
    if config.is_encoder_decoder:
        config.decoder_start_token_id = eos if "bart" in model_type else tokenizer.pad_token_id
        if "bart" in model_type:
            config.bos_token_id, config.forced_eos_token_id = bos, eos
    else:
        config.bos_token_id = bos
    return config


def check_kind(objective, config):
    """The model must be of the objective's kind: encoder-decoder for seq2seq, not for encoder / decoder."""
    seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    if seq2seq != (objective.kind == "seq2seq"):
        want = "an encoder-decoder" if objective.kind == "seq2seq" else (
            "a decoder-only" if objective.kind == "decoder" else "an encoder")
        raise UserError(f"--objective {objective.name} needs {want} model, got {config.model_type}")


def load_teacher(path, objective, student, model_args):
    """The frozen distillation teacher: a checkpoint of the objective's model class (stock BERT loads as
    hfpx-bert), in eval mode, without gradients; it must have the student's vocabulary."""
    args = SimpleNamespace(config_overrides=None, model_name_or_path=path, config_name=None,
                           torch_dtype=model_args.torch_dtype)
    common = dict(cache_dir=model_args.cache_dir, revision=None, token=model_args.token,
                  trust_remote_code=model_args.trust_remote_code)
    try:  # the sizes first, from the config: a mismatch is an error before any weight is read
        config = AutoConfig.from_pretrained(path, **common)
    except (OSError, ValueError) as e:
        raise UserError(f"--teacher_model_name_or_path {path}: could not load a config: {_short(e)}") from None
    vocab_t, vocab_s = config.vocab_size, student.get_input_embeddings().weight.shape[0]
    if vocab_t != vocab_s:
        raise UserError(f"--teacher_model_name_or_path {path}: the teacher has {vocab_t} tokens, the student "
                        f"{vocab_s}; distillation needs one vocabulary (train the student with the teacher's "
                        f"tokenizer: --tokenizer_name {path})")
    teacher = from_checkpoint(args, objective, common)
    if not hasattr(teacher, "distill_side"):
        raise UserError(f"--teacher_model_name_or_path {path}: {type(teacher).__name__} cannot be a teacher (a "
                        "checkpoint of a family with a softmax can: hfpx-bert/-gpt/-bart/-t5/-nnlm or stock "
                        "BERT, GPT-2, BART, T5)")
    teacher.eval().requires_grad_(False)
    return teacher


LAYER_KEY = re.compile(r"(.*?\.(?:layer|layers|h|block)\.)(\d+)(\..*)")  # BERT, BART, GPT-2, T5 layer stacks


def init_from_teacher(student, teacher):
    """DistilBERT's initialisation: every weight from the teacher, student layer i of each stack (BERT's encoder,
    GPT-2's blocks, BART's / T5's encoder and decoder) from teacher layer 2i of the same stack (its last layer
    when 2i is past it). Every other size must be the teacher's."""
    source, target = teacher.state_dict(), student.state_dict()
    depth = {}  # layers of each teacher stack, by key prefix
    for key in source:
        if m := LAYER_KEY.match(key):
            depth[m[1]] = max(depth.get(m[1], 0), int(m[2]) + 1)
    for key in target:
        m = LAYER_KEY.match(key)
        src = f"{m[1]}{min(2 * int(m[2]), depth.get(m[1], 1) - 1)}{m[3]}" if m else key
        if src not in source or source[src].shape != target[key].shape:
            have = tuple(source[src].shape) if src in source else "nothing"
            raise UserError(f"--distill_init_student: the student's {key} is {tuple(target[key].shape)}, the "
                            f"teacher has {have} there; the student needs the teacher's sizes except its depth")
        target[key] = source[src]
    student.load_state_dict(target)
