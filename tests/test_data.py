"""Loading training text from each format, document splitting, the held-out split, and bad files."""
import json

import pytest

from hf_pretrain_ext.args import DataTrainingArguments, ModelArguments
from hf_pretrain_ext.data.loading import SAMPLE_CORPUS, load_raw_datasets
from hf_pretrain_ext.errors import UserError


def load(**kw):
    return load_raw_datasets(DataTrainingArguments(**kw), ModelArguments(), seed=0)


def test_text_blank_line_documents(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("first line\nof doc one\n\nsecond doc\n\n\nthird doc\n", encoding="utf-8")
    raw = load(train_file=str(f), validation_split_percentage=0)
    assert raw["train"]["text"] == ["first line\nof doc one", "second doc", "third doc"]


def test_text_one_document_per_line(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("a b c\nd e f\r\ng h\n", encoding="utf-8")
    raw = load(train_file=str(f), validation_split_percentage=0)
    assert raw["train"]["text"] == ["a b c", "d e f", "g h"]
    raw = load(train_file=str(f), validation_split_percentage=0, document_split="blank_line")
    assert len(raw["train"]) == 1


def test_jsonl_and_csv(tmp_path):
    j = tmp_path / "c.jsonl"
    j.write_text("".join(json.dumps({"id": i, "text": f"doc {i}"}) + "\n" for i in range(4)))
    assert load(train_file=str(j), validation_split_percentage=0)["train"]["text"] == [f"doc {i}" for i in range(4)]
    c = tmp_path / "c.csv"
    c.write_text('label,body\n1,"hello, world"\n0,second row\n')
    raw = load(train_file=str(c), validation_split_percentage=0)  # the only string column is found
    assert raw["train"]["text"] == ["hello, world", "second row"]
    with pytest.raises(UserError, match="no column 'missing'"):
        load(train_file=str(c), text_column_name="missing")


def test_held_out_split_is_the_tail(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("\n".join(f"doc {i}" for i in range(20)) + "\n")
    raw = load(train_file=str(f), validation_split_percentage=10)
    assert raw["train"]["text"] == [f"doc {i}" for i in range(18)]
    assert raw["validation"]["text"] == ["doc 18", "doc 19"]


def test_validation_file(tmp_path):
    t, v = tmp_path / "t.txt", tmp_path / "v.txt"
    t.write_text("a\nb\n")
    v.write_text("c\n")
    raw = load(train_file=str(t), validation_file=str(v))
    assert raw["train"]["text"] == ["a", "b"] and raw["validation"]["text"] == ["c"]


def test_sample_corpus_is_shipped():
    assert SAMPLE_CORPUS.is_file() and 100_000 < SAMPLE_CORPUS.stat().st_size < 5_000_000
    raw = load(validation_split_percentage=5)
    assert len(raw["train"]) > 1000 and len(raw["validation"]) > 50


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("DIR", "is a directory"),
    (b"", "file is empty"),
    (b"  \n\n \t\n", "only whitespace"),
    (b"good text\n\xff\xfe bad bytes\n", "not valid UTF-8 (byte 10)"),
])
def test_bad_files(tmp_path, content, message):
    f = tmp_path / "c.txt"
    if content == "DIR":
        f.mkdir()
    elif content is not None:
        f.write_bytes(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        load(train_file=str(f))
    assert "\n" not in str(e.value)


def test_malformed_jsonl(tmp_path):
    j = tmp_path / "c.jsonl"
    j.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(UserError, match="could not parse"):
        load(train_file=str(j))
