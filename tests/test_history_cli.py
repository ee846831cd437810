"""run_pretrain.py --objective nnlm / skipgram / cbow / bilm end to end (#20): a tiny run trains, evaluates, writes
the word vectors (word2vec, NNLM), reloads through Auto* in a fresh process, resumes exactly; feature-based
fine-tuning from each; their flags are checked in one line."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from hf_pretrain_ext.cli import main
from hfpx_testutils import english_documents, quick_args

ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
SIZES = {"nnlm": "context_size=3,embedding_size=16,hidden_size=32,direct_connections=True",
         "skipgram": "hidden_size=16", "cbow": "hidden_size=16", "bilm": "hidden_size=32"}
AUTO = {"nnlm": "AutoModelForCausalLM", "skipgram": "AutoModelForPreTraining", "cbow": "AutoModelForPreTraining",
        "bilm": "AutoModelForPreTraining"}
MODEL = {"nnlm": ("hfpx-nnlm", "HfpxNNLMForCausalLM", 32), "skipgram": ("hfpx-word2vec", "HfpxWord2VecForPreTraining", 16),
         "cbow": ("hfpx-word2vec", "HfpxWord2VecForPreTraining", 16), "bilm": ("hfpx-elmo", "HfpxElmoForPreTraining", 32)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "docs.txt"
    path.write_text("\n\n".join(english_documents(60, seed=4)) + "\n", encoding="utf-8")
    return path


def args(out, objective, corpus, *extra):
    return quick_args(out, "--objective", objective, "--train_file", str(corpus), "--max_seq_length", "48",
                      "--tokenizer_vocab_size", "300", "--config_overrides", SIZES[objective], "--learning_rate",
                      "0.01", "--validation_split_percentage", "10", *extra, fresh=False)


# the suite's 6 minutes: skip-gram by default; NNLM and ELMo are also pretrained by run_pretrain.py in the
# distillation and fine-tuning tests
@pytest.mark.parametrize("objective", [pytest.param("nnlm", marks=pytest.mark.slow), "skipgram",
                                       pytest.param("cbow", marks=pytest.mark.slow),
                                       pytest.param("bilm", marks=pytest.mark.slow)])
def test_end_to_end_and_reload_in_a_fresh_process(tmp_path, corpus, objective):
    out = tmp_path / objective
    res = main(args(out, objective, corpus, "--max_steps", "6", "--logging_steps", "1"))
    model_type, class_name, width = MODEL[objective]
    assert json.loads((out / "config.json").read_text())["model_type"] == model_type
    assert 0 < res["train_loss"] < 20 and 0 < res["eval_loss"] < 20
    assert ("perplexity" in res) == (objective in ("nnlm", "bilm"))  # negative sampling's loss is not one
    losses = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(losses) == 6 and all(0 < x < 20 for x in losses)  # falling: tests/test_word2vec.py, test_nnlm.py
    if objective != "bilm":  # word vectors of word2vec (its vectors) and NNLM (C)
        header, first = (out / "word_vectors.txt").read_text().splitlines()[:2]
        n, dim = map(int, header.split())
        assert dim == 16 and n > 100 and len(first.split()) == dim + 1
    else:
        assert not (out / "word_vectors.txt").exists()
    code = ("import sys, torch, hf_pretrain_ext, transformers\n"
            f"m = getattr(transformers, '{AUTO[objective]}').from_pretrained(sys.argv[1]).eval()\n"
            "base = transformers.AutoModel.from_pretrained(sys.argv[1])\n"
            "out = base(torch.tensor([[5, 6, 7]]))\n"
            "print(type(m).__name__, tuple(out.last_hidden_state.shape))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[0] == f"{class_name} (1, 3, {width})", proc.stdout


def test_skipgram_resumes_exactly(tmp_path, corpus):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    flags = ("--max_steps", "6", "--save_steps", "3", "--logging_steps", "1", "--eval_strategy", "no", "--do_train")
    main(args(whole, "skipgram", corpus, *flags))
    shutil.copytree(whole, cut, ignore=shutil.ignore_patterns("checkpoint-6"))
    (cut / "model.safetensors").unlink()
    main(args(cut, "skipgram", corpus, *flags, "--resume_from_checkpoint", "True"))
    strip = lambda out: [(h["step"], h["loss"]) for h in json.loads(  # noqa: E731
        (out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert strip(cut) == strip(whole)
    a, b = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
    assert all(a[k].equal(b[k]) for k in a)


@pytest.mark.parametrize("flags, message", [
    (["--objective", "skipgram", "--w2v_window", "0"], "--w2v_window and --w2v_negatives must be at least 1"),
    (["--objective", "clm", "--w2v_negatives", "3"], "is a word2vec option"),
    (["--objective", "cbow", "--streaming", "--validation_file", "x.txt"], "cannot stream"),
])
def test_bad_flags_are_one_line_errors(tmp_path, capsys, corpus, flags, message):
    with pytest.raises(SystemExit) as e:
        main(quick_args(tmp_path / "o", "--train_file", str(corpus), *flags))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and message in err[0], err


@pytest.fixture(scope="module")
def history_checkpoints(tmp_path_factory, corpus):
    """checkpoint(objective): a 10-step pretraining run of it, made on first use."""
    root, made = tmp_path_factory.mktemp("history"), set()

    def checkpoint(objective):
        if objective not in made:
            main(args(root / objective, objective, corpus, "--max_steps", "10", "--eval_strategy", "no",
                      "--do_train"))
            made.add(objective)
        return root / objective
    return checkpoint


@pytest.mark.parametrize("objective, pooling", [pytest.param("nnlm", "auto", marks=pytest.mark.slow),
                                               pytest.param("skipgram", "mean", marks=pytest.mark.slow),
                                               ("skipgram", "attention"), ("bilm", "auto")])
def test_feature_based_fine_tuning_from_the_history_models(history_checkpoints, tmp_path, objective, pooling):
    from finetune_testutils import labelled_rows, write_tsv
    from hf_pretrain_ext.finetune import load_finetuned
    from hf_pretrain_ext.finetune.cli import main as finetune
    write_tsv(tmp_path / "train.tsv", labelled_rows(64, seed=0))
    write_tsv(tmp_path / "dev.tsv", labelled_rows(24, seed=1))
    out = tmp_path / "ft"
    results = finetune(["--model_name_or_path", str(history_checkpoints(objective)), "--strategy", "feature_based",
                        "--pooling", pooling, "--train_file", str(tmp_path / "train.tsv"), "--validation_file",
                        str(tmp_path / "dev.tsv"), "--output_dir", str(out), "--num_train_epochs", "8",
                        "--per_device_train_batch_size", "16", "--learning_rate", "2e-2", "--max_seq_length", "32",
                        "--disable_tqdm", "true", "--seed", "0"])
    record = json.loads((out / "hfpx_finetune.json").read_text())
    assert record["strategy"] == "feature_based" and record["wrapped"]
    assert record["pooling"] == {"nnlm": "last", "bilm": "mean"}.get(objective, pooling)
    assert record["trainable_parameters"] < record["total_parameters"]  # the vectors stay frozen
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    import torch
    from transformers import AutoTokenizer
    model = load_finetuned(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    rows = labelled_rows(24, seed=1)
    with torch.no_grad():
        logits = model(**tok([r[0] for r in rows], padding=True, return_tensors="pt")).logits
    accuracy = float((logits.argmax(-1) == torch.tensor([int(r[2]) for r in rows])).float().mean())
    assert accuracy == pytest.approx(results["eval_accuracy"])
