#!/usr/bin/env python
"""Fine-tune a checkpoint for sequence classification: `python run_finetune.py --help`.

Strategies: --strategy full | feature_based | adapters, --gradual_unfreezing, --layer_lr_decay, --lm_loss_weight.
See docs/finetune.md.
"""
import os
import sys

# The repository root holds kernels/ (installed as hf_pretrain_ext.kernels); keep it off sys.path so that no
# top-level `kernels` module shadows the Hugging Face `kernels` package that transformers probes for.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

from hf_pretrain_ext.finetune.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
