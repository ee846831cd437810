"""Word boundaries for whole-word masking, computed on blocks of input_ids: no text, no reference files.

A block is what `tokenize_and_group` produced (documents packed and cut anywhere), so boundaries are rebuilt from
the tokens themselves:
- 'wordpiece': a token without the `##` continuation prefix starts a word (BertPreTokenizer splits on spaces and
  punctuation and makes every CJK character its own token);
- 'offsets': a token starts a word when its character span does not touch the previous token's (HF v5's rule),
  or, for byte-level BPE and SentencePiece vocabularies, when it carries their word-start marker (Ġ, ▁), so
  offsets that include the preceding space do not glue every token to the one before; needs a fast tokenizer and
  features carrying `offset_mapping`;
- 'auto': `offset_mapping` when the features carry it, else the vocabulary's own markers: `##` (WordPiece), `▁`
  (SentencePiece/Metaspace) or `Ġ` (byte-level BPE) at word starts.
The vocabulary rule (which ids carry a word-start marker) is vocab.word_start_table, the same table BART's word
units come from.
A token right after a special token, padding or the start of the block always starts a word.

Chinese (`segmenter='jieba'`): runs of consecutive CJK tokens are rebuilt into text from the tokens' vocabulary
strings, so every token has an exact character span; jieba segments the text of all runs of a batch in one call
(runs joined by newlines, which jieba never joins across), and a token starts a word exactly when its first
character starts a jieba word. This is alignment by character offset, not the greedy string matching of HF's
run_chinese_ref.py or Fengshenbang: a word can only map to the tokens that hold its characters. A token holding
characters of two jieba words (a multi-character CJK token) makes the two words one unit.
"""
import logging

import numpy as np

from .vocab import vocabulary_style, vocabulary_tokens, word_start_table

# BERT's definition of a CJK character (the ranges BertPreTokenizer isolates)
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_jieba = None


def is_cjk_char(ch):
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def load_jieba():
    """The jieba module, initialised once with its log line silenced; a clear error when it is missing."""
    global _jieba
    if _jieba is None:
        try:
            import jieba
        except ImportError:
            raise ImportError("segmenter='jieba' needs jieba: pip install 'hf_pretrain_ext[zh]' (or pip install "
                              "jieba), or pass segmenter='none'") from None
        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return _jieba


def _bytes_decoder():
    """Inverse of GPT-2's bytes_to_unicode: the byte each printable stand-in character encodes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_surfaces(tokens, style, special_ids):
    """The text each vocabulary token stands for, without its word-start marker ('' for special tokens; byte-level
    tokens decoded from GPT-2's byte stand-ins, U+FFFD for a piece of a multi-byte character)."""
    byte_of = _bytes_decoder() if style == "bytelevel" else None
    surfaces = []
    for i, tok in enumerate(tokens):
        if i in special_ids:
            surfaces.append("")
        elif style == "wordpiece":
            surfaces.append(tok[2:] if tok.startswith("##") else tok)
        elif style == "metaspace":
            surfaces.append(tok.lstrip("▁"))
        elif style == "bytelevel":
            try:
                surfaces.append(bytes(byte_of[c] for c in tok).decode("utf-8").lstrip(" "))
            except (KeyError, UnicodeDecodeError):  # a piece of a multi-byte character
                surfaces.append("\ufffd")
        else:
            surfaces.append(tok)
    return surfaces


class WordBoundaries:
    """Per-vocabulary tables and the batch function `word_starts` (see the module docstring)."""

    def __init__(self, tokenizer, word_boundaries="auto", segmenter="jieba"):
        if word_boundaries not in ("auto", "wordpiece", "offsets"):
            raise ValueError(f"word_boundaries must be 'auto', 'wordpiece' or 'offsets', got {word_boundaries!r}")
        if segmenter not in ("jieba", "none", None):
            raise ValueError(f"segmenter must be 'jieba' or 'none', got {segmenter!r}")
        self.style = vocabulary_style(tokenizer)
        if word_boundaries == "wordpiece" and self.style != "wordpiece":
            raise ValueError(f"word_boundaries='wordpiece' needs a WordPiece tokenizer (## continuations); this "
                             f"one is {self.style!r}: use word_boundaries='auto' or 'offsets'")
        if word_boundaries == "offsets" and not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"word_boundaries='offsets' needs a fast tokenizer (offset mapping); "
                             f"{type(tokenizer).__name__} has none: use word_boundaries='wordpiece' or 'auto'")
        self.mode = word_boundaries
        self.segmenter = None if segmenter in (None, "none") else segmenter
        specials = set(tokenizer.all_special_ids)
        # the package's one word-start rule (vocab.word_start_table), special tokens counted as word starts
        self.vocab_starts_word = word_start_table(tokenizer, self.style, specials)
        surfaces = token_surfaces(vocabulary_tokens(tokenizer), self.style, specials)
        self.surface = np.array(surfaces, dtype=object)
        self.surface_len = np.array([len(s) for s in surfaces], dtype=np.int64)
        self.is_cjk = np.array([bool(s) and all(is_cjk_char(c) for c in s) for s in surfaces], dtype=bool)
        self.run_surface = np.array(["\n" + s for s in surfaces], dtype=object)  # a run's first token

    def word_starts(self, ids, eligible, offsets=None, precomputed=None):
        """[B, W] bool: eligible tokens that start a word. ids, eligible: [B, W]; offsets: [B, W, 2] or None;
        precomputed: [B, W] bool word starts carried by the features (e.g. from `add_word_starts`)."""
        prev_eligible = np.zeros_like(eligible)
        prev_eligible[:, 1:] = eligible[:, :-1]
        if precomputed is not None:
            return eligible & (precomputed | ~prev_eligible)
        if self.mode == "offsets" and offsets is None:
            raise ValueError("word_boundaries='offsets' needs features with 'offset_mapping': tokenize with "
                             "return_offsets_mapping=True and keep the column (remove_unused_columns=False)")
        if offsets is not None and self.mode != "wordpiece":
            prev_end = np.zeros(ids.shape, dtype=np.int64)
            prev_end[:, 1:] = offsets[:, :-1, 1]
            starts = eligible & (~prev_eligible | (offsets[:, :, 0] != prev_end))
            if self.style in ("bytelevel", "metaspace"):
                # a tokenizer whose offsets include the space before a word (byte-level BPE without
                # trim_offsets) makes every token touch the previous one: its Ġ / ▁ marker still starts a word
                starts |= eligible & self.vocab_starts_word[ids]
        else:
            if self.style == "none":
                raise ValueError("this tokenizer's vocabulary does not mark word starts; pass features with "
                                 "'offset_mapping' (tokenize with return_offsets_mapping=True)")
            starts = eligible & (self.vocab_starts_word[ids] | ~prev_eligible)
        if self.segmenter is not None:
            self._segment_cjk(ids, eligible, starts)
        return starts

    def _segment_cjk(self, ids, eligible, starts):
        """Re-decide word starts inside runs of CJK tokens with one jieba call for the batch (in place)."""
        width = ids.shape[1]
        flat_ids, flat_starts = ids.ravel(), starts.reshape(-1)
        pos = np.flatnonzero((eligible & self.is_cjk[ids]).ravel())  # [n_cjk]
        if len(pos) < 2:
            return
        run_start = np.ones(len(pos), dtype=bool)
        run_start[1:] = (pos[1:] != pos[:-1] + 1) | (pos[1:] % width == 0)
        tok = flat_ids[pos]
        text = "".join(np.where(run_start, self.run_surface[tok], self.surface[tok]).tolist())
        lengths = self.surface_len[tok]
        char_start = np.cumsum(lengths + run_start) - lengths  # each run is preceded by one newline
        from .jieba_lengths import word_lengths
        word_len = np.array(word_lengths(text), dtype=np.int64)
        word_start = np.cumsum(word_len) - word_len
        found = np.searchsorted(word_start, char_start).clip(max=len(word_start) - 1)
        flat_starts[pos] = run_start | (word_start[found] == char_start)

    def word_char_lengths(self, ids, word_of_token, eligible, n_words):
        """([n_w] characters per word, [n_w] bool: every token of the word is CJK)."""
        flat_ids, flat_elig = ids.ravel(), eligible.ravel()
        w = word_of_token[flat_elig]
        chars = np.bincount(w, weights=self.surface_len[flat_ids[flat_elig]], minlength=n_words)
        non_cjk = np.bincount(w, weights=~self.is_cjk[flat_ids[flat_elig]], minlength=n_words)
        return chars.astype(np.int64), non_cjk == 0


def add_word_starts(dataset, tokenizer, word_boundaries="auto", segmenter="jieba", num_proc=None,
                    batch_size=1000):
    """Add a `word_starts` column (0/1 per token) to a tokenized `datasets` dataset, so the collators skip the
    segmenter at training time. Computed once (and cached by `datasets`); the collators use it when present."""
    from .masking import pad_batch
    boundaries = WordBoundaries(tokenizer, word_boundaries, segmenter)
    special_ids = np.array(sorted(set(tokenizer.all_special_ids)), dtype=np.int64)

    def annotate(batch):
        ids, real = pad_batch(batch["input_ids"], tokenizer.pad_token_id)
        eligible = real & ~np.isin(ids, special_ids)
        starts = boundaries.word_starts(ids, eligible).astype(np.int8)
        return {"word_starts": [row[:len(x)].tolist() for row, x in zip(starts, batch["input_ids"])]}

    kwargs = {} if num_proc is None else {"num_proc": num_proc}
    desc = "Word boundaries" + (" (jieba on Chinese runs)" if segmenter == "jieba" else "")
    return dataset.map(annotate, batched=True, batch_size=batch_size, desc=desc, **kwargs) \
        if hasattr(dataset, "num_rows") else dataset.map(annotate, batched=True, batch_size=batch_size)
