"""hfpx-bert models: BERT backbone with a masked-LM head that only touches labelled rows.

Weight names are stock BERT's (`bert.*`, `cls.predictions.*`, `cls.seq_relationship.*`), so checkpoints convert
both ways without renaming. What differs from transformers' BertForMaskedLM:
- the loss honours `num_items_in_batch`, so under gradient accumulation and DDP the optimised and logged loss is
  the per-token mean over the whole global batch (stock v5 BERT ignores it and the loss is multiplied);
- with labels, hidden states of labelled positions are gathered first and the head transform + decoder +
  cross-entropy run on those rows only (sparse prediction), through hf_pretrain_ext.kernels when
  `use_fused_loss` is set, so training never holds [tokens, vocab] logits;
- a batch with no labelled token gives a zero loss with a gradient path, never NaN;
- packed rows: `document_ids` [B, L] (0, 1, 2, ... per document in a row, -1 on padding) gives each document its
  own position ids (restarting at 0) and a block-diagonal 4D additive attention mask, which SDPA and eager
  attention both take as-is, so a document attends only to itself and scores as it would alone; with
  config.unpadded the masked-LM model runs such rows on their real tokens only (unpadded.py).
"""
from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertForSequenceClassification, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertEmbeddings, BertOnlyMLMHead, BertPreTrainingHeads

from .configuration_hfpx_bert import HfpxBertConfig
from .distill_loss import TeacherSide, real_tokens, with_distillation
from .lm_loss import head_loss, labelled_rows
from .unpadded import unpadded_sequence_output

_TIED = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
         "cls.predictions.decoder.bias": "cls.predictions.bias"}


@dataclass
class HfpxMaskedLMOutput(ModelOutput):
    """loss: total loss; mlm_loss / sop_loss / distill_loss / cosine_loss: its parts; logits: see
    HfpxBertConfig.sparse_prediction."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    sop_loss: torch.Tensor | None = None
    distill_loss: torch.Tensor | None = None
    cosine_loss: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def sinusoidal_table(positions, dim, rms):
    """[positions, dim] sin/cos table of Vaswani et al. (2017), scaled so its root-mean-square is `rms`."""
    pos = torch.arange(positions, dtype=torch.float64).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-torch.log(torch.tensor(10000.0)) / dim))
    table = torch.zeros(positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table * (rms / table.pow(2).mean().sqrt())


class _PositionInit:
    """BERT's weight init, then config.position_embedding_init='sinusoidal' for fresh position embeddings.

    With BERT's N(0, 0.02) start, a tiny model trained from scratch barely moves its position embeddings, so its
    attention stays nearly order-blind for thousands of steps (measured in docs/finetune.md). transformers inits a
    sub-model's modules with the sub-model's own `_init_weights`, so every hfpx-bert head wraps an HfpxBertModel."""

    def _init_weights(self, module):
        super()._init_weights(module)
        if not isinstance(module, BertEmbeddings) or \
                getattr(self.config, "position_embedding_init", "normal") != "sinusoidal":
            return
        table = module.position_embeddings.weight
        if not getattr(table, "_is_hf_initialized", False):  # never over weights read from a checkpoint
            with torch.no_grad():
                table.copy_(sinusoidal_table(*table.shape, self.config.initializer_range))


class HfpxBertPreTrainedModel(_PositionInit, BertPreTrainedModel):
    config_class = HfpxBertConfig
    accepts_loss_kwargs = True  # the Trainer passes num_items_in_batch and trusts us to divide by it


class HfpxBertModel(_PositionInit, BertModel):
    config_class = HfpxBertConfig


class _TiedMLMHead:
    """The MLM decoder tied to the input embeddings, under BERT's names (`cls.predictions.*`)."""

    _tied_weights_keys = dict(_TIED)

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def _mlm_side(self, sequence, inputs):
        """A distillation teacher's side (models/distill_loss.py) from its encoder states: the MLM head transform
        and decoder, the cosine loss on the real tokens."""
        head = self.cls.predictions
        return TeacherSide(sequence, inputs["labels"], head.decoder.weight, head.decoder.bias, head.transform,
                           real_tokens(inputs, sequence.shape[:2], sequence.device))


def masked_lm_loss(config, predictions, sequence_output, labels, num_items_in_batch=None, training=True,
                   distill=None):
    """MLM loss (and logits) from `predictions` (a BertLMPredictionHead) on labelled rows only.

    sequence_output: [B, L, H]; labels: [B, L]. Returns (loss, logits, parts): logits are [n_labelled, V] when not
    training (for metrics) and None when training with the fused loss; parts holds `mlm_loss` (detached) and, with
    a teacher's `distill` (models/distill_loss.py), `distill_loss` / `cosine_loss`, the loss then being their
    combination. The gather, decoder and loss are lm_loss's (shared with the generative models); without
    config.sparse_prediction (and no teacher) every row is scored ([B, L, V] logits).
    """
    sparse = config.sparse_prediction or distill is not None  # the soft targets are taken on labelled rows
    if sparse:
        hidden, targets = labelled_rows(sequence_output, labels)
    else:
        hidden, targets = sequence_output.reshape(-1, sequence_output.shape[-1]), labels.reshape(-1)
    decoder = predictions.decoder
    hidden = predictions.transform(hidden)
    loss, logits = head_loss(config, hidden, decoder.weight, targets, decoder.bias, num_items_in_batch, training)
    loss, parts = with_distillation(loss, hidden, decoder.weight, decoder.bias, targets, sequence_output, distill,
                                    num_items_in_batch, "mlm_loss")
    if logits is not None and not sparse:
        logits = logits.view(*labels.shape, -1)
    return loss, logits, parts


def document_position_ids(document_ids):
    """[B, L] positions restarting at 0 where the document id changes (padding: its own run, harmless)."""
    length = document_ids.shape[1]
    cols = torch.arange(length, device=document_ids.device).expand_as(document_ids)
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]
    return cols - torch.cummax(torch.where(starts, cols, 0), dim=1).values


def document_attention_mask(document_ids, dtype):
    """[B, 1, L, L] additive mask: 0 where query and key are in the same document (padding, id < 0, is a key of
    no one), the dtype's minimum elsewhere. Every query keeps its own position, so padding rows stay finite."""
    same = document_ids[:, :, None] == document_ids[:, None, :]  # [B, L, L]
    allowed = (same & (document_ids[:, None, :] >= 0)) | torch.eye(document_ids.shape[1], dtype=torch.bool,
                                                                     device=document_ids.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=document_ids.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def packed_inputs(model, document_ids, attention_mask, position_ids):
    """(attention_mask, position_ids) for packed rows; unchanged when document_ids is None."""
    if document_ids is None:
        return attention_mask, position_ids
    if position_ids is None:
        position_ids = document_position_ids(document_ids)
    return document_attention_mask(document_ids, model.dtype), position_ids


class HfpxBertForMaskedLM(_TiedMLMHead, HfpxBertPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.bert = HfpxBertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def encode(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
               inputs_embeds=None, document_ids=None, **kwargs):
        """The encoder's outputs (last_hidden_state [B, L, H], ...) for plain, packed or (config.unpadded) unpadded
        rows; the masked-LM forward and a distillation teacher both start here."""
        if document_ids is not None and getattr(self.config, "unpadded", False) and inputs_embeds is None \
                and not kwargs.get("output_attentions") and not kwargs.get("output_hidden_states"):
            if position_ids is None:
                position_ids = document_position_ids(document_ids)
            return ModelOutput(last_hidden_state=unpadded_sequence_output(
                self.bert, input_ids, document_ids, position_ids, token_type_ids), hidden_states=None, attentions=None)
        attention_mask, position_ids = packed_inputs(self, document_ids, attention_mask, position_ids)
        return self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)

    def distill_side(self, inputs):
        """As a distillation teacher: encoder states, the head transform and decoder (models/distill_loss.py)."""
        keys = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "document_ids")
        return self._mlm_side(self.encode(**{k: inputs[k] for k in keys if k in inputs}).last_hidden_state, inputs)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, num_items_in_batch=None, document_ids=None, distill=None, **kwargs):
        outputs = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, document_ids,
                              **kwargs)
        sequence_output = outputs.last_hidden_state
        if labels is None:
            return HfpxMaskedLMOutput(logits=self.cls(sequence_output), hidden_states=outputs.hidden_states,
                                      attentions=outputs.attentions)
        loss, logits, parts = masked_lm_loss(self.config, self.cls.predictions, sequence_output, labels,
                                             num_items_in_batch, self.training, distill)
        return HfpxMaskedLMOutput(loss=loss, logits=logits, **parts, hidden_states=outputs.hidden_states,
                                  attentions=outputs.attentions)


class HfpxBertForPreTraining(_TiedMLMHead, HfpxBertPreTrainedModel):
    """MLM plus a two-way sentence head (sentence-order or next-sentence prediction), BertForPreTraining's names.

    The sentence loss is a mean over the examples of this micro-batch (one label per example; num_items_in_batch
    counts tokens, not examples, so it is not used there)."""

    def __init__(self, config):
        super().__init__(config)
        self.bert = HfpxBertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.post_init()

    def distill_side(self, inputs):
        """As a distillation teacher: encoder states, the MLM head transform and decoder (its sentence head is not
        distilled)."""
        keys = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
        sequence = self.bert(**{k: inputs[k] for k in keys if k in inputs}, return_dict=True).last_hidden_state
        return self._mlm_side(sequence, inputs)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, sentence_order_label=None,
                num_items_in_batch=None, distill=None, **kwargs):
        outputs = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        sequence_output, pooled = outputs.last_hidden_state, outputs.pooler_output
        seq_logits = self.cls.seq_relationship(pooled)
        sentence_label = sentence_order_label if sentence_order_label is not None else next_sentence_label
        parts = {}
        if labels is None:
            logits = self.cls.predictions(sequence_output)
            mlm_loss = None
        else:
            mlm_loss, logits, parts = masked_lm_loss(self.config, self.cls.predictions, sequence_output, labels,
                                                     num_items_in_batch, self.training, distill)
        sop_loss = None
        if sentence_label is not None:
            sop_loss = nn.functional.cross_entropy(seq_logits.float(), sentence_label.view(-1))
            parts["sop_loss"] = sop_loss.detach()
        losses = [p for p in (mlm_loss, sop_loss) if p is not None]
        loss = sum(losses) if losses else None
        return HfpxMaskedLMOutput(loss=loss, logits=logits, seq_relationship_logits=seq_logits, **parts,
                                  hidden_states=outputs.hidden_states, attentions=outputs.attentions)


class HfpxBertForSequenceClassification(_PositionInit, BertForSequenceClassification):
    config_class = HfpxBertConfig

    def __init__(self, config):
        super().__init__(config)
        self.bert = HfpxBertModel(config)  # same weight names; inits its embeddings by config
        self.post_init()
