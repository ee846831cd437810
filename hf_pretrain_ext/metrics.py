"""Evaluation metrics that never keep full logits: argmax per batch, then counts.

`preprocess_logits_for_metrics` turns each eval batch's logits into predicted ids at once (dense [B, L, V] logits
or the sparse [n_labelled, V] rows of hfpx models), so the Trainer only accumulates [B, L] ids. Masked-token
accuracy is printed beside the most-frequent-token baseline: predicting the most frequent ordinary training token
at every masked position. The scores themselves come from `evaluate` modules shipped in the package
(hf_pretrain_ext/evaluate_modules/, loaded by path: no Hub access).
"""
import math
from functools import lru_cache
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from .constants import IGNORE_INDEX

EVALUATE_MODULES = Path(__file__).resolve().parent / "evaluate_modules"


def evaluate_module_path(name):
    """The folder of one of the package's `evaluate` modules, for `evaluate.load(path)`."""
    path = EVALUATE_MODULES / name
    if not (path / f"{name}.py").is_file():
        raise ValueError(f"no evaluate module {name!r} in {EVALUATE_MODULES}")
    return str(path)


@lru_cache(maxsize=None)
def load_metric(name):
    """One of the package's `evaluate` modules, loaded by path (imported on first use: `evaluate` is slow to
    import, and only evaluation needs it)."""
    import evaluate
    return evaluate.load(evaluate_module_path(name))


def preprocess_logits_for_metrics(logits, labels):
    """[B, L, V] or [n_labelled, V] logits -> [B, L] predicted ids (-100 where unlabelled)."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if isinstance(labels, (tuple, list)):  # MLM labels first, then a sentence label (sop/nsp)
        labels = labels[0]
    if logits.dim() == labels.dim() + 1 and logits.shape[:-1] == labels.shape:
        return logits.argmax(-1)
    labelled = labels != IGNORE_INDEX
    if logits.dim() == 2 and logits.shape[0] == int(labelled.sum()):
        preds = torch.full_like(labels, IGNORE_INDEX)
        preds[labelled] = logits.argmax(-1).to(preds.dtype)
        return preds
    raise ValueError(f"logits of shape {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")


def most_frequent_token(dataset, special_ids, column="input_ids", max_examples=5000):
    """Most frequent non-special token id in (the first `max_examples` of) a tokenized dataset."""
    if hasattr(dataset, "select"):
        rows = dataset.select(range(min(len(dataset), max_examples)))[column]
    else:  # a stream: its first examples
        rows = [ex[column] for ex in islice(dataset, max_examples)]
    ids = np.concatenate([np.asarray(x, dtype=np.int64) for x in rows])
    counts = np.bincount(ids)
    counts[[i for i in special_ids if i < len(counts)]] = 0
    return int(counts.argmax())


class MaskedTokenAccuracy:
    """compute_metrics for MLM: accuracy over labelled positions and the most-frequent-token baseline."""

    def __init__(self, baseline_token_id=None):
        self.baseline_token_id = baseline_token_id

    def __call__(self, eval_pred):
        preds, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(preds, tuple):
            preds = preds[0]
        if isinstance(labels, (tuple, list)):
            labels = labels[0]
        labelled = labels != IGNORE_INDEX
        return load_metric("masked_token_accuracy").compute(
            predictions=preds[labelled], references=labels[labelled], baseline_token_id=self.baseline_token_id)


def perplexity(loss):
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def preprocess_logits_for_causal_metrics(logits, labels):
    """Like metrics.preprocess_logits_for_metrics, for next-token targets: dense [B, L, V] logits predict position
    t + 1, so predictions are shifted onto the label they target (sparse hfpx-gpt rows are already aligned to the
    labelled positions of labels[:, 1:])."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if logits.dim() == 3 and logits.shape[:-1] == labels.shape:
        preds = torch.full_like(labels, IGNORE_INDEX)
        preds[:, 1:] = logits[:, :-1].argmax(-1)
        return preds
    target = labels[:, 1:] != IGNORE_INDEX
    if logits.dim() == 2 and logits.shape[0] == int(target.sum()):
        preds = torch.full_like(labels, IGNORE_INDEX)
        preds[:, 1:][target] = logits.argmax(-1).to(preds.dtype)
        return preds
    return preprocess_logits_for_metrics(logits, labels)
