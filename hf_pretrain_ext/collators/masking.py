"""Masking math shared by every encoder objective: padding, span selection to a token budget, 80/10/10, merging.

Everything here is pure numpy over a padded batch; the collators only draw each example's random numbers (from
rng.example_rng) and call these functions. Shapes: B examples, W padded width, n_w words, n_s segments in the
whole (flattened) batch.

Span selection (`select_spans`) follows T5's `random_spans_noise_mask` idea rather than SpanBERT's rejection
loop: each example's word sequence is cut into consecutive segments whose lengths (in words) are drawn i.i.d.
from the span-length distribution, the segments are visited in a random order and taken while the example's token
budget (mlm_probability * eligible tokens) lasts. Segments never overlap by construction, so there is no
per-span Python loop. In a packed block each document (the words between two special tokens) is tiled on its own,
so no span crosses a [SEP]. The segment that crosses the budget is taken with probability (budget left / its
tokens), so the expected number of selected tokens is exactly mlm_probability * eligible tokens, as in Google
BERT's whole-word masking (which selects words until round(15% of tokens) is reached).

The selected spans follow the drawn length distribution only approximately: the last segment of each document is
clipped at its end (a text shorter than a span becomes one span), and the segment crossing the budget, more often
a long one, is taken with a probability that falls with its length. Measured on packed blocks of 128 tokens of
long documents (tests/test_collator_words.py): SpanBERT's Geometric(0.2) clipped at 10 has mean 3.80 words, the
selected spans 3.58, every length's share within 2.5 points; the harmonic n-gram lengths (max 3) within 1 point.
On short lines (--line_by_line) clipping shortens them more.
"""
import numpy as np

from ..constants import IGNORE_INDEX


def ordinary_token_ids(tokenizer):
    """Ids a random replacement may take: the vocabulary minus special and added tokens."""
    vocab_size = len(tokenizer)
    excluded = set(tokenizer.all_special_ids)
    excluded.update(getattr(tokenizer, "added_tokens_decoder", {}).keys())
    keep = np.ones(vocab_size, dtype=bool)
    keep[[i for i in excluded if 0 <= i < vocab_size]] = False
    return np.flatnonzero(keep)


def pad_batch(sequences, pad_id, pad_to_multiple_of=None):
    """Right-pad int sequences into an [B, L] int64 array plus a bool mask of real tokens."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    width = int(lengths.max()) if len(sequences) else 0
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    real = np.arange(width)[None, :] < lengths[:, None]
    ids[real] = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(sequences) else []
    return ids, real


def document_ids(features, width):
    """[B, width] int64: the index of each token's document within its example (0, 1, ...; -1 on padding), from
    the features' `document_lengths` (packing='documents'); None when not every feature carries them."""
    if not features or not all("document_lengths" in f for f in features):
        return None
    out = np.full((len(features), width), -1, dtype=np.int64)
    for row, f in enumerate(features):
        lengths = np.asarray(f["document_lengths"], dtype=np.int64)
        out[row, :lengths.sum()] = np.repeat(np.arange(len(lengths)), lengths)
    return out


def stack_draws(rows, width, count, fill=1.0):
    """[count, B, width] array from per-example draws of shape [count, n_i] (n_i <= width), padded with `fill`.

    Each example draws only as many numbers as it has tokens, so its draws do not depend on the batch's padded
    width: the same example masks the same way in any batch."""
    out = np.full((count, len(rows), width), fill)
    for row, d in enumerate(rows):
        out[:, row, :d.shape[1]] = d
    return out


def replace_selected(ids, selected, kind_draws, token_draws, mask_token_id, ordinary_ids, mask_replace_prob,
                     random_replace_prob):
    """80/10/10: selected positions become [MASK] (kind < mask_replace_prob), a random ordinary token (next
    random_replace_prob) or stay. ids, selected, kind_draws, token_draws: [B, W]. Returns (input_ids, labels)."""
    labels = np.where(selected, ids, IGNORE_INDEX)
    to_mask = selected & (kind_draws < mask_replace_prob)
    to_random = selected & ~to_mask & (kind_draws < mask_replace_prob + random_replace_prob)
    out = ids.copy()
    out[to_mask] = mask_token_id
    picks = (token_draws[to_random] * len(ordinary_ids)).astype(np.int64).clip(0, len(ordinary_ids) - 1)
    out[to_random] = ordinary_ids[picks]
    return out, labels


def span_length_cdf(distribution, max_ngram=3, geometric_p=0.2, max_span_length=10):
    """Cumulative probabilities of span lengths 1..N (in words).

    'one': always 1 (whole-word masking); 'harmonic': p(n) proportional to 1/n for n <= max_ngram (Megatron,
    Fengshenbang n-gram masking); 'geometric': p(n) proportional to p(1-p)^(n-1) for n <= max_span_length, i.e.
    Geometric(p) renormalised after clipping, as in SpanBERT (mean 3.78 words for p=0.2, max 10)."""
    if distribution == "one":
        probs = np.array([1.0])
    elif distribution == "harmonic":
        probs = 1.0 / np.arange(1, max_ngram + 1)
    elif distribution == "geometric":
        n = np.arange(1, max_span_length + 1)
        probs = geometric_p * (1.0 - geometric_p) ** (n - 1)
    else:
        raise ValueError(f"unknown span distribution {distribution!r}; use 'one', 'harmonic' or 'geometric'")
    cdf = np.cumsum(probs / probs.sum())
    cdf[-1] = 1.0
    return cdf


def words_from_starts(word_start, eligible):
    """Word bookkeeping for a batch. word_start, eligible: [B, W] bool (a start is always eligible).

    Returns (word_of_token [B*W] global word id, valid where eligible; words_per_row [B]; word_tokens [n_w])."""
    flat_start = word_start.ravel()
    word_of_token = np.cumsum(flat_start) - 1
    n_words = int(word_of_token[-1]) + 1 if flat_start.size else 0
    word_tokens = np.bincount(word_of_token[eligible.ravel()], minlength=n_words)
    return word_of_token, word_start.sum(1), word_tokens


def select_spans(word_start, eligible, length_draws, order_draws, cross_draws, rate, length_cdf,
                 always_word=None, barrier=None):
    """Choose whole-word spans to a token budget (see the module docstring).

    word_start, eligible: [B, W] bool. length_draws, order_draws: [B, W] uniforms (a row's first n_words are
    used); cross_draws: [B] uniforms. rate: fraction of each row's eligible tokens to select. length_cdf: from
    span_length_cdf. always_word: optional [n_w] bool, words selected regardless of the budget and the other
    words then selected independently with probability `rate` (Fengshenbang's variant; only for span length 1).

    barrier: optional [B, W] bool, tokens no span may cross (the special tokens between packed documents): the
    words of a row are tiled into spans separately on each side of every barrier, each part starting from a fresh
    span, so a span never joins the end of one document to the start of the next.

    Returns (selected [B, W] bool, seg_first [B, W] bool: first token of each selected span,
    span_tokens [B, W] int: tokens in the span at its first token, 0 elsewhere)."""
    B, W = word_start.shape
    word_of_token, words_per_row, word_tokens = words_from_starts(word_start, eligible)
    n_words = len(word_tokens)
    row_word_offset = np.concatenate([[0], np.cumsum(words_per_row)[:-1]]).astype(np.int64)

    if always_word is not None:
        # per-word independent selection: word k of a row uses that row's order_draws[k]
        local = np.arange(n_words) - np.repeat(row_word_offset, words_per_row)
        word_row = np.repeat(np.arange(B), words_per_row)
        chosen_word = always_word | (order_draws[word_row, local] < rate)
        is_seg_start = np.ones(n_words, dtype=bool)
        seg_of_word = np.arange(n_words)
        chosen_seg = chosen_word
    else:
        # segment lengths in words; a row needs at most n_words segments, and has W >= n_words draws
        seg_len = 1 + np.searchsorted(length_cdf, length_draws, side="right").clip(max=len(length_cdf) - 1)
        is_seg_start = _tile(seg_len, word_start, barrier, row_word_offset, words_per_row)
        seg_of_word = np.cumsum(is_seg_start) - 1
        n_segs = int(is_seg_start.sum())
        seg_tokens = np.bincount(seg_of_word, weights=word_tokens, minlength=n_segs).astype(np.int64)
        seg_row = np.repeat(np.arange(B), words_per_row)[is_seg_start]
        segs_per_row = np.bincount(seg_row, minlength=B)
        seg_local = np.arange(n_segs) - np.repeat(np.cumsum(segs_per_row) - segs_per_row, segs_per_row)
        # visit each row's segments in a random order; take them while the row's token budget lasts
        order = np.lexsort((order_draws[seg_row, seg_local], seg_row))
        sorted_tokens = seg_tokens[order]
        csum = np.cumsum(sorted_tokens)
        row_tokens = np.bincount(seg_row, weights=seg_tokens, minlength=B).astype(np.int64)
        base = np.cumsum(row_tokens) - row_tokens  # tokens in the segments of earlier rows
        within = csum - base[seg_row[order]]
        before = within - sorted_tokens
        budget = rate * eligible.sum(1)
        row_budget = budget[seg_row[order]]
        take = within <= row_budget
        crossing = (before <= row_budget) & (within > row_budget)
        take |= crossing & (cross_draws[seg_row[order]] * sorted_tokens < row_budget - before)
        chosen_seg = np.zeros(n_segs, dtype=bool)
        chosen_seg[order[take]] = True

    flat_eligible = eligible.ravel()
    safe_word = word_of_token.clip(min=0)
    selected = flat_eligible & chosen_seg[seg_of_word[safe_word]] if n_words else np.zeros(B * W, dtype=bool)
    seg_first = selected & word_start.ravel() & is_seg_start[safe_word] if n_words else selected
    span_tokens = np.zeros(B * W, dtype=np.int64)
    if n_words:
        seg_token_count = np.bincount(seg_of_word, weights=word_tokens).astype(np.int64)
        span_tokens[seg_first] = seg_token_count[seg_of_word[safe_word[seg_first]]]
    return selected.reshape(B, W), seg_first.reshape(B, W), span_tokens.reshape(B, W)


def _tile(seg_len, word_start, barrier, row_word_offset, words_per_row):
    """[n_w] bool, the words that start a segment: each part of a row (its words between two barriers; the whole
    row without barriers) is tiled left to right with lengths seg_len[row, a], seg_len[row, a + 1], ... where a is
    the part's first word. Vectorised: with S the exclusive prefix sums of a row's lengths, the k-th segment of a
    part starting at a begins at a - S[a] + S[a + k]."""
    n_words = int(words_per_row.sum())
    word_row = np.repeat(np.arange(len(words_per_row)), words_per_row)
    local = np.arange(n_words) - row_word_offset[word_row]
    new_part = local == 0
    if barrier is not None:
        group = np.cumsum(barrier, axis=1)[word_start]  # barriers passed before each word, row-major
        new_part[1:] |= group[1:] != group[:-1]
    part_first = np.flatnonzero(new_part)
    part_of_word = np.cumsum(new_part) - 1
    part_end = np.r_[part_first[1:], n_words][part_of_word] - row_word_offset[word_row]  # local, exclusive
    part_start = local[part_first][part_of_word]
    starts_before = (np.cumsum(seg_len, axis=1) - seg_len).ravel()  # S, flat
    row_base = word_row * seg_len.shape[1]
    pos = part_start - starts_before[row_base + part_start] + starts_before[row_base + local]
    valid = pos < part_end
    is_seg_start = np.zeros(n_words, dtype=bool)
    is_seg_start[row_word_offset[word_row[valid]] + pos[valid]] = True
    return is_seg_start


def merge_spans(ids, real, labels, selected, seg_first, pad_id, pad_to_multiple_of=None, extra=()):
    """Drop every selected token but the first of its span, left-aligning what remains.

    ids, labels: [B, W] after replacement (the first token of a span already holds [MASK] or its replacement);
    extra: more [B, W] arrays compressed the same way (padded with 0). Returns (ids, real, labels, *extra)."""
    keep = real & ~(selected & ~seg_first)
    lengths = keep.sum(1)
    width = int(lengths.max()) if len(lengths) else 0
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    new_real = np.arange(width)[None, :] < lengths[:, None]
    out = []
    for arr, fill in [(ids, pad_id), (labels, IGNORE_INDEX)] + [(a, 0) for a in extra]:
        packed = np.full((ids.shape[0], width), fill, dtype=arr.dtype)
        packed[new_real] = arr[keep]
        out.append(packed)
    return (out[0], new_real, out[1], *out[2:])
