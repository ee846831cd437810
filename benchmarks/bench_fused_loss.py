"""Benchmark of the LM-head loss: time, peak memory and useful TFLOP/s, fwd / bwd / full, per provider.

Providers: `eager` (HF-style head: F.linear over every row, then cross_entropy with ignore_index),
`torch` (ours, torch backend: cached softmax + cuBLAS/CPU GEMMs when it fits, else chunks), `torch_lce` (the
labelled rows gathered, then torch's own F.linear_cross_entropy, torch >= 2.13), `triton` (ours, CUDA only),
`liger` (Liger-Kernel FLCE) and `cce` (cut-cross-entropy) when importable on CUDA; a provider that cannot run is
skipped with a note. (CPU against every peer, interleaved: bench_cpu_peers.py.)
Each provider's loss is first checked against kernels.reference (the tests' reference) at 1e-2 relative.

FLOPs are the useful ones on labelled rows only: 2*N*H*V for fwd, 4*N*H*V for bwd, 6*N*H*V for full, so
work spent on ignored rows (eager, Liger) shows up as a lower rate, and our backward's logits recompute
(8*N*H*V done in total) is not counted.

Peak memory is the highest amount of tensor memory allocated during the timed region above what was
allocated when it started (inputs excluded; for bwd the forward's saved tensors are excluded too).
CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats. CPU: every allocation and free of
torch's CPU allocator is recorded by torch.profiler(profile_memory=True); the raw per-event byte counts
(profiler.kineto_results, `[memory]` events) are summed in time order and the maximum is kept. This is a
separate, untimed run, since the profiler slows the code down. Time: CUDA events on CUDA, perf_counter on CPU.

Writes results/fused_loss_<device>.csv, a .json sidecar (device, versions, date, command line, method)
and a .png; nothing in them is estimated. Example: python benchmarks/bench_fused_loss.py --reps 3
"""
import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from hf_pretrain_ext.kernels import fused_linear_cross_entropy, linear_cross_entropy_reference

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MODES = ("fwd", "bwd", "full")
FLOP_FACTOR = {"fwd": 2, "bwd": 4, "full": 6}


def eager_hf(hidden, weight, labels):
    logits = F.linear(hidden, weight).float()  # [B, T, V]: every row, as HF heads do
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)


def gathered_torch_lce(hidden, weight, labels):
    """torch's own chunked F.linear_cross_entropy (torch >= 2.13) on the labelled rows, gathered first."""
    rows = labels.reshape(-1) != -100
    return F.linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1])[rows], weight, labels.reshape(-1)[rows])


def make_providers(device):
    """name -> loss(hidden, weight, labels), or name -> reason it is skipped."""
    providers = {"eager": eager_hf,
                 "torch": lambda h, w, y: fused_linear_cross_entropy(h, w, y, backend="torch")}
    skipped = {}
    if hasattr(F, "linear_cross_entropy"):
        providers["torch_lce"] = gathered_torch_lce
    else:
        skipped["torch_lce"] = f"torch {torch.__version__} has no F.linear_cross_entropy"
    if device.type != "cuda":
        return providers, {**skipped, **{p: "needs CUDA" for p in ("triton", "liger", "cce")}}
    providers["triton"] = lambda h, w, y: fused_linear_cross_entropy(h, w, y, backend="triton")
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
        providers["liger"] = lambda h, w, y: liger_fused_linear_cross_entropy(
            h.reshape(-1, h.shape[-1]), w, y.reshape(-1), ignore_index=-100)
    except ImportError as err:
        skipped["liger"] = f"not importable ({err})"
    try:
        from cut_cross_entropy import linear_cross_entropy
        providers["cce"] = lambda h, w, y: linear_cross_entropy(h, w, y, ignore_index=-100, shift=False)
    except ImportError as err:
        skipped["cce"] = f"not importable ({err})"
    return providers, skipped


def make_inputs(tokens, hidden_size, vocab, labelled, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(1, tokens, hidden_size, generator=g).to(device, dtype)
    weight = (torch.randn(vocab, hidden_size, generator=g) * hidden_size ** -0.5).to(device, dtype)
    labels = torch.randint(0, vocab, (1, tokens), generator=g)
    labels[torch.rand(1, tokens, generator=g) >= labelled] = -100
    return hidden.requires_grad_(), weight.requires_grad_(), labels.to(device)


def run_mode(fn, inputs, mode):
    """Returns a thunk running `mode`; for bwd the forward runs first, outside the thunk."""
    hidden, weight, labels = inputs
    if mode == "fwd":
        return lambda: fn(hidden, weight, labels).detach()
    if mode == "full":
        return lambda: torch.autograd.grad(fn(hidden, weight, labels), (hidden, weight))
    loss = fn(hidden, weight, labels)
    return lambda: torch.autograd.grad(loss, (hidden, weight), retain_graph=True)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_ms(fn, inputs, mode, reps, device):
    return time_thunks(lambda: run_mode(fn, inputs, mode), reps, device)


def time_thunks(make_thunk, reps, device):
    """(median, min) ms of `make_thunk()()` over `reps` runs after one dropped warm-up run (autotuning,
    allocator); make_thunk's own work (e.g. the forward before a bwd-only thunk) is not timed.
    CUDA: events around the thunk; CPU: perf_counter."""
    times = []
    for i in range(reps + 1):
        thunk = make_thunk()
        sync(device)
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            thunk()
            end.record()
            end.synchronize()
            elapsed = start.elapsed_time(end)
        else:
            start = time.perf_counter()
            thunk()
            elapsed = (time.perf_counter() - start) * 1e3
        if i:
            times.append(elapsed)
    return statistics.median(times), min(times)


def peak_bytes(fn, inputs, mode, device):
    return peak_extra_bytes(run_mode(fn, inputs, mode), device)


def peak_extra_bytes(thunk, device):
    """Highest tensor memory allocated while `thunk()` runs, above what was allocated before it (see top)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        thunk()
        sync(device)
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        thunk()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def versions():
    out = {"torch": torch.__version__, "python": platform.python_version()}
    for name in ("triton", "transformers", "liger_kernel", "cut_cross_entropy"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - absent or versionless: record that
            out[name] = None
    return out


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def plot(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shapes = sorted({r["shape"] for r in rows}, key=[r["shape"] for r in rows].index)
    fig, axes = plt.subplots(len(shapes), 2, figsize=(11, 3.6 * len(shapes)), squeeze=False)
    for row_axes, shape in zip(axes, shapes):
        sub = [r for r in rows if r["shape"] == shape]
        providers = sorted({r["provider"] for r in sub}, key=[r["provider"] for r in sub].index)
        for ax, key, label in zip(row_axes, ("ms_median", "peak_mib"), ("time (ms, median)", "peak memory (MiB)")):
            width = 0.8 / len(providers)
            for i, p in enumerate(providers):
                vals = [next(r[key] for r in sub if r["provider"] == p and r["mode"] == m) for m in MODES]
                ax.bar([j + i * width for j in range(len(MODES))], vals, width, label=p)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(MODES))], MODES)
            ax.set_ylabel(label)
            ax.set_title(shape, fontsize=9)
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def make_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", default=None,
                   help="TOKENSxHxVxLABELLED items, e.g. 1024x768x30522x0.15 (default depends on device)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default: float32 on CPU, bfloat16 on CUDA")
    p.add_argument("--providers", nargs="+", default=None,
                   help="subset of eager torch torch_lce triton liger cce")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="output path prefix (default results/fused_loss_<device>)")
    return p


def main(argv=None):
    args = make_parser().parse_args(argv)
    device = torch.device(args.device)
    cpu = device.type == "cpu"
    dtype = getattr(torch, args.dtype or ("float32" if cpu else "bfloat16"))
    shapes = args.shapes or (["1024x768x30522x0.15", "1024x768x50257x1.0"] if cpu else
                             ["16384x768x30522x0.15", "8192x4096x128256x1.0", "8192x2304x256000x1.0"])
    providers, skipped = make_providers(device)
    if args.providers:
        providers = {k: v for k, v in providers.items() if k in args.providers}
    for name, why in skipped.items():
        print(f"skip {name}: {why}")
    rows = []
    for spec in shapes:
        tokens, H, V, frac = spec.split("x")
        tokens, H, V, frac = int(tokens), int(H), int(V), float(frac)
        inputs = make_inputs(tokens, H, V, frac, dtype, device)
        n_lab = int((inputs[2] != -100).sum())
        truth = linear_cross_entropy_reference(*[t.detach() for t in inputs[:2]], inputs[2]).item()
        for name, fn in providers.items():
            got = fn(*inputs).item()
            if abs(got - truth) > 1e-2 * max(1.0, abs(truth)):
                raise SystemExit(f"{name} loss {got} disagrees with the reference {truth} on {spec}")
            for mode in MODES:
                ms, ms_min = time_ms(fn, inputs, mode, args.reps, device)
                peak = peak_bytes(fn, inputs, mode, device)
                tflops = FLOP_FACTOR[mode] * n_lab * H * V / (ms * 1e-3) / 1e12
                rows.append(dict(shape=f"tokens={tokens} H={H} V={V} labelled={frac}", provider=name, mode=mode,
                                 tokens=tokens, H=H, V=V, n_labelled=n_lab, dtype=str(dtype).split(".")[1],
                                 ms_median=round(ms, 3), ms_min=round(ms_min, 3),
                                 peak_mib=round(peak / 2 ** 20, 2), useful_tflops=round(tflops, 4)))
                print(" ".join(f"{k}={v}" for k, v in rows[-1].items() if k != "shape"), flush=True)
    prefix = args.out or os.path.join(RESULTS, f"fused_loss_{'cpu' if cpu else 'cuda'}")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    with open(prefix + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    meta = dict(device=device_name(device), versions=versions(), date=datetime.datetime.now().isoformat(),
                command=" ".join(["python", os.path.relpath(sys.argv[0])] + (sys.argv[1:] if argv is None else argv)),
                reps=args.reps, skipped=skipped,
                memory_method="CUDA max_memory_allocated" if not cpu else "torch.profiler allocator events")
    with open(prefix + ".json", "w") as f:
        json.dump(meta, f, indent=2)
    plot(rows, prefix + ".png", f"{meta['device']} | torch {meta['versions']['torch']} | {meta['date'][:10]}")
    print(f"wrote {prefix}.csv/.json/.png")


if __name__ == "__main__":
    main()
