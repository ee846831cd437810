"""Nothing lost, nothing silent: a run owns its output directory.

Old checkpoints are never rotated away or resumed by a new run, a second run on a locked directory stops at once
(also after the first was killed with -9), a resume with another configuration is refused, a damaged newest
checkpoint falls back to an intact one, every bad argument or input is one `error:` line before any work, and a
failed run leaves a new output directory absent.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hf_pretrain_ext.cli import main
from hf_pretrain_ext.rundir import checkpoint_problem
from hfpx_testutils import make_corpus, quick_args

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


def refused(args, capsys, code=2):
    capsys.readouterr()  # what earlier runs printed
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err.strip()
    assert e.value.code == code and err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


def steps(folder):
    return sorted(int(p.name.split("-")[1]) for p in Path(folder).glob("checkpoint-*"))


@pytest.fixture
def corpus(tmp_path):
    make_corpus(tmp_path / "c.txt", n_docs=60)
    return tmp_path / "c.txt"


def test_overwrite_keeps_old_checkpoints_apart_and_resume_takes_this_runs(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    common = ["--train_file", str(corpus), "--save_steps", "2", "--save_total_limit", "3"]
    main(quick_args(out, *common, "--max_steps", "20"))
    assert steps(out) == [16, 18, 20]
    # case 1: a new run over it; rotation must not delete the new checkpoints, nor the old ones
    main(quick_args(out, *common, "--max_steps", "6", "--overwrite_output_dir"))
    assert steps(out) == [2, 4, 6]
    (old,) = out.glob("superseded-*")
    assert steps(old) == [16, 18, 20] and "were moved to" in capsys.readouterr().out
    # case 2: resuming takes this run's newest checkpoint, not the old run's checkpoint-20
    main(quick_args(out, *common, "--max_steps", "8", "--resume_from_checkpoint", "True"))
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 8 and steps(out) == [4, 6, 8] and steps(old) == [16, 18, 20]
    record = json.loads((out / "hfpx_run.json").read_text())
    assert json.loads((out / "checkpoint-8" / "hfpx_run.json").read_text())["run_id"] == record["run_id"]
    # case 4: another configuration is refused, the record is not rewritten
    before = (out / "hfpx_run.json").read_text()
    for change in (["--max_seq_length", "32"], ["--objective", "wwm"]):
        err = refused(quick_args(out, *common, "--max_steps", "10", "--resume_from_checkpoint", "True", *change),
                      capsys)
        assert "another configuration" in err and ("max_seq_length" in err or "objective" in err)
    assert (out / "hfpx_run.json").read_text() == before
    # case 5: a damaged newest checkpoint: warn, name it, resume from the newest intact one
    weights = out / "checkpoint-8" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    main(quick_args(out, *common, "--max_steps", "10", "--resume_from_checkpoint", "True"))
    printed = capsys.readouterr().out
    assert "checkpoint-8 is damaged (model.safetensors is truncated); resuming from" in printed
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 10


def test_damaged_checkpoints_are_recognised(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    main(quick_args(out, "--train_file", str(corpus), "--max_steps", "4", "--save_steps", "2"))
    good = out / "checkpoint-4"
    assert checkpoint_problem(good) is None
    damage = {"optimizer.pt": lambda p: p.write_bytes(p.read_bytes()[:200]),
              "trainer_state.json": lambda p: p.unlink(), "scheduler.pt": lambda p: p.unlink()}
    for name, hurt in damage.items():
        copy = tmp_path / f"copy-{name}"
        subprocess.run(["cp", "-r", str(good), str(copy)], check=True)
        hurt(copy / name)
        assert name in checkpoint_problem(copy)
    # a truncated copy of a saved model given as --model_name_or_path (both CLIs)
    model = tmp_path / "model"
    subprocess.run(["cp", "-r", str(out), str(model)], check=True)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    err = refused(quick_args(tmp_path / "cont", "--model_name_or_path", str(model), "--train_file", str(corpus),
                             fresh=False), capsys)
    assert "model.safetensors is truncated" in err and not (tmp_path / "cont").exists()
    from hf_pretrain_ext.finetune.cli import main as finetune
    (tmp_path / "t.tsv").write_text("sentence\tlabel\na b\t0\nc d\t1\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        finetune(["--model_name_or_path", str(model), "--train_file", str(tmp_path / "t.tsv"), "--validation_file",
                  str(tmp_path / "t.tsv"), "--output_dir", str(tmp_path / "ft")])
    assert e.value.code == 2 and "model.safetensors is truncated" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert "trainer_state.json is missing" == checkpoint_problem(tmp_path / "empty")
    # every checkpoint damaged: one line, nothing resumed
    for ckpt in out.glob("checkpoint-*"):
        (ckpt / "trainer_state.json").unlink()
    err = refused(quick_args(out, "--train_file", str(corpus), "--max_steps", "6", "--resume_from_checkpoint",
                             "True"), capsys)
    assert "no intact checkpoint" in err and "checkpoint-4: trainer_state.json is missing" in err


def test_a_second_run_on_a_locked_dir_stops_and_kill_9_releases_the_lock(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom hf_pretrain_ext.rundir import OutputDir\n"
                               f"with OutputDir({str(out)!r}, argv=['first']):\n    print('locked', flush=True)\n"
                               "    time.sleep(300)\n"], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = refused(quick_args(out, "--train_file", str(corpus)), capsys)
        assert f"in use by another run (pid {holder.pid}" in err
        assert not (out / "hfpx_run.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    results = main(quick_args(out, "--train_file", str(corpus)))  # the kernel released the lock
    assert results["train_loss"] > 0


def test_two_runs_started_together_one_owns_the_dir(tmp_path, corpus):
    out = tmp_path / "run"
    args = [sys.executable, str(REPO / "run_pretrain.py"), *quick_args(out, "--train_file", str(corpus))]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "in use by another run" in loser or "already holds" in loser


def test_failure_before_training_leaves_no_output_dir(tmp_path, capsys, monkeypatch):
    specials = tmp_path / "specials.txt"
    specials.write_text("\n\n".join("[CLS] [SEP] [MASK] [PAD]" for _ in range(60)))
    out = tmp_path / "new"
    assert "no token to learn from" in refused(quick_args(out, "--train_file", str(specials)), capsys)  # case 6
    assert not out.exists()  # case 9: the corrected command is not refused as "already holds files"
    make_corpus(tmp_path / "c.txt")
    main(quick_args(out, "--train_file", str(tmp_path / "c.txt")))
    # SIGINT (Ctrl-C) during tokenizer training: one line, exit 130, the new directory removed
    import hf_pretrain_ext.steps as steps  # the run's steps (#15 moved them out of cli.py)

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(steps, "train_tokenizer", interrupted)
    out2 = tmp_path / "new2"
    assert "interrupted" in refused(quick_args(out2, "--train_file", str(tmp_path / "c.txt")), capsys, code=130)
    assert not out2.exists()


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_bad_arguments_and_inputs_are_one_line_before_any_work(tmp_path, corpus, capsys):
    """Case 8 (and 7): each refused with one `error:` line, exit 2, no traceback, and no output dir left."""
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    (trunc / "config.json").write_text('{"model_type": "hfpx-bert", "vocab_size": 100}')
    (trunc / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    (tmp_path / "afile").write_text("x")
    data = {"num.jsonl": '{"text": "ok text"}\n{"text": 5}\n', "list.jsonl": '{"text": "ok"}\n{"text": ["a"]}\n'}
    for name, text in data.items():
        _write(tmp_path / name, text)
    one = _write(tmp_path / "one.txt", "\n\n".join(f"only one sentence here {i}" for i in range(30)))
    cases = {
        "per_device_train_batch_size": ["--per_device_train_batch_size", "0"],
        "gradient_accumulation_steps": ["--gradient_accumulation_steps", "0"],
        "preprocessing_num_workers": ["--preprocessing_num_workers", "-1"],
        "hidden_size=-2": ["--config_overrides", "hidden_size=-2"],
        "'garbage' is not key=value": ["--config_overrides", "garbage"],
        "max_train_samples": ["--max_train_samples", "0"],
        "max_eval_samples": ["--max_eval_samples", "0"],
        "two sentences": ["--objective", "nsp", "--train_file", one],
        "--dataset_name": ["--dataset_name", "no-such-dataset-offline"],
        "--config_name": ["--config_name", str(tmp_path / "missing")],
        "row 2": ["--train_file", str(tmp_path / "num.jsonl")],
        "list": ["--train_file", str(tmp_path / "list.jsonl")],
    }
    for needle, extra in cases.items():
        out = tmp_path / f"out-{len(os.listdir(tmp_path))}"
        args = quick_args(out, "--train_file", str(corpus))
        err = refused(args + extra, capsys)
        assert needle in err, (needle, err)
        assert not out.exists(), needle
    assert "trunc" in refused(quick_args(tmp_path / "o1", "--model_name_or_path", str(trunc), "--train_file",
                                         str(corpus), fresh=False), capsys)
    assert "is a file" in refused(quick_args(tmp_path / "afile" / "sub", "--train_file", str(corpus)), capsys)
    assert "cannot be written" in refused(quick_args("/proc/hfpx-no-such-dir", "--train_file", str(corpus)), capsys)
    # config files: a list at the top, a value of the wrong type, a YAML "no" (case 7)
    assert "must be a mapping" in refused([_write(tmp_path / "list.yaml", "- a\n- b\n")], capsys)
    five = _write(tmp_path / "five.json", json.dumps({"max_steps": "five", "output_dir": str(tmp_path / "o5")}))
    assert "max_steps: expected an int, got 'five'" in refused([five], capsys)
    from hf_pretrain_ext.cli import parse_args
    yaml_no = _write(tmp_path / "plot.yaml", 'plot: "no"\nmax_steps: "12"\nlearning_rate: 1e-3\n')
    _, _, pretrain, training = parse_args([yaml_no])
    assert pretrain.plot is False and training.max_steps == 12 and training.learning_rate == 1e-3


def test_fine_tuning_batch_size_0_is_one_line(tmp_path, capsys):
    from hf_pretrain_ext.finetune.cli import main as finetune
    (tmp_path / "t.tsv").write_text("sentence\tlabel\na b\t0\nc d\t1\n")
    with pytest.raises(SystemExit) as e:
        finetune(["--model_name_or_path", str(tmp_path), "--train_file", str(tmp_path / "t.tsv"),
                  "--output_dir", str(tmp_path / "o"), "--per_device_train_batch_size", "0"])
    assert e.value.code == 2 and "--per_device_train_batch_size must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
