"""The LM-head loss on CPU against every alternative a user has, in one process: fp32 forward + backward (gradients
of the hidden states and the weight), median of --reps with the providers taking turns in every repetition, and
the peak extra memory of one untimed run.

Providers:
- `gather+eager`: the labelled rows gathered, F.linear, F.cross_entropy (what a careful user writes by hand);
- `gather+torch_lce`: the labelled rows gathered, torch's own chunked `F.linear_cross_entropy` (torch >= 2.13);
- `cce_torch_compile`: cut-cross-entropy's `impl="torch_compile"` on every row (its CPU implementation; skipped with
  a note when the package is not installed: it is not a dependency of this project);
- `ours`: `hf_pretrain_ext.kernels.fused_linear_cross_entropy`, backend auto (the torch backend on CPU).
Cases (H=768): the BERT MLM shape (2048 tokens, 15% labelled, V=30522) and the causal shape (1024 tokens, every
row labelled, V=50257). Every provider's loss is checked against gather+eager first (1e-4 relative).
Timing and memory come from bench_fused_loss (perf_counter; torch's CPU allocator events, inputs excluded); the
memory beyond the gradients subtracts grad_hidden and grad_weight, which every provider returns. Ours reuses its
large CPU buffers from call to call (kernels/ops/workspace.py): its peak is measured from an empty pool (so they
count), and what the pool keeps allocated between calls is its own column.

Writes results/cpu_peers_<date>.{csv,md} (machine, versions, command, table, ratios to the fastest peer).
    python benchmarks/bench_cpu_peers.py --reps 5
"""
import argparse
import csv
import datetime
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_fused_loss as flb  # noqa: E402  (inputs, timing, memory, versions)

from hf_pretrain_ext.kernels import fused_linear_cross_entropy, release_workspace, workspace_bytes  # noqa: E402

CASES = {"mlm-15%": (2048, 768, 30522, 0.15), "causal-100%": (1024, 768, 50257, 1.0)}


def _gathered(hidden, labels):
    rows = labels.reshape(-1) != -100
    return hidden.reshape(-1, hidden.shape[-1])[rows], labels.reshape(-1)[rows]


def gather_eager(hidden, weight, labels):
    h, y = _gathered(hidden, labels)
    return F.cross_entropy(F.linear(h, weight).float(), y)


def gather_torch_lce(hidden, weight, labels):
    h, y = _gathered(hidden, labels)
    return F.linear_cross_entropy(h, weight, y)


def make_providers():
    providers = {"gather+eager": gather_eager}
    skipped = {}
    if hasattr(F, "linear_cross_entropy"):
        providers["gather+torch_lce"] = gather_torch_lce
    else:
        skipped["gather+torch_lce"] = f"torch {torch.__version__} has no F.linear_cross_entropy"
    try:
        from cut_cross_entropy import linear_cross_entropy
        providers["cce_torch_compile"] = lambda h, w, y: linear_cross_entropy(h, w, y, impl="torch_compile")
    except ImportError as err:
        skipped["cce_torch_compile"] = f"not importable ({err})"
    providers["ours"] = lambda h, w, y: fused_linear_cross_entropy(h, w, y)
    return providers, skipped


def interleaved_times(providers, inputs, reps):
    """ms of forward + backward per provider; the providers take turns within each repetition (after one dropped
    warm-up round), so a drift of the machine's speed (a shared 2-core VM drifts by 10-20%) hits all alike."""
    times = {name: [] for name in providers}
    for rep in range(reps + 1):
        for name, fn in providers.items():
            thunk = flb.run_mode(fn, inputs, "full")
            start = time.perf_counter()
            thunk()
            if rep:
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--providers", nargs="+", default=None)
    parser.add_argument("--out", default=None, help="results path stem (default results/cpu_peers_<date>)")
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    providers, skipped = make_providers()
    if args.providers:
        providers = {k: v for k, v in providers.items() if k in args.providers}
    rows = []
    for case in args.cases:
        tokens, hidden_size, vocab, labelled = CASES[case]
        inputs = flb.make_inputs(tokens, hidden_size, vocab, labelled, torch.float32, device)
        reference = gather_eager(*inputs).item()
        for name, fn in providers.items():
            loss = fn(*inputs).item()
            assert abs(loss - reference) <= 1e-4 * abs(reference), (case, name, loss, reference)
        times = interleaved_times(providers, inputs, args.reps)
        for name, fn in providers.items():
            median, best = statistics.median(times[name]), min(times[name])
            release_workspace()  # ours allocates its reused buffers inside the measured call, so they count
            peak = flb.peak_bytes(fn, inputs, "full", device)
            held = workspace_bytes()  # what stays allocated between calls (ours' reused buffers; 0 for the peers)
            grads = sum(t.numel() * t.element_size() for t in inputs[:2])  # grad_hidden + grad_weight
            rows.append({"case": case, "provider": name, "median_ms": round(median, 1), "min_ms": round(best, 1),
                         "peak_extra_mib": round(peak / 2 ** 20, 1),
                         "beyond_gradients_mib": round((peak - grads) / 2 ** 20, 1),
                         "held_between_calls_mib": round(held / 2 ** 20, 1)})
            print(rows[-1], flush=True)
    stem = args.out or os.path.join(flb.RESULTS, f"cpu_peers_{datetime.date.today():%Y%m%d}")
    with open(stem + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"LM-head loss on CPU, fp32 forward + backward, median of {args.reps} "
             f"(`python benchmarks/bench_cpu_peers.py {' '.join(argv if argv is not None else sys.argv[1:])}`; "
             f"{datetime.date.today()}; {flb.device_name(device)}; versions {flb.versions()})", "",
             "| case | provider | median ms | min ms | peak extra MiB | of it beyond the gradients | held between calls "
             "MiB | time / fastest peer |",
             "|---|---|---|---|---|---|---|---|"]
    for case in args.cases:
        sub = [r for r in rows if r["case"] == case]
        fastest = min((r["median_ms"] for r in sub if r["provider"] != "ours"), default=None)
        for r in sub:
            ratio = f"{r['median_ms'] / fastest:.2f}x" if fastest else ""
            lines.append(f"| {case} | {r['provider']} | {r['median_ms']} | {r['min_ms']} | {r['peak_extra_mib']} | "
                         f"{r['beyond_gradients_mib']} | {r['held_between_calls_mib']} | {ratio} |")
    lines += [""] + [f"- {name}: skipped, {why}" for name, why in skipped.items()]
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", stem + ".md")


if __name__ == "__main__":
    main()
