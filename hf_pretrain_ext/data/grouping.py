"""Tokenizing documents and cutting them into training examples.

Packing (the default): documents are tokenized without special tokens, joined with [SEP] between documents, cut
into pieces of max_seq_length - 2 and each piece wrapped as [CLS] piece [SEP], so every example looks like a
BERT input and no token is dropped except the tail of the last piece (kept when at least 1/4 of a block).
`packing='documents'` (encoders, the ModernBERT way): every document (long ones cut into pieces of max_seq_length
- 2) is wrapped as [CLS] piece [SEP] on its own, and whole wrapped pieces fill the examples: up to 16 examples are
open at once, each piece goes into the fullest one it fits in (best fit), a piece that fits none opens a new one
(closing the fullest when 16 are open), and a full example closes at once. Deterministic (document order within
a `datasets` batch); nothing is dropped or cut across examples. `document_lengths` lists each example's pieces,
from which the collators emit `document_ids`, so each piece gets its own positions and attends only to itself.
`line_by_line`: one example per document, truncated. Every example gets `example_index`, its position in the
split, from which the collators derive per-example random seeds (so a resumed run masks the same way).
"""
from functools import partial
from itertools import chain

from datasets import IterableDataset

from .loading import split_long_text

OPEN_EXAMPLES = 16  # packing='documents': examples being filled at once (best fit among them)


def _map(ds, fn, num_proc, remove_columns, desc, load_from_cache):
    if isinstance(ds, IterableDataset):
        return ds.map(fn, batched=True, remove_columns=remove_columns)
    return ds.map(fn, batched=True, num_proc=num_proc, remove_columns=remove_columns,
                  load_from_cache_file=load_from_cache, desc=desc)


def tokenize_and_group(raw, tokenizer, max_seq_length, line_by_line=False, num_proc=None, load_from_cache=True,
                       word_starts=None, packing="blocks"):
    """Map a DatasetDict with a 'text' column to examples with 'input_ids' and 'example_index'. With
    `word_starts` (a callable texts -> (token ids, word starts) per text, e.g. collators.DocumentWordStarts), each
    example also gets the `word_starts` of its tokens, computed on the whole document before it was cut (0 on the
    special tokens), packed and cut exactly like the ids. packing: 'blocks' (the stream cut every max_seq_length)
    or 'documents' (whole wrapped documents per example, with `document_lengths`; see the module docstring)."""
    if packing not in ("blocks", "documents"):
        raise ValueError(f"packing must be 'blocks' or 'documents', got {packing!r}")
    prefix, suffix = special_affixes(tokenizer)
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    piece = max_seq_length - len(prefix) - len(suffix)
    # (column while tokenized, column of the examples, what stands at the special positions, at a separator)
    columns = [("ids", "input_ids", (prefix, suffix), sep)]
    if word_starts is not None:
        columns.append(("starts", "word_starts", ([0] * len(prefix), [0] * len(suffix)), 0))
    desc = " (word boundaries from the text)" if word_starts is not None else ""

    def tokenize(batch):
        if word_starts is None:
            if line_by_line:
                enc = tokenizer(batch["text"], truncation=True, max_length=max_seq_length,
                                return_attention_mask=False, return_token_type_ids=False)
                return {"input_ids": enc["input_ids"]}
            parallel = (tokenize_documents(tokenizer, batch["text"]),)
        else:
            parallel = word_starts(batch["text"])
        if line_by_line:
            return {out: [pre + x[:piece] + suf for x in values]
                    for (_, out, (pre, suf), _), values in zip(columns, parallel)}
        if packing == "documents":  # fill() wraps each piece itself
            return {name: list(values) for (name, *_), values in zip(columns, parallel)}
        return {name: [x + [at_sep] for x in values] for (name, _, _, at_sep), values in zip(columns, parallel)}

    def group(batch):
        flats = [list(chain.from_iterable(batch[name])) for name, *_ in columns]
        if flats[0] and flats[0][-1] == sep:  # no trailing separator at the very end of a batch of documents
            for flat in flats:
                flat.pop()
        cuts = list(range(0, len(flats[0]), piece))
        if len(cuts) > 1 and len(flats[0]) - cuts[-1] < piece // 4:
            cuts.pop()
        return {out: [pre + flat[i:i + piece] + suf for i in cuts]
                for (_, out, (pre, suf), _), flat in zip(columns, flats)}

    grouped = {}
    if packing == "documents":
        regroup, what = partial(fill_documents, columns=columns, piece=piece, max_len=max_seq_length), \
            "examples of whole documents"
    else:
        regroup, what = group, "blocks"
    for k, v in raw.items():
        tokenized = _map(v, tokenize, num_proc, ["text"], f"Tokenizing {k}{desc}", load_from_cache)
        grouped[k] = tokenized if line_by_line else _map(
            tokenized, regroup, num_proc, [name for name, *_ in columns],
            f"Grouping {k} into {what} of {max_seq_length}", load_from_cache)
    return {k: _add_index(v) for k, v in grouped.items()}


def fill_documents(batch, columns, piece, max_len):
    """packing='documents': whole wrapped pieces of the batch's documents, best fit into up to OPEN_EXAMPLES open
    examples of at most max_len tokens (see the module docstring). columns: tokenize_and_group's."""
    rows = {out: [] for _, out, *_ in columns}
    rows["document_lengths"] = []
    open_rows = []  # [free tokens, {column: list}, lengths]

    def close(row):
        for (_, out, *_) in columns:
            rows[out].append(row[1][out])
        rows["document_lengths"].append(row[2])

    for doc in zip(*(batch[name] for name, *_ in columns)):
        for i in range(0, len(doc[0]), piece):
            segment = [pre + x[i:i + piece] + suf for x, (_, _, (pre, suf), _) in zip(doc, columns)]
            n = len(segment[0])
            fits = [r for r in open_rows if r[0] >= n]
            if fits:
                row = min(fits, key=lambda r: r[0])  # the fullest example it fits in (first of equals)
            else:
                if len(open_rows) == OPEN_EXAMPLES:  # make room: the fullest open example is done
                    close(open_rows.pop(min(range(len(open_rows)), key=lambda j: open_rows[j][0])))
                row = [max_len, {out: [] for _, out, *_ in columns}, []]
                open_rows.append(row)
            for (_, out, *_), x in zip(columns, segment):
                row[1][out].extend(x)
            row[0] -= n
            row[2].append(n)
            if row[0] == 0:
                open_rows.remove(row)
                close(row)
    for row in open_rows:
        close(row)
    return rows


def tokenize_documents(tokenizer, texts):
    """Token ids of each text without special tokens; very long texts are tokenized piece by piece (cut at
    whitespace) and joined, which bounds the tokenizer's memory on a single huge line."""
    pieces, owner = document_pieces(texts)
    enc = tokenizer(pieces, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False,
                    verbose=False)["input_ids"]
    return join_pieces(enc, owner, len(texts))


def document_pieces(texts):
    """(pieces, owner): the texts cut by split_long_text, and the index of the text each piece comes from."""
    pieces, owner = [], []
    for i, text in enumerate(texts):
        for piece in split_long_text(text):
            pieces.append(piece)
            owner.append(i)
    return pieces, owner


def join_pieces(values, owner, n_texts):
    """Per-piece lists joined back into one list per text (the inverse of document_pieces)."""
    out = [[] for _ in range(n_texts)]
    for i, v in zip(owner, values):
        out[i].extend(v)
    return out


def special_affixes(tokenizer):
    """(prefix, suffix) special-token ids the tokenizer adds around a single sequence, e.g. ([CLS], [SEP])."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    raise ValueError("cannot locate the text inside the tokenizer's special-token template")


def _add_index(ds):
    if isinstance(ds, IterableDataset):
        return ds.map(lambda ex, i: {"example_index": i}, with_indices=True)
    return ds.add_column("example_index", list(range(len(ds))))
