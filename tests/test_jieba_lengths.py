"""jieba_lengths.word_lengths is jieba.lcut's segmentation, word for word: on the shared Chinese corpus, on random
mixed-script strings, and on a jieba tokenizer whose dictionary the user changed."""
import random

import pytest

from hf_pretrain_ext.collators.jieba_lengths import word_lengths
from hfpx_testutils import shared_lines

jieba = pytest.importorskip("jieba")

from test_doc_words import ADVERSARIAL  # noqa: E402


def stock(text, tokenizer=None):
    return [len(w) for w in (tokenizer or jieba.dt).lcut(text)]


def test_same_words_as_jieba_on_the_shared_chinese_corpus():
    lines = shared_lines("zh_pretrain/CLUECorpusSmall_sampled.txt", 800)
    text = "\n".join(lines)
    assert word_lengths(text) == stock(text)
    assert sum(word_lengths(text)) == len(text)
    for line in lines[:200]:  # one call per document too (other block splits)
        assert word_lengths(line) == stock(line)


def test_same_words_as_jieba_on_adversarial_and_random_text():
    for text in ADVERSARIAL + ["", " ", "\r\n\r\n", "a", "中", "——", "3.5%的U盘", "C++和C#程序员", "e-mail地址"]:
        assert word_lengths(text) == stock(text), text
    # random strings over an alphabet that exercises every branch: Han characters in and out of the dictionary,
    # letters and digits inside Han blocks, jieba's block punctuation (+#&._%-), whitespace (\r\n is one word),
    # full-width punctuation and emoji
    han = "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对小" \
          "研究生命起源北京大学银行民超盘鑫犇骉龘"
    alphabet = list(han) * 4 + list("abcXYZ0123456789+#&._%-") + [" ", "\t", "\n", "\r\n", "，", "。", "“", "😀", "℃"]
    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        assert word_lengths(text) == stock(text), text


def test_a_tokenizer_with_user_words_added_and_deleted():
    tokenizer = jieba.Tokenizer()
    text = "他用B超检查了八一双鹿更名为八一南昌篮球队，研究生命起源"
    assert word_lengths(text, tokenizer) == stock(text, tokenizer)
    tokenizer.add_word("八一双鹿", freq=100000)
    tokenizer.add_word("南昌篮球队")
    tokenizer.del_word("研究生")
    tokenizer.suggest_freq(("检查", "了"), tune=True)
    changed = stock(text, tokenizer)
    assert changed != stock(text)  # the edits matter
    assert word_lengths(text, tokenizer) == changed
