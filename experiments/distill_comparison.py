"""Distilled vs from-scratch students on CPU (#21): does a teacher's soft targets help a student
half its depth, at the same number of steps?

Teacher: hfpx-bert, --teacher_layers layers (4), H=128, pretrained by run_pretrain.py on WikiText-2 (valid) + Tiny Shakespeare from
../shared/data (or $HFPX_DATA) for --teacher_steps; its tokenizer is every student's. Students: half its depth, H=128,
--student_steps steps each, per seed: distilled (--distill_alpha 0.5 --distill_temperature 2 --distill_cosine 1
--distill_init_student: embeddings, head and teacher layers 0, 2, ...) and from scratch (same flags minus the
teacher). Scored: held-out masked-token accuracy (run_pretrain.py's evaluation at 15%, masks fixed per seed, the
same for both students of a seed) and SST-2 feature-based accuracy (last layer mean-pooled over tokens, frozen,
an L2 logistic regression fitted on the first --probe_train SST-2 training sentences, scored on test.tsv; the
linear probe of experiments/linear_probe.py). Writes experiments/results/<--result>.

    python experiments/distill_comparison.py --teacher_steps 1200 --student_steps 600 --seeds 0 1 2
    python experiments/distill_comparison.py --teacher_layers 6 --teacher_steps 2400 --student_steps 1000 \
        --result distill_comparison_full.md      # the full budget: a teacher of about 20 CPU minutes
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HFPX_DATA") or REPO.parent / "shared" / "data")
sys.path.insert(0, str(REPO / "experiments"))
WIDTH = "hidden_size=128,num_attention_heads=2,intermediate_size=512"


def pretrain(out, steps, seed, *flags):
    cmd = [sys.executable, str(REPO / "run_pretrain.py"), "--output_dir", str(out), "--overwrite_output_dir",
           "--max_steps", str(steps), "--seed", str(seed), "--save_steps", str(steps), "--disable_tqdm", "true",
           *flags]
    began = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"))
    accuracy = json.loads((Path(out) / "eval_results.json").read_text())["eval_accuracy"]
    return (time.time() - began) / 60, accuracy


def sst2_probe(checkpoint, n_train):
    from linear_probe import layer_features, probe, read_task
    from transformers import AutoModel, AutoTokenizer
    train_x, train_labels = read_task(DATA / "sst2" / "train.tsv", None)
    test_x, test_labels = read_task(DATA / "sst2" / "test.tsv", None)
    train_x, train_labels = train_x[:n_train], train_labels[:n_train]
    labels = sorted(set(train_labels))
    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModel.from_pretrained(checkpoint).eval()
    feats, test_feats = layer_features(model, tok, train_x, 128)[-1], layer_features(model, tok, test_x, 128)[-1]
    return probe(feats, torch.tensor([labels.index(x) for x in train_labels]), test_feats,
                 torch.tensor([labels.index(x) for x in test_labels]), len(labels))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher_steps", type=int, default=1200)
    p.add_argument("--student_steps", type=int, default=600)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--probe_train", type=int, default=10000)
    p.add_argument("--teacher_layers", type=int, default=4)
    p.add_argument("--work", default="/tmp/hfpx_distill_comparison")
    p.add_argument("--result", default="distill_comparison.md", help="file name under experiments/results/")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus.write_text((DATA / "wikitext2" / "valid.txt").read_text(encoding="utf-8") + "\n\n" +
                      (DATA / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8"), encoding="utf-8")
    teacher = work / "teacher"
    t_minutes, t_acc = pretrain(teacher, args.teacher_steps, 0, "--train_file", str(corpus), "--config_overrides",
                                f"{WIDTH},num_hidden_layers={args.teacher_layers}")
    t_probe = sst2_probe(teacher, args.probe_train)
    print(f"teacher: {t_minutes:.1f} min, masked-token accuracy {t_acc:.4f}, SST-2 probe {t_probe:.4f}", flush=True)
    student_layers = args.teacher_layers // 2
    common = ["--train_file", str(corpus), "--tokenizer_name", str(teacher), "--config_overrides",
              f"{WIDTH},num_hidden_layers={student_layers}"]
    distil = ["--teacher_model_name_or_path", str(teacher), "--distill_alpha", "0.5", "--distill_temperature", "2",
              "--distill_cosine", "1", "--distill_init_student"]
    results = {"distilled": [], "from scratch": []}
    for seed in args.seeds:
        for name, flags in (("distilled", distil), ("from scratch", [])):
            out = work / f"{name.replace(' ', '_')}_{seed}"
            minutes, acc = pretrain(out, args.student_steps, seed, *common, *flags)
            results[name].append((minutes, acc, sst2_probe(out, args.probe_train)))
            print(name, seed, " ".join(f"{x:.4f}" for x in results[name][-1]), flush=True)
    rows = []
    for name, runs in results.items():
        m, acc, probe_acc = zip(*runs)
        sd = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else float("nan"))  # noqa: E731
        rows.append(f"| {name} | {statistics.mean(m):.1f} | {statistics.mean(acc):.4f} +- {sd(acc):.4f} | "
                    f"{statistics.mean(probe_acc):.4f} +- {sd(probe_acc):.4f} | "
                    f"{', '.join(f'{a:.4f} / {b:.4f}' for a, b in zip(acc, probe_acc))} |")
    budget = f"teacher {t_minutes:.0f} CPU minutes"
    text = [f"# Distilled vs from-scratch students, {budget} ({datetime.date.today()})", "",
            f"- Command: `python experiments/distill_comparison.py --teacher_steps {args.teacher_steps} "
            f"--student_steps {args.student_steps} --seeds {' '.join(map(str, args.seeds))}"
            f"{'' if args.teacher_layers == 4 else f' --teacher_layers {args.teacher_layers}'}"
            f"{'' if args.result == 'distill_comparison.md' else f' --result {args.result}'}`",
            f"- Machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}",
            f"- Teacher: {args.teacher_layers} layers, H=128, {args.teacher_steps} steps ({t_minutes:.1f} min): held-out masked-token "
            f"accuracy {t_acc:.4f}, SST-2 probe {t_probe:.4f}. Students: {student_layers} layers, H=128, {args.student_steps} "
            "steps, batch 32 x 128 tokens, learning rate 1e-3.",
            f"- SST-2 probe: frozen last layer, mean-pooled, logistic regression on the first {args.probe_train} "
            "training sentences, scored on test.tsv (872).", "",
            "| student | minutes per run | held-out masked-token accuracy | SST-2 probe accuracy | per seed "
            "(masked / probe) |", "|---|---:|---:|---:|---|", *rows]
    dest = REPO / "experiments" / "results" / args.result
    dest.write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
