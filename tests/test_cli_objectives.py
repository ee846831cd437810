"""run_pretrain.py with the encoder objectives: Chinese whole-word masking with jieba, and sentence-order
prediction with a sentence head; both reload through the Auto* classes."""
import json

import pytest

from hf_pretrain_ext.cli import main, parse_args
from hf_pretrain_ext.errors import UserError
from hfpx_testutils import quick_args, shared_lines


@pytest.fixture(scope="module")
def zh_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("zh") / "zh.txt"
    path.write_text("\n".join(shared_lines("zh_pretrain/CLUECorpusSmall_sampled.txt", 120, min_chars=80)) + "\n",
                    encoding="utf-8")
    return path


def test_chinese_wwm_with_jieba_trains_and_reloads(tmp_path, zh_file):
    pytest.importorskip("jieba")
    from transformers import AutoModelForMaskedLM
    out = tmp_path / "wwm"
    results = main(quick_args(out, "--train_file", str(zh_file), "--objective", "wwm", "--segmenter", "jieba",
                              "--tokenizer_vocab_size", "2000"))
    assert results["eval_masked_tokens"] > 0 and results["train_loss"] > 0
    assert json.loads((out / "hfpx_run.json").read_text())["objective"] == "wwm"
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert type(model).__name__ == "HfpxBertForMaskedLM"


def test_sop_trains_with_sentence_head_and_reloads(tmp_path, zh_file, capsys):
    pytest.importorskip("jieba")  # --masking wwm on Chinese text
    from transformers import AutoModelForPreTraining
    out = tmp_path / "sop"
    results = main(quick_args(out, "--train_file", str(zh_file), "--objective", "sop", "--masking", "wwm",
                              "--tokenizer_vocab_size", "2000"))
    printed = capsys.readouterr().out  # the load hint names the class that loads the sentence head too
    assert "AutoModelForPreTraining.from_pretrained" in printed and "AutoModelForMaskedLM" not in printed
    assert results["eval_masked_tokens"] > 0 and "eval_loss" in results
    model = AutoModelForPreTraining.from_pretrained(out)
    assert type(model).__name__ == "HfpxBertForPreTraining"
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("sop_loss" in h for h in history)


def test_offsets_word_boundaries_for_sentence_pairs_and_whole_word_objectives(tmp_path):
    # the pairs carry word starts found on each sentence's text (#17), so offsets work for sop/nsp too (they were
    # refused while the collator looked for words in the assembled pair, which has no offsets)
    results = main(quick_args(tmp_path / "s", "--objective", "sop", "--masking", "wwm", "--word_boundaries",
                              "offsets"))
    assert results["eval_masked_tokens"] > 0
    # whole-word objectives get them from each document's text
    results = main(quick_args(tmp_path / "w", "--objective", "wwm", "--word_boundaries", "offsets"))
    assert results["eval_masked_tokens"] > 0


def test_objective_options_parse_and_reject():
    _, _, p, _ = parse_args(["--objective", "ngram", "--span_distribution", "geometric", "--geometric_p", "0.3",
                             "--max_span_length", "8", "--replace_level", "word"])
    assert (p.span_distribution, p.geometric_p, p.max_span_length, p.replace_level) == ("geometric", 0.3, 8, "word")
    _, _, p, _ = parse_args(["--objective", "nsp", "--masking", "wwm", "--long_word_min_chars", "4"])
    assert p.token_masking() == "wwm"
    with pytest.raises(UserError, match="long_word_min_chars"):
        parse_args(["--objective", "ngram", "--long_word_min_chars", "4"])
    with pytest.raises(UserError, match="geometric_p"):
        parse_args(["--objective", "span", "--geometric_p", "0"])
