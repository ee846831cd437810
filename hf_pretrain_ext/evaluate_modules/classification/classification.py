"""Accuracy, F1 and Matthews correlation for sequence classification, an `evaluate` module shipped inside
hf_pretrain_ext and loaded by path (offline). The arithmetic lives in hf_pretrain_ext.finetune.metrics (one
confusion matrix; F1 of class 1 for two classes, macro F1 over the classes seen otherwise; multi-class MCC).

    import evaluate
    from hf_pretrain_ext.metrics import evaluate_module_path
    metric = evaluate.load(evaluate_module_path("classification"))
    metric.compute(predictions=[1, 0], references=[1, 1], num_labels=2)
"""
import datasets
import evaluate

from hf_pretrain_ext.finetune.metrics import classification_metrics


class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Accuracy, F1 (binary: class 1; multi-class: macro) and Matthews correlation.",
            citation="", inputs_description="predictions, references: class ids; num_labels (optional)",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, num_labels=None):
        return classification_metrics(references, predictions, num_labels)
