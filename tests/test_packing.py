"""#19: `--packing documents` (whole documents per example, document_ids from the collators), the unpadded
encoder (loss and gradients of a packed row equal its documents run alone), masking-rate schedules (rates at
chosen steps, exact resume), and the CLI's one-line errors."""
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict

from hf_pretrain_ext.cli import main
from hf_pretrain_ext.collators import build_collator
from hf_pretrain_ext.collators.schedule import RateSchedule, ScheduledCollator
from hf_pretrain_ext.data.grouping import tokenize_and_group
from hf_pretrain_ext.models import HfpxBertConfig, HfpxBertForMaskedLM
from hf_pretrain_ext.models.unpadded import attention_path, flash_varlen
from hfpx_testutils import WORDS, make_corpus, quick_args, tiny_tokenizer

SMALL = dict(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def documents(n=40, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 3, 8, 20, 70]))) for _ in range(n)]


def packed(texts, length=32, **kw):
    tok = tiny_tokenizer()
    return tok, tokenize_and_group(DatasetDict({"train": Dataset.from_dict({"text": texts})}), tok, length,
                                   load_from_cache=False, packing="documents", **kw)["train"]


def test_examples_hold_whole_wrapped_documents_in_order_and_nothing_is_lost():
    texts = documents()
    tok, ds = packed(texts)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    pieces = []
    for ex in ds:
        ids, lengths = ex["input_ids"], ex["document_lengths"]
        assert len(ids) <= 32 and sum(lengths) == len(ids)
        at = 0
        for n in lengths:
            piece = ids[at:at + n]
            assert piece[0] == cls and piece[-1] == sep and cls not in piece[1:-1] and sep not in piece[1:-1]
            pieces.append(piece[1:-1])
            at += n
    expected = []
    for t in texts:  # long documents are cut into pieces of length - 2, in order
        ids = tok(t, add_special_tokens=False)["input_ids"]
        expected += [ids[i:i + 30] for i in range(0, len(ids), 30)]
    assert sorted(pieces) == sorted(expected)  # every piece once (best fit reorders them)
    # best fit leaves little room: padding to 32 would be a small share of the tokens
    assert 1 - sum(len(ex["input_ids"]) for ex in ds) / (32 * len(ds)) < 0.06


@pytest.mark.parametrize("objective", ["mlm", "wwm", "ngram", "span"])
def test_collators_emit_document_ids_that_follow_the_pieces(objective):
    tok, ds = packed(documents(seed=1))
    collator = build_collator(objective, tok, seed=3, mlm_probability=0.3)
    features = [ds[i] for i in range(8)]
    batch = collator(features)
    docs, ids = batch["document_ids"].numpy(), batch["input_ids"].numpy()
    assert docs.shape == ids.shape
    real = batch["attention_mask"].numpy().astype(bool)
    assert ((docs >= 0) == real).all()
    for row in range(len(features)):
        d = docs[row][real[row]]
        starts = np.flatnonzero(np.diff(d, prepend=-1) != 0)
        assert (ids[row][starts] == tok.cls_token_id).all()  # every document starts at its own [CLS]
        assert list(np.unique(d)) == list(range(len(features[row]["document_lengths"])))
        if objective != "span":  # span merges masked runs, which shortens documents but keeps their order
            assert list(np.bincount(d)) == features[row]["document_lengths"]


def _loss_and_grads(model, **inputs):
    model.zero_grad()
    out = model(**inputs)
    out.loss.backward()
    return out.loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("unpadded", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_packed_row_loss_and_gradients_equal_its_documents_one_by_one(unpadded, fused, monkeypatch):
    """fp32 CPU, SDPA: the packed (and unpadded) batch vs each document alone, summed with the same divisor."""
    monkeypatch.setenv("HFPX_UNPAD_ATTENTION", "sdpa")
    tok, ds = packed(documents(seed=2), 48)
    batch = build_collator("mlm", tok, seed=5, mlm_probability=0.3)([ds[i] for i in range(4)])
    torch.manual_seed(0)
    model = HfpxBertForMaskedLM(HfpxBertConfig(use_fused_loss=fused, unpadded=unpadded,
                                               attn_implementation="sdpa", **SMALL)).train()
    n = int((batch["labels"] != -100).sum())
    loss, grads = _loss_and_grads(model, input_ids=batch["input_ids"], document_ids=batch["document_ids"],
                                  labels=batch["labels"], num_items_in_batch=n)
    model.zero_grad()
    total = 0.0
    for row in range(4):
        for d in range(int(batch["document_ids"][row].max()) + 1):
            at = batch["document_ids"][row] == d
            out = model(input_ids=batch["input_ids"][row][at][None], labels=batch["labels"][row][at][None],
                        num_items_in_batch=n)
            out.loss.backward()
            total += float(out.loss)
    torch.testing.assert_close(float(loss), total, rtol=1e-5, atol=1e-6)
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)


def test_unpadded_equals_padded_packed_logits_without_labels():
    tok, ds = packed(documents(seed=4), 48)
    batch = build_collator("mlm", tok, seed=1)([ds[i] for i in range(3)])
    torch.manual_seed(0)
    model = HfpxBertForMaskedLM(HfpxBertConfig(**SMALL)).eval()
    with torch.no_grad():
        padded = model(input_ids=batch["input_ids"], document_ids=batch["document_ids"]).logits
        model.config.unpadded = True
        unpadded = model(input_ids=batch["input_ids"], document_ids=batch["document_ids"]).logits
    real = batch["document_ids"] >= 0
    torch.testing.assert_close(unpadded[real], padded[real], rtol=1e-5, atol=1e-5)


def test_attention_path_override(monkeypatch):
    x = torch.zeros(1)
    monkeypatch.setenv("HFPX_UNPAD_ATTENTION", "sdpa")
    assert attention_path(x) == "sdpa"
    monkeypatch.setenv("HFPX_UNPAD_ATTENTION", "flash")
    with pytest.raises(RuntimeError, match="flash-attn"):
        attention_path(x)  # a CPU fp32 tensor can never take the flash path
    monkeypatch.setenv("HFPX_UNPAD_ATTENTION", "auto")
    assert attention_path(x) == "sdpa"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or flash_varlen() is None, reason="needs CUDA and flash-attn")
def test_flash_varlen_path_matches_documents_alone(monkeypatch):
    monkeypatch.setenv("HFPX_UNPAD_ATTENTION", "flash")
    tok, ds = packed(documents(seed=2), 48)
    batch = {k: v.cuda() for k, v in build_collator("mlm", tok, seed=5)([ds[i] for i in range(4)]).items()}
    torch.manual_seed(0)
    model = HfpxBertForMaskedLM(HfpxBertConfig(unpadded=True, **SMALL)).cuda().to(torch.bfloat16).eval()
    with torch.no_grad():
        flash = model(input_ids=batch["input_ids"], document_ids=batch["document_ids"]).logits.float()
        monkeypatch.setenv("HFPX_UNPAD_ATTENTION", "sdpa")
        sdpa = model(input_ids=batch["input_ids"], document_ids=batch["document_ids"]).logits.float()
    real = batch["document_ids"] >= 0
    torch.testing.assert_close(flash[real], sdpa[real], rtol=2e-2, atol=2e-2)


def test_schedules_give_the_rates_at_chosen_steps():
    linear = RateSchedule.parse("linear:0.3,0.15")
    assert [round(linear.at(p), 6) for p in (0, 0.5, 1, 2)] == [0.3, 0.225, 0.15, 0.15]
    step = RateSchedule.parse("step:0.3,0.15@0.6,0.05@0.9")
    assert [step.at(p) for p in (0, 0.59, 0.6, 0.89, 0.9, 1)] == [0.3, 0.3, 0.15, 0.15, 0.05, 0.05]
    held = RateSchedule.parse("linear:0.3,0.15@0.8")
    assert round(held.at(0.4), 6) == 0.225 and held.at(0.9) == 0.15
    assert RateSchedule.parse("0.2").constant and RateSchedule.parse(0.2).start == 0.2
    for bad in ("linear:0.3", "step:0.3,0.15", "cosine:0.3,0.1", "linear:0.3,1.5", "linear:0.3,0.2@0.5,0.1@0.4",
                "abc", "0"):
        with pytest.raises(ValueError, match="--mlm_probability"):
            RateSchedule.parse(bad)


def test_scheduled_collator_follows_the_trainers_step_arithmetic():
    """7 batches per epoch, 2 per update: updates of an epoch are 2, 2, 2, 1 batches (4 steps per epoch)."""
    tok, ds = packed(documents(seed=5))
    c = ScheduledCollator(build_collator("mlm", tok), RateSchedule.parse("step:0.5,0.1@0.5"))
    c.begin(max_steps=8, global_step=0, batches_per_epoch=7, accumulation=2)
    steps = [c.step_of(b) for b in range(14)]
    assert steps == [0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 6, 7]
    c.begin(max_steps=8, global_step=5, batches_per_epoch=7, accumulation=2)  # a resume after step 5
    assert c.batches == 7 + 2 * 1 and c.step_of(c.batches) == 5
    c.begin(max_steps=8, global_step=0, batches_per_epoch=7, accumulation=2)
    features = [ds[i] for i in range(8)] * 4
    fractions = []
    for _ in range(10):
        batch = c(features)
        fractions.append(float((batch["labels"] != -100).sum() / (batch["attention_mask"].sum() - 2 * 32)))
    assert all(f > 0.3 for f in fractions[:7]) and all(f < 0.2 for f in fractions[8:]), fractions


def run_args(tmp_path, out, *extra):
    make_corpus(tmp_path / "c.txt", n_docs=90, words_per_doc=12)
    return quick_args(out, "--train_file", str(tmp_path / "c.txt"), "--tokenizer_name", str(tmp_path / "tok"),
                      "--max_steps", "12", "--save_steps", "4", "--logging_steps", "1", "--eval_strategy", "no",
                      "--do_train", "--packing", "documents", "--unpad", "--mlm_probability",
                      "step:0.3,0.15@0.5", "--gradient_accumulation_steps", "2", *extra)


def losses(out):
    state = json.loads((Path(out) / "trainer_state.json").read_text())
    return [(h["step"], h["loss"], h["mlm_probability"]) for h in state["log_history"] if "loss" in h]


def test_packed_scheduled_run_logs_the_rate_and_resumes_exactly(tmp_path):
    tiny_tokenizer().save_pretrained(tmp_path / "tok")
    whole = tmp_path / "whole"
    main(run_args(tmp_path, whole))
    logged = losses(whole)
    assert [r for _, _, r in logged] == [0.3] * 6 + [0.15] * 6
    cut = tmp_path / "cut"  # as if the run had died after checkpoint-8
    shutil.copytree(whole, cut, ignore=shutil.ignore_patterns("checkpoint-12"))
    (cut / "model.safetensors").unlink()
    main(run_args(tmp_path, cut, "--resume_from_checkpoint", "True"))
    assert losses(cut) == logged
    from safetensors.torch import load_file
    a, b = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
    for k in a:
        assert a[k].equal(b[k]), k


@pytest.mark.parametrize("flags, message", [
    (["--packing", "documents", "--line_by_line"], "exclude each other"),
    (["--unpad"], "needs --packing documents"),
    (["--objective", "clm", "--packing", "documents"], "--packing is a packing option"),
    (["--objective", "sop", "--packing", "documents"], "--packing is a packing option"),
    (["--mlm_probability", "linear:0.3,0.15", "--dataloader_num_workers", "2"], "--dataloader_num_workers 0"),
    (["--mlm_probability", "linear:0.3"], "at least two rates"),
    (["--eval_mlm_probability", "1.5"], "--eval_mlm_probability"),
])
def test_bad_packing_and_schedule_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as e:
        main(quick_args(out, *flags))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not out.exists()


def test_modernbert_recipe_sets_its_flags_and_yours_win(tmp_path):
    from hf_pretrain_ext.cli import parse_args
    _, data, pretrain, _ = parse_args(quick_args(tmp_path / "a", "--recipe", "modernbert"))
    assert (data.packing, pretrain.unpad, data.mlm_probability, data.eval_mlm_probability) == \
        ("documents", True, 0.3, 0.15)
    _, data, _, _ = parse_args(quick_args(tmp_path / "b", "--recipe", "modernbert", "--mlm_probability",
                                          "linear:0.3,0.15"))
    assert data.mlm_schedule.kind == "linear"
    make_corpus(tmp_path / "c.txt", n_docs=40, words_per_doc=10)
    out = tmp_path / "run"
    main(quick_args(out, "--recipe", "modernbert", "--train_file", str(tmp_path / "c.txt"), "--max_steps", "2"))
    assert json.loads((out / "config.json").read_text())["unpadded"] is True
    assert (out / "eval_results.json").is_file()


def test_recipe_errors_are_one_line(tmp_path, capsys):
    for flags, message in ((["--recipe", "roberta"], "unknown; known: modernbert"),
                           (["--recipe", "modernbert", "--objective", "clm"], "--packing is a packing option")):
        with pytest.raises(SystemExit) as e:
            main(quick_args(tmp_path / "o", *flags))
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and message in err[0], err


def test_word_starts_from_the_text_are_packed_beside_the_ids():
    from hf_pretrain_ext.collators import DocumentWordStarts
    tok = tiny_tokenizer()
    texts = documents(30, seed=6)
    _, ds = packed(texts, 32, word_starts=DocumentWordStarts(tok))
    specials = {tok.cls_token_id, tok.sep_token_id}
    for ex in ds:
        assert len(ex["word_starts"]) == len(ex["input_ids"])
        for i, s in zip(ex["input_ids"], ex["word_starts"]):
            assert s == (0 if i in specials else int(not tok.convert_ids_to_tokens(i).startswith("##")))
