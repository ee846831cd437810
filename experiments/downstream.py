"""Does pretraining help downstream? Pretrain a tiny hfpx-bert, fine-tune it, and compare with the same model
from random init under the same fine-tuning budget, over several seeds.

    python experiments/downstream.py --size reduced [--languages en,zh] [--seeds 0,1,2] [--jobs 2]

English: pretrain on WikiText-2 (raw test + valid) + tinyshakespeare, fine-tune on SST-2 (scored on test.tsv =
the GLUE dev set). Chinese: pretrain on zh_pretrain (CLUECorpusSmall sample, 红楼梦, 西游记), fine-tune on
ChnSentiCorp and TNEWS (15 classes; TNEWS has no labelled test set here, so validation and test are two disjoint
parts of its dev.tsv). The Chinese pretraining objective is whole-word masking with jieba (`--objective wwm
--segmenter jieba`), English plain MLM. Baseline: `--random_init`, i.e. the pretrained checkpoint's config and
tokenizer with fresh weights. Everything runs through run_pretrain.py and run_finetune.py, best epoch by
validation accuracy.

--size sets the budget (see SIZES): `smoke` checks the script in a minute or two, `reduced` is what fits
~25 minutes on 2 shared CPU cores (measured 25.8 min with 1500 pretraining steps), `full` is the ~30 minutes-per-row
configuration (not run here; add --pretrain_steps, --pretrain_recipe, --strategy, --pooling,
--learning_rates (a sweep chosen on validation), --reuse_pretraining to vary it).
Writes <out>/downstream_<size>_pt<pretraining steps>.{md,csv,png}: every run, mean and spread per task, machine,
versions, command.
Data is read from ../shared/data beside the checkout, or $HFPX_DATA (non-commercial sets are never copied into the package); a missing data
folder skips its task.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HFPX_DATA") or Path(__file__).resolve().parent.parent.parent / "shared" / "data")

SIZES = {
    #          pretraining steps  fine-tune train / validation / test examples   epochs
    "smoke": dict(pretrain_steps=20, train=300, val=200, test=300, epochs=1, pretrain_seq=64),
    "reduced": dict(pretrain_steps=1500, train=3000, val=800, test=1200, epochs=3, pretrain_seq=128),
    "full": dict(pretrain_steps=4000, train=20000, val=2000, test=None, epochs=3, pretrain_seq=128),
}
# per task: files, columns, max_seq_length (ChnSentiCorp reviews are long in characters; the others short)
TASKS = {
    "sst2": dict(lang="en", dir="sst2", train="train.tsv", val="dev.tsv", test="test.tsv", seq=64),
    "chnsenticorp": dict(lang="zh", dir="chnsenticorp", train="train.tsv", val="dev.tsv", test="test.tsv", seq=128),
    "tnews": dict(lang="zh", dir="tnews", train="train.tsv", val="dev.tsv", test=None, seq=64,
                  columns=("sentence", "label")),
}
CORPORA = {
    "en": [("wikitext2", "wiki.test.raw"), ("wikitext2", "valid.txt"), ("tinyshakespeare", "input.txt")],
    "zh": [("zh_pretrain", "CLUECorpusSmall_sampled.txt"), ("zh_pretrain", "hongloumeng.txt"),
           ("zh_pretrain", "xiyouji.txt")],
}
HOT = "initializer_range=0.05,hidden_dropout_prob=0.0,attention_probs_dropout_prob=0.0"  # with lr 2e-3
FINETUNE = dict(learning_rate="3e-4", batch="32", warmup="0.1")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read_tsv(path, columns=None):
    with open(path, encoding="utf-8-sig") as f:
        lines = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    header, body = (list(columns), lines) if columns else (lines[0], lines[1:])
    return header, body


def write_tsv(path, header, rows):
    Path(path).write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return str(path)


def task_files(task, size, work):
    """Seeded subsets of the task's files under work/data/<task>/ (train, validation, test)."""
    spec, budget = TASKS[task], SIZES[size]
    src = DATA / spec["dir"]
    out = work / "data" / task
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    header, train = read_tsv(src / spec["train"], spec.get("columns"))
    _, val = read_tsv(src / spec["val"], spec.get("columns"))
    if spec["test"]:
        _, test = read_tsv(src / spec["test"], spec.get("columns"))
    else:  # TNEWS: validation and test are disjoint parts of dev.tsv
        rng.shuffle(val)
        test, val = val[budget["val"]:], val[:budget["val"]]
    def cut(rows, n):
        return rng.sample(rows, n) if n is not None and n < len(rows) else rows
    return {"train": write_tsv(out / "train.tsv", header, cut(train, budget["train"])),
            "validation": write_tsv(out / "val.tsv", header, cut(val, budget["val"])),
            "test": write_tsv(out / "test.tsv", header, cut(test, budget["test"]))}


def task_texts(task):
    """The text column of a task's whole train.tsv (no labels): sentence (SST-2), text_a (ChnSentiCorp), the first
    column (TNEWS). Validation and test files are never read."""
    spec = TASKS[task]
    header, rows = read_tsv(DATA / spec["dir"] / spec["train"], spec.get("columns"))
    column = next(i for i, name in enumerate(header) if name in ("sentence", "text_a"))
    return [r[column] for r in rows if len(r) > column and r[column].strip()]


def pretrain(lang, size, work, threads, reuse=False, task_text=(), recipe=()):
    budget = SIZES[size]
    steps = budget["pretrain_steps"]
    out = work / f"pretrain-{lang}"
    if reuse and (out / "model.safetensors").is_file() and (work / f"pretrain-{lang}.json").is_file():
        log(f"reusing the pretrained {lang} checkpoint in {out}")
        return out
    corpus = work / f"corpus-{lang}.txt"
    with open(corpus, "w", encoding="utf-8") as f:
        for folder, name in CORPORA[lang]:
            f.write((DATA / folder / name).read_text(encoding="utf-8"))
            f.write("\n")
        for task in task_text:  # task-adaptive pretraining: the task's training texts, never its labels
            f.write("\n".join(task_texts(task)) + "\n")
    objective, flags = ("mlm", ["--objective", "mlm"]) if lang == "en" else \
        ("wwm", ["--objective", "wwm", "--segmenter", "jieba"])
    cmd = [sys.executable, str(REPO / "run_pretrain.py"), "--train_file", str(corpus), "--document_split", "line",
           "--output_dir", str(out), "--overwrite_output_dir", "--max_steps", str(steps),
           "--max_seq_length", str(budget["pretrain_seq"]), "--per_device_train_batch_size", "32",
           "--validation_split_percentage", "1", "--max_eval_samples", "256", "--save_steps", "100000",
           "--logging_steps", "50", "--disable_tqdm", "true", "--seed", "0", *flags, *recipe]
    log(f"pretraining {lang} ({objective}, {steps} steps)")
    start = time.time()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    subprocess.run(cmd, check=True, env=env, stdout=open(work / f"pretrain-{lang}.log", "w"),
                   stderr=subprocess.STDOUT)
    metrics = json.loads((out / "eval_results.json").read_text())
    info = {"lang": lang, "objective": objective, "steps": steps, "seconds": time.time() - start,
            "masked_token_accuracy": metrics.get("eval_accuracy"), "perplexity": metrics.get("perplexity"),
            "corpus_bytes": corpus.stat().st_size, "task_text": list(task_text), "command": " ".join(cmd[1:])}
    (work / f"pretrain-{lang}.json").write_text(json.dumps(info, indent=2))
    log(f"pretrained {lang} in {info['seconds'] / 60:.1f} min: masked-token accuracy "
        f"{info['masked_token_accuracy']:.3f}")
    return out


def finetune_once(task, init, seed, lr, ckpt, files, args, work):
    from hf_pretrain_ext.finetune.cli import main
    out = work / "runs" / f"{task}-{init}-{seed}-{lr}"
    argv = ["--model_name_or_path", str(ckpt), "--train_file", files["train"], "--validation_file",
            files["validation"], "--test_file", files["test"], "--output_dir", str(out), "--overwrite_output_dir",
            "--num_train_epochs", str(SIZES[args.size]["epochs"]), "--learning_rate", lr,
            "--per_device_train_batch_size", FINETUNE["batch"], "--warmup_steps", FINETUNE["warmup"],
            "--max_seq_length", str(TASKS[task]["seq"]), "--seed", str(seed), "--disable_tqdm", "true",
            "--logging_steps", "50", "--save_total_limit", "1", "--strategy", args.strategy,
            "--pooling", args.pooling]
    if TASKS[task].get("columns"):
        argv += ["--column_names", ",".join(TASKS[task]["columns"])]
    if init == "random":
        argv.append("--random_init")
    start = time.time()
    results = main(argv)
    shutil.rmtree(out, ignore_errors=True)  # checkpoints of every sweep point would fill the disk
    return {"task": task, "init": init, "seed": seed, "learning_rate": float(lr),
            "val_accuracy": results["eval_accuracy"], "test_accuracy": results["test_accuracy"],
            "test_f1": results["test_f1"], "test_mcc": results["test_mcc"], "seconds": round(time.time() - start, 1),
            "train_examples": results["train_samples"], "test_examples": results["test_samples"]}


def finetune(task, init, seed, ckpt, files, args, work):
    """Fine-tune once per learning rate of the sweep; the run with the best validation accuracy is the row
    (test accuracy is only read, never used to choose)."""
    tried = [finetune_once(task, init, seed, lr, ckpt, files, args, work) for lr in args.learning_rates]
    with open(work / "sweep.jsonl", "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in tried)
    row = max(tried, key=lambda r: r["val_accuracy"])
    row["seconds"] = round(sum(r["seconds"] for r in tried), 1)
    with open(work / "runs.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    log(f"{task} {init} seed {seed}: lr {row['learning_rate']:g} by validation, test accuracy "
        f"{row['test_accuracy']:.4f} ({row['seconds']:.0f}s)")
    return row


def pretrain_recipe(args):
    """run_pretrain.py flags of --pretrain_recipe: 'default' adds none; 'hot' is learning rate 2e-3, init std
    0.05, no dropout, sin/cos-initialised position embeddings and 40% masking (experiments/pretrain_recipes.py)."""
    if args.pretrain_recipe == "default":
        return []
    return ["--learning_rate", "2e-3", "--mlm_probability", "0.4", "--config_overrides",
            HOT + ",position_embedding_init=sinusoidal"]


def run_language(lang, args, work):
    import torch
    torch.set_num_threads(args.threads)
    tasks = [t for t in args.tasks.split(",") if TASKS[t]["lang"] == lang]
    missing = [d for d, _ in CORPORA[lang] if not (DATA / d).is_dir()] + \
              [TASKS[t]["dir"] for t in tasks if not (DATA / TASKS[t]["dir"]).is_dir()]
    if missing:
        log(f"skipping {lang}: missing data folder(s) {missing} under {DATA}")
        return
    ckpt = pretrain(lang, args.size, work, args.threads, args.reuse_pretraining,
                    task_text=tasks if args.task_text else (), recipe=pretrain_recipe(args))
    for task in tasks:
        files = task_files(task, args.size, work)
        for seed in args.seeds:
            for init in ("pretrained", "random"):
                finetune(task, init, seed, ckpt, files, args, work)


def summarise(rows, metric="test_accuracy"):
    out = []
    for task in TASKS:
        by = {init: [r[metric] for r in rows if r["task"] == task and r["init"] == init]
              for init in ("pretrained", "random")}
        if not by["pretrained"] or not by["random"]:
            continue
        stats = {init: (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0, min(v), max(v), len(v))
                 for init, v in by.items()}
        margin = stats["pretrained"][0] - stats["random"][0]
        spread = max(stats["pretrained"][1], stats["random"][1])
        shown = margin > spread and stats["pretrained"][2] > stats["random"][3]
        out.append(dict(task=task, stats=stats, margin=margin, spread=spread, shown=shown))
    return out


def plot(rows, summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    width = 0.35
    for j, init in enumerate(("pretrained", "random")):
        xs = [i + (j - 0.5) * width for i in range(len(summary))]
        means = [s["stats"][init][0] for s in summary]
        stds = [s["stats"][init][1] for s in summary]
        ax.bar(xs, means, width, yerr=stds, capsize=4, label=f"{init} init", alpha=0.75)
        for x, s in zip(xs, summary):
            pts = [r["test_accuracy"] for r in rows if r["task"] == s["task"] and r["init"] == init]
            ax.plot([x] * len(pts), pts, "k.", ms=5)
    ax.set_xticks(range(len(summary)), [s["task"] for s in summary])
    ax.set_ylabel("test accuracy (mean ± std over seeds; dots: seeds)")
    lo = min(r["test_accuracy"] for r in rows)
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def versions():
    import datasets
    import torch
    import transformers
    try:
        import jieba
        jieba_version = jieba.__version__
    except ImportError:
        jieba_version = "not installed"
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "jieba": jieba_version}


def report(args, work, out_dir, wall):
    rows = [json.loads(line) for line in open(work / "runs.jsonl")]
    summary = summarise(rows)
    stem = out_dir / (f"downstream_{args.size}_pt{SIZES[args.size]['pretrain_steps']}"
                      + ("" if args.strategy == "full" else f"_{args.strategy}") + (f"_{args.tag}" if args.tag else ""))
    with open(f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["task"], r["init"], r["seed"])))
    if summary:
        plot(rows, summary, f"{stem}.png")
    pre = {lang: json.loads((work / f"pretrain-{lang}.json").read_text())
           for lang in ("en", "zh") if (work / f"pretrain-{lang}.json").exists()}
    budget = SIZES[args.size]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    lines = [f"# Pretrained vs random init, downstream ({args.size} configuration)", "",
             f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}; total wall time {wall / 60:.1f} min",
             f"- machine: {cpu}, {os.cpu_count()} cores shared with other jobs (load average at the end: "
             f"{os.getloadavg()[0]:.1f}); {args.threads} torch thread(s) per process, {args.jobs} process(es)",
             f"- versions: {', '.join(f'{k} {v}' for k, v in versions().items())}",
             f"- command: `python experiments/downstream.py {' '.join(sys.argv[1:])}`",
             "- model: tiny hfpx-bert (hidden 128, 2 layers, 2 heads, FFN 512; vocab 8000 WordPiece trained on the "
             "pretraining text); baseline = same config and tokenizer, `--random_init`",
             f"- pretraining recipe: {args.pretrain_recipe} "
             f"(`{' '.join(pretrain_recipe(args)) or 'run_pretrain.py defaults: lr 1e-3, 15% masking'}`)",
             f"- fine-tuning (both inits alike): --strategy {args.strategy}, --pooling {args.pooling}, "
             f"{budget['epochs']} epochs, lr {FINETUNE['learning_rate']} (several: chosen per run by validation "
             f"accuracy), batch {FINETUNE['batch']}, warmup {FINETUNE['warmup']}, best epoch by "
             f"validation accuracy; at most {budget['train']} training / {budget['val']} validation / "
             f"{budget['test'] or 'all'} test examples (seeded subsets); seeds {args.seeds}", ""]
    lines += ["## Pretraining", "", "| lang | objective | steps | corpus | held-out masked-token acc. | perplexity "
              "| minutes |", "|---|---|---:|---:|---:|---:|---:|"]
    for lang, p in pre.items():
        extra = f" (with the unlabelled train texts of {', '.join(p['task_text'])})" if p.get("task_text") else ""
        lines.append(f"| {lang} | {p['objective']} | {p['steps']} | {p['corpus_bytes'] / 1e6:.1f} MB{extra} | "
                     f"{p['masked_token_accuracy']:.3f} | {p['perplexity']:.1f} | {p['seconds'] / 60:.1f} |")
    lines += ["", "## Fine-tuning: test accuracy", "",
              "| task | n test | pretrained mean ± std (min–max) | random init mean ± std (min–max) | margin | "
              "claim: margin > seed spread |", "|---|---:|---|---|---:|---|"]
    for s in summary:
        n = next(r["test_examples"] for r in rows if r["task"] == s["task"])
        cells = [f"{m:.4f} ± {sd:.4f} ({lo:.4f}–{hi:.4f}, n={k})" for m, sd, lo, hi, k in
                 (s["stats"]["pretrained"], s["stats"]["random"])]
        lines.append(f"| {s['task']} | {n} | {cells[0]} | {cells[1]} | {s['margin']:+.4f} | "
                     f"{'yes' if s['shown'] else 'NO'} (spread {s['spread']:.4f}) |")
    lines += ["", "'yes' means the difference of means is larger than the larger of the two seed standard "
                  "deviations and every pretrained seed beats every random-init seed.", "",
              "Every run (also in the CSV):", "", "| task | init | seed | lr | val acc. | test acc. | test F1 | "
              "test MCC | seconds |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["task"], r["init"], r["seed"])):
        lines.append(f"| {r['task']} | {r['init']} | {r['seed']} | {r.get('learning_rate', 0):g} | "
                     f"{r['val_accuracy']:.4f} | {r['test_accuracy']:.4f} | {r['test_f1']:.4f} | {r['test_mcc']:.4f} | "
                     f"{r['seconds']:.0f} |")
    lines += ["", f"Plot: `{Path(stem).name}.png`. F1 is binary (class 1) for SST-2/ChnSentiCorp and macro over the "
                  "15 classes for TNEWS."]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    log(f"report: {stem}.md")
    print("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=list(SIZES), default="reduced")
    p.add_argument("--languages", default="en,zh")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--jobs", type=int, default=2, help="languages run in parallel processes")
    p.add_argument("--workdir", default="/tmp/hfpx-downstream")
    p.add_argument("--out", default=str(REPO / "experiments" / "results"))
    p.add_argument("--pretrain_steps", type=int, help="override the size's pretraining steps")
    p.add_argument("--task_text", action="store_true",
                   help="task-adaptive pretraining: add the unlabelled training texts of the language's tasks to "
                        "its pretraining corpus (Gururangan et al. 2020); validation/test texts are never added")
    p.add_argument("--pretrain_recipe", default="default", choices=["default", "hot"],
                   help="from-scratch pretraining recipe (see pretrain_recipe()); the random-init baseline takes the "
                        "checkpoint's config, so it starts from the same kind of init")
    p.add_argument("--train_examples", type=int, help="override the size's number of fine-tuning examples")
    p.add_argument("--epochs", type=int, help="override the size's number of fine-tuning epochs")
    p.add_argument("--strategy", default="full", choices=["full", "feature_based", "adapters"],
                   help="fine-tuning strategy for both inits")
    p.add_argument("--learning_rates", default=FINETUNE["learning_rate"], type=lambda s: s.split(","),
                   help="fine-tuning peak learning rate(s); several (comma-separated) are a sweep, chosen per init, "
                        "task and seed by validation accuracy")
    p.add_argument("--tag", default="", help="suffix of the report's file names")
    p.add_argument("--pooling", default="auto", choices=["auto", "cls", "mean"],
                   help="sentence vector for the classifier (run_finetune.py --pooling)")
    p.add_argument("--reuse_pretraining", action="store_true",
                   help="keep --workdir and reuse its pretrained checkpoints (same --size / --pretrain_steps)")
    p.add_argument("--only_language", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.pretrain_steps:
        SIZES[args.size]["pretrain_steps"] = args.pretrain_steps
    if args.train_examples:
        SIZES[args.size]["train"] = args.train_examples
    if args.epochs:
        SIZES[args.size]["epochs"] = args.epochs
    FINETUNE["learning_rate"] = ",".join(args.learning_rates)
    work = Path(args.workdir)
    if args.only_language:  # a worker process
        run_language(args.only_language, args, work)
        return
    start = time.time()
    if args.reuse_pretraining:
        (work / "runs.jsonl").unlink(missing_ok=True)
        (work / "sweep.jsonl").unlink(missing_ok=True)
        shutil.rmtree(work / "runs", ignore_errors=True)
    elif work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    langs = args.languages.split(",")
    base = [a for a in sys.argv[1:]]
    if args.jobs > 1 and len(langs) > 1:
        procs = [subprocess.Popen([sys.executable, __file__, *base, "--only_language", lang]) for lang in langs]
        codes = [proc.wait() for proc in procs]
        if any(codes):
            sys.exit(f"a language worker failed: exit codes {codes}")
    else:
        for lang in langs:
            run_language(lang, args, work)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report(args, work, out_dir, time.time() - start)


if __name__ == "__main__":
    main()
