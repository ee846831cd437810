"""Smoke tests of the GPU benchmarks' tiny presets on CPU (1-2 steps), so the scripts do not rot: they run, the
providers agree (the head benchmark exits on a loss mismatch), and every output file is written."""
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_head_tiny(tmp_path):
    rows = load("bench_head").main(["--preset", "tiny", "--reps", "1", "--out", str(tmp_path / "h")])
    assert {r["provider"] for r in rows} == {"hf", "ours"} and len(rows) == 6
    ours = next(r for r in rows if r["provider"] == "ours" and r["mode"] == "full")
    hf = next(r for r in rows if r["provider"] == "hf" and r["mode"] == "full")
    assert 0 < ours["peak_mib"] < hf["peak_mib"]  # the [B*L, V] logits are never held
    for ext in ("csv", "md", "png"):
        assert (tmp_path / f"h.{ext}").stat().st_size > 0


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bench_e2e_tiny(tmp_path):
    rows, curves = load("bench_e2e").main(["--steps", "1", "--warmup", "1", "--workers", "1", "--compare_loss", "2",
                                           "--out", str(tmp_path / "e")])
    assert [(r["preset"], r["model"]) for r in rows] == [("tiny", "stock"), ("tiny", "ours"),
                                                        ("tiny-causal", "stock"), ("tiny-causal", "ours")]
    assert all(r["tokens_per_s"] > 0 and 0 <= r["input_wait_share"] < 1 for r in rows)
    for ours, stock in curves.values():  # same weights, batches and dropout: fp32 losses agree
        assert len(ours) == 2 and max(abs(a - b) for a, b in zip(ours, stock)) < 1e-4
    for suffix in (".csv", ".md", "_loss.csv", "_loss.png"):
        assert (tmp_path / f"e{suffix}").stat().st_size > 0


def test_bench_e2e_profile(tmp_path):
    load("bench_e2e").main(["--preset", "tiny", "--steps", "1", "--warmup", "0", "--workers", "0", "--profile",
                            "--out", str(tmp_path / "p")])
    assert "Name" in (tmp_path / "p_profile_tiny_ours.txt").read_text()


def test_bench_e2e_documents_preset(tmp_path):
    """#19: padded line-by-line (stock and ours) vs packed vs packed + unpadded, real tokens/s."""
    rows, _ = load("bench_e2e").main(["--preset", "tiny-docs", "--steps", "2", "--warmup", "1", "--workers", "0",
                                      "--out", str(tmp_path / "d")])
    assert [r["model"] for r in rows] == ["stock", "ours", "ours-packed", "ours-packed-unpadded"]
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert rows[2]["tokens_per_s"] > rows[1]["tokens_per_s"]  # rows full of text: several times the real tokens


def test_bench_distill_tiny(tmp_path):
    import torch
    bench = load("bench_distill")
    out = tmp_path / "d.md"
    times, memory = bench.main(["--tokens", "64", "--hidden", "16", "24", "--vocab", "300", "--reps", "1",
                                "--out", str(out)])
    assert set(times) == set(bench.make_providers(torch.device("cpu"))) and len(times) == 2
    text = out.read_text()
    assert "fused (ours)" in text and "straightforward" in text and "cpu" in text.lower()
    losses = [float(line.split("|")[2]) for line in text.splitlines() if line.startswith("| ") and "provider" not in line]
    assert len(losses) == 2 and abs(losses[0] - losses[1]) < 1e-4  # the providers compute the same loss


def test_bench_cpu_peers_small(tmp_path):
    """The CPU peers benchmark on small shapes: every provider's loss checked against gather + eager inside main,
    both files written, ours' buffers reused between calls reported (grad_weight [4096, 64] fp32 is 1 MiB)."""
    bench = load("bench_cpu_peers")
    bench.CASES = {"mlm-15%": (256, 64, 4096, 0.15), "causal-100%": (128, 64, 4096, 1.0)}
    bench.main(["--reps", "1", "--out", str(tmp_path / "c")])
    lines = (tmp_path / "c.md").read_text().splitlines()
    ours = [line for line in lines if line.startswith("| ") and "| ours |" in line]
    assert len(ours) == 2 and all(float(line.split("|")[7]) >= 1.0 for line in ours)  # held between calls, MiB
    assert any("| gather+eager |" in line for line in lines)
    assert (tmp_path / "c.csv").read_text().count("\n") >= 4
