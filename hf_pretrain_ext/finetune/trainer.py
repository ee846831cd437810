"""FinetuneTrainer: PretrainTrainer (atomic checkpoints, SIGTERM save-and-stop, non-finite loss stop) plus what
fine-tuning needs: per-layer-group learning rates, frozen parameters kept in the optimizer for gradual
unfreezing, cls_loss / lm_loss logged beside `loss`, and saving/reloading `BackboneClassifier` (a plain
nn.Module whose backbone may tie weights, which the Trainer's state-dict path cannot write)."""
import logging
import os

from safetensors.torch import load_model

from ..trainer import PretrainTrainer
from .modeling import is_stock, save_wrapped
from .strategies import optimizer_groups

logger = logging.getLogger("hf_pretrain_ext")
FINETUNE_LOSS_PARTS = ("cls_loss", "lm_loss")


class FinetuneTrainer(PretrainTrainer):
    loss_parts = FINETUNE_LOSS_PARTS

    def __init__(self, *args, layer_lr_decay=1.0, include_frozen=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.layer_lr_decay = layer_lr_decay
        self.include_frozen = include_frozen

    def create_optimizer(self, model=None):
        model = self.model if model is None else model
        if self.optimizer is None:
            groups = optimizer_groups(model, self.args.learning_rate, self.args.weight_decay,
                                      self.get_decay_parameter_names(model), self.layer_lr_decay,
                                      self.include_frozen)
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            optimizer_kwargs.pop("lr", None)  # every group carries its own
            self.optimizer = optimizer_cls(groups, lr=self.args.learning_rate, **optimizer_kwargs)
        return self.optimizer

    def _save(self, output_dir=None, state_dict=None):
        model = self.accelerator.unwrap_model(self.model)
        if is_stock(model):
            return super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        save_wrapped(model, output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _load_best_model(self):
        model = self.accelerator.unwrap_model(self.model)
        if is_stock(model):
            return super()._load_best_model()
        best = self.state.best_model_checkpoint
        logger.info("loading the best model from %s (score %s)", best, self.state.best_metric)
        load_model(model, os.path.join(best, "model.safetensors"), strict=True)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        target = self.accelerator.unwrap_model(self.model if model is None else model)
        if is_stock(target):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_model(target, os.path.join(resume_from_checkpoint, "model.safetensors"), strict=True)
