"""Classification models for every strategy, and loading them back.

Two shapes:
- encoder (BERT-style) with --strategy full or adapters: the checkpoint's own `AutoModelForSequenceClassification`
  class (hfpx-bert -> HfpxBertForSequenceClassification, stock BERT -> BertForSequenceClassification), so a fully
  fine-tuned model reloads with the stock Auto class. A checkpoint without a classification head (every
  pretraining checkpoint) gets a fresh pooler/classifier; that is logged, not an error.
- `BackboneClassifier`: any backbone + a linear head on a pooled vector, for causal LMs (head on the last
  non-pad token, optional auxiliary LM loss, GPT's L3 = L2 + lambda * L1) and for feature_based (ELMo scalar
  mix of all hidden states). It is a plain nn.Module: saved as one model.safetensors (tied weights once) beside
  the backbone's config.json; `load_finetuned` rebuilds it.

`hfpx_finetune.json` in every output folder records what `load_finetuned` needs (strategy, labels, pooling, ...).
"""
import json
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_model
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification,
                          PreTrainedModel)
from transformers.modeling_outputs import ModelOutput
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from ..constants import IGNORE_INDEX
from ..errors import UserError
from ..rundir import check_weights
from .adapters import add_adapters
from .scalar_mix import ScalarMix

logger = logging.getLogger("hf_pretrain_ext")
RECORD = "hfpx_finetune.json"


def detect_backbone(config, requested="auto"):
    """'encoder' or 'causal' from the config: its saved architectures first, then what its model type maps to."""
    if requested != "auto":
        return requested
    architectures = config.architectures or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "causal"
    if architectures or config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder"
    return "causal" if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES else "encoder"


@dataclass
class ClassifierOutput(ModelOutput):
    """loss: what is optimised (cls_loss + lambda * lm_loss while training); logits: [B, num_labels]."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cls_loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None


def pool(hidden, attention_mask, how, attention=None):
    """hidden: [B, L, H], attention_mask: [B, L] -> [B, H]. "attention": softmax over the real tokens of a learned
    score per token (`attention`, a Linear(H, 1)), the weighted sum of their states."""
    if how == "cls":
        return hidden[:, 0]
    mask = attention_mask.to(hidden.dtype) if attention_mask is not None else hidden.new_ones(hidden.shape[:2])
    if how == "attention":
        scores = attention(hidden).squeeze(-1).float().masked_fill(mask == 0, float("-inf"))
        return (scores.softmax(-1).to(hidden.dtype).unsqueeze(-1) * hidden).sum(1)
    if how == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    # last: the last position whose mask is 1, for right and left padding alike
    positions = torch.arange(hidden.shape[1], device=hidden.device).to(mask.dtype)
    last = (mask * (positions + 1)).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class BackboneClassifier(nn.Module):
    """backbone -> (scalar mix of all layers | last layer) -> pool -> dropout -> linear classifier."""

    main_input_name = "input_ids"

    def __init__(self, backbone, num_labels, pooling, scalar_mix=False, lm_loss_weight=0.0, causal=False):
        super().__init__()
        self.backbone = backbone
        self.config = backbone.config
        self.causal, self.pooling, self.lm_loss_weight = causal, pooling, lm_loss_weight
        config = backbone.config
        hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or config.d_model
        layers = getattr(config, "num_hidden_layers", None)
        layers = config.n_layer if layers is None else layers  # 0 for word2vec / NNLM: one state, no layer stack
        self.scalar_mix = ScalarMix(layers + 1) if scalar_mix else None
        self.attention = nn.Linear(hidden, 1) if pooling == "attention" else None
        p = next((getattr(config, k) for k in ("classifier_dropout", "hidden_dropout_prob", "resid_pdrop")
                  if getattr(config, k, None) is not None), 0.1)
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(hidden, num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)
        self.num_labels = num_labels

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None):
        kwargs = dict(attention_mask=attention_mask, output_hidden_states=True, return_dict=True)
        if token_type_ids is not None and not self.causal:
            kwargs["token_type_ids"] = token_type_ids
        lm_loss = None
        if self.causal and self.lm_loss_weight > 0 and self.training:
            lm_labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX) if attention_mask is not None \
                else input_ids
            out = self.backbone(input_ids, labels=lm_labels, **kwargs)
            lm_loss = out.loss
        else:  # no LM logits needed: run the base model only
            base = self.backbone.base_model if self.causal else self.backbone
            out = base(input_ids, **kwargs)
        states = out.hidden_states  # embeddings + every layer: [B, L, H] each
        hidden = self.scalar_mix(states) if self.scalar_mix is not None else states[-1]
        logits = self.classifier(self.dropout(pool(hidden, attention_mask, self.pooling, self.attention)))
        loss = cls_loss = None
        if labels is not None:
            cls_loss = nn.functional.cross_entropy(logits.float(), labels.view(-1))
            loss = cls_loss if lm_loss is None else cls_loss + self.lm_loss_weight * lm_loss
        if not self.training:  # eval: only what metrics need
            return ClassifierOutput(loss=loss, logits=logits)
        return ClassifierOutput(loss=loss, logits=logits, cls_loss=None if cls_loss is None else cls_loss.detach(),
                                lm_loss=None if lm_loss is None else lm_loss.detach())


def head_parameter_names(model):
    """The classification head: what is not backbone (classifier, scalar mix; for the stock classes also the
    pooler, which is part of the classification path and is fresh in pretraining checkpoints)."""
    if isinstance(model, BackboneClassifier):
        return [n for n, _ in model.named_parameters() if not n.startswith("backbone.")]
    prefix = model.base_model_prefix + "."
    return [n for n, _ in model.named_parameters() if not n.startswith(prefix) or ".pooler." in n]


def _load_config(model_args):
    try:
        return AutoConfig.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir,
                                          token=model_args.token, trust_remote_code=model_args.trust_remote_code)
    except (OSError, ValueError) as e:
        raise UserError(f"could not load a config from {model_args.model_name_or_path}: "
                        f"{' '.join(str(e).split())[:200]}") from None


def build_model(model_args, strategy_args, labels):
    """The model for this strategy with pretrained (or, with --random_init, fresh) weights; returns (model, info)."""
    check_weights(model_args.model_name_or_path)
    config = _load_config(model_args)
    kind = detect_backbone(config, model_args.backbone)
    n = len(labels)
    config.num_labels = n
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    common = dict(cache_dir=model_args.cache_dir, token=model_args.token,
                  trust_remote_code=model_args.trust_remote_code)
    pooling = strategy_args.pooling
    wrapped = kind == "causal" or strategy_args.strategy == "feature_based" or \
        type(config) not in AutoModelForSequenceClassification._model_mapping  # word2vec, NNLM: no such class
    if pooling == "auto":
        pooling = "last" if kind == "causal" else ("mean" if wrapped else "model")
    elif not wrapped and pooling != "cls":
        wrapped = True  # the stock classes pool the first token; any other pooling needs our head
    if strategy_args.lm_loss_weight > 0 and kind != "causal":
        raise UserError("--lm_loss_weight needs a causal (GPT-style) backbone; this checkpoint is an encoder")
    fresh_head = []
    if not wrapped:
        if model_args.random_init:
            model = AutoModelForSequenceClassification.from_config(
                config, trust_remote_code=model_args.trust_remote_code)
        else:
            with quiet_load_report():
                model, info = AutoModelForSequenceClassification.from_pretrained(
                    model_args.model_name_or_path, config=config, output_loading_info=True,
                    ignore_mismatched_sizes=True, **common)
            fresh_head = sorted(set(info["missing_keys"]) | {k for k, *_ in info.get("mismatched_keys", [])})
            warn_unexpected_loading(info, model_args.model_name_or_path)
        pooling = "cls"
    else:
        auto = AutoModelForCausalLM if kind == "causal" else AutoModel
        if model_args.random_init:
            backbone = auto.from_config(config, trust_remote_code=model_args.trust_remote_code)
        else:
            with quiet_load_report():
                backbone, info = auto.from_pretrained(model_args.model_name_or_path, config=config,
                                                      output_loading_info=True, **common)
            warn_unexpected_loading(info, model_args.model_name_or_path)
        model = BackboneClassifier(backbone, n, pooling, scalar_mix=strategy_args.strategy == "feature_based",
                                   lm_loss_weight=strategy_args.lm_loss_weight, causal=kind == "causal")
        fresh_head = head_parameter_names(model)
    if model_args.random_init:
        announce(f"--random_init: {config.model_type} config of {model_args.model_name_or_path}, fresh weights")
    elif fresh_head:
        announce(f"no classification head in {model_args.model_name_or_path}: a fresh one is initialised "
                 f"({', '.join(fresh_head[:6])}{' ...' if len(fresh_head) > 6 else ''})")
    if strategy_args.strategy == "adapters":
        add_adapters(model, strategy_args.adapter_size)
    record = {"strategy": strategy_args.strategy, "backbone": kind, "wrapped": wrapped, "pooling": pooling,
              "scalar_mix": strategy_args.strategy == "feature_based",
              "adapter_size": strategy_args.adapter_size if strategy_args.strategy == "adapters" else None,
              "lm_loss_weight": strategy_args.lm_loss_weight, "labels": list(labels),
              "gradual_unfreezing": strategy_args.gradual_unfreezing,
              "layer_lr_decay": strategy_args.layer_lr_decay, "random_init": model_args.random_init,
              "model_name_or_path": model_args.model_name_or_path}
    return model, record


# weights a pretraining checkpoint has and a classifier does not need (its LM / sentence heads), and weights a
# classifier gets fresh (its head; BERT's pooler, unused by the other poolings): loading them is expected
_PRETRAINING_HEADS = ("cls.", "lm_head.", "lm_loss", "final_logits_bias")
_FRESH_HEAD = ("classifier.", "score.", "pooler.", "bert.pooler.", "transformer.pooler.")


class _DropLoadReport(logging.Filter):
    def filter(self, record):
        return "LOAD REPORT" not in str(record.msg)


@contextlib.contextmanager
def quiet_load_report():
    """Hold back transformers' LOAD REPORT table (it lists the expected new head and the dropped LM head as
    warnings); `warn_unexpected_loading` then reports what is not expected, in one line. A filter, not a log
    level: transformers runs extra checks when its loader's level is raised."""
    target = logging.getLogger("transformers.modeling_utils")
    drop = _DropLoadReport()
    target.addFilter(drop)
    try:
        yield
    finally:
        target.removeFilter(drop)


def warn_unexpected_loading(info, source):
    """A warning for checkpoint weights that were not used, or model weights that were not found, other than the
    pretraining heads a classifier drops and the classification head (and pooler) it initialises."""
    def strip(key):
        return key.split(".", 1)[1] if key.startswith(("bert.", "model.", "transformer.")) else key
    unused = [k for k in info.get("unexpected_keys", []) if not k.startswith(_PRETRAINING_HEADS)
              and not strip(k).startswith(_PRETRAINING_HEADS)]
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(_FRESH_HEAD)
               and not strip(k).startswith(_FRESH_HEAD)]
    if unused:
        logger.warning("%s: %d checkpoint weights were not used: %s", source, len(unused), ", ".join(unused[:8]))
    if missing:
        logger.warning("%s: %d model weights were not in the checkpoint and start fresh: %s", source, len(missing),
                       ", ".join(missing[:8]))


def announce(line):
    """Log and print: facts about the run a user should see even with the default (passive) log level."""
    logger.info(line)
    print(line, flush=True)


def save_wrapped(model, output_dir):
    """A BackboneClassifier as model.safetensors (shared tensors once) + the backbone's config.json."""
    from safetensors.torch import save_model
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    save_model(model, str(Path(output_dir) / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(output_dir)


def load_finetuned(path):
    """Load what run_finetune.py saved in `path`, whatever the strategy; returns the model in eval mode."""
    path = Path(path)
    record = json.loads((path / RECORD).read_text())
    config = AutoConfig.from_pretrained(path)
    if not record["wrapped"]:
        if record["adapter_size"] is None:
            return AutoModelForSequenceClassification.from_pretrained(path).eval()
        model = AutoModelForSequenceClassification.from_config(config)
        add_adapters(model, record["adapter_size"])
    else:
        auto = AutoModelForCausalLM if record["backbone"] == "causal" else AutoModel
        model = BackboneClassifier(auto.from_config(config), len(record["labels"]), record["pooling"],
                                   scalar_mix=record["scalar_mix"], lm_loss_weight=record["lm_loss_weight"],
                                   causal=record["backbone"] == "causal")
        if record["adapter_size"] is not None:
            add_adapters(model, record["adapter_size"])
    load_model(model, str(path / "model.safetensors"), strict=True)
    return model.eval()


def is_stock(model):
    return isinstance(model, PreTrainedModel)
