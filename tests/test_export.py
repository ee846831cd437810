"""Export to the stock BERT architecture: loads in a fresh process without hf_pretrain_ext, same outputs."""
import os
import subprocess
import sys

import pytest
import torch

from hf_pretrain_ext.errors import UserError
from hf_pretrain_ext.export import export_stock
from hf_pretrain_ext.models import HfpxBertConfig, HfpxBertForMaskedLM, HfpxBertForPreTraining
from hfpx_testutils import tiny_tokenizer

SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


@pytest.mark.parametrize("cls, auto, stock", [(HfpxBertForMaskedLM, "AutoModelForMaskedLM", "BertForMaskedLM"),
                                              pytest.param(HfpxBertForPreTraining, "AutoModelForPreTraining",
                                                           "BertForPreTraining", marks=pytest.mark.slow)])
def test_export_loads_with_plain_transformers(tmp_path, cls, auto, stock):
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    model = cls(HfpxBertConfig(vocab_size=len(tok), **SMALL)).eval()
    model.save_pretrained(tmp_path / "ours")
    tok.save_pretrained(tmp_path / "ours")
    export_stock(tmp_path / "ours", tmp_path / "stock")
    ids = tok("the quick brown fox", return_tensors="pt")["input_ids"]
    expected = model(input_ids=ids).logits
    torch.save(ids, tmp_path / "ids.pt")
    code = ("import sys, torch, transformers\n"
            f"m = transformers.{auto}.from_pretrained({str(tmp_path / 'stock')!r}).eval()\n"
            "assert 'hf_pretrain_ext' not in sys.modules\n"
            f"t = transformers.AutoTokenizer.from_pretrained({str(tmp_path / 'stock')!r})\n"
            f"out = m(input_ids=torch.load({str(tmp_path / 'ids.pt')!r}))\n"
            f"torch.save(out.prediction_logits if hasattr(out, 'prediction_logits') else out.logits, "
            f"{str(tmp_path / 'out.pt')!r})\n"
            "print(type(m).__name__)\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == stock
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, rtol=1e-5, atol=1e-5)


def test_export_refuses_non_empty_destination_and_stock_models(tmp_path):
    model = HfpxBertForMaskedLM(HfpxBertConfig(vocab_size=50, **SMALL))
    model.save_pretrained(tmp_path / "ours")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="already holds files"):
        export_stock(tmp_path / "ours", tmp_path / "dst")
    export_stock(tmp_path / "ours", tmp_path / "stock")
    with pytest.raises(UserError, match="already a stock architecture"):
        export_stock(tmp_path / "stock", tmp_path / "again")
