"""hf_pretrain_ext: pretraining objectives, models and a fused loss head for the Hugging Face Trainer.

Importing the package registers its model types with the transformers Auto* classes.
"""
from .models import register as _register_models

__version__ = "0.1.0"

_register_models()
