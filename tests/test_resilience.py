"""Runs that survive: exact resume after kill -9, SIGTERM, non-finite loss, full disk, hostile config and text."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from hf_pretrain_ext.cli import main
from hfpx_testutils import make_corpus, quick_args, tiny_tokenizer

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")


def run_args(tmp_path, out, steps=12, *extra):
    make_corpus(tmp_path / "c.txt", n_docs=120)
    args = quick_args(out, "--train_file", str(tmp_path / "c.txt"), "--max_steps", str(steps), "--save_steps", "4",
                      "--logging_steps", "1", "--save_total_limit", "2", "--eval_strategy", "no", "--do_train",
                      *extra)
    return args


def losses(out):
    state = json.loads((Path(out) / "trainer_state.json").read_text())
    return [(h["step"], h["loss"]) for h in state["log_history"] if "loss" in h]


def start(args):
    return subprocess.Popen([sys.executable, str(REPO / "run_pretrain.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV)


def wait_for(path, proc, timeout=120):
    t0 = time.time()
    while not Path(path).exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.05)


def test_kill_9_and_resume_matches_uninterrupted(tmp_path):
    # one tokenizer for both runs: tokenizer training breaks frequency ties differently from run to run
    tiny_tokenizer().save_pretrained(tmp_path / "tok")
    tok = ("--tokenizer_name", str(tmp_path / "tok"))
    whole = tmp_path / "whole"
    main(run_args(tmp_path, whole, 60, *tok))
    cut = tmp_path / "cut"
    proc = start(run_args(tmp_path, cut, 60, *tok))  # long enough that the kill lands mid-run
    wait_for(cut / "checkpoint-8", proc)
    proc.send_signal(signal.SIGKILL)  # between checkpoints (or while writing the next one)
    proc.wait()
    assert (cut / "checkpoint-8" / "model.safetensors").is_file()
    assert not (cut / "model.safetensors").exists()
    main(run_args(tmp_path, cut, 60, *tok, "--resume_from_checkpoint", "True"))
    a, b = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].equal(b[k]), k  # bitwise on CPU: same data order, masks, dropout and optimizer state
    assert losses(cut) == losses(whole)
    assert sorted(p.name for p in cut.glob("checkpoint-*")) == ["checkpoint-56", "checkpoint-60"]


def test_sigterm_saves_and_exits(tmp_path):
    out = tmp_path / "o"
    proc = start(run_args(tmp_path, out, 2000, "--save_steps", "1000"))
    wait_for(out / "hfpx_run.json", proc)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stdout
    assert "stopped by SIGTERM" in stdout and "Traceback" not in stdout
    ckpts = list(out.glob("checkpoint-*"))
    assert len(ckpts) == 1 and (ckpts[0] / "trainer_state.json").is_file()
    step = int(ckpts[0].name.split("-")[1])
    assert 0 < step < 2000


def test_non_finite_loss_stops_without_saving(tmp_path, capsys):
    out = tmp_path / "o"
    # a huge learning rate and no clipping blow the loss up within a few steps
    args = run_args(tmp_path, out, 200, "--learning_rate", "1e8", "--max_grad_norm", "0", "--warmup_steps", "0",
                    "--save_steps", "1", "--save_total_limit", "1000")
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: loss became") and "stopped without saving" in err
    bad = int(err.split(" at step ")[1].split(";")[0])
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert saved == list(range(1, bad)), (bad, saved)
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("limit", ["2", "1"])  # with a limit of 1 the failed save must not cost the only good one
def test_disk_full_keeps_previous_checkpoint(tmp_path, capsys, monkeypatch, limit):
    from transformers import Trainer
    calls = {"n": 0}
    original = Trainer._save_optimizer_and_scheduler

    def failing(self, output_dir):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", failing)
    out = tmp_path / "o"
    with pytest.raises(SystemExit):
        main(run_args(tmp_path, out, 12, "--save_total_limit", limit))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "could not save checkpoint-8 (disk full)" in err and "checkpoint-4 is intact" in err
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]
    assert not (out / ".staging").exists()
    assert (out / "checkpoint-4" / "optimizer.pt").is_file()


def test_yaml_config_with_code_tags_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"output_dir: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SystemExit):
        main([str(cfg)])
    assert "not plain YAML" in capsys.readouterr().err and not marker.exists()


def test_config_that_does_not_fit(tmp_path, capsys):
    make_corpus(tmp_path / "c.txt")
    with pytest.raises(SystemExit):
        main(quick_args(tmp_path / "o", "--train_file", str(tmp_path / "c.txt"), "--config_overrides",
                        "hidden_size=30,num_attention_heads=4"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit" in err[0] and "hidden size (30)" in err[0]


@pytest.mark.parametrize("line_mb", [3, pytest.param(50, marks=pytest.mark.slow)])
def test_hostile_text(tmp_path, line_mb):
    """NUL bytes, mixed line endings, whitespace-only documents, control characters and one long line (3 MB, cut
    into pieces for the tokenizer like any line over LONG_TEXT_CHARS; 50 MB in the slow run, ~2 GB peak RSS)."""
    big = " ".join(["lorem ipsum dolor sit amet"] * (line_mb * 1_000_000 // 27))
    text = ("first doc\x00 with a NUL\r\n\r\n   \t  \n\nsecond\rdoc with old-Mac newline\n\n\x0b\x0c\n\n"
            + big + "\n\n" + "\n\n".join(f"tail doc {i}" for i in range(40)) + "\n")
    path = tmp_path / "hostile.txt"
    path.write_text(text, encoding="utf-8")
    results = main(quick_args(tmp_path / "o", "--train_file", str(path), "--max_train_samples", "64"))
    assert results["train_loss"] > 0 and results["eval_masked_tokens"] > 0


def test_tokenizer_larger_than_model_vocab_is_resized(tmp_path):
    from transformers import AutoTokenizer
    from hf_pretrain_ext.models import HfpxBertConfig, HfpxBertForMaskedLM
    from hfpx_testutils import tiny_tokenizer
    tok = tiny_tokenizer()
    ckpt = tmp_path / "small-vocab"
    HfpxBertForMaskedLM(HfpxBertConfig(vocab_size=len(tok) - 20, hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64)).save_pretrained(ckpt)
    tok.save_pretrained(tmp_path / "tok")
    make_corpus(tmp_path / "c.txt")
    main(quick_args(tmp_path / "o", "--model_name_or_path", str(ckpt), "--tokenizer_name", str(tmp_path / "tok"),
                    "--train_file", str(tmp_path / "c.txt"), fresh=False))
    assert json.loads((tmp_path / "o" / "config.json").read_text())["vocab_size"] == len(
        AutoTokenizer.from_pretrained(tmp_path / "tok"))


def test_streaming_resume_is_exact_and_does_not_collate_skipped_batches(tmp_path, monkeypatch):
    import shutil

    from hf_pretrain_ext.collators import mlm
    keys = []
    original = mlm.MLMCollator.__call__

    def logged(self, feats):
        keys.append(feats[0]["example_index"])
        return original(self, feats)

    monkeypatch.setattr(mlm.MLMCollator, "__call__", logged)
    make_corpus(tmp_path / "t.txt", n_docs=300)
    make_corpus(tmp_path / "v.txt", n_docs=10, seed=1)
    tiny_tokenizer().save_pretrained(tmp_path / "tok")

    def args(out, *extra):
        return quick_args(out, "--train_file", str(tmp_path / "t.txt"), "--validation_file", str(tmp_path / "v.txt"),
                          "--streaming", "--tokenizer_name", str(tmp_path / "tok"), "--max_steps", "12",
                          "--save_steps", "4", "--logging_steps", "1", "--do_train", "--save_total_limit", "5",
                          *extra)
    main(args(tmp_path / "whole"))
    whole_keys, keys[:] = list(keys), []
    shutil.copytree(tmp_path / "whole" / "checkpoint-8", tmp_path / "cut" / "checkpoint-8")
    main(args(tmp_path / "cut", "--resume_from_checkpoint", "True"))
    assert keys[0] == whole_keys[8]  # batches 1-8 are never collated again
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert all(a[k].equal(b[k]) for k in a)
