"""Word boundaries from the document text (#17): jieba on the text itself, mapped through the offsets, carried
through packing; whole-word masking then selects each segmenter word whole or not at all."""
import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from hf_pretrain_ext.collators import DocumentWordStarts, build_collator
from hf_pretrain_ext.collators.masking import IGNORE_INDEX
from hf_pretrain_ext.data.grouping import tokenize_and_group
from hfpx_testutils import shared_lines, zh_tokenizer

jieba = pytest.importorskip("jieba")

ADVERSARIAL = [
    "中国 人民银行发布了新规定", "我们 去北京", "我的B超出来了", "买了U盘和iPhone 15", "增长了3.5%，很好",
    "研究生命起源研究生命起源研究生命起源", "“你好！”他说：“欢迎来到上海。”", "今天是2024年12月2日，气温15℃。",
    "表情😀也要处理😂吧", "中  文　全角空格　和\t制表符", "hello world 你好世界", "Ｆｕｌｌ ｗｉｄｔｈ 字母和１２３",
]


def jieba_starts(text, offsets):
    first = {start for _, start, _ in jieba.tokenize(text)}
    return [int(s in first) for s, e in offsets]


def test_each_token_starts_a_word_exactly_where_jieba_starts_one():
    tok = zh_tokenizer()
    ids, starts = DocumentWordStarts(tok)(ADVERSARIAL)
    for text, x, st in zip(ADVERSARIAL, ids, starts):
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        assert enc["input_ids"] == x
        want = jieba_starts(text, enc["offset_mapping"])
        want[0] = 1
        assert st == want, (text, list(zip(tok.convert_ids_to_tokens(x), st, want)))
    # the cases, by name
    by_text = dict(zip(ADVERSARIAL, zip(ids, starts)))
    x, st = by_text["中国 人民银行发布了新规定"]
    assert tok.convert_ids_to_tokens(x)[:6] == list("中国人民银行") and st[:6] == [1, 0, 1, 0, 0, 0]
    x, st = by_text["我的B超出来了"]
    assert st == [1, 1, 1, 0, 1, 0, 1]  # 我 | 的 | b超 | 出来 | 了


def test_english_documents_keep_the_wordpiece_rule():
    tok = zh_tokenizer()
    text = "unbelievable results were reported"
    ids, starts = DocumentWordStarts(tok)([text])
    pieces = tok.convert_ids_to_tokens(ids[0])
    assert starts[0] == [int(not p.startswith("##")) for p in pieces]


def test_a_pluggable_segmenter_decides():
    tok = zh_tokenizer()
    def every_two(text):  # words of two characters
        return [(text[i:i + 2], i, min(i + 2, len(text))) for i in range(0, len(text), 2)]
    ids, starts = DocumentWordStarts(tok, segmenter=every_two)(["中国人民银行"])
    assert starts[0] == [1, 0, 1, 0, 1, 0]


def _blocks(lines, length, line_by_line=False):
    tok = zh_tokenizer()
    raw = DatasetDict({"train": Dataset.from_dict({"text": lines})})
    return tok, tokenize_and_group(raw, tok, length, line_by_line=line_by_line,
                                   word_starts=DocumentWordStarts(tok))["train"]


@pytest.mark.parametrize("line_by_line", [False, True])
def test_blocks_carry_the_documents_words_and_masking_keeps_them_whole(line_by_line):
    """Blocks of 24 tokens cut documents anywhere: the word_starts of a block are the document's own, and wwm over
    many seeds selects every jieba word of a block whole or not at all."""
    tok, blocks = _blocks(ADVERSARIAL * 3, 24, line_by_line)
    docs, doc_starts = DocumentWordStarts(tok)(ADVERSARIAL * 3)
    sep = tok.sep_token_id
    if not line_by_line:  # the blocks are the documents joined by [SEP], cut into pieces of 22, starts alongside
        flat = [t for d in docs for t in d + [sep]][:-1]
        flat_starts = [s for d in doc_starts for s in d + [0]][:-1]
        got = [t for b in blocks["input_ids"] for t in b[1:-1]]
        got_starts = [s for b in blocks["word_starts"] for s in b[1:-1]]
        assert got == flat[:len(got)] and got_starts == flat_starts[:len(got)]
    selected_words = 0
    for seed in range(20):
        coll = build_collator("wwm", tok, seed=seed, mlm_probability=0.3)
        out = coll([dict(b) for b in blocks])
        for row, block in enumerate(blocks):
            labelled = (out["labels"][row, :len(block["input_ids"])] != IGNORE_INDEX).numpy()
            starts = np.asarray(block["word_starts"], dtype=bool)
            eligible = ~np.isin(block["input_ids"], tok.all_special_ids)
            word = np.cumsum(starts | ~np.r_[False, eligible[:-1]]) * eligible
            for w in np.unique(word[eligible]):
                sel = labelled[word == w]
                assert sel.all() or not sel.any(), (seed, row)
                selected_words += sel.all()
    assert selected_words > 100


def test_chinese_wwm_statistics_on_real_text():
    """../shared/data Chinese prose, blocks of 128: 15% +- 1.5 points of the tokens selected, 80/10/10, and no
    segmenter word split between selected and not."""
    lines = shared_lines("zh_pretrain/CLUECorpusSmall_sampled.txt", 400, min_chars=20)
    tok, blocks = _blocks(lines, 128)
    coll = build_collator("wwm", tok, seed=3)
    n_eligible = n_selected = n_mask = n_kept = split = 0
    for start in range(0, len(blocks), 64):
        part = [dict(blocks[i]) for i in range(start, min(start + 64, len(blocks)))]
        out = coll(part)
        for row, block in enumerate(part):
            ids = np.asarray(block["input_ids"])
            labels = out["labels"][row, :len(ids)].numpy()
            new = out["input_ids"][row, :len(ids)].numpy()
            eligible = ~np.isin(ids, tok.all_special_ids)
            sel = labels != IGNORE_INDEX
            n_eligible += eligible.sum()
            n_selected += sel.sum()
            n_mask += (new[sel] == tok.mask_token_id).sum()
            n_kept += (new[sel] == ids[sel]).sum()
            word = np.cumsum(np.asarray(block["word_starts"], bool) | ~np.r_[False, eligible[:-1]]) * eligible
            for w in np.unique(word[eligible]):
                s = sel[word == w]
                split += s.any() and not s.all()
    assert split == 0
    assert abs(n_selected / n_eligible - 0.15) < 0.015, n_selected / n_eligible
    assert abs(n_mask / n_selected - 0.8) < 0.02 and abs(n_kept / n_selected - 0.1) < 0.02
