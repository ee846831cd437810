"""hfpx-bart and hfpx-t5: the stock BartForConditionalGeneration / T5ForConditionalGeneration with our loss path.

Weight names are the stock ones (`model.*`, `lm_head.weight`, `final_logits_bias` for BART; `shared`, `encoder.*`,
`decoder.*`, `lm_head.weight` for T5). With labels, the decoder's hidden states at labelled positions are gathered
and scored through fused_linear_cross_entropy (BART's final_logits_bias as the bias, T5's d_model**-0.5 output
scaling applied first), the loss honours `num_items_in_batch`, and a batch with no label gives 0, not NaN.
Without labels (generation, inference) the stock forward runs unchanged. With a teacher's `distill` target the
decoder's loss is the distilled one (models/distill_loss.py) and `lm_loss` / `distill_loss` / `cosine_loss`
come beside it; as a teacher, `distill_side` hands over the decoder states of the same batch.
"""
from dataclasses import dataclass

import torch
from transformers import BartForConditionalGeneration, BartModel, T5ForConditionalGeneration, T5Model
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

from ..constants import IGNORE_INDEX
from .configuration_hfpx_seq2seq import HfpxBartConfig, HfpxT5Config
from .distill_loss import TeacherSide
from .lm_loss import labelled_rows_loss


@dataclass
class HfpxSeq2SeqLMOutput(Seq2SeqLMOutput):
    """The stock output plus the distillation loss parts (None without a teacher)."""

    lm_loss: torch.FloatTensor | None = None
    distill_loss: torch.FloatTensor | None = None
    cosine_loss: torch.FloatTensor | None = None


class _LabelledRowsSeq2Seq:
    """Without labels, the stock forward (generation, inference); with labels, decoder inputs from the labels
    when none are given (the stock `prepare_decoder_input_ids_from_labels`), the subclass's `_decoder_states` and
    the labelled-rows loss on them. Put before the stock class in the bases."""

    accepts_loss_kwargs = True

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None,
                labels=None, use_cache=None, num_items_in_batch=None, distill=None, **kwargs):
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                      decoder_attention_mask=decoder_attention_mask, encoder_outputs=encoder_outputs,
                      past_key_values=past_key_values, inputs_embeds=inputs_embeds,
                      decoder_inputs_embeds=decoder_inputs_embeds)
        if labels is None:
            return super().forward(**inputs, use_cache=use_cache, **kwargs)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            inputs["decoder_input_ids"] = self.prepare_decoder_input_ids_from_labels(labels=labels)
        hidden, bias, fields = self._decoder_states(inputs, **kwargs)
        loss, logits, parts = labelled_rows_loss(self.config, hidden, self.lm_head.weight, labels, bias=bias,
                                                 num_items_in_batch=num_items_in_batch, training=self.training,
                                                 distill=distill)
        return HfpxSeq2SeqLMOutput(loss=loss, logits=logits, **fields, **parts)

    def distill_side(self, inputs):
        """As a distillation teacher: the decoder states of the batch (decoder inputs from the labels when the batch
        has none), its LM head (and BART's final_logits_bias); the cosine loss compares the labelled positions."""
        labels = inputs["labels"]
        keys = ("input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask")
        states = dict(encoder_outputs=None, past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None,
                      **{k: inputs.get(k) for k in keys})
        if states["decoder_input_ids"] is None:
            states["decoder_input_ids"] = self.prepare_decoder_input_ids_from_labels(labels=labels)
        hidden, bias, _ = self._decoder_states(states)
        return TeacherSide(hidden, labels, self.lm_head.weight, bias, None, labels != IGNORE_INDEX)


class HfpxBartModel(BartModel):
    config_class = HfpxBartConfig


class HfpxBartForConditionalGeneration(_LabelledRowsSeq2Seq, BartForConditionalGeneration):
    config_class = HfpxBartConfig

    def _decoder_states(self, inputs, **kwargs):
        """(decoder hidden states [B, T, H], final_logits_bias [V], the other Seq2SeqLMOutput fields)."""
        outputs = self.model(**inputs, use_cache=False, **kwargs)
        fields = dict(past_key_values=outputs.past_key_values, decoder_hidden_states=outputs.decoder_hidden_states,
                      decoder_attentions=outputs.decoder_attentions, cross_attentions=outputs.cross_attentions,
                      encoder_last_hidden_state=outputs.encoder_last_hidden_state,
                      encoder_hidden_states=outputs.encoder_hidden_states,
                      encoder_attentions=outputs.encoder_attentions)
        return outputs.last_hidden_state, self.final_logits_bias.reshape(-1), fields


class HfpxT5Model(T5Model):
    config_class = HfpxT5Config


class HfpxT5ForConditionalGeneration(_LabelledRowsSeq2Seq, T5ForConditionalGeneration):
    config_class = HfpxT5Config

    def _decoder_states(self, inputs, **kwargs):
        """(decoder hidden states [B, T, H], scaled by d_model**-0.5 when the config says so; no bias; the other
        Seq2SeqLMOutput fields)."""
        encoder_outputs = inputs["encoder_outputs"]
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                           inputs_embeds=inputs["inputs_embeds"], **kwargs)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
        decoder_outputs = self.decoder(input_ids=inputs["decoder_input_ids"],
                                       attention_mask=inputs["decoder_attention_mask"],
                                       inputs_embeds=inputs["decoder_inputs_embeds"],
                                       past_key_values=inputs["past_key_values"],
                                       encoder_hidden_states=encoder_outputs.last_hidden_state,
                                       encoder_attention_mask=inputs["attention_mask"], use_cache=False, **kwargs)
        hidden = decoder_outputs.last_hidden_state
        if self.config.scale_decoder_outputs:
            hidden = hidden * (self.model_dim ** -0.5)
        fields = dict(decoder_hidden_states=decoder_outputs.hidden_states,
                      decoder_attentions=decoder_outputs.attentions, cross_attentions=decoder_outputs.cross_attentions,
                      encoder_last_hidden_state=encoder_outputs.last_hidden_state,
                      encoder_hidden_states=encoder_outputs.hidden_states,
                      encoder_attentions=encoder_outputs.attentions)
        return hidden, None, fields
