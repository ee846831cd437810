"""Constants shared across the package.

IGNORE_INDEX: the label value of a position that is not a target (-100, PyTorch's cross_entropy default
`ignore_index` and the value every transformers loss skips). Collators write it into `labels` (unlabelled and
padded positions), the loss heads gather only the rows that do not carry it, and the metrics skip it.
Defined here once; the modules that used to define it re-export it, so `from .masking import IGNORE_INDEX` and the
like keep working.
"""
IGNORE_INDEX = -100

# training and evaluation files the loaders read (plain text, or one JSON object per line, or CSV)
TEXT_EXTENSIONS = ("txt", "text", "raw")
FILE_EXTENSIONS = TEXT_EXTENSIONS + ("json", "jsonl", "csv")
