"""Tokenizer training: the stock `tokenizers` WordPiece trainer vs ours (deterministic), on the default job's data.

Each measurement runs in a fresh process (the stock trainer's output changes from process to process, so
determinism can only be seen across processes): the default job's training split (sample corpus, last 5% of
documents held out), tokenizer step as run_pretrain.py runs it (`train_tokenizer(raw["train"], ...)`), stock and
ours alternating, median of --repeats. Reports seconds, the number of distinct tokenizer.json files each way
produced, and ours/stock time. Extra corpora (e.g. ../shared/data files) can be given with --train_file.

    python benchmarks/bench_tokenizer.py --repeats 5     # writes benchmarks/results/tokenizer_training.{csv,md}
"""
import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"

CHILD = r"""
import hashlib, json, sys, time
from types import SimpleNamespace
from hf_pretrain_ext.args import DataTrainingArguments
from hf_pretrain_ext.data.loading import load_raw_datasets, iter_texts
from hf_pretrain_ext.data.tokenizer import BERT_SPECIALS, train_tokenizer, train_byte_bpe
way, kind, train_file, vocab = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
raw = load_raw_datasets(DataTrainingArguments(train_file=train_file), SimpleNamespace(cache_dir=None, token=None), 42)
start = time.perf_counter()
if way == "ours":
    tok = train_tokenizer(raw["train"], kind, vocab).backend_tokenizer
elif kind == "wordpiece":  # what data/tokenizer.py did before: the trainer straight on the texts
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True,
                                                strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(iter_texts(raw["train"]), trainer=trainers.WordPieceTrainer(
        vocab_size=vocab, special_tokens=BERT_SPECIALS, continuing_subword_prefix="##", show_progress=False))
else:  # byte-level BPE is the stock trainer in both ways
    tok = train_byte_bpe(iter_texts(raw["train"]), vocab).backend_tokenizer
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "md5": hashlib.md5(tok.to_str().encode()).hexdigest(),
                  "vocab": tok.get_vocab_size()}))
"""


def run_child(way, kind, train_file, vocab):
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", CHILD, way, kind, train_file or "", str(vocab)], env=env,
                         capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train_file", nargs="*", default=["sample"],
                        help="corpora ('sample': the default job's, the default)")
    parser.add_argument("--kind", nargs="*", default=["wordpiece", "bpe"])
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--out", default=str(RESULTS / "tokenizer_training"))
    args = parser.parse_args()
    rows = []
    for train_file in [None if f == "sample" else f for f in args.train_file]:
        for kind in args.kind:
            runs = {"stock": [], "ours": []}
            for _ in range(args.repeats):
                for way in ("stock", "ours"):
                    runs[way].append(run_child(way, kind, train_file, args.vocab_size))
            med = {w: statistics.median(r["seconds"] for r in runs[w]) for w in runs}
            row = {"corpus": Path(train_file).name if train_file else "sample corpus (default job)", "kind": kind,
                   "stock_s": round(med["stock"], 3), "ours_s": round(med["ours"], 3),
                   "ours_over_stock": round(med["ours"] / med["stock"], 3),
                   "stock_distinct_outputs": len({r["md5"] for r in runs["stock"]}),
                   "ours_distinct_outputs": len({r["md5"] for r in runs["ours"]}),
                   "vocab": runs["ours"][0]["vocab"], "repeats": args.repeats}
            print(row, flush=True)
            rows.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import tokenizers
    head = (f"Tokenizer training, stock trainer vs ours, fresh process per run, median of {args.repeats} "
            f"(`python benchmarks/bench_tokenizer.py {' '.join(sys.argv[1:])}`; {datetime.date.today()}, "
            f"{platform.machine()}, {os.cpu_count()} cores, tokenizers {tokenizers.__version__}). "
            "`distinct outputs`: how many different tokenizer.json files the runs produced.")
    lines = [head, "", "| corpus | kind | stock s | ours s | ours / stock | stock distinct outputs | "
             "ours distinct outputs | vocab |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['corpus']} | {r['kind']} | {r['stock_s']} | {r['ours_s']} | {r['ours_over_stock']} | "
              f"{r['stock_distinct_outputs']} | {r['ours_distinct_outputs']} | {r['vocab']} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
