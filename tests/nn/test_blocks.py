"""Masked attention, transformer blocks and pooling: padding never changes a real output."""

from __future__ import annotations

import pytest
import torch

from astrofm.nn import AttentionPool, ContinuousEncoding, ProjectionHead, Transformer, create_pool, masked_mean
from astrofm.nn.attention import attend, key_padding_mask


def _padded(n: int = 3, length: int = 7, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, dim, generator=g)
    lengths = torch.tensor([length, 4, 1])[:n]
    mask = torch.arange(length)[None] < lengths[:, None]
    return x, mask


def test_sdpa_equals_manual_attention_with_masks() -> None:
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, 2, 5, 8, generator=g) for _ in range(3))
    _, mask = _padded(3, 5)
    sdpa = attend(q, k, v, key_padding_mask(mask), impl="sdpa")
    manual = attend(q, k, v, key_padding_mask(mask), impl="manual")
    torch.testing.assert_close(sdpa, manual, atol=1e-5, rtol=1e-5)
    # padded keys get no weight: changing them leaves every output unchanged
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 4:] = 100.0
    v2[1, :, 4:] = -100.0
    torch.testing.assert_close(attend(q, k2, v2, key_padding_mask(mask)), sdpa, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_transformer_and_pools_ignore_padding(impl: str) -> None:
    torch.manual_seed(0)
    net = Transformer(16, depth=2, heads=4, impl=impl).eval()
    pools = [AttentionPool(16, 4, impl).eval(), create_pool("mean", 16)]
    x, mask = _padded()
    out = net(x, mask)
    garbage = torch.where(mask[..., None], x, torch.full_like(x, 1e3))
    torch.testing.assert_close(net(garbage, mask)[mask], out[mask], atol=1e-5, rtol=1e-5)
    # the same objects with 5 more padded positions
    longer = torch.cat([x, torch.randn(3, 5, 16)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], dim=1)
    longer_out = net(longer, longer_mask)
    torch.testing.assert_close(longer_out[:, :7][mask], out[mask], atol=1e-5, rtol=1e-5)
    for pool in pools:
        torch.testing.assert_close(pool(longer_out, longer_mask), pool(out, mask), atol=1e-5, rtol=1e-5)
    # one object alone gives what it gives in the batch (batch size 1, no squeeze bug)
    alone = net(x[2:3, :1], mask[2:3, :1])
    torch.testing.assert_close(alone[0, 0], out[2, 0], atol=1e-5, rtol=1e-5)
    assert pools[0](alone, None).shape == (1, 16)


def test_fully_masked_row_stays_finite() -> None:
    net = Transformer(8, depth=1, heads=2)
    x = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    assert torch.isfinite(net(x, mask)).all()
    assert torch.isfinite(AttentionPool(8, 2)(x, mask)).all()


def test_masked_mean_and_projection_head() -> None:
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([[2.0, 3.0]]))
    z = ProjectionHead(2, 5, hidden=4)(masked_mean(x, mask))
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(1))


def test_continuous_encoding_is_float32_under_bf16_autocast() -> None:
    enc = ContinuousEncoding(16, 0.02, 5000.0)
    t = torch.tensor([[1000.0, 1000.01]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(t)
    assert torch.isfinite(out).all()
    # 0.01 day apart resolves: the two encodings differ
    assert (out[0, 0] - out[0, 1]).abs().max() > 1e-3
