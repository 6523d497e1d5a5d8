"""Mask-aware pooling of token sequences into one vector per object."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from astrofm.errors import ConfigError
from astrofm.nn.attention import attend, key_padding_mask

POOLS = ("attention", "mean")


def masked_mean(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of tokens (N, L, D) over real positions (mask (N, L) True = real) -> (N, D)."""
    if mask is None:
        return tokens.mean(dim=1)
    weights = mask.to(tokens.dtype)[..., None]
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class MaskedMeanPool(nn.Module):
    """Mean over real tokens."""

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        return masked_mean(tokens, mask)


class AttentionPool(nn.Module):
    """One learned query attends over the real tokens (multi-head cross-attention) -> (N, D).

    Returns the attention *output* (not its weights), for any batch size.
    """

    def __init__(self, dim: int, heads: int = 4, impl: str = "sdpa") -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"pooling width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.impl = impl
        self.query = nn.Parameter(torch.randn(1, heads, 1, dim // heads) * 0.02)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        n, length, dim = tokens.shape
        kv = self.kv(self.norm(tokens)).reshape(n, length, 2, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q = self.query.to(kv.dtype).expand(n, -1, -1, -1)
        pooled = attend(q, kv[0], kv[1], key_padding_mask(mask), impl=self.impl)  # (N, H, 1, Dh)
        return self.out(pooled.reshape(n, dim))


def create_pool(kind: str, dim: int, heads: int = 4, impl: str = "sdpa") -> nn.Module:
    """``"attention"`` (learned query) or ``"mean"`` (masked mean)."""
    if kind == "attention":
        return AttentionPool(dim, heads, impl)
    if kind == "mean":
        return MaskedMeanPool()
    raise ConfigError(f"pool must be one of {POOLS}, not {kind!r}")
