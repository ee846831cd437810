"""--max_train_minutes: training stops at the wall-clock budget with a checkpoint, the learning-rate schedule runs
on the budget's elapsed fraction (so it completes whatever the speed), and misuse is one error line."""
import json
from pathlib import Path

import pytest
import torch

from hf_pretrain_ext import callbacks
from hf_pretrain_ext.callbacks import TimeBudgetCallback, time_budget_scheduler
from hf_pretrain_ext.cli import main
from hfpx_testutils import make_corpus, quick_args


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("kind,warmup,expect", [
    ("linear", 0.1, [0.0, 0.5, 1.0, 0.8333, 0.2778, 0.0]),
    ("cosine", 0.0, [1.0, 0.9938, 0.9755, 0.8536, 0.1464, 0.0]),
    ("constant", 0.5, [1.0] * 6),  # 'constant' has no warmup, as in transformers
    ("constant_with_warmup", 0.2, [0.0, 0.25, 0.5, 1.0, 1.0, 1.0]),
])
def test_schedule_follows_the_elapsed_fraction(monkeypatch, kind, warmup, expect):
    clock = Clock()
    monkeypatch.setattr(callbacks.time, "monotonic", clock)
    budget = TimeBudgetCallback(100.0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = time_budget_scheduler(opt, kind, warmup, budget)
    budget.on_train_begin(None, None, None)
    got = []
    for step, elapsed in enumerate([0, 5, 10, 25, 75, 100]):  # the step count does not matter, the time does
        clock.now = 1000.0 + elapsed
        opt.step()  # the Trainer's order (and torch's warning otherwise)
        sched.step()
        got.append(opt.param_groups[0]["lr"] / 2.0)
    assert got == pytest.approx(expect, abs=1e-4)


def test_warmup_in_steps_counts_steps(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(callbacks.time, "monotonic", clock)
    budget = TimeBudgetCallback(100.0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = time_budget_scheduler(opt, "linear", 4, budget)
    budget.on_train_begin(None, None, None)
    clock.now += 50  # half the budget gone after 2 steps: warmup 2/4, decay 0.5
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)


def test_callback_stops_once_and_saves(monkeypatch):
    from transformers import TrainerControl, TrainerState
    clock = Clock()
    monkeypatch.setattr(callbacks.time, "monotonic", clock)
    budget = TimeBudgetCallback(10.0)
    state, control = TrainerState(), TrainerControl()
    budget.on_train_begin(None, state, control)
    clock.now += 9.9
    budget.on_step_end(None, state, control)
    assert not control.should_training_stop and budget.stopped_at is None
    state.global_step, clock.now = 7, clock.now + 0.1
    budget.on_step_end(None, state, control)
    assert control.should_training_stop and control.should_save and budget.stopped_at == 7


def test_run_stops_at_the_budget_with_the_schedule_complete(tmp_path):
    make_corpus(tmp_path / "c.txt", n_docs=120)
    out = tmp_path / "o"
    main(quick_args(out, "--train_file", str(tmp_path / "c.txt"), "--max_steps", "100000", "--save_steps",
                    "100000", "--logging_steps", "1", "--do_train", "--max_train_minutes", "0.05"))
    state = json.loads((out / "trainer_state.json").read_text())
    step = state["global_step"]
    assert 1 < step < 100000
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{step}"]
    train = json.loads((out / "train_results.json").read_text())
    assert 3.0 <= train["train_runtime"] < 3.0 + 5.0  # stops at the first step end past 3 s
    lrs = [h["learning_rate"] for h in state["log_history"] if "learning_rate" in h]
    assert lrs[-1] < 0.2 * max(lrs)  # linear decay to zero over the time: near its end when it stopped


@pytest.mark.parametrize("extra,message", [
    (["--max_train_minutes", "0"], "--max_train_minutes must be positive"),
    (["--max_train_minutes", "1", "--lr_scheduler_type", "polynomial"], "--lr_scheduler_type polynomial is not"),
    (["--max_train_minutes", "1", "--resume_from_checkpoint", "True"], "--max_train_minutes cannot resume"),
    (["--max_train_minutes", "1", "--do_eval"], "it needs --do_train"),
])
def test_misuse_is_one_error_line(tmp_path, capsys, extra, message):
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as e:
        main(quick_args(out, *extra))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()
