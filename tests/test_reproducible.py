"""Same data + same settings + same seed => the same bytes, across fresh processes.

The `tokenizers` WordPiece trainer numbered its `##` symbols in a per-process hash order, so two runs of the
default job trained different tokenizers and logged different losses from step 1. Each check here runs twice in
separate processes: tokenizer training alone (WordPiece on English and Chinese, byte-level BPE plain and with
BART's specials), and the default job itself (its own corpus and tokenizer settings, fewer steps) down to the
weights and the logged losses.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from hfpx_testutils import SHARED_DATA

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")

TRAIN = r"""
import hashlib, json, sys
from datasets import Dataset
from hf_pretrain_ext.data.tokenizer import train_tokenizer
out = {}
for name, kind, path, vocab, seq2seq in json.loads(sys.argv[1]):
    lines = [l for l in open(path, encoding="utf-8").read().split("\n") if l.strip()][:6000]
    tok = train_tokenizer(Dataset.from_dict({"text": lines}), kind, vocab, seq2seq=seq2seq)
    out[name] = [hashlib.sha256(tok.backend_tokenizer.to_str().encode()).hexdigest(), len(tok)]
print(json.dumps(out))
"""

SAMPLE = REPO / "hf_pretrain_ext" / "sample_data" / "sample_corpus.txt"


def test_tokenizer_training_is_identical_in_fresh_processes():
    """WordPiece (English; Chinese when the shared data is there) and byte-level BPE (GPT-2's and BART's
    specials), each trained in two processes."""
    cases = [("wordpiece-english", "wordpiece", str(SAMPLE), 8000, False), ("bpe", "bpe", str(SAMPLE), 8000, False),
             ("bpe-bart", "bpe", str(SAMPLE), 4000, True)]
    zh = SHARED_DATA / "zh_pretrain" / "CLUECorpusSmall_sampled.txt"
    if zh.is_file():
        cases.append(("wordpiece-chinese", "wordpiece", str(zh), 6000, False))
    outs = [json.loads(subprocess.run([sys.executable, "-c", TRAIN, json.dumps(cases)], capture_output=True,
                                      text=True, env=ENV, check=True).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    assert outs[0] == outs[1]
    assert set(outs[0]) == {c[0] for c in cases} and all(size > 1000 for _, size in outs[0].values())


def test_default_job_twice_gives_identical_tokenizer_losses_and_weights(tmp_path):
    """The default job (sample corpus, 8000-token WordPiece trained on it, tiny hfpx-bert, seed 42), cut to 12
    steps, in two fresh processes."""
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        proc = subprocess.run([sys.executable, str(REPO / "run_pretrain.py"), "--output_dir", str(out),
                               "--max_steps", "12", "--logging_steps", "2", "--save_steps", "100",
                               "--max_eval_samples", "32", "--disable_tqdm", "true", "--no_plot"],
                              capture_output=True, text=True, env=ENV, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(out)
    a, b = runs
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(a / "model.safetensors") == digest(b / "model.safetensors")
    history = [[{k: v for k, v in entry.items() if "runtime" not in k and "per_second" not in k}
                for entry in json.loads((out / "trainer_state.json").read_text())["log_history"]] for out in runs]
    assert history[0] == history[1]
    losses = [entry["loss"] for entry in history[0] if "loss" in entry]
    assert len(losses) == 6 and losses[-1] < losses[0]
    evals = [json.loads((out / "eval_results.json").read_text()) for out in runs]
    assert evals[0]["eval_loss"] == evals[1]["eval_loss"] and evals[0]["eval_accuracy"] == evals[1]["eval_accuracy"]
