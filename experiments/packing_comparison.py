"""Short pretraining comparison on CPU (#19): padded line-by-line vs packed documents (unpadded) vs packed + a
30% -> 15% masking schedule, same steps, batch, seed and tokenizer; held-out masked-token loss at 15%.

Corpus: SST-2 training sentences from ../shared/data (or $HFPX_DATA), one document per line (short documents, where
padding costs most); held out: the SST-2 dev sentences, packed as documents (each attends only to itself, so the
packing does not change what is scored), masked at 15% with one fixed seed, the same masks for every variant.
Each variant and seed is one `run_pretrain.py` run in a fresh process (the default tiny hfpx-bert, --max_steps,
batch 32, max_seq_length 128); the held-out figures are computed here from each saved model, so every variant is
scored on identical inputs. Mean +- sample standard deviation over --seeds. Writes
experiments/results/packing_comparison.md.

    python experiments/packing_comparison.py --max_steps 600 --seeds 0 1 2
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
VARIANTS = {
    "padded line_by_line (15%)": ["--line_by_line"],
    "packed documents + unpadded (15%)": ["--packing", "documents", "--unpad"],
    "packed documents + unpadded, 30% -> 15% linear": ["--packing", "documents", "--unpad", "--mlm_probability",
                                                      "linear:0.3,0.15"],
}


def sentences(split):
    rows = (DATA / "sst2" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [r.rsplit("\t", 1)[0].strip() for r in rows if r.rsplit("\t", 1)[0].strip()]


def held_out(model_dir, texts, batch=64):
    """(loss per masked token, accuracy) at 15% on the packed held-out documents."""
    from datasets import Dataset, DatasetDict
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    import hf_pretrain_ext  # noqa: F401  (registers hfpx-bert)
    from hf_pretrain_ext.collators import MLMCollator
    from hf_pretrain_ext.data.grouping import tokenize_and_group
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    ds = tokenize_and_group(DatasetDict({"validation": Dataset.from_dict({"text": texts})}), tok, 128,
                            load_from_cache=False, packing="documents")["validation"]
    collator = MLMCollator(tok, 0.15, seed=1234)
    loss_sum, right, count = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(ds), batch):
            b = collator([ds[i] for i in range(start, min(start + batch, len(ds)))])
            out = model(input_ids=b["input_ids"], document_ids=b["document_ids"], labels=b["labels"])
            n = int((b["labels"] != -100).sum())
            loss_sum += float(out.loss) * n
            right += int((out.logits.argmax(-1) == b["labels"][b["labels"] != -100]).sum())
            count += n
    return loss_sum / count, right / count, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max_steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default="/tmp/hfpx_packing_comparison")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train = work / "sst2_train.txt"
    train.write_text("\n".join(sentences("train")) + "\n", encoding="utf-8")
    dev = sentences("dev")
    from hf_pretrain_ext.data.tokenizer import train_wordpiece
    train_wordpiece(train.read_text(encoding="utf-8").splitlines(), 8000).save_pretrained(work / "tok")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    rows = []
    for name, flags in VARIANTS.items():
        runs = []
        for seed in args.seeds:
            out = work / f"{name.split(' (')[0].split(',')[0].replace(' ', '_').replace('+', 'and')}_{seed}"
            cmd = [sys.executable, str(REPO / "run_pretrain.py"), "--train_file", str(train), "--document_split",
                   "line", "--tokenizer_name", str(work / "tok"), "--max_steps", str(args.max_steps), "--seed",
                   str(seed), "--do_train", "--output_dir", str(out), "--overwrite_output_dir", "--disable_tqdm",
                   "true", "--save_steps", str(args.max_steps), *flags]
            began = time.time()
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            minutes = (time.time() - began) / 60
            loss, acc, n = held_out(out, dev)
            runs.append((minutes, loss, acc))
            print(name, seed, f"{minutes:.1f} min", f"loss {loss:.4f}", f"acc {acc:.4f}", flush=True)
        m, losses, accs = zip(*runs)
        spread = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else float("nan"))
        rows.append(f"| {name} | {statistics.mean(m):.1f} | {statistics.mean(losses):.4f} +- {spread(losses):.4f} | "
                    f"{statistics.mean(accs):.4f} +- {spread(accs):.4f} | "
                    f"{', '.join(f'{x:.4f}' for x in losses)} |")
        print(rows[-1], flush=True)
    text = [f"# Padded vs packed vs packed + masking schedule, tiny hfpx-bert on CPU ({datetime.date.today()})", "",
            f"- Command: `python experiments/packing_comparison.py --max_steps {args.max_steps} --seeds "
            f"{' '.join(map(str, args.seeds))}`",
            f"- Machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}",
            f"- Train: SST-2 training sentences (one document each), {args.max_steps} steps of 32 examples of at most "
            f"128 tokens, learning rate 1e-3 (the default job's settings), one tokenizer for all; seeds "
            f"{', '.join(map(str, args.seeds))} (model init, data order, masks).",
            f"- Held out: SST-2 dev sentences packed as documents, 15% masked with one seed ({n} masked tokens, the "
            "same for every variant).", "",
            "| variant | minutes per run | held-out masked-token loss | held-out accuracy | loss per seed |",
            "|---|---:|---:|---:|---|", *rows]
    dest = REPO / "experiments" / "results" / "packing_comparison.md"
    dest.write_text("\n".join(text) + "\n")
    print("wrote", dest)


if __name__ == "__main__":
    main()
