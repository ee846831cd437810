"""hfpx-bert configuration: a BertConfig with the switches of our loss head.

Weight names and every BERT field are BERT's, so a stock BERT checkpoint loads into hfpx-bert and back.
"""
from transformers import BertConfig


class HfpxBertConfig(BertConfig):
    """BertConfig plus:

    sparse_prediction: run the MLM head transform (dense + activation + LayerNorm) and the decoder only on
        labelled rows when labels are given (the outputs' `logits` are then [n_labelled, vocab] in row-major
        order of the labelled positions; without labels they are the full [batch, seq, vocab]).
    use_fused_loss: compute the decoder projection + cross-entropy through hf_pretrain_ext.kernels without
        materialising logits during training.
    loss_backend: 'auto', 'triton' or 'torch' (see hf_pretrain_ext.kernels).
    position_embedding_init: how fresh weights initialise the (learned, absolute) position embeddings: 'normal'
        (BERT's N(0, initializer_range)) or 'sinusoidal' (the Transformer's sin/cos table, scaled to an RMS of
        initializer_range). Only a starting point: the table is trained like any weight and the architecture is
        BERT's, so checkpoints stay stock-BERT compatible. Loaded checkpoints keep their own values.
    unpadded: with `document_ids` (packed rows), run the encoder on the real tokens only (models/unpadded.py):
        the same weights and results as the padded packed path, less work where rows end in padding.
    """

    model_type = "hfpx-bert"

    def __init__(self, sparse_prediction=True, use_fused_loss=True, loss_backend="auto",
                 position_embedding_init="normal", unpadded=False, **kwargs):
        if position_embedding_init not in ("normal", "sinusoidal"):
            raise ValueError(f"position_embedding_init must be 'normal' or 'sinusoidal', got "
                             f"{position_embedding_init!r}")
        super().__init__(**kwargs)
        self.position_embedding_init = position_embedding_init
        self.sparse_prediction = sparse_prediction
        self.use_fused_loss = use_fused_loss
        self.loss_backend = loss_backend
        self.unpadded = unpadded


TINY_BERT = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                 max_position_embeddings=512, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
"""The default fresh model: about 1.4M parameters plus vocab_size * 128 embeddings."""
