"""Masking-rate schedules: `--mlm_probability 0.3`, `linear:0.3,0.15` or `step:0.3,0.15@0.6,0.05@0.9`.

A schedule is a rate per optimizer step, as a function of the fraction of training done (step / max_steps):
- a number: constant;
- `linear:a,b,...`: straight lines through the points; a point is `rate` or `rate@fraction`, the first at 0 and
  the last at 1 unless given (`linear:0.3,0.15@0.8` reaches 0.15 at 80% and stays);
- `step:a,b@f1,c@f2`: rate a until fraction f1, b until f2, then c (mmBERT's 30% -> 15% -> 5% phases).

`ScheduledCollator(collator, schedule)` sets the masking rate before each training batch from the optimizer step
that batch belongs to. The step comes from the batch's place in the stream of training batches, not from a clock:
batch b (counted from the start of training) belongs to step (b // batches_per_epoch) * steps_per_epoch +
(b % batches_per_epoch) // gradient_accumulation_steps, the Trainer's own arithmetic, so prefetching does not
shift it, a resumed run (which starts counting at the batches the checkpoint consumed) draws the same rates, and
every DDP rank (same number of batches each) agrees. `RateScheduleCallback` tells it the loop's shape at
`on_train_begin`; PretrainTrainer logs the rate of the last step as `mlm_probability`. Batches must be collated in the main
process (`--dataloader_num_workers 0`): workers would count separately.
"""
import math
from dataclasses import dataclass, field

from transformers import TrainerCallback

from .base import WrappingCollator


@dataclass(frozen=True)
class RateSchedule:
    kind: str  # constant | linear | step
    points: tuple  # ((fraction, rate), ...), fractions increasing from 0
    spec: str = ""

    @classmethod
    def parse(cls, spec, name="--mlm_probability"):
        """A RateSchedule from its text (or a number); ValueError naming `name` on anything else."""
        text = str(spec).strip()
        kind, _, body = text.partition(":") if ":" in text else ("constant", "", text)
        if kind not in ("constant", "linear", "step"):
            raise ValueError(f"{name} {text}: a rate, or linear:<rates> / step:<rates> (e.g. linear:0.3,0.15 or "
                             f"step:0.3,0.15@0.6,0.05@0.9)")
        points = []
        for i, item in enumerate(body.split(",")):
            rate, at, where = item.partition("@")
            try:
                r = float(rate)
                f = float(where) if at else (0.0 if i == 0 else None)
            except ValueError:
                raise ValueError(f"{name} {text}: {item!r} is not a rate (or rate@fraction)") from None
            if not 0.0 < r < 1.0 or not math.isfinite(r):
                raise ValueError(f"{name} must be in (0, 1), got {r}" + (f" (in {text})" if kind != "constant" else ""))
            points.append([f, r])
        if kind == "constant" and len(points) != 1:
            raise ValueError(f"{name} {text}: one rate, or a schedule such as linear:0.3,0.15")
        if kind != "constant" and len(points) < 2:
            raise ValueError(f"{name} {text}: a schedule needs at least two rates")
        if kind == "step" and any(f is None for f, _ in points[1:]):
            raise ValueError(f"{name} {text}: every rate after the first needs @fraction (e.g. 0.15@0.6)")
        if points[-1][0] is None:
            points[-1][0] = 1.0
        if any(f is None for f, _ in points):
            n = len(points) - 1  # linear points without a fraction: evenly spaced between their neighbours
            for i in range(1, n):
                if points[i][0] is None:
                    j = next(k for k in range(i + 1, n + 1) if points[k][0] is not None)
                    points[i][0] = points[i - 1][0] + (points[j][0] - points[i - 1][0]) / (j - i + 1)
        fractions = [f for f, _ in points]
        if fractions[0] != 0.0 or any(b <= a for a, b in zip(fractions, fractions[1:])) or fractions[-1] > 1.0:
            raise ValueError(f"{name} {text}: fractions must start at 0, increase and stay within [0, 1]")
        return cls(kind, tuple((f, r) for f, r in points), text)

    @property
    def constant(self):
        return self.kind == "constant"

    @property
    def start(self):
        return self.points[0][1]

    def at(self, progress):
        """The rate at `progress` (fraction of training done, clipped to [0, 1])."""
        p = min(max(float(progress), 0.0), 1.0)
        if self.kind == "constant":
            return self.start
        last = self.points[0]
        for point in self.points[1:]:
            if p < point[0]:
                if self.kind == "step":
                    return last[1]
                (f0, r0), (f1, r1) = last, point
                return r0 + (r1 - r0) * (p - f0) / (f1 - f0)
            last = point
        return last[1]


def masking_targets(collator):
    """The collators inside `collator` that own a masking rate (`mlm_probability`): itself, a sentence collator's
    masker, a mixture's components, a tagged collator's inner one."""
    if isinstance(collator, ScheduledCollator):
        return masking_targets(collator.collator)
    for inner in ("masker", "collator"):
        if hasattr(collator, inner):
            return masking_targets(getattr(collator, inner))
    if isinstance(getattr(collator, "collators", None), dict):
        return [t for c in collator.collators.values() for t in masking_targets(c)]
    return [collator] if isinstance(getattr(collator, "mlm_probability", None), float) else []


def set_masking_rate(collator, rate):
    """Set the masking rate of every masking collator inside `collator`; the number of them set."""
    targets = masking_targets(collator)
    for t in targets:
        t.mlm_probability = float(rate)
    return len(targets)


@dataclass(eq=False)
class ScheduledCollator(WrappingCollator):
    """A training collator whose masking rate follows `schedule` over the optimizer steps (see the module
    docstring); set_epoch and for_eval: WrappingCollator's."""

    schedule: RateSchedule
    max_steps: int = 1
    batches_per_epoch: int | None = None  # None: a stream (every batch counts toward steps)
    accumulation: int = 1
    batches: int = 0  # training batches collated so far in this run (resumed runs start at what was consumed)
    steps_per_epoch: int = field(init=False, default=1)

    def begin(self, max_steps, global_step, batches_per_epoch, accumulation):
        """The training loop's shape and where it starts (Trainer's arithmetic for batches per update)."""
        self.max_steps, self.accumulation = max(int(max_steps), 1), max(int(accumulation), 1)
        self.batches_per_epoch = batches_per_epoch
        if batches_per_epoch:
            self.steps_per_epoch = max(-(-batches_per_epoch // self.accumulation), 1)
            epochs, within = divmod(int(global_step), self.steps_per_epoch)
            self.batches = epochs * batches_per_epoch + within * self.accumulation
        else:
            self.batches = int(global_step) * self.accumulation

    def step_of(self, batch):
        """The optimizer step (0-based) that training batch number `batch` belongs to."""
        if not self.batches_per_epoch:
            return batch // self.accumulation
        epochs, within = divmod(batch, self.batches_per_epoch)
        return epochs * self.steps_per_epoch + within // self.accumulation

    def rate_at_step(self, step):
        return self.schedule.at(step / self.max_steps)

    def __call__(self, features):
        set_masking_rate(self.collator, self.rate_at_step(self.step_of(self.batches)))
        self.batches += 1
        return self.collator(features)


class RateScheduleCallback(TrainerCallback):
    """Start the ScheduledCollator where the loop starts (PretrainTrainer adds it, and logs `mlm_probability`)."""

    def __init__(self, collator):
        self.collator = collator

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        try:
            per_epoch = len(train_dataloader) if train_dataloader is not None else None
        except TypeError:  # a stream
            per_epoch = None
        self.collator.begin(state.max_steps, state.global_step, per_epoch, args.gradient_accumulation_steps)
