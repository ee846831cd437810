"""Fine-tuning for sequence classification: strategies (full, feature-based scalar mix, adapters, gradual
unfreezing, discriminative learning rates, auxiliary LM loss), numpy metrics, the `hf-finetune` command."""
from .adapters import add_adapters, remove_adapters
from .metrics import classification_metrics, f1_score, matthews_corrcoef
from .modeling import BackboneClassifier, load_finetuned
from .scalar_mix import ScalarMix
from .strategies import GradualUnfreezingCallback, layer_groups, optimizer_groups

__all__ = ["add_adapters", "remove_adapters", "classification_metrics", "f1_score", "matthews_corrcoef",
           "BackboneClassifier", "load_finetuned", "ScalarMix", "GradualUnfreezingCallback", "layer_groups",
           "optimizer_groups"]
