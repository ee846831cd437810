"""The hfpx-bert encoder on packed rows without padding: embeddings, projections, feed-forward layers and layer norms
run on the real tokens only ([T, H], T = tokens that are not padding), BERT's own modules and weights unchanged.

Attention, per layer, one of two paths (chosen once per forward, on the first layer's queries):
- 'flash': flash-attn's `flash_attn_varlen_func` over the documents (`cu_seqlens`), when flash-attn is installed
  and the attention inputs are CUDA fp16/bf16 (autocast included): no padding anywhere;
- 'sdpa': q, k, v scattered back into the [B, heads, L, d] rows and torch's scaled_dot_product_attention with the
  block-diagonal mask (a query sees the keys of its own document only), then gathered back; CPU and any GPU.
`HFPX_UNPAD_ATTENTION=sdpa|flash` forces a path ('flash' where it cannot run is an error), e.g. in tests.
The result equals the padded packed path (document_ids with a 4D mask through BertModel) up to float rounding;
tests/test_packing.py checks loss and every gradient against each document run alone. Not supported on this
path: inputs_embeds, output_attentions / output_hidden_states (the padded path serves them).
"""
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_flash = None


def flash_varlen():
    """flash_attn.flash_attn_varlen_func, or None when flash-attn is not importable (looked up once)."""
    global _flash
    if _flash is None:
        try:
            from flash_attn import flash_attn_varlen_func
            _flash = flash_attn_varlen_func
        except Exception:  # not installed, or built for another torch / CUDA
            _flash = False
    return _flash or None


def attention_path(x):
    """'flash' or 'sdpa' for hidden states `x` (see the module docstring)."""
    forced = os.environ.get("HFPX_UNPAD_ATTENTION", "auto")
    if forced not in ("auto", "sdpa", "flash"):
        raise ValueError(f"HFPX_UNPAD_ATTENTION must be auto, sdpa or flash, got {forced!r}")
    usable = flash_varlen() is not None and x.is_cuda and x.dtype in (torch.float16, torch.bfloat16)
    if forced == "flash" and not usable:
        raise RuntimeError("HFPX_UNPAD_ATTENTION=flash needs flash-attn installed and CUDA fp16/bf16 tensors")
    return "flash" if usable and forced != "sdpa" else "sdpa"


@dataclass
class Packed:
    """Where the real tokens of [B, L] rows are; what each attention path needs is built on first use."""

    index: torch.Tensor  # [T] flat positions of the real tokens in the [B * L] rows, row-major
    rows: int
    length: int
    document_ids: torch.Tensor
    _mask: torch.Tensor | None = None
    _varlen: tuple | None = None

    def mask(self):
        """[B, 1, L, L] bool, True where a query may attend to a key (the sdpa path; built once)."""
        if self._mask is None:
            d = self.document_ids
            same = (d[:, :, None] == d[:, None, :]) & (d[:, None, :] >= 0)
            self._mask = (same | torch.eye(self.length, dtype=torch.bool, device=d.device))[:, None]
        return self._mask

    def varlen(self):
        """(cu_seqlens [documents + 1] int32, max_seqlen) of the documents in the T tokens (the flash path; built
        once, with one host sync for max_seqlen)."""
        if self._varlen is None:
            docs, row_of = self.document_ids.reshape(-1)[self.index], self.index // self.length
            new = torch.ones_like(docs, dtype=torch.bool)
            new[1:] = (docs[1:] != docs[:-1]) | (row_of[1:] != row_of[:-1])
            starts = new.nonzero().squeeze(1)
            cu = torch.cat([starts, starts.new_tensor([len(self.index)])]).to(torch.int32)
            self._varlen = cu, int((cu[1:] - cu[:-1]).max()) if len(starts) else 0
        return self._varlen


def pack(document_ids):
    rows, length = document_ids.shape
    index = (document_ids.reshape(-1) >= 0).nonzero().squeeze(1)
    return Packed(index, rows, length, document_ids)


def unpadded_sequence_output(bert, input_ids, document_ids, position_ids, token_type_ids=None):
    """[B, L, H] last hidden states of packed rows (zeros at padding), computed on the real tokens only."""
    embeddings = bert.embeddings
    packed = pack(document_ids)

    def real(t):
        return t.reshape(-1).index_select(0, packed.index)[None]

    ids, pos = real(input_ids), real(position_ids)
    types = real(token_type_ids) if token_type_ids is not None else torch.zeros_like(ids)
    x = embeddings(input_ids=ids, token_type_ids=types, position_ids=pos)[0]  # [T, H]
    path = None
    for layer in bert.encoder.layer:
        x, path = _layer(layer, x, packed, path)
    out = x.new_zeros(packed.rows * packed.length, x.shape[-1]).index_copy(0, packed.index, x)
    return out.view(packed.rows, packed.length, -1)


def _layer(layer, x, packed, path):
    """One BertLayer on [T, H]: self-attention (+ output dense, dropout, residual LayerNorm), then feed-forward;
    returns (output, attention path)."""
    sa = layer.attention.self
    heads, d = sa.num_attention_heads, sa.attention_head_size
    q, k, v = sa.query(x), sa.key(x), sa.value(x)
    path = path or attention_path(q)  # decided on the first layer's q: its dtype is autocast's, if any
    p = sa.dropout.p if sa.training else 0.0
    if path == "flash":
        cu, longest = packed.varlen()
        ctx = flash_varlen()(q.view(-1, heads, d), k.view(-1, heads, d), v.view(-1, heads, d), cu, cu, longest,
                             longest, dropout_p=p, softmax_scale=sa.scaling, causal=False).reshape(-1, heads * d)
    else:
        rows, length = packed.rows, packed.length

        def rowed(t):
            full = t.new_zeros(rows * length, t.shape[-1]).index_copy(0, packed.index, t)
            return full.view(rows, length, heads, d).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(rowed(q), rowed(k), rowed(v), attn_mask=packed.mask(), dropout_p=p,
                                             scale=sa.scaling)
        ctx = ctx.transpose(1, 2).reshape(rows * length, heads * d).index_select(0, packed.index)
    attended = layer.attention.output(ctx, x)
    return layer.output(layer.intermediate(attended), attended), path
