"""Small helpers shared by the tests (tiny corpora, a tiny trained tokenizer, quick CLI arguments)."""
import functools
import os
from pathlib import Path

WORDS = ("the quick brown fox jumps over the lazy dog while seven wizards quietly hex a jovial pack of "
         "boxing kangaroos under pale northern lights near an old stone bridge").split()


def make_corpus(path, n_docs=60, words_per_doc=40, blank_lines=True, seed=0):
    """Write a deterministic English-like corpus; documents separated by blank lines (or one per line)."""
    import random
    rng = random.Random(seed)
    docs = [" ".join(rng.choice(WORDS) for _ in range(words_per_doc)).capitalize() + "." for _ in range(n_docs)]
    Path(path).write_text(("\n\n" if blank_lines else "\n").join(docs) + "\n", encoding="utf-8")
    return docs


@functools.lru_cache(maxsize=None)
def tiny_tokenizer(vocab_size=200):
    from datasets import Dataset

    from hf_pretrain_ext.data.tokenizer import train_wordpiece
    text = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] * 4
    return train_wordpiece(Dataset.from_dict({"text": text})["text"], vocab_size)


def quick_args(out, *extra, fresh=True):
    """CLI arguments for a few-second run of the default job (`fresh`: a tiny model from scratch)."""
    model = ["--tokenizer_vocab_size", "400", "--config_overrides",
             "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64"] if fresh else []
    return ["--output_dir", str(out), "--max_steps", "4", "--logging_steps", "2", "--save_steps", "100",
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--max_seq_length", "64",
            "--max_eval_samples", "16", "--disable_tqdm", "true", *model, *extra]


# ../shared/data beside the checkout, or wherever HFPX_DATA points (a clone elsewhere)
SHARED_DATA = Path(os.environ.get("HFPX_DATA") or Path(__file__).resolve().parent.parent.parent / "shared" / "data")


def shared_lines(relative, n, min_chars=1):
    """The first `n` non-blank lines (at least min_chars long) of a file under ../shared/data; skips the test
    when the folder is absent."""
    import pytest
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} not available (set HFPX_DATA to the folder holding the shared data sets)")
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if len(line) >= min_chars:
                lines.append(line)
                if len(lines) == n:
                    break
    return lines


@functools.lru_cache(maxsize=None)
def zh_tokenizer(vocab_size=3000, n_lines=600):
    """A BERT-Chinese-style WordPiece tokenizer trained on the fly on real Chinese text (no Hub download)."""
    from hf_pretrain_ext.data.tokenizer import train_wordpiece
    return train_wordpiece(shared_lines("zh_pretrain/CLUECorpusSmall_sampled.txt", n_lines), vocab_size)


@functools.lru_cache(maxsize=None)
def tiny_bpe_tokenizer(vocab_size=300, sentinels=False, seq2seq=False):
    """A byte-level BPE (bos = eos = <|endoftext|>, <pad>, <mask>; with seq2seq BART's <s>, <pad>, </s>, <unk>,
    <mask>) trained on sentences of WORDS."""
    import random

    from hf_pretrain_ext.collators import add_sentinel_tokens
    from hf_pretrain_ext.data.tokenizer import train_byte_bpe
    rng = random.Random(0)
    text = [" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "." for _ in range(200)]
    tok = train_byte_bpe(text, vocab_size, seq2seq)
    if sentinels:
        add_sentinel_tokens(tok)
    return tok


def english_documents(n_docs, sentences=(2, 6), words=(4, 12), seed=0):
    """Documents of several sentences ending in '.', '!' or '?'."""
    import random
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))).capitalize() + rng.choice(".!?")
                 for _ in range(rng.randint(*sentences))]
        docs.append(" ".join(sents))
    return docs


def train_losses(model, batch, steps, lr):
    """Losses of `steps` Adam steps of `model` on one fixed batch (a dict of model inputs)."""
    import torch
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses
