"""Vocabulary-level lookup tables the collators share, computed once per tokenizer.

Each table is a bool array over token ids, so a whole batch is classified with one fancy-index (`table[ids]`):
which ids are special, which begin a word, which end a sentence (the token text ends in . ! ? or it is the
end-of-text / separator token).

Which ids begin a word is decided here only, by `word_start_table`, for the generative collators (BART's word
units) and for words.WordBoundaries (whole-word masking) alike: the vocabulary's style (`vocabulary_style`, read
from the tokenizer's model, pre-tokenizer and decoder) gives the rule (`starts_word`): WordPiece tokens without the
`##` continuation prefix, byte-level BPE tokens with `Ġ`, SentencePiece/Metaspace tokens with `▁`, and every token
of a vocabulary without markers.
"""
import json

import numpy as np

from ..constants import IGNORE_INDEX

SENTENCE_END_CHARS = (".", "!", "?", "\u3002", "\uff01", "\uff1f")


def special_table(tokenizer):
    table = np.zeros(len(tokenizer), dtype=bool)
    ids = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}).keys())
    table[[i for i in ids if 0 <= i < len(tokenizer)]] = True
    return table


def vocabulary_tokens(tokenizer):
    """Every id's token string ('' where the tokenizer has none)."""
    return [t or "" for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]


def vocabulary_style(tokenizer):
    """'wordpiece', 'metaspace', 'bytelevel' or 'none': how the vocabulary marks word starts."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow tokenizer: guess from the vocabulary
        tokens = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), 5000))))
        if any(t.startswith("##") for t in tokens):
            return "wordpiece"
        return "metaspace" if sum(t.startswith("\u2581") for t in tokens) > len(tokens) // 10 else "none"
    spec = json.loads(backend.to_str())
    if spec["model"]["type"] == "WordPiece":
        return "wordpiece"
    parts = json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")])
    if "Metaspace" in parts:
        return "metaspace"
    if "ByteLevel" in parts:
        return "bytelevel"
    return "none"


def starts_word(token, style):
    """Whether vocabulary token `token` begins a word in a vocabulary of `style` (see vocabulary_style)."""
    if style == "wordpiece":
        return not token.startswith("##")
    if style == "metaspace":
        return token.startswith("\u2581")
    if style == "bytelevel":
        return token.startswith("\u0120")
    return True  # no word-boundary marker: every token is its own word


def word_start_table(tokenizer, style=None, specials=None):
    """True for ids that begin a word, by the rule of the vocabulary's `style` (default: vocabulary_style).

    The `specials` ids count as word starts (as in fairseq); default: special_table's special and added tokens."""
    style = vocabulary_style(tokenizer) if style is None else style
    table = np.array([starts_word(t, style) for t in vocabulary_tokens(tokenizer)], dtype=bool)
    if specials is None:
        return table | special_table(tokenizer)
    table[[i for i in set(specials) if 0 <= i < len(table)]] = True
    return table


def sentence_end_table(tokenizer):
    """True for ids whose text ends a sentence, and for the end-of-text / separator ids between documents."""
    table = np.array([t.rstrip().endswith(SENTENCE_END_CHARS) for t in vocabulary_tokens(tokenizer)], dtype=bool)
    for tid in (tokenizer.eos_token_id, tokenizer.sep_token_id):
        if tid is not None:
            table[tid] = True
    return table


def shift_right(labels, start_id, pad_id, ignore_index=IGNORE_INDEX):
    """decoder_input_ids from labels [B, T]: start token, then labels[:, :-1], -100 replaced by pad."""
    out = np.empty_like(labels)
    out[:, 0] = start_id
    out[:, 1:] = labels[:, :-1]
    out[out == ignore_index] = pad_id
    return out
