"""Model classes of this package and their registration with the transformers Auto* APIs."""
from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining,
                          AutoModelForSequenceClassification)

from .configuration_hfpx_bert import TINY_BERT, HfpxBertConfig
from .modeling_hfpx_bert import (HfpxBertForMaskedLM, HfpxBertForPreTraining, HfpxBertForSequenceClassification,
                                 HfpxBertModel)


def register():
    """Make `AutoConfig`/`AutoModel*` know model_type 'hfpx-bert' (idempotent; run on `import hf_pretrain_ext`)."""
    AutoConfig.register(HfpxBertConfig.model_type, HfpxBertConfig, exist_ok=True)
    AutoModel.register(HfpxBertConfig, HfpxBertModel, exist_ok=True)
    AutoModelForMaskedLM.register(HfpxBertConfig, HfpxBertForMaskedLM, exist_ok=True)
    AutoModelForPreTraining.register(HfpxBertConfig, HfpxBertForPreTraining, exist_ok=True)
    AutoModelForSequenceClassification.register(HfpxBertConfig, HfpxBertForSequenceClassification, exist_ok=True)


__all__ = ["HfpxBertConfig", "HfpxBertModel", "HfpxBertForMaskedLM", "HfpxBertForPreTraining",
           "HfpxBertForSequenceClassification", "TINY_BERT", "register"]
