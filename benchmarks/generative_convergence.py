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
import re
import sys
import time
from pathlib import Path

import torch
import transformers

# Sentences with one span in [brackets]: the first three are in the sample corpus (Shakespeare, seen in training),
# the others are not. bart sees <mask> for the span, t5 <extra_id_0>; clm continues the text before it.
SENTENCES = ["First Citizen:\nBefore we proceed any [further], hear me speak.",
             "MENENIUS:\nWhat work's, my [countrymen], in hand? where go you\nWith bats and clubs?",
             "First Citizen:\nWe are accounted poor [citizens], the patricians good.",
             "The game was released in [Japan] and received positive reviews from critics.",
             "He was born in London and studied at the [University of] Cambridge."]
LETTER = re.compile(r"[A-Za-z]")


def masked(sentence, objective):
    left, rest = sentence.split("[", 1)
    span, right = rest.split("]", 1)
    if objective == "clm":
        return left.rstrip(), span, ""
    # the mask stands where the span and its leading space were, as in training (the trained tokenizers' <mask> and
    # sentinels also swallow that space; tokenizers saved before they did would keep a stray space token here)
    return left.rstrip() + ("<mask>" if objective == "bart" else "<extra_id_0>") + right, span, (left, right)


def run(objective, root, args):
    from hf_pretrain_ext.cli import main
    out = root / objective
    argv = ["--objective", objective, "--output_dir", str(out), "--overwrite_output_dir", "--max_steps",
            str(args.max_steps), "--logging_steps", str(max(1, args.max_steps // 15)), "--save_steps",
            str(args.max_steps), "--max_seq_length", "128", "--per_device_train_batch_size", "16",
            "--max_eval_samples", "64", "--tokenizer_vocab_size", "2000", "--learning_rate", args.learning_rate,
            "--disable_tqdm", "true", "--plot", "true", *args.extra.split()]
    started = time.time()
    results = main(argv) if not args.generate_only else json.loads((out / "all_results.json").read_text())
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h]
    return out, results, losses, time.time() - started, argv


def fill(model, tok, objective, sentence):
    """(model input, original span, generated text, the fill or None, filled with text?) for one sentence.

    t5: greedy after the forced prefix <pad><extra_id_0>, stopping at <extra_id_1> or eos; the fill is what came
    between. bart: greedy reconstruction; the fill is what follows the reproduced left context up to the first word
    of the right context (None when the output does not start with the left context or never resumes the right
    one). clm: the greedy continuation."""
    import torch
    prompt, span, context = masked(sentence, objective)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    # the encoder input as in training: <s> ... </s> for bart (collators/denoising.py), ... </s> for t5
    ids = {"bart": [tok.bos_token_id] + ids + [tok.eos_token_id], "t5": ids + [tok.eos_token_id]}.get(objective, ids)
    enc = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    with torch.no_grad():
        if objective == "t5":
            s0, s1 = tok.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_1>"])
            start = torch.tensor([[model.config.decoder_start_token_id, s0]])
            ids = model.generate(**enc, decoder_input_ids=start, max_new_tokens=12, do_sample=False, num_beams=1,
                                 eos_token_id=[s1, tok.eos_token_id])[0, 2:].tolist()
            text = tok.decode(ids, skip_special_tokens=False)
            body = ids[:-1] if ids and ids[-1] in (s1, tok.eos_token_id) else ids
            out = None if set(body) & set(tok.all_special_ids) else tok.decode(body)
        elif objective == "bart":
            ids = model.generate(**enc, max_new_tokens=enc["input_ids"].shape[1] + 12, do_sample=False, num_beams=1)
            text = tok.decode(ids[0], skip_special_tokens=True)
            left, right = context[0].rstrip(), context[1].strip()
            anchor = right.split()[0] if right else ""  # where the right context resumes
            rest = text[len(left):] if text.startswith(left) else None
            end = -1 if rest is None else (rest.find(anchor) if anchor else len(rest))
            out = rest[:end] if end >= 0 else None
        else:
            ids = model.generate(**enc, max_new_tokens=16, do_sample=False, num_beams=1)
            text = out = tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return prompt, span, text, out, (out is not None and bool(LETTER.search(out))) if objective != "clm" else None


def generate(objective, out):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    import hf_pretrain_ext  # noqa: F401
    auto = AutoModelForCausalLM if objective == "clm" else AutoModelForSeq2SeqLM
    model = auto.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    return [fill(model, tok, objective, sentence) for sentence in SENTENCES]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", default="clm,bart,t5")
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--learning_rate", default="1e-3")
    parser.add_argument("--extra", default="", help="more run_pretrain.py flags, e.g. '--permute_sentences 0'")
    parser.add_argument("--root", default="output/generative_convergence")
    parser.add_argument("--generate_only", action="store_true", help="reuse the models already under --root")
    parser.add_argument("--out", default=None, help="write a markdown log here")
    args = parser.parse_args()
    lines = [f"# Generative objectives: loss and greedy generation ({time.strftime('%Y-%m-%d')})", "",
             f"`python benchmarks/generative_convergence.py {' '.join(sys.argv[1:])}` (CPU, "
             f"{torch.get_num_threads()} torch thread(s)); torch {torch.__version__}, transformers "
             f"{transformers.__version__}", ""]
    for objective in args.objectives.split(","):
        out, results, losses, seconds, argv = run(objective, Path(args.root), args)
        fills = generate(objective, out)
        lines += [f"## {objective}" + ("" if args.generate_only else f" ({seconds / 60:.1f} min)"), "",
                  f"`run_pretrain.py {' '.join(argv)}`", "",
                  "step | train loss", "---: | ---:", *[f"{s} | {l:.3f}" for s, l in losses], "",
                  f"eval loss {results['eval_loss']:.3f}, perplexity {results['perplexity']:.1f}, "
                  f"target-token accuracy {results['eval_accuracy']:.3f}", "",
                  "input | original span | greedy output | fill | filled with text", "---|---|---|---|---"]
        cell = lambda x: "`" + repr(x)[1:-1].replace("|", "\\|") + "`"  # noqa: E731
        for prompt, span, text, fill_text, ok in fills:
            verdict = "n/a" if ok is None else "yes" if ok else "no"
            lines.append(f"{cell(prompt)} | {cell(span)} | {cell(text)} | "
                         f"{'-' if fill_text is None else cell(fill_text)} | {verdict}")
        if objective != "clm":
            lines += ["", f"filled with text: {sum(f[-1] for f in fills)} of {len(fills)}"]
        lines.append("")
        print("\n".join(lines[-len(fills) - 14:]), flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
