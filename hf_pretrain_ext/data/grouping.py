"""Tokenizing documents and cutting them into training examples.

Packing (the default): documents are tokenized without special tokens, joined with [SEP] between documents, cut
into pieces of max_seq_length - 2 and each piece wrapped as [CLS] piece [SEP], so every example looks like a
BERT input and no token is dropped except the tail of the last piece (kept when at least 1/4 of a block).
`line_by_line`: one example per document, truncated. Every example gets `example_index`, its position in the
split, from which the collators derive per-example random seeds (so a resumed run masks the same way).
"""
from itertools import chain

from datasets import IterableDataset

from .loading import split_long_text


def _map(ds, fn, num_proc, remove_columns, desc, load_from_cache):
    if isinstance(ds, IterableDataset):
        return ds.map(fn, batched=True, remove_columns=remove_columns)
    return ds.map(fn, batched=True, num_proc=num_proc, remove_columns=remove_columns,
                  load_from_cache_file=load_from_cache, desc=desc)


def tokenize_and_group(raw, tokenizer, max_seq_length, line_by_line=False, num_proc=None, load_from_cache=True,
                       word_starts=None):
    """Map a DatasetDict with a 'text' column to examples with 'input_ids' and 'example_index'. With
    `word_starts` (a callable texts -> (token ids, word starts) per text, e.g. collators.DocumentWordStarts), each
    example also gets the `word_starts` of its tokens, computed on the whole document before it was cut (0 on the
    special tokens)."""
    prefix, suffix = special_affixes(tokenizer)
    if word_starts is not None:
        return _group_with_word_starts(raw, word_starts, max_seq_length, line_by_line, num_proc, load_from_cache,
                                       tokenizer, prefix, suffix)

    if line_by_line:
        def tokenize(batch):
            enc = tokenizer(batch["text"], truncation=True, max_length=max_seq_length,
                            return_attention_mask=False, return_token_type_ids=False)
            return {"input_ids": enc["input_ids"]}
        grouped = {k: _map(v, tokenize, num_proc, ["text"], f"Tokenizing {k}", load_from_cache)
                   for k, v in raw.items()}
    else:
        sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        piece = max_seq_length - len(prefix) - len(suffix)

        def tokenize(batch):
            return {"ids": [ids + [sep] for ids in tokenize_documents(tokenizer, batch["text"])]}

        def group(batch):
            flat = list(chain.from_iterable(batch["ids"]))
            if flat and flat[-1] == sep:
                flat.pop()  # no trailing separator at the very end of a batch of documents
            pieces = [flat[i:i + piece] for i in range(0, len(flat), piece)]
            if len(pieces) > 1 and len(pieces[-1]) < piece // 4:
                pieces.pop()
            return {"input_ids": [prefix + p + suffix for p in pieces]}

        grouped = {}
        for k, v in raw.items():
            tokenized = _map(v, tokenize, num_proc, ["text"], f"Tokenizing {k}", load_from_cache)
            grouped[k] = _map(tokenized, group, num_proc, ["ids"], f"Grouping {k} into blocks of {max_seq_length}",
                              load_from_cache)
    return {k: _add_index(v) for k, v in grouped.items()}


def _group_with_word_starts(raw, word_starts, max_seq_length, line_by_line, num_proc, load_from_cache, tokenizer,
                            prefix, suffix):
    """tokenize_and_group carrying a word-start column beside the ids (same blocks, same cuts)."""
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    piece = max_seq_length - len(prefix) - len(suffix)
    pad = ([0] * len(prefix), [0] * len(suffix))

    def tokenize(batch):
        ids, starts = word_starts(batch["text"])
        if line_by_line:
            return {"input_ids": [prefix + x[:piece] + suffix for x in ids],
                    "word_starts": [pad[0] + w[:piece] + pad[1] for w in starts]}
        return {"ids": [x + [sep] for x in ids], "starts": [w + [0] for w in starts]}

    def group(batch):
        flat, flat_starts = list(chain.from_iterable(batch["ids"])), list(chain.from_iterable(batch["starts"]))
        if flat and flat[-1] == sep:
            flat.pop()
            flat_starts.pop()
        cuts = list(range(0, len(flat), piece))
        if len(cuts) > 1 and len(flat) - cuts[-1] < piece // 4:
            cuts.pop()
        return {"input_ids": [prefix + flat[i:i + piece] + suffix for i in cuts],
                "word_starts": [pad[0] + flat_starts[i:i + piece] + pad[1] for i in cuts]}

    grouped = {}
    for k, v in raw.items():
        tokenized = _map(v, tokenize, num_proc, ["text"], f"Tokenizing {k} (word boundaries from the text)",
                         load_from_cache)
        grouped[k] = tokenized if line_by_line else _map(tokenized, group, num_proc, ["ids", "starts"],
                                                         f"Grouping {k} into blocks of {max_seq_length}",
                                                         load_from_cache)
    return {k: _add_index(v) for k, v in grouped.items()}


def tokenize_documents(tokenizer, texts):
    """Token ids of each text without special tokens; very long texts are tokenized piece by piece (cut at
    whitespace) and joined, which bounds the tokenizer's memory on a single huge line."""
    pieces, owner = [], []
    for i, text in enumerate(texts):
        for piece in split_long_text(text):
            pieces.append(piece)
            owner.append(i)
    enc = tokenizer(pieces, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False,
                    verbose=False)["input_ids"]
    out = [[] for _ in texts]
    for i, ids in zip(owner, enc):
        out[i].extend(ids)
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
