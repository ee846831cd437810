"""Collator throughput on one core: ours (mlm, wwm, ngram, span) vs transformers' DataCollatorForLanguageModeling
(plain, and whole_word_mask=True, which in v5 needs offset_mapping).

Data: WikiText-2 (valid split) and Chinese CLUECorpusSmall_sampled from ../shared/data, tokenized with a WordPiece
tokenizer trained on the fly, packed into blocks of 128 / 512 tokens ([CLS] piece [SEP]) that carry offset_mapping
and special_tokens_mask for HF's collator (HF's best case: it does not recompute the special-tokens mask); ours
get input_ids and example_index only (plus `word_starts` for the 'precomputed' rows). Every collator sees the same
blocks in the same batches of 32; throughput is examples/s, the median of --repeats passes over --batches batches.

    python benchmarks/bench_collators.py            # writes benchmarks/results/collators_throughput.{csv,md}
"""
import argparse
import csv
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HFPX_DATA") or REPO.parent / "shared" / "data")  # HFPX_DATA: a clone elsewhere
RESULTS = REPO / "benchmarks" / "results"


def packed_blocks(tokenizer, texts, length, n_blocks):
    """Blocks of `length` tokens from the concatenated texts, with character offsets into that concatenation."""
    ids, offsets, shift = [], [], 0
    need = n_blocks * (length - 2)
    for start in range(0, len(texts), 200):
        piece = " ".join(texts[start:start + 200])
        enc = tokenizer(piece, add_special_tokens=False, return_offsets_mapping=True)
        ids.extend(enc["input_ids"])
        offsets.extend((s + shift, e + shift) for s, e in enc["offset_mapping"])
        shift += len(piece) + 1
        if len(ids) >= need:
            break
    blocks = []
    for b in range(min(n_blocks, len(ids) // (length - 2))):
        body = slice(b * (length - 2), (b + 1) * (length - 2))
        blocks.append({"input_ids": [tokenizer.cls_token_id] + ids[body] + [tokenizer.sep_token_id],
                       "offset_mapping": [(0, 0)] + offsets[body] + [(0, 0)],
                       "special_tokens_mask": [1] + [0] * (length - 2) + [1],
                       "example_index": b})
    return blocks


def throughput(collator, features, batch_size, repeats):
    batches = [features[i:i + batch_size] for i in range(0, len(features), batch_size)]
    collator(batches[0])  # warm-up (jieba's dictionary, lazy imports)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            collator(batch)
        rates.append(len(features) / (time.perf_counter() - start))
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1024, help="examples per configuration")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "collators_throughput"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import transformers
    from transformers import DataCollatorForLanguageModeling

    from hf_pretrain_ext.collators import add_word_starts, build_collator
    from hf_pretrain_ext.data.tokenizer import train_wordpiece

    corpora = {
        "en": [line.strip() for line in open(DATA / "wikitext2" / "valid.txt", encoding="utf-8") if line.strip()],
        "zh": [line.strip() for line in open(DATA / "zh_pretrain" / "CLUECorpusSmall_sampled.txt",
                                             encoding="utf-8") if line.strip()],
    }
    rows = []
    for lang, texts in corpora.items():
        tok = train_wordpiece(texts, 8000)
        for length in (128, 512):
            feats = packed_blocks(tok, texts, length, args.blocks)
            ours_feats = [{"input_ids": f["input_ids"], "example_index": f["example_index"]} for f in feats]
            hf_plain_feats = [{"input_ids": f["input_ids"], "special_tokens_mask": f["special_tokens_mask"]}
                              for f in feats]
            hf_wwm_feats = [{k: f[k] for k in ("input_ids", "offset_mapping", "special_tokens_mask")} for f in feats]
            configs = [
                ("hf DataCollatorForLanguageModeling", "mlm", DataCollatorForLanguageModeling(tok, seed=1),
                 hf_plain_feats),
                ("hf DataCollatorForLanguageModeling whole_word_mask=True", "wwm (offsets)",
                 DataCollatorForLanguageModeling(tok, whole_word_mask=True, seed=1), hf_wwm_feats),
                ("ours", "mlm", build_collator("mlm", tok, seed=1), ours_feats),
                ("ours", "wwm" + (" (jieba, on the fly)" if lang == "zh" else " (##)"),
                 build_collator("wwm", tok, seed=1), ours_feats),
                ("ours", "ngram", build_collator("ngram", tok, seed=1), ours_feats),
                ("ours", "span", build_collator("span", tok, seed=1), ours_feats),
            ]
            if lang == "zh":
                from datasets import Dataset

                from hf_pretrain_ext.collators.words import load_jieba
                load_jieba()  # dictionary loading is a one-off, not part of the preparation rate
                start = time.perf_counter()
                annotated = add_word_starts(Dataset.from_list(ours_feats), tok)
                prep = len(ours_feats) / (time.perf_counter() - start)
                pre_feats = [annotated[i] for i in range(len(annotated))]
                configs.append(("ours", f"wwm (jieba precomputed with add_word_starts at {prep:.0f} ex/s)",
                                build_collator("wwm", tok, seed=1), pre_feats))
            for who, objective, collator, data in configs:
                rate = throughput(collator, data, args.batch_size, args.repeats)
                rows.append({"corpus": "wikitext2-valid" if lang == "en" else "CLUECorpusSmall_sampled",
                             "block": length, "collator": who, "objective": objective,
                             "examples_per_s": round(rate, 1), "tokens_per_s": round(rate * length)})
                print(f"{lang} {length:4d} {who:58s} {objective:60s} {rate:10.1f} ex/s", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    lines = [f"# Collator throughput ({datetime.date.today().isoformat()})", "",
             f"- Machine: {cpu}, {os.cpu_count()} cores visible, shared with other jobs (load average at the end: "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}); torch.set_num_threads(1), one process.",
             f"- Versions: Python {platform.python_version()}, torch {torch.__version__}, transformers "
             f"{transformers.__version__}, numpy {np.__version__}, jieba {__import__('jieba').__version__}.",
             f"- Command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}` (median of {args.repeats} "
             f"passes over {args.blocks} blocks, batch size {args.batch_size}).",
             "- HF gets offset_mapping and special_tokens_mask precomputed; ours gets input_ids and example_index. "
             "HF's whole_word_mask forces 100% [MASK] and treats an unspaced CJK run as one word; ours does "
             "80/10/10 and segments Chinese with jieba "
             "(on the fly in the wwm, ngram and span rows unless marked precomputed).", "",
             "| corpus | block | collator | objective | examples/s | tokens/s |", "|---|---:|---|---|---:|---:|"]
    lines += [f"| {r['corpus']} | {r['block']} | {r['collator']} | {r['objective']} | {r['examples_per_s']:.0f} | "
              f"{r['tokens_per_s']} |" for r in rows]
    lines += ["", "Ours vs HF whole_word_mask=True (same blocks, examples/s ratio):", ""]
    for corpus in dict.fromkeys(r["corpus"] for r in rows):
        for block in (128, 512):
            sel = [r for r in rows if r["corpus"] == corpus and r["block"] == block]
            hf = next(r["examples_per_s"] for r in sel if "whole_word_mask" in r["collator"])
            ours = [r for r in sel if r["collator"] == "ours" and r["objective"].startswith("wwm")]
            lines += [f"- {corpus} {block}: {r['objective']}: {r['examples_per_s'] / hf:.1f}x" for r in ours]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
