"""hfpx-gpt: GPT-2 (stock weight names: `transformer.*`, `lm_head.weight`) with our loss path.

Only the loss path differs from transformers' GPT2LMHeadModel: with labels, the decoder's hidden states at
positions whose *next* label is set are gathered and scored through fused_linear_cross_entropy (no [tokens, vocab]
logits while training), the loss honours `num_items_in_batch`, and a batch with no label gives 0, not NaN.
Without labels (generation, inference) the stock forward runs unchanged. With a teacher's `distill` target the
loss is the distilled one (models/distill_loss.py) and `lm_loss` / `distill_loss` / `cosine_loss` come beside it. Packed rows: pass `position_ids` that
restart at 0 per document, no attention_mask and use_cache=False, and transformers' mask builder keeps documents
apart (with a KV cache it does not look for packed rows).
"""
from dataclasses import dataclass

import torch
from transformers import GPT2LMHeadModel, GPT2Model
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions

from ..constants import IGNORE_INDEX
from .configuration_hfpx_gpt import HfpxGPTConfig
from .distill_loss import TeacherSide
from .lm_loss import labelled_rows_loss


@dataclass
class HfpxCausalLMOutput(CausalLMOutputWithCrossAttentions):
    """The stock output plus the distillation loss parts (None without a teacher)."""

    lm_loss: torch.FloatTensor | None = None
    distill_loss: torch.FloatTensor | None = None
    cosine_loss: torch.FloatTensor | None = None


class HfpxGPTModel(GPT2Model):
    config_class = HfpxGPTConfig


class HfpxGPTForCausalLM(GPT2LMHeadModel):
    config_class = HfpxGPTConfig
    accepts_loss_kwargs = True  # the Trainer passes num_items_in_batch and trusts us to divide by it

    def forward(self, input_ids=None, past_key_values=None, attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None,
                labels=None, use_cache=None, logits_to_keep=0, num_items_in_batch=None, distill=None, **kwargs):
        if labels is None:
            return super().forward(input_ids=input_ids, past_key_values=past_key_values,
                                   attention_mask=attention_mask, token_type_ids=token_type_ids,
                                   position_ids=position_ids, inputs_embeds=inputs_embeds,
                                   encoder_hidden_states=encoder_hidden_states,
                                   encoder_attention_mask=encoder_attention_mask, use_cache=use_cache,
                                   logits_to_keep=logits_to_keep, **kwargs)
        outputs = self.transformer(input_ids, past_key_values=past_key_values, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, position_ids=position_ids,
                                   inputs_embeds=inputs_embeds, encoder_hidden_states=encoder_hidden_states,
                                   encoder_attention_mask=encoder_attention_mask, use_cache=bool(use_cache),
                                   **kwargs)  # no cache unless asked: with one, packed rows are not detected
        hidden = outputs.last_hidden_state[:, :-1]  # [B, L-1, H]: position t predicts label t+1
        loss, logits, parts = labelled_rows_loss(self.config, hidden, self.lm_head.weight, labels[:, 1:],
                                                 num_items_in_batch=num_items_in_batch, training=self.training,
                                                 distill=distill)
        return HfpxCausalLMOutput(loss=loss, logits=logits, past_key_values=outputs.past_key_values,
                                  hidden_states=outputs.hidden_states, attentions=outputs.attentions, **parts)

    def distill_side(self, inputs):
        """As a distillation teacher: final states [:, :-1] against labels [:, 1:], the LM head; the cosine loss
        compares the positions that have a next-token label."""
        keys = ("input_ids", "attention_mask", "position_ids", "token_type_ids")
        sequence = self.transformer(**{k: inputs[k] for k in keys if k in inputs},
                                    use_cache=False).last_hidden_state[:, :-1]
        labels = inputs["labels"][:, 1:]
        return TeacherSide(sequence, labels, self.lm_head.weight, None, None, labels != IGNORE_INDEX)
