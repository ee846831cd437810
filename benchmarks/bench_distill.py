"""Distillation loss, forward + backward: fused (hf_pretrain_ext.kernels.fused_linear_distillation, labelled rows
only, chunked) vs the straightforward implementation (both models' full [N, V] logits, the masked rows selected,
F.kl_div of log_softmax(student / T) against softmax(teacher / T), as DistilBERT's trainer does).

Shape (default: BERT MLM): N tokens, a fraction labelled, H student / teacher, V, --dtype (fp32), T=2; the
student's hidden states and head weight and bias get gradients, the teacher none. On --device cuda the fused loss
runs twice, once per backend (Triton kernels; the chunked torch backend). Time: median of --reps runs after one
warm-up (CPU: perf_counter, providers interleaved, so drift hits all alike; CUDA: events, one provider after the
other). Memory: the peak of tensor memory allocated
during one run above what existed before (torch's CPU allocator events, bench_fused_loss.peak_extra_bytes),
minus the student's gradients (grad_hidden, grad_weight, grad_bias), which all return; CUDA: the allocator's
peak. Writes benchmarks/results/distill_<device>_<date>.md.

    python benchmarks/bench_distill.py
    python benchmarks/bench_distill.py --device cuda --dtype bf16 --tokens 16384   # GPU (gpu_run.sh distill)
"""
import argparse
import datetime
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_fused_loss as flb  # noqa: E402  (memory, versions, device name, results folder)

from hf_pretrain_ext.kernels import fused_linear_distillation  # noqa: E402


def straightforward(s_h, s_w, s_b, t_h, t_w, t_b, labels, temperature):
    s_logits = F.linear(s_h, s_w, s_b)  # [N, V]
    with torch.no_grad():
        t_logits = F.linear(t_h, t_w, t_b)
    keep = labels != -100
    s_sel, t_sel = s_logits[keep], t_logits[keep]
    return F.kl_div(F.log_softmax(s_sel / temperature, -1), F.softmax(t_sel / temperature, -1),
                    reduction="batchmean")


def fused(backend):
    def run(s_h, s_w, s_b, t_h, t_w, t_b, labels, temperature):
        return fused_linear_distillation(s_h, s_w, t_h, t_w, labels, s_b, t_b, temperature=temperature,
                                         backend=backend)
    return run


def make_providers(device):
    providers = {"straightforward (full logits, F.kl_div)": straightforward}
    if device.type == "cuda":
        providers.update({"fused (ours, triton)": fused("triton"), "fused (ours, torch backend)": fused("torch")})
    else:
        providers["fused (ours)"] = fused("auto")
    return providers


def inputs(tokens, hs, ht, vocab, labelled, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    s_h = torch.randn(tokens, hs, generator=g)
    s_w = torch.randn(vocab, hs, generator=g) * 0.05
    s_b = torch.zeros(vocab)
    t_h, t_w, t_b = torch.randn(tokens, ht, generator=g), torch.randn(vocab, ht, generator=g) * 0.05, torch.zeros(vocab)
    labels = torch.randint(0, vocab, (tokens,), generator=g)
    labels[torch.rand(tokens, generator=g) >= labelled] = -100
    cast = [x.to(device=device, dtype=dtype) for x in (s_h, s_w, s_b, t_h, t_w, t_b)]
    return (*(x.requires_grad_() for x in cast[:3]), *cast[3:], labels.to(device))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--hidden", type=int, nargs=2, default=[768, 768], metavar=("STUDENT", "TEACHER"))
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--labelled", type=float, default=0.15)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    x = inputs(args.tokens, *args.hidden, args.vocab, args.labelled, dtype, device)
    grads = x[:3]
    providers = make_providers(device)

    def thunk(fn):
        return lambda: torch.autograd.grad(fn(*x, args.temperature), grads)

    losses = {name: float(fn(*x, args.temperature).detach()) for name, fn in providers.items()}
    times = {name: [] for name in providers}
    if device.type == "cuda":
        for name, fn in providers.items():
            times[name] = [flb.time_thunks(lambda: thunk(fn), args.reps, device)[0]]
    else:
        for rep in range(args.reps + 1):
            for name, fn in providers.items():
                start = time.perf_counter()
                thunk(fn)()
                if rep:
                    times[name].append((time.perf_counter() - start) * 1e3)
    grad_bytes = sum(g.numel() * g.element_size() for g in grads)
    memory = {name: flb.peak_extra_bytes(thunk(fn), device) - grad_bytes for name, fn in providers.items()}
    base = next(iter(providers))
    rows = ["| provider | loss | ms (median) | speed vs straightforward | extra MiB beyond grads | memory vs "
            "straightforward |", "|---|---:|---:|---:|---:|---:|"]
    for name in providers:
        med = statistics.median(times[name])
        rows.append(f"| {name} | {losses[name]:.6f} | {med:.1f} | {statistics.median(times[base]) / med:.2f}x | "
                    f"{memory[name] / 2**20:.1f} | {memory[name] / memory[base]:.3f} |")
        print(rows[-1], flush=True)
    date = datetime.date.today()
    out = args.out or os.path.join(flb.RESULTS, f"distill_{device.type}_{date:%Y%m%d}.md")
    command = " ".join(["python", "benchmarks/bench_distill.py"] + (sys.argv[1:] if argv is None else argv))
    head = [f"# Distillation loss on {device.type.upper()}, forward + backward ({date})", "",
            f"- device: {flb.device_name(device)}",
            f"- versions: {', '.join(f'{k} {v}' for k, v in flb.versions().items())}",
            f"- command: `{command}`",
            f"- shape: {args.tokens} tokens, {args.labelled:.0%} labelled, H student {args.hidden[0]} / teacher "
            f"{args.hidden[1]}, V {args.vocab}, {args.dtype}, T {args.temperature}; median of {args.reps} runs"
            f"{', interleaved' if device.type == 'cpu' else ''}",
            "- method: see the docstring of benchmarks/bench_distill.py", ""]
    with open(out, "w") as f:
        f.write("\n".join(head + rows) + "\n")
    print("wrote", out)
    return times, memory


if __name__ == "__main__":
    main()
