"""The built-in model families and objectives, declared in the registry (registry.py says what each field means).

Encoder objectives (hfpx-bert): mlm, wwm, ngram, span (packed blocks; whole-word ones pack each token's word
start, found on the document's own text) and sop, nsp (sentence pairs, with a sentence head). Generative: bart
(hfpx-bart, blocks of max_seq_length - 2: the collator wraps them in <s> ... </s>), t5 (hfpx-t5, the raw length
whose span corruption gives max_seq_length inputs; sentinels are added to a tokenizer that lacks them) and clm
(hfpx-gpt).
"""
import logging

from .args import OPTION_GROUPS
from .collators import build_collator
from .collators.span_corruption import add_sentinel_tokens, t5_input_and_target_lengths
from .collators.word2vec import Word2VecCollator, token_counts
from .errors import UserError
from .metrics import preprocess_logits_for_causal_metrics
from .models import (TINY_ELMO, HfpxElmoConfig, HfpxElmoForPreTraining, HfpxElmoModel)
from .models import (TINY_NNLM, TINY_WORD2VEC, HfpxNNLMConfig, HfpxNNLMForCausalLM, HfpxNNLMModel,
                     HfpxWord2VecConfig, HfpxWord2VecForPreTraining, HfpxWord2VecModel)
from .models import (TINY_BART, TINY_BERT, TINY_GPT, TINY_T5, HfpxBartConfig, HfpxBartForConditionalGeneration,
                     HfpxBartModel, HfpxBertConfig, HfpxBertForMaskedLM, HfpxBertForPreTraining,
                     HfpxBertForSequenceClassification, HfpxBertModel, HfpxGPTConfig, HfpxGPTForCausalLM,
                     HfpxGPTModel, HfpxT5Config, HfpxT5ForConditionalGeneration, HfpxT5Model)
from .registry import Family, Objective, register_family, register_objective

logger = logging.getLogger("hf_pretrain_ext")

for _family in (
        Family("hfpx-bert", "encoder", HfpxBertConfig,
               {"AutoModelForMaskedLM": HfpxBertForMaskedLM, "AutoModelForPreTraining": HfpxBertForPreTraining,
                "AutoModelForSequenceClassification": HfpxBertForSequenceClassification, "AutoModel": HfpxBertModel},
               TINY_BERT, "bert", ("HfpxBert", "Bert")),
        Family("hfpx-gpt", "decoder", HfpxGPTConfig,
               {"AutoModelForCausalLM": HfpxGPTForCausalLM, "AutoModel": HfpxGPTModel}, TINY_GPT, "gpt2",
               ("HfpxGPT", "GPT2"), {"GPT2ForCausalLM": "GPT2LMHeadModel"}),
        Family("hfpx-bart", "seq2seq", HfpxBartConfig,
               {"AutoModelForSeq2SeqLM": HfpxBartForConditionalGeneration, "AutoModel": HfpxBartModel}, TINY_BART,
               "bart", ("HfpxBart", "Bart")),
        Family("hfpx-t5", "seq2seq", HfpxT5Config,
               {"AutoModelForSeq2SeqLM": HfpxT5ForConditionalGeneration, "AutoModel": HfpxT5Model}, TINY_T5, "t5",
               ("HfpxT5", "T5")),
        # the pretraining history before GPT: no stock architecture to export to
        Family("hfpx-nnlm", "decoder", HfpxNNLMConfig,
               {"AutoModelForCausalLM": HfpxNNLMForCausalLM, "AutoModel": HfpxNNLMModel}, TINY_NNLM, None, None),
        Family("hfpx-word2vec", "encoder", HfpxWord2VecConfig,
               {"AutoModelForPreTraining": HfpxWord2VecForPreTraining, "AutoModel": HfpxWord2VecModel},
               TINY_WORD2VEC, None, None),
        Family("hfpx-elmo", "decoder", HfpxElmoConfig,
               {"AutoModelForPreTraining": HfpxElmoForPreTraining, "AutoModel": HfpxElmoModel}, TINY_ELMO, None,
               None)):
    register_family(_family)

# -- option groups: which flags each collator reads (validated in args.py) ----------------------------------------
WORD_OPTIONS = ("word_boundaries", "segmenter", "replace_level")
NGRAM_OPTIONS = WORD_OPTIONS + ("span_distribution", "max_ngram", "geometric_p", "max_span_length")
MASKING_OPTIONS = {"mlm": (), "wwm": WORD_OPTIONS + ("long_word_min_chars",), "ngram": NGRAM_OPTIONS,
                   "span": NGRAM_OPTIONS}
# the denoising group's flags are the BART collator's options (its recipe is passed as `recipe`)
BART_OPTIONS = tuple(f for f in OPTION_GROUPS["denoising"] if f != "bart_recipe")


def _common(run):
    return dict(pad_to_multiple_of=run.data_args.pad_to_multiple_of, seed=run.training_args.seed)


def masking_collator(name):
    def make(run):
        options = {k: getattr(run.pretrain_args, k) for k in MASKING_OPTIONS[name]}
        return build_collator(name, run.tokenizer, mlm_probability=run.data_args.mlm_probability, **options,
                              **_common(run))
    return make


def pair_collator(name):
    def make(run):
        masking = run.pretrain_args.masking
        options = {k: getattr(run.pretrain_args, k) for k in MASKING_OPTIONS[masking]}
        if name == "nsp":
            if run.data_args.streaming:
                raise UserError("--objective nsp draws random segments from the whole training set; it cannot "
                                "stream")
            options["pool"] = run.train_ds
        return build_collator(name, run.tokenizer, mlm_probability=run.data_args.mlm_probability,
                              max_seq_length=run.max_seq_length, masking=masking, **options, **_common(run))
    return make


def nsp_eval_collator(collator, eval_ds):
    """Random segments come from held-out documents when there are several (else from the training ones)."""
    if eval_ds is not None and len(set(eval_ds["document_index"])) > 1:
        return collator.for_eval(pool=eval_ds)
    return collator.for_eval()


def bart_collator(run):
    args, config = run.pretrain_args, run.model.config
    return build_collator("bart", run.tokenizer, recipe=args.bart_recipe,
                          decoder_start_token_id=config.decoder_start_token_id,
                          max_length=getattr(config, "max_position_embeddings", None),
                          **{k: getattr(args, k) for k in BART_OPTIONS}, **_common(run))


def t5_collator(run):
    return build_collator("t5", run.tokenizer, noise_density=run.pretrain_args.noise_density,
                          mean_noise_span_length=run.pretrain_args.mean_noise_span_length,
                          decoder_start_token_id=run.model.config.decoder_start_token_id, **_common(run))


def clm_collator(run):
    return build_collator("clm", run.tokenizer, packing=run.pretrain_args.clm_packing, **_common(run))


def word2vec_collator(architecture):
    def make(run):
        if run.data_args.streaming:
            raise UserError(f"--objective {architecture} draws noise words from the training set's token counts; "
                            "it cannot stream")
        tok, args = run.tokenizer, run.pretrain_args
        separators = tuple(i for i in (tok.sep_token_id, tok.eos_token_id) if i is not None)
        counts = token_counts(run.train_ds["input_ids"], len(tok))
        return Word2VecCollator(counts, special_ids=tuple(tok.all_special_ids), separator_ids=separators,
                                architecture=architecture, window=args.w2v_window, negatives=args.w2v_negatives,
                                subsample=args.w2v_subsample, noise_power=args.w2v_noise_power,
                                seed=run.training_args.seed)
    return make


def t5_block_length(max_seq_length, pretrain_args):
    raw, _ = t5_input_and_target_lengths(max_seq_length, pretrain_args.noise_density,
                                         pretrain_args.mean_noise_span_length)
    return raw


def end_of_text(tokenizer):
    """Generative objectives: an end-of-text token (eos, or BERT's [SEP]); padding falls back to it (GPT-2)."""
    if tokenizer.eos_token_id is None and tokenizer.sep_token_id is None:
        raise UserError("this objective needs a tokenizer with an end-of-text (eos) token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def with_sentinels(tokenizer):
    added = add_sentinel_tokens(tokenizer)
    if added:
        logger.warning("the tokenizer had no T5 sentinel tokens: added %d (<extra_id_0> ... <extra_id_99>); the "
                       "model's embeddings are resized to match", added)
    return end_of_text(tokenizer)


DESCRIPTIONS = {
    "mlm": "BERT masked language modelling: 15% of tokens selected (special tokens and padding never), of those 80% "
           "[MASK], 10% a random ordinary token, 10% kept.",
    "wwm": "Whole-word masking: whole words are selected (Chinese words by jieba on the document's own text), then "
           "masked 80/10/10 as in BERT.",
    "ngram": "Whole-word n-gram masking: spans of 1 to n whole words are selected, then masked 80/10/10.",
    "span": "Span masking: spans of whole words are selected and each span is replaced by a single position whose "
            "label is the span's first token.",
    "sop": "ALBERT's sentence-order prediction beside masked language modelling.",
    "nsp": "BERT's next-sentence prediction beside masked language modelling.",
    "bart": "BART denoising: text infilling, sentence permutation and the other fairseq noises; the decoder "
            "reconstructs the original text.",
    "t5": "T5 span corruption: 15% of tokens in spans of mean length 3, each span replaced by a sentinel; the "
          "decoder produces the spans.",
    "clm": "Causal language modelling on packed documents (attention and positions restart at each document).",
    "nnlm": "Bengio et al. (2003)'s neural language model: the next token from the n previous ones (embeddings "
            "concatenated, one tanh layer, optional direct connections), contexts inside each document.",
    "skipgram": "Word2vec skip-gram with negative sampling (Mikolov et al. 2013): each word predicts the words of "
                "a randomly reduced window, frequent words subsampled, noise from unigram^0.75.",
    "bilm": "ELMo's bidirectional LSTM language model (Peters et al. 2018): forward and backward LSTM stacks "
            "over each document, next and previous token through one shared softmax.",
    "cbow": "Word2vec continuous bag of words with negative sampling: the mean of a reduced window's word vectors "
            "predicts its centre word.",
}
_MASKED = dict(kind="encoder", family="hfpx-bert", auto_class="AutoModelForMaskedLM", needs=("mask_token",
               "pad_token"), option_groups=("masking", "packing", "distillation"), pipeline="fill-mask",
               loss_parts={"mlm_loss": "mlm_loss"})
for _name in ("mlm", "wwm", "ngram", "span"):
    register_objective(Objective(_name, collator=masking_collator(_name), word_starts=_name != "mlm",
                                 description=DESCRIPTIONS[_name], **_MASKED))
for _name, _label in (("sop", "sentence_order_label"), ("nsp", "next_sentence_label")):
    register_objective(Objective(
        _name, kind="encoder", family="hfpx-bert", auto_class="AutoModelForPreTraining",
        collator=pair_collator(_name), needs=("mask_token", "pad_token"), examples="sentences",
        word_starts=lambda pretrain_args: pretrain_args.masking != "mlm",
        eval_collator=nsp_eval_collator if _name == "nsp" else None, label_names=("labels", _label),
        can_stream=_name != "nsp",
        loss_parts={"mlm_loss": "mlm_loss", "sop_loss": f"{_name}_loss"},
        option_groups=("masking", "sentences", "distillation"),
        description=DESCRIPTIONS[_name]))
register_objective(Objective(
    "bart", kind="seq2seq", family="hfpx-bart", auto_class="AutoModelForSeq2SeqLM", collator=bart_collator,
    tokenizer="bpe", bart_specials=True, needs=("mask_token",), prepare_tokenizer=end_of_text,
    block_length=lambda max_seq_length, pretrain_args: max_seq_length - 2, all_rows_labelled=True,
    option_groups=("denoising", "distillation"), pipeline="text2text-generation", description=DESCRIPTIONS["bart"]))
register_objective(Objective(
    "t5", kind="seq2seq", family="hfpx-t5", auto_class="AutoModelForSeq2SeqLM", collator=t5_collator,
    tokenizer="bpe", bart_specials=True, prepare_tokenizer=with_sentinels, block_length=t5_block_length,
    all_rows_labelled=True, option_groups=("span_corruption", "distillation"), pipeline="text2text-generation",
    description=DESCRIPTIONS["t5"]))
register_objective(Objective(
    "clm", kind="decoder", family="hfpx-gpt", auto_class="AutoModelForCausalLM", collator=clm_collator,
    tokenizer="bpe", needs=(), prepare_tokenizer=end_of_text, metrics=preprocess_logits_for_causal_metrics,
    all_rows_labelled=True, option_groups=("causal", "distillation"), pipeline="text-generation", description=DESCRIPTIONS["clm"]))
register_objective(Objective(
    "nnlm", kind="decoder", family="hfpx-nnlm", auto_class="AutoModelForCausalLM", collator=clm_collator,
    tokenizer="bpe", needs=(), prepare_tokenizer=end_of_text, metrics=preprocess_logits_for_causal_metrics,
    option_groups=("causal", "distillation"), pipeline="text-generation", description=DESCRIPTIONS["nnlm"]))
for _name in ("skipgram", "cbow"):
    register_objective(Objective(
        _name, kind="encoder", family="hfpx-word2vec", auto_class="AutoModelForPreTraining",
        collator=word2vec_collator(_name), token_accuracy=False, can_stream=False, option_groups=("word2vec",),
        description=DESCRIPTIONS[_name]))
register_objective(Objective(
    "bilm", kind="decoder", family="hfpx-elmo", auto_class="AutoModelForPreTraining", collator=clm_collator,
    tokenizer="bpe", needs=(), prepare_tokenizer=end_of_text, metrics=preprocess_logits_for_causal_metrics,
    option_groups=("causal",), description=DESCRIPTIONS["bilm"]))
