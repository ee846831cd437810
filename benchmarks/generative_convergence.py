#!/usr/bin/env python
"""Longer CPU runs of the generative objectives (not in CI): the loss falls, and the reloaded seq2seq models fill a
masked span with text by greedy generation.

For each of clm, bart and t5: run_pretrain.py on the sample corpus with a trained byte-level BPE tokenizer and the
default tiny model (TINY_GPT / TINY_BART / TINY_T5), then reload the saved model through AutoModelFor* and
generate greedily: a continuation for clm, the text behind <mask> (bart) or <extra_id_0> (t5). Prints the first and
last logged training losses and the generations; `--out` writes the same as a markdown log.

    python benchmarks/generative_convergence.py --max_steps 300 --out benchmarks/results/generative_convergence.md
"""
import argparse
import json
import time
from pathlib import Path

PROMPTS = {"clm": "First Citizen:\nWe are", "bart": "First Citizen:\nBefore we proceed any <mask>, hear me speak.",
           "t5": "First Citizen:\nBefore we proceed any <extra_id_0>, hear me speak."}


def run(objective, root, max_steps, seconds_per_objective):
    from hf_pretrain_ext.cli import main
    out = root / objective
    argv = ["--objective", objective, "--output_dir", str(out), "--overwrite_output_dir", "--max_steps",
            str(max_steps), "--logging_steps", str(max(1, max_steps // 15)), "--save_steps", str(max_steps),
            "--max_seq_length", "128", "--per_device_train_batch_size", "16", "--max_eval_samples", "64",
            "--tokenizer_vocab_size", "2000", "--learning_rate", "1e-3", "--disable_tqdm", "true", "--plot", "true"]
    started = time.time()
    results = main(argv)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    return out, results, losses, time.time() - started


def generate(objective, out):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    import hf_pretrain_ext  # noqa: F401
    auto = AutoModelForCausalLM if objective == "clm" else AutoModelForSeq2SeqLM
    model = auto.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok(PROMPTS[objective], return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=24, do_sample=False, num_beams=1)
    return tok.decode(ids[0], skip_special_tokens=objective != "t5")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", default="clm,bart,t5")
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--root", default="output/generative_convergence")
    parser.add_argument("--out", default=None, help="write a markdown log here")
    args = parser.parse_args()
    lines = [f"# Generative objectives: loss and greedy generation ({time.strftime('%Y-%m-%d')})", "",
             f"run_pretrain.py defaults, sample corpus, max_seq_length 128, batch 16, {args.max_steps} steps, CPU.", ""]
    for objective in args.objectives.split(","):
        out, results, losses, seconds = run(objective, Path(args.root), args.max_steps, None)
        text = generate(objective, out)
        lines += [f"## {objective} ({seconds / 60:.1f} min)", "",
                  "step | train loss", "---: | ---:", *[f"{s} | {l:.3f}" for s, l in losses], "",
                  f"eval loss {results['eval_loss']:.3f}, perplexity {results['perplexity']:.1f}, "
                  f"target-token accuracy {results['eval_accuracy']:.3f}", "",
                  f"prompt: `{PROMPTS[objective]!r}`", "", f"greedy: `{text!r}`", ""]
        print("\n".join(lines[-12:]), flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
