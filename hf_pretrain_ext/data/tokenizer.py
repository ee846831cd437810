"""Training a tokenizer on the fly from the training texts (no Hub download).

WordPiece for BERT-style encoders (`##` continuation, so whole-word masking can find word starts) and byte-level
BPE for GPT-style decoders (one <|endoftext|> as bos, eos and unk, as GPT-2) and for encoder-decoders (BART's
layout: <s>, <pad>, </s>, <unk>, <mask> as ids 0-4). An encoder-decoder needs bos != eos: BART's labels start with
bos and generation starts from eos, so with one token for both, greedy decoding stops at its first step. The result
is a transformers tokenizer that saves with `save_pretrained` and loads back with `AutoTokenizer`.

Determinism: the same texts and settings give a byte-identical `tokenizer.json` in any process. The Rust WordPiece
trainer (tokenizers' BPE trainer with a `##` prefix) numbers each `##c` symbol when it first meets it while walking
its word-count hash map, whose order is seeded afresh in every process; merges with equal counts are then ordered
by those numbers, so two runs learned different vocabularies. Here every `##c` the corpus can need is declared up
front, in code-point order, so the numbering is fixed before the trainer walks anything (one extra pass over the
texts, collecting their characters in C: a few percent of the trainer's time). Byte-level BPE needs no help: its
whole alphabet is the 256 byte symbols, numbered in order. The vocabulary is then renumbered as the stock trainer
lays it out (specials, alphabet, `##` alphabet, merges) and only the real specials stay special.
"""
import tokenizers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerFast

from .loading import iter_texts

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
GPT_SPECIALS = ["<|endoftext|>", "<pad>", "<mask>"]
SEQ2SEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def _reiterable(texts):
    """`texts` (strings, or batches of strings) in a form that can be read twice, as WordPiece training does: a
    one-shot iterator is read into memory, anything else is used as it is."""
    return list(texts) if iter(texts) is texts else texts


def continuation_alphabet(chars, normalizer, pre_tokenizer, prefix="##"):
    """The `##c` symbols a word can contain, for the characters `chars` of a corpus, sorted by code point: the
    normalised forms of each character that the pre-tokenizer leaves inside a word (not punctuation, CJK or
    space). A character the corpus has only at word starts adds a symbol the stock trainer would not have (24 of
    8000 on the sample corpus): no merge takes it, and it lets a new word with that character inside be cut into
    pieces instead of becoming one [UNK]."""
    chars = sorted(chars)
    inner = set()
    # after a letter, c stays in the word unless the pre-tokenizer splits it off
    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(" ".join("a" + c for c in chars))):
        inner.update(word[1:] if word.startswith("a") else "")
    # a character that normalises to several (a dotted capital) continues itself even at a word start
    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(" ".join(chars))):
        inner.update(word[1:])
    return [prefix + c for c in sorted(inner)]


def train_wordpiece(texts, vocab_size, lowercase=True, progress=False):
    """BERT-style WordPiece: BERT normaliser and pre-tokeniser, [CLS] A [SEP] (B [SEP]) templates. `texts`: strings
    or batches of strings (a list, a Dataset column, anything iterable; an iterator is read into memory)."""
    texts = _reiterable(texts)
    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase,
                                            strip_accents=None)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    chars = set()
    for item in _progress(texts, progress, "tokenizer: reading the alphabet"):
        if isinstance(item, str):
            chars.update(item)
        else:  # a batch of texts
            chars.update(*item)
    inner = continuation_alphabet(chars, normalizer, pre_tokenizer)
    while True:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
        tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=BERT_SPECIALS + inner,
                                            continuing_subword_prefix="##", show_progress=progress)
        tok.train_from_iterator(_progress(texts, progress, "tokenizer: training WordPiece"), trainer=trainer)
        trained = tok.get_vocab(with_added_tokens=False)
        # a `##c` the trainer numbered itself (none seen with the BERT normaliser): declare it too and train again
        stray = {t for t in trained if t.startswith("##") and len(t) == 3} - set(inner)
        if not stray:
            break
        inner = sorted(set(inner) | stray)
    tok = Tokenizer(models.WordPiece(vocab=_stock_layout(trained, len(BERT_SPECIALS), len(inner)),
                                     unk_token="[UNK]", max_input_chars_per_word=100, continuing_subword_prefix="##"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.add_special_tokens(BERT_SPECIALS)
    tok.decoder = decoders.WordPiece(prefix="##")
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def _stock_layout(vocab, n_specials, n_inner):
    """Renumber a vocabulary trained with the `##` alphabet as extra specials (ids n_specials .. +n_inner) the way
    the stock trainer lays it out: specials, alphabet (the single characters), `##` alphabet, then the merges in
    the order they were learnt."""
    def rank(item):
        token, i = item
        group = 0 if i < n_specials else 2 if i < n_specials + n_inner else 1 if len(token) == 1 else 3
        return group, i
    return {token: new for new, (token, _) in enumerate(sorted(vocab.items(), key=rank))}


def _progress(items, enabled, desc):
    """A progress bar over batches of texts (their count, when the input has a length)."""
    if not enabled:
        return items
    total = getattr(items, "total_batches", None)
    return tqdm(items, desc=desc, unit=" batches of texts", total=total, mininterval=2.0)


class _Batches:
    """Re-iterable batches of a dataset's texts, with their count for the progress bar."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.total_batches = -(-len(dataset) // 1000) if hasattr(dataset, "__len__") else None

    def __iter__(self):
        return iter_texts(self.dataset)


def train_byte_bpe(texts, vocab_size, seq2seq=False, progress=False):
    """Byte-level BPE: GPT-2's specials (<|endoftext|>, <pad>, <mask>), or BART's with `seq2seq`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # <mask> swallows the space before it (as RoBERTa's and BART's): BART masks whole words with their leading space
    # (Ġ), so "released in <mask> and" must encode as "Ġin <mask> Ġand", not with a stray "Ġ" before the mask
    specials = [tokenizers.AddedToken(t, special=True, lstrip=t == "<mask>")
                for t in (SEQ2SEQ_SPECIALS if seq2seq else GPT_SPECIALS)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=progress,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_progress(texts, progress, "tokenizer: training byte-level BPE"), trainer=trainer)
    # offsets without the space a token carries (Ġcat -> the span of "cat"), so words can be found from them
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    if seq2seq:
        names = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    else:
        names = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=1024, **names)


def train_tokenizer(train_dataset, kind, vocab_size, lowercase=True, seq2seq=False, progress=False):
    """Train a tokenizer of `kind` ('wordpiece' or 'bpe', with BART's specials if `seq2seq`) on the 'text'
    column of `train_dataset`; `progress` shows a bar per pass over the texts."""
    texts = _Batches(train_dataset)  # WordPiece reads the texts twice
    if kind == "wordpiece":
        return train_wordpiece(texts, vocab_size, lowercase, progress=progress)
    if kind == "bpe":
        return train_byte_bpe(texts, vocab_size, seq2seq, progress=progress)
    raise ValueError(f"unknown tokenizer kind {kind!r}")
