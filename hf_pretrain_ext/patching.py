"""Switch a stock transformers LM to the fused loss head, and back: `apply_fused_loss(model)`, `revert_fused_loss`.

Works for `*ForMaskedLM`, `*ForCausalLM` / `*LMHeadModel` and `*ForConditionalGeneration` models. In training with
labels, the model runs its own forward *without* labels; its output-embedding module (the LM-head Linear) is
switched, for that call only, to compute `fused_linear_cross_entropy(hidden, weight, labels, bias)` inside its own
forward and hand back a [..., 1] zero placeholder instead of [..., vocab] logits. Doing the work inside the head
module's forward means DDP/FSDP hooks have gathered its parameters the framework's way (nothing reads `.weight`
behind their back), and nothing after the head (BART's final_logits_bias, Gemma's softcapping) ever sees a full
logits tensor. Causal labels are shifted here as the stock loss does; seq2seq decoder inputs are built from the
labels as the stock forward does. The loss divides by `num_items_in_batch` when the Trainer passes it (stock v5
losses of several models ignore it). Evaluation and inference (not training, or no labels) use the stock forward.
Only bound methods on the instances change: state_dict, checkpoints and `save_pretrained` are untouched.
"""
import inspect
import types

import torch

from .constants import IGNORE_INDEX
from .kernels import fused_linear_cross_entropy


def loss_kind(model):
    """'mlm', 'causal' or 'seq2seq' from the model class name; ValueError for anything else."""
    name = type(model).__name__
    if name.endswith("ForMaskedLM"):
        return "mlm"
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal"
    if name.endswith("ForConditionalGeneration"):
        return "seq2seq"
    raise ValueError(f"apply_fused_loss supports *ForMaskedLM, *ForCausalLM/*LMHeadModel and "
                     f"*ForConditionalGeneration models, not {name}")


def is_patched(model):
    return "_hfpx_original_forward" in model.__dict__


def set_fused_loss(model, enabled, backend=None):
    """The one switch of the fused loss for a model (run_pretrain.py's --use_fused_loss comes here): on through
    `apply_fused_loss`, off through `revert_fused_loss`. Returns the model."""
    return apply_fused_loss(model, backend) if enabled else revert_fused_loss(model)


def apply_fused_loss(model, backend=None):
    """Patch `model` in place to train through the fused loss head; returns the model. Idempotent.

    hfpx models have the fused path built in: for them this only sets `config.use_fused_loss`. `backend` ('auto',
    'triton', 'torch'): None keeps an hfpx config's own `loss_backend` (e.g. from --config_overrides
    loss_backend=torch) and means 'auto' for a stock model. HFPX_LOSS_BACKEND in the environment overrides every
    choice (hf_pretrain_ext.kernels.functional.resolve_backend)."""
    if getattr(model.config, "model_type", "").startswith("hfpx-"):
        model.config.use_fused_loss = True
        if backend is not None:
            model.config.loss_backend = backend
        return model
    if is_patched(model):
        return model
    backend = backend or "auto"
    kind = loss_kind(model)
    head = model.get_output_embeddings()
    if head is None or not hasattr(head, "weight"):
        raise ValueError(f"{type(model).__name__} has no output-embedding Linear to fuse")
    softcap = getattr(model.config, "final_logit_softcapping", None)
    state = {"ctx": None}

    def head_forward(module, hidden):
        ctx = state["ctx"]
        if ctx is None:
            return module._hfpx_original_forward(hidden)
        labels = ctx["labels"]
        if labels.shape != hidden.shape[:-1]:
            raise ValueError(f"labels {tuple(labels.shape)} do not match the LM head's input "
                             f"{tuple(hidden.shape)}; was logits_to_keep set?")
        bias = module.bias if getattr(module, "bias", None) is not None else ctx["extra_bias"]
        ctx["loss"] = fused_linear_cross_entropy(hidden, module.weight, labels, bias, softcap=softcap,
                                                 num_items_in_batch=ctx["num_items_in_batch"], backend=backend)
        return hidden.new_zeros(()).expand(*hidden.shape[:-1], 1)  # placeholder: no [..., vocab] logits

    def model_forward(self, *args, labels=None, num_items_in_batch=None, **kwargs):
        if labels is None or not self.training:
            if num_items_in_batch is not None:
                kwargs["num_items_in_batch"] = num_items_in_batch
            return self._hfpx_original_forward(*args, labels=labels, **kwargs)
        targets = labels
        if kind == "causal":
            targets = torch.nn.functional.pad(labels[..., 1:], (0, 1), value=IGNORE_INDEX)
        elif kind == "seq2seq" and kwargs.get("decoder_input_ids") is None \
                and kwargs.get("decoder_inputs_embeds") is None:
            kwargs["decoder_input_ids"] = self.prepare_decoder_input_ids_from_labels(labels=labels)
        extra_bias = getattr(self, "final_logits_bias", None)
        swapped = extra_bias is not None
        if swapped:  # BART-style bias added after the head: keep it out of the placeholder's way
            self.final_logits_bias = extra_bias.new_zeros(1, 1)
        state["ctx"] = {"labels": targets, "num_items_in_batch": num_items_in_batch, "loss": None,
                        "extra_bias": extra_bias.reshape(-1) if swapped else None}
        try:
            outputs = self._hfpx_original_forward(*args, **kwargs)
            loss = state["ctx"]["loss"]
        finally:
            state["ctx"] = None
            if swapped:
                self.final_logits_bias = extra_bias
        if loss is None:
            raise RuntimeError(f"{type(self).__name__}'s forward did not call its LM head")
        outputs["loss"] = loss
        outputs["logits"] = None
        return outputs

    # keep the stock signature visible (Trainer's remove_unused_columns and label-name detection read it)
    model_forward.__signature__ = inspect.signature(type(model).forward)
    head._hfpx_original_forward = head.forward
    head.forward = types.MethodType(head_forward, head)
    model.__dict__["_hfpx_head"] = head  # not a submodule: state_dict stays as it was
    model._hfpx_original_forward = model.forward
    model.forward = types.MethodType(model_forward, model)
    model.accepts_loss_kwargs = True  # the Trainer then passes num_items_in_batch and trusts the division
    return model


def revert_fused_loss(model):
    """Undo `apply_fused_loss` (a no-op on a model that is not patched)."""
    if getattr(model.config, "model_type", "").startswith("hfpx-"):
        model.config.use_fused_loss = False
        return model
    if not is_patched(model):
        return model
    head = model.__dict__.pop("_hfpx_head")
    del head.forward
    del head._hfpx_original_forward
    del model.forward
    del model._hfpx_original_forward
    del model.accepts_loss_kwargs
    return model
