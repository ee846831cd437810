"""Masked-token accuracy, an `evaluate` module shipped inside hf_pretrain_ext and loaded by path (offline).

Inputs: the predicted and true token ids of the labelled positions only (the Trainer's -100 rows removed by the
caller). `baseline_token_id`: also score predicting that one token everywhere (the most frequent ordinary training
token), so a model's accuracy can be read against what frequency alone gives.

    import evaluate
    from hf_pretrain_ext.metrics import evaluate_module_path
    metric = evaluate.load(evaluate_module_path("masked_token_accuracy"))
    metric.compute(predictions=[5, 7], references=[5, 8], baseline_token_id=5)
"""
import datasets
import evaluate
import numpy as np


class MaskedTokenAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Accuracy over labelled (masked or target) token positions, with a one-token baseline.",
            citation="", inputs_description="predictions, references: token ids of the labelled positions; "
                                            "baseline_token_id (optional): the token a frequency baseline predicts",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, baseline_token_id=None):
        predictions, references = np.asarray(predictions), np.asarray(references)
        n = int(references.size)
        out = {"masked_tokens": n, "accuracy": float((predictions == references).mean()) if n else 0.0}
        if baseline_token_id is not None:
            out["baseline_accuracy"] = float((references == baseline_token_id).mean()) if n else 0.0
        return out
