"""Tokenizer training (WordPiece, byte-level BPE) and tokenization + grouping into blocks."""
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from hf_pretrain_ext.data.grouping import special_affixes, tokenize_and_group
from hf_pretrain_ext.data.tokenizer import train_byte_bpe, train_wordpiece
from hfpx_testutils import WORDS, tiny_tokenizer


def test_wordpiece_specials_and_continuations(tmp_path):
    tok = tiny_tokenizer()
    assert [tok.pad_token, tok.cls_token, tok.sep_token, tok.mask_token] == ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    assert any(t.startswith("##") for t in tok.get_vocab())
    enc = tok("The Quick fox")
    assert enc["input_ids"][0] == tok.cls_token_id and enc["input_ids"][-1] == tok.sep_token_id
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "the quick fox"  # lowercased
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("The Quick fox")["input_ids"] == enc["input_ids"] and len(again) == len(tok)
    pair = tok("a b", "c")
    assert pair["token_type_ids"][-2:] == [1, 1]


def test_byte_level_bpe_roundtrip():
    tok = train_byte_bpe(iter([[" ".join(WORDS)] * 5]), 300)
    text = "naïve café — 日本"  # unseen bytes still encode and decode exactly
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<pad>" and tok.mask_token == "<mask>"
    s2s = train_byte_bpe(iter([[" ".join(WORDS)] * 5]), 300, seq2seq=True)  # BART's special-token layout
    assert s2s.convert_ids_to_tokens(list(range(5))) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert (s2s.bos_token_id, s2s.pad_token_id, s2s.eos_token_id, s2s.unk_token_id) == (0, 1, 2, 3)
    assert s2s.decode(s2s(text)["input_ids"]) == text
    # <mask> takes the space before it, as the word it stands for did (BART masks "Ġword" tokens)
    assert s2s("quick <mask> fox")["input_ids"] == s2s("quick<mask> fox")["input_ids"]
    tokens = s2s.convert_ids_to_tokens(s2s("quick <mask> fox")["input_ids"])
    assert tokens[tokens.index("<mask>") - 1] != "Ġ"


def test_grouping_blocks_are_bert_inputs():
    tok = tiny_tokenizer()
    texts = [" ".join(WORDS[: 5 + i]) for i in range(30)]
    raw = DatasetDict(train=Dataset.from_dict({"text": texts}))
    lm = tokenize_and_group(raw, tok, max_seq_length=32, load_from_cache=False)["train"]
    prefix, suffix = special_affixes(tok)
    assert (prefix, suffix) == ([tok.cls_token_id], [tok.sep_token_id])
    for ex in lm:
        ids = ex["input_ids"]
        assert len(ids) <= 32 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert lm["example_index"] == list(range(len(lm)))
    # every document token survives packing, in order (separators between documents)
    body = [i for ex in lm for i in ex["input_ids"][1:-1]]
    expected = []
    for t in texts:
        expected += tok(t, add_special_tokens=False)["input_ids"] + [tok.sep_token_id]
    assert body == expected[:-1]


def test_line_by_line_truncates():
    tok = tiny_tokenizer()
    raw = DatasetDict(train=Dataset.from_dict({"text": [" ".join(WORDS * 3), "fox"]}))
    lm = tokenize_and_group(raw, tok, max_seq_length=16, line_by_line=True, load_from_cache=False)["train"]
    assert [len(x) for x in lm["input_ids"]] == [16, 3]


def test_long_documents_tokenize_in_pieces_to_the_same_ids():
    from hf_pretrain_ext.data.grouping import tokenize_documents
    from hf_pretrain_ext.data.loading import split_long_text
    tok = tiny_tokenizer()
    text = " ".join(WORDS * 40)
    pieces = split_long_text(text, limit=100)
    assert "".join(pieces) == text and all(len(p) <= 100 for p in pieces) and len(pieces) > 10
    assert all(p.startswith(" ") for p in pieces[1:])
    whole = tok(text, add_special_tokens=False)["input_ids"]
    import hf_pretrain_ext.data.grouping as grouping
    original = grouping.split_long_text
    grouping.split_long_text = lambda t: split_long_text(t, limit=100)
    try:
        assert tokenize_documents(tok, [text, "fox"]) == [whole, tok("fox", add_special_tokens=False)["input_ids"]]
    finally:
        grouping.split_long_text = original
    assert split_long_text("x" * 250, limit=100) == ["x" * 100, "x" * 100, "x" * 50]
