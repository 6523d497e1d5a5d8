"""AR tokenizers: patch order and layout, per-patch standardization, spectrum windows, light-curve time order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrofm.ar import create_tokenizer, patchify, spiral_order, unpatchify
from astrofm.ar.tokenizers import astropt_spiral_order
from astrofm.data.batch import collate
from astrofm.errors import ConfigError
from tests.modalities.factories import raw_samples


def test_spiral_order_starts_at_the_centre_and_grows_ring_by_ring() -> None:
    order = spiral_order(5, 5)
    assert sorted(order) == list(range(25)) and order[0] == 12
    ring = [max(abs(i // 5 - 2), abs(i % 5 - 2)) for i in order]
    assert ring == sorted(ring) and ring.count(1) == 8
    assert sorted(spiral_order(4, 4)[:4]) == [5, 6, 9, 10]


def test_astropt_spiral_reverses_the_clockwise_walk_inwards_from_the_top_left() -> None:
    assert astropt_spiral_order(3) == [4, 3, 6, 7, 8, 5, 2, 1, 0]
    assert astropt_spiral_order(4)[:4] == [9, 10, 6, 5] and astropt_spiral_order(4)[-4:] == [3, 2, 1, 0]
    tokenizer = create_tokenizer("image_patches", dim=8, img_size=12, patch_size=4, order="astropt_spiral")
    assert tokenizer.order.tolist() == astropt_spiral_order(3) != spiral_order(3, 3)


def test_patches_are_pixel_major_band_last_and_invert() -> None:
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    patches = patchify(images, 2)
    assert patches.shape == (2, 4, 12)
    assert patches[0, 1, :6].tolist() == [2.0, 18.0, 34.0, 3.0, 19.0, 35.0]  # patch (0, 1): pixel (0, 2) g,r,i ...
    torch.testing.assert_close(unpatchify(patches, 2, 3, 4, 4), images, atol=0, rtol=0)


def test_image_tokens_follow_the_order_and_are_standardized_per_patch() -> None:
    batch = collate(raw_samples(2, modalities=("image",)))
    raw = create_tokenizer("image_patches", dim=8, in_chans=4, img_size=8, patch_size=4, order="raster",
                           standardize=False, zero_bad_pixels=False)
    spiral = create_tokenizer("image_patches", dim=8, in_chans=4, img_size=8, patch_size=4, order=[3, 2, 1, 0])
    tokens = raw.tokenize(batch["image"])
    torch.testing.assert_close(raw.to_image(tokens.values), batch["image"].data["flux"].float(), atol=0, rtol=0)
    values = spiral.tokenize(batch["image"]).values
    masked = patchify(batch["image"].data["flux"] * batch["image"].data["mask"], 4)
    expected = masked[:, [3, 2, 1, 0]]
    expected = (expected - expected.mean(-1, keepdim=True)) / expected.std(-1, unbiased=False, keepdim=True)
    torch.testing.assert_close(values, expected, atol=1e-5, rtol=1e-5)
    assert tokens.mask.all() and tokens.position.shape == (2, 4, 8)
    with pytest.raises(ConfigError, match="permutation"):
        create_tokenizer("image_patches", dim=8, img_size=8, patch_size=4, order=[0, 0, 1, 2])


def test_astropt_standardization_uses_the_unbiased_std_plus_1e_8() -> None:
    batch = collate(raw_samples(2, modalities=("image",)))
    batch["image"].data["flux"][0, :, :4, :4] = 3.0  # a constant patch: 0, not NaN
    tokenizer = create_tokenizer("image_patches", dim=8, in_chans=4, img_size=8, patch_size=4, order="raster",
                                 standardize="astropt", zero_bad_pixels=False)
    patches = patchify(batch["image"].data["flux"].float(), 4)
    std, mean = torch.std_mean(patches, dim=-1, keepdim=True)
    torch.testing.assert_close(tokenizer.tokenize(batch["image"]).values, (patches - mean) / (std + 1e-8),
                               atol=0, rtol=0)
    assert (tokenizer.tokenize(batch["image"]).values[0, 0] == 0).all()
    with pytest.raises(ConfigError, match="standardize"):
        create_tokenizer("image_patches", dim=8, img_size=8, patch_size=4, standardize="unbiased")


def test_spectrum_windows_weigh_only_good_pixels_and_drop_empty_windows() -> None:
    samples = raw_samples(2, modalities=("spectrum",), lengths=[40, 24])
    samples[0]["spectrum"]["mask"][:] = False
    samples[0]["spectrum"]["mask"][8:16] = True  # window 1 of object 0: all bad
    samples[0]["spectrum"]["mask"][3] = True
    batch = collate(samples)
    tokenizer = create_tokenizer("spectrum_windows", dim=8, window=8)
    tokens = tokenizer.tokenize(batch["spectrum"])
    assert tokens.values.shape == (2, 5, 8)
    assert tokens.mask.tolist() == [[True, False, True, True, True], [True, True, True, False, False]]
    assert tokens.weight[0, 0, 3] == 0 and tokens.values[0, 0, 3] == 0 and tokens.weight[0, 0, 2] == 1
    flux = batch["spectrum"].data["flux"][0]
    torch.testing.assert_close(tokens.values[0, 2], flux[16:24])
    torch.testing.assert_close(tokenizer.to_flux(tokens.values, 40)[0, 16:40], flux[16:40])


def test_ar_spectrum_windows_must_not_overlap() -> None:
    """With stride < window the next token's target is partly in this token's input: a trivial loss."""
    with pytest.raises(ConfigError, match="overlap"):
        create_tokenizer("spectrum_windows", dim=8, window=8, stride=4)
    assert create_tokenizer("spectrum_windows", dim=8, window=8, stride=8).token_size == 8


def test_light_curve_points_are_sorted_by_time_with_padding_last() -> None:
    samples = raw_samples(2, modalities=("lightcurve",), lengths=[12, 7])
    batch = collate(samples)
    tokens = create_tokenizer("lightcurve_points", dim=8, n_bands=2).tokenize(batch["lightcurve"])
    assert tokens.mask.sum(dim=1).tolist() == [12, 7] and not tokens.mask[1, 7:].any()
    item = samples[1]["lightcurve"]
    order = np.argsort(item["time"], kind="stable")
    np.testing.assert_allclose(tokens.values[1, :7, 0].numpy(), item["flux"][order], rtol=1e-6)
    np.testing.assert_allclose(tokens.values[1, :7, 1].numpy(), item["flux_err"][order], rtol=1e-6)


def test_missing_tabular_features_are_not_tokens() -> None:
    batch = collate([{"object_id": "a", "tabular": {"values": np.array([1.0, np.nan, 3.0], np.float32)}}])
    tokens = create_tokenizer("tabular_features", dim=8, n_features=3).tokenize(batch["tabular"])
    assert tokens.mask.tolist() == [[True, False, True]] and tokens.values[0, :, 0].tolist() == [1.0, 0.0, 3.0]
