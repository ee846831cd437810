"""Linear probes: how much does each layer of a frozen encoder know about a task, pretrained vs random init?

    python experiments/linear_probe.py CHECKPOINT TASK_DIR [--seeds 0,1,2] [--columns sentence,label] [--out FILE]

For every layer's output (embeddings, layer 1, ...), the mean over non-padding tokens is standardised (train-set
statistics) and an L2-regularised multinomial logistic regression is fitted to convergence with L-BFGS on
TASK_DIR/train.tsv, then scored on TASK_DIR/test.tsv. The random-init rows use the checkpoint's config and
tokenizer with fresh weights, one encoder per seed. Unlike fine-tuning, nothing in the encoder moves, so this
measures the representations alone (downstream.py --strategy feature_based is the same question through
run_finetune.py with a learned scalar mix and a fixed budget). Deterministic on CPU; about a minute per task.
"""
import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import hf_pretrain_ext  # noqa: E402,F401  (registers hfpx-* with the Auto classes)
from hf_pretrain_ext.finetune.data import LABEL_COLUMNS, TEXT_COLUMNS, read_rows  # noqa: E402
from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: E402


def read_task(path, columns):
    """(texts, labels) of a labelled file, read as run_finetune.py reads it."""
    header, rows = read_rows(path, ",".join(columns) if columns else None)
    text = next(name for name in TEXT_COLUMNS if name in header)
    label = next(name for name in LABEL_COLUMNS if name in header)
    rows = [r for r in rows if r[text].strip() and r[label].strip()]
    return [r[text] for r in rows], [r[label] for r in rows]


@torch.no_grad()
def layer_features(model, tokenizer, texts, max_length, batch=64):
    """[layers + 1, N, H]: mean-pooled hidden states of every layer."""
    out = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        states = model(**enc, output_hidden_states=True).hidden_states
        mask = enc["attention_mask"][..., None].float()
        out.append(torch.stack([(h * mask).sum(1) / mask.sum(1) for h in states]))
    return torch.cat(out, 1)


def probe(train_x, train_y, test_x, test_y, classes, l2=1e-3):
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mu) / sd, (test_x - mu) / sd
    weight = torch.zeros(train_x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(train_x @ weight + bias, train_y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return ((test_x @ weight + bias).argmax(-1) == test_y).float().mean().item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("task_dir")
    p.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--columns", type=lambda s: s.split(","), help="column names of header-less tsv files (TNEWS)")
    p.add_argument("--max_length", type=int, default=128)
    p.add_argument("--out", help="append the markdown rows to this file")
    args = p.parse_args()
    train_x, train_labels = read_task(Path(args.task_dir) / "train.tsv", args.columns)
    test_x, test_labels = read_task(Path(args.task_dir) / "test.tsv", args.columns)
    labels = sorted(set(train_labels))
    unseen = sorted(set(test_labels) - set(labels))
    if unseen:
        sys.exit(f"test labels not in train: {unseen[:5]}")
    train_y = torch.tensor([labels.index(x) for x in train_labels])
    test_y = torch.tensor([labels.index(x) for x in test_labels])
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    config = AutoConfig.from_pretrained(args.checkpoint)
    results = {}
    for init in ("pretrained", "random"):
        per_seed = []
        for seed in args.seeds if init == "random" else args.seeds[:1]:  # the pretrained encoder is one model
            torch.manual_seed(seed)
            model = (AutoModel.from_pretrained(args.checkpoint) if init == "pretrained"
                     else AutoModel.from_config(config))
            model.eval()
            feats = layer_features(model, tokenizer, train_x, args.max_length)
            test_feats = layer_features(model, tokenizer, test_x, args.max_length)
            per_seed.append([probe(feats[k], train_y, test_feats[k], test_y, len(labels)) for k in range(len(feats))])
        results[init] = per_seed
    task = Path(args.task_dir).name
    lines = []
    for init, per_seed in results.items():
        cells = []
        for k in range(len(per_seed[0])):
            vals = [s[k] for s in per_seed]
            spread = f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else ""
            cells.append(f"{statistics.mean(vals):.3f}{spread}")
        lines.append(f"| {task} | {len(train_x)} / {len(test_x)} | {init} ({len(per_seed)} encoder(s)) | "
                     + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
