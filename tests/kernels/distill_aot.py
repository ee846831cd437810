"""Compile the distillation Triton kernels (kernels/ops/distill_triton.py) for NVIDIA GPUs ahead of time, with no
GPU, through ../shared/tools/triton_aot_check.py's machinery (its compile_one: triton.compile + the wheel's ptxas).

The host code (distill_forward_triton / distill_backward_triton) runs on meta tensors with its `_launch` replaced
by a recorder, so each kernel gets the dtypes, int specialisations and constexprs a CUDA launch would give it;
every autotune config is compiled for each --arch. Exit status 1 on a compile error, a register spill, or more
shared memory than the target allows; the report has one line per compile, as the shared tool's does.

    python tests/kernels/distill_aot.py TOOL [--arch 90 80] [--dtype bf16 fp16] [--case bert-base distilbert]
"""
import argparse
import importlib.util
import os
import sys
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "0"  # before triton is imported: real kernels
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# name: (rows N, student H, teacher H, vocab V, biases)
CASES = {"bert-base": (4096, 384, 768, 30522, True),  # half-width BERT student, MLM heads with decoder bias
         "distilbert": (4096, 768, 768, 30522, True),  # DistilBERT: same width
         "causal": (8192, 2048, 4096, 128256, False)}  # Llama-3-like vocabulary, causal rows
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # fp32 on a GPU runs the torch backend


def load_tool(path):
    spec = importlib.util.spec_from_file_location("_aot_tool", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def record(tool, mod, N, hs, ht, V, bias, dtype):
    launches = []
    mod._launch = lambda plain, tuned, grid, V, D, *args, **meta: launches.append((plain, tuned.configs, args, meta))
    meta = dict(device="meta", dtype=dtype)
    s_h = torch.empty(N, hs, **meta).as_subclass(tool.FakeCuda)
    s_w, t_h, t_w = torch.empty(V, hs, **meta), torch.empty(N, ht, **meta), torch.empty(V, ht, **meta)
    s_b, t_b = (torch.empty(V, **meta), torch.empty(V, **meta)) if bias else (None, None)
    labels = torch.empty(N, dtype=torch.long, device="meta")
    _, lse_s, lse_t = mod.distill_forward_triton(s_h, s_w, s_b, t_h, t_w, t_b, labels, 2.0, -100)
    mod.distill_backward_triton(torch.empty(N, device="meta"), s_h, s_w, s_b, t_h, t_w, t_b, labels, lse_s, lse_t,
                                2.0, -100)
    return launches


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tool", help="path of triton_aot_check.py")
    ap.add_argument("--arch", type=int, nargs="+", default=[90, 80])
    ap.add_argument("--dtype", nargs="+", default=["bf16"], choices=list(DTYPES))
    ap.add_argument("--case", nargs="+", default=["bert-base"], choices=list(CASES))
    a = ap.parse_args()
    tool = load_tool(a.tool)
    mod = tool.load_module(str(REPO), "kernels/ops/distill_triton.py")
    head = (f"{'kernel':<21}{'case':<11}{'dtype':<6}{'sm':<4}{'BN,BV,BD':<12}{'w':>2}{'st':>3}{'regs':>5} "
            f"{'spill st/ld':<12}{'smem KB':>7}  {'mma':<10}status")
    print(head + "\n" + "-" * len(head))
    bad = total = 0
    for case in a.case:
        for dt in a.dtype:
            for kernel, configs, args, meta in record(tool, mod, *CASES[case], DTYPES[dt]):
                for cfg in configs:
                    kw = dict(meta, **cfg.all_kwargs())
                    for arch in a.arch:
                        total += 1
                        r = tool.compile_one(kernel, args, kw, arch)
                        row = (f"{kernel.__name__:<21}{case:<11}{dt:<6}{arch:<4}"
                               f"{kw['BLOCK_N']},{kw['BLOCK_V']},{kw['BLOCK_D']:<6}{kw['num_warps']:>2}"
                               f"{kw['num_stages']:>3}")
                        if "error" in r:
                            print(row + "  COMPILE ERROR " + r["error"].splitlines()[0][:200])
                            bad += 1
                            continue
                        problems = []
                        if r["regs"] < 0:
                            problems.append("NO-PTXAS-LOG")
                        if r["spill_st"] or r["spill_ld"]:
                            problems.append("SPILLS")
                        if r["shared"] > tool.SMEM_LIMIT.get(arch, float("inf")):
                            problems.append("SMEM")
                        print(row + f"{r['regs']:>5} {r['spill_st']}/{r['spill_ld']:<10}{r['shared'] / 1024:>7.1f}  "
                              f"{r['mma']:<10}" + (" ".join(problems) or "ok"))
                        bad += bool(problems)
    print(f"\n{total} compiles: {bad} failed, spill or exceed shared memory")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
