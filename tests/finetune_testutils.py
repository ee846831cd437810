"""Tiny checkpoints and labelled files for the fine-tuning tests (seeded, a few KB each)."""
import random
from pathlib import Path

import pytest

from hfpx_testutils import WORDS, tiny_tokenizer

POSITIVE, NEGATIVE = WORDS[:10], WORDS[10:20]


def tiny_bert_checkpoint(path, stock=False, layers=2):
    """A pretraining-style checkpoint (MLM head, no classifier): hfpx-bert, or stock BertForMaskedLM."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from hf_pretrain_ext.models import HfpxBertConfig, HfpxBertForMaskedLM
    torch.manual_seed(0)
    tok = tiny_tokenizer()
    kwargs = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    model = BertForMaskedLM(BertConfig(**kwargs)) if stock else HfpxBertForMaskedLM(HfpxBertConfig(**kwargs))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return Path(path)


def tiny_gpt2_checkpoint(path):
    """A GPT-2 LM (tied embeddings) with a byte-level BPE tokenizer trained on the test words."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from hf_pretrain_ext.data.tokenizer import train_byte_bpe
    torch.manual_seed(0)
    tok = train_byte_bpe([" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] * 4, 300)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return Path(path)


def labelled_rows(n, seed=0, labels=("0", "1"), pair=False):
    """(text, pair or None, label): the label decides which half of the vocabulary the words come from."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        y = rng.randrange(len(labels))
        pool = POSITIVE if y % 2 else NEGATIVE
        text = " ".join(rng.choice(pool) for _ in range(6))
        rows.append((text, " ".join(rng.choice(pool) for _ in range(4)) if pair else None, labels[y]))
    return rows


def write_tsv(path, rows, header=("sentence", "label")):
    lines = ["\t".join(header)] if header else []
    lines += ["\t".join([r[0], r[2]]) for r in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is 10-20x faster than two fighting ones."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
