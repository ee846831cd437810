"""One place that declares every pretraining objective and model family; `run_pretrain.py` reads only this.

A `Family` is a model architecture the package trains (hfpx-bert, hfpx-gpt, hfpx-bart, hfpx-t5): its config and
model classes (by the Auto* class that loads each), the tiny preset a fresh model starts from, the stock
architecture it exports to (model type and class-name prefix) and the stock model types whose checkpoints load
into it (same weight names).

An `Objective` says everything a run needs to train it: its model kind (encoder, decoder or seq2seq: objectives
of one kind, preparing examples the same way and giving the same batch fields, can be mixed), the family of a
fresh model, the Auto* class of its model, the tokenizer trained when none is given and the special tokens it
needs, how examples are prepared ('blocks': documents packed into blocks; 'sentences': sentence pairs), the block
length, whether packed word starts are needed, the collator factory, the logits preprocessing of the evaluation
metrics, the loss parts it logs and the option groups whose flags it reads.

Built-in objectives and families are declared in `objectives.py` and registered on first use; a user registers an
objective the same way, from outside the package:

    from hf_pretrain_ext.registry import Objective, register_objective
    register_objective(Objective(name="my_mlm", kind="encoder", family="hfpx-bert", auto_class="AutoModelForMaskedLM",
                                 collator=lambda run: MyCollator(run.tokenizer, seed=run.training_args.seed)))
"""
import importlib
from dataclasses import dataclass, field
from typing import Callable

from .errors import UserError

KINDS = ("encoder", "decoder", "seq2seq")


@dataclass(frozen=True)
class Family:
    model_type: str  # e.g. "hfpx-bert"
    kind: str  # encoder / decoder / seq2seq
    config_class: type
    models: dict  # Auto* class name -> model class, e.g. {"AutoModelForMaskedLM": HfpxBertForMaskedLM}
    preset: dict  # the tiny configuration of a fresh model
    stock_type: str | None  # the stock architecture it exports to, and whose checkpoints load into it (None: none)
    class_prefix: tuple | None  # (ours, stock) class-name prefixes, e.g. ("HfpxBert", "Bert")
    renamed: dict = field(default_factory=dict)  # stock class names that do not follow the prefix rule

    @property
    def default_architecture(self):
        return next(iter(self.models.values())).__name__


@dataclass(frozen=True)
class Objective:
    name: str
    kind: str  # encoder / decoder / seq2seq
    family: str  # model_type of a fresh model
    auto_class: str  # transformers Auto* class name of its model
    collator: Callable  # collator(run) -> a CollatorBase; run: see steps.Run (tokenizer, args, model, datasets)
    tokenizer: str = "wordpiece"  # what is trained when no tokenizer is given: "wordpiece" or "bpe"
    bart_specials: bool = False  # a trained BPE gets <s> <pad> </s> <unk> <mask> (bos != eos, for generation)
    needs: tuple = ("pad_token",)  # tokenizer attributes that must be set (checked before any model is built)
    prepare_tokenizer: Callable | None = None  # prepare_tokenizer(tokenizer) -> tokenizer (e.g. T5 sentinels)
    examples: str = "blocks"  # "blocks" (packed documents) or "sentences" (sentence pairs, sop/nsp)
    block_length: Callable = lambda max_seq_length, pretrain_args: max_seq_length
    word_starts: bool | Callable = False  # carry each token's word start (found on the document's text) beside
    # the ids; or a function of the PretrainArguments (sop/nsp: only with --masking wwm / ngram)
    eval_collator: Callable | None = None  # eval_collator(collator, eval_dataset) -> collator; default for_eval()
    metrics: Callable | None = None  # preprocess_logits_for_metrics; None: the masked-LM one
    loss_parts: dict = field(default_factory=dict)  # model output -> logged name, e.g. {"sop_loss": "nsp_loss"}
    label_names: tuple | None = None  # Trainer label_names when the batch has more than `labels`
    all_rows_labelled: bool = False  # every position is a target (fused loss pays off only on a GPU then)
    token_accuracy: bool = True  # evaluation scores token accuracy from the logits (word2vec: the loss only)
    can_stream: bool = True  # False: its collator needs the whole training set (word2vec counts, nsp segments)
    option_groups: tuple = ()  # groups of flags it reads (args.OPTION_GROUPS), validated once per run
    pipeline: str | None = None  # the Hub pipeline tag of its model card
    description: str = ""  # one paragraph for the model card

    def wants_word_starts(self, pretrain_args):
        return self.word_starts(pretrain_args) if callable(self.word_starts) else bool(self.word_starts)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"objective {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.examples not in ("blocks", "sentences"):
            raise ValueError(f"objective {self.name!r}: examples must be 'blocks' or 'sentences'")
        if self.tokenizer not in ("wordpiece", "bpe"):
            raise ValueError(f"objective {self.name!r}: tokenizer must be 'wordpiece' or 'bpe'")


_OBJECTIVES = {}
_FAMILIES = {}
_BUILTINS_LOADED = []


def _load_builtins():
    """Register the built-in objectives and families once (objectives.py imports the collators and models, so
    it is loaded on first lookup, not when this module is imported)."""
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED.append(True)
        importlib.import_module(".objectives", __package__)


def _register(table, key, item, replace, what):
    _load_builtins()
    if key in table and not replace:
        raise ValueError(f"{what} {key!r} is already registered (pass replace=True)")
    table[key] = item
    return item


def register_objective(objective, replace=False):
    """Make `objective` usable as --objective (and in --mixture); returns it."""
    return _register(_OBJECTIVES, objective.name, objective, replace, "objective")


def unregister_objective(name):
    _OBJECTIVES.pop(name, None)


def register_family(family, replace=False):
    """Make a model family known to the model loader, the export and the model card; returns it."""
    return _register(_FAMILIES, family.model_type, family, replace, "model family")


def objective_names():
    _load_builtins()
    return list(_OBJECTIVES)


def get_objective(name):
    """The registered objective `name`; one-line UserError naming the known ones otherwise."""
    _load_builtins()
    try:
        return _OBJECTIVES[name]
    except KeyError:
        raise UserError(f"unknown --objective {name!r}; choose one of: {', '.join(_OBJECTIVES)}") from None


def get_family(model_type):
    """The family a model type belongs to: ours (hfpx-bert) or the stock type loading into it (bert); else None."""
    _load_builtins()
    if model_type in _FAMILIES:
        return _FAMILIES[model_type]
    return next((f for f in _FAMILIES.values() if f.stock_type == model_type), None)
