"""Command-line arguments: dataclasses read by `HfArgumentParser`, named as in transformers' run_mlm.py.

`ModelArguments` and `DataTrainingArguments` keep run_mlm.py's names so existing command lines work unchanged;
`PretrainArguments` adds what is ours (objective, tokenizer training, fused loss); `PretrainTrainingArguments`
is `TrainingArguments` with defaults that make `python run_pretrain.py` with no flags a useful few-minute job.
Defaults live here, except those of collator options, which are read from the collators (one value each).
Flags that only some objectives read come in option groups
(`OPTION_GROUPS`: masking, sentences, denoising, span corruption, causal, mixture), each validated by one method;
a flag of a group that none of the run's objectives reads is an error (it would silently do nothing).
"""
import os
from dataclasses import dataclass, field

from transformers import TrainingArguments

from .collators.causal import CausalLMCollator
from .collators.mlm import MLMCollator
from .collators.schedule import RateSchedule
from .collators.span_corruption import SpanCorruptionCollator as _T5
from .collators.spans import WordMaskCollator as _WORDS
from .constants import FILE_EXTENSIONS
from .errors import UserError
from .registry import get_objective

OBJECTIVES = ("mlm", "wwm", "ngram", "span", "sop", "nsp", "bart", "t5", "clm")  # the built-in ones (objectives.py)


@dataclass
class ModelArguments:
    """Which model, config and tokenizer to start from (all optional: the default is a tiny fresh hfpx-bert)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Checkpoint to continue pretraining from (local folder or Hub id). "
                                        "Leave unset to train a model from scratch."})
    model_type: str | None = field(
        default=None, metadata={"help": "Model type from scratch (an AutoConfig key); default: the objective's own."})
    config_name: str | None = field(
        default=None, metadata={"help": "Config name or path, if not the same as model_name_or_path."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "Override config values when training from scratch, e.g. "
                                        "'hidden_size=256,num_hidden_layers=4,hidden_dropout_prob=0.0'."})
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer name or path, if not the same as model_name_or_path. "
                                        "When neither is given, a tokenizer is trained on the training files."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache downloads from the Hub."})
    model_revision: str = field(default="main", metadata={"help": "Model revision (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models or datasets."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom code from the Hub. Only for repositories you trust."})
    torch_dtype: str | None = field(
        default=None, metadata={"help": "Load the model in this dtype.", "choices": ["auto", "bfloat16", "float16",
                                                                                     "float32"]})


@dataclass
class DataTrainingArguments:
    """What data to train and evaluate on. With no data flag, the sample corpus shipped in the package is used."""

    dataset_name: str | None = field(default=None, metadata={"help": "Dataset name (datasets library)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Dataset config name."})
    train_file: str | None = field(
        default=None, metadata={"help": "Training text: .txt/.text/.raw, .json/.jsonl (one object per line) or "
                                        ".csv. Defaults to the package's sample corpus."})
    validation_file: str | None = field(default=None, metadata={"help": "Evaluation file, same formats."})
    validation_split_percentage: int = field(
        default=5, metadata={"help": "Percent of the training documents held out for evaluation when no "
                                     "validation file is given (the last documents, not a random sample)."})
    text_column_name: str | None = field(
        default=None, metadata={"help": "Column holding the text in JSON/CSV data (default: 'text', or the only "
                                        "string column)."})
    document_split: str = field(
        default="auto", metadata={"help": "How plain text is cut into documents: 'line' (one per line), "
                                          "'blank_line' (paragraphs separated by blank lines) or 'auto' "
                                          "(blank_line when the file has blank lines).",
                                  "choices": ["auto", "line", "blank_line"]})
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Tokens per training example, special tokens included. Default: 128 for "
                                        "a fresh model, else min(512, the model's positions)."})
    line_by_line: bool = field(
        default=False, metadata={"help": "One example per document (truncated) instead of packing documents "
                                         "into blocks of max_seq_length."})
    mlm_probability: str = field(
        default=str(MLMCollator.mlm_probability),
        metadata={"help": "Fraction of tokens selected for MLM: a rate (0.15), or a schedule over the optimizer "
                          "steps: linear:0.3,0.15 (straight from 30%% to 15%%), step:0.3,0.15@0.6,0.05@0.9 (30%% "
                          "until 60%% of training, then 15%%, 5%% from 90%%); a point is rate or rate@fraction. "
                          "Logged per step as mlm_probability."})
    eval_mlm_probability: float = field(
        default=0.15, metadata={"help": "Fixed masking rate of evaluation (whatever the training rate or "
                                        "schedule), so evaluations compare across runs."})
    packing: str = field(
        default="blocks", metadata={"help": "Encoder objectives: 'blocks' (documents joined and cut every "
                                            "max_seq_length, as run_mlm.py) or 'documents' (whole [CLS] document "
                                            "[SEP] pieces fill each example; each gets its own positions and "
                                            "attends only to itself: the ModernBERT way).",
                                    "choices": ["blocks", "documents"]})
    pad_to_multiple_of: int | None = field(default=None, metadata={"help": "Pad batches to a multiple of this."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Re-run tokenization, ignoring the cache."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep at most this many training examples (after grouping)."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep at most this many evaluation examples (after grouping)."})
    streaming: bool = field(default=False, metadata={"help": "Stream the dataset instead of loading it whole."})

    def __post_init__(self):
        try:  # the schedule is kept; mlm_probability becomes its starting rate (what the collators are built with)
            self.mlm_schedule = RateSchedule.parse(self.mlm_probability)
        except ValueError as e:
            raise UserError(str(e)) from None
        self.mlm_probability = self.mlm_schedule.start
        if not 0.0 < self.eval_mlm_probability < 1.0:
            raise UserError(f"--eval_mlm_probability must be in (0, 1), got {self.eval_mlm_probability}")
        if self.packing == "documents" and self.line_by_line:
            raise UserError("--packing documents and --line_by_line exclude each other: documents packing already "
                            "keeps every document apart (and pads far less)")
        if not 0 <= self.validation_split_percentage < 100:
            raise UserError(f"--validation_split_percentage must be in [0, 100), got "
                            f"{self.validation_split_percentage}")
        if self.max_seq_length is not None and self.max_seq_length < 8:
            raise UserError(f"--max_seq_length must be at least 8, got {self.max_seq_length}")
        for name in ("train_file", "validation_file"):
            path = getattr(self, name)
            if path is not None and path.rsplit(".", 1)[-1].lower() not in FILE_EXTENSIONS:
                raise UserError(f"--{name} {path}: unsupported extension; use one of "
                                f"{', '.join('.' + e for e in FILE_EXTENSIONS)}")


@dataclass
class PretrainArguments:
    """Ours: the objective, tokenizer training and the loss path."""

    objective: str = field(default="mlm", metadata={"help": f"Pretraining objective: {', '.join(OBJECTIVES)}."})
    tokenizer_vocab_size: int = field(
        default=8000, metadata={"help": "Vocabulary size when a tokenizer is trained from the training files."})
    tokenizer_type: str = field(
        default="auto", metadata={"help": "Tokenizer to train: 'wordpiece' (BERT), 'bpe' (byte-level, GPT) or "
                                          "'auto' (wordpiece for encoder objectives).",
                                  "choices": ["auto", "wordpiece", "bpe"]})
    lowercase: bool = field(default=True, metadata={"help": "Lowercase text in a trained WordPiece tokenizer."})
    recipe: str | None = field(
        default=None, metadata={"help": "A preset of flags, given before yours (yours win): 'modernbert' = "
                                        "--packing documents --unpad --mlm_probability 0.3 --eval_mlm_probability "
                                        "0.15 (README: what each part is for).",
                                "choices": ["modernbert"]})
    unpad: bool = field(
        default=False, metadata={"help": "With --packing documents (hfpx-bert): run the model on the real tokens "
                                         "only (no padding through embeddings, feed-forward layers and head); "
                                         "attention through flash-attn's varlen kernel when it is installed and "
                                         "the run is on a GPU in fp16/bf16, else SDPA with a block-diagonal mask "
                                         "(HFPX_UNPAD_ATTENTION=sdpa|flash forces one)."})
    use_fused_loss: bool | None = field(
        default=None, metadata={"help": "Compute the LM head and loss on labelled rows only, through "
                                        "hf_pretrain_ext.kernels (the checkpoint layout does not change). Default: "
                                        "always for the masked objectives (15-30%% of rows labelled), and with a "
                                        "GPU for bart/t5/clm (every row labelled). On CPU the fused head alone is "
                                        "now level with eager or faster at every row labelled "
                                        "(benchmarks/bench_cpu_peers.py); whole bart/t5/clm runs on CPU have not "
                                        "been re-measured, so their default stays off there."})
    word_boundaries: str = field(
        default=_WORDS.word_boundaries,
        metadata={"help": "Where whole-word masking finds words: 'wordpiece' (## continuations), "
                          "'offsets' (offset_mapping, fast tokenizers) or 'auto' (offsets when the "
                          "data carries them, else the vocabulary's ##, \u2581 or \u0120 markers).",
                  "choices": ["auto", "wordpiece", "offsets"]})
    segmenter: str = field(
        default=_WORDS.segmenter, metadata={
            "help": "Chinese word segmenter of the whole-word objectives, run on each document's own text and mapped "
                    "to tokens by character offsets ('none': every CJK token is a word).",
            "choices": ["jieba", "none"]})
    replace_level: str = field(default=_WORDS.replace_level, metadata={
        "help": "Whether the 80/10/10 [MASK]/random/keep choice is made per selected token or once per selected word.",
        "choices": ["token", "word"]})
    span_distribution: str = field(
        default=_WORDS.span_distribution,
        metadata={"help": "Span length (in words) for ngram/span: 'harmonic' p(n) ~ 1/n up to --max_ngram, or "
                          "'geometric' (SpanBERT) with --geometric_p clipped at --max_span_length.",
                  "choices": ["harmonic", "geometric"]})
    max_ngram: int = field(default=_WORDS.max_ngram, metadata={"help": "Longest n-gram (words), harmonic spans."})
    geometric_p: float = field(default=_WORDS.geometric_p,
                               metadata={"help": "p of the geometric span length (mean 3.8 words at 0.2, max 10)."})
    max_span_length: int = field(default=_WORDS.max_span_length, metadata={"help": "Longest geometric span, in words."})
    long_word_min_chars: int | None = field(
        default=None, metadata={"help": "Fengshenbang's WWM variant (they use 4): Chinese words of at least this "
                                        "many characters are always selected (80/10/10 still applies), other "
                                        "words with probability --mlm_probability. Only with whole-word "
                                        "masking."})
    masking: str = field(
        default="mlm", metadata={"help": "Token masking combined with --objective sop/nsp.",
                                 "choices": ["mlm", "wwm", "ngram"]})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Write into an output_dir that already holds files."})
    plot: bool = field(default=True, metadata={"help": "Save loss_curve.png in the output directory."})
    hub_license: str = field(
        default="apache-2.0", metadata={"help": "With --push_to_hub: the license field of the model card (a Hub "
                                                "license id: apache-2.0, mit, cc-by-sa-4.0, other, ...). Check that "
                                                "your training data allows it."})
    hub_dry_run: bool = field(
        default=False, metadata={"help": "With --push_to_hub: build <output_dir>/hub_upload (stock export + model "
                                         "card) but upload nothing."})
    # -- generative objectives (bart, t5, clm) and mixtures (objectives.py, mixing.py) -----------------------
    bart_recipe: str = field(
        default="released", metadata={"help": "BART noising defaults: 'released' (fairseq's bart.large recipe: "
                                              "mask 0.3 of words, mask_random 0.1, poisson_lambda 3.5, "
                                              "replace_length 1, permute_sentences 1) or 'paper' (30%% of tokens, "
                                              "Poisson(3), no random replacement, permute_sentences 1). The flags "
                                              "below override single values.",
                                      "choices": ["released", "paper"]})
    mask_ratio: float | None = field(
        default=None, metadata={"help": "BART text infilling: fraction of words (or tokens) masked per example."})
    mask_random: float | None = field(
        default=None, metadata={"help": "BART: fraction of masked spans / inserted masks that are random tokens."})
    poisson_lambda: float | None = field(default=None, metadata={"help": "BART: mean span length (Poisson)."})
    mask_unit: str | None = field(default=None, metadata={"help": "BART infilling counts 'word's or 'token's.",
                                                          "choices": ["word", "token"]})
    replace_length: int | None = field(
        default=None, metadata={"help": "BART: 0 deletes a masked span, 1 puts one mask for it, -1 a mask per "
                                        "token.", "choices": [-1, 0, 1]})
    permute_sentences: float | None = field(
        default=None, metadata={"help": "BART: fraction of sentences shuffled among themselves."})
    rotate: float | None = field(default=None, metadata={"help": "BART: probability of rotating the document."})
    insert_ratio: float | None = field(
        default=None, metadata={"help": "BART: masks inserted, as a fraction of the example's tokens."})
    token_mask_ratio: float = field(default=0.0, metadata={"help": "BART token masking: fraction of single "
                                                                   "tokens replaced by the mask token."})
    token_delete_ratio: float = field(default=0.0, metadata={"help": "BART token deletion: fraction of tokens "
                                                                     "deleted."})
    noise_density: float = field(
        default=_T5.noise_density, metadata={"help": "T5 span corruption: fraction of noise tokens."})
    mean_noise_span_length: float = field(default=_T5.mean_noise_span_length,
                                          metadata={"help": "T5 span corruption: mean span length."})
    clm_packing: str = field(
        default=CausalLMCollator.packing,
        metadata={"help": "Causal LM blocks: 'documents' (positions restart and attention "
                          "stays within each document, no label crosses a boundary) or "
                          "'none' (run_clm.py blocks).", "choices": ["documents", "none"]})
    w2v_window: int = field(default=5, metadata={"help": "Word2vec: largest window; each position draws its "
                                                         "window uniformly from 1 .. N (word2vec.c)."})
    w2v_negatives: int = field(default=5, metadata={"help": "Word2vec: noise words per pair."})
    w2v_subsample: float = field(default=1e-3, metadata={"help": "Word2vec: subsampling threshold t (a token of "
                                                                 "frequency f is kept with probability "
                                                                 "(sqrt(f/t) + 1) t / f); 0 keeps all."})
    w2v_noise_power: float = field(default=0.75, metadata={"help": "Word2vec: noise distribution unigram^p."})
    mixture: str | None = field(
        default=None, metadata={"help": "Mix objectives ('bart=0.7,t5=0.3', same model family) or training files "
                                        "('a.txt=0.3,b.txt=0.7', or 'a.txt,b.txt' with --mixture_cap / "
                                        "--mixture_temperature for examples-proportional mixing). Explicit rates "
                                        "must sum to 1. Each component's loss is logged as <name>_loss."})
    mixture_cap: int | None = field(
        default=None, metadata={"help": "Examples-proportional mixing: cap K on each file's example count."})
    mixture_temperature: float = field(
        default=1.0, metadata={"help": "Examples-proportional mixing: temperature T (rates ** (1/T), "
                                       "renormalised)."})
    teacher_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Distil from this checkpoint (of the objective's family: hfpx-bert/-gpt/"
                                        "-bart/-t5/-nnlm or their stock types; same vocabulary): frozen, in eval mode, "
                                        "no gradients; its soft targets on the labelled rows only (masked tokens, "
                                        "next-token or decoder positions), through the fused distillation loss. "
                                        "Objectives with a softmax (not skipgram / cbow / bilm)."})
    distill_alpha: float = field(
        default=0.5, metadata={"help": "Weight of the soft-target loss: (1 - a) * task loss + a * T^2 * KL_T."})
    distill_temperature: float = field(default=2.0, metadata={"help": "Softmax temperature T of the soft targets."})
    distill_cosine: float = field(
        default=0.0, metadata={"help": "Weight of DistilBERT's cosine loss between the student's and the teacher's "
                                       "last hidden states on every real token (decoders: every labelled "
                                       "position; equal hidden sizes), summed over them and divided by the "
                                       "labelled-token count like the task loss."})
    distill_init_student: bool = field(
        default=False, metadata={"help": "Start the student from the teacher (DistilBERT): embeddings, head and "
                                         "every other layer of each stack (student layer i <- teacher layer 2i); "
                                         "needs the teacher's sizes but depth (set it with --config_overrides: "
                                         "num_hidden_layers=N, n_layer=N, encoder_layers/decoder_layers, "
                                         "num_layers/num_decoder_layers)."})

    max_train_minutes: float | None = field(
        default=None, metadata={"help": "Stop training after this many minutes of wall clock (from the first step; "
                                        "a checkpoint is saved there) and run the learning-rate schedule "
                                        "(linear, cosine, constant[_with_warmup]; a --warmup_steps below 1 is then "
                                        "a fraction of the time) on the fraction of the time elapsed; --max_steps "
                                        "stays an upper bound. For equal-CPU-time comparisons: the step it stops "
                                        "at depends on the machine, and it cannot be resumed."})

    def __post_init__(self):
        get_objective(self.objective)
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise UserError(f"--max_train_minutes must be positive, got {self.max_train_minutes}")  # a one-line error naming the registered objectives
        if self.use_fused_loss is None:
            self.use_fused_loss = self.default_use_fused_loss()
        for group in OPTION_GROUPS:
            check = getattr(self, f"check_{group}", None)
            if check is not None:
                check()
        if self.tokenizer_vocab_size < 100:
            raise UserError(f"--tokenizer_vocab_size must be at least 100, got {self.tokenizer_vocab_size}")

    def check_word2vec(self):
        if self.w2v_window < 1 or self.w2v_negatives < 1:
            raise UserError("--w2v_window and --w2v_negatives must be at least 1")
        if self.w2v_subsample < 0 or self.w2v_noise_power < 0:
            raise UserError("--w2v_subsample and --w2v_noise_power must be >= 0")

    def check_distillation(self):
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise UserError(f"--distill_alpha must be in [0, 1], got {self.distill_alpha}")
        if not self.distill_temperature > 0:
            raise UserError(f"--distill_temperature must be positive, got {self.distill_temperature}")
        if self.distill_cosine < 0:
            raise UserError(f"--distill_cosine must be >= 0, got {self.distill_cosine}")

    def check_masking(self):
        if self.max_ngram < 1 or self.max_span_length < 1:
            raise UserError("--max_ngram and --max_span_length must be at least 1")
        if not 0.0 < self.geometric_p <= 1.0:
            raise UserError(f"--geometric_p must be in (0, 1], got {self.geometric_p}")
        if self.long_word_min_chars is not None and self.token_masking() != "wwm":
            raise UserError("--long_word_min_chars applies to whole-word masking only (--objective wwm, or sop/nsp "
                            "with --masking wwm)")

    def check_denoising(self):
        for name in ("mask_ratio", "mask_random", "permute_sentences", "rotate", "insert_ratio", "token_mask_ratio",
                     "token_delete_ratio"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UserError(f"--{name} must be in [0, 1], got {value}")
        if self.poisson_lambda is not None and self.poisson_lambda <= 0:
            raise UserError(f"--poisson_lambda must be > 0, got {self.poisson_lambda}")

    def check_span_corruption(self):
        if not 0.0 < self.noise_density < 1.0:
            raise UserError(f"--noise_density must be in (0, 1), got {self.noise_density}")
        if self.mean_noise_span_length < 1:
            raise UserError(f"--mean_noise_span_length must be >= 1, got {self.mean_noise_span_length}")

    def check_mixture(self):
        if self.mixture_cap is not None and self.mixture_cap < 1:
            raise UserError(f"--mixture_cap must be a positive number of examples, got {self.mixture_cap}")
        if self.mixture_temperature <= 0:
            raise UserError(f"--mixture_temperature must be > 0, got {self.mixture_temperature}")

    def default_use_fused_loss(self):
        """On where it is faster: masked objectives always, bart/t5/clm (every row labelled) with a GPU."""
        import torch
        return not get_objective(self.objective).all_rows_labelled or torch.cuda.is_available()

    def is_sentence_pairs(self):
        return get_objective(self.objective).examples == "sentences"

    def token_masking(self):
        """The token masking in use: the objective itself, or --masking for sop/nsp."""
        return self.masking if self.is_sentence_pairs() else self.objective

    def check_groups_used(self, groups, asked):
        """A flag of an option group that none of the run's objectives reads (given: `asked(flag)`) is an error."""
        for group, flags in OPTION_GROUPS.items():
            given = [f for f in flags if asked(f)]
            if group not in groups and given:
                raise UserError(f"--{given[0]} is a {group.replace('_', ' ')} option, which --objective "
                                f"{self.objective} does not use (it reads: {', '.join(sorted(groups)) or 'none'})")


# --recipe NAME: the flags it stands for, placed before the user's own (argparse: the last value given wins)
RECIPES = {"modernbert": ("--packing", "documents", "--unpad", "--mlm_probability", "0.3",
                          "--eval_mlm_probability", "0.15")}


# the flags each option group holds; registry.Objective.option_groups names the groups an objective reads
OPTION_GROUPS = {
    "masking": ("word_boundaries", "segmenter", "replace_level", "span_distribution", "max_ngram", "geometric_p",
                "max_span_length", "long_word_min_chars"),
    "sentences": ("masking",),  # sop / nsp
    "denoising": ("bart_recipe", "mask_ratio", "mask_random", "poisson_lambda", "mask_unit", "replace_length",
                  "permute_sentences", "rotate", "insert_ratio", "token_mask_ratio", "token_delete_ratio"),
    "span_corruption": ("noise_density", "mean_noise_span_length"),
    "causal": ("clm_packing",),
    "word2vec": ("w2v_window", "w2v_negatives", "w2v_subsample", "w2v_noise_power"),
    "packing": ("packing", "unpad"),  # encoder objectives with a masked-LM head
    "distillation": ("teacher_model_name_or_path", "distill_alpha", "distill_temperature", "distill_cosine",
                     "distill_init_student"),
    "mixture": ("mixture_cap", "mixture_temperature"),
}


@dataclass
class PretrainTrainingArguments(TrainingArguments):
    """TrainingArguments with defaults for a few-minute CPU job; every TrainingArguments flag is accepted."""

    output_dir: str | None = field(default="output/hfpx-bert-mlm", metadata={"help": "Where results are saved."})
    do_train: bool = field(default=False, metadata={"help": "Train (default: train and evaluate when neither "
                                                             "--do_train nor --do_eval is given)."})
    max_steps: int = field(default=600, metadata={"help": "Optimizer steps (overrides num_train_epochs when > 0)."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Batch size per device for training."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Batch size per device for eval."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak AdamW learning rate."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warmup steps (a float below 1 is a ratio)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    logging_steps: float = field(default=20, metadata={"help": "Log every N steps."})
    save_steps: float = field(default=200, metadata={"help": "Save a checkpoint every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most N checkpoints."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep dataset columns for the collator (it needs example_index for "
                                         "per-example masking seeds)."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Loggers to report to."})

    def __post_init__(self):
        # torchrun/accelerate on a machine without an accelerator: unless use_cpu is set, transformers sets up a
        # non-distributed state and every process silently trains alone on the whole data.
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not self.use_cpu and not _has_accelerator():
            self.use_cpu = True
        super().__post_init__()


def _has_accelerator():
    import torch
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
