"""ELMo's scalar mix (Peters et al., 2018, eq. 1): a learned, softmax-normalised weighting of all layers.

    mix = gamma * sum_j softmax(w)_j * h_j        h_j: [B, L, H], j = 0 (embeddings) .. n_layers

w starts at zero (an even average) and gamma at one; both are trained while the encoder stays frozen.
"""
import torch
from torch import nn


class ScalarMix(nn.Module):
    def __init__(self, n_states):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_states))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, hidden_states):
        """hidden_states: a sequence of n_states tensors [B, L, H] -> [B, L, H]."""
        if len(hidden_states) != self.weights.numel():
            raise ValueError(f"ScalarMix built for {self.weights.numel()} layers, got {len(hidden_states)}")
        s = torch.softmax(self.weights, dim=0)
        stacked = torch.stack(tuple(hidden_states), dim=0)  # [n_states, B, L, H]
        return self.gamma * torch.einsum("n,nblh->blh", s.to(stacked.dtype), stacked)
