"""hfpx-bart and hfpx-t5 configurations: the stock BartConfig / T5Config plus the switches of our loss path.

Every stock field and weight name is kept, so stock BART/T5 checkpoints load into them and export back.
"""
from transformers import BartConfig, T5Config

_DOC = """
    use_fused_loss: LM head + cross-entropy through hf_pretrain_ext.kernels, on labelled rows only.
    loss_backend: 'auto', 'triton' or 'torch' (see hf_pretrain_ext.kernels).
    With labels and not training, `logits` are [n_labelled, vocab] for the labelled decoder positions (row-major);
    without labels (generation, inference) they are the stock [batch, target_len, vocab].
"""


class HfpxBartConfig(BartConfig):
    __doc__ = "BartConfig plus:\n" + _DOC
    model_type = "hfpx-bart"

    def __init__(self, use_fused_loss=True, loss_backend="auto", **kwargs):
        super().__init__(**kwargs)
        self.use_fused_loss = use_fused_loss
        self.loss_backend = loss_backend


class HfpxT5Config(T5Config):
    __doc__ = "T5Config plus:\n" + _DOC
    model_type = "hfpx-t5"

    def __init__(self, use_fused_loss=True, loss_backend="auto", **kwargs):
        super().__init__(**kwargs)
        self.use_fused_loss = use_fused_loss
        self.loss_backend = loss_backend


TINY_BART = dict(d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=512, decoder_ffn_dim=512, max_position_embeddings=512,
                 dropout=0.1, attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True)
# scale_embedding: token embeddings times sqrt(d_model). Without it (bart-base/large's setting) this tiny BART's
# encoder collapsed within 50 steps at lr 1e-3 (its output the same vector at every position of every example,
# std over positions 0.001; stock BartForConditionalGeneration alike; lr 3e-4 or untied embeddings did not avoid
# it), so the decoder learnt an unconditional LM and never copied. With it the encoder output stays varied (std
# 0.4-0.9 over 600 steps); measured in a plain AdamW loop on the sample corpus, batch 16 x 128 tokens.
TINY_T5 = dict(d_model=128, d_kv=64, d_ff=512, num_layers=2, num_decoder_layers=2, num_heads=2, dropout_rate=0.1,
               feed_forward_proj="relu")
"""Fresh encoder-decoders for the default jobs: about 1-2M parameters plus vocab_size * 128 embeddings."""
