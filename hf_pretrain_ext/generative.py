"""The generative objectives in run_pretrain.py: bart, t5 and clm, their models, and mixtures.

What each objective needs from the run_mlm-style flow in cli.py, kept here so cli.py only calls in:
- tokenizer: a byte-level BPE is trained when none is given (clm: bos = eos = <|endoftext|>, <pad>, <mask>; bart/t5:
  <s>, <pad>, </s>, <unk>, <mask>, since BART generation needs bos != eos); for t5 the
  sentinels <extra_id_0..99> are added to whatever tokenizer is used when it lacks them (with a warning; the
  model's embeddings are resized to match);
- model: hfpx-gpt (clm), hfpx-bart (bart) or hfpx-t5 (t5), fresh from a tiny preset (TINY_GPT, TINY_BART, TINY_T5
  plus --config_overrides), or a checkpoint: stock gpt2 / bart / t5 checkpoints load into the hfpx classes (same
  weight names), other causal / seq2seq checkpoints keep their class and get the patched fused loss;
- data: documents packed into blocks (EOS between documents): max_seq_length tokens for clm, max_seq_length - 2
  for bart (<s> and </s> are added by the collator), and for t5 the raw length whose span corruption gives exactly
  max_seq_length inputs (t5_input_and_target_lengths);
- metrics: token accuracy of the targets (decoder labels, or next tokens for clm) and perplexity = exp(eval loss);
- mixtures (--mixture): objectives of one model family at given rates, or several training files mixed at given
  rates or examples-proportionally with cap K and temperature T (hf_pretrain_ext.collators.mixture).
"""
import logging
from dataclasses import dataclass, replace

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from .args import GENERATIVE_OBJECTIVES, OBJECTIVES
from .collators import build_collator, build_mixture
from .collators.mixture import TaggedCollator, check_rates
from .collators.span_corruption import add_sentinel_tokens, t5_input_and_target_lengths
from .errors import UserError
from .metrics import preprocess_logits_for_metrics
from .models import (TINY_BART, TINY_GPT, TINY_T5, HfpxBartConfig, HfpxBartForConditionalGeneration, HfpxGPTConfig,
                     HfpxGPTForCausalLM, HfpxT5Config, HfpxT5ForConditionalGeneration)
from .patching import apply_fused_loss
from .rundir import check_weights

logger = logging.getLogger("hf_pretrain_ext")

MODEL_TYPES = {"clm": "hfpx-gpt", "bart": "hfpx-bart", "t5": "hfpx-t5"}
_OURS = {"gpt2": (HfpxGPTConfig, HfpxGPTForCausalLM), "hfpx-gpt": (HfpxGPTConfig, HfpxGPTForCausalLM),
         "bart": (HfpxBartConfig, HfpxBartForConditionalGeneration),
         "hfpx-bart": (HfpxBartConfig, HfpxBartForConditionalGeneration),
         "t5": (HfpxT5Config, HfpxT5ForConditionalGeneration), "hfpx-t5": (HfpxT5Config, HfpxT5ForConditionalGeneration)}
_PRESETS = {"hfpx-gpt": TINY_GPT, "hfpx-bart": TINY_BART, "hfpx-t5": TINY_T5}


SEQ2SEQ_OBJECTIVES = ("bart", "t5")


def is_generative(objective):
    return objective in GENERATIVE_OBJECTIVES


def auto_class(objective):
    return AutoModelForCausalLM if objective == "clm" else AutoModelForSeq2SeqLM


# -- mixtures ------------------------------------------------------------------------------------------------
@dataclass
class MixtureSpec:
    kind: str  # "objectives" or "files"
    names: list
    rates: list | None  # None: equal (objectives) or examples-proportional (files)


def parse_mixture(spec):
    """'bart=0.7,t5=0.3' / 'bart,t5' (objectives) or 'a.txt=0.3,b.txt=0.7' / 'a.txt,b.txt' (files)."""
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
    is_objective = [n in OBJECTIVES for n in names]
    if any(is_objective) and not all(is_objective):
        raise UserError(f"--mixture {spec!r}: mix either objectives or files, not both")
    kind = "objectives" if all(is_objective) else "files"
    if kind == "objectives":
        family = {("decoder" if n == "clm" else "seq2seq" if n in SEQ2SEQ_OBJECTIVES else "encoder") for n in names}
        if len(family) > 1:
            raise UserError(f"--mixture {spec!r}: objectives of different model families cannot share a model")
    return MixtureSpec(kind, names, rates or None)


def resolve_mixture_objective(pretrain_args, objective_given, fused_loss_given=True):
    """A mixture of objectives decides the objective: without --objective it is the mixture's first component; an
    --objective outside the mixture, or a mixture this run cannot honour, is a one-line error."""
    if not pretrain_args.mixture:
        return
    spec = parse_mixture(pretrain_args.mixture)
    if spec.kind != "objectives":
        return
    if objective_given and pretrain_args.objective not in spec.names:
        raise UserError(f"--objective {pretrain_args.objective} is not one of the --mixture objectives "
                        f"({', '.join(spec.names)}): leave --objective out, or name one of them")
    if not all(is_generative(n) for n in spec.names):
        raise UserError(f"--mixture {pretrain_args.mixture}: mixtures of encoder objectives (mlm, wwm, ngram, span, "
                        f"sop, nsp) are not supported yet; mix bart and t5, or mix files")
    if not objective_given:
        pretrain_args.objective = spec.names[0]
        if not fused_loss_given:
            pretrain_args.use_fused_loss = pretrain_args.default_use_fused_loss()


def mixture_objectives(pretrain_args):
    if pretrain_args.mixture:
        spec = parse_mixture(pretrain_args.mixture)
        if spec.kind == "objectives":
            return spec.names
    return [pretrain_args.objective]


def load_file_mixture(spec, data_args, model_args, seed, load_raw_datasets):
    """One raw DatasetDict per training file of the mixture (each with its own held-out split)."""
    if data_args.streaming or data_args.dataset_name:
        raise UserError("--mixture of files works with local --train_file-style files, without --streaming")
    return {name: load_raw_datasets(replace(data_args, train_file=name, validation_file=None), model_args, seed)
            for name in spec.names}


# -- tokenizer and model --------------------------------------------------------------------------------------
def prepare_tokenizer(tokenizer, pretrain_args):
    """Add what the objectives need: T5 sentinels (when missing); check the BART mask token."""
    objectives = mixture_objectives(pretrain_args)
    if "t5" in objectives:
        added = add_sentinel_tokens(tokenizer)
        if added:
            logger.warning("the tokenizer had no T5 sentinel tokens: added %d (<extra_id_0> ... <extra_id_99>); the "
                           "model's embeddings are resized to match", added)
    if "bart" in objectives and tokenizer.mask_token_id is None:
        raise UserError("the tokenizer has no mask token, which BART denoising needs; use a tokenizer with one (the "
                        "BPE tokenizer trained by default has <mask>)")
    if tokenizer.eos_token_id is None and tokenizer.sep_token_id is None:
        raise UserError(f"--objective {pretrain_args.objective} needs a tokenizer with an end-of-text (eos) token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # decoder-only tokenizers (GPT-2) have no pad token
    return tokenizer


def _fresh_config(model_type, tokenizer):
    config = AutoConfig.for_model(model_type, **_PRESETS.get(model_type, {}))
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, eos
    if config.is_encoder_decoder:
        config.decoder_start_token_id = eos if "bart" in model_type else tokenizer.pad_token_id
        if "bart" in model_type:
            config.bos_token_id, config.forced_eos_token_id = bos, eos
    else:
        config.bos_token_id = bos
    return config


def _check_family(objective, config):
    wants_seq2seq = objective != "clm"
    if bool(getattr(config, "is_encoder_decoder", False)) != wants_seq2seq:
        raise UserError(f"--objective {objective} needs {'an encoder-decoder' if wants_seq2seq else 'a decoder-only'}"
                        f" model, got {config.model_type}")


def load_model(model_args, pretrain_args, tokenizer):
    """A fresh hfpx-gpt / hfpx-bart / hfpx-t5, or a checkpoint, for a generative objective."""
    objective = pretrain_args.objective
    auto = auto_class(objective)
    common = dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token,
                  trust_remote_code=model_args.trust_remote_code)
    if model_args.model_name_or_path:
        if model_args.config_overrides:
            raise UserError("--config_overrides only applies when training from scratch (no --model_name_or_path)")
        check_weights(model_args.model_name_or_path)
        source = model_args.config_name or model_args.model_name_or_path
        try:
            config = AutoConfig.from_pretrained(source, **common)
        except (OSError, ValueError) as e:
            raise UserError(f"could not load a config from {source}: {' '.join(str(e).split())[:200]}") from None
        dtype = model_args.torch_dtype
        if config.model_type in _OURS:
            config_cls, model_cls = _OURS[config.model_type]
            config = config_cls(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
            model = model_cls.from_pretrained(model_args.model_name_or_path, config=config, dtype=dtype, **common)
        else:
            try:
                model = auto.from_pretrained(model_args.model_name_or_path, config=config, dtype=dtype, **common)
            except ValueError as e:
                raise UserError(f"--objective {objective} needs a {auto.__name__[9:]} model: "
                                f"{' '.join(str(e).split())[:200]}") from None
    else:
        if model_args.config_name:
            from .cli import load_config_name
            config = load_config_name(model_args.config_name, common)
        else:
            # the encoder default (hfpx-bert) means "the objective's own model"
            model_type = MODEL_TYPES[objective] if model_args.model_type == "hfpx-bert" else model_args.model_type
            try:
                config = _fresh_config(model_type, tokenizer)
            except ValueError:
                raise UserError(f"unknown --model_type {model_type!r}") from None
        config.vocab_size = len(tokenizer)
        if model_args.config_overrides:
            try:
                config.update_from_string(model_args.config_overrides)
            except (ValueError, AttributeError) as e:
                raise UserError(f"--config_overrides: {e}") from None
        _check_family(objective, config)
        try:
            model = auto.from_config(config, trust_remote_code=model_args.trust_remote_code)
        except (ValueError, RuntimeError) as e:
            raise UserError(f"--objective {objective} cannot use a {config.model_type} model: "
                            f"{' '.join(str(e).split())[:200]}") from None
    _check_family(objective, model.config)
    if hasattr(model.config, "use_fused_loss"):
        model.config.use_fused_loss = pretrain_args.use_fused_loss
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        logger.warning("tokenizer has %d tokens, model %d embeddings: resizing", len(tokenizer),
                       model.get_input_embeddings().weight.shape[0])
        model.resize_token_embeddings(len(tokenizer))
    if pretrain_args.use_fused_loss:
        apply_fused_loss(model)
    return model


# -- collators, data, metrics ----------------------------------------------------------------------------------
def objective_collator(objective, tokenizer, pretrain_args, data_args, training_args, model):
    common = dict(pad_to_multiple_of=data_args.pad_to_multiple_of, seed=training_args.seed)
    if objective == "bart":
        overrides = {k: getattr(pretrain_args, k) for k in ("mask_ratio", "mask_random", "poisson_lambda",
                                                           "mask_unit", "replace_length", "permute_sentences",
                                                           "rotate", "insert_ratio")}
        return build_collator("bart", tokenizer, recipe=pretrain_args.bart_recipe,
                              token_mask_ratio=pretrain_args.token_mask_ratio,
                              token_delete_ratio=pretrain_args.token_delete_ratio,
                              decoder_start_token_id=model.config.decoder_start_token_id,
                              max_length=getattr(model.config, "max_position_embeddings", None), **overrides, **common)
    if objective == "t5":
        return build_collator("t5", tokenizer, noise_density=pretrain_args.noise_density,
                              mean_noise_span_length=pretrain_args.mean_noise_span_length,
                              decoder_start_token_id=model.config.decoder_start_token_id, **common)
    return build_collator("clm", tokenizer, packing=pretrain_args.clm_packing, **common)


def build_training_collator(tokenizer, pretrain_args, data_args, training_args, model, mixture_names=None):
    """The objective's collator; for an objective mixture an ObjectiveMixtureCollator; for a file mixture the
    collator tagged with each row's file."""
    try:
        objectives = mixture_objectives(pretrain_args)
        collators = {o: objective_collator(o, tokenizer, pretrain_args, data_args, training_args, model)
                     for o in objectives}
    except ValueError as e:
        raise UserError(str(e)) from None
    if len(collators) > 1:
        spec = parse_mixture(pretrain_args.mixture)
        return build_mixture(collators, rates=spec.rates or "equal", seed=training_args.seed)
    collator = collators[objectives[0]]
    if mixture_names:
        return TaggedCollator(collator, list(mixture_names))
    return collator


def group_length(pretrain_args, max_seq_length, tokenizer):
    """Tokens per packed block so that the model sees max_seq_length (encoder) tokens."""
    objectives = mixture_objectives(pretrain_args)
    if objectives == ["t5"]:
        raw, _ = t5_input_and_target_lengths(max_seq_length, pretrain_args.noise_density,
                                             pretrain_args.mean_noise_span_length)
        return raw
    if "bart" in objectives:
        return max_seq_length - 2  # the collator wraps each block in <s> ... </s>
    return max_seq_length


def preprocess_logits_for_causal_metrics(logits, labels):
    """Like metrics.preprocess_logits_for_metrics, for next-token targets: dense [B, L, V] logits predict position
    t + 1, so predictions are shifted onto the label they target (sparse hfpx-gpt rows are already aligned to the
    labelled positions of labels[:, 1:])."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if logits.dim() == 3 and logits.shape[:-1] == labels.shape:
        preds = torch.full_like(labels, -100)
        preds[:, 1:] = logits[:, :-1].argmax(-1)
        return preds
    target = labels[:, 1:] != -100
    if logits.dim() == 2 and logits.shape[0] == int(target.sum()):
        preds = torch.full_like(labels, -100)
        preds[:, 1:][target] = logits.argmax(-1).to(preds.dtype)
        return preds
    return preprocess_logits_for_metrics(logits, labels)


def metrics_preprocessor(objective):
    return preprocess_logits_for_causal_metrics if objective == "clm" else preprocess_logits_for_metrics


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
    import datasets
    parts = [g["validation"] for g in grouped.values() if g.get("validation") is not None]
    if not parts:
        return None
    joined = datasets.concatenate_datasets([p.remove_columns("example_index") for p in parts])
    return joined.add_column("example_index", list(range(len(joined))))
