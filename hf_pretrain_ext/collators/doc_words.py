"""Word boundaries from each document's own text, carried into the packed blocks as a `word_starts` column.

`DocumentWordStarts(tokenizer, word_boundaries, segmenter)(texts)` tokenizes documents (without special tokens,
long ones piece by piece as `tokenize_documents` does) and returns, per document, its token ids and a 0/1 word
start per token:
- in a document without a CJK character, the vocabulary's rule (WordPiece `##`, byte-level `Ġ`, SentencePiece
  `▁`) or, with `word_boundaries='offsets'` or a vocabulary without markers, the offset rule (a token that does not
  touch the previous one starts a word);
- in a document with Chinese in it, the segmenter's words, on the document text itself: a token starts a word
  exactly when its first character is the first character of a segmenter word. What the BERT pre-tokenizer throws
  away cannot change the words: a space between two Chinese words keeps them apart ("中国 人民银行" is 中国 |
  人民银行), and letters, digits and signs inside a segmenter word stay in it ("B超", "U盘", "3.5%" are one word
  each; "出来" after "B超" is not cut). Tokens are mapped to words through the fast tokenizer's character offsets;
  byte-level pieces of one character never start a word after the first.

`segmenter`: 'jieba' (jieba.lcut's words, HMM on, computed by jieba_lengths.word_lengths, once per batch of
documents), 'none', or any callable text -> iterable of (word, start, end) character spans. A document without a CJK character skips the segmenter.
`tokenize_and_group(..., word_starts=DocumentWordStarts(...))` packs the column beside input_ids, so a block cut
inside a document keeps the words the whole document defined; the collators use it instead of segmenting blocks.
"""
import re
from itertools import chain

import numpy as np

from ..data.grouping import document_pieces, join_pieces
from .jieba_lengths import word_lengths
from .words import WordBoundaries

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ceaf"
                  "\U0002f800-\U0002fa1f]")


class DocumentWordStarts:
    """Callable: texts -> (list of token-id lists, list of word-start lists); picklable for worker processes."""

    def __init__(self, tokenizer, word_boundaries="auto", segmenter="jieba"):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("word boundaries from the document text need a fast tokenizer (offset mapping)")
        if segmenter not in (None, "none", "jieba") and not callable(segmenter):
            raise ValueError(f"segmenter must be 'jieba', 'none' or a callable, got {segmenter!r}")
        self.tokenizer = tokenizer
        self.segmenter = None if segmenter in (None, "none") else segmenter
        # the rule outside Chinese documents is WordBoundaries' own (vocabulary markers, or offsets)
        self.boundaries = WordBoundaries(tokenizer, word_boundaries, "none")
        self.use_offsets = word_boundaries == "offsets" or self.boundaries.style == "none"

    def __call__(self, texts):
        pieces, owner = document_pieces(texts)
        # the Rust tokenizer directly: the same ids as tokenizer(..., add_special_tokens=False), without
        # transformers' per-encoding conversion
        encodings = self.tokenizer.backend_tokenizer.encode_batch(pieces, add_special_tokens=False)
        piece_ids = [e.ids for e in encodings]
        lengths = np.fromiter(map(len, piece_ids), dtype=np.int64, count=len(pieces))
        ids = np.fromiter(chain.from_iterable(piece_ids), dtype=np.int64, count=int(lengths.sum()))
        offsets = np.fromiter(chain.from_iterable(chain.from_iterable(e.offsets for e in encodings)),
                              dtype=np.int64, count=2 * len(ids)).reshape(-1, 2)
        starts = self.batch_starts(pieces, lengths, ids, offsets).astype(np.int8).tolist()
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        piece_starts = [starts[bounds[k]:bounds[k + 1]] for k in range(len(pieces))]
        if len(pieces) == len(texts):  # no long text was cut into pieces: one piece per document
            return piece_ids, piece_starts
        return join_pieces(piece_ids, owner, len(texts)), join_pieces(piece_starts, owner, len(texts))

    def batch_starts(self, pieces, lengths, ids, offsets):
        """Word starts of all tokens of a batch of pieces at once ([n_tokens] bool)."""
        n = len(ids)
        piece_of = np.repeat(np.arange(len(pieces)), lengths)
        first = np.zeros(n, dtype=bool)
        first[(np.cumsum(lengths) - lengths)[lengths > 0]] = True
        starts = self.boundaries.word_starts(ids[None], np.ones((1, n), dtype=bool),
                                             offsets[None] if self.use_offsets else None)[0]
        chinese = [k for k, p in enumerate(pieces) if self.segmenter is not None and _CJK.search(p)]
        if chinese:
            # a document with Chinese in it: the segmenter's words decide, for every token that holds a character
            word_first, base = self.word_firsts(pieces, chinese)
            in_chinese = np.zeros(len(pieces), dtype=bool)
            in_chinese[chinese] = True
            take = in_chinese[piece_of] & (offsets[:, 1] > offsets[:, 0])
            starts[take] = word_first[base[piece_of[take]] + offsets[take, 0]]
        # byte-level pieces of one character share its offsets: only the first of them can start a word
        overlap = np.zeros(n, dtype=bool)
        overlap[1:] = offsets[1:, 0] < offsets[:-1, 1]
        starts &= ~(overlap & ~first)
        starts |= first
        return starts

    def word_firsts(self, pieces, chinese):
        """([total + 1] bool: characters that start a segmenter word, [n_pieces] where each Chinese piece begins in
        it). jieba runs once for all the Chinese pieces of a batch, joined by newlines (it never joins words
        across one), the word starts coming from the word lengths; a user's segmenter runs once per piece."""
        base = np.zeros(len(pieces), dtype=np.int64)
        at = 0
        for k in chinese:
            base[k] = at
            at += len(pieces[k]) + 1
        first = np.zeros(at + 1, dtype=bool)
        if self.segmenter == "jieba":
            lengths = np.array(word_lengths("\n".join(pieces[k] for k in chinese)), dtype=np.int64)
            first[np.cumsum(lengths) - lengths] = True
        else:
            for k in chinese:
                first[[base[k] + start for _, start, _ in self.segmenter(pieces[k])]] = True
        first[base[chinese]] = True
        return first, base
