"""hfpx-nnlm: Bengio et al.'s neural probabilistic language model (JMLR 2003), trained like the other causal LMs.

For every position t the n previous tokens w_{t-n+1} .. w_t are looked up in one embedding table C and
concatenated, x = [C(w_t); C(w_{t-1}); ...] (n * m values), then

    y = b + W x + U tanh(d + H x),    P(w_{t+1} | context) = softmax(y)

(W x: the optional direct connections). Training scores position t against labels[t + 1], as GPT does, and the
whole vocabulary softmax goes through the fused loss head: the hidden features [tanh(d + H x); x] against the
weight [U, W] (one [V, h + n m] matrix, so the direct connections cost no second softmax), with b as the bias, on
labelled rows only. The context never crosses a document: where the token k places back lies before the start of
the current document (position_ids, which restart at 0 per document in packed blocks), or before the row, a
learned start vector for slot k stands in for it.

HfpxNNLMModel (AutoModel) returns the hidden layer (a function of the word vectors of each position's n-token
context) as last_hidden_state and as its one hidden state, for feature-based fine-tuning; `word_vectors()` is C.
"""
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput

from ..constants import IGNORE_INDEX
from .distill_loss import TeacherSide
from .lm_loss import labelled_rows_loss
from .modeling_hfpx_gpt import HfpxCausalLMOutput


class HfpxNNLMConfig(PretrainedConfig):
    """context_size n (previous tokens, the current one included), embedding_size m, hidden_size h (tanh units),
    direct_connections (the W x term), use_fused_loss / loss_backend as for the other hfpx models."""

    model_type = "hfpx-nnlm"

    def __init__(self, vocab_size=30000, context_size=4, embedding_size=64, hidden_size=128,
                 direct_connections=False, initializer_range=0.02, use_fused_loss=True, loss_backend="auto",
                 **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.context_size, self.embedding_size = vocab_size, context_size, embedding_size
        self.hidden_size, self.direct_connections = hidden_size, direct_connections
        self.initializer_range, self.use_fused_loss, self.loss_backend = initializer_range, use_fused_loss, loss_backend
        self.num_hidden_layers = 0  # no layer stack: fine-tuning mixes the one state AutoModel returns


TINY_NNLM = dict(context_size=4, embedding_size=64, hidden_size=128)
"""The default fresh NNLM: about 33k parameters plus vocab_size * (64 + 129) embeddings and output weights."""


def init_normal(module, std):
    """N(0, std) weights and zero biases for a Linear or Embedding (also hfpx-elmo's); False for other modules."""
    if not isinstance(module, (nn.Linear, nn.Embedding)):
        return False
    nn.init.normal_(module.weight, std=std)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return True


class HfpxNNLMPreTrainedModel(PreTrainedModel):
    config_class = HfpxNNLMConfig
    base_model_prefix = "nnlm"

    def _init_weights(self, module):
        std = self.config.initializer_range
        if not init_normal(module, std) and isinstance(module, NNLMContext):
            nn.init.normal_(module.start, std=std)


class NNLMContext(nn.Module):
    """[B, L] ids -> [B, L, n m] concatenated embeddings of the n tokens ending at each position (start vectors
    where the context would reach before the document or the row)."""

    def __init__(self, config):
        super().__init__()
        self.n = config.context_size
        self.embed = nn.Embedding(config.vocab_size, config.embedding_size)
        self.start = nn.Parameter(torch.zeros(self.n, config.embedding_size))

    def forward(self, input_ids, position_ids=None):
        emb = self.embed(input_ids)  # [B, L, m]
        batch, length, _ = emb.shape
        if position_ids is None:  # one document per row
            position_ids = torch.arange(length, device=emb.device).expand(batch, length)
        slots = [emb]
        for k in range(1, self.n):
            back = torch.cat([emb.new_zeros(batch, min(k, length), emb.shape[-1]), emb[:, :length - k]], 1)
            inside = (position_ids >= k)[..., None]  # w_{t-k} is in the current document
            slots.append(torch.where(inside, back, self.start[k].to(emb.dtype)))
        return torch.cat(slots, -1)


class HfpxNNLMModel(HfpxNNLMPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.context = NNLMContext(config)
        self.hidden = nn.Linear(config.context_size * config.embedding_size, config.hidden_size)  # H, d
        self.post_init()

    def get_input_embeddings(self):
        return self.context.embed

    def set_input_embeddings(self, value):
        self.context.embed = value

    def features(self, input_ids, position_ids=None):
        """(x [B, L, n m], tanh(d + H x) [B, L, h])."""
        x = self.context(input_ids, position_ids)
        return x, torch.tanh(self.hidden(x))

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
        _, h = self.features(input_ids, position_ids)
        return BaseModelOutput(last_hidden_state=h, hidden_states=(h,))


class HfpxNNLMForCausalLM(HfpxNNLMPreTrainedModel):
    accepts_loss_kwargs = True  # the Trainer passes num_items_in_batch and trusts us to divide by it

    def __init__(self, config):
        super().__init__(config)
        self.nnlm = HfpxNNLMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)  # U, b
        n_in = config.context_size * config.embedding_size
        self.direct = nn.Linear(n_in, config.vocab_size, bias=False) if config.direct_connections else None  # W
        self.post_init()

    def get_input_embeddings(self):
        return self.nnlm.context.embed

    def set_input_embeddings(self, value):
        self.nnlm.context.embed = value

    def get_output_embeddings(self):
        return None  # not tied: C and U are separate, as in the paper

    def word_vectors(self):
        """C, the [V, m] word feature vectors."""
        return self.nnlm.context.embed.weight.detach()

    def head_inputs(self, input_ids, position_ids=None):
        """(features [B, L, h (+ n m)], weight [V, h (+ n m)], bias [V]): y = features @ weight^T + bias."""
        x, h = self.nnlm.features(input_ids, position_ids)
        if self.direct is None:
            return h, self.lm_head.weight, self.lm_head.bias
        return torch.cat([h, x], -1), torch.cat([self.lm_head.weight, self.direct.weight], 1), self.lm_head.bias

    @property
    def distill_width(self):
        """Width of the states distillation compares: the head's input features [tanh(d + H x); x]."""
        direct = self.config.context_size * self.config.embedding_size if self.direct is not None else 0
        return self.config.hidden_size + direct

    def distill_side(self, inputs):
        """As a distillation teacher: the head's input features at [:, :-1] against labels [:, 1:], weight [U, W]
        and bias b (models/distill_loss.py)."""
        features, weight, bias = self.head_inputs(inputs["input_ids"], inputs.get("position_ids"))
        labels = inputs["labels"][:, 1:]
        return TeacherSide(features[:, :-1], labels, weight, bias, None, labels != IGNORE_INDEX)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, labels=None, num_items_in_batch=None,
                use_cache=None, distill=None, **kwargs):
        features, weight, bias = self.head_inputs(input_ids, position_ids)
        if labels is None:
            return CausalLMOutput(logits=nn.functional.linear(features, weight, bias))
        # position t predicts label t + 1 (labels are the inputs, as for GPT)
        loss, logits, parts = labelled_rows_loss(self.config, features[:, :-1], weight, labels[:, 1:], bias=bias,
                                                 num_items_in_batch=num_items_in_batch, training=self.training,
                                                 distill=distill)
        return HfpxCausalLMOutput(loss=loss, logits=logits, **parts)
