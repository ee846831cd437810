"""Same corpus, seed and steps, different from-scratch recipes: which one learns masked-LM fastest?

    python experiments/pretrain_recipes.py [--steps 1500] [--variants default,sinusoidal,...] [--jobs 2]

Each variant is one run_pretrain.py run on the downstream experiment's English corpus (WikiText-2 raw test +
valid, tinyshakespeare; see downstream.py), 32 x 128 tokens a step, evaluated every --eval_steps on the same 5%
held-out split (masked-token loss and accuracy). The question it answers: a tiny BERT started from BERT's N(0, 0.02)
weights sits for thousands of steps on a plateau where it predicts masked tokens from the bag of surrounding words
and barely moves its position embeddings; does a sin/cos start for those embeddings
(`position_embedding_init=sinusoidal`) get it off that plateau sooner, alone and with a hotter recipe?
Writes <out>/pretrain_recipes_<steps>.{md,csv}: every evaluation, machine, versions, commands.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "experiments"))
from downstream import CORPORA, DATA, HOT, log, versions  # noqa: E402

VARIANTS = {  # name: (extra run_pretrain.py flags, what it is)
    "default": ([], "BERT init N(0, 0.02), dropout 0.1, lr 1e-3 (run_pretrain.py defaults)"),
    "sinusoidal": (["--config_overrides", "position_embedding_init=sinusoidal"], "default + sin/cos positions"),
    "hot": (["--learning_rate", "2e-3", "--config_overrides", HOT], "init 0.05, no dropout, lr 2e-3"),
    "hot_sinusoidal": (["--learning_rate", "2e-3", "--config_overrides", HOT + ",position_embedding_init=sinusoidal"],
                       "hot + sin/cos positions"),
}


def run(name, corpus, args, work):
    out = work / name
    cmd = [sys.executable, str(REPO / "run_pretrain.py"), "--train_file", str(corpus), "--document_split", "line",
           "--output_dir", str(out), "--overwrite_output_dir", "--max_steps", str(args.steps),
           "--max_seq_length", "128", "--per_device_train_batch_size", "32", "--validation_split_percentage", "5",
           "--max_eval_samples", "256",
           "--eval_strategy", "steps", "--eval_steps", str(args.eval_steps), "--save_steps", "100000",
           "--logging_steps", "100", "--disable_tqdm", "true", "--seed", str(args.seed), "--objective", "mlm",
           *VARIANTS[name][0]]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    log(f"{name}: start")
    start = time.time()
    with open(work / f"{name}.log", "w") as f:
        subprocess.run(cmd, check=True, env=env, stdout=f, stderr=subprocess.STDOUT)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    rows = [{"variant": name, "step": h["step"], "eval_loss": h["eval_loss"], "eval_accuracy": h["eval_accuracy"]}
            for h in history if "eval_loss" in h]
    log(f"{name}: done in {(time.time() - start) / 60:.1f} min, last eval loss {rows[-1]['eval_loss']:.3f}")
    return rows, " ".join(cmd[1:]), time.time() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--eval_steps", type=int, default=500)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--workdir", default="/tmp/hfpx-pretrain-recipes")
    p.add_argument("--out", default=str(REPO / "experiments" / "results"))
    args = p.parse_args(argv)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    missing = [d for d, _ in CORPORA["en"] if not (DATA / d).is_dir()]
    if missing:
        sys.exit(f"error: missing data folder(s) {missing} under {DATA}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus-en.txt"
    corpus.write_text("\n".join((DATA / d / n).read_text(encoding="utf-8") for d, n in CORPORA["en"]) + "\n",
                      encoding="utf-8")
    start = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(names, pool.map(lambda n: run(n, corpus, args, work), names)))
    rows = [r for name in names for r in results[name][0]]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"pretrain_recipes_{args.steps}"
    with open(f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    steps = sorted({r["step"] for r in rows})
    at = {(r["variant"], r["step"]): r for r in rows}
    lines = [f"# From-scratch MLM recipes, {args.steps} steps", "",
             f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; wall time {(time.time() - start) / 60:.1f}"
             f" min; {args.jobs} runs in parallel, {args.threads} torch thread(s) each",
             f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
             f"- versions: {', '.join(f'{k} {v}' for k, v in versions().items())}",
             f"- command: `python experiments/pretrain_recipes.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
             f"- corpus: {corpus.stat().st_size / 1e6:.1f} MB (WikiText-2 raw test + valid, tinyshakespeare), tiny "
             f"hfpx-bert (hidden 128, 2 layers), 8000-token WordPiece, 15% masking, seed {args.seed}, batch 32 x 128",
             "", "Held-out masked-token loss / accuracy (5% split, the same for every variant):", "",
             "| variant | recipe | " + " | ".join(f"step {s}" for s in steps) + " | minutes |",
             "|---|---|" + "---:|" * (len(steps) + 1)]
    for name in names:
        cells = [f"{at[name, s]['eval_loss']:.3f} / {at[name, s]['eval_accuracy']:.3f}" if (name, s) in at else ""
                 for s in steps]
        lines.append(f"| {name} | {VARIANTS[name][1]} | " + " | ".join(cells) + f" | {results[name][2] / 60:.1f} |")
    lines += ["", "Commands:", ""] + [f"- {name}: `{results[name][1]}`" for name in names]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
