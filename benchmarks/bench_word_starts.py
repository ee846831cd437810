"""Chinese word boundaries for whole-word masking, per character of text: from the document text (what
run_pretrain.py does now: jieba's words of each document, offsets to tokens, packed with the ids) vs from the packed
blocks (the earlier way: tokenize and pack, then rebuild the text of each block's CJK runs from the tokens and run
jieba on that), the earlier way both as it was (stock `jieba.lcut`) and with the package's `word_lengths` (the
same words, faster; what the block path uses now when a dataset has no word_starts column). Same corpus, tokenizer
and block length; 1 and 2 worker processes (--preprocessing_num_workers), no datasets cache; median of --repeats,
the ways interleaved. Data: ../shared/data/zh_pretrain (or $HFPX_DATA).

    python benchmarks/bench_word_starts.py --repeats 3   # writes benchmarks/results/word_starts_zh.md
"""
import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HFPX_DATA") or REPO.parent / "shared" / "data")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--num_proc", type=int, nargs="*", default=[1, 2], help="worker processes (rows per value)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "word_starts_zh.md"))
    args = parser.parse_args()
    import datasets
    from datasets import Dataset, DatasetDict

    from hf_pretrain_ext.collators import DocumentWordStarts, add_word_starts, jieba_lengths
    from hf_pretrain_ext.collators.words import load_jieba
    from hf_pretrain_ext.data.grouping import tokenize_and_group
    from hf_pretrain_ext.data.tokenizer import train_wordpiece
    datasets.disable_caching()
    datasets.utils.logging.disable_progress_bar()
    path = DATA / "zh_pretrain" / "CLUECorpusSmall_sampled.txt"
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    chars = sum(map(len, lines))
    tok = train_wordpiece(lines, 21128)
    raw = DatasetDict({"train": Dataset.from_dict({"text": lines})})
    fast = jieba_lengths.word_lengths
    jieba = load_jieba()

    def stock(text, tokenizer=None):
        return [len(w) for w in (tokenizer or jieba.dt).lcut(text)]

    def blocks(proc, segment):
        jieba_lengths.word_lengths = segment  # the block path looks it up at call time (workers are forked)
        try:
            return {k: add_word_starts(v, tok, num_proc=proc) for k, v in tokenize_and_group(
                raw, tok, args.max_seq_length, num_proc=proc, load_from_cache=False).items()}
        finally:
            jieba_lengths.word_lengths = fast

    ways = {}
    for n in args.num_proc:
        proc = None if n == 1 else n
        ways[f"from the document text (now), {n} process(es)"] = lambda proc=proc: tokenize_and_group(
            raw, tok, args.max_seq_length, num_proc=proc, word_starts=DocumentWordStarts(tok), load_from_cache=False)
        ways[f"from the packed blocks, stock jieba.lcut (before), {n} process(es)"] = \
            lambda proc=proc: blocks(proc, stock)
        ways[f"from the packed blocks, word_lengths, {n} process(es)"] = lambda proc=proc: blocks(proc, fast)
    times = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, fn in ways.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    lines_out = [f"Chinese word boundaries, tokenizing + packing + word starts of `{path.name}` ({len(lines)} "
                 f"documents, {chars} characters), blocks of {args.max_seq_length}, WordPiece 21128, "
                 f"median of {args.repeats} (`python benchmarks/bench_word_starts.py {' '.join(sys.argv[1:])}`; "
                 f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores)", "",
                 "| way | seconds | characters / s |", "|---|---|---|"]
    for name, ts in times.items():
        med = statistics.median(ts)
        lines_out.append(f"| {name} | {med:.2f} | {chars / med:,.0f} |")
        print(name, f"{med:.2f} s", f"{chars / med:,.0f} chars/s", flush=True)
    Path(args.out).write_text("\n".join(lines_out) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
