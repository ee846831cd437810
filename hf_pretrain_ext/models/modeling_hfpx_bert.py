"""hfpx-bert models: BERT backbone with a masked-LM head that only touches labelled rows.

Weight names are stock BERT's (`bert.*`, `cls.predictions.*`, `cls.seq_relationship.*`), so checkpoints convert
both ways without renaming. What differs from transformers' BertForMaskedLM:
- the loss honours `num_items_in_batch`, so under gradient accumulation and DDP the optimised and logged loss is
  the per-token mean over the whole global batch (stock v5 BERT ignores it and the loss is multiplied);
- with labels, hidden states of labelled positions are gathered first and the head transform + decoder +
  cross-entropy run on those rows only (sparse prediction), through hf_pretrain_ext.kernels when
  `use_fused_loss` is set, so training never holds [tokens, vocab] logits;
- a batch with no labelled token gives a zero loss with a gradient path, never NaN.
"""
from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertForSequenceClassification, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertOnlyMLMHead, BertPreTrainingHeads

from ..kernels import fused_linear_cross_entropy
from .configuration_hfpx_bert import HfpxBertConfig

IGNORE_INDEX = -100
_TIED = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
         "cls.predictions.decoder.bias": "cls.predictions.bias"}


@dataclass
class HfpxMaskedLMOutput(ModelOutput):
    """loss: total loss; mlm_loss / sop_loss: its parts; logits: see HfpxBertConfig.sparse_prediction."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    sop_loss: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class HfpxBertPreTrainedModel(BertPreTrainedModel):
    config_class = HfpxBertConfig
    accepts_loss_kwargs = True  # the Trainer passes num_items_in_batch and trusts us to divide by it


class _TiedMLMHead:
    """The MLM decoder tied to the input embeddings, under BERT's names (`cls.predictions.*`)."""

    _tied_weights_keys = dict(_TIED)

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias


def masked_lm_loss(config, predictions, sequence_output, labels, num_items_in_batch=None, training=True):
    """MLM loss (and logits) from `predictions` (a BertLMPredictionHead) on labelled rows only.

    sequence_output: [B, L, H]; labels: [B, L]. Returns (loss, logits) where logits are [n_labelled, V] when not
    training (for metrics) and None when training with the fused loss.
    """
    flat_labels = labels.reshape(-1)
    if config.sparse_prediction:
        rows = (flat_labels != IGNORE_INDEX).nonzero().squeeze(-1)  # [n_labelled]
        hidden = sequence_output.reshape(-1, sequence_output.shape[-1]).index_select(0, rows)
        flat_labels = flat_labels.index_select(0, rows)
    else:
        hidden = sequence_output.reshape(-1, sequence_output.shape[-1])
    hidden = predictions.transform(hidden)  # [n_rows, H]
    decoder = predictions.decoder
    logits = None
    if config.use_fused_loss:
        loss = fused_linear_cross_entropy(hidden, decoder.weight, flat_labels, decoder.bias,
                                          num_items_in_batch=num_items_in_batch, backend=config.loss_backend)
        if not training:
            logits = decoder(hidden)
    else:
        logits = decoder(hidden)
        loss = nn.functional.cross_entropy(logits.float(), flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
        denom = num_items_in_batch if num_items_in_batch is not None else (flat_labels != IGNORE_INDEX).sum()
        loss = loss / torch.as_tensor(denom, device=loss.device).clamp(min=1)
    if logits is not None and not config.sparse_prediction:
        logits = logits.view(*labels.shape, -1)
    return loss, logits


class HfpxBertForMaskedLM(_TiedMLMHead, HfpxBertPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, num_items_in_batch=None, **kwargs):
        outputs = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        sequence_output = outputs.last_hidden_state
        if labels is None:
            return HfpxMaskedLMOutput(logits=self.cls(sequence_output), hidden_states=outputs.hidden_states,
                                      attentions=outputs.attentions)
        loss, logits = masked_lm_loss(self.config, self.cls.predictions, sequence_output, labels,
                                      num_items_in_batch, self.training)
        return HfpxMaskedLMOutput(loss=loss, mlm_loss=loss.detach(), logits=logits,
                                  hidden_states=outputs.hidden_states, attentions=outputs.attentions)


class HfpxBertForPreTraining(_TiedMLMHead, HfpxBertPreTrainedModel):
    """MLM plus a two-way sentence head (sentence-order or next-sentence prediction), BertForPreTraining's names.

    The sentence loss is a mean over the examples of this micro-batch (one label per example; num_items_in_batch
    counts tokens, not examples, so it is not used there)."""

    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, sentence_order_label=None,
                num_items_in_batch=None, **kwargs):
        outputs = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        sequence_output, pooled = outputs.last_hidden_state, outputs.pooler_output
        seq_logits = self.cls.seq_relationship(pooled)
        sentence_label = sentence_order_label if sentence_order_label is not None else next_sentence_label
        if labels is None:
            logits = self.cls.predictions(sequence_output)
            mlm_loss = None
        else:
            mlm_loss, logits = masked_lm_loss(self.config, self.cls.predictions, sequence_output, labels,
                                              num_items_in_batch, self.training)
        sop_loss = None
        if sentence_label is not None:
            sop_loss = nn.functional.cross_entropy(seq_logits.float(), sentence_label.view(-1))
        parts = [p for p in (mlm_loss, sop_loss) if p is not None]
        loss = sum(parts) if parts else None
        return HfpxMaskedLMOutput(loss=loss, logits=logits, seq_relationship_logits=seq_logits,
                                  mlm_loss=None if mlm_loss is None else mlm_loss.detach(),
                                  sop_loss=None if sop_loss is None else sop_loss.detach(),
                                  hidden_states=outputs.hidden_states, attentions=outputs.attentions)


class HfpxBertModel(BertModel):
    config_class = HfpxBertConfig


class HfpxBertForSequenceClassification(BertForSequenceClassification):
    config_class = HfpxBertConfig
