"""Reading training text: local files (plain text, JSON lines, CSV) or a `datasets` dataset, checked up front.

Files are validated before `datasets` sees them, so a missing file, a directory, an empty file or bytes that are
not UTF-8 give one clear line instead of a traceback from deep inside a loader. Plain text is cut into documents
one per line or at blank lines (`document_split`); the held-out split, when no validation file is given, is the
last documents of the training data (contiguous, so paragraphs next to each other do not leak across the split).
"""
import codecs
import os
from pathlib import Path

from datasets import Dataset, DatasetDict, IterableDatasetDict, load_dataset

from ..constants import TEXT_EXTENSIONS
from ..errors import UserError

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "sample_data" / "sample_corpus.txt"
_CHECK_CHUNK = 1 << 20


def check_text_file(path, flag="--train_file"):
    """Raise UserError unless `path` is a non-empty, readable UTF-8 file with some non-blank text."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{flag} {path}: no such file")
    if p.is_dir():
        raise UserError(f"{flag} {path}: is a directory, expected a file")
    if p.stat().st_size == 0:
        raise UserError(f"{flag} {path}: file is empty")
    seen_text = False
    offset = 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(p, "rb") as f:
        while chunk := f.read(_CHECK_CHUNK):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise UserError(f"{flag} {path}: not valid UTF-8 (byte {offset + e.start}); re-encode the file "
                                f"as UTF-8") from None
            seen_text = seen_text or bool(text.strip())
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise UserError(f"{flag} {path}: not valid UTF-8 (truncated character at the end)") from None
    if not seen_text:
        raise UserError(f"{flag} {path}: file holds only whitespace")


def file_format(path):
    ext = str(path).rsplit(".", 1)[-1].lower()
    if ext in TEXT_EXTENSIONS:
        return "text"
    return {"json": "json", "jsonl": "json", "csv": "csv"}[ext]


def _has_blank_lines(path):
    with open(path, encoding="utf-8") as f:
        return any(not line.strip() for line in f)


def _text_column(ds, requested, source):
    """Name of the column holding the text: `requested`, else 'text', else the only string column."""
    columns = ds.column_names
    if columns is None:  # a stream whose schema is not known yet: look at its first example
        first = next(iter(ds), None)
        if first is None:
            raise UserError(f"{source}: no documents")
        columns = list(first)
    if requested:
        if requested not in columns:
            raise UserError(f"{source}: no column {requested!r}; columns are {columns}")
        return requested
    if "text" in columns:
        return "text"
    features = ds.features
    if features is None:
        first = next(iter(ds))
        strings = [c for c in columns if isinstance(first[c], str)]
    else:
        strings = [c for c in columns if getattr(features.get(c), "dtype", None) in ("string", "large_string")]
    if len(strings) == 1:
        return strings[0]
    raise UserError(f"{source}: cannot tell which column holds the text (columns {columns}); pass "
                    f"--text_column_name")


def _load_files(data_files, data_args, cache_dir):
    formats = {file_format(p) for p in data_files.values()}
    if len(formats) > 1:
        raise UserError(f"train and validation files must have the same format, got {sorted(formats)}")
    fmt = formats.pop()
    kwargs = {}
    if fmt == "text":
        split = data_args.document_split
        if split == "auto":
            split = "blank_line" if _has_blank_lines(data_files["train"]) else "line"
        kwargs["sample_by"] = "paragraph" if split == "blank_line" else "line"
    try:
        raw = load_dataset(fmt, data_files=data_files, cache_dir=cache_dir, streaming=data_args.streaming, **kwargs)
    except Exception as e:  # malformed JSON/CSV: the loader's message, on one line
        msg = " ".join(str(e).split())[:300]
        raise UserError(f"could not parse {', '.join(data_files.values())} as {fmt}: {msg}") from None
    return raw


def _clean(ds, column, source=None):
    """Strip each document and drop blank ones (a null value is a blank one); a value that is not text (a number,
    a list) is a one-line error naming its row."""
    def strip(batch, indices):
        for t, i in zip(batch[column], indices):
            if t is not None and not isinstance(t, str):
                raise UserError(f"{source or 'the data'}: row {i + 1}: the {column!r} value is of type "
                                f"{type(t).__name__} ({str(t)[:40]!r}), not text")
        return {column: [(t or "").strip() for t in batch[column]]}
    ds = ds.map(strip, batched=True, with_indices=True)
    return ds.filter(lambda batch: [bool(t) for t in batch[column]], batched=True)


def data_files_name(data_args, split):
    if data_args.dataset_name:
        return f"--dataset_name {data_args.dataset_name} ({split})"
    if split == "validation" and data_args.validation_file:
        return data_args.validation_file
    return data_args.train_file or str(SAMPLE_CORPUS)


def load_raw_datasets(data_args, model_args, seed):
    """Return a DatasetDict (or IterableDatasetDict when streaming) with 'train' and 'validation' and one
    column 'text'. Blank documents are dropped."""
    if data_args.dataset_name is not None:
        if data_args.train_file is not None:
            raise UserError("give either --dataset_name or --train_file, not both")
        try:
            raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=model_args.cache_dir,
                               token=model_args.token, streaming=data_args.streaming)
        except (ConnectionError, OSError, ValueError) as e:  # offline, unknown name, missing config
            raise UserError(f"could not load --dataset_name {data_args.dataset_name}: "
                            f"{' '.join(str(e).split())[:200]}") from None
        source = data_args.dataset_name
    else:
        train_file = data_args.train_file or str(SAMPLE_CORPUS)
        check_text_file(train_file, "--train_file")
        data_files = {"train": train_file}
        if data_args.validation_file is not None:
            check_text_file(data_args.validation_file, "--validation_file")
            data_files["validation"] = data_args.validation_file
        raw = _load_files(data_files, data_args, model_args.cache_dir)
        source = train_file
    if "train" not in raw:
        raise UserError(f"{source}: has no 'train' split (splits: {list(raw.keys())})")
    column = _text_column(raw["train"], data_args.text_column_name, source)
    raw = type(raw)({k: v.select_columns([column]) for k, v in raw.items()})
    if column != "text":
        raw = type(raw)({k: v.rename_column(column, "text") for k, v in raw.items()})
    raw = type(raw)({k: _clean(v, "text", data_files_name(data_args, k)) for k, v in raw.items()})
    if "validation" not in raw and data_args.validation_split_percentage > 0:
        if isinstance(raw, IterableDatasetDict):
            raise UserError("with --streaming, give a --validation_file (a held-out split cannot be cut from a "
                            "stream)")
        train = raw["train"]
        n_eval = max(1, len(train) * data_args.validation_split_percentage // 100)
        if len(train) - n_eval < 1:
            raise UserError(f"{source}: only {len(train)} non-blank documents; too few to hold out "
                            f"{data_args.validation_split_percentage}% for evaluation")
        raw = DatasetDict(train=train.select(range(len(train) - n_eval)),
                          validation=train.select(range(len(train) - n_eval, len(train))))
    if not isinstance(raw, IterableDatasetDict) and len(raw["train"]) == 0:
        raise UserError(f"{source}: no non-blank documents to train on")
    return raw


LONG_TEXT_CHARS = 100_000


def split_long_text(text, limit=LONG_TEXT_CHARS):
    """Cut a text longer than `limit` characters into pieces that start at whitespace (so word-level
    pre-tokenizers see the same words); a piece with no whitespace at all is cut hard."""
    if len(text) <= limit:
        return [text]
    pieces, start = [], 0
    while len(text) - start > limit:
        cut = max(text.rfind(" ", start + 1, start + limit), text.rfind("\n", start + 1, start + limit))
        cut = cut if cut > start else start + limit
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def iter_texts(ds, batch_size=1000):
    """Yield lists of texts from a Dataset or IterableDataset (used for tokenizer training); very long
    documents come in pieces, so one huge line never has to be held as one tokenizer input."""
    rows = (ds[i:i + batch_size]["text"] for i in range(0, len(ds), batch_size)) if isinstance(ds, Dataset) \
        else _batched(ex["text"] for ex in ds)
    for batch in rows:
        yield [piece for text in batch for piece in split_long_text(text)]


def _batched(items, size=1000):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def is_local_dir(path):
    return path is not None and os.path.isdir(path)
