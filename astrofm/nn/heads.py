"""MLP builder and the projection head to the shared, L2-normalized embedding space."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


def build_mlp(sizes: Sequence[int], *, dropout: float = 0.0, final_activation: bool = False,
              gelu: str = "none", bias: bool = True) -> nn.Sequential:
    """Linear layers through ``sizes`` (in, hidden..., out) with GELU (and dropout) in between.

    ``gelu``: "none" (exact erf GELU) or "tanh" (its tanh approximation, as in GPT-2).
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.GELU(approximate=gelu))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class ProjectionHead(nn.Module):
    """Pooled encoder output (N, in_dim) -> unit vectors (N, out_dim); linear if ``hidden`` is 0."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 0) -> None:
        super().__init__()
        self.net = build_mlp([in_dim, hidden, out_dim] if hidden else [in_dim, out_dim])

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.net(x).float(), dim=-1)
