"""Callbacks that keep a run safe: stop cleanly on SIGTERM/SIGINT, stop before a non-finite loss is saved.

`SignalStopCallback`: the first SIGTERM (what schedulers send before a kill) or SIGINT asks the Trainer to save a
checkpoint at the end of the current optimizer step and stop; a second one is left to Python's default handler.
`NonFiniteLossCallback`: when a step's loss is NaN or inf, no checkpoint is written from then on and training
stops, so the last checkpoint on disk is the last good one.
`TimeBudgetCallback` (--max_train_minutes): training stops once its wall-clock budget is spent, and
`time_budget_scheduler` runs the learning-rate schedule on the fraction of that budget elapsed rather than on the
fraction of --max_steps, so the schedule completes at the budget whatever the machine's speed (used to give
several models the same CPU time; by nature the step it stops at is not reproducible).
"""
import math
import signal
import time

import torch

from transformers import TrainerCallback


class SignalStopCallback(TrainerCallback):
    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.signals = signals
        self.received = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None:  # second signal: give up waiting for the step to end
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.received = signal.Signals(signum).name

    def on_train_begin(self, args, state, control, **kwargs):
        self.received = None
        for s in self.signals:
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


class NonFiniteLossCallback(TrainerCallback):
    """Set by PretrainTrainer.training_step through `report(step, loss)`."""

    def __init__(self):
        self.bad_step = None
        self.bad_value = None

    def report(self, step, value):
        if self.bad_step is None:
            self.bad_step, self.bad_value = step, value

    def on_step_end(self, args, state, control, **kwargs):
        if self.bad_step is not None:  # runs after DefaultFlowCallback: overrides its save decision
            control.should_save = False
            control.should_training_stop = True


class TimeBudgetCallback(TrainerCallback):
    """Stops after `seconds` of training (from the first step of this process) and saves a checkpoint there."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.began = None
        self.stopped_at = None

    def progress(self):
        return 0.0 if self.began is None else min(1.0, (time.monotonic() - self.began) / self.seconds)

    def on_train_begin(self, args, state, control, **kwargs):
        self.began, self.stopped_at = time.monotonic(), None

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress() >= 1.0 and not control.should_training_stop:
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True


TIME_SCHEDULES = {"linear": lambda p: 1.0 - p, "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
                  "constant": lambda p: 1.0, "constant_with_warmup": lambda p: 1.0}


def time_budget_scheduler(optimizer, kind, warmup, budget):
    """A LambdaLR on the fraction p of the time budget elapsed. `warmup` below 1 is a fraction w of the budget, as
    transformers' schedules with steps: p / w, then decay((p - w) / (1 - w)); from 1 up it is a number of steps:
    min(1, step / warmup) * decay(p). `kind` 'constant' has no warmup, as in transformers."""
    decay = TIME_SCHEDULES[kind]
    warmup = 0 if kind == "constant" else warmup

    def factor(step):
        p = budget.progress()
        if warmup >= 1:
            return min(1.0, step / warmup) * max(0.0, decay(p))
        if p < warmup:
            return p / warmup
        return max(0.0, decay((p - warmup) / (1.0 - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
