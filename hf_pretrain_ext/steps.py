"""The steps of a pretraining run, in order, for any registered objective (registry.py declares what differs).

start -> data -> tokenizer -> model -> datasets -> collator -> trainer -> train_and_evaluate -> finalize. Each step
reads and fills one `Run`; none branches on an objective's name or family: what an objective needs (its tokenizer,
model class, example preparation, block length, collator, metrics, logged loss parts) comes from its registry
entry. User mistakes end as one `error:` line (UserError) before the work they would spoil.
"""
import inspect
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import AutoTokenizer, set_seed

from .collators import DocumentWordStarts, ObjectiveMixtureCollator, TaggedCollator, build_mixture
from .collators.schedule import ScheduledCollator, set_masking_rate
from .data.grouping import tokenize_and_group
from .data.loading import SAMPLE_CORPUS, load_raw_datasets
from .data.pairs import prepare_sentence_examples
from .data.tokenizer import train_tokenizer
from .entry import check_output_dir, check_stopped, resolve_max_seq_length, resolve_resume, setup_logging, take
from .errors import UserError
from .hub import prepare_upload, push_folder
from .metrics import MaskedTokenAccuracy, most_frequent_token, perplexity, preprocess_logits_for_metrics
from .mixing import build_file_mixture, concat_validation, joined_raw, load_file_mixture, parse_mixture, run_objectives
from .model_setup import init_from_teacher, load_model, load_teacher
from .models.distill_loss import add_projection
from .models.modeling_hfpx_word2vec import save_word2vec_format
from .plotting import plot_loss_curve
from .rundir import (CHECKPOINT_RECORD, check_resume_matches, new_run_record, run_record, supersede_other_runs,
                     vocab_sha)
from .trainer import PretrainTrainer

WORD_VECTORS = "word_vectors.txt"  # word2vec / NNLM runs: the word vectors in word2vec's text format
logger = logging.getLogger("hf_pretrain_ext")


@dataclass
class Run:
    """Everything a run has decided so far; the steps fill it in order."""

    model_args: object
    data_args: object
    pretrain_args: object
    training_args: object
    owned: object = None  # rundir.OutputDir of this run, told when training starts
    objectives: list = field(default_factory=list)  # registry.Objective: one, or a mixture's components
    mixture: object = None  # mixing.MixtureSpec or None
    started: float = 0.0
    last_checkpoint: str | None = None
    resume: str | None = None
    saved: dict | None = None  # the run record of the checkpoint resumed
    record: dict = field(default_factory=dict)
    raw: object = None
    raws: dict | None = None  # a file mixture: one raw DatasetDict per file
    tokenizer: object = None
    model: object = None
    max_seq_length: int = 0
    train_ds: object = None
    eval_ds: object = None
    collator: object = None
    eval_collator: object = None
    trainer: object = None
    teacher: object = None  # distillation: the frozen teacher model
    push_to_hub: bool = False
    results: dict = field(default_factory=dict)

    @property
    def objective(self):
        return self.objectives[0]

    @property
    def file_mixture(self):
        return self.mixture is not None and self.mixture.kind == "files"


def start(run):
    setup_logging(run.training_args)
    if not torch.cuda.is_available():
        run.training_args.dataloader_pin_memory = False  # pinning needs an accelerator; avoids a warning per loader
    run.last_checkpoint = check_output_dir(run.training_args, run.pretrain_args)
    set_seed(run.training_args.seed)
    run.started = time.time()
    run.mixture = parse_mixture(run.pretrain_args.mixture) if run.pretrain_args.mixture else None
    run.objectives = run_objectives(run.pretrain_args, run.mixture)


def data(run):
    """Raw text (one DatasetDict per file of a file mixture), the checkpoint to resume and the run's record."""
    args = run.data_args, run.model_args, run.training_args.seed
    if run.file_mixture:
        run.raws = load_file_mixture(run.mixture, *args, load_raw_datasets)
        run.raw = joined_raw(run.raws)
    else:
        run.raw = load_raw_datasets(*args)
    run.resume = resolve_resume(run.training_args, run.last_checkpoint)
    run.saved = run_record(run.resume) if run.resume is not None else None
    run.record = new_run_record(run.saved, run.pretrain_args)
    if run.resume is None and run.pretrain_args.overwrite_output_dir and run.training_args.process_index == 0:
        moved = supersede_other_runs(run.training_args.output_dir, run.record["run_id"])
        if moved:
            print(f"--overwrite_output_dir: the checkpoints of the previous run were moved to {moved}", flush=True)


def tokenizer(run):
    """The given tokenizer (a resumed run: the checkpoint's), or one trained on the training split; then what
    each objective adds (T5 sentinels) and needs (a mask token, an end-of-text token)."""
    tok = load_or_train_tokenizer(run)
    for objective in run.objectives:
        if objective.prepare_tokenizer is not None:
            tok = objective.prepare_tokenizer(tok)
        missing = [need.replace("_", " ") for need in objective.needs if getattr(tok, need, None) is None]
        if missing:
            raise UserError(f"the tokenizer has no {' or '.join(missing)}, which --objective {objective.name} needs; "
                            f"use a tokenizer with one (the tokenizers trained by default have them)")
    run.tokenizer = tok


def load_or_train_tokenizer(run):
    model_args, pretrain_args, training_args = run.model_args, run.pretrain_args, run.training_args
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if name is None and run.resume is not None and Path(run.resume, "tokenizer.json").is_file():
        name = run.resume  # training is deterministic, but the training files may have changed since
    if name is not None:
        try:
            return AutoTokenizer.from_pretrained(name, cache_dir=model_args.cache_dir, token=model_args.token,
                                                 trust_remote_code=model_args.trust_remote_code)
        except (OSError, ValueError) as e:  # missing, unreadable, or no tokenizer file at all
            raise UserError(f"could not load a tokenizer from {name}: {' '.join(str(e).split())[:200]}") from None
    kind = pretrain_args.tokenizer_type if pretrain_args.tokenizer_type != "auto" else run.objective.tokenizer
    tok_dir = Path(training_args.output_dir) / "tokenizer"
    with training_args.main_process_first(desc="tokenizer training"):
        if training_args.process_index != 0 and (tok_dir / "tokenizer.json").exists():
            return AutoTokenizer.from_pretrained(str(tok_dir))
        began = time.time()
        tok = train_tokenizer(run.raw["train"], kind, pretrain_args.tokenizer_vocab_size,
                              lowercase=pretrain_args.lowercase,
                              seq2seq=any(o.bart_specials for o in run.objectives),
                              progress=not training_args.disable_tqdm)
        if training_args.process_index == 0:
            tok.save_pretrained(str(tok_dir))
        logger.info("trained a %s tokenizer with %d tokens in %.1fs", kind, len(tok), time.time() - began)
    return tok


def model(run):
    run.model = load_model(run.model_args, run.pretrain_args, run.tokenizer, run.objective)
    if run.data_args.packing == "documents":
        if "document_ids" not in inspect.signature(run.model.forward).parameters:
            raise UserError(f"--packing documents needs a model that takes document_ids (hfpx-bert); "
                            f"{type(run.model).__name__} does not: convert the checkpoint or use --packing blocks")
        run.model.config.unpadded = bool(run.pretrain_args.unpad)
    if run.pretrain_args.teacher_model_name_or_path:
        distill_setup(run)
    run.max_seq_length = resolve_max_seq_length(run.data_args, run.model,
                                                fresh=run.model_args.model_name_or_path is None)
    logger.info("model %s: %.2fM parameters, vocab %d, max_seq_length %d", run.model.config.model_type,
                sum(p.numel() for p in run.model.parameters()) / 1e6, len(run.tokenizer), run.max_seq_length)
    run.record.update({"model_type": run.model.config.model_type, "max_seq_length": run.max_seq_length,
                       "tokenizer_vocab_sha": vocab_sha(run.tokenizer)})
    if run.saved is not None:
        check_resume_matches(run.resume, run.saved, run.record, run.model)


def distill_setup(run):
    """The frozen teacher (and, with --distill_init_student, the student started from it); recorded in the run."""
    args = run.pretrain_args
    run.teacher = load_teacher(args.teacher_model_name_or_path, run.objective, run.model, run.model_args)
    if args.distill_init_student and run.model_args.model_name_or_path is None:
        init_from_teacher(run.model, run.teacher)
    widths = [getattr(m, "distill_width", None) or m.config.hidden_size for m in (run.model, run.teacher)]
    run.record["distill_projection"] = projected = args.distill_cosine > 0 and widths[0] != widths[1]
    if projected:
        add_projection(run.model, widths[1])
        logger.info("cosine loss between widths %d and %d: through a learned projection", *widths)
    run.record["teacher"] = os.path.abspath(args.teacher_model_name_or_path)
    logger.info("distilling from %s (%s layers) into %s layers", args.teacher_model_name_or_path,
                getattr(run.teacher.config, "num_hidden_layers", "?"), getattr(run.model.config, "num_hidden_layers", "?"))


def prepare_examples(run, raw):
    """One raw DatasetDict as training examples: sentence pairs, or packed blocks of the shortest length any of
    the run's objectives needs; with word starts from each document's own text when one of them wants them."""
    data_args, tok, args = run.data_args, run.tokenizer, run.pretrain_args
    cache = not data_args.overwrite_cache
    starts = None
    if any(o.wants_word_starts(args) for o in run.objectives):
        starts = DocumentWordStarts(tok, args.word_boundaries, args.segmenter)
    if run.objective.examples == "sentences":
        return prepare_sentence_examples(raw, tok, run.max_seq_length, data_args.preprocessing_num_workers, cache,
                                         word_starts=starts)
    length = min(o.block_length(run.max_seq_length, args) for o in run.objectives)
    return tokenize_and_group(raw, tok, length, data_args.line_by_line, data_args.preprocessing_num_workers, cache,
                              word_starts=starts, packing=data_args.packing)


def datasets_(run):
    data_args, training_args = run.data_args, run.training_args
    with training_args.main_process_first(desc="tokenizing and grouping"):
        if run.file_mixture:
            parts = {name: prepare_examples(run, raw) for name, raw in run.raws.items()}
            lm = {"train": build_file_mixture(run.mixture, parts, run.pretrain_args, training_args.seed),
                  "validation": concat_validation(parts)}
        else:
            lm = prepare_examples(run, run.raw)
    run.train_ds = take(lm.get("train"), data_args.max_train_samples)
    run.eval_ds = take(lm.get("validation"), data_args.max_eval_samples)
    if training_args.do_eval and run.eval_ds is None:
        raise UserError("evaluation needs a --validation_file or --validation_split_percentage > 0")
    if run.resume is not None and data_args.streaming and training_args.do_train:
        run.train_ds = skip_consumed(run.train_ds, run.resume, training_args)
    if training_args.do_train and not data_args.streaming and not has_ordinary_token(run.train_ds, run.tokenizer):
        raise UserError("the training data has no token to learn from: every token is a special token "
                        f"({', '.join(run.tokenizer.all_special_tokens[:6])}) or padding")


def collator(run):
    """Each objective's collator (their ValueError is a one-line error), mixed per example for a mixture of
    objectives, tagged with each row's file for a file mixture; and the fixed-masking evaluation collator."""
    try:
        made = {o.name: o.collator(run) for o in run.objectives}
    except ValueError as e:
        raise UserError(" ".join(str(e).split())) from None
    if len(made) > 1:
        run.collator = build_mixture(made, rates=run.mixture.rates or "equal", seed=run.training_args.seed)
    elif run.file_mixture:
        run.collator = TaggedCollator(made[run.objective.name], list(run.mixture.names))
    else:
        run.collator = made[run.objective.name]
    if run.objective.eval_collator is not None and not isinstance(run.collator, (ObjectiveMixtureCollator,
                                                                                   TaggedCollator)):
        run.eval_collator = run.objective.eval_collator(run.collator, run.eval_ds)
    else:
        run.eval_collator = run.collator.for_eval()
    set_masking_rate(run.eval_collator, run.data_args.eval_mlm_probability)  # a copy: training keeps its rate
    schedule = run.data_args.mlm_schedule
    if not schedule.constant:
        if not set_masking_rate(run.collator, schedule.start):
            raise UserError(f"--mlm_probability {schedule.spec}: --objective {run.pretrain_args.objective} has no "
                            "masking rate to schedule")
        run.collator = ScheduledCollator(run.collator, schedule, seed=run.training_args.seed)
    if run.objective.label_names:  # so evaluation computes the loss with every label
        run.training_args.label_names = list(run.objective.label_names)


def trainer(run):
    """The PretrainTrainer, and the run record written before training starts."""
    args = run.training_args
    # the Trainer's own hub sync would push hfpx code-dependent checkpoints during training; we push the stock
    # export with a model card once, at the end
    run.push_to_hub, args.push_to_hub = args.push_to_hub, False
    evaluating = args.do_eval
    scored = evaluating and run.objective.token_accuracy
    run.trainer = PretrainTrainer(
        model=run.model, args=args, data_collator=run.collator, eval_data_collator=run.eval_collator,
        train_dataset=run.train_ds if args.do_train else None, eval_dataset=run.eval_ds if evaluating else None,
        processing_class=run.tokenizer,
        compute_metrics=MaskedTokenAccuracy(most_frequent_token(run.train_ds, run.tokenizer.all_special_ids))
        if scored else None,
        preprocess_logits_for_metrics=(run.objective.metrics or preprocess_logits_for_metrics) if scored else None,
        run_record=run.record, loss_parts=loss_parts(run), teacher=run.teacher,
        distill=dict(alpha=run.pretrain_args.distill_alpha, temperature=run.pretrain_args.distill_temperature,
                     cosine=run.pretrain_args.distill_cosine),
        max_train_minutes=run.pretrain_args.max_train_minutes)
    run.record.update({"train_file": run.data_args.train_file or str(SAMPLE_CORPUS),
                       "dataset_name": run.data_args.dataset_name, "argv": sys.argv})
    if run.trainer.is_world_process_zero():
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / CHECKPOINT_RECORD).write_text(json.dumps(run.record, indent=2))
    if run.owned is not None:
        run.owned.started()  # from here on a failure keeps what is in the output directory
    if run.resume is not None and run.data_args.streaming:
        run.trainer.restore_rng_on_first_step(run.resume)


def loss_parts(run):
    """The objective's logged loss parts, plus the distillation ones when there is a teacher."""
    parts = dict(run.objective.loss_parts)
    if run.teacher is not None:
        if "mlm_loss" not in parts:  # causal and seq2seq students log their own loss beside the distilled one
            parts["lm_loss"] = "lm_loss"
        parts.update(distill_loss="distill_loss", **({"cosine_loss": "cosine_loss"}
                                                    if run.pretrain_args.distill_cosine else {}))
    return parts


def train_and_evaluate(run):
    trainer, streaming = run.trainer, run.data_args.streaming
    if run.training_args.do_train:
        result = trainer.train(resume_from_checkpoint=run.resume)
        check_stopped(trainer)
        trainer.save_model()
        metrics = dict(result.metrics, train_samples=len(run.train_ds) if not streaming else -1)
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        run.results.update(metrics)
    if run.training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(run.eval_ds) if not streaming else -1
        if run.objective.token_accuracy:  # a language model's loss (word2vec's negative sampling is not one)
            metrics["perplexity"] = perplexity(metrics["eval_loss"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        run.results.update(metrics)


def finalize(run):
    """Loss curve, Hub upload (or dry run), and the summary with how to load the model."""
    if not run.trainer.is_world_process_zero():
        return
    out = Path(run.training_args.output_dir)
    title = f"{run.model.config.model_type} {run.pretrain_args.objective}"
    if run.pretrain_args.plot and plot_loss_curve(run.trainer.state.log_history, out / "loss_curve.png", title):
        logger.info("loss curve: %s", out / "loss_curve.png")
    if hasattr(run.model, "word_vectors"):  # word2vec, NNLM: the vectors as a plain matrix, word2vec's text format
        written = save_word2vec_format(run.model.word_vectors().float().cpu(), run.tokenizer, out / WORD_VECTORS)
        logger.info("%d word vectors: %s", written, out / WORD_VECTORS)
    if run.push_to_hub:
        publish(run, out)
    print_summary(out, run.results, time.time() - run.started, run.objective.auto_class, run.objective.kind)


STEPS = (start, data, tokenizer, model, datasets_, collator, trainer, train_and_evaluate, finalize)


def publish(run, out):
    """Build the upload folder (stock export + model card) and push it, unless --hub_dry_run."""
    data_args, training_args, pretrain_args = run.data_args, run.training_args, run.pretrain_args
    source = [data_args.dataset_name or data_args.train_file or f"the package's sample corpus ({SAMPLE_CORPUS.name})"]
    hyper = {"objective": pretrain_args.objective, "max_seq_length": run.max_seq_length,
             "mlm_probability": data_args.mlm_schedule.spec, "learning_rate": training_args.learning_rate,
             "per_device_train_batch_size": training_args.per_device_train_batch_size,
             "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
             "max_steps": training_args.max_steps, "seed": training_args.seed}
    metrics = {k: v for k, v in run.results.items() if k.startswith("eval_") or k == "perplexity"}
    folder = prepare_upload(out, out / "hub_upload", pretrain_args.objective, source, hyper, metrics,
                            repo_id=training_args.hub_model_id, license=pretrain_args.hub_license,
                            pipeline=run.objective.pipeline, description=run.objective.description)
    if pretrain_args.hub_dry_run:
        logger.info("hub dry run: the folder that would be uploaded is %s", folder)
        print(f"hub dry run: would upload {folder} to {training_args.hub_model_id}", flush=True)
        return
    push_folder(folder, training_args.hub_model_id, training_args.hub_token, training_args.hub_private_repo)
    print(f"uploaded {folder} to https://huggingface.co/{training_args.hub_model_id}", flush=True)


def print_summary(out, results, seconds, auto="AutoModelForMaskedLM", kind="encoder"):
    lines = [f"\nDone in {seconds / 60:.1f} min. Results in {out}/"]
    if "eval_accuracy" in results:
        what = "masked-token" if kind == "encoder" else "target-token"
        lines.append(f"  held-out {what} accuracy: {results['eval_accuracy']:.4f}   "
                     f"most-frequent-token baseline: {results.get('eval_baseline_accuracy', float('nan')):.4f}")
        lines.append(f"  held-out perplexity: {results['perplexity']:.2f}   (eval loss {results['eval_loss']:.4f})")
    lines.append("Load it with:\n"
                 "  import hf_pretrain_ext  # registers the hfpx-* model types\n"
                 f"  from transformers import {auto}, AutoTokenizer\n"
                 f"  model = {auto}.from_pretrained({os.fspath(out)!r})\n"
                 f"  tokenizer = AutoTokenizer.from_pretrained({os.fspath(out)!r})")
    print("\n".join(lines), flush=True)


def has_ordinary_token(dataset, tokenizer, column="input_ids"):
    """Whether a tokenized dataset holds any token that is not special (a corpus of "[CLS] [SEP]" strings trains on
    nothing: loss 0, gradient 0)."""
    special = set(tokenizer.all_special_ids)
    if isinstance(dataset, datasets.Dataset):
        rows = (ids for start in range(0, len(dataset), 1000) for ids in dataset[start:start + 1000][column])
    else:  # a mixture of datasets: example by example (the first ordinary token ends the search)
        rows = (dataset[i][column] for i in range(len(dataset)))
    return any(any(i not in special for i in ids) for ids in rows)


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
