"""End-to-end training-step throughput: ours (hfpx-bert with the fused sparse MLM head, hfpx-gpt with the fused
causal head) vs stock transformers (BertForMaskedLM, GPT2LMHeadModel), same config, same initial weights (the
state_dict layouts are identical), same batches.

Loop: a plain PyTorch step (forward with labels, backward, AdamW step, zero_grad), SDPA attention, bf16 autocast
with fp32 weights on CUDA (what Trainer --bf16 does), fp32 on CPU. Batches come from a torch DataLoader with the
package's collators (MLMCollator: 15% masking; CausalLMCollator: packed documents with restarting position ids)
and `--workers` worker processes. Data: synthetic Zipf-distributed token ids from a synthetic WordPiece vocabulary
of the preset's size (throughput does not depend on content; a Zipf stream still gives a falling loss).

Measured after `--warmup` steps, over `--steps` steps, with a device sync at both ends of the window:
tokens/s = steps * batch * seq / wall time; input wait share = time the loop spent blocked in next(loader) /
wall time. The host runs at most about one step ahead of the GPU (our head and the Trainer sync on the host), so
the input wait share is an upper bound of GPU idle time caused by input.
Presets ending in `-docs` (#19) train on documents of Zipf ids with lengths 1 + Geometric(1/40) tokens (at most
seq - 2): stock BERT and ours on padded line-by-line examples (one document per row, the batch padded to its
longest row), ours on packed documents (whole [CLS] doc [SEP] pieces next-fit into rows of seq, document_ids:
per-document positions and attention) and on packed + unpadded rows (config.unpadded); tokens/s there counts
real (non-padding) tokens only, so the rows compare the work done on text.
`--compare_loss N` trains N steps ours vs stock from the same seed and writes both curves and the max |diff|.
`--profile` writes torch.profiler's table (top ops) for a few steps of each model.

Writes results/e2e_<cpu|cuda>_<date>.{csv,md} (+ _loss.{csv,png}, _profile_<model>.txt).
Example: python benchmarks/bench_e2e.py --preset bert-base gpt2-small --compare_loss 200 --profile
"""
import argparse
import csv
import datetime
import os
import sys
import time

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_fused_loss as flb  # noqa: E402  (device name, versions, results folder)
import bench_head  # noqa: E402  (nvidia-smi)

from hf_pretrain_ext.collators import CausalLMCollator, MLMCollator  # noqa: E402
from hf_pretrain_ext.models import HfpxBertConfig, HfpxBertForMaskedLM  # noqa: E402
from hf_pretrain_ext.models.configuration_hfpx_gpt import HfpxGPTConfig  # noqa: E402
from hf_pretrain_ext.models.modeling_hfpx_gpt import HfpxGPTForCausalLM  # noqa: E402

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 vocab_size=30522, max_position_embeddings=512)
GPT2_SMALL = dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024)
# name: (task, model config, batch on CUDA, batch on CPU, seq)
PRESETS = {
    "bert-base": ("mlm", BERT_BASE, 256, 2, 128),
    "gpt2-small": ("causal", GPT2_SMALL, 16, 1, 1024),
    "tiny": ("mlm", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
                         vocab_size=2048, max_position_embeddings=128), 8, 8, 64),
    "tiny-causal": ("causal", dict(n_embd=64, n_layer=2, n_head=2, vocab_size=2048, n_positions=128,
                                      bos_token_id=3, eos_token_id=3), 8, 8, 64),
    "bert-base-docs": ("mlm-docs", BERT_BASE, 256, 2, 128),
    "tiny-docs": ("mlm-docs", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
                                   vocab_size=2048, max_position_embeddings=128), 8, 8, 64),
}
# the models each task trains: name -> (stock or ours, how the documents are laid out, unpadded)
RUNS = {"mlm": {"stock": ("stock", "blocks", False), "ours": ("ours", "blocks", False)},
        "causal": {"stock": ("stock", "blocks", False), "ours": ("ours", "blocks", False)},
        "mlm-docs": {"stock": ("stock", "padded", False), "ours": ("ours", "padded", False),
                     "ours-packed": ("ours", "packed", False), "ours-packed-unpadded": ("ours", "packed", True)}}
MODELS = {"mlm": {"ours": (HfpxBertConfig, HfpxBertForMaskedLM), "stock": (BertConfig, BertForMaskedLM)},
          "mlm-docs": {"ours": (HfpxBertConfig, HfpxBertForMaskedLM), "stock": (BertConfig, BertForMaskedLM)},
          "causal": {"ours": (HfpxGPTConfig, HfpxGPTForCausalLM), "stock": (GPT2Config, GPT2LMHeadModel)}}


def synthetic_tokenizer(vocab_size):
    """A WordPiece tokenizer over [PAD] [UNK] [CLS] [SEP] [MASK] t5 t6 ...: only its ids and specials are used."""
    from tokenizers import Tokenizer, models
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {tok: i for i, tok in enumerate(specials + [f"t{i}" for i in range(len(specials), vocab_size)])}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordPiece(vocab, unk_token="[UNK]")),
                                   unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]", eos_token="[SEP]")


class ZipfBlocks(torch.utils.data.Dataset):
    """Blocks of `seq` ids, Zipf(1.1) over the ordinary vocabulary; mlm: [CLS] ... [SEP]; causal: documents of
    ~seq/4 tokens separated by [SEP] (the EOS)."""

    def __init__(self, task, tokenizer, seq, size, seed=0):
        self.task, self.tok, self.seq, self.size, self.seed = task, tokenizer, seq, size, seed
        self.n_ordinary = len(tokenizer) - 5

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, index])
        ids = 5 + (rng.zipf(1.1, self.seq) - 1) % self.n_ordinary
        if self.task == "mlm":
            ids[0], ids[-1] = self.tok.cls_token_id, self.tok.sep_token_id
        else:
            ids[rng.random(self.seq) < 4 / self.seq] = self.tok.eos_token_id
        return {"input_ids": ids.tolist(), "example_index": index}


class ZipfDocuments(torch.utils.data.Dataset):
    """Documents of Zipf ids, lengths 1 + Geometric(1/40) (at most seq - 2), each [CLS] doc [SEP]: one per example
    ('padded'), or next-fit into examples of at most seq tokens with document_lengths ('packed')."""

    def __init__(self, tokenizer, seq, size, seed=0, layout="packed", mean=40):
        rng = np.random.default_rng([seed, 7])
        n_ordinary, self.examples = len(tokenizer) - 5, []
        while len(self.examples) < size:
            n = min(int(rng.geometric(1 / mean)), seq - 2)
            doc = [tokenizer.cls_token_id, *(5 + (rng.zipf(1.1, n) - 1) % n_ordinary).tolist(), tokenizer.sep_token_id]
            if layout == "padded" or not self.examples or len(self.examples[-1]["input_ids"]) + len(doc) > seq:
                self.examples.append({"input_ids": doc, "document_lengths": [len(doc)]})
            else:
                self.examples[-1]["input_ids"] += doc
                self.examples[-1]["document_lengths"].append(len(doc))
        for i, ex in enumerate(self.examples):
            ex["example_index"] = i
            if layout == "padded":
                del ex["document_lengths"]  # a plain line-by-line example: no document_ids

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, index):
        return self.examples[index]


def build(task, name, cfg, seed):
    """The stock model initialised from `seed`, or ours loaded with exactly its weights."""
    torch.manual_seed(seed)
    config_cls, model_cls = MODELS[task]["stock"]
    stock = model_cls(config_cls(**cfg, attn_implementation="sdpa"))
    if name == "stock":
        return stock
    config_cls, model_cls = MODELS[task]["ours"]
    ours = model_cls(config_cls(**cfg, attn_implementation="sdpa"))
    ours.load_state_dict(stock.state_dict())
    return ours


def make_loader(task, tokenizer, batch, seq, steps, workers, seed, layout="blocks"):
    collator = CausalLMCollator(tokenizer) if task == "causal" else MLMCollator(tokenizer, seed=seed)
    data = ZipfBlocks(task, tokenizer, seq, batch * steps, seed) if layout == "blocks" else \
        ZipfDocuments(tokenizer, seq, batch * steps, seed, layout)
    return torch.utils.data.DataLoader(data, batch_size=batch, collate_fn=collator, num_workers=workers,
                                       pin_memory=torch.cuda.is_available(), persistent_workers=False,
                                       prefetch_factor=4 if workers else None)


def train(model, loader, device, steps, warmup, lr=1e-4, seed=0, profiler=None):
    """Runs warmup + steps steps; returns (wall s, input wait s) of the last `steps`, the per-step losses and the
    real (non-padding) tokens of the last `steps`."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, fused=device.type == "cuda")
    torch.manual_seed(seed)  # same dropout masks for ours and stock
    autocast = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    batches, losses, wait, real = iter(loader), [], 0.0, 0
    for step in range(warmup + steps):
        if step == warmup:
            flb.sync(device)
            start, wait, real = time.perf_counter(), 0.0, 0
        t0 = time.perf_counter()
        batch = next(batches)
        wait += time.perf_counter() - t0
        mask = batch.get("attention_mask")  # counted on the host, before the copy: no device sync
        real += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        if profiler is not None:
            profiler.step()
    flb.sync(device)
    return time.perf_counter() - start, wait, [x.item() for x in losses], real


def write_loss_curves(prefix, curves):
    with open(prefix + "_loss.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["preset", "step", "loss_ours", "loss_stock", "abs_diff"])
        for preset, (ours, stock) in curves.items():
            writer.writerows([preset, i, a, b, abs(a - b)] for i, (a, b) in enumerate(zip(ours, stock)))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5), squeeze=False)
    for ax, (preset, (ours, stock)) in zip(axes[0], curves.items()):
        ax.plot(stock, label="stock (eager head)")
        ax.plot(ours, "--", label="ours (fused head)")
        ax.set_title(f"{preset}: max |diff| {max(abs(a - b) for a, b in zip(ours, stock)):.2e}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(prefix + "_loss.png", dpi=110)


def make_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", nargs="+", default=["tiny", "tiny-causal"], choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=None, help="default: the preset's batch for the device")
    p.add_argument("--steps", type=int, default=None, help="measured steps (default 20 CUDA, 5 CPU)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--compare_loss", type=int, default=0, metavar="N", help="train N steps ours vs stock")
    p.add_argument("--profile", action="store_true", help="write a torch.profiler table per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="output path prefix (default results/e2e_<device>_<date>)")
    return p


def main(argv=None):
    args = make_parser().parse_args(argv)
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    steps = args.steps or (5 if cpu else 20)
    date = datetime.datetime.now()
    prefix = args.out or os.path.join(flb.RESULTS, f"e2e_{'cpu' if cpu else 'cuda'}_{date:%Y%m%d}")
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    rows, curves = [], {}
    for preset in args.preset:
        task, cfg, gpu_batch, cpu_batch, seq = PRESETS[preset]
        batch = args.batch or (cpu_batch if cpu else gpu_batch)
        tokenizer = synthetic_tokenizer(cfg["vocab_size"])
        for name, (kind, layout, unpadded) in RUNS[task].items():
            model = build(task, kind, cfg, args.seed)
            if unpadded:
                model.config.unpadded = True
            loader = make_loader(task, tokenizer, batch, seq, args.warmup + steps, args.workers, args.seed, layout)
            wall, wait, losses, real = train(model, loader, device, steps, args.warmup, args.lr, args.seed)
            rows.append(dict(preset=preset, model=name, cls=type(model).__name__, batch=batch, seq=seq,
                             steps=steps, tokens_per_s=round(real / wall, 1),
                             ms_per_step=round(wall / steps * 1e3, 2), input_wait_share=round(wait / wall, 4),
                             last_loss=round(losses[-1], 4)))
            print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
            if args.profile:
                from torch.profiler import ProfilerActivity, profile, schedule
                acts = [ProfilerActivity.CPU] + ([] if cpu else [ProfilerActivity.CUDA])
                model = build(task, kind, cfg, args.seed)
                model.config.unpadded = unpadded if kind == "ours" else getattr(model.config, "unpadded", False)
                with profile(activities=acts, schedule=schedule(wait=1, warmup=1, active=3, repeat=1)) as prof:
                    train(model, make_loader(task, tokenizer, batch, seq, 5, args.workers, args.seed, layout), device, 4, 1,
                          args.lr, args.seed, profiler=prof)
                with open(f"{prefix}_profile_{preset}_{name}.txt", "w") as f:
                    f.write(prof.key_averages().table(sort_by="cpu_time_total" if cpu else "cuda_time_total",
                                                      row_limit=30))
            del model
        if args.compare_loss:
            pair = []
            for name in ("ours", "stock"):
                model = build(task, name, cfg, args.seed)
                loader = make_loader(task, tokenizer, batch, seq, args.compare_loss, args.workers, args.seed,
                                     "padded" if task == "mlm-docs" else "blocks")
                pair.append(train(model, loader, device, args.compare_loss - 1, 1, args.lr, args.seed)[2])
                del model
            curves[preset] = pair
            print(f"{preset}: max |loss ours - loss stock| over {args.compare_loss} steps = "
                  f"{max(abs(a - b) for a, b in zip(*pair)):.3e}", flush=True)
    base = {r["preset"]: r["tokens_per_s"] for r in rows if r["model"] == "stock"}
    for r in rows:
        r["speedup_vs_stock"] = round(r["tokens_per_s"] / base[r["preset"]], 3)
    with open(prefix + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if curves:
        write_loss_curves(prefix, curves)
    smi = bench_head.gpu_info()
    command = " ".join(["python", os.path.relpath(sys.argv[0])] + (sys.argv[1:] if argv is None else argv))
    lines = [f"# End-to-end training step ({'CPU' if cpu else 'GPU'}), {date:%Y-%m-%d}", "",
             f"- device: {flb.device_name(device)}" + (f" (nvidia-smi: {smi})" if smi else ""),
             f"- versions: {', '.join(f'{k} {v}' for k, v in flb.versions().items())}",
             f"- command: `{command}`", f"- date: {date.isoformat(timespec='seconds')}; warm-up {args.warmup} steps; "
             f"{args.workers} loader workers; {'fp32' if cpu else 'bf16 autocast'}; SDPA; AdamW",
             "- method: see the docstring of benchmarks/bench_e2e.py", "",
             "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    for preset, (ours, stock) in curves.items():
        lines.append(f"\nLoss curves {preset} ({len(ours)} steps, same seed and batches): max |ours - stock| = "
                     f"{max(abs(a - b) for a, b in zip(ours, stock)):.3e}; final ours {ours[-1]:.4f}, "
                     f"stock {stock[-1]:.4f} ({os.path.basename(prefix)}_loss.csv/.png)")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {prefix}.csv/.md")
    return rows, curves


if __name__ == "__main__":
    main()
