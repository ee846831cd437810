#!/usr/bin/env python
"""Pretrain a Transformer language model with the HF Trainer: `python run_pretrain.py --help`.

With no arguments: trains a tokenizer and a tiny BERT-style model on the sample corpus shipped in the package
(a few minutes on 2 CPU cores) and saves everything under output/hfpx-bert-mlm/.
"""
import os
import sys

# The repository root holds kernels/ (installed as hf_pretrain_ext.kernels); keep it off sys.path so that no
# top-level `kernels` module shadows the Hugging Face `kernels` package that transformers probes for.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

from hf_pretrain_ext.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
