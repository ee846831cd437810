"""Sentence splitting for English and Chinese text, for the sentence-pair objectives (SOP, NSP).

Rules, kept simple and predictable (no model, no abbreviation list):
- a line break always ends a sentence;
- Chinese terminators 。！？ (and ASCII ! ?, the full-width period ．, an ellipsis …… ) end a sentence right
  after them, spaces or not, together with any closing quotes or brackets that follow (”’」』》）);
- an English full stop ends a sentence when whitespace and then an upper-case letter, a digit, an opening quote or
  bracket follow, or at the end of the text, so 'e.g. this' and '3.5' stay whole.
"""
import re

_CLOSERS = "”’」』》）)\\]\"'"
_END = re.compile(
    rf"(?:[。！？!?．]+|…+)[{_CLOSERS}]*"
    rf"|\.+[{_CLOSERS}]*(?=\s+[A-Z0-9“‘\"'(\[]|\s*$)"
)


def split_sentences(text):
    """List of sentences (stripped, non-empty) of `text`."""
    sentences = []
    for line in text.splitlines():
        start = 0
        for m in _END.finditer(line):
            piece = line[start:m.end()].strip()
            if piece:
                sentences.append(piece)
            start = m.end()
        piece = line[start:].strip()
        if piece:
            sentences.append(piece)
    return sentences
