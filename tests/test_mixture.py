"""Mixtures: the T5 rate formula with cap and temperature, the sampler over many draws, objective mixtures,
per-component loss in the Trainer, and bad mixtures."""
import numpy as np
import pytest
import torch

from hf_pretrain_ext.collators import build_collator, build_mixture, mixture_rates
from hfpx_testutils import tiny_bpe_tokenizer


@pytest.mark.parametrize("sizes, cap, temperature", [((100, 1000, 10000), None, 1.0), ((100, 1000, 10000), 2000, 1.0),
                                                     ((100, 1000, 10000), 2000, 2.0), ((5, 7, 3e6, 1), 2**16, 8.0)])
def test_rates_equal_the_formula(sizes, cap, temperature):
    capped = [min(n, cap) if cap else n for n in sizes]
    r = [c / sum(capped) for c in capped]
    r = [x ** (1 / temperature) for x in r]
    expected = [x / sum(r) for x in r]
    np.testing.assert_allclose(mixture_rates(sizes, cap, temperature), expected, rtol=1e-12)


def test_examples():
    np.testing.assert_allclose(mixture_rates([100, 1000, 10000], cap=1000), [100 / 2100, 1000 / 2100, 1000 / 2100])
    np.testing.assert_allclose(mixture_rates([1, 4], temperature=2.0), [1 / 3, 2 / 3])


def test_dataset_mixture_sampler_honours_rates():
    sizes = {"a": 50, "b": 500, "c": 5000}
    comps = {k: [{"input_ids": [i], "source": k} for i in range(n)] for k, n in sizes.items()}
    mix = build_mixture(comps, rates="proportional", cap=1000, temperature=2.0, seed=0, num_examples=60000)
    rates = mixture_rates(list(sizes.values()), 1000, 2.0)
    np.testing.assert_allclose(mix.rates, rates)
    counts = mix.counts()
    np.testing.assert_allclose(counts / counts.sum(), rates, atol=4 * np.sqrt(rates * (1 - rates) / 60000).max())
    ex = [mix[i] for i in range(len(mix))]
    assert [e["example_index"] for e in ex[:5]] == list(range(5))
    assert all(e["source"] == mix.names[e["mixture_component"]] for e in ex)
    # a component used up starts a fresh shuffle: every example of 'a' is seen before any is seen twice
    a_rows = [e["input_ids"][0] for e in ex if e["source"] == "a"]
    assert sorted(a_rows[:50]) == list(range(50))
    again = build_mixture(comps, rates="proportional", cap=1000, temperature=2.0, seed=0, num_examples=60000)
    assert np.array_equal(again.component, mix.component) and np.array_equal(again.rows, mix.rows)


def test_explicit_rates_and_bad_mixtures():
    comps = {"a": [{"input_ids": [1]}] * 3, "b": [{"input_ids": [2]}] * 5}
    mix = build_mixture(comps, rates={"a": 0.25, "b": 0.75}, num_examples=8000, seed=1)
    assert abs(mix.counts()[0] / 8000 - 0.25) < 0.03
    with pytest.raises(ValueError, match="sum to 1"):
        build_mixture(comps, rates={"a": 0.5, "b": 0.6})
    with pytest.raises(ValueError, match="sum to 1"):
        build_mixture(comps, rates=[-0.5, 1.5])
    with pytest.raises(ValueError, match="have no examples"):
        build_mixture({"a": [], "b": [{"input_ids": [1]}]})
    with pytest.raises(ValueError, match="unknown mixture components"):
        build_mixture(comps, rates={"a": 0.5, "z": 0.5})
    with pytest.raises(ValueError, match="temperature"):
        mixture_rates([1, 2], temperature=0)


def test_objective_mixture_collator():
    tok = tiny_bpe_tokenizer(sentinels=True)
    colls = {"bart": build_collator("bart", tok), "t5": build_collator("t5", tok)}
    mix = build_mixture(colls, rates={"bart": 0.3, "t5": 0.7}, seed=5)
    rng = np.random.default_rng(0)
    feats = [{"input_ids": rng.integers(10, 250, size=int(rng.integers(8, 40))).tolist(), "example_index": i}
             for i in range(4000)]
    assigned = mix.assign(feats)
    assert abs((assigned == 0).mean() - 0.3) < 0.03
    batch = mix(feats[:16])
    assert set(batch) == {"input_ids", "attention_mask", "labels", "decoder_input_ids", "mixture_component"}
    tags = batch["mixture_component"]
    assert len(tags) == 16 and set(tags.tolist()) <= {0, 1}
    # each row is exactly what its own objective's collator makes of that example
    order = [i for m in (0, 1) for i in range(16) if assigned[i] == m]
    for row, i in enumerate(order):
        alone = colls[mix.component_names[int(tags[row])]]([feats[i]])
        n = alone["input_ids"].shape[1]
        assert torch.equal(batch["input_ids"][row, :n], alone["input_ids"][0])
    assert torch.equal(mix(feats[:16])["input_ids"], batch["input_ids"])  # deterministic


def test_trainer_logs_per_component_loss_and_sums_to_the_batch_loss(tmp_path):
    """The mixture loss path: parts are per-token means per component, and their token-weighted sum is the loss."""
    from transformers import TrainingArguments

    from hf_pretrain_ext.collators.mixture import TaggedCollator
    from hf_pretrain_ext.models import HfpxBartConfig, HfpxBartForConditionalGeneration
    from hf_pretrain_ext.trainer import PretrainTrainer
    tok = tiny_bpe_tokenizer(sentinels=True)
    torch.manual_seed(0)
    model = HfpxBartForConditionalGeneration(HfpxBartConfig(
        vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, dropout=0.0, max_position_embeddings=128,
        pad_token_id=tok.pad_token_id, decoder_start_token_id=tok.eos_token_id)).train()
    coll = TaggedCollator(build_collator("bart", tok), ["small", "big"])
    rng = np.random.default_rng(0)
    feats = [{"input_ids": rng.integers(10, 250, size=20).tolist(), "example_index": i, "mixture_component": i % 2}
             for i in range(6)]
    batch = coll(feats)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = PretrainTrainer(model=model, args=args, data_collator=coll)
    loss = trainer.compute_loss(model, dict(batch))
    plain = model(**{k: v for k, v in batch.items() if k != "mixture_component"}).loss
    torch.testing.assert_close(loss, plain, rtol=1e-5, atol=1e-6)
    n = [int((batch["labels"][batch["mixture_component"] == c] != -100).sum()) for c in (0, 1)]
    parts = {k: trainer._parts_sum[k] for k in ("small_loss", "big_loss")}
    torch.testing.assert_close(torch.tensor((parts["small_loss"] * n[0] + parts["big_loss"] * n[1]) / (n[0] + n[1])),
                               plain.detach(), rtol=1e-5, atol=1e-6)
