"""Benchmark of the whole MLM head + loss (the issue's "head" figure): last hidden states [B, L, H] + labels in,
loss out, fwd / bwd / full, per provider; time, peak extra memory and useful TFLOP/s.

Providers (MLM presets; the head is BERT's: transform = dense + GELU + LayerNorm, then the tied decoder + bias):
- `hf`: stock `BertOnlyMLMHead` on every row, then `CrossEntropyLoss` on [B*L, V] logits, as
  `BertForMaskedLM.forward` does (no upcast: the loss runs in the logits' dtype, as stock does);
- `ours`: `modeling_hfpx_bert.masked_lm_loss`, the exact code hfpx-bert trains with: gather the labelled rows,
  transform them, `fused_linear_cross_entropy` (backend auto: Triton on CUDA, chunked torch on CPU);
- `liger` / `cce`: Liger-Kernel FLCE / cut-cross-entropy after the head transform on every row (a drop-in use),
  and `liger-gathered` / `cce-gathered`: the same kernels given our gathered, transformed rows. Skipped with a
  note when not importable or not on CUDA. cut-cross-entropy 25.1 has no bias argument: the decoder bias is
  folded in as an extra input column (see _fold_bias; that concatenation is timed as part of cce).
The causal preset has no transform (a bias-free LM head): `hf` = F.linear + fp32 cross-entropy (v5 causal LMs
upcast logits), `ours` = fused_linear_cross_entropy, `liger` / `cce` on all rows.

Gradients are taken w.r.t. the hidden states and every head parameter. Useful FLOPs = 2/4/6 * N_labelled * H * V
for fwd/bwd/full (head transform and wasted rows not counted). Timing and peak memory reuse bench_fused_loss
(CUDA events / perf_counter; max_memory_allocated delta / profiler allocator events on CPU). Every provider's loss
is checked against `hf` first. dtype: bf16 tensors on CUDA, fp32 on CPU.

Writes results/head_<cpu|cuda>_<date>.{csv,png,md}; the .md holds device (nvidia-smi name/driver), versions,
date, command line and the table. Example: python benchmarks/bench_head.py --preset bert-base modernbert
"""
import argparse
import csv
import datetime
import os
import subprocess
import sys

import torch
import torch.nn.functional as F
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_fused_loss as flb  # noqa: E402  (shared timing, memory, versions, plot)

from hf_pretrain_ext.kernels import fused_linear_cross_entropy  # noqa: E402
from hf_pretrain_ext.models import HfpxBertConfig  # noqa: E402
from hf_pretrain_ext.models.modeling_hfpx_bert import masked_lm_loss  # noqa: E402

# name: (batch, seq, hidden, vocab, labelled fraction, kind)
PRESETS = {
    "bert-base": (32, 512, 768, 30522, 0.15, "mlm"),
    "modernbert": (32, 512, 768, 50368, 0.30, "mlm"),
    "bert-large": (32, 512, 1024, 30522, 0.15, "mlm"),
    "causal-8k": (1, 8192, 4096, 128256, 1.0, "causal"),
    "tiny": (4, 128, 128, 8192, 0.15, "mlm"),
    "tiny-causal": (1, 512, 128, 8192, 1.0, "causal"),
}


def make_head(kind, hidden, vocab, dtype, device, seed=0):
    torch.manual_seed(seed)
    if kind == "causal":
        return torch.nn.Linear(hidden, vocab, bias=False).to(device, dtype)
    head = BertOnlyMLMHead(BertConfig(hidden_size=hidden, vocab_size=vocab))
    torch.nn.init.normal_(head.predictions.decoder.weight, std=0.02)
    torch.nn.init.normal_(head.predictions.bias, std=0.02)
    head.predictions.decoder.bias = head.predictions.bias  # tied, as the models tie them
    return head.to(device, dtype)


def make_inputs(batch, seq, hidden, vocab, frac, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, seq, hidden, generator=g).to(device, dtype).requires_grad_()
    labels = torch.randint(0, vocab, (batch, seq), generator=g)
    labels[torch.rand(batch, seq, generator=g) >= frac] = -100
    return states, labels.to(device)


def gathered(head, states, labels):
    """Our gather + transform: ([n_labelled, H] transformed rows, [n_labelled] labels)."""
    flat = labels.reshape(-1)
    rows = (flat != -100).nonzero().squeeze(-1)
    return head.predictions.transform(states.reshape(-1, states.shape[-1]).index_select(0, rows)), flat[rows]


def make_providers(kind, head, device):
    """name -> loss(states, labels), and name -> reason it is skipped."""
    if kind == "causal":
        w, b = head.weight, None
        providers = {"hf": lambda s, y: F.cross_entropy(head(s).float().view(-1, w.shape[0]), y.view(-1)),
                     "ours": lambda s, y: fused_linear_cross_entropy(s, w, y)}
        all_rows = lambda s, y: (s.reshape(-1, s.shape[-1]), y.reshape(-1))  # noqa: E731
        inputs_for = {"": all_rows}
    else:
        pred = head.predictions
        w, b = pred.decoder.weight, pred.bias
        config = HfpxBertConfig(sparse_prediction=True, use_fused_loss=True)
        providers = {"hf": lambda s, y: F.cross_entropy(head(s).view(-1, w.shape[0]), y.view(-1)),
                     "ours": lambda s, y: masked_lm_loss(config, pred, s, y)[0]}
        inputs_for = {"": lambda s, y: (pred.transform(s.reshape(-1, s.shape[-1])), y.reshape(-1)),
                      "-gathered": lambda s, y: gathered(head, s, y)}
    if device.type != "cuda":
        return providers, {"liger": "needs CUDA", "cce": "needs CUDA"}
    skipped = {}
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy as liger
        for suffix, prep in inputs_for.items():
            providers["liger" + suffix] = lambda s, y, prep=prep: _first(liger(*_rows_weight_labels(prep, s, y, w),
                                                                               bias=b))
    except ImportError as err:
        skipped["liger"] = f"not importable ({err})"
    try:
        from cut_cross_entropy import linear_cross_entropy as cce
        for suffix, prep in inputs_for.items():
            providers["cce" + suffix] = lambda s, y, prep=prep: cce(*_fold_bias(*_rows_weight_labels(prep, s, y, w), b))
    except ImportError as err:
        skipped["cce"] = f"not importable ({err})"
    return providers, skipped


def _rows_weight_labels(prep, states, labels, weight):
    rows, labels = prep(states, labels)
    return rows, weight, labels


def _fold_bias(rows, weight, labels, bias):
    """cut-cross-entropy 25.1 takes no bias: rows [N, H] -> [N, H+8] = [rows, 1, 0..], weight -> [weight, bias, 0..]
    (8 columns keep H aligned; the concatenations run inside the timed region, charged to cce)."""
    if bias is None:
        return rows, weight, labels
    pad = 8
    ones = torch.zeros(rows.shape[0], pad, dtype=rows.dtype, device=rows.device)
    ones[:, 0] = 1
    extra = torch.zeros(weight.shape[0], pad, dtype=weight.dtype, device=weight.device)
    extra = torch.cat([bias[:, None], extra[:, 1:]], 1)
    return torch.cat([rows, ones], 1), torch.cat([weight, extra], 1), labels


def _first(out):  # some Liger versions return (loss, z_loss)
    return out[0] if isinstance(out, tuple) else out


def thunk_maker(fn, states, labels, params, mode):
    wrt = [states, *params]
    if mode == "fwd":
        return lambda: (lambda: fn(states, labels).detach())
    if mode == "full":
        return lambda: (lambda: torch.autograd.grad(fn(states, labels), wrt))

    def make():
        loss = fn(states, labels)
        return lambda: torch.autograd.grad(loss, wrt, retain_graph=True)
    return make


def gpu_info():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
        return out or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_markdown(path, rows, meta):
    lines = [f"# Head benchmark ({'CPU' if meta['device_type'] == 'cpu' else 'GPU'}), {meta['date'][:10]}", "",
             f"- device: {meta['device']}" + (f" (nvidia-smi: {meta['nvidia_smi']})" if meta["nvidia_smi"] else ""),
             f"- versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
             f"- command: `{meta['command']}`", f"- date: {meta['date']}; reps: {meta['reps']}; dtype: {meta['dtype']}",
             f"- skipped: {meta['skipped'] or 'none'}",
             "- method: see the docstring of benchmarks/bench_head.py; peak = extra tensor memory during the region",
             "", "| preset | provider | mode | ms median | ms min | peak MiB | useful TFLOP/s | vs hf (time) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = next(x for x in rows if x["preset"] == r["preset"] and x["mode"] == r["mode"] and x["provider"] == "hf")
        lines.append(f"| {r['preset']} | {r['provider']} | {r['mode']} | {r['ms_median']} | {r['ms_min']} | "
                     f"{r['peak_mib']} | {r['useful_tflops']} | {base['ms_median'] / r['ms_median']:.2f}x |")
    lines += ["", "Ratios, mode full (fwd+bwd), from the table above:"]
    for preset in dict.fromkeys(r["preset"] for r in rows):
        full = {r["provider"]: r for r in rows if r["preset"] == preset and r["mode"] == "full"}
        ours, hf = full["ours"], full["hf"]
        text = (f"- {preset}: hf / ours time {hf['ms_median'] / ours['ms_median']:.2f}x, "
                f"ours / hf peak memory {ours['peak_mib'] / max(hf['peak_mib'], 1e-9):.3f}")
        peers = [r for p, r in full.items() if p not in ("hf", "ours")]
        if peers:
            best = min(peers, key=lambda r: r["ms_median"])
            text += f", best peer {best['provider']} / ours time {best['ms_median'] / ours['ms_median']:.2f}x"
        lines.append(text)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def make_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", nargs="+", default=["tiny"], choices=sorted(PRESETS))
    p.add_argument("--providers", nargs="+", default=None, help="subset of hf ours liger cce *-gathered")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="output path prefix (default results/head_<device>_<date>)")
    return p


def main(argv=None):
    args = make_parser().parse_args(argv)
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    dtype = torch.float32 if cpu else torch.bfloat16
    rows, skipped = [], {}
    for preset in args.preset:
        B, L, H, V, frac, kind = PRESETS[preset]
        head = make_head(kind, H, V, dtype, device)
        states, labels = make_inputs(B, L, H, V, frac, dtype, device)
        n_lab = int((labels != -100).sum())
        providers, why = make_providers(kind, head, device)
        skipped.update(why)
        if args.providers:
            providers = {k: v for k, v in providers.items() if k in args.providers or k == "hf"}
        truth = providers["hf"](states, labels).float().item()
        params = [p for p in head.parameters() if p.requires_grad]
        for name, fn in providers.items():
            try:
                got = fn(states, labels).float().item()
                problem = None if abs(got - truth) <= 2e-2 * max(1.0, abs(truth)) else f"loss {got} != hf {truth}"
            except Exception as err:  # noqa: BLE001 - a peer that fails is reported, not fatal
                problem = f"failed: {type(err).__name__}: {str(err)[:200]}"
            if problem and name in ("hf", "ours"):
                raise SystemExit(f"{name} on {preset}: {problem}")
            if problem:
                skipped[f"{name} ({preset})"] = problem
                print(f"skip {name} on {preset}: {problem}", flush=True)
                continue
            for mode in flb.MODES:
                make = thunk_maker(fn, states, labels, params, mode)
                ms, ms_min = flb.time_thunks(make, args.reps, device)
                peak = flb.peak_extra_bytes(make(), device)
                tflops = flb.FLOP_FACTOR[mode] * n_lab * H * V / (ms * 1e-3) / 1e12
                rows.append(dict(preset=preset, shape=f"{preset}: B={B} L={L} H={H} V={V} labelled={frac}",
                                 provider=name, mode=mode, n_labelled=n_lab, dtype=str(dtype).split(".")[1],
                                 ms_median=round(ms, 3), ms_min=round(ms_min, 3), peak_mib=round(peak / 2 ** 20, 2),
                                 useful_tflops=round(tflops, 4)))
                print(" ".join(f"{k}={v}" for k, v in rows[-1].items() if k != "shape"), flush=True)
        del head, states
    date = datetime.datetime.now()
    prefix = args.out or os.path.join(flb.RESULTS, f"head_{'cpu' if cpu else 'cuda'}_{date:%Y%m%d}")
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with open(prefix + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    meta = dict(device=flb.device_name(device), device_type=device.type, nvidia_smi=gpu_info(),
                versions=flb.versions(), date=date.isoformat(timespec="seconds"), reps=args.reps,
                dtype=str(dtype).split(".")[1], skipped=skipped,
                command=" ".join(["python", os.path.relpath(sys.argv[0])] + (sys.argv[1:] if argv is None else argv)))
    write_markdown(prefix + ".md", rows, meta)
    flb.plot(rows, prefix + ".png", f"{'CPU: ' if cpu else ''}{meta['device']} | {meta['date'][:10]}")
    print(f"wrote {prefix}.csv/.md/.png")
    return rows


if __name__ == "__main__":
    main()
