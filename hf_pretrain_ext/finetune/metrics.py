"""Classification metrics: accuracy, F1, Matthews correlation, in numpy; the Trainer gets them through the
package's `evaluate` module (hf_pretrain_ext/evaluate_modules/classification, loaded by path, offline).

All three come from one confusion matrix C[true, predicted]:
- F1: for two classes, the F1 of class id 1 (the positive label: '1' in SST-2, MRPC, ChnSentiCorp); for more
  classes the macro average over the classes present in labels or predictions (a class never seen in either is
  left out; a class seen in only one of them scores 0).
- MCC (Matthews / Gorodkin's multi-class R_K): (c*s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)),
  c = trace, s = total, p_k / t_k = predicted / true counts of class k; 0 when the denominator is 0.
"""
import numpy as np


def confusion_matrix(labels, predictions, num_labels=None):
    labels = np.asarray(labels, dtype=np.int64).ravel()
    predictions = np.asarray(predictions, dtype=np.int64).ravel()
    k = num_labels or int(max(labels.max(initial=0), predictions.max(initial=0))) + 1
    return np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)


def _f1(tp, fp, fn):
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 0.0


def f1_score(labels, predictions, num_labels=None):
    cm = confusion_matrix(labels, predictions, num_labels)
    tp = np.diag(cm).astype(float)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    if cm.shape[0] == 2:
        return float(_f1(tp[1], fp[1], fn[1]))
    present = (cm.sum(0) + cm.sum(1)) > 0
    return float(np.mean([_f1(tp[i], fp[i], fn[i]) for i in np.flatnonzero(present)]))


def matthews_corrcoef(labels, predictions, num_labels=None):
    cm = confusion_matrix(labels, predictions, num_labels).astype(float)
    c, s = np.trace(cm), cm.sum()
    p, t = cm.sum(0), cm.sum(1)
    denom = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - p @ t) / denom) if denom else 0.0


def accuracy(labels, predictions):
    labels, predictions = np.asarray(labels).ravel(), np.asarray(predictions).ravel()
    return float((labels == predictions).mean()) if labels.size else 0.0


def classification_metrics(labels, predictions, num_labels=None):
    return {"accuracy": accuracy(labels, predictions), "f1": f1_score(labels, predictions, num_labels),
            "mcc": matthews_corrcoef(labels, predictions, num_labels)}


def preprocess_logits_for_metrics(logits, labels):
    """[B, num_labels] logits -> [B] predicted ids, so evaluation keeps ids only."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return logits.argmax(-1)


class ClassificationMetrics:
    """compute_metrics for the Trainer (predictions are already ids, see preprocess_logits_for_metrics)."""

    def __init__(self, num_labels):
        self.num_labels = num_labels

    def __call__(self, eval_pred):
        from ..metrics import load_metric
        preds = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        return load_metric("classification").compute(predictions=np.asarray(preds).ravel(),
                                                     references=np.asarray(eval_pred.label_ids).ravel(),
                                                     num_labels=self.num_labels)
