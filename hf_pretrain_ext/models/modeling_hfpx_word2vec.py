"""hfpx-word2vec: Mikolov et al.'s CBOW and skip-gram with negative sampling (2013), as a transformers model.

Two tables, as in the original C code: input vectors (`embeddings`, the word vectors users keep; initialised
uniform in [-0.5/D, 0.5/D]) and output vectors (`output_embeddings`, initialised to zero). A batch holds training
pairs built by the collator (collators/word2vec.py: subsampling, window sampling, negatives from unigram^0.75):

    input_ids [P, C]    the input side: skip-gram C = 1 (the centre word), CBOW up to 2 * window context words
    input_mask [P, C]   which of them are real (CBOW averages the real ones)
    labels [P]          the word to predict (skip-gram: a context word; CBOW: the centre word); -100 pads
    negatives [P, K]    noise words

and the loss is -log sigmoid(u_label . h) - sum_k log sigmoid(-u_neg_k . h) with h the (mean) input vector,
summed over the pairs and divided by num_items_in_batch (the Trainer's count of labels) or their count. A noise
word equal to the label is skipped, as word2vec.c does. No full-vocabulary softmax exists here: negative sampling
replaces it, which was its point.

HfpxWord2VecModel (AutoModel) returns each token's input vector as last_hidden_state, for feature-based
fine-tuning (averaged or attention-pooled word vectors); `word_vectors()` is the plain [V, D] matrix.
"""
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ModelOutput

from ..constants import IGNORE_INDEX


class HfpxWord2VecConfig(PretrainedConfig):
    """hidden_size: the vector size D. The sampling options (window, negatives, subsample, noise_power) are the
    collator's; they are kept here as a record of how the vectors were trained."""

    model_type = "hfpx-word2vec"

    def __init__(self, vocab_size=30000, hidden_size=100, architecture="skipgram", window=5, negatives=5,
                 subsample=1e-3, noise_power=0.75, **kwargs):
        super().__init__(**kwargs)
        if architecture not in ("skipgram", "cbow"):
            raise ValueError(f"architecture must be 'skipgram' or 'cbow', got {architecture!r}")
        self.vocab_size, self.hidden_size, self.architecture = vocab_size, hidden_size, architecture
        self.window, self.negatives, self.subsample, self.noise_power = window, negatives, subsample, noise_power
        self.num_hidden_layers = 0


TINY_WORD2VEC = dict(hidden_size=64, window=5, negatives=5, subsample=1e-3)


class HfpxWord2VecPreTrainedModel(PreTrainedModel):
    config_class = HfpxWord2VecConfig
    base_model_prefix = "word2vec"

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            if getattr(module, "_output_side", False):
                nn.init.zeros_(module.weight)
            else:
                bound = 0.5 / module.embedding_dim
                nn.init.uniform_(module.weight, -bound, bound)


class HfpxWord2VecModel(HfpxWord2VecPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings

    def set_input_embeddings(self, value):
        self.embeddings = value

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        vectors = self.embeddings(input_ids)
        return BaseModelOutput(last_hidden_state=vectors, hidden_states=(vectors,))

    def word_vectors(self):
        return self.embeddings.weight.detach()


class HfpxWord2VecForPreTraining(HfpxWord2VecPreTrainedModel):
    accepts_loss_kwargs = True  # the Trainer passes num_items_in_batch and trusts us to divide by it

    def __init__(self, config):
        super().__init__(config)
        self.word2vec = HfpxWord2VecModel(config)
        self.output_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.output_embeddings._output_side = True
        self.post_init()

    def get_input_embeddings(self):
        return self.word2vec.embeddings

    def set_input_embeddings(self, value):
        self.word2vec.embeddings = value

    def get_output_embeddings(self):
        return None  # two separate tables, never tied

    def word_vectors(self):
        return self.word2vec.word_vectors()

    def forward(self, input_ids=None, input_mask=None, labels=None, negatives=None, num_items_in_batch=None,
                **kwargs):
        if input_ids.dim() == 1:
            input_ids = input_ids[:, None]
        vectors = self.word2vec.embeddings(input_ids)  # [P, C, D]
        if input_mask is None:
            h = vectors.mean(1)
        else:
            m = input_mask.to(vectors.dtype)[..., None]
            h = (vectors * m).sum(1) / m.sum(1).clamp(min=1)  # [P, D]
        if labels is None:
            return ModelOutput(last_hidden_state=h)
        real = labels != IGNORE_INDEX
        target = self.output_embeddings(labels.clamp(min=0))  # [P, D]
        noise = self.output_embeddings(negatives)  # [P, K, D]
        pos = nn.functional.logsigmoid((h * target).sum(-1).float())
        neg = nn.functional.logsigmoid(-torch.einsum("pd,pkd->pk", h, noise).float())
        neg = torch.where(negatives == labels[:, None], 0.0, neg).sum(-1)
        total = -torch.where(real, pos + neg, 0.0).sum()
        denom = num_items_in_batch if num_items_in_batch is not None else real.sum()
        loss = total / torch.as_tensor(denom, device=total.device).clamp(min=1)
        return ModelOutput(loss=loss)


def save_word2vec_format(vectors, tokenizer, path, skip_special=True):
    """Write a [V, D] matrix as word2vec.c's text format ("V D", then "token v1 ... vD" per line; gensim's
    KeyedVectors.load_word2vec_format reads it), tokens from `tokenizer`'s vocabulary by id; special tokens are
    left out unless skip_special is False. Returns the number of vectors written."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    special = set(tokenizer.all_special_ids) if skip_special else set()
    rows = [(tok, i) for tok, i in vocab if i < len(vectors) and i not in special and not any(c.isspace() for c in tok)]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(rows)} {vectors.shape[1]}\n")
        for tok, i in rows:
            f.write(tok + " " + " ".join(f"{v:.6g}" for v in vectors[i].tolist()) + "\n")
    return len(rows)
