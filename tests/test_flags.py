"""Flags mean what they say: what a user gets for the do_train/do_eval combinations, epochs vs steps, a mixture
without --objective, T5 on a WordPiece tokenizer, the --no_* help, and no noise for expected behaviour (tied
weights on resume, the fresh classification head on fine-tuning)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_pretrain_ext.cli import main, make_parser, parse_args
from hfpx_testutils import make_corpus, quick_args, tiny_tokenizer

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


def refused(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


def test_do_eval_false_alone_trains_only(tmp_path):
    out = tmp_path / "run"
    results = main(quick_args(out, "--do_eval", "false"))
    assert (out / "train_results.json").is_file() and (out / "model.safetensors").is_file()
    assert not (out / "eval_results.json").exists() and "eval_loss" not in results


def test_do_train_false_alone_evaluates_only(tmp_path):
    trained = tmp_path / "trained"
    main(quick_args(trained))
    out = tmp_path / "eval"
    results = main(quick_args(out, "--model_name_or_path", str(trained), "--do_train", "false", fresh=False))
    assert "eval_loss" in results and not (out / "train_results.json").exists()


def test_neither_train_nor_eval_is_an_error_that_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    err = refused(quick_args(out, "--do_train", "false", "--do_eval", "false"), capsys)
    assert "nothing to do" in err and not out.exists()


def test_epochs_without_steps_decide_and_max_steps_0_is_refused(tmp_path, capsys):
    _, _, _, training = parse_args(["--num_train_epochs", "2"])
    assert training.max_steps == -1 and training.num_train_epochs == 2
    _, _, _, training = parse_args(["--num_train_epochs", "2", "--max_steps", "7"])
    assert training.max_steps == 7
    _, _, _, training = parse_args([])
    assert training.max_steps == 600  # the default job
    assert "--max_steps 0" in refused(quick_args(tmp_path / "a", "--max_steps", "0"), capsys)
    assert not (tmp_path / "a").exists()

    corpus = tmp_path / "c.txt"
    make_corpus(corpus, n_docs=40)
    args = [a for a in quick_args(tmp_path / "b", "--train_file", str(corpus), "--num_train_epochs", "1")]
    i = args.index("--max_steps")
    del args[i:i + 2]
    main(args)
    state = json.loads((tmp_path / "b" / "trainer_state.json").read_text())
    n_train = json.loads((tmp_path / "b" / "train_results.json").read_text())["train_samples"]
    assert state["max_steps"] == state["global_step"] == -(-n_train // 8) and state["epoch"] == 1.0


def test_mixture_decides_the_objective_or_is_refused(capsys):
    _, _, pretrain, _ = parse_args(["--mixture", "bart=0.7,t5=0.3"])
    assert pretrain.objective == "bart" and pretrain.use_fused_loss == pretrain.default_use_fused_loss()
    _, _, pretrain, _ = parse_args(["--mixture", "bart=0.7,t5=0.3", "--objective", "t5"])
    assert pretrain.objective == "t5"
    _, _, pretrain, _ = parse_args(["--mixture", "wwm=0.5,mlm=0.5"])  # encoder mixtures are built now (#15)
    assert pretrain.objective == "wwm"
    for bad, needle in ((["--objective", "clm", "--mixture", "bart=0.5,t5=0.5"], "not one of the --mixture"),
                        (["--mixture", "mlm=0.5,sop=0.5"], "cannot share"),
                        (["--objective", "nsp", "--mixture", "mlm=0.5,wwm=0.5"], "not one of the --mixture")):
        assert needle in refused(bad, capsys)


def test_t5_trains_on_a_wordpiece_tokenizer(tmp_path):
    tok_dir = tmp_path / "wordpiece"
    tiny_tokenizer().save_pretrained(tok_dir)
    corpus = tmp_path / "c.txt"
    make_corpus(corpus, n_docs=40)
    out = tmp_path / "t5"
    results = main(quick_args(out, "--objective", "t5", "--tokenizer_name", str(tok_dir), "--train_file", str(corpus),
                              "--config_overrides", "d_model=32,d_kv=16,d_ff=64,num_layers=1,num_decoder_layers=1",
                              fresh=False))
    config = json.loads((out / "config.json").read_text())
    assert config["eos_token_id"] == tiny_tokenizer().sep_token_id and results["eval_loss"] > 0


def test_no_flags_have_their_own_help():
    helps = {o: a.help for a in make_parser()._actions for o in a.option_strings}
    assert helps["--no_plot"] != helps["--plot"] and "off" in helps["--no_plot"]


def _run(script, *args):
    proc = subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow  # the suite's 6 minutes (16 s); HFPX_SLOW=1 runs it
def test_resume_and_fine_tuning_print_no_noise_for_expected_behaviour(tmp_path):
    out = tmp_path / "run"
    main(quick_args(out, "--max_steps", "4", "--save_steps", "2", "--no_plot"))
    printed = _run("run_pretrain.py", *quick_args(out, "--max_steps", "6", "--save_steps", "2", "--no_plot",
                                                  "--resume_from_checkpoint", "True"))
    assert "missing keys" not in printed and "Done in" in printed
    rows = "".join(f"{'the quick fox' if i % 2 else 'a lazy dog'}\t{i % 2}\n" for i in range(24))
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + rows)
    printed = _run("run_finetune.py", "--model_name_or_path", str(out), "--train_file", str(tmp_path / "train.tsv"),
                   "--validation_file", str(tmp_path / "train.tsv"), "--output_dir", str(tmp_path / "ft"),
                   "--num_train_epochs", "1", "--disable_tqdm", "true")
    assert "LOAD REPORT" not in printed and "UNEXPECTED" not in printed
    assert "a fresh one is initialised" in printed  # the project's own one line stays


def test_shared_data_folder_follows_hfpx_data(tmp_path):
    """A clone elsewhere points the data-set tests at its copy of the shared data with HFPX_DATA."""
    proc = subprocess.run([sys.executable, "-c", "import hfpx_testutils; print(hfpx_testutils.SHARED_DATA)"],
                          cwd=REPO / "tests", env=dict(ENV, HFPX_DATA=str(tmp_path)), capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path), proc.stderr
