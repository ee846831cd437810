"""PretrainTrainer: the HF Trainer with what pretraining needs on top.

- a separate evaluation collator (fixed masking, so every evaluation scores the same masked positions);
- per-objective losses (mlm_loss, sop_loss, ...) averaged over the logging window and logged beside `loss`;
- stock models whose loss ignores `num_items_in_batch` (v5 BertForMaskedLM takes **kwargs, so the Trainer assumes
  it divides by it and stops scaling for gradient accumulation) are detected and scaled the Trainer's own way.
"""
from collections import defaultdict

import torch
from transformers import Trainer, TrainerCallback

LOSS_PARTS = ("mlm_loss", "sop_loss")


def honours_num_items(model):
    """True for models known to divide their loss by num_items_in_batch."""
    return getattr(model, "accepts_loss_kwargs", False) is True


class PretrainTrainer(Trainer):
    def __init__(self, *args, eval_data_collator=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator
        self._parts_sum = defaultdict(float)
        self._parts_count = defaultdict(int)
        if not honours_num_items(self.accelerator.unwrap_model(self.model)):
            self.model_accepts_loss_kwargs = False
        self.add_callback(CollatorEpochCallback(self.data_collator))

    def get_eval_dataloader(self, eval_dataset=None):
        if self.eval_data_collator is None:
            return super().get_eval_dataloader(eval_dataset)
        train_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = train_collator

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                             num_items_in_batch=num_items_in_batch)
        if model.training and isinstance(outputs, dict):
            for name in LOSS_PARTS:
                part = outputs.get(name)
                if part is not None:
                    self._parts_sum[name] += float(part.detach().float())
                    self._parts_count[name] += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, *args, **kwargs):
        if "loss" in logs and self._parts_count:
            for name, count in self._parts_count.items():
                logs[name] = round(self._parts_sum[name] / count, 4)
            self._parts_sum.clear()
            self._parts_count.clear()
        super().log(logs, *args, **kwargs)


class CollatorEpochCallback(TrainerCallback):
    """Tell the collator the epoch, so per-example masks are drawn from (seed, epoch, example index)."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        if hasattr(self.collator, "set_epoch"):
            self.collator.set_epoch(int(state.epoch or 0))
