"""#21 end to end: a tiny teacher distilled into a tiny student by run_pretrain.py (loss parts logged, saved,
reloaded through Auto*, exact resume), the same for the causal, seq2seq and sentence-pair objectives,
DistilBERT's every-other-layer initialisation of every family's layer stacks, and one-line errors."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_pretrain_ext.cli import main
from hf_pretrain_ext.model_setup import init_from_teacher
from hf_pretrain_ext.models import HfpxBertConfig, HfpxBertForMaskedLM
from hfpx_testutils import english_documents, make_corpus, quick_args, tiny_tokenizer

SIZE = "hidden_size=32,num_attention_heads=2,intermediate_size=64"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teacher")
    make_corpus(tmp / "c.txt", n_docs=60)
    tiny_tokenizer().save_pretrained(tmp / "tok")
    main(quick_args(tmp / "t", "--train_file", str(tmp / "c.txt"), "--tokenizer_name", str(tmp / "tok"),
                    "--config_overrides", f"{SIZE},num_hidden_layers=2", "--do_train", "--max_steps", "3",
                    fresh=False))
    return tmp


def student_args(tmp, out, *extra):
    return quick_args(out, "--train_file", str(tmp / "c.txt"), "--tokenizer_name", str(tmp / "tok"),
                      "--config_overrides", f"{SIZE},num_hidden_layers=1", "--teacher_model_name_or_path",
                      str(tmp / "t"), "--distill_alpha", "0.5", "--distill_temperature", "2", "--distill_cosine",
                      "1", "--distill_init_student", "--logging_steps", "1", *extra, fresh=False)


def history(out):
    return json.loads((Path(out) / "trainer_state.json").read_text())["log_history"]


def test_distilled_student_logs_its_loss_parts_saves_and_reloads(teacher, tmp_path):
    out = tmp_path / "s"
    main(student_args(teacher, out, "--max_steps", "4"))
    logged = [h for h in history(out) if "loss" in h]
    assert len(logged) == 4
    for h in logged:
        assert {"mlm_loss", "distill_loss", "cosine_loss"} <= set(h), h
        assert h["distill_loss"] > 0 and 0 <= h["cosine_loss"] <= 2
    assert "eval_loss" in json.loads((out / "eval_results.json").read_text())
    assert json.loads((out / "hfpx_run.json").read_text())["teacher"] == str((teacher / "t").resolve())
    from transformers import AutoModelForMaskedLM
    import hf_pretrain_ext  # noqa: F401
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 1 and not list(out.glob("checkpoint-*/teacher*"))


def test_distilled_run_resumes_exactly(teacher, tmp_path):
    whole = tmp_path / "whole"
    main(student_args(teacher, whole, "--max_steps", "8", "--save_steps", "4", "--eval_strategy", "no",
                      "--do_train"))
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut, ignore=shutil.ignore_patterns("checkpoint-8"))
    (cut / "model.safetensors").unlink()
    main(student_args(teacher, cut, "--max_steps", "8", "--save_steps", "4", "--eval_strategy", "no",
                      "--do_train", "--resume_from_checkpoint", "True"))
    strip = (lambda hs: [(h["step"], h["loss"], h["distill_loss"]) for h in hs if "loss" in h])  # noqa: E731
    assert strip(history(cut)) == strip(history(whole))
    a, b = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
    assert all(a[k].equal(b[k]) for k in a)


def test_student_layer_i_starts_as_teacher_layer_2i():
    small = dict(vocab_size=50, hidden_size=16, num_attention_heads=2, intermediate_size=32,
                 max_position_embeddings=32)
    torch.manual_seed(0)
    t = HfpxBertForMaskedLM(HfpxBertConfig(num_hidden_layers=4, **small))
    s = HfpxBertForMaskedLM(HfpxBertConfig(num_hidden_layers=2, **small))
    init_from_teacher(s, t)
    for i in range(2):
        for (name, p), (_, q) in zip(s.bert.encoder.layer[i].named_parameters(),
                                     t.bert.encoder.layer[2 * i].named_parameters()):
            assert p.equal(q), name
    assert s.bert.embeddings.word_embeddings.weight.equal(t.bert.embeddings.word_embeddings.weight)
    wide = HfpxBertForMaskedLM(HfpxBertConfig(num_hidden_layers=2, **dict(small, intermediate_size=48)))
    from hf_pretrain_ext.errors import UserError
    with pytest.raises(UserError, match="teacher's sizes except its depth"):
        init_from_teacher(wide, t)


@pytest.mark.parametrize("flags, message", [
    (["--distill_cosine", "1"], "need --teacher_model_name_or_path"),
    (["--objective", "clm", "--distill_temperature", "0", "--teacher_model_name_or_path", "x"],
     "--distill_temperature must be positive"),
    (["--teacher_model_name_or_path", "x", "--distill_alpha", "1.5"], "--distill_alpha must be in [0, 1]"),
])
def test_bad_distillation_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as e:
        main(quick_args(tmp_path / "o", *flags))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and message in err[0], err


def test_a_teacher_with_another_vocabulary_is_refused(teacher, tmp_path, capsys):
    tiny_tokenizer(120).save_pretrained(tmp_path / "tok120")  # the teacher's has 148 tokens
    with pytest.raises(SystemExit):
        main(quick_args(tmp_path / "o", "--train_file", str(teacher / "c.txt"), "--teacher_model_name_or_path",
                        str(teacher / "t"), "--tokenizer_name", str(tmp_path / "tok120")))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one vocabulary" in err[0], err


# teacher (2 layers per stack) -> student (1 layer per stack), per objective
FAMILIES = {"clm": ("n_embd=32,n_head=2,n_inner=64,n_layer={}", "lm_loss", "AutoModelForCausalLM"),
            "bart": ("d_model=32,encoder_ffn_dim=64,decoder_ffn_dim=64,encoder_layers={0},decoder_layers={0}",
                     "lm_loss", "AutoModelForSeq2SeqLM"),
            "t5": ("d_model=32,d_kv=16,d_ff=64,num_layers={0},num_decoder_layers={0}", "lm_loss",
                   "AutoModelForSeq2SeqLM"),
            "sop": (SIZE + ",num_hidden_layers={}", "mlm_loss", "AutoModelForPreTraining")}


@pytest.mark.parametrize("objective", [o if o != "t5" else pytest.param(o, marks=pytest.mark.slow)
                                       for o in sorted(FAMILIES)])
def test_every_objective_distils(tmp_path, objective):
    sizes, task_part, auto = FAMILIES[objective]
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(english_documents(40, seed=5)) + "\n", encoding="utf-8")
    common = ["--objective", objective, "--train_file", str(corpus), "--max_seq_length", "48",
              "--eval_strategy", "no", "--do_train"]
    main(quick_args(tmp_path / "t", *common, "--tokenizer_vocab_size", "300", "--config_overrides", sizes.format(2),
                    "--max_steps", "2", fresh=False))
    out = tmp_path / "s"
    main(quick_args(out, *common, "--tokenizer_name", str(tmp_path / "t"), "--config_overrides", sizes.format(1),
                    "--teacher_model_name_or_path", str(tmp_path / "t"), "--distill_cosine", "1",
                    "--distill_init_student", "--logging_steps", "1", "--max_steps", "3", fresh=False))
    logged = [h for h in history(out) if "loss" in h]
    assert len(logged) == 3
    for h in logged:
        assert {task_part, "distill_loss", "cosine_loss"} <= set(h), h
        assert h["distill_loss"] > 0 and 0 <= h["cosine_loss"] <= 2 and h[task_part] > 0
    import transformers
    import hf_pretrain_ext  # noqa: F401
    student = getattr(transformers, auto).from_pretrained(out)
    teacher = getattr(transformers, auto).from_pretrained(tmp_path / "t")
    assert type(student) is type(teacher) and not list(out.glob("checkpoint-*/teacher*"))
    n_student = sum(p.numel() for p in student.parameters())
    assert n_student < sum(p.numel() for p in teacher.parameters())


@pytest.mark.parametrize("family", ["gpt", "bart", "t5"])
def test_every_family_initialises_layer_i_from_teacher_layer_2i(family):
    from hf_pretrain_ext import models
    torch.manual_seed(0)
    if family == "gpt":
        make = lambda n: models.HfpxGPTForCausalLM(models.HfpxGPTConfig(  # noqa: E731
            vocab_size=50, n_embd=16, n_head=2, n_inner=32, n_positions=32, n_layer=n))
        stacks = lambda m: [m.transformer.h]  # noqa: E731
    elif family == "bart":
        make = lambda n: models.HfpxBartForConditionalGeneration(models.HfpxBartConfig(  # noqa: E731
            vocab_size=50, d_model=16, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, max_position_embeddings=32, encoder_layers=n, decoder_layers=n))
        stacks = lambda m: [m.model.encoder.layers, m.model.decoder.layers]  # noqa: E731
    else:
        make = lambda n: models.HfpxT5ForConditionalGeneration(models.HfpxT5Config(  # noqa: E731
            vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_heads=2, num_layers=n, num_decoder_layers=n))
        stacks = lambda m: [m.encoder.block, m.decoder.block]  # noqa: E731
    teacher, student = make(4), make(2)
    init_from_teacher(student, teacher)
    for s_stack, t_stack in zip(stacks(student), stacks(teacher)):
        for i in range(2):
            for (name, p), (_, q) in zip(s_stack[i].named_parameters(), t_stack[2 * i].named_parameters()):
                assert p.equal(q), (family, i, name)


def test_cosine_between_different_widths_learns_a_projection_and_resumes_exactly(teacher, tmp_path):
    # a 16-wide student of the 32-wide teacher: the cosine loss goes through the student's learned projection,
    # kept beside the weights (not in them) and restored on resume
    def run(out, *extra):
        main(quick_args(out, "--train_file", str(teacher / "c.txt"), "--tokenizer_name", str(teacher / "tok"),
                        "--config_overrides", "hidden_size=16,num_attention_heads=2,intermediate_size=32,"
                        "num_hidden_layers=1", "--teacher_model_name_or_path", str(teacher / "t"),
                        "--distill_cosine", "1", "--logging_steps", "1", "--max_steps", "6", "--save_steps", "3",
                        "--eval_strategy", "no", "--do_train", *extra, fresh=False))
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run(whole)
    for folder in (whole, whole / "checkpoint-3", whole / "checkpoint-6"):
        projection = load_file(folder / "distill_projection.safetensors")["weight"]
        assert projection.shape == (32, 16)
        assert not [k for k in load_file(folder / "model.safetensors") if "projection" in k]
    start = load_file(whole / "checkpoint-3" / "distill_projection.safetensors")["weight"]
    assert not start.equal(projection)  # it is trained
    assert all("cosine_loss" in h for h in history(whole) if "loss" in h)
    shutil.copytree(whole, cut, ignore=shutil.ignore_patterns("checkpoint-6"))
    (cut / "model.safetensors").unlink()
    run(cut, "--resume_from_checkpoint", "True")
    strip = (lambda hs: [(h["step"], h["loss"], h["cosine_loss"]) for h in hs if "loss" in h])  # noqa: E731
    assert strip(history(cut)) == strip(history(whole))
    assert load_file(cut / "distill_projection.safetensors")["weight"].equal(projection)
    from transformers import AutoModelForMaskedLM
    import hf_pretrain_ext  # noqa: F401
    model, info = AutoModelForMaskedLM.from_pretrained(whole, output_loading_info=True)
    assert model.config.hidden_size == 16 and not info["unexpected_keys"] and not info["missing_keys"]


def test_nnlm_distils_through_a_projection(tmp_path):
    # a causal objective of the history families: NNLM teacher -> narrower NNLM student, the cosine loss between
    # their [h; x] head features through the student's projection
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(english_documents(40, seed=6)) + "\n", encoding="utf-8")
    common = ["--objective", "nnlm", "--train_file", str(corpus), "--max_seq_length", "48", "--eval_strategy", "no",
              "--do_train"]
    sizes = "context_size=3,embedding_size=8,direct_connections=True,hidden_size={}"
    main(quick_args(tmp_path / "t", *common, "--tokenizer_vocab_size", "300", "--config_overrides", sizes.format(32),
                    "--max_steps", "2", fresh=False))
    out = tmp_path / "s"
    main(quick_args(out, *common, "--tokenizer_name", str(tmp_path / "t"), "--config_overrides", sizes.format(16),
                    "--teacher_model_name_or_path", str(tmp_path / "t"), "--distill_cosine", "1", "--logging_steps",
                    "1", "--max_steps", "3", fresh=False))
    logged = [h for h in history(out) if "loss" in h]
    assert len(logged) == 3 and all({"lm_loss", "distill_loss", "cosine_loss"} <= set(h) for h in logged)
    assert load_file(out / "distill_projection.safetensors")["weight"].shape == (32 + 24, 16 + 24)


def test_a_mixture_distils_every_component(teacher, tmp_path):
    out = tmp_path / "mix"
    main(student_args(teacher, out, "--mixture", "mlm=0.5,wwm=0.5", "--max_steps", "4", "--eval_strategy", "no",
                      "--do_train"))
    logged = [h for h in history(out) if "loss" in h]
    assert len(logged) == 4
    for h in logged:
        assert {"mlm_loss", "wwm_loss", "distill_loss", "cosine_loss"} <= set(h), h
        assert h["distill_loss"] > 0 and 0 <= h["cosine_loss"] <= 2
