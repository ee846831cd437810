"""hfpx-gpt configuration: a GPT2Config with the switches of our loss path (GPT-2's fields and weight names)."""
from transformers import GPT2Config


class HfpxGPTConfig(GPT2Config):
    """GPT2Config plus:

    use_fused_loss: LM head + cross-entropy through hf_pretrain_ext.kernels, on labelled rows only.
    loss_backend: 'auto', 'triton' or 'torch' (see hf_pretrain_ext.kernels).
    With labels and not training, `logits` are [n_labelled, vocab] for the labelled target positions (row-major
    order of labels[:, 1:]); without labels (generation, inference) they are the stock [batch, seq, vocab].
    """

    model_type = "hfpx-gpt"

    def __init__(self, use_fused_loss=True, loss_backend="auto", **kwargs):
        super().__init__(**kwargs)
        self.use_fused_loss = use_fused_loss
        self.loss_backend = loss_backend


TINY_GPT = dict(n_embd=128, n_layer=2, n_head=2, n_inner=512, n_positions=512, resid_pdrop=0.1, embd_pdrop=0.1,
                attn_pdrop=0.1)
"""The default fresh decoder: about 0.5M parameters plus (vocab_size + 512) * 128 embeddings."""
