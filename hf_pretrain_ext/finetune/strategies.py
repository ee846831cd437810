"""Which parameters train, at which learning rate, from when: the parameter bookkeeping of every strategy.

A model's parameters are put in *layer groups* by depth: 0 = everything before the first transformer layer
(embeddings), 1..L = the transformer layers, L+1 = everything after them (final layer norm, pooler, scalar mix,
classification head). The layers are found without knowing the architecture: the longest `nn.ModuleList` of
identical blocks (BERT `encoder.layer`, GPT-2 `h`, Llama `layers`); "before" and "after" follow the order in
which modules were registered, which is the order of the forward pass in every transformers model.

- full: all trainable. feature_based / adapters: only the names `trainable_names` returns (head, scalar mix,
  adapters); the rest has requires_grad=False.
- discriminative learning rates (ULMFiT, Howard & Ruder 2018): group d trains at lr * decay**(L+1-d).
- gradual unfreezing (ULMFiT): only group L+1 at first; `GradualUnfreezingCallback` unfreezes the next group
  down every epoch or every N steps. The optimizer holds every parameter from the start (AdamW skips
  parameters whose grad is None), so an unfrozen layer starts training at once with fresh moments.
"""
import logging
from collections import Counter

from torch import nn
from transformers import TrainerCallback

logger = logging.getLogger("hf_pretrain_ext")


def find_layers(model):
    """(prefix, ModuleList) of the transformer layers: the longest ModuleList whose items share one class; (None,
    an empty list) for a model without one (word2vec, NNLM)."""
    best = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if len({type(m) for m in module}) == 1 and (best is None or len(module) > len(best[1])):
                best = (name, module)
    return best or (None, nn.ModuleList())


def layer_groups(model):
    """{parameter name: depth} with 0 = below the layers, 1..L = layer i, L+1 = above (heads). Without a layer
    stack: 0 = the first registered child (the backbone), 1 = the rest (the head)."""
    prefix, layers = find_layers(model)
    n_layers = len(layers)
    if prefix is None:
        first = next(iter(dict(model.named_children())), "")
        return {name: 0 if name.split(".", 1)[0] == first else 1 for name, _ in model.named_parameters()}
    depth, seen_layers = {}, False
    for name, _ in model.named_parameters():
        if name.startswith(prefix + "."):
            seen_layers = True
            depth[name] = int(name[len(prefix) + 1:].split(".", 1)[0]) + 1
        else:
            depth[name] = n_layers + 1 if seen_layers else 0
    return depth


def num_groups(model):
    return len(find_layers(model)[1]) + 2


def set_trainable(model, names):
    """requires_grad=True exactly for the parameters in `names`."""
    names = set(names)
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)


def trainable_parameter_names(model):
    return [name for name, p in model.named_parameters() if p.requires_grad]


def count_trainable(model):
    """(trainable, total) parameter counts; shared (tied) tensors counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def describe_trainable(model, label):
    trainable, total = count_trainable(model)
    groups = Counter(name.split(".")[0] for name in trainable_parameter_names(model))
    line = (f"{label}: {trainable:,} of {total:,} parameters trainable ({100 * trainable / max(total, 1):.2f}%)"
            f" [{', '.join(f'{k}: {v} tensors' for k, v in sorted(groups.items()))}]")
    logger.info(line)
    print(line, flush=True)  # shown at the default (passive) log level too
    return trainable


def unfreeze_top(model, n_groups):
    """Trainable: the top `n_groups` layer groups (1 = the head only); everything else frozen."""
    depth = layer_groups(model)
    top = max(depth.values())
    set_trainable(model, [name for name, d in depth.items() if d > top - n_groups])


def optimizer_groups(model, learning_rate, weight_decay, decay_names, layer_lr_decay=1.0, include_frozen=False):
    """AdamW parameter groups, one per (depth, decayed or not), at learning_rate * layer_lr_decay**(top - depth).

    decay_names: the parameters that get weight decay (the Trainer's `get_decay_parameter_names`).
    include_frozen: keep frozen parameters in the optimizer too (gradual unfreezing turns them on later)."""
    depth = layer_groups(model)
    top = max(depth.values())
    decay_names = set(decay_names)
    groups, seen = {}, set()
    for name, param in model.named_parameters():
        if id(param) in seen or not (param.requires_grad or include_frozen):
            continue
        seen.add(id(param))
        decay = weight_decay if name in decay_names else 0.0
        key = (depth[name], decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": learning_rate * layer_lr_decay ** (top - depth[name]),
                           "weight_decay": decay, "depth": depth[name]}
        groups[key]["params"].append(param)
    return [groups[k] for k in sorted(groups)]


class GradualUnfreezingCallback(TrainerCallback):
    """ULMFiT gradual unfreezing: one more layer group trainable, from the top, every epoch or every N steps.

    `schedule` records (global_step, number of trainable groups) at each change, for logs and tests."""

    def __init__(self, model, every_n_steps=0):
        self.model = model
        self.every_n_steps = every_n_steps
        self.total = num_groups(model)
        self.unfrozen = 1
        self.schedule = []
        unfreeze_top(model, 1)

    def _advance(self, step):
        if self.unfrozen >= self.total:
            return
        self.unfrozen += 1
        unfreeze_top(self.model, self.unfrozen)
        self.schedule.append((step, self.unfrozen))
        describe_trainable(self.model, f"gradual unfreezing, step {step}: top {self.unfrozen} of {self.total} groups")

    def on_train_begin(self, args, state, control, **kwargs):
        # a resumed run: replay the schedule up to where it stopped
        done = (state.global_step // self.every_n_steps if self.every_n_steps
                else int(state.epoch or 0))
        while self.unfrozen < min(1 + done, self.total):
            self._advance(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self._advance(state.global_step)

    def on_epoch_end(self, args, state, control, **kwargs):
        if not self.every_n_steps:
            self._advance(state.global_step)
