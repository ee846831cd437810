"""run_pretrain.py end to end on a cut-down budget, reload in a fresh process, and every bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_pretrain_ext.cli import main
from hfpx_testutils import make_corpus, quick_args

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def run_cli(args):
    return subprocess.run([sys.executable, str(REPO / "run_pretrain.py"), *args], capture_output=True, text=True,
                          env=ENV, timeout=300)


def test_default_job_cut_down(tmp_path, capsys):
    out = tmp_path / "run"
    results = main(quick_args(out))
    for name in ("config.json", "model.safetensors", "tokenizer.json", "eval_results.json", "train_results.json",
                 "loss_curve.png", "hfpx_run.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["model_type"] == "hfpx-bert"
    assert results["eval_masked_tokens"] > 0 and 0 <= results["eval_accuracy"] <= 1
    assert "eval_baseline_accuracy" in results and results["perplexity"] > 1
    printed = capsys.readouterr().out
    assert "most-frequent-token baseline" in printed and "AutoModelForMaskedLM.from_pretrained" in printed

    # reload in a fresh process through the Auto* classes, after `import hf_pretrain_ext`
    code = ("import hf_pretrain_ext, torch\n"
            "from transformers import AutoModelForMaskedLM, AutoTokenizer\n"
            f"m = AutoModelForMaskedLM.from_pretrained({str(out)!r}).eval()\n"
            f"t = AutoTokenizer.from_pretrained({str(out)!r})\n"
            "enc = t('the [MASK] of the king', return_tensors='pt')\n"
            "logits = m(**enc).logits\n"
            "assert logits.shape == (1, enc['input_ids'].shape[1], len(t)), logits.shape\n"
            "print(type(m).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "HfpxBertForMaskedLM"

    # continued pretraining from the saved checkpoint, its tokenizer included
    again = main(quick_args(tmp_path / "run2", "--model_name_or_path", str(out), "--max_seq_length", "32", fresh=False))
    assert again["eval_masked_tokens"] > 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_other_formats_line_by_line(tmp_path, fmt):
    docs = make_corpus(tmp_path / "c.txt", n_docs=40)
    path = tmp_path / f"c.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    else:
        path.write_text("text\n" + "".join(f'"{d}"\n' for d in docs))
    results = main(quick_args(tmp_path / "o", "--train_file", str(path), "--line_by_line"))
    assert results["eval_samples"] == 2  # 5% of 40 documents, one example each


def _bad_inputs(tmp):
    tmp = Path(tmp)
    (tmp / "dir.txt").mkdir()
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    make_corpus(tmp / "ok.txt")
    (tmp / "taken").mkdir()
    (tmp / "taken" / "hfpx_run.json").write_text("{}")
    (tmp / "taken" / "notes.txt").write_text("keep me")
    return [
        (["--train_file", str(tmp / "missing.txt")], "no such file"),
        (["--train_file", str(tmp / "dir.txt")], "is a directory"),
        (["--train_file", str(tmp / "empty.txt")], "file is empty"),
        (["--train_file", str(tmp / "latin1.txt")], "not valid UTF-8"),
        (["--train_file", str(tmp / "ok.txt"), "--max_seq_length", "4096"], "larger than the model's 512 positions"),
        (["--train_file", str(tmp / "ok.txt"), "--objective", "xlnet"], "unknown --objective 'xlnet'"),
        (["--train_file", str(tmp / "ok.txt"), "--output_dir", str(tmp / "taken")], "already holds a previous run"),
    ]


@pytest.mark.parametrize("case", range(7))
def test_bad_input_one_line_error(tmp_path, capsys, case):
    argv, message = _bad_inputs(tmp_path)[case]
    with pytest.raises(SystemExit) as e:  # a later --output_dir wins over quick_args' own
        main(quick_args(tmp_path / "out", *argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "taken" / "config.json").exists()


def test_bad_input_from_the_command_line_has_no_traceback(tmp_path):
    proc = run_cli(["--train_file", str(tmp_path / "missing.txt"), "--output_dir", str(tmp_path / "o")])
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: --train_file {tmp_path / 'missing.txt'}: no such file"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "o").exists()


def test_overwrite_output_dir_keeps_unrelated_files(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    make_corpus(tmp_path / "c.txt")
    main(quick_args(out, "--train_file", str(tmp_path / "c.txt"), "--overwrite_output_dir"))
    assert (out / "notes.txt").read_text() == "keep me" and (out / "model.safetensors").is_file()


def test_continued_pretraining_of_a_stock_roberta_checkpoint(tmp_path):
    """A non-BERT stock model keeps its class and trains through the patched fused loss."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    from hfpx_testutils import tiny_tokenizer
    tok = tiny_tokenizer()
    ckpt = tmp_path / "roberta"
    RobertaForMaskedLM(RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=66,
                                     pad_token_id=tok.pad_token_id)).save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    make_corpus(tmp_path / "c.txt")
    args = quick_args(tmp_path / "o", "--model_name_or_path", str(ckpt), "--train_file", str(tmp_path / "c.txt"),
                      fresh=False)
    results = main(args)
    assert results["train_loss"] > 0 and results["eval_masked_tokens"] > 0
    assert json.loads((tmp_path / "o" / "config.json").read_text())["model_type"] == "roberta"
    with pytest.raises(SystemExit):  # 66 positions minus RoBERTa's offset of 2 leave 64
        main(quick_args(tmp_path / "o2", "--model_name_or_path", str(ckpt), "--train_file",
                        str(tmp_path / "c.txt"), "--max_seq_length", "65", fresh=False))


def test_streaming(tmp_path):
    make_corpus(tmp_path / "t.txt", n_docs=80)
    make_corpus(tmp_path / "v.txt", n_docs=10, seed=1)
    results = main(quick_args(tmp_path / "o", "--train_file", str(tmp_path / "t.txt"), "--validation_file",
                              str(tmp_path / "v.txt"), "--streaming", "--max_train_samples", "40"))
    assert results["eval_masked_tokens"] > 0 and 0 <= results["eval_baseline_accuracy"] <= 1
    assert (tmp_path / "o" / "model.safetensors").is_file()


@pytest.mark.parametrize("entry", ["pretrain", "finetune"])
def test_help_lists_every_flag(entry, capsys):
    """--help must format (argparse %-formats help strings: a bare '%' in one broke it) and name our flags."""
    from hf_pretrain_ext.args import OBJECTIVES
    from hf_pretrain_ext.finetune.cli import main as finetune_main
    with pytest.raises(SystemExit) as e:
        (main if entry == "pretrain" else finetune_main)(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    flags = ["--objective", "--segmenter", "--bart_recipe", "--use_fused_loss", "--mixture"] if entry == "pretrain" \
        else ["--strategy", "--pooling", "--random_init"]
    assert all(f in out for f in flags + ["--learning_rate", "--output_dir"])
    if entry == "pretrain":
        assert all(o in out for o in OBJECTIVES)
