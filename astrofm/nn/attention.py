"""Multi-head attention with key-padding masks inside the attention itself.

Masks are boolean with True at real tokens. Padded keys never receive
attention weight, so outputs at real positions do not depend on the padding.
``impl="sdpa"`` uses ``F.scaled_dot_product_attention`` (fused kernels);
``impl="manual"`` is the explicit softmax(QKᵀ/√d)V, kept as a reference for
tests and speed comparisons. ``impl="auto"`` takes SDPA, except in bf16/fp16
on CPU for up to :data:`CPU_EXPLICIT_MAX_KEYS` keys, where PyTorch's fused CPU
kernels are slower than the explicit computation (measured on a 2-core AMX
CPU, forward + backward in bf16: 5x slower at 64 keys, 3.5x at 128, even at
about 240; faster beyond). ``causal=True`` lets each query see only keys at
its own or earlier positions (aligned at the end when there are more keys
than queries, as in cached decoding); ``cache`` lets a decoder keep the keys
and values of earlier steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astrofm.errors import ConfigError

ATTENTION_IMPLS = ("sdpa", "manual", "auto")
#: Longest key sequence for which ``impl="auto"`` uses the explicit computation in bf16/fp16 on CPU.
CPU_EXPLICIT_MAX_KEYS = 240


def key_padding_mask(mask: Tensor | None) -> Tensor | None:
    """(N, L) True = real key -> (N, 1, 1, L) boolean attention mask.

    A row without any real key attends to all keys instead, so that it stays
    finite (its output is meaningless and must be masked downstream).
    """
    if mask is None:
        return None
    mask = mask.bool()
    mask = mask | ~mask.any(dim=-1, keepdim=True)
    return mask[:, None, None, :]


def causal_mask(n_queries: int, n_keys: int, device: torch.device | str | None = None) -> Tensor:
    """(Lq, Lk) boolean mask, True where query i may see key j: j <= i + (Lk - Lq)."""
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril(diagonal=n_keys - n_queries)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *, dropout: float = 0.0,
           impl: str = "sdpa", causal: bool = False) -> Tensor:
    """Scaled dot-product attention of q (N, H, Lq, Dh) over k, v (N, H, Lk, Dh).

    ``mask`` is a boolean (N, 1, 1 or Lq, Lk) mask, e.g. from :func:`key_padding_mask` (or None);
    ``causal`` combines it with :func:`causal_mask`.
    """
    if impl == "auto":
        explicit = (q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16)
                    and k.shape[-2] <= CPU_EXPLICIT_MAX_KEYS)
        impl = "manual" if explicit else "sdpa"
    if causal and (mask is not None or q.shape[-2] != k.shape[-2] or impl != "sdpa"):
        allowed = causal_mask(q.shape[-2], k.shape[-2], q.device)
        mask, causal = (allowed if mask is None else mask & allowed), False
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    if dropout > 0:
        weights = F.dropout(weights, p=dropout)
    return weights @ v


class MultiheadAttention(nn.Module):
    """Self-attention (fused QKV projection) with a key-padding mask."""

    def __init__(self, dim: int, heads: int, *, dropout: float = 0.0, bias: bool = True,
                 impl: str = "sdpa") -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"attention width {dim} is not divisible by {heads} heads")
        if impl not in ATTENTION_IMPLS:
            raise ConfigError(f"attention impl must be one of {ATTENTION_IMPLS}, not {impl!r}")
        self.heads = heads
        self.dropout = dropout
        self.impl = impl
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: Tensor, mask: Tensor | None = None, *, causal: bool = False,
                cache: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """x (N, L, D), mask (N, 1, 1 or L, Lk) boolean attention mask or None -> (N, L, D).

        ``cache`` receives this call's keys and values (N, H, L, Dh) and returns those to attend over
        (e.g. the earlier steps' followed by these).
        """
        n, length, dim = x.shape
        # unbind, not indexing: its backward stacks the three gradients instead of zero-filling and adding
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if cache is not None:
            k, v = cache(k, v)
        out = attend(q, k, v, mask, dropout=self.dropout if self.training else 0.0, impl=self.impl,
                     causal=causal)
        return self.out(out.transpose(1, 2).reshape(n, length, dim))
