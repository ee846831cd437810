"""Causal-LM collator for grouped or packed blocks of documents.

`run_pretrain.py --objective clm` cuts the token stream into blocks of max_seq_length with an EOS token after each
document, as run_clm.py does. Two ways to train on such blocks (`packing`):
- "documents" (default): documents stay apart. Position ids restart at 0 after every EOS, and neither an
  attention mask nor a KV cache is used for the block (the batch carries use_cache=False), so transformers (v5 `create_causal_mask`, sdpa/eager/flex; flash-attention's
  padding-free path likewise) reads the restarting position ids as packed sequences and lets a token attend only
  within its own document. Labels never cross a boundary: the first token of each document is not a target
  (it would be predicted from the previous document), while each document's closing EOS is.
  Models without that detection (or with absolute positions other than GPT-2's) still get EOS separators and
  the label masking, only not the attention isolation.
- "none": plain run_clm.py blocks: contiguous positions, full causal attention across documents.
labels are input_ids (the model shifts them); position 0 of every row and padding are -100. Padding is on the
right, where causal attention never looks back at it.
"""
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import IGNORE_INDEX
from .base import CollatorBase
from .masking import pad_batch


def document_position_ids(ids, separator_id):
    """[B, L] position ids restarting at 0 after every separator token."""
    length = ids.shape[1]
    starts = np.zeros(ids.shape, dtype=bool)
    starts[:, 0] = True
    starts[:, 1:] = ids[:, :-1] == separator_id
    cols = np.broadcast_to(np.arange(length), ids.shape)
    last_start = np.maximum.accumulate(np.where(starts, cols, 0), axis=1)
    return cols - last_start


@dataclass
class CausalLMCollator(CollatorBase):
    """Collate token blocks into a causal-LM batch (input_ids, labels, and position_ids or attention_mask).

    There is no randomness: seed and epoch (CollatorBase's) are unused, kept so every collator takes the same
    options."""

    tokenizer: object
    packing: str = "documents"
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if self.packing not in ("documents", "none"):
            raise ValueError(f"packing must be 'documents' or 'none', got {self.packing!r}")
        tok = self.tokenizer
        self.separator_id = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        if self.separator_id is None:
            raise ValueError("causal LM needs an end-of-text (eos) token to separate documents")
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.separator_id

    def __call__(self, features):
        ids, real = pad_batch([f["input_ids"] for f in features], self.pad_id, self.pad_to_multiple_of)
        labels = np.where(real, ids, IGNORE_INDEX)
        labels[:, 0] = IGNORE_INDEX
        batch = {"input_ids": torch.from_numpy(ids)}
        if self.packing == "documents":
            positions = document_position_ids(np.where(real, ids, self.separator_id), self.separator_id)
            labels[positions == 0] = IGNORE_INDEX
            batch["position_ids"] = torch.from_numpy(positions)
            batch["use_cache"] = False  # transformers only looks for packed rows when there is no cache
        else:
            batch["attention_mask"] = torch.from_numpy(real.astype(np.int64))
        batch["labels"] = torch.from_numpy(labels)
        return batch
