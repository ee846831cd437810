"""PretrainTrainer: the HF Trainer with what pretraining needs on top.

- a separate evaluation collator (fixed masking, so every evaluation scores the same masked positions);
- per-objective losses (mlm_loss, sop_loss / nsp_loss, ...: the objective's `loss_parts`, model output -> logged
  name) averaged over the logging window and logged beside `loss`;
- mixtures (hf_pretrain_ext.collators.mixture): a batch whose rows carry `mixture_component` is run one component
  at a time, and each component's per-token loss is logged as `<name>_loss` through the same mechanism (the sum of
  the parts is the batch's loss exactly, num_items_in_batch included);
- stock models whose loss ignores `num_items_in_batch` (v5 BertForMaskedLM takes **kwargs, so the Trainer assumes
  it divides by it and stops scaling for gradient accumulation) are detected and scaled the Trainer's own way;
- checkpoints are written atomically: into `<output_dir>/.staging/checkpoint-N`, then renamed into place, so a
  crash or a full disk during a save never leaves a half-written `checkpoint-N` and never costs the previous one;
- SIGTERM/SIGINT save and stop; a non-finite loss stops the run without saving (see callbacks.py);
- a masking-rate schedule (collators/schedule.py) is started where the loop starts and its rate logged;
- distillation: with a teacher, each training batch gets the teacher's side (`distill`, computed under no_grad)
  and the student's forward adds the soft-target and cosine terms (models/distill_loss.py); evaluation scores
  the task loss alone.
"""
import errno
import json
import logging
import math
import os
import shutil
from collections import defaultdict

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, SchedulerType, get_last_checkpoint

from .callbacks import NonFiniteLossCallback, SignalStopCallback, TimeBudgetCallback, time_budget_scheduler
from .constants import IGNORE_INDEX
from .collators.base import CollatorBase
from .collators.schedule import RateScheduleCallback, ScheduledCollator
from .errors import UserError
from .models.distill_loss import PROJECTION, PROJECTION_FILE, teacher_target
from .rundir import CHECKPOINT_RECORD, rotate_own_checkpoints

logger = logging.getLogger(__name__)
STAGING = ".staging"

LOSS_PARTS = ("mlm_loss", "sop_loss")


def honours_num_items(model):
    """True for models known to divide their loss by num_items_in_batch."""
    return getattr(model, "accepts_loss_kwargs", False) is True


class PretrainTrainer(Trainer):
    loss_parts = LOSS_PARTS  # model outputs averaged over the logging window and logged beside `loss`

    def __init__(self, *args, eval_data_collator=None, run_record=None, loss_parts=None, teacher=None,
                 distill=None, max_train_minutes=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_budget = None if max_train_minutes is None else TimeBudgetCallback(60.0 * max_train_minutes)
        self.teacher, self.distill = teacher, dict(distill or {})  # distillation (models/distill_loss.py)
        parts = self.loss_parts if loss_parts is None else loss_parts  # names, or model output -> logged name
        self.loss_parts = dict(parts) if isinstance(parts, dict) else {name: name for name in parts}
        self.eval_data_collator = eval_data_collator
        self.run_record = run_record  # written into every checkpoint; its run_id decides what rotation may remove
        self._parts_sum = defaultdict(float)
        self._parts_count = defaultdict(int)
        if not honours_num_items(self.accelerator.unwrap_model(self.model)):
            self.model_accepts_loss_kwargs = False
        self.add_callback(CollatorEpochCallback(self.data_collator))
        if isinstance(self.data_collator, ScheduledCollator):
            self.add_callback(RateScheduleCallback(self.data_collator))
        self.signal_stop = SignalStopCallback()
        self.nonfinite = NonFiniteLossCallback()
        self.add_callback(self.signal_stop)
        self.add_callback(self.nonfinite)
        if self.time_budget is not None:
            self.add_callback(self.time_budget)

    def create_scheduler(self, num_training_steps, optimizer=None):
        """With a time budget, the schedule follows the budget's elapsed fraction (callbacks.time_budget_scheduler)."""
        if self.time_budget is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        kind = SchedulerType(self.args.lr_scheduler_type).value
        self.lr_scheduler = time_budget_scheduler(optimizer or self.optimizer, kind, self.args.warmup_steps,
                                                  self.time_budget)
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def restore_rng_on_first_step(self, checkpoint):
        """For a resume that skipped data itself (streams): the Trainer restores RNG states only when it skips
        batches, so restore them here, right before the first step, as it would have."""
        self._rng_checkpoint = checkpoint

    def training_step(self, model, inputs, num_items_in_batch=None):
        if getattr(self, "_rng_checkpoint", None) is not None:
            self._load_rng_state(self._rng_checkpoint)
            self._rng_checkpoint = None
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss):  # the Trainer checks this too (logging_nan_inf_filter), same sync
            self.nonfinite.report(self.state.global_step + 1, float(loss))
        return loss

    def _save_checkpoint(self, model, trial):
        if trial is not None or self.args.push_to_hub:  # hyper-parameter search / hub sync: the stock path
            return super()._save_checkpoint(model, trial)
        run_dir = self.args.output_dir
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging_root = os.path.join(run_dir, STAGING)
        staged, final = os.path.join(staging_root, name), os.path.join(run_dir, name)
        if self.args.should_save and os.path.exists(staged):
            shutil.rmtree(staged)
        self.accelerator.wait_for_everyone()
        os.makedirs(staged, exist_ok=True)  # every rank may write into it (rng states, shards)
        self.args.output_dir = staging_root
        try:
            super()._save_checkpoint(model, trial)
        except OSError as e:
            if self.args.should_save:
                shutil.rmtree(staging_root, ignore_errors=True)
            previous = last_complete_checkpoint(run_dir)
            reason = "disk full" if e.errno == errno.ENOSPC else e.strerror or str(e)
            raise UserError(f"could not save {name} ({reason}); the previous checkpoint "
                            f"{previous or '(none)'} is intact") from None
        finally:
            self.args.output_dir = run_dir
        if self.state.best_model_checkpoint and self.state.best_model_checkpoint.startswith(staging_root):
            self.state.best_model_checkpoint = self.state.best_model_checkpoint.replace(staging_root, run_dir, 1)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            if self.run_record is not None:
                with open(os.path.join(staged, CHECKPOINT_RECORD), "w") as f:
                    json.dump(self.run_record, f, indent=2)
            if os.path.exists(final):  # a stale folder of the same step (e.g. from before a resume)
                shutil.rmtree(final)
            os.replace(staged, final)
            shutil.rmtree(staging_root, ignore_errors=True)
            if self.run_record is not None:
                rotate_own_checkpoints(run_dir, self.run_record["run_id"], self.args.save_total_limit,
                                       self.state.best_model_checkpoint)
            else:
                rotate_checkpoints(run_dir, self.args.save_total_limit, self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()

    def _issue_warnings_after_load(self, load_result):
        """On resume, tied weights (the MLM decoder is the input embedding matrix) are not in the checkpoint by
        design: re-tie them instead of warning that they are missing; warn about anything else."""
        tied = set(getattr(self.model, "all_tied_weights_keys", None) or {})
        missing = [k for k in load_result.missing_keys if k not in tied and not k.startswith(PROJECTION + ".")]
        if len(missing) < len(load_result.missing_keys):
            self.model.tie_weights()
        super()._issue_warnings_after_load(type(load_result)(missing, load_result.unexpected_keys))

    def get_eval_dataloader(self, eval_dataset=None):
        if self.eval_data_collator is None:
            return super().get_eval_dataloader(eval_dataset)
        train_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        components = inputs.pop("mixture_component", None) if isinstance(inputs, dict) else None
        if components is not None and model.training and not return_outputs:
            return self._mixture_loss(model, inputs, components, num_items_in_batch)
        if self.teacher is not None and model.training and "labels" in inputs:
            inputs = dict(inputs, distill=self._teacher_target(inputs, model))
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                             num_items_in_batch=num_items_in_batch)
        if model.training and isinstance(outputs, dict):
            for name, logged in self.loss_parts.items():
                part = outputs.get(name)
                if part is not None:
                    self._record_part(logged, part.detach().float())
        return (loss, outputs) if return_outputs else loss

    def _teacher_target(self, inputs, model):
        """The teacher's side of this batch (no gradients; models/distill_loss.py), the teacher moved to the batch's
        device first; with the student's projection when the cosine loss compares different widths."""
        device = inputs["input_ids"].device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        projection = getattr(self.accelerator.unwrap_model(model), PROJECTION, None)
        return teacher_target(self.teacher, inputs, self.distill["alpha"], self.distill["temperature"],
                              self.distill.get("cosine", 0.0), projection)

    def _save(self, output_dir=None, state_dict=None):
        """The weights, and beside them the student's distillation projection (not part of the model)."""
        super()._save(output_dir, state_dict)
        projection = getattr(self.accelerator.unwrap_model(self.model), PROJECTION, None)
        if projection is not None:
            from safetensors.torch import save_file
            save_file({"weight": projection.weight.detach().cpu().contiguous()},
                      os.path.join(output_dir or self.args.output_dir, PROJECTION_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        projection = getattr(self.accelerator.unwrap_model(model or self.model), PROJECTION, None)
        path = os.path.join(resume_from_checkpoint, PROJECTION_FILE)
        if projection is not None:
            if not os.path.isfile(path):
                raise UserError(f"{resume_from_checkpoint} has no {PROJECTION_FILE}: it was not written by a run "
                                "distilling with the cosine loss between different widths")
            from safetensors.torch import load_file
            with torch.no_grad():
                projection.weight.copy_(load_file(path)["weight"])

    def _record_part(self, name, value):
        self._parts_sum[name] += float(value)
        self._parts_count[name] += 1

    def _mixture_loss(self, model, inputs, components, num_items_in_batch):
        """Loss of a batch mixing components: one forward per component present, losses added.

        Each sub-batch loss is divided by the whole batch's labelled-token count N (num_items_in_batch, or this
        batch's own count), so the sum is the batch loss; the logged part is the component's per-token mean."""
        names = getattr(self.data_collator, "component_names", None)
        labels = inputs["labels"]
        counted = labels[..., 1:] if self._loss_shifts_labels else labels
        per_row = counted.ne(IGNORE_INDEX).sum(-1)
        total = num_items_in_batch if num_items_in_batch is not None else per_row.sum()
        # compute_loss scales a num_items-normalised loss by the number of processes (tokens averaged across them)
        scale = self.accelerator.num_processes if (self.args.average_tokens_across_devices
                                                   and num_items_in_batch is not None) else 1
        loss = 0.0
        distilled = defaultdict(float)  # the whole batch's distillation parts, gathered over the components
        for c in components.unique().tolist():
            rows = components == c
            sub = {k: v[rows] if torch.is_tensor(v) and v.dim() and v.shape[0] == len(rows) else v
                   for k, v in inputs.items()}
            n_c = per_row[rows].sum()
            if self.teacher is not None:
                sub["distill"] = self._teacher_target(sub, model)
            if self.model_accepts_loss_kwargs:
                part, outputs = super().compute_loss(model, sub, return_outputs=True, num_items_in_batch=total)
                if self.teacher is not None:
                    # distill_loss is already a sum over this component's rows / N: the components' values add up;
                    # cosine_loss is a mean over the component's tokens: weighted by its share of them
                    distilled["distill_loss"] += float(outputs["distill_loss"])
                    if outputs.get("cosine_loss") is not None:
                        distilled["cosine_loss"] += float(outputs["cosine_loss"]) * float(n_c) / max(
                            float(per_row.sum()), 1.0)
                loss = loss + part
                mean = part.detach().float() * float(total) / (scale * max(float(n_c), 1.0))
            else:  # the model averages over its own sub-batch: weight by token share
                mean = super().compute_loss(model, sub)
                loss = loss + mean * n_c / torch.as_tensor(total).clamp(min=1)
                mean = mean.detach().float()
            name = names[c] if names is not None and c < len(names) else str(c)
            self._record_part(f"{name}_loss", mean)
        for name, value in distilled.items():
            self._record_part(self.loss_parts.get(name, name), value)
        return loss

    def log(self, logs, *args, **kwargs):
        if "loss" in logs and isinstance(self.data_collator, ScheduledCollator):  # the rate of the last step
            logs["mlm_probability"] = round(self.data_collator.rate_at_step(max(self.state.global_step - 1, 0)), 6)
        if "loss" in logs and self._parts_count:
            for name, count in self._parts_count.items():
                logs[name] = round(self._parts_sum[name] / count, 4)
            self._parts_sum.clear()
            self._parts_count.clear()
        super().log(logs, *args, **kwargs)


class CollatorEpochCallback(TrainerCallback):
    """Tell the collator the epoch, so per-example masks are drawn from (seed, epoch, example index). Only our
    collators (hf_pretrain_ext.collators.base.CollatorBase) have one; any other collator is left alone."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        if isinstance(self.collator, CollatorBase):
            # state.epoch is a whole number at an epoch's start and fractional when resuming inside one
            self.collator.set_epoch(math.floor((state.epoch or 0) + 1e-6))


def last_complete_checkpoint(output_dir):
    """The newest `checkpoint-N` in output_dir (staged, unfinished saves are never named so), or None."""
    return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None


def rotate_checkpoints(run_dir, save_total_limit, best_model_checkpoint):
    """Delete the oldest checkpoints beyond save_total_limit; the newest and the best are always kept."""
    try:
        from transformers.trainer_utils import rotate_checkpoints as rotate
    except ImportError:  # older transformers: no public helper; keep everything rather than guess
        return
    rotate(output_dir=run_dir, save_total_limit=save_total_limit, best_model_checkpoint=best_model_checkpoint,
           use_mtime=False)
