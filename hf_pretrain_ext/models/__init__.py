"""Model classes of this package and their registration with the transformers Auto* APIs."""
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining,
                          AutoModelForSeq2SeqLM, AutoModelForSequenceClassification)

from .configuration_hfpx_bert import TINY_BERT, HfpxBertConfig
from .configuration_hfpx_gpt import TINY_GPT, HfpxGPTConfig
from .configuration_hfpx_seq2seq import TINY_BART, TINY_T5, HfpxBartConfig, HfpxT5Config
from .modeling_hfpx_bert import (HfpxBertForMaskedLM, HfpxBertForPreTraining, HfpxBertForSequenceClassification,
                                 HfpxBertModel)
from .modeling_hfpx_elmo import TINY_ELMO, HfpxElmoConfig, HfpxElmoForPreTraining, HfpxElmoModel
from .modeling_hfpx_gpt import HfpxGPTForCausalLM, HfpxGPTModel
from .modeling_hfpx_nnlm import TINY_NNLM, HfpxNNLMConfig, HfpxNNLMForCausalLM, HfpxNNLMModel
from .modeling_hfpx_word2vec import TINY_WORD2VEC, HfpxWord2VecConfig, HfpxWord2VecForPreTraining, HfpxWord2VecModel
from .modeling_hfpx_seq2seq import (HfpxBartForConditionalGeneration, HfpxBartModel, HfpxT5ForConditionalGeneration,
                                    HfpxT5Model)


def register():
    """Make `AutoConfig`/`AutoModel*` know the hfpx-* model types (idempotent; run on `import hf_pretrain_ext`)."""
    AutoConfig.register(HfpxBertConfig.model_type, HfpxBertConfig, exist_ok=True)
    AutoModel.register(HfpxBertConfig, HfpxBertModel, exist_ok=True)
    AutoModelForMaskedLM.register(HfpxBertConfig, HfpxBertForMaskedLM, exist_ok=True)
    AutoModelForPreTraining.register(HfpxBertConfig, HfpxBertForPreTraining, exist_ok=True)
    AutoModelForSequenceClassification.register(HfpxBertConfig, HfpxBertForSequenceClassification, exist_ok=True)
    AutoConfig.register(HfpxGPTConfig.model_type, HfpxGPTConfig, exist_ok=True)
    AutoModel.register(HfpxGPTConfig, HfpxGPTModel, exist_ok=True)
    AutoModelForCausalLM.register(HfpxGPTConfig, HfpxGPTForCausalLM, exist_ok=True)
    for config, base, lm in ((HfpxBartConfig, HfpxBartModel, HfpxBartForConditionalGeneration),
                             (HfpxT5Config, HfpxT5Model, HfpxT5ForConditionalGeneration)):
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoModel.register(config, base, exist_ok=True)
        AutoModelForSeq2SeqLM.register(config, lm, exist_ok=True)
    AutoConfig.register(HfpxNNLMConfig.model_type, HfpxNNLMConfig, exist_ok=True)
    AutoModel.register(HfpxNNLMConfig, HfpxNNLMModel, exist_ok=True)
    AutoModelForCausalLM.register(HfpxNNLMConfig, HfpxNNLMForCausalLM, exist_ok=True)
    AutoConfig.register(HfpxElmoConfig.model_type, HfpxElmoConfig, exist_ok=True)
    AutoModel.register(HfpxElmoConfig, HfpxElmoModel, exist_ok=True)
    AutoModelForPreTraining.register(HfpxElmoConfig, HfpxElmoForPreTraining, exist_ok=True)
    AutoConfig.register(HfpxWord2VecConfig.model_type, HfpxWord2VecConfig, exist_ok=True)
    AutoModel.register(HfpxWord2VecConfig, HfpxWord2VecModel, exist_ok=True)
    AutoModelForPreTraining.register(HfpxWord2VecConfig, HfpxWord2VecForPreTraining, exist_ok=True)


__all__ = ["HfpxBertConfig", "HfpxBertModel", "HfpxBertForMaskedLM", "HfpxBertForPreTraining",
           "HfpxBertForSequenceClassification", "TINY_BERT", "HfpxGPTConfig", "HfpxGPTModel", "HfpxGPTForCausalLM",
           "TINY_GPT", "HfpxBartConfig", "HfpxBartModel", "HfpxBartForConditionalGeneration", "HfpxT5Config",
           "HfpxT5Model", "HfpxT5ForConditionalGeneration", "TINY_BART", "TINY_T5", "HfpxNNLMConfig", "HfpxNNLMModel",
           "HfpxNNLMForCausalLM", "TINY_NNLM", "HfpxWord2VecConfig", "HfpxWord2VecModel", "HfpxWord2VecForPreTraining",
           "TINY_WORD2VEC", "HfpxElmoConfig", "HfpxElmoModel", "HfpxElmoForPreTraining", "TINY_ELMO", "register"]
