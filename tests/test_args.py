"""Argument parsing: run_mlm.py names, defaults, config files, rejected values."""
import json

import pytest

from hf_pretrain_ext.cli import parse_args
from hf_pretrain_ext.errors import UserError


def test_defaults_train_and_evaluate():
    model_args, data_args, pretrain_args, training_args = parse_args([])
    assert training_args.do_train and training_args.do_eval
    assert pretrain_args.objective == "mlm" and data_args.mlm_probability == 0.15
    # model_type None: the objective's own family (hfpx-bert for mlm), #15
    assert model_args.model_name_or_path is None and model_args.model_type is None
    assert training_args.output_dir == "output/hfpx-bert-mlm"


def test_run_mlm_names_and_training_flags():
    names = ["--model_name_or_path", "m", "--model_type", "bert", "--config_name", "c", "--tokenizer_name", "t",
             "--train_file", "a.txt", "--validation_file", "b.txt", "--validation_split_percentage", "7",
             "--dataset_config_name", "x", "--max_seq_length", "64", "--line_by_line", "--mlm_probability",
             "0.3", "--preprocessing_num_workers", "2", "--max_train_samples", "5", "--max_eval_samples", "6",
             "--streaming", "--config_overrides", "hidden_size=64", "--objective", "mlm",
             "--tokenizer_vocab_size", "500", "--do_eval", "--gradient_accumulation_steps", "4",
             "--lr_scheduler_type", "cosine", "--seed", "7", "--output_dir", "o"]
    model_args, data_args, pretrain_args, training_args = parse_args(names)
    assert (model_args.model_name_or_path, model_args.config_overrides) == ("m", "hidden_size=64")
    assert data_args.line_by_line and data_args.streaming and data_args.mlm_probability == 0.3
    assert data_args.validation_split_percentage == 7 and data_args.max_eval_samples == 6
    assert pretrain_args.tokenizer_vocab_size == 500
    assert training_args.do_eval and not training_args.do_train  # explicit flags are respected
    assert training_args.gradient_accumulation_steps == 4 and training_args.seed == 7


def test_eval_strategy_alone_still_trains():
    # TrainingArguments sets do_eval for --eval_strategy steps; that used to make a run evaluate and never train
    *_, training_args = parse_args(["--eval_strategy", "steps", "--eval_steps", "5"])
    assert training_args.do_train and training_args.do_eval
    *_, training_args = parse_args(["--eval_strategy=steps", "--eval_steps", "5", "--do_eval"])
    assert training_args.do_eval and not training_args.do_train


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_single_config_file(tmp_path, suffix):
    cfg = {"objective": "mlm", "mlm_probability": 0.2, "max_steps": 3, "output_dir": str(tmp_path / "o")}
    path = tmp_path / f"cfg{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(cfg))
    else:
        path.write_text("".join(f"{k}: {v}\n" for k, v in cfg.items()))
    _, data_args, _, training_args = parse_args([str(path)])
    assert data_args.mlm_probability == 0.2 and training_args.max_steps == 3


@pytest.mark.parametrize("argv, message", [
    (["--objective", "nope"], "unknown --objective 'nope'"),
    (["--mlm_probability", "1.5"], "--mlm_probability must be in (0, 1)"),
    (["--train_file", "corpus.docx"], "unsupported extension"),
    (["--max_seq_length", "2"], "--max_seq_length must be at least 8"),
    (["--tokenizer_vocab_size", "10"], "--tokenizer_vocab_size must be at least 100"),
])
def test_rejected_values(argv, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_args(argv)


def test_config_file_with_unknown_key(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"no_such_flag": 1}))
    with pytest.raises(UserError, match="no_such_flag"):
        parse_args([str(path)])
