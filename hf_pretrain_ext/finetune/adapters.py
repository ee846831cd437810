"""Bottleneck adapters (Houlsby et al., 2019): dense -> ReLU -> dense, added residually after each feed-forward
block, so `add_adapters` / `remove_adapters` never rename or touch a base weight.

Where "after the feed-forward block" is, per family (the first attribute path found on a layer):
- `output.dense` (BERT, RoBERTa, ELECTRA ...): the FFN's down-projection, before dropout + residual + LayerNorm,
  which is the position in the Houlsby paper;
- `mlp` (GPT-2, Llama, Mistral ...), `ffn` (DistilBERT), `feed_forward`: the whole feed-forward module.
The adapter is a child module of that block (`<block>.adapter`) and runs in a forward hook:
out = out + up(relu(down(out))). `up` starts at zero, so a freshly inserted adapter is the identity.
"""
import torch
from torch import nn

from .strategies import find_layers

FFN_PATHS = ("output.dense", "mlp", "ffn", "feed_forward")
ADAPTER_ATTR = "adapter"


class Adapter(nn.Module):
    def __init__(self, hidden_size, bottleneck):
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck)
        self.up = nn.Linear(bottleneck, hidden_size)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden):  # hidden: [B, L, H]
        return hidden + self.up(torch.relu(self.down(hidden)))


def feed_forward_blocks(model):
    """(name, module) of the feed-forward output of every transformer layer."""
    prefix, layers = find_layers(model)
    blocks = []
    for i, layer in enumerate(layers):
        for path in FFN_PATHS:
            module = layer
            for part in path.split("."):
                module = getattr(module, part, None)
                if module is None:
                    break
            if module is not None:
                blocks.append((f"{prefix}.{i}.{path}", module))
                break
        else:
            raise ValueError(f"{type(layer).__name__}: no feed-forward block found (looked for {FFN_PATHS})")
    return blocks


def _hook(module, inputs, output):
    adapter = getattr(module, ADAPTER_ATTR)
    if isinstance(output, tuple):  # blocks that return (hidden, extras...)
        return (adapter(output[0]), *output[1:])
    return adapter(output)


def _hidden_size(model):
    config = model.config
    return getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or config.d_model


def add_adapters(model, bottleneck=16):
    """Insert one adapter after each feed-forward block; returns the adapter parameter names."""
    if has_adapters(model):
        raise ValueError("the model already has adapters")
    hidden = _hidden_size(model)
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    for _, block in feed_forward_blocks(model):
        block.add_module(ADAPTER_ATTR, Adapter(hidden, bottleneck).to(device=device, dtype=dtype))
        block._hfpx_adapter_hook = block.register_forward_hook(_hook)
    return adapter_parameter_names(model)


def remove_adapters(model):
    """Take every adapter out again: the model is the base model it was before `add_adapters`."""
    for _, block in feed_forward_blocks(model):
        handle = getattr(block, "_hfpx_adapter_hook", None)
        if handle is not None:
            handle.remove()
            del block._hfpx_adapter_hook
        if ADAPTER_ATTR in block._modules:
            del block._modules[ADAPTER_ATTR]
    return model


def has_adapters(model):
    return any(ADAPTER_ATTR in block._modules for _, block in feed_forward_blocks(model))


def adapter_parameter_names(model):
    return [name for name, _ in model.named_parameters() if f".{ADAPTER_ATTR}." in name]
