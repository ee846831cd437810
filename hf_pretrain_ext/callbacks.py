"""Callbacks that keep a run safe: stop cleanly on SIGTERM/SIGINT, stop before a non-finite loss is saved.

`SignalStopCallback`: the first SIGTERM (what schedulers send before a kill) or SIGINT asks the Trainer to save a
checkpoint at the end of the current optimizer step and stop; a second one is left to Python's default handler.
`NonFiniteLossCallback`: when a step's loss is NaN or inf, no checkpoint is written from then on and training
stops, so the last checkpoint on disk is the last good one.
"""
import signal

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
