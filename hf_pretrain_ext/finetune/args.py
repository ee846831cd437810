"""Fine-tuning arguments: dataclasses read by `HfArgumentParser`, named as in transformers' run_glue.py.

`FinetuneModelArguments` (which checkpoint, encoder or causal), `FinetuneDataArguments` (labelled files or a
`datasets` dataset, which columns), `StrategyArguments` (what is trained and how) and `FinetuneTrainingArguments`
(`TrainingArguments` with defaults that evaluate every epoch and keep the best checkpoint). Defaults live here and
nowhere else; `__post_init__` rejects combinations that do not make sense, with one line.
"""
from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..errors import UserError

STRATEGIES = ("full", "feature_based", "adapters")
DATA_EXTENSIONS = ("tsv", "csv", "json", "jsonl")
METRICS = ("accuracy", "f1", "mcc", "loss")


@dataclass
class FinetuneModelArguments:
    """The checkpoint to fine-tune: one this package saved (hfpx-bert, any objective), a stock local BERT, or a
    causal LM (GPT-2 style)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Checkpoint folder (or Hub id) to fine-tune. Required."})
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer, if not the one saved with the checkpoint."})
    backbone: str = field(
        default="auto", metadata={"help": "'encoder' (BERT-style, [CLS] head), 'causal' (GPT-style, head on the last "
                                          "token) or 'auto' (from the checkpoint's architectures / model type).",
                                  "choices": ["auto", "encoder", "causal"]})
    random_init: bool = field(
        default=False, metadata={"help": "Use the checkpoint's config and tokenizer but fresh random weights (the "
                                         "'no pretraining' baseline with the same architecture)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache downloads from the Hub."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models or datasets."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom code from the Hub. Only for repositories you trust."})

    def __post_init__(self):
        if self.model_name_or_path is None:
            raise UserError("--model_name_or_path is required (a checkpoint folder, e.g. the output_dir of "
                            "run_pretrain.py)")


@dataclass
class FinetuneDataArguments:
    """Labelled data: .tsv/.csv/.jsonl files (or `--dataset_name`) with a text column, an optional second text
    column for sentence pairs, and a label column."""

    train_file: str | None = field(default=None, metadata={"help": "Training file: .tsv, .csv, .json/.jsonl."})
    validation_file: str | None = field(
        default=None, metadata={"help": "Validation file (model selection); same format as --train_file."})
    test_file: str | None = field(
        default=None, metadata={"help": "Optional labelled test file, scored once with the best model."})
    dataset_name: str | None = field(default=None, metadata={"help": "Dataset name or local folder (datasets)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Dataset config name, e.g. 'sst2'."})
    text_column: str | None = field(
        default=None, metadata={"help": "Column of the (first) sentence. Default: the first of sentence, sentence1, "
                                        "text, text_a, '#1 String', question present."})
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Column of the second sentence of a pair. Default: the first of sentence2, "
                                        "text_b, '#2 String' present; none means single sentences."})
    label_column: str | None = field(
        default=None, metadata={"help": "Column of the label. Default: the first of label, Quality, label_desc "
                                        "present."})
    column_names: str | None = field(
        default=None, metadata={"help": "Comma-separated column names for .tsv/.csv files without a header row "
                                        "(e.g. TNEWS: 'sentence,label')."})
    max_seq_length: int = field(
        default=128, metadata={"help": "Tokens per example (special tokens included); longer inputs are "
                                       "truncated, the longer sentence of a pair first."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep a random subset of this many training examples (seeded)."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep a random subset of this many validation examples (seeded)."})
    max_test_samples: int | None = field(
        default=None, metadata={"help": "Keep a random subset of this many test examples (seeded)."})

    def __post_init__(self):
        if self.dataset_name is None and self.train_file is None:
            raise UserError("give --train_file (and --validation_file) or --dataset_name")
        if self.dataset_name is not None and self.train_file is not None:
            raise UserError("give either --dataset_name or --train_file, not both")
        for name in ("train_file", "validation_file", "test_file"):
            path = getattr(self, name)
            if path is not None and path.rsplit(".", 1)[-1].lower() not in DATA_EXTENSIONS:
                raise UserError(f"--{name} {path}: unsupported extension; use one of "
                                f"{', '.join('.' + e for e in DATA_EXTENSIONS)}")
        if self.max_seq_length < 8:
            raise UserError(f"--max_seq_length must be at least 8, got {self.max_seq_length}")


@dataclass
class StrategyArguments:
    """What is trained, and how. `--strategy` picks the trainable parameters; gradual unfreezing and layer-wise
    learning-rate decay refine full fine-tuning; the auxiliary LM loss applies to causal backbones."""

    strategy: str = field(
        default="full", metadata={"help": "full: every weight. feature_based: frozen backbone, a learned "
                                          "softmax-weighted mix of all layers (ELMo scalar mix) and the head. "
                                          "adapters: frozen backbone, a bottleneck adapter after each feed-forward "
                                          "block, and the head.", "choices": list(STRATEGIES)})
    gradual_unfreezing: bool = field(
        default=False, metadata={"help": "Start with only the head trainable and unfreeze one layer group from the "
                                         "top (ULMFiT) every epoch, or every --unfreeze_every_n_steps steps."})
    unfreeze_every_n_steps: int = field(
        default=0, metadata={"help": "With --gradual_unfreezing: unfreeze every N optimizer steps (0: every epoch)."})
    layer_lr_decay: float = field(
        default=1.0, metadata={"help": "Discriminative learning rates: layer group d below the head trains at "
                                       "learning_rate * layer_lr_decay**d (1.0: one learning rate for all)."})
    adapter_size: int = field(default=16, metadata={"help": "Bottleneck width of each adapter."})
    lm_loss_weight: float = field(
        default=0.0, metadata={"help": "Causal backbones: add lambda * (language-modelling loss on the input) to the "
                                       "classification loss while training (GPT, Radford et al. 2018: 0.5)."})
    pooling: str = field(
        default="auto", metadata={"help": "Sentence vector for the head: cls (first token), mean (over tokens), "
                                          "last (last non-pad token), attention (a learned softmax over tokens). "
                                          "auto: last for causal backbones, mean for feature_based encoders "
                                          "and word2vec, the model's own pooler otherwise.",
                                  "choices": ["auto", "cls", "mean", "last", "attention"]})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Write into an output_dir that already holds files."})

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise UserError(f"unknown --strategy {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if self.gradual_unfreezing and self.strategy != "full":
            raise UserError(f"--gradual_unfreezing unfreezes the backbone, so it needs --strategy full "
                            f"(got {self.strategy})")
        if self.layer_lr_decay != 1.0 and self.strategy != "full":
            raise UserError(f"--layer_lr_decay sets per-layer rates of the backbone, so it needs --strategy full "
                            f"(got {self.strategy})")
        if not 0.0 < self.layer_lr_decay <= 1.0:
            raise UserError(f"--layer_lr_decay must be in (0, 1], got {self.layer_lr_decay}")
        if self.unfreeze_every_n_steps < 0:
            raise UserError(f"--unfreeze_every_n_steps must be >= 0, got {self.unfreeze_every_n_steps}")
        if self.adapter_size < 1:
            raise UserError(f"--adapter_size must be at least 1, got {self.adapter_size}")
        if self.lm_loss_weight < 0:
            raise UserError(f"--lm_loss_weight must be >= 0, got {self.lm_loss_weight}")


@dataclass
class FinetuneTrainingArguments(TrainingArguments):
    """TrainingArguments with fine-tuning defaults: evaluate and save every epoch, keep the best checkpoint by
    validation accuracy; every TrainingArguments flag is accepted."""

    output_dir: str | None = field(default="output/hfpx-finetune", metadata={"help": "Where results are saved."})
    do_train: bool = field(default=True, metadata={"help": "Train (default; --do_train false only evaluates)."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Training epochs."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Batch size per device for training."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Batch size per device for eval."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate (of the head)."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warmup steps (a float below 1 is a ratio)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: 'no', 'steps' or 'epoch'."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save: 'no', 'steps', 'epoch', 'best'."})
    logging_steps: float = field(default=20, metadata={"help": "Log every N steps."})
    save_total_limit: int | None = field(default=1, metadata={"help": "Keep at most N checkpoints (+ the best)."})
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Reload the best checkpoint (by --metric_for_best_model) at the end."})
    metric_for_best_model: str | None = field(
        default="accuracy", metadata={"help": f"Validation metric that picks the best checkpoint: "
                                              f"{', '.join(METRICS)}."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Loggers to report to."})

    def __post_init__(self):
        metric = (self.metric_for_best_model or "").removeprefix("eval_")
        if self.metric_for_best_model is not None and metric not in METRICS:
            raise UserError(f"unknown --metric_for_best_model {self.metric_for_best_model!r}; choose one of: "
                            f"{', '.join(METRICS)}")
        super().__post_init__()
