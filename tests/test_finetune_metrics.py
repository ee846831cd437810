"""Accuracy, F1 and MCC against values worked out by hand from the confusion matrices."""
import math

import numpy as np
import pytest

from hf_pretrain_ext.finetune.metrics import (ClassificationMetrics, accuracy, classification_metrics,
                                              confusion_matrix, f1_score, matthews_corrcoef,
                                              preprocess_logits_for_metrics)


def test_binary_by_hand():
    # TP = 3 (0, 2, 6), FN = 1 (1), FP = 2 (4, 7), TN = 2 (3, 5)
    y = [1, 1, 1, 0, 0, 0, 1, 0]
    p = [1, 0, 1, 0, 1, 0, 1, 1]
    assert confusion_matrix(y, p).tolist() == [[2, 2], [1, 3]]
    assert accuracy(y, p) == 5 / 8
    assert f1_score(y, p) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert matthews_corrcoef(y, p) == pytest.approx((3 * 2 - 2 * 1) / math.sqrt(5 * 4 * 4 * 3))


def test_multiclass_by_hand():
    # confusion rows (true) 0: [1, 1, 0], 1: [0, 2, 0], 2: [1, 0, 1]
    y = [0, 0, 1, 1, 2, 2]
    p = [0, 1, 1, 1, 2, 0]
    f1s = [2 / (2 + 1 + 1), 4 / (4 + 1 + 0), 2 / (2 + 0 + 1)]
    m = classification_metrics(y, p, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx(sum(f1s) / 3)  # macro
    # c = 4, s = 6, predicted counts (2, 3, 1), true counts (2, 2, 2)
    assert m["mcc"] == pytest.approx((4 * 6 - (4 + 6 + 2)) / math.sqrt((36 - 14) * (36 - 12)))


def test_degenerate_cases():
    assert matthews_corrcoef([0, 1, 0, 1], [1, 1, 1, 1]) == 0.0  # constant prediction: denominator 0
    assert f1_score([0, 0, 0], [0, 0, 0], 2) == 0.0  # no positive anywhere
    assert classification_metrics([2, 0, 1], [2, 0, 1], 3) == {"accuracy": 1.0, "f1": 1.0, "mcc": 1.0}
    assert matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    # a class absent from labels and predictions does not drag the macro F1 down
    assert f1_score([0, 2], [0, 2], 5) == 1.0


def test_trainer_hooks():
    import torch
    from transformers import EvalPrediction
    ids = preprocess_logits_for_metrics((torch.tensor([[0.1, 2.0], [3.0, -1.0]]), torch.tensor(1.0)), None)
    assert ids.tolist() == [1, 0]
    out = ClassificationMetrics(2)(EvalPrediction(predictions=np.array([1, 0]), label_ids=np.array([1, 1])))
    assert out["accuracy"] == 0.5 and out["f1"] == pytest.approx(2 / 3)
