"""Labelled examples for sequence classification: read, check, map labels to ids, tokenize.

Files are read with the standard library so that the GLUE/CLUE layouts load as they are: .tsv with quoting off
(MRPC strings contain lone `"`), a UTF-8 byte-order mark stripped (MRPC), a header row or `--column_names` for
headerless files (TNEWS; a first row equal to those names is the header, not an example), .csv with normal
quoting, .json/.jsonl one object per line (CLUE). Rows whose text or label is blank are dropped and counted in
the log (documented behaviour); a missing column, a file with no usable row, or a validation/test label never
seen in training is a `UserError`.

Label ids: the sorted distinct training labels (numerically when all are integers, so '0'/'1' keep their ids);
for a `datasets` ClassLabel column its own names and ids.
"""
import csv
import json
import logging
import random

from datasets import ClassLabel, Dataset, load_dataset

from ..data.loading import check_text_file
from ..errors import UserError

logger = logging.getLogger("hf_pretrain_ext")

TEXT_COLUMNS = ("sentence", "sentence1", "text", "text_a", "#1 String", "question")
PAIR_COLUMNS = ("sentence2", "text_b", "#2 String")
LABEL_COLUMNS = ("label", "Quality", "label_desc")
SPLIT_FLAGS = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}


def read_rows(path, column_names=None, flag="--train_file"):
    """Rows of a .tsv/.csv/.jsonl file as (columns, list of dicts)."""
    check_text_file(path, flag)
    ext = str(path).rsplit(".", 1)[-1].lower()
    with open(path, encoding="utf-8-sig", newline="") as f:
        if ext in ("json", "jsonl"):
            rows = []
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{flag} {path}: line {n} is not a JSON object ({e.msg})") from None
                if not isinstance(row, dict):
                    raise UserError(f"{flag} {path}: line {n} is not a JSON object")
                rows.append(row)
            columns = list(rows[0]) if rows else []
            return columns, rows
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if ext == "tsv" else csv.reader(f)
        lines = [line for line in reader if any(cell.strip() for cell in line)]
    if column_names:
        columns = [c.strip() for c in column_names.split(",")]
        if lines and [cell.strip() for cell in lines[0]] == columns:  # a header after all: not an example
            logger.info("%s %s: first row repeats --column_names %s; read as the header", flag, path, columns)
            lines = lines[1:]
    else:
        if not lines:
            raise UserError(f"{flag} {path}: no rows")
        columns, lines = lines[0], lines[1:]
    rows = []
    for line in lines:
        if len(line) != len(columns):  # a short row is a blank cell; a long one cannot be placed
            if len(line) > len(columns):
                raise UserError(f"{flag} {path}: a row has {len(line)} fields but there are {len(columns)} columns "
                                f"{columns}; check the delimiter or --column_names")
            line = line + [""] * (len(columns) - len(line))
        rows.append(dict(zip(columns, line)))
    return columns, rows


def pick_column(columns, requested, candidates, what, source, flag, required=True):
    if requested is not None:
        if requested not in columns:
            raise UserError(f"{source}: no {what} column {requested!r}; columns are {columns}")
        return requested
    for name in candidates:
        if name in columns:
            return name
    if required:
        raise UserError(f"{source}: no {what} column (looked for {', '.join(candidates)}; columns are {columns}); "
                        f"pass {flag}" + (" or --column_names for a file without a header" if what == "text" else ""))
    return None


def _label_key(label):
    return str(label).strip()


def sort_labels(labels):
    """Distinct labels in id order: numeric order when every label is an integer, else string order."""
    labels = sorted(set(labels))
    try:
        return sorted(labels, key=int)
    except ValueError:
        return labels


class LabelledData:
    """train / validation / test splits as lists of (text, text_pair or None, label string), and the label set."""

    def __init__(self, splits, label_list, text_column, pair_column, label_column):
        self.splits = splits
        self.label_list = label_list
        self.label2id = {label: i for i, label in enumerate(label_list)}
        self.text_column, self.pair_column, self.label_column = text_column, pair_column, label_column

    @property
    def is_pair(self):
        return self.pair_column is not None


def _clean_rows(rows, text_col, pair_col, label_col, source, no_label=()):
    kept, dropped = [], 0
    for row in rows:
        text = str(row.get(text_col) or "").strip()
        pair = str(row.get(pair_col) or "").strip() if pair_col else None
        label = row.get(label_col)
        label = "" if label is None else _label_key(label)
        if not text or (pair_col and not pair) or label in ("", *no_label):
            dropped += 1
            continue
        kept.append((text, pair, label))
    if dropped:
        logger.warning("%s: dropped %d row(s) with a blank text or label", source, dropped)
    if not kept:
        raise UserError(f"{source}: no row with both a text and a label")
    return kept


def load_labelled_data(data_args, model_args, seed):
    """Read the splits, pick the columns, check the labels; returns a LabelledData."""
    tables, sources, class_names = {}, {}, None
    if data_args.dataset_name is not None:
        try:
            raw = load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=model_args.cache_dir,
                               token=model_args.token)
        except Exception as e:  # not found offline, bad config name, ...
            raise UserError(f"could not load --dataset_name {data_args.dataset_name}: "
                            f"{' '.join(str(e).split())[:300]}") from None
        for split in ("train", "validation", "test"):
            if split in raw:
                ds = raw[split]
                tables[split] = (ds.column_names, ds)
                sources[split] = f"{data_args.dataset_name}[{split}]"
        if "train" not in tables:
            raise UserError(f"{data_args.dataset_name}: has no 'train' split (splits: {list(raw.keys())})")
    else:
        for split, flag in SPLIT_FLAGS.items():
            path = getattr(data_args, f"{split}_file")
            if path is not None:
                tables[split] = read_rows(path, data_args.column_names, flag)
                sources[split] = f"{flag} {path}"
    columns = tables["train"][0]
    source = sources["train"]
    text_col = pick_column(columns, data_args.text_column, TEXT_COLUMNS, "text", source, "--text_column")
    pair_col = pick_column(columns, data_args.text_pair_column, PAIR_COLUMNS, "second-sentence", source,
                           "--text_pair_column", required=False)
    label_col = pick_column(columns, data_args.label_column, LABEL_COLUMNS, "label", source, "--label_column")
    if data_args.dataset_name is not None:
        feature = tables["train"][1].features[label_col]
        if isinstance(feature, ClassLabel):
            class_names = feature.names

    splits = {}
    for split, (cols, rows) in tables.items():
        for col in (text_col, pair_col, label_col):
            if col is not None and col not in cols:
                raise UserError(f"{sources[split]}: no column {col!r} (columns are {cols}); all splits need the "
                                f"columns of the training file")
        if isinstance(rows, Dataset):
            rows = rows.to_list()
        # a ClassLabel of -1 is datasets' "no label" (GLUE test splits)
        kept = _clean_rows(rows, text_col, pair_col, label_col, sources[split], ("-1",) if class_names else ())
        if class_names is not None:  # ClassLabel ids -> names, so the label list is the dataset's own
            kept = [(t, p, class_names[int(y)]) for t, p, y in kept]
        splits[split] = kept

    label_list = class_names or sort_labels(y for _, _, y in splits["train"])
    if len(label_list) < 2:
        raise UserError(f"{source}: only one label ({label_list[0]!r}) in the training data; classification needs "
                        f"at least two")
    for split in ("validation", "test"):
        if split in splits:
            unseen = sorted({y for _, _, y in splits[split]} - set(label_list))
            if unseen:
                shown = ", ".join(repr(u) for u in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
                raise UserError(f"{sources[split]}: label(s) {shown} never occur in the training data "
                                f"(labels: {', '.join(label_list[:20])})")
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples),
                         ("test", data_args.max_test_samples)):
        if split in splits and limit is not None and limit < len(splits[split]):
            rng = random.Random(seed)
            splits[split] = [splits[split][i] for i in sorted(rng.sample(range(len(splits[split])), limit))]
    return LabelledData(splits, list(label_list), text_col, pair_col, label_col)


def tokenize_split(examples, tokenizer, label2id, max_seq_length):
    """A Dataset with input_ids (token_type_ids, attention_mask) and labels, unpadded (the collator pads)."""
    texts = [t for t, _, _ in examples]
    pairs = [p for _, p, _ in examples]
    kwargs = dict(truncation=True, max_length=max_seq_length)
    enc = tokenizer(texts, pairs, **kwargs) if pairs[0] is not None else tokenizer(texts, **kwargs)
    enc = {k: v for k, v in enc.items() if k in ("input_ids", "token_type_ids", "attention_mask")}
    enc["labels"] = [label2id[y] for _, _, y in examples]
    return Dataset.from_dict(enc)

