"""`run_finetune.py` / `hf-finetune`: fine-tune a checkpoint for sequence classification (run_glue.py-style flow).

parse arguments -> check the output directory -> read and check the labelled data -> tokenizer (the checkpoint's)
-> model for the strategy (fresh head when the checkpoint has none) -> freeze what the strategy freezes, print the
trainable-parameter count -> tokenize inside `main_process_first()` -> FinetuneTrainer: evaluate every epoch,
keep the best checkpoint (--metric_for_best_model) -> save model, tokenizer, hfpx_finetune.json, metrics ->
score the test file with the best model. User mistakes end as one `error:` line and exit status 2.
"""
import json
import logging
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, DataCollatorWithPadding, HfArgumentParser, set_seed

from ..entry import (check_output_dir, check_stopped, parse_dataclasses, resolve_max_seq_length, resolve_resume,
                   run_command, setup_logging)
from ..errors import UserError
from ..plotting import plot_loss_curve
from .adapters import adapter_parameter_names
from .args import FinetuneDataArguments, FinetuneModelArguments, FinetuneTrainingArguments, StrategyArguments
from .data import load_labelled_data, tokenize_split
from .metrics import ClassificationMetrics, preprocess_logits_for_metrics
from .modeling import RECORD, build_model, head_parameter_names
from .strategies import GradualUnfreezingCallback, count_trainable, describe_trainable, set_trainable
from .trainer import FinetuneTrainer

logger = logging.getLogger("hf_pretrain_ext")
ARG_CLASSES = (FinetuneModelArguments, FinetuneDataArguments, StrategyArguments, FinetuneTrainingArguments)


def make_parser():
    return HfArgumentParser(ARG_CLASSES)


def parse_args(argv=None):
    """Parse a command line, or a single .json/.yaml config file, into the four argument dataclasses."""
    return parse_dataclasses(make_parser(), argv)


def load_tokenizer(model_args):
    name = model_args.tokenizer_name or model_args.model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, cache_dir=model_args.cache_dir, token=model_args.token,
                                                  trust_remote_code=model_args.trust_remote_code)
    except (OSError, ValueError) as e:
        raise UserError(f"could not load a tokenizer from {name}: {' '.join(str(e).split())[:200]}") from None
    if tokenizer.pad_token is None:  # GPT-2 style: padding is masked out, any id will do
        if tokenizer.eos_token is None:
            raise UserError(f"the tokenizer of {name} has neither a pad nor an end-of-text token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def apply_strategy(model, strategy_args):
    """Freeze what the strategy freezes; returns the GradualUnfreezingCallback when one is used."""
    head = head_parameter_names(model)
    if strategy_args.strategy == "feature_based":
        set_trainable(model, head)
    elif strategy_args.strategy == "adapters":
        set_trainable(model, head + adapter_parameter_names(model))
    else:
        set_trainable(model, [n for n, _ in model.named_parameters()])
    label = f"strategy {strategy_args.strategy}"
    if strategy_args.layer_lr_decay != 1.0:
        label += f", layer_lr_decay {strategy_args.layer_lr_decay}"
    callback = None
    if strategy_args.gradual_unfreezing:
        callback = GradualUnfreezingCallback(model, strategy_args.unfreeze_every_n_steps)
        label += ", gradual unfreezing (start: head only)"
    describe_trainable(model, label)
    return callback


def main(argv=None):
    return run_command(parse_args, run, argv)


def run(model_args, data_args, strategy_args, training_args, owned=None):
    setup_logging(training_args)
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False
    last_checkpoint = check_output_dir(training_args, strategy_args)
    set_seed(training_args.seed)
    started = time.time()

    data = load_labelled_data(data_args, model_args, training_args.seed)
    if "validation" not in data.splits and (training_args.eval_strategy != "no" or
                                             training_args.load_best_model_at_end):
        raise UserError("keeping the best checkpoint needs a --validation_file; or pass --eval_strategy no "
                        "--save_strategy no --load_best_model_at_end false")
    model, record = build_model(model_args, strategy_args, data.label_list)
    tokenizer = load_tokenizer(model_args)
    max_seq_length = resolve_max_seq_length(data_args, model, fresh=False)
    logger.info("labels (%d): %s; %s; max_seq_length %d", len(data.label_list), ", ".join(data.label_list[:20]),
                "sentence pairs" if data.is_pair else "single sentences", max_seq_length)
    unfreezing = apply_strategy(model, strategy_args)
    trainable, total = count_trainable(model)

    with training_args.main_process_first(desc="tokenizing"):
        encoded = {split: tokenize_split(rows, tokenizer, data.label2id, max_seq_length)
                   for split, rows in data.splits.items()}
    trainer = FinetuneTrainer(
        model=model, args=training_args, data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=encoded["train"], eval_dataset=encoded.get("validation"), processing_class=tokenizer,
        compute_metrics=ClassificationMetrics(len(data.label_list)),
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        callbacks=[unfreezing] if unfreezing else None, layer_lr_decay=strategy_args.layer_lr_decay,
        include_frozen=unfreezing is not None)

    out = Path(training_args.output_dir)
    record.update(text_column=data.text_column, text_pair_column=data.pair_column, label_column=data.label_column,
                  max_seq_length=max_seq_length, trainable_parameters=trainable, total_parameters=total,
                  argv=sys.argv)
    results = {"trainable_parameters": trainable, "total_parameters": total}
    if training_args.do_train:
        # --resume_from_checkpoint True: the newest complete checkpoint; gradual unfreezing replays its schedule
        if owned is not None:
            owned.started()
        train_result = trainer.train(resume_from_checkpoint=resolve_resume(training_args, last_checkpoint))
        check_stopped(trainer)
        trainer.save_model()
        metrics = dict(train_result.metrics, train_samples=len(encoded["train"]))
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        results.update(metrics)
        if unfreezing is not None:
            record["unfreezing_schedule"] = unfreezing.schedule
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        (out / RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False))
    if training_args.do_eval and "validation" in encoded:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(encoded["validation"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        results.update(metrics)
    if "test" in encoded:
        metrics = trainer.evaluate(encoded["test"], metric_key_prefix="test")
        metrics["test_samples"] = len(encoded["test"])
        trainer.log_metrics("test", metrics)
        trainer.save_metrics("test", metrics)
        results.update(metrics)
    if trainer.is_world_process_zero():
        plot_loss_curve(trainer.state.log_history, out / "loss_curve.png", f"fine-tuning ({strategy_args.strategy})")
        print_summary(out, results, record, time.time() - started)
    return results


def print_summary(out, results, record, seconds):
    lines = [f"\nDone in {seconds / 60:.1f} min. Results in {out}/",
             f"  strategy {record['strategy']}: {record['trainable_parameters']:,} of "
             f"{record['total_parameters']:,} parameters trainable"
             + (" at the start (gradual unfreezing)" if record["gradual_unfreezing"] else "")]
    for split in ("eval", "test"):
        if f"{split}_accuracy" in results:
            lines.append(f"  {'validation' if split == 'eval' else 'test'}: accuracy {results[f'{split}_accuracy']:.4f}"
                         f"  F1 {results[f'{split}_f1']:.4f}  MCC {results[f'{split}_mcc']:.4f}")
    lines.append("Load it with:\n"
                 "  from hf_pretrain_ext.finetune import load_finetuned\n"
                 f"  model = load_finetuned({str(out)!r})")
    print("\n".join(lines), flush=True)
