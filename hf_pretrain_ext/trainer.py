"""PretrainTrainer: the HF Trainer with what pretraining needs on top.

- a separate evaluation collator (fixed masking, so every evaluation scores the same masked positions);
- per-objective losses (mlm_loss, sop_loss, ...) averaged over the logging window and logged beside `loss`;
- mixtures (hf_pretrain_ext.collators.mixture): a batch whose rows carry `mixture_component` is run one component
  at a time, and each component's per-token loss is logged as `<name>_loss` through the same mechanism (the sum of
  the parts is the batch's loss exactly, num_items_in_batch included);
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
        components = inputs.pop("mixture_component", None) if isinstance(inputs, dict) else None
        if components is not None and model.training and not return_outputs:
            return self._mixture_loss(model, inputs, components, num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                             num_items_in_batch=num_items_in_batch)
        if model.training and isinstance(outputs, dict):
            for name in LOSS_PARTS:
                part = outputs.get(name)
                if part is not None:
                    self._parts_sum[name] += float(part.detach().float())
                    self._parts_count[name] += 1
        return (loss, outputs) if return_outputs else loss

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
        per_row = counted.ne(-100).sum(-1)
        total = num_items_in_batch if num_items_in_batch is not None else per_row.sum()
        # compute_loss scales a num_items-normalised loss by the number of processes (tokens averaged across them)
        scale = self.accelerator.num_processes if (self.args.average_tokens_across_devices
                                                   and num_items_in_batch is not None) else 1
        loss = 0.0
        for c in components.unique().tolist():
            rows = components == c
            sub = {k: v[rows] if torch.is_tensor(v) and v.dim() and v.shape[0] == len(rows) else v
                   for k, v in inputs.items()}
            n_c = per_row[rows].sum()
            if self.model_accepts_loss_kwargs:
                part = super().compute_loss(model, sub, num_items_in_batch=total)
                loss = loss + part
                mean = part.detach().float() * float(total) / (scale * max(float(n_c), 1.0))
            else:  # the model averages over its own sub-batch: weight by token share
                mean = super().compute_loss(model, sub)
                loss = loss + mean * n_c / torch.as_tensor(total).clamp(min=1)
                mean = mean.detach().float()
            name = names[c] if names is not None and c < len(names) else str(c)
            self._record_part(f"{name}_loss", mean)
        return loss

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
