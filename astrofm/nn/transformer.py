"""Pre-LayerNorm transformer blocks with key-padding masks (and causal masks and KV caches for decoders)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from astrofm.nn.attention import MultiheadAttention, key_padding_mask
from astrofm.nn.heads import build_mlp


class Block(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)); ``gelu`` "none" (exact) or "tanh" (approximation)."""

    def __init__(self, dim: int, heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 impl: str = "sdpa", gelu: str = "none") -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiheadAttention(dim, heads, dropout=dropout, impl=impl)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = build_mlp([dim, int(dim * mlp_ratio), dim], dropout=dropout, gelu=gelu)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, *, causal: bool = False,
                cache: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), attn_mask, causal=causal, cache=cache))
        return x + self.drop(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """A stack of blocks and a final LayerNorm; ``mask`` (N, L) True = real token."""

    def __init__(self, dim: int, depth: int, heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 impl: str = "sdpa", gelu: str = "none") -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio=mlp_ratio, dropout=dropout, impl=impl, gelu=gelu) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        attn_mask = key_padding_mask(mask)
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.norm(x)
