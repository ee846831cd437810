"""run_pretrain.py --objective bart / t5 / clm end to end on a tiny budget, reload through Auto* in a fresh process,
continued pretraining from a local checkpoint, export to stock classes, mixtures, and bad input."""
import json
import os
import subprocess
import sys

import pytest

from hf_pretrain_ext.cli import main
from hfpx_testutils import english_documents, quick_args

ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
OVERRIDES = {"clm": "n_embd=32,n_layer=1,n_head=2,n_inner=64",
             "bart": "d_model=32,encoder_layers=1,decoder_layers=1,encoder_ffn_dim=64,decoder_ffn_dim=64",
             "t5": "d_model=32,d_kv=16,d_ff=64,num_layers=1,num_decoder_layers=1"}
MODEL_TYPES = {"clm": "hfpx-gpt", "bart": "hfpx-bart", "t5": "hfpx-t5"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "docs.txt"
    path.write_text("\n\n".join(english_documents(80, seed=3)) + "\n", encoding="utf-8")
    return path


def args(out, objective, corpus, *extra, fresh=True):
    base = quick_args(out, "--objective", objective, "--train_file", str(corpus), "--max_seq_length", "48",
                      "--validation_split_percentage", "10", fresh=False)
    model = ["--tokenizer_vocab_size", "300", "--config_overrides", OVERRIDES[objective]] if fresh else []
    return base + model + list(extra)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("runs")
    results = {o: main(args(root / o, o, corpus)) for o in ("clm", "bart", "t5")}
    return root, results


@pytest.mark.parametrize("objective", ["clm", "bart", "t5"])
def test_end_to_end(trained, objective):
    root, results = trained
    out, res = root / objective, trained[1][objective]
    assert json.loads((out / "config.json").read_text())["model_type"] == MODEL_TYPES[objective]
    assert 0 < res["train_loss"] < 20 and 0 < res["eval_loss"] < 20 and res["perplexity"] > 1
    assert res["eval_masked_tokens"] > 0 and 0 <= res["eval_accuracy"] <= 1
    assert (out / "tokenizer.json").is_file() and (out / "loss_curve.png").is_file()


def test_reload_in_a_fresh_process(trained):
    root, _ = trained
    code = ("import sys, hf_pretrain_ext, torch\n"
            "from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer\n"
            "root = sys.argv[1]\n"
            "for name, auto in (('clm', AutoModelForCausalLM), ('bart', AutoModelForSeq2SeqLM), "
            "('t5', AutoModelForSeq2SeqLM)):\n"
            "    m = auto.from_pretrained(f'{root}/{name}').eval()\n"
            "    t = AutoTokenizer.from_pretrained(f'{root}/{name}')\n"
            "    text = 'the quick <extra_id_0> fox' if name == 't5' else 'the quick <mask> fox'\n"
            "    out = m.generate(**t(text, return_tensors='pt'), max_new_tokens=5, do_sample=False)\n"
            "    assert out.shape[1] >= 2\n"
            "    print(type(m).__name__, len(t))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, env=ENV,
                          cwd=root)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.strip().splitlines()]
    assert names == ["HfpxGPTForCausalLM", "HfpxBartForConditionalGeneration", "HfpxT5ForConditionalGeneration"]
    assert int(proc.stdout.strip().splitlines()[2].split()[1]) >= 400  # 300 + 100 sentinels


def test_continued_pretraining_and_export(trained, corpus, tmp_path):
    from transformers import AutoConfig

    from hf_pretrain_ext.export import export_stock
    root, _ = trained
    again = main(args(tmp_path / "t5b", "t5", corpus, "--model_name_or_path", str(root / "t5"), fresh=False))
    assert again["eval_masked_tokens"] > 0
    for objective, stock in (("clm", "gpt2"), ("bart", "bart"), ("t5", "t5")):
        export_stock(root / objective, tmp_path / f"{objective}-stock")
        assert AutoConfig.from_pretrained(tmp_path / f"{objective}-stock").model_type == stock


def test_objective_mixture_logs_each_loss(corpus, tmp_path):
    out = tmp_path / "mix"
    main(args(out, "bart", corpus, "--mixture", "bart=0.5,t5=0.5", "--logging_steps", "1"))
    logs = json.loads((out / "trainer_state.json").read_text())["log_history"]
    parts = {k for entry in logs for k in entry if k.endswith("_loss")}
    assert {"bart_loss", "t5_loss"} <= parts


def test_file_mixture_with_cap_and_temperature(corpus, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("\n\n".join(english_documents(30, seed=9)) + "\n", encoding="utf-8")
    out = tmp_path / "files"
    main(args(out, "clm", corpus, "--mixture", f"{corpus},{small}", "--mixture_cap", "10",
              "--mixture_temperature", "2", "--logging_steps", "1"))
    logs = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert {f"{corpus}_loss", f"{small}_loss"} & {k for entry in logs for k in entry}


@pytest.mark.parametrize("extra, message", [
    (["--mixture", "bart=0.5,t5=0.6"], "sum to 1"),
    (["--mixture", "bart=0.5,clm=0.5"], "different model families"),
    (["--mixture", "bart"], "at least two components"),
    (["--noise_density", "1.5"], "--noise_density must be in (0, 1)"),
    (["--model_type", "hfpx-bart", "--config_overrides", "d_model=32"], "needs a decoder-only model"),
])
def test_bad_input(corpus, tmp_path, capsys, extra, message):
    objective = "clm" if "hfpx-bart" in extra else "bart"
    argv = args(tmp_path / "o", objective, corpus, fresh=False) + ["--tokenizer_vocab_size", "300"] + extra
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_empty_mixture_file_is_a_clear_error(corpus, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(SystemExit):
        main(args(tmp_path / "o", "clm", corpus, "--mixture", f"{corpus},{empty}"))
    assert "file is empty" in capsys.readouterr().err


@pytest.mark.parametrize("objective", ["clm", "bart", "t5"])
def test_resume_matches_uninterrupted(tmp_path, corpus, objective):
    """Resume from checkpoint-4 of an 8-step run: same later losses and bitwise-equal final weights."""
    import shutil

    from safetensors.torch import load_file

    from hfpx_testutils import tiny_bpe_tokenizer
    tiny_bpe_tokenizer(sentinels=objective == "t5").save_pretrained(tmp_path / "tok")

    def run(out, *extra):
        return main(quick_args(out, "--objective", objective, "--train_file", str(corpus), "--max_seq_length", "48",
                               "--tokenizer_name", str(tmp_path / "tok"), "--config_overrides", OVERRIDES[objective],
                               "--max_steps", "8", "--save_steps", "4", "--logging_steps", "1", "--do_train",
                               "--save_total_limit", "3", *extra, fresh=False))

    def losses(out):
        state = json.loads((out / "trainer_state.json").read_text())
        return [(h["step"], h["loss"]) for h in state["log_history"] if "loss" in h]

    run(tmp_path / "whole")
    shutil.copytree(tmp_path / "whole" / "checkpoint-4", tmp_path / "cut" / "checkpoint-4")
    run(tmp_path / "cut", "--resume_from_checkpoint", "True")
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
