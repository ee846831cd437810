"""run_finetune.py end to end on tiny checkpoints and files: outputs, best checkpoint, reloading, data formats, and
every bad input as one `error:` line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune_testutils import (labelled_rows, single_thread, tiny_bert_checkpoint,  # noqa: F401
                                tiny_gpt2_checkpoint, write_tsv)
from hf_pretrain_ext.finetune import load_finetuned
from hf_pretrain_ext.finetune.args import FinetuneDataArguments, FinetuneModelArguments
from hf_pretrain_ext.finetune.cli import main
from hf_pretrain_ext.finetune.data import load_labelled_data

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ft")
    tiny_bert_checkpoint(d / "bert")
    tiny_bert_checkpoint(d / "stock-bert", stock=True)
    tiny_gpt2_checkpoint(d / "gpt2")
    write_tsv(d / "train.tsv", labelled_rows(64, seed=0))
    write_tsv(d / "dev.tsv", labelled_rows(24, seed=1))
    write_tsv(d / "test.tsv", labelled_rows(24, seed=2))
    return d


def quick(files, out, *extra, model="bert"):
    return ["--model_name_or_path", str(files / model), "--train_file", str(files / "train.tsv"),
            "--validation_file", str(files / "dev.tsv"), "--output_dir", str(out), "--num_train_epochs", "6",
            "--per_device_train_batch_size", "16", "--learning_rate", "5e-3", "--max_seq_length", "32",
            "--logging_steps", "2", "--disable_tqdm", "true", "--seed", "0", *extra]


def predict(model, path, files):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(path)
    rows = labelled_rows(24, seed=1)
    with torch.no_grad():
        logits = model(**tok([r[0] for r in rows], padding=True, return_tensors="pt")).logits
    return float((logits.argmax(-1).numpy() == np.array([int(r[2]) for r in rows])).mean())


def test_end_to_end_pretraining_checkpoint(files, tmp_path, capsys):
    out = tmp_path / "run"
    results = main(quick(files, out, "--test_file", str(files / "test.tsv")))
    printed = capsys.readouterr().out
    assert "no classification head in" in printed and "a fresh one is initialised" in printed
    assert "strategy full:" in printed and "parameters trainable" in printed
    for name in ("config.json", "model.safetensors", "tokenizer.json", "hfpx_finetune.json", "eval_results.json",
                 "test_results.json", "loss_curve.png"):
        assert (out / name).is_file(), name
    assert results["eval_accuracy"] >= 0.9 and results["test_accuracy"] >= 0.9  # an easy task: word halves
    assert set(results) >= {"eval_f1", "eval_mcc", "test_f1", "test_mcc", "trainable_parameters"}
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] and state["best_metric"] == pytest.approx(results["eval_accuracy"])
    # the best model reloads, with our loader and with the stock Auto class, and predicts as evaluated
    assert predict(load_finetuned(out), out, files) == pytest.approx(results["eval_accuracy"])
    from transformers import AutoModelForSequenceClassification
    stock = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert stock.config.id2label == {0: "0", 1: "1"}
    assert predict(stock, out, files) == pytest.approx(results["eval_accuracy"])


@pytest.mark.parametrize("case", ["feature_based", "adapters", "gpt2_lm_loss", "stock_bert_gradual_discriminative"])
def test_strategies_from_the_command_line_and_reload(files, tmp_path, capsys, case):
    extra = {"feature_based": ["--strategy", "feature_based"],
             "adapters": ["--strategy", "adapters", "--adapter_size", "8"],
             "gpt2_lm_loss": ["--lm_loss_weight", "0.5"],
             "stock_bert_gradual_discriminative": ["--gradual_unfreezing", "--unfreeze_every_n_steps", "2",
                                                   "--layer_lr_decay", "0.8"]}[case]
    model = {"gpt2_lm_loss": "gpt2", "stock_bert_gradual_discriminative": "stock-bert"}.get(case, "bert")
    out = tmp_path / "run"
    results = main(quick(files, out, *extra, model=model))
    printed = capsys.readouterr().out
    assert "parameters trainable" in printed
    record = json.loads((out / "hfpx_finetune.json").read_text())
    assert record["trainable_parameters"] == results["trainable_parameters"]
    assert (record["trainable_parameters"] < record["total_parameters"]) == (case != "gpt2_lm_loss")
    reloaded = load_finetuned(out)
    assert predict(reloaded, out, files) == pytest.approx(results["eval_accuracy"])
    if case == "gpt2_lm_loss":
        state = json.loads((out / "trainer_state.json").read_text())
        assert any("lm_loss" in h for h in state["log_history"])
    if case.startswith("stock"):
        assert record["unfreezing_schedule"][:2] == [[2, 2], [4, 3]]


def test_random_init_keeps_the_architecture(files, tmp_path, capsys):
    from safetensors.torch import load_file
    results = main(quick(files, tmp_path / "r", "--random_init", "--num_train_epochs", "1"))
    assert "--random_init" in capsys.readouterr().out
    assert results["total_parameters"] == json.loads(
        (tmp_path / "r" / "hfpx_finetune.json").read_text())["total_parameters"]
    a = load_file(files / "bert" / "model.safetensors")["bert.embeddings.LayerNorm.weight"]
    assert a.shape == load_file(tmp_path / "r" / "model.safetensors")["bert.embeddings.LayerNorm.weight"].shape


def test_blank_rows_are_dropped_and_counted(files, tmp_path, caplog):
    rows = labelled_rows(40)
    text = "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, _, y in rows) + "   \t1\nsome words\t\n\t\n"
    (tmp_path / "t.tsv").write_text(text)
    args = quick(files, tmp_path / "o", "--num_train_epochs", "1")
    args[args.index("--train_file") + 1] = str(tmp_path / "t.tsv")
    with caplog.at_level("WARNING", logger="hf_pretrain_ext"):
        results = main(args)
    assert results["train_samples"] == 40
    assert "dropped 2 row(s) with a blank text or label" in caplog.text  # the all-blank line is skipped silently


def _write(path, text, encoding="utf-8"):
    Path(path).write_text(text, encoding=encoding)
    return str(path)


def test_glue_and_clue_layouts(tmp_path):
    # MRPC: BOM, sentence pairs, lone quotes (read with quoting off)
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    mrpc = _write(tmp_path / "mrpc.tsv", header + '1\t1\t2\tHe said "no.\tHe said no.\n0\t3\t4\tA cat.\tA dog "x".\n',
                  "utf-8-sig")
    data = load_labelled_data(FinetuneDataArguments(train_file=mrpc, validation_file=mrpc),
                              FinetuneModelArguments(model_name_or_path="x"), 0)
    assert data.is_pair and data.label_list == ["0", "1"]
    assert data.splits["train"][0] == ('He said "no.', "He said no.", "1")
    # TNEWS: no header, string labels
    tnews = _write(tmp_path / "tnews.tsv",
                   "上课时手机响\tnews_edu\n公司公告\tnews_finance\n二手房\tnews_house\n")
    data = load_labelled_data(FinetuneDataArguments(train_file=tnews, column_names="sentence,label"),
                              FinetuneModelArguments(model_name_or_path="x"), 0)
    assert data.label_list == ["news_edu", "news_finance", "news_house"] and not data.is_pair
    # the same file with a header row equal to --column_names: the header is not read as an example
    with_header = _write(tmp_path / "tnews_h.tsv", "sentence\tlabel\n" + open(tnews, encoding="utf-8").read())
    data = load_labelled_data(FinetuneDataArguments(train_file=with_header, column_names="sentence,label"),
                              FinetuneModelArguments(model_name_or_path="x"), 0)
    assert data.label_list == ["news_edu", "news_finance", "news_house"] and len(data.splits["train"]) == 3
    # CLUE JSON lines, numeric labels sorted as numbers; ChnSentiCorp's label/text_a header; csv
    jsonl = _write(tmp_path / "d.jsonl", "".join(json.dumps({"label": y, "sentence": s, "keywords": ""},
                                                             ensure_ascii=False) + "\n"
                                                  for y, s in (("102", "江疏影"), ("110", "以色列"), ("9", "x"))))
    data = load_labelled_data(FinetuneDataArguments(train_file=jsonl), FinetuneModelArguments(model_name_or_path="x"),
                              0)
    assert data.label_list == ["9", "102", "110"] and data.label_column == "label"
    chn = _write(tmp_path / "chn.tsv", "label\ttext_a\n1\t這間酒店環境不錯\n0\t房間太小\n")
    data = load_labelled_data(FinetuneDataArguments(train_file=chn), FinetuneModelArguments(model_name_or_path="x"), 0)
    assert data.text_column == "text_a" and data.splits["train"][0] == ("這間酒店環境不錯", None, "1")
    csv_file = _write(tmp_path / "d.csv", 'text,label\n"a, quoted text",pos\nplain,neg\n')
    data = load_labelled_data(FinetuneDataArguments(train_file=csv_file),
                              FinetuneModelArguments(model_name_or_path="x"), 0)
    assert data.splits["train"][0] == ("a, quoted text", None, "pos")


def _bad(files, tmp):
    tmp = Path(tmp)
    no_label = _write(tmp / "nolabel.tsv", "sentence\tscore\na b\t1\nc d\t0\n")
    unseen = _write(tmp / "unseen.tsv", "sentence\tlabel\nthe fox\t1\nthe dog\t2\nthe cat\t7\n")
    blank = _write(tmp / "blank.tsv", "sentence\tlabel\n \t1\nx\t\n")
    headerless = _write(tmp / "headerless.tsv", "the fox\tnews_edu\nthe dog\tnews_house\n")
    one_label = _write(tmp / "one.tsv", "sentence\tlabel\nthe fox\t1\nthe dog\t1\n")
    (tmp / "taken").mkdir()
    (tmp / "taken" / "notes.txt").write_text("keep me")
    train = str(files / "train.tsv")
    return [
        (["--train_file", no_label], "no label column (looked for label, Quality, label_desc"),
        (["--validation_file", unseen], "label(s) '2', '7' never occur in the training data"),
        (["--train_file", blank], "no row with both a text and a label"),
        (["--train_file", headerless], "or --column_names for a file without a header"),
        (["--train_file", one_label], "only one label ('1')"),
        (["--label_column", "gold"], "no label column 'gold'"),
        (["--lm_loss_weight", "0.5"], "--lm_loss_weight needs a causal (GPT-style) backbone"),
        (["--strategy", "adapters", "--gradual_unfreezing"], "--gradual_unfreezing unfreezes the backbone"),
        (["--model_name_or_path", str(tmp / "nowhere")], "could not load a config from"),
        (["--output_dir", str(tmp / "taken")], "already holds files"),
        (["--metric_for_best_model", "auc"], "unknown --metric_for_best_model 'auc'"),
        (["--train_file", str(tmp / "missing.tsv")], "no such file"),
        (["--train_file", train.replace(".tsv", ".parquet")], "unsupported extension"),
    ]


@pytest.mark.parametrize("case", range(13))
def test_bad_input_one_line_error(files, tmp_path, capsys, case):
    argv, message = _bad(files, tmp_path)[case]
    with pytest.raises(SystemExit) as e:  # later flags win over quick()'s own
        main(quick(files, tmp_path / "out", *argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "keep me"


def test_missing_validation_file_and_script_without_traceback(files, tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "run_finetune.py"), "--model_name_or_path",
                           str(files / "bert"), "--train_file", str(files / "train.tsv"), "--output_dir",
                           str(tmp_path / "o")], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("error: keeping the best checkpoint needs a --validation_file")
    assert "Traceback" not in proc.stdout + proc.stderr


def test_dataset_name_local_folder(files, tmp_path):
    """--dataset_name with a local folder of csv files (no Hub): splits by file name, integer labels."""
    d = tmp_path / "ds"
    d.mkdir()
    for split, seed, n in (("train", 0, 64), ("validation", 1, 24)):
        rows = labelled_rows(n, seed=seed)
        (d / f"{split}.csv").write_text("sentence,label\n" + "".join(f"{t},{y}\n" for t, _, y in rows))
    args = quick(files, tmp_path / "o", "--num_train_epochs", "1")
    i = args.index("--train_file")
    del args[i:i + 4]  # no --train_file / --validation_file
    results = main([*args, "--dataset_name", str(d)])
    assert results["eval_samples"] == 24
    assert json.loads((tmp_path / "o" / "hfpx_finetune.json").read_text())["labels"] == ["0", "1"]
