"""A tiny MLM-like model (embedding, one MLP block, tied-free linear head) trained 30 AdamW steps with the
fused loss and with the eager HF loss from identical seeds: the loss curves must match and go down."""
import torch

from flce_cases import DEVICE, eager_hf_loss
from hf_pretrain_ext.kernels import fused_linear_cross_entropy

V, H, B, T, STEPS = 97, 32, 8, 24, 30


def train(loss_fn):
    torch.manual_seed(0)
    embed = torch.nn.Embedding(V, H)
    block = torch.nn.Sequential(torch.nn.Linear(H, H), torch.nn.GELU(), torch.nn.LayerNorm(H))
    head = torch.nn.Linear(H, V)
    params = [*embed.parameters(), *block.parameters(), *head.parameters()]
    for p in params:
        p.data = p.data.to(DEVICE)
    opt = torch.optim.AdamW(params, lr=1e-2)
    data = torch.Generator().manual_seed(1)
    curve = []
    for _ in range(STEPS):
        ids = torch.randint(0, V, (B, T), generator=data)
        labels = torch.where(torch.rand(B, T, generator=data) < 0.15, (ids * 7 + 3) % V, -100).to(DEVICE)
        hidden = block(embed(ids.to(DEVICE)))
        loss = loss_fn(hidden, head.weight, labels, head.bias, label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(loss.item())
    return torch.tensor(curve)


def test_fused_loss_curve_matches_eager(backend):
    fused, eager = train(fused_linear_cross_entropy), train(eager_hf_loss)
    assert torch.allclose(fused, eager, rtol=1e-4, atol=1e-5), (fused - eager).abs().max()
    assert fused[-5:].mean() < fused[:5].mean() - 0.5
