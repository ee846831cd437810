"""--push_to_hub, offline: the exact folder that would be uploaded, loaded by plain transformers in a fresh process."""
import os
import subprocess
import sys

from hf_pretrain_ext.cli import main
from hfpx_testutils import quick_args


def test_upload_folder_is_stock_with_model_card(tmp_path, capsys):
    out = tmp_path / "run"
    main(quick_args(out, "--push_to_hub", "--hub_model_id", "someone/tiny-bert", "--hub_dry_run"))
    folder = out / "hub_upload"
    assert "would upload" in capsys.readouterr().out
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["README.md", "config.json", "loss_curve.png", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json"], names
    card = (folder / "README.md").read_text()
    for needle in ("pipeline_tag: fill-mask", "## Objective", "masked language modelling", "## Data",
                   "sample corpus", "| learning_rate |", "| eval_accuracy |", "| perplexity |",
                   "![training loss](loss_curve.png)", "license: apache-2.0",
                   'AutoModelForMaskedLM.from_pretrained("someone/tiny-bert")',
                   'AutoTokenizer.from_pretrained("someone/tiny-bert")'):
        assert needle in card, needle
    for absent in ("REPO_ID", "runtime", "per_second", "| epoch |"):  # the machine's figures are not the model's
        assert absent not in card, absent
    code = ("import sys, transformers\n"
            f"m = transformers.AutoModelForMaskedLM.from_pretrained({str(folder)!r})\n"
            f"t = transformers.AutoTokenizer.from_pretrained({str(folder)!r})\n"
            "assert 'hf_pretrain_ext' not in sys.modules\n"
            "print(type(m).__name__, m(**t('a [MASK] b', return_tensors='pt')).logits.shape[-1] == len(t))\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "BertForMaskedLM True"


def test_push_to_hub_without_a_repo_id_is_refused_before_training(tmp_path, capsys):
    import pytest
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(quick_args(out, "--push_to_hub", "--hub_dry_run"))
    assert e.value.code == 2
    assert "--push_to_hub needs --hub_model_id" in capsys.readouterr().err
    assert not out.exists()
