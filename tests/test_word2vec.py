"""hfpx-word2vec (CBOW / skip-gram with negative sampling): the collator draws pairs as word2vec.c does (reduced
windows inside one document, no special tokens, subsampling by its formula, noise from unigram^0.75: checked
statistically), the same example draws the same pairs, the loss is the negative-sampling formula, save/reload
through Auto*, the loss falls, and word vectors export in word2vec's text format."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hf_pretrain_ext  # noqa: F401  (registers hfpx-word2vec)
from hf_pretrain_ext.collators.word2vec import Word2VecCollator, token_counts
from hf_pretrain_ext.models import HfpxWord2VecConfig, HfpxWord2VecForPreTraining

V, SEP, PAD = 30, 1, 0


def collator(architecture="skipgram", counts=None, **kw):
    counts = np.arange(V, dtype=np.int64) + 1 if counts is None else counts
    options = dict(special_ids=(PAD, SEP), separator_ids=(SEP,), architecture=architecture, window=3,
                   negatives=4, subsample=0.0)
    return Word2VecCollator(counts, **{**options, **kw}, seed=7)


def test_skipgram_pairs_stay_in_the_window_and_the_document():
    c = collator()
    doc_a, doc_b = list(range(2, 12)), list(range(12, 20))
    ids = doc_a + [SEP] + doc_b + [PAD] * 3
    batch = c([{"input_ids": ids, "example_index": i} for i in range(50)])
    centre, target = batch["input_ids"][:, 0].numpy(), batch["labels"].numpy()
    where = {t: (0, i) for i, t in enumerate(doc_a)} | {t: (1, i) for i, t in enumerate(doc_b)}
    gaps = []
    for a, b in zip(centre, target):
        assert a in where and b in where, (a, b)  # no special token on either side
        (da, ia), (db, ib) = where[int(a)], where[int(b)]
        assert da == db and 1 <= abs(ia - ib) <= 3  # same document, inside the largest window
        gaps.append(abs(ia - ib))
    counts = np.bincount(gaps, minlength=4)[1:]
    assert counts[0] > counts[1] > counts[2] > 0  # reduced windows weigh near words more
    assert batch["negatives"].shape == (len(target), 4)


def test_cbow_inputs_are_the_centres_context():
    c = collator("cbow")
    doc = list(range(2, 14))
    batch = c([{"input_ids": doc, "example_index": 3}])
    for inputs, mask, centre in zip(batch["input_ids"], batch["input_mask"], batch["labels"]):
        i = doc.index(int(centre))
        words = [doc.index(int(w)) for w in inputs[mask]]
        assert words and all(1 <= abs(j - i) <= 3 for j in words)
        b = max(abs(j - i) for j in words)  # the window drawn: every word within it is there
        assert sorted(words) == [j for j in range(i - b, i + b + 1) if j != i and 0 <= j < len(doc)]


def test_noise_words_follow_the_unigram_to_the_three_quarters():
    counts = np.zeros(V, dtype=np.int64)
    counts[2:] = np.random.default_rng(0).integers(1, 500, V - 2)
    c = collator(counts=counts)
    draws = c.draw_noise(np.random.default_rng(1), (200_000,))
    observed = np.bincount(draws, minlength=V)
    expected = counts.astype(float) ** 0.75
    expected = expected / expected.sum() * len(draws)
    assert observed[PAD] == observed[SEP] == 0
    keep = expected > 0
    chi2 = (((observed - expected) ** 2)[keep] / expected[keep]).sum()
    # 27 degrees of freedom: the 0.999 quantile is 55.5; unigram^1 or uniform noise gives thousands
    assert chi2 < 55.5, chi2
    uniform = np.where(keep, len(draws) / keep.sum(), 0)
    assert (((observed - uniform) ** 2)[keep] / uniform[keep]).sum() > 1000


def test_subsampling_keeps_frequent_words_at_word2vecs_rate():
    counts = np.full(V, 10, dtype=np.int64)
    counts[[PAD, SEP]] = 0
    counts[5] = 10_000  # a very frequent token
    c = collator(counts=counts, subsample=1e-2)
    f = 10_000 / counts.sum()
    want = (np.sqrt(f / 1e-2) + 1) * 1e-2 / f
    assert c.keep[5] == pytest.approx(want) and c.keep[6] == 1.0
    stream = [5, 6] * 2000
    batch = c([{"input_ids": stream, "example_index": 0}])
    seen = np.unique(np.concatenate([batch["input_ids"][:, 0].numpy(), batch["labels"].numpy()]))
    assert set(seen) <= {5, 6}
    rng = np.random.default_rng(3)
    kept = (rng.random(200_000) < c.keep[5]).mean()
    assert abs(kept - want) < 0.01


def test_the_same_example_draws_the_same_pairs():
    c = collator()
    feats = [{"input_ids": list(range(2, 25)), "example_index": i} for i in (4, 9)]
    a, b = c(feats), c(feats[::-1])
    n = len(c([feats[0]])["labels"])
    assert a["labels"][:n].equal(b["labels"][-n:]) and a["negatives"][:n].equal(b["negatives"][-n:])
    c.set_epoch(1)
    assert not c(feats)["negatives"].equal(a["negatives"])


def test_token_counts():
    assert token_counts([[1, 2, 2], [2, 5]], 6).tolist() == [0, 1, 3, 0, 0, 1]


def model(architecture="skipgram", seed=0):
    torch.manual_seed(seed)
    return HfpxWord2VecForPreTraining(HfpxWord2VecConfig(vocab_size=V, hidden_size=8, architecture=architecture))


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_loss_is_the_negative_sampling_formula(architecture):
    m = model(architecture)
    with torch.no_grad():
        m.output_embeddings.weight.normal_()  # word2vec starts them at zero; give the formula something to do
    batch = collator(architecture)([{"input_ids": list(range(2, 20)), "example_index": 0}])
    batch["labels"][0] = -100  # an ignored pair
    loss = m(**batch).loss
    want, n = 0.0, 0
    for inputs, mask, label, noise in zip(batch["input_ids"], batch["input_mask"], batch["labels"],
                                          batch["negatives"]):
        if label < 0:
            continue
        h = m.word2vec.embeddings.weight[inputs[mask]].mean(0)
        u = m.output_embeddings.weight
        want = want - F.logsigmoid(u[label] @ h)
        want = want - sum(F.logsigmoid(-(u[k] @ h)) for k in noise if k != label)
        n += 1
    torch.testing.assert_close(loss, want / n, rtol=1e-5, atol=1e-6)


def test_save_reload_and_export(tmp_path):
    from transformers import AutoModel, AutoModelForPreTraining
    from hf_pretrain_ext.models.modeling_hfpx_word2vec import save_word2vec_format
    m = model()
    m.save_pretrained(tmp_path)
    again = AutoModelForPreTraining.from_pretrained(tmp_path)
    assert type(again) is HfpxWord2VecForPreTraining and again.word_vectors().equal(m.word_vectors())
    base = AutoModel.from_pretrained(tmp_path)
    ids = torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(base(ids).last_hidden_state[0], m.word_vectors()[[3, 4, 5]])

    class Tok:
        all_special_ids = [PAD, SEP]

        def get_vocab(self):
            return {f"w{i}": i for i in range(V)}
    written = save_word2vec_format(m.word_vectors(), Tok(), tmp_path / "vectors.txt")
    lines = (tmp_path / "vectors.txt").read_text().splitlines()
    assert written == V - 2 and lines[0] == f"{V - 2} 8" and lines[1].split()[0] == "w2"
    assert np.allclose([float(x) for x in lines[1].split()[1:]], m.word_vectors()[2].numpy(), atol=1e-5)


def test_loss_falls_in_a_few_dozen_steps():
    m = model(seed=1)
    c = collator()
    g = np.random.default_rng(0)
    # two topics whose words co-occur only with each other
    docs = [list(g.choice(np.arange(2, 16) if i % 2 else np.arange(16, 30), 20)) for i in range(40)]
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    losses = []
    for step in range(40):
        batch = c([{"input_ids": d, "example_index": step * 40 + i} for i, d in enumerate(docs)])
        loss = m(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0], losses[::10]
    vec = F.normalize(m.word_vectors(), dim=-1)
    same = (vec[2:16] @ vec[2:16].T).mean()
    cross = (vec[2:16] @ vec[16:30].T).mean()
    assert same > cross + 0.1  # the topics separate
