"""Documents -> sentence chunks for the sentence-pair objectives (SOP, NSP).

Sentence pairs cannot come from packed blocks (a block has no sentence or document structure), so the text is
prepared per document: split into sentences (sentences.py), each sentence tokenized without special tokens, and
consecutive sentences gathered greedily into chunks of about max_seq_length - 3 tokens (room for [CLS] A [SEP]
B [SEP]), each holding at least two sentences, as in BERT's and ALBERT's create_pretraining_data. A chunk closes
once it is full and has two sentences; a document's last lone sentence joins the previous chunk (the collator
truncates). Documents with fewer than two sentences cannot give a pair and are skipped; the count is logged.

Each feature: `input_ids` (the chunk's tokens, sentences concatenated), `sentence_lengths` (tokens per sentence),
`document_index` (the document's position in its split, so NSP can draw a segment from another document) and
`example_index`; with `word_starts` (a collators.DocumentWordStarts) also a `word_starts` column, computed on each
sentence's own text (jieba for Chinese: a sentence ends at 。！？, where jieba's words end too, so the words are the
document's), for whole-word masking of the pairs. The collators (collators/pairs.py) turn a chunk into a pair with the example's own random stream.
"""
import logging

from datasets import IterableDataset

from ..errors import UserError
from .grouping import _add_index
from .sentences import split_sentences

logger = logging.getLogger("hf_pretrain_ext")


def chunk_document(sentence_ids, max_tokens):
    """Group a document's tokenized sentences into chunks: list of lists of sentences (each >= 2 sentences)."""
    sentence_ids = [s[:max_tokens] for s in sentence_ids if s]
    if len(sentence_ids) < 2:
        return []
    chunks, current, length = [], [], 0
    for sent in sentence_ids:
        current.append(sent)
        length += len(sent)
        if length >= max_tokens and len(current) >= 2:
            chunks.append(current)
            current, length = [], 0
    if len(current) >= 2 or not chunks:
        chunks.append(current)
    elif current:
        chunks[-1].extend(current)
    return chunks


def tokenize_sentences(texts, tokenizer, word_starts=None):
    """Token ids of each sentence (no special tokens) and, with a DocumentWordStarts, their word starts."""
    if not texts:
        return [], None if word_starts is None else []
    if word_starts is not None:
        return word_starts(texts)
    return tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False,
                     verbose=False)["input_ids"], None


def prepare_sentence_examples(raw, tokenizer, max_seq_length, num_proc=None, load_from_cache=True,
                              word_starts=None):
    """Map a DatasetDict with a 'text' column (one document per row) to sentence chunks (see module docstring)."""
    max_tokens = max_seq_length - 3

    def chunk(batch, indices):
        out = {"input_ids": [], "sentence_lengths": [], "document_index": []}
        if word_starts is not None:
            out["word_starts"] = []
        sentences = [split_sentences(text) for text in batch["text"]]
        flat = [s for doc in sentences for s in doc]
        ids, starts = tokenize_sentences(flat, tokenizer, word_starts)
        # with word starts, each token travels as an (id, start) pair, so chunking keeps them together
        tokens = ids if starts is None else [list(zip(i, s)) for i, s in zip(ids, starts)]
        pos = 0
        for doc_index, doc in zip(indices, sentences):
            doc_tokens, pos = tokens[pos:pos + len(doc)], pos + len(doc)
            for piece in chunk_document(doc_tokens, max_tokens):
                flat_piece = [t for s in piece for t in s]
                out["input_ids"].append(flat_piece if starts is None else [i for i, _ in flat_piece])
                out["sentence_lengths"].append([len(s) for s in piece])
                out["document_index"].append(doc_index)
                if starts is not None:
                    out["word_starts"].append([s for _, s in flat_piece])
        return out

    prepared = {}
    for split, ds in raw.items():
        if isinstance(ds, IterableDataset):
            mapped = ds.map(chunk, batched=True, with_indices=True, remove_columns=["text"])
        else:
            mapped = ds.map(chunk, batched=True, with_indices=True, remove_columns=["text"], num_proc=num_proc,
                            load_from_cache_file=load_from_cache, desc=f"Sentence chunks {split}")
            if len(mapped) == 0 or "document_index" not in mapped.column_names:
                raise UserError(f"no document of the {split} split has two sentences; sentence-pair objectives "
                                f"(sop, nsp) need documents of several sentences")
            used = len(set(mapped["document_index"]))
            logger.info("sentence pairs (%s): %d documents -> %d chunks; %d documents with fewer than 2 sentences "
                        "skipped", split, len(ds), len(mapped), len(ds) - used)
        prepared[split] = _add_index(mapped)
    return prepared
