"""The pretraining history in numbers (#20): NNLM, skip-gram, ELMo, GPT and BERT pretrained by run_pretrain.py on the
same corpus for the same CPU budget, each then probed frozen on a sentiment task against a random init of the same
model.

Per language (en: WikiText-2 valid + Tiny Shakespeare, probed on SST-2; zh: the zh_pretrain novels and
CLUECorpusSmall sample, probed on ChnSentiCorp; all from ../shared/data or $HFPX_DATA) and per model (objectives
nnlm, skipgram, bilm, clm, mlm with the families' tiny presets):
1. budget: run_pretrain.py --max_train_minutes: training stops after --minutes of wall clock and the learning-rate
   schedule runs on the elapsed fraction of that time, so every model gets the same CPU time and a complete
   schedule (a step count calibrated on a short run missed the budget by up to 27%: ELMo 174 s, BERT 291 s of 240);
2. intrinsic figure: held-out perplexity (next-token for NNLM / GPT, mean of both directions for ELMo, masked
   tokens for BERT); for skip-gram the nearest neighbours (cosine) of a few probe words;
3. probe: the top layer mean-pooled over tokens (AutoModel, frozen), an L2 logistic regression (linear_probe.py)
   fitted on --probe_train training sentences drawn per seed, scored on the task's test set; the same for the
   model's config with fresh weights (seed-th random init). Reported: mean +- sd over --seeds.
Writes experiments/results/<--result> (markdown) and prints it.

    python experiments/history_table.py --minutes 15 --languages en zh --seeds 0 1 2
"""
import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HFPX_DATA") or REPO.parent / "shared" / "data")
sys.path.insert(0, str(REPO / "experiments"))
MODELS = {"NNLM (Bengio 2003)": ("nnlm", []), "skip-gram (Mikolov 2013)": ("skipgram", ["--learning_rate", "0.01"]),
          "ELMo biLM (Peters 2018)": ("bilm", []), "GPT (Radford 2018)": ("clm", []), "BERT (Devlin 2019)": ("mlm", [])}
CORPORA = {"en": ["wikitext2/valid.txt", "tinyshakespeare/input.txt"],
           "zh": ["zh_pretrain/hongloumeng.txt", "zh_pretrain/xiyouji.txt", "zh_pretrain/CLUECorpusSmall_sampled.txt"]}
TASKS = {"en": "sst2", "zh": "chnsenticorp"}
PROBE_WORDS = {"en": ["king", "love", "night", "city", "good", "war"], "zh": ["王", "心", "山", "水", "天", "说"]}
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


def pretrain(out, objective, corpus, minutes, seed, extra):
    cmd = [sys.executable, str(REPO / "run_pretrain.py"), "--objective", objective, "--train_file", str(corpus),
           "--output_dir", str(out), "--overwrite_output_dir", "--max_train_minutes", f"{minutes:g}", "--max_steps",
           "10000000", "--save_steps", "10000000", "--seed", str(seed), "--disable_tqdm", "true", *extra]
    began = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    steps = json.loads((Path(out) / "trainer_state.json").read_text())["global_step"]
    return time.time() - began, steps, json.loads((Path(out) / "all_results.json").read_text())


def neighbours(checkpoint, words, k=5):
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(checkpoint)
    vectors = torch.nn.functional.normalize(AutoModel.from_pretrained(checkpoint).word_vectors().float(), dim=-1)
    vocab = {i: t for t, i in tok.get_vocab().items()}
    special = set(tok.all_special_ids)
    lines = []
    for word in words:
        ids = tok(word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            continue
        sims = vectors @ vectors[ids[0]]
        order = [int(i) for i in sims.argsort(descending=True) if int(i) not in special and int(i) != ids[0]][:k]
        lines.append(f"{word}: " + ", ".join(vocab[i] for i in order))
    return lines


def probe_scores(checkpoint, task, n_train, seeds, random_init):
    from linear_probe import layer_features, probe, read_task
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(checkpoint)
    train_x, train_y = read_task(DATA / task / "train.tsv", None)
    test_x, test_y = read_task(DATA / task / "test.tsv", None)
    labels = sorted(set(train_y))
    scores, test_feats = [], None
    for seed in seeds:
        if random_init:
            torch.manual_seed(seed)
            model = AutoModel.from_config(AutoConfig.from_pretrained(checkpoint)).eval()
        else:
            model = AutoModel.from_pretrained(checkpoint).eval()
        pick = random.Random(seed).sample(range(len(train_x)), min(n_train, len(train_x)))
        feats = layer_features(model, tok, [train_x[i] for i in pick], 128)[-1]
        if random_init or test_feats is None:  # the pretrained model's test features are the same every seed
            test_feats = layer_features(model, tok, test_x, 128)[-1]
        scores.append(probe(feats, torch.tensor([labels.index(train_y[i]) for i in pick]), test_feats,
                            torch.tensor([labels.index(y) for y in test_y]), len(labels)))
    return scores


def fmt(xs):
    return f"{statistics.mean(xs):.4f} +- {statistics.stdev(xs) if len(xs) > 1 else float('nan'):.4f}"


def render(args, rows, notes):
    """The result page for the rows so far; written after every model so that a stopped run keeps what it measured."""
    text = [f"# The pretraining history in numbers ({datetime.date.today()})", "",
            f"- Command: `python experiments/history_table.py --minutes {args.minutes:g} --languages "
            f"{' '.join(args.languages)} --seeds {' '.join(map(str, args.seeds))} --probe_train {args.probe_train}`",
            f"- Machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}",
            "- Each model: the family's tiny preset, pretrained by run_pretrain.py with --max_train_minutes "
            f"{args.minutes:g} (training stops at the budget; the learning-rate schedule runs on the elapsed time); "
            "probe: top layer mean-pooled, frozen, logistic regression; random init: the same "
            "config with fresh weights, one per seed. 'separated': the gap exceeds twice the larger seed spread.",
            "- train s: the Trainer's measured training time; minutes: the run's wall clock (tokenizer training, data "
            "preparation and evaluation included). Perplexities are per token of each model's own tokenizer (byte-level "
            "BPE for NNLM / ELMo / GPT, WordPiece for BERT and skip-gram, each trained on the corpus): compare them "
            "down a column only with care.", "",
            "| language | model | steps | train s | minutes | intrinsic (held out) | task | probe, pretrained | "
            "probe, random init | gap |", "|---|---|---:|---:|---:|---|---|---:|---:|---|", *rows, "", *notes]
    page = "\n".join(text)
    (REPO / "experiments" / "results" / args.result).write_text(page + "\n")
    return page


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=15.0, help="pretraining budget per model")
    p.add_argument("--languages", nargs="+", default=["en", "zh"], choices=list(CORPORA))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--probe_train", type=int, default=5000)
    p.add_argument("--work", default="/tmp/hfpx_history_table")
    p.add_argument("--result", default="history_table.md", help="file name under experiments/results/")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows, notes = [], []
    for lang in args.languages:
        corpus = work / f"corpus_{lang}.txt"
        corpus.write_text("\n\n".join((DATA / f).read_text(encoding="utf-8") for f in CORPORA[lang]),
                          encoding="utf-8")
        for name in args.models:
            objective, extra = MODELS[name]
            out = work / lang / objective
            seconds, steps, res = pretrain(out, objective, corpus, args.minutes, 0, extra)
            intrinsic = (f"{'masked-token ' if objective == 'mlm' else ''}perplexity {res['perplexity']:.1f}"
                         if "perplexity" in res else f"negative-sampling loss {res['eval_loss']:.3f}")
            if objective == "skipgram":
                notes += [f"- {lang} skip-gram nearest neighbours (cosine, top 5):"] + \
                         [f"  - {line}" for line in neighbours(out, PROBE_WORDS[lang])]
            trained = probe_scores(out, TASKS[lang], args.probe_train, args.seeds, False)
            fresh = probe_scores(out, TASKS[lang], args.probe_train, args.seeds, True)
            gap = statistics.mean(trained) - statistics.mean(fresh)
            spread = max(statistics.stdev(trained) if len(trained) > 1 else 0,
                         statistics.stdev(fresh) if len(fresh) > 1 else 0)
            verdict = "separated" if abs(gap) > 2 * spread else "not separated"
            rows.append(f"| {lang} | {name} | {steps} | {res['train_runtime']:.0f} | {seconds / 60:.1f} | {intrinsic} | {TASKS[lang]} | "
                        f"{fmt(trained)} | {fmt(fresh)} | {gap:+.4f} ({verdict}) |")
            print(rows[-1], flush=True)
            page = render(args, rows, notes)
    print(page)


if __name__ == "__main__":
    main()
