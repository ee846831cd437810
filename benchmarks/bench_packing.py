"""Encoder training throughput on CPU, per real (non-padding) token: padded line-by-line vs packed documents vs
packed documents + unpadded, and blocks (run_mlm.py's packing, where documents attend to each other) for reference.

Same tiny hfpx-bert (the default fresh model: 2 layers, H=128), same WordPiece tokenizer trained on the corpus,
same initial weights, batches of --batch examples of at most --seq tokens, MLM at 15% (MLMCollator), AdamW; a
plain loop (forward with labels, backward, step, zero_grad) over the same shuffled order of each variant's examples.
Corpora from ../shared/data (or $HFPX_DATA): SST-2 training sentences (short documents, many phrases of a few
words) and WikiText-2 validation paragraphs (long documents). Reported per variant: real tokens/s (median of
--repeats windows of --steps steps after --warmup), padding share of the rows fed to the model (for the unpadded
variant, of the rows before unpadding: the model itself computes on real tokens only), and the mean training MLM
loss over the windows (per labelled token).

    python benchmarks/bench_packing.py            # writes benchmarks/results/packing_cpu_<date>.md
"""
import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HFPX_DATA") or REPO.parent / "shared" / "data")
VARIANTS = {  # name: (tokenize_and_group options, unpadded)
    "padded line_by_line": (dict(line_by_line=True), False),
    "packed documents": (dict(packing="documents"), False),
    "packed documents + unpadded": (dict(packing="documents"), True),
    "blocks (documents attend to each other)": ({}, False),
}


def corpus(name, limit):
    if name == "sst2":
        rows = (DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
        texts = [r.rsplit("\t", 1)[0].strip() for r in rows]
    else:
        lines = (DATA / "wikitext2" / "valid.txt").read_text(encoding="utf-8").splitlines()
        texts = [x.strip() for x in lines if x.strip() and not x.strip().startswith("=")]
    return [t for t in texts if t][:limit]


def measure(ds, tok, unpadded, args):
    from hf_pretrain_ext.collators import MLMCollator
    from hf_pretrain_ext.models import TINY_BERT, HfpxBertConfig, HfpxBertForMaskedLM
    torch.manual_seed(0)
    model = HfpxBertForMaskedLM(HfpxBertConfig(vocab_size=len(tok), unpadded=unpadded, **TINY_BERT)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    collator = MLMCollator(tok, seed=0)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).tolist()
    need = (args.warmup + args.steps * args.repeats) * args.batch
    order = (order * (need // len(order) + 1))[:need]
    batches = [collator([ds[i] for i in order[k:k + args.batch]]) for k in range(0, need, args.batch)]
    rates, losses, real_total, row_total = [], [], 0, 0
    for b, batch in enumerate(batches):
        if b >= args.warmup and (b - args.warmup) % args.steps == 0:
            start, real = time.perf_counter(), 0
        out = model(**batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        if b >= args.warmup:
            n_real = int(batch["attention_mask"].sum())
            real += n_real
            real_total += n_real
            row_total += batch["input_ids"].numel()
            losses.append(float(out.loss))
            if (b - args.warmup) % args.steps == args.steps - 1:
                rates.append(real / (time.perf_counter() - start))
    return statistics.median(rates), 1 - real_total / row_total, statistics.mean(losses)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", nargs="*", default=["sst2", "wikitext2"])
    parser.add_argument("--documents", type=int, default=20000, help="documents per corpus (first N)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import datasets
    from hf_pretrain_ext.data.grouping import tokenize_and_group
    from hf_pretrain_ext.data.tokenizer import train_wordpiece
    datasets.disable_caching()
    datasets.utils.logging.disable_progress_bar()
    table = ["| corpus | variant | real tokens/s | vs padded | padding share | mean train MLM loss |",
             "|---|---|---:|---:|---:|---:|"]
    for name in args.corpora:
        texts = corpus(name, args.documents)
        tok = train_wordpiece(texts, 8000)
        raw = DatasetDict({"train": Dataset.from_dict({"text": texts})})
        base = None
        for variant, (options, unpadded) in VARIANTS.items():
            ds = tokenize_and_group(raw, tok, args.seq, load_from_cache=False, **options)["train"]
            rate, pad, loss = measure(ds, tok, unpadded, args)
            base = rate if base is None else base
            row = f"| {name} ({len(texts)} docs) | {variant} | {rate:,.0f} | {rate / base:.2f}x | {pad:.1%} | {loss:.3f} |"
            print(row, flush=True)
            table.append(row)
    out = Path(args.out or REPO / "benchmarks" / "results" / f"packing_cpu_{datetime.date.today():%Y%m%d}.md")
    head = [f"# Packed, unpadded encoder training on CPU ({datetime.date.today()})", "",
            f"- Command: `python benchmarks/bench_packing.py {' '.join(sys.argv[1:])}`",
            f"- Machine: {platform.machine()}, {os.cpu_count()} cores, torch.set_num_threads({args.threads}); "
            f"torch {torch.__version__}, Python {platform.python_version()}",
            f"- Tiny hfpx-bert (2 layers, H=128), batch {args.batch}, max {args.seq} tokens, MLM 15%, AdamW; median "
            f"of {args.repeats} windows of {args.steps} steps after {args.warmup} warm-up steps.", ""]
    out.write_text("\n".join(head + table) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
