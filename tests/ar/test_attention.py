"""The decoder's use of astrofm.nn: causal attention in every implementation, end-aligned masks, KV cache."""

from __future__ import annotations

import pytest
import torch

from astrofm.nn import MultiheadAttention, attend, causal_mask


def test_causal_mask_is_aligned_at_the_end() -> None:
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    assert causal_mask(3, 3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_causal_attention_agrees_across_implementations(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, dtype=dtype) for _ in range(3))
    reference = attend(q.double(), k.double(), v.double(), causal=True, impl="manual")
    for impl in ("sdpa", "manual", "auto"):
        out = attend(q, k, v, causal=True, impl=impl)
        torch.testing.assert_close(out.double(), reference, atol=3e-2 if dtype == torch.bfloat16 else 1e-5, rtol=0)
    # query i never sees key j > i: changing the last key/value leaves every earlier output unchanged
    k2, v2 = k.clone(), v.clone()
    k2[:, :, -1] += 5
    v2[:, :, -1] -= 5
    for impl in ("sdpa", "manual", "auto"):
        torch.testing.assert_close(attend(q, k2, v2, causal=True, impl=impl)[:, :, :-1],
                                   attend(q, k, v, causal=True, impl=impl)[:, :, :-1], atol=0, rtol=0)


def test_attention_with_a_kv_cache_equals_the_full_causal_pass() -> None:
    torch.manual_seed(0)
    attention = MultiheadAttention(16, 4).eval()
    x = torch.randn(2, 6, 16)
    full = attention(x, causal=True)
    keys: list[torch.Tensor] = []
    values: list[torch.Tensor] = []

    def cache(k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys.append(k)
        values.append(v)
        return torch.cat(keys, dim=2), torch.cat(values, dim=2)

    first = attention(x[:, :4], causal=True, cache=cache)
    rest = [attention(x[:, i: i + 1], cache=cache) for i in (4, 5)]
    torch.testing.assert_close(torch.cat([first, *rest], dim=1), full, atol=1e-6, rtol=1e-6)
