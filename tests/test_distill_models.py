"""Distillation inside each hfpx LM's forward (models/distill_loss.py), checked against the stock forward's full
logits: the KL a student reports equals KL(softmax(teacher logits / T) || softmax(student logits / T)) averaged
over the family's labelled positions (BERT: masked tokens; GPT and NNLM: positions whose next token is labelled;
BART/T5: decoder positions), and a student taught by an exact copy of itself sees zero KL and zero cosine loss."""
import copy

import pytest
import torch
import torch.nn.functional as F

from hf_pretrain_ext import models
from hf_pretrain_ext.models.distill_loss import teacher_target

V, B, L = 60, 3, 12


def make(family, layers, seed):
    torch.manual_seed(seed)
    if family == "bert":
        return models.HfpxBertForMaskedLM(models.HfpxBertConfig(
            vocab_size=V, hidden_size=16, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
            num_hidden_layers=layers, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    if family == "gpt":
        return models.HfpxGPTForCausalLM(models.HfpxGPTConfig(vocab_size=V, n_embd=16, n_head=2, n_inner=32,
                                                              n_positions=32, n_layer=layers))
    if family == "nnlm":
        return models.HfpxNNLMForCausalLM(models.HfpxNNLMConfig(vocab_size=V, context_size=3, embedding_size=8,
                                                                hidden_size=8 * layers, direct_connections=True,
                                                                initializer_range=0.3))
    if family == "bart":
        model = models.HfpxBartForConditionalGeneration(models.HfpxBartConfig(
            vocab_size=V, d_model=16, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, max_position_embeddings=32, encoder_layers=layers, decoder_layers=layers))
        with torch.no_grad():
            model.final_logits_bias.normal_()  # a bias that matters, so a missing one would show
        return model
    return models.HfpxT5ForConditionalGeneration(models.HfpxT5Config(
        vocab_size=V, d_model=16, d_kv=8, d_ff=32, num_heads=2, num_layers=layers, num_decoder_layers=layers,
        decoder_start_token_id=0, pad_token_id=0))


def batch(family):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, V, (B, L), generator=g)
    labels = ids.clone()
    labels[torch.rand(B, L, generator=g) < 0.6] = -100
    out = dict(input_ids=ids, attention_mask=torch.ones(B, L, dtype=torch.long), labels=labels)
    if family in ("bart", "t5"):
        out["labels"] = torch.where(torch.rand(B, L, generator=g) < 0.8, torch.randint(5, V, (B, L), generator=g),
                                    -100)
    return out


def full_logits(model, inputs, family):
    """[n_labelled, V] logits of the stock forward (no labels) at the family's labelled positions."""
    labels = inputs["labels"]
    if family in ("bart", "t5"):
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                       decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels)).logits
        return logits[labels != -100]
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    if family in ("gpt", "nnlm"):
        return logits[:, :-1][labels[:, 1:] != -100]
    return logits[labels != -100]


@pytest.mark.parametrize("family", ["bert", "gpt", "nnlm", "bart", "t5"])
def test_reported_kl_is_the_full_logits_kl(family):
    student, teacher = make(family, 1, 0).eval(), make(family, 2, 1).eval()
    inputs = batch(family)
    t = 2.0
    projection = None
    if family == "nnlm":  # [h; x] features of different widths (16 + 24 vs 8 + 24): the cosine needs a projection
        from hf_pretrain_ext.models.distill_loss import add_projection
        projection = add_projection(student, teacher.distill_width)
    target = teacher_target(teacher, inputs, alpha=0.5, temperature=t, cosine=1.0, projection=projection)
    out = student(**inputs, distill=target)
    with torch.no_grad():
        s_logits, t_logits = full_logits(student, inputs, family), full_logits(teacher, inputs, family)
    want = F.kl_div(F.log_softmax(s_logits.float() / t, -1), F.log_softmax(t_logits.float() / t, -1),
                    log_target=True, reduction="batchmean")
    torch.testing.assert_close(out.distill_loss, want, rtol=1e-4, atol=1e-6)
    task = out.mlm_loss if family == "bert" else out.lm_loss
    assert out.cosine_loss > 0
    # the total is the formula of models/distill_loss.py (the cosine sum divided by the labelled count)
    assert out.loss > 0.5 * task + 0.5 * t * t * out.distill_loss


@pytest.mark.parametrize("family", ["bert", "gpt", "nnlm", "bart", "t5"])
def test_a_copy_of_the_student_teaches_nothing(family):
    student = make(family, 1, 0).eval()
    teacher = copy.deepcopy(student)
    inputs = batch(family)
    out = student(**inputs, distill=teacher_target(teacher, inputs, alpha=0.3, temperature=3.0, cosine=1.0))
    assert abs(float(out.distill_loss)) < 1e-5 and abs(float(out.cosine_loss)) < 1e-5
    task = out.mlm_loss if family == "bert" else out.lm_loss
    torch.testing.assert_close(out.loss.detach(), 0.7 * task, rtol=1e-5, atol=1e-5)
    plain = student(**inputs)
    torch.testing.assert_close(plain.loss.detach(), task)
    assert plain.distill_loss is None
