"""Each strategy trains exactly the parameters it should (asserted by name), on a tiny hfpx-bert / GPT-2."""
import pytest
import torch
from transformers import DataCollatorWithPadding

from finetune_testutils import labelled_rows, single_thread, tiny_bert_checkpoint, tiny_gpt2_checkpoint  # noqa: F401
from hf_pretrain_ext.finetune.adapters import add_adapters, adapter_parameter_names, has_adapters, remove_adapters
from hf_pretrain_ext.finetune.args import FinetuneModelArguments, FinetuneTrainingArguments, StrategyArguments
from hf_pretrain_ext.finetune.cli import apply_strategy, load_tokenizer
from hf_pretrain_ext.finetune.data import tokenize_split
from hf_pretrain_ext.finetune.modeling import build_model
from hf_pretrain_ext.finetune.strategies import layer_groups, optimizer_groups
from hf_pretrain_ext.finetune.trainer import FinetuneTrainer


@pytest.fixture(scope="module")
def bert_ckpt(tmp_path_factory):
    return tiny_bert_checkpoint(tmp_path_factory.mktemp("bert") / "ckpt")


@pytest.fixture(scope="module")
def gpt2_ckpt(tmp_path_factory):
    return tiny_gpt2_checkpoint(tmp_path_factory.mktemp("gpt2") / "ckpt")


def make(ckpt, **strategy):
    torch.manual_seed(0)
    model_args = FinetuneModelArguments(model_name_or_path=str(ckpt))
    strategy_args = StrategyArguments(**strategy)
    model, _ = build_model(model_args, strategy_args, ["0", "1"])
    callback = apply_strategy(model, strategy_args)
    return model, callback, load_tokenizer(model_args), strategy_args


def train(model, tok, tmp_path, steps=4, lr=1e-2, callback=None, layer_lr_decay=1.0):
    ds = tokenize_split(labelled_rows(32), tok, {"0": 0, "1": 1}, 32)
    args = FinetuneTrainingArguments(output_dir=str(tmp_path / "run"), max_steps=steps, learning_rate=lr,
                                     warmup_steps=0, per_device_train_batch_size=8, eval_strategy="no",
                                     save_strategy="no", load_best_model_at_end=False, disable_tqdm=True,
                                     logging_steps=1, seed=0, use_cpu=True)
    trainer = FinetuneTrainer(model=model, args=args, data_collator=DataCollatorWithPadding(tok), train_dataset=ds,
                              callbacks=[callback] if callback else None, layer_lr_decay=layer_lr_decay,
                              include_frozen=callback is not None)
    trainer.train()
    return trainer


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(model, before):
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_full_trains_everything(bert_ckpt, tmp_path, capsys):
    model, _, tok, _ = make(bert_ckpt)
    assert "no classification head" in capsys.readouterr().out  # a pretraining checkpoint: fresh head, logged
    names = {n for n, _ in model.named_parameters()}
    assert trainable(model) == names
    before = snapshot(model)
    train(model, tok, tmp_path)
    # everything the forward pass reaches moves (the unused position rows and token type 1 row get no gradient)
    assert changed(model, before) >= names - {"bert.embeddings.token_type_embeddings.weight",
                                              "bert.embeddings.position_embeddings.weight"}


def test_feature_based_trains_scalar_mix_and_head_only(bert_ckpt, tmp_path, capsys):
    model, _, tok, _ = make(bert_ckpt, strategy="feature_based")
    expected = {"scalar_mix.weights", "scalar_mix.gamma", "classifier.weight", "classifier.bias"}
    assert trainable(model) == expected
    assert "70 of" in capsys.readouterr().out  # 3 mix weights + gamma + 32*2 + 2 head
    before = snapshot(model)
    assert torch.equal(before["scalar_mix.weights"], torch.zeros(3)) and float(before["scalar_mix.gamma"]) == 1.0
    train(model, tok, tmp_path)
    assert changed(model, before) == expected  # the mix weights are learned; the encoder never moves


def test_adapters_train_adapters_and_head_and_leave_base_weights(bert_ckpt, tmp_path):
    model, _, tok, _ = make(bert_ckpt, strategy="adapters", adapter_size=4)
    adapters = {f"bert.encoder.layer.{i}.output.dense.adapter.{m}.{w}" for i in range(2) for m in ("down", "up")
                for w in ("weight", "bias")}
    head = {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    assert set(adapter_parameter_names(model)) == adapters
    assert trainable(model) == adapters | head
    before = snapshot(model)
    train(model, tok, tmp_path)
    assert changed(model, before) == adapters | head
    remove_adapters(model)
    assert not has_adapters(model) and set(model.state_dict()) == set(before) - adapters
    base = set(before) - adapters - head
    assert all(torch.equal(model.state_dict()[n], before[n]) for n in base)  # the encoder is untouched


def test_adapters_insert_and_remove_cleanly(bert_ckpt):
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(str(bert_ckpt), num_labels=2).eval()
    keys = list(model.state_dict())
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    reference = model(ids).logits
    add_adapters(model, 8)
    assert torch.allclose(model(ids).logits, reference)  # zero-initialised up-projection: identity at first
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".adapter.up." in n:
                p.normal_()
    assert not torch.allclose(model(ids).logits, reference)
    with pytest.raises(ValueError, match="already has adapters"):
        add_adapters(model, 8)
    remove_adapters(model)
    assert list(model.state_dict()) == keys and torch.allclose(model(ids).logits, reference)


def test_gradual_unfreezing_every_two_steps(bert_ckpt, tmp_path):
    model, callback, tok, _ = make(bert_ckpt, gradual_unfreezing=True, unfreeze_every_n_steps=2)
    head = {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    assert trainable(model) == head  # start: the head only
    depth = layer_groups(model)
    before = snapshot(model)
    train(model, tok, tmp_path, steps=5, callback=callback)
    # groups: 0 embeddings, 1 layer.0, 2 layer.1, 3 head; one more every 2 steps, from the top
    assert callback.schedule == [(2, 2), (4, 3)]
    moved = changed(model, before)
    assert {n for n in moved if depth[n] == 0} == set()  # embeddings: due at step 6, never trained
    assert {n for n, d in depth.items() if d >= 1} - moved <= set()  # layers 0 and 1 and the head trained
    assert trainable(model) == {n for n, d in depth.items() if d >= 1}


def test_gradual_unfreezing_per_epoch(bert_ckpt, tmp_path):
    model, callback, tok, _ = make(bert_ckpt, gradual_unfreezing=True)
    train(model, tok, tmp_path, steps=12, callback=callback)  # 32 examples / 8 = 4 steps per epoch
    assert callback.schedule == [(4, 2), (8, 3), (12, 4)]


def test_discriminative_learning_rates(bert_ckpt, tmp_path):
    model, _, tok, _ = make(bert_ckpt, layer_lr_decay=0.5)
    groups = optimizer_groups(model, 1e-3, 0.01, [n for n, _ in model.named_parameters()], 0.5)
    assert {g["depth"]: g["lr"] for g in groups} == {3: 1e-3, 2: 5e-4, 1: 2.5e-4, 0: 1.25e-4}
    trainer = train(model, tok, tmp_path, steps=2, lr=1e-3, layer_lr_decay=0.5)
    by_depth = {g["depth"]: g["lr"] for g in trainer.optimizer.param_groups}
    for d in range(3):  # the schedule scales every group alike: ratios stay 0.5 per layer
        assert by_depth[d] == pytest.approx(by_depth[3] * 0.5 ** (3 - d))
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for g in trainer.optimizer.param_groups if g["depth"] == 1 for p in g["params"]} == \
        {n for n in names.values() if n.startswith("bert.encoder.layer.0.")}


def test_causal_backbone_with_auxiliary_lm_loss(gpt2_ckpt, tmp_path):
    model, _, tok, _ = make(gpt2_ckpt, lm_loss_weight=0.5)
    assert type(model).__name__ == "BackboneClassifier" and model.pooling == "last" and model.causal
    tok.padding_side = "right"
    enc = tok(["the quick brown fox", "a lazy dog"], padding=True, return_tensors="pt")
    model.train()
    torch.manual_seed(1)
    model.dropout.p = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    out = model(**enc, labels=torch.tensor([0, 1]))
    assert out.lm_loss is not None and torch.allclose(out.loss, out.cls_loss + 0.5 * out.lm_loss)
    # the head reads the last real token: padding changes nothing
    alone = model(**tok(["a lazy dog"], return_tensors="pt"))
    assert torch.allclose(alone.logits[0], out.logits[1], atol=1e-5)
    model.eval()
    assert model(**enc, labels=torch.tensor([0, 1])).lm_loss is None  # eval loss: classification only
    before = snapshot(model)
    trainer = train(model, tok, tmp_path)
    assert changed(model, before) >= {"classifier.weight", "backbone.transformer.h.0.mlp.c_fc.weight",
                                      "backbone.transformer.wte.weight"}
    assert any("lm_loss" in h and "cls_loss" in h for h in trainer.state.log_history)


@pytest.mark.parametrize("strategy", ["feature_based", "adapters"])
def test_causal_backbone_other_strategies(gpt2_ckpt, strategy):
    model, _, _, _ = make(gpt2_ckpt, strategy=strategy, adapter_size=4)
    names = trainable(model)
    assert {"classifier.weight", "classifier.bias"} <= names
    extra = names - {"classifier.weight", "classifier.bias"}
    if strategy == "feature_based":
        assert extra == {"scalar_mix.weights", "scalar_mix.gamma"}
    else:
        assert extra == {f"backbone.transformer.h.{i}.mlp.adapter.{m}.{w}" for i in range(2) for m in ("down", "up")
                         for w in ("weight", "bias")}
