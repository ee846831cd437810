"""Vocabulary-level lookup tables the generative collators share, computed once per tokenizer.

Each table is a bool array over token ids, so a whole batch is classified with one fancy-index (`table[ids]`):
which ids are special, which begin a word (byte-level `Ġ`, SentencePiece `▁`, or WordPiece tokens without `##`),
which end a sentence (the token text ends in . ! ? or it is the end-of-text / separator token).
"""
import numpy as np

SENTENCE_END_CHARS = (".", "!", "?", "\u3002", "\uff01", "\uff1f")


def special_table(tokenizer):
    table = np.zeros(len(tokenizer), dtype=bool)
    ids = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}).keys())
    table[[i for i in ids if 0 <= i < len(tokenizer)]] = True
    return table


def _tokens(tokenizer):
    return [t or "" for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]


def word_start_table(tokenizer):
    """True for ids that begin a word. Special tokens count as word starts (as in fairseq)."""
    tokens = _tokens(tokenizer)
    if any(t.startswith("##") for t in tokens):
        starts = [not t.startswith("##") for t in tokens]
    elif any(t.startswith("\u0120") for t in tokens):
        starts = [t.startswith("\u0120") for t in tokens]
    elif any(t.startswith("\u2581") for t in tokens):
        starts = [t.startswith("\u2581") for t in tokens]
    else:  # no word-boundary marker: every token is its own word
        starts = [True] * len(tokens)
    return np.array(starts, dtype=bool) | special_table(tokenizer)


def sentence_end_table(tokenizer):
    """True for ids whose text ends a sentence, and for the end-of-text / separator ids between documents."""
    table = np.array([t.rstrip().endswith(SENTENCE_END_CHARS) for t in _tokens(tokenizer)], dtype=bool)
    for tid in (tokenizer.eos_token_id, tokenizer.sep_token_id):
        if tid is not None:
            table[tid] = True
    return table


def shift_right(labels, start_id, pad_id, ignore_index=-100):
    """decoder_input_ids from labels [B, T]: start token, then labels[:, :-1], -100 replaced by pad."""
    out = np.empty_like(labels)
    out[:, 0] = start_id
    out[:, 1:] = labels[:, :-1]
    out[out == ignore_index] = pad_id
    return out
