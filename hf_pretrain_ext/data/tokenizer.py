"""Training a tokenizer on the fly from the training texts (no Hub download).

WordPiece for BERT-style encoders (`##` continuation, so whole-word masking can find word starts) and byte-level
BPE for GPT-style decoders (one <|endoftext|> as bos, eos and unk, as GPT-2) and for encoder-decoders (BART's
layout: <s>, <pad>, </s>, <unk>, <mask> as ids 0-4). An encoder-decoder needs bos != eos: BART's labels start with
bos and generation starts from eos, so with one token for both, greedy decoding stops at its first step. The result
is a transformers tokenizer that saves with `save_pretrained` and loads back with `AutoTokenizer`.
"""
import tokenizers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .loading import iter_texts

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
GPT_SPECIALS = ["<|endoftext|>", "<pad>", "<mask>"]
SEQ2SEQ_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_wordpiece(texts, vocab_size, lowercase=True):
    """BERT-style WordPiece: BERT normaliser and pre-tokeniser, [CLS] A [SEP] (B [SEP]) templates."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase,
                                                strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=BERT_SPECIALS,
                                        continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def train_byte_bpe(texts, vocab_size, seq2seq=False):
    """Byte-level BPE: GPT-2's specials (<|endoftext|>, <pad>, <mask>), or BART's with `seq2seq`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # <mask> swallows the space before it (as RoBERTa's and BART's): BART masks whole words with their leading space
    # (Ġ), so "released in <mask> and" must encode as "Ġin <mask> Ġand", not with a stray "Ġ" before the mask
    specials = [tokenizers.AddedToken(t, special=True, lstrip=t == "<mask>")
                for t in (SEQ2SEQ_SPECIALS if seq2seq else GPT_SPECIALS)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    if seq2seq:
        names = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    else:
        names = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=1024, **names)


def train_tokenizer(train_dataset, kind, vocab_size, lowercase=True, seq2seq=False):
    """Train a tokenizer of `kind` ('wordpiece' or 'bpe', with BART's specials if `seq2seq`) on the 'text'
    column of `train_dataset`."""
    texts = iter_texts(train_dataset)
    if kind == "wordpiece":
        return train_wordpiece(texts, vocab_size, lowercase)
    if kind == "bpe":
        return train_byte_bpe(texts, vocab_size, seq2seq)
    raise ValueError(f"unknown tokenizer kind {kind!r}")
