"""The Triton kernels compile for real GPUs (sm_90 H100, sm_80 A100) with no register spill and within shared
memory, checked on CPU with ../shared/tools/triton_aot_check.py (triton.compile + the wheel's ptxas; compile and
resource use only, no runtime behaviour). The default suite compiles bf16 for the BERT-base head (decoder bias)
head, every autotune config, both architectures; HFPX_SLOW=1 adds fp16, the softcap and the causal-8b heads.
fp32 is not compiled: on a GPU it runs the torch backend (cuBLAS), see kernels/functional.py. The distillation
kernels are compiled the same way through tests/kernels/distill_aot.py."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_SHARED = Path(os.environ["HFPX_DATA"]).parent if os.environ.get("HFPX_DATA") else REPO.parent / "shared"
TOOL = _SHARED / "tools" / "triton_aot_check.py"


def run_tool(*args):
    if not TOOL.is_file():
        pytest.skip(f"{TOOL} not available")
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(TOOL), str(REPO), "--arch", "90", "80", *args], capture_output=True,
                          text=True, env=env, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


def rows(report):
    """(kernel, case, dtype, sm, config, mma, status) of every compile line of the report."""
    out = []
    for line in report.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("_flce_"):
            out.append((parts[0], parts[1], parts[2], parts[4], parts[5], parts[-2], parts[-1]))
    return out


def check(report, rc):
    lines = rows(report)
    assert lines, report[-2000:]
    bad = [r for r in lines if r[-1] != "ok"]
    assert rc == 0 and not bad, bad or report[-2000:]
    return lines


def test_bf16_compiles_clean_for_sm90_and_sm80():
    lines = check(*reversed(run_tool("--dtype", "bf16", "--case", "bert-base")))
    # every config autotune may pick on Hopper uses its wgmma tensor-core instructions
    hopper = [r for r in lines if r[3] == "90"]
    assert hopper and all("wgmma" in r[5] for r in hopper), hopper


@pytest.mark.slow
def test_every_half_precision_case_compiles_clean():
    check(*reversed(run_tool("--dtype", "bf16", "fp16")))


def test_distillation_kernels_compile_clean_for_sm90_and_sm80():
    # tests/kernels/distill_aot.py drives the shared tool's compiler on the distillation host code; bf16, a
    # half-width BERT student with decoder biases; HFPX_SLOW=1 adds fp16 and the same-width / causal shapes
    if not TOOL.is_file():
        pytest.skip(f"{TOOL} not available")
    pytest.importorskip("triton")
    slow = os.environ.get("HFPX_SLOW") == "1"
    extra = ["--dtype", "bf16", "fp16", "--case", "bert-base", "distilbert", "causal"] if slow else []
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("distill_aot.py")), str(TOOL), *extra],
                          capture_output=True, text=True, env=env, timeout=900)
    report = proc.stdout + proc.stderr
    lines = [line.split() for line in report.splitlines() if line.startswith("_distill_")]
    assert proc.returncode == 0 and lines and all(parts[-1] == "ok" for parts in lines), report[-3000:]
    assert {parts[0] for parts in lines} == {"_distill_fwd_kernel", "_distill_bwd_kernel"}
    hopper = [parts for parts in lines if parts[3] == "90"]
    assert hopper and all("wgmma" in parts[-2] for parts in hopper), hopper
