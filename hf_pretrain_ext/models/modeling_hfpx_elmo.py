"""hfpx-elmo: ELMo's bidirectional LSTM language model (Peters et al. 2018), with a token input layer.

Tokens are embedded (lstm_size wide), then two independent stacks of `num_hidden_layers` LSTM layers read each
document left to right and right to left (a residual connection around every layer above the first, as in
ELMo). The forward stack's top state at t predicts token t + 1, the backward stack's predicts token t - 1; both
go through one shared softmax (ELMo ties it between the directions) in one call of the fused loss head, labelled
rows only, and the loss is the mean of the two directions' per-token losses. Packed blocks: every document is its
own sequence (position_ids restart at 0 per document, as the causal-LM collator makes them), so no state crosses a
boundary in either direction; the documents run as one packed nn.LSTM batch.

HfpxElmoModel (AutoModel) returns the layers feature-based fine-tuning mixes (ELMo's scalar mix): hidden_states =
([x; x], [f_1; b_1], ..., [f_L; b_L]), each 2 * lstm_size = hidden_size wide, last_hidden_state the top one.
Not here (yet): ELMo's character-CNN input layer and its LSTM projections.
"""
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput

from ..constants import IGNORE_INDEX
from .lm_loss import head_loss
from .modeling_hfpx_nnlm import init_normal


class HfpxElmoConfig(PretrainedConfig):
    """hidden_size: the width of every state the model returns (both directions concatenated, 2 * lstm_size);
    num_hidden_layers: LSTM layers per direction; dropout between layers."""

    model_type = "hfpx-elmo"

    def __init__(self, vocab_size=30000, hidden_size=256, num_hidden_layers=2, dropout=0.1, initializer_range=0.05,
                 use_fused_loss=True, loss_backend="auto", **kwargs):
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
        if hidden_size % 2:
            raise ValueError(f"hidden_size must be even (two directions of hidden_size / 2), got {hidden_size}")
        self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
        self.dropout, self.initializer_range = dropout, initializer_range
        self.use_fused_loss, self.loss_backend = use_fused_loss, loss_backend

    @property
    def lstm_size(self):
        return self.hidden_size // 2


TINY_ELMO = dict(hidden_size=256, num_hidden_layers=2, dropout=0.1)


def document_layout(input_ids, position_ids, attention_mask):
    """(doc [B, L], offset [B, L], lengths [n_docs], real [B, L]): each real token's document number and place in
    it. Documents start where position_ids is 0 (or each row is one, without position_ids)."""
    batch, length = input_ids.shape
    real = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
    if position_ids is None:
        position_ids = torch.arange(length, device=input_ids.device).expand(batch, length)
    starts = (position_ids == 0) & real
    starts[:, 0] |= real[:, 0]
    doc = torch.cumsum(starts.flatten(), 0).view(batch, length) - 1  # documents numbered across rows
    offset = torch.arange(length, device=input_ids.device).expand(batch, length) - \
        torch.cummax(torch.where(starts, torch.arange(length, device=input_ids.device), 0), 1).values
    n_docs = int(starts.sum())
    lengths = torch.zeros(n_docs, dtype=torch.long, device=input_ids.device).index_add_(
        0, doc[real], torch.ones_like(doc[real]))
    return doc, offset, lengths, real


class BiLSTMStacks(nn.Module):
    """Forward and backward LSTM stacks over the documents of a batch."""

    def __init__(self, config):
        super().__init__()
        size, n = config.lstm_size, config.num_hidden_layers
        self.forward_layers = nn.ModuleList(nn.LSTM(size, size, batch_first=True) for _ in range(n))
        self.backward_layers = nn.ModuleList(nn.LSTM(size, size, batch_first=True) for _ in range(n))
        self.dropout = nn.Dropout(config.dropout)

    @staticmethod
    def _run(layers, dropout, seqs, lengths):
        """[n_docs, T, d] padded documents -> per layer [n_docs, T, d] (residual above the first layer)."""
        outs, x = [], seqs
        for i, lstm in enumerate(layers):
            packed = pack_padded_sequence(dropout(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
            y, _ = lstm(packed)
            y, _ = pad_packed_sequence(y, batch_first=True, total_length=seqs.shape[1])
            x = y + x if i > 0 else y
            outs.append(x)
        return outs

    def forward(self, emb, doc, offset, lengths, real):
        """emb [B, L, d] -> ([forward states per layer], [backward states per layer]), each [B, L, d], 0 on pads."""
        width = int(lengths.max()) if len(lengths) else 1
        d = emb.shape[-1]
        g, p = doc[real], offset[real]
        rev = lengths[g] - 1 - p  # the place of each token in its reversed document
        seqs = emb.new_zeros(len(lengths), width, d)
        back = emb.new_zeros(len(lengths), width, d)
        seqs[g, p] = emb[real]
        back[g, rev] = emb[real]
        result = []
        for layers, src, where in ((self.forward_layers, seqs, p), (self.backward_layers, back, rev)):
            states = []
            for out in self._run(layers, self.dropout, src, lengths):
                full = emb.new_zeros(emb.shape)
                full[real] = out[g, where]
                states.append(full)
            result.append(states)
        return result


class HfpxElmoPreTrainedModel(PreTrainedModel):
    config_class = HfpxElmoConfig
    base_model_prefix = "elmo"

    def _init_weights(self, module):
        std = self.config.initializer_range
        if not init_normal(module, std) and isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                nn.init.uniform_(param, -std, std) if "weight" in name else nn.init.zeros_(param)


class HfpxElmoModel(HfpxElmoPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.lstm_size)
        self.lstm = BiLSTMStacks(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings

    def set_input_embeddings(self, value):
        self.embeddings = value

    def directions(self, input_ids, attention_mask=None, position_ids=None):
        """(token embeddings [B, L, d], forward states per layer, backward states per layer)."""
        emb = self.embeddings(input_ids)
        layout = document_layout(input_ids, position_ids, attention_mask)
        fwd, bwd = self.lstm(emb, *layout)
        return emb, fwd, bwd

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
        emb, fwd, bwd = self.directions(input_ids, attention_mask, position_ids)
        states = (torch.cat([emb, emb], -1),) + tuple(torch.cat([f, b], -1) for f, b in zip(fwd, bwd))
        return BaseModelOutput(last_hidden_state=states[-1], hidden_states=states)


class HfpxElmoForPreTraining(HfpxElmoPreTrainedModel):
    accepts_loss_kwargs = True  # the Trainer passes num_items_in_batch and trusts us to divide by it

    def __init__(self, config):
        super().__init__(config)
        self.elmo = HfpxElmoModel(config)
        self.lm_head = nn.Linear(config.lstm_size, config.vocab_size)  # shared by both directions
        self.post_init()

    def get_input_embeddings(self):
        return self.elmo.embeddings

    def set_input_embeddings(self, value):
        self.elmo.embeddings = value

    def get_output_embeddings(self):
        return None  # the softmax is shared between the directions, not tied to the input embeddings

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, labels=None, num_items_in_batch=None,
                use_cache=None, **kwargs):
        """labels are the inputs with the first token of each document (and padding) at -100, as the causal-LM
        collator makes them: forward targets labels[:, t + 1] from position t, backward targets input_ids[:, t - 1]
        from position t wherever labels[:, t] is set (t - 1 then lies in the same document)."""
        emb, fwd, bwd = self.elmo.directions(input_ids, attention_mask, position_ids)
        head = self.lm_head
        if labels is None:
            return CausalLMOutput(logits=head(fwd[-1]))
        f_targets = labels[:, 1:]
        b_targets = torch.where(labels[:, 1:] != IGNORE_INDEX, input_ids[:, :-1], IGNORE_INDEX)
        f_rows = fwd[-1][:, :-1][f_targets != IGNORE_INDEX]
        b_rows = bwd[-1][:, 1:][b_targets != IGNORE_INDEX]
        rows = torch.cat([f_rows, b_rows])
        targets = torch.cat([f_targets[f_targets != IGNORE_INDEX], b_targets[b_targets != IGNORE_INDEX]])
        denom = 2 * (num_items_in_batch if num_items_in_batch is not None else len(f_rows))
        loss, logits = head_loss(self.config, rows, head.weight, targets, head.bias, denom, self.training)
        if logits is not None:
            logits = logits[:len(f_rows)]  # metrics score the forward direction (next-token accuracy)
        return CausalLMOutput(loss=loss, logits=logits)
