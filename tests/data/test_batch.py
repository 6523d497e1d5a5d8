"""Collate: padding, masks, presence, batch of one, absent modalities, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrofm.data.batch import collate
from astrofm.errors import DataFormatError
from tests.helpers.synthetic import make_samples, spectrum_item


def test_padding_mask_and_presence():
    rng = np.random.default_rng(0)
    samples = [
        {"object_id": "a", "spectrum": spectrum_item(rng, 5)},
        {"object_id": "b"},
        {"object_id": "c", "spectrum": spectrum_item(rng, 9)},
    ]
    batch = collate(samples)
    spec = batch["spectrum"]
    assert spec.data["flux"].shape == (2, 9)
    assert spec.presence.tolist() == [True, False, True]
    assert spec.index.tolist() == [0, 2]
    assert spec.mask.tolist() == [[True] * 5 + [False] * 4, [True] * 9]
    assert torch.all(spec.data["flux"][0, 5:] == 0)
    np.testing.assert_array_equal(spec.data["flux"][1].numpy(), samples[2]["spectrum"]["flux"])


def test_batch_of_one_and_absent_modality():
    samples = make_samples(1, modalities=("spectrum",))
    batch = collate(samples)
    assert len(batch) == 1
    assert "image" not in batch
    assert batch["spectrum"].data["flux"].shape == (1, 64)
    assert batch["spectrum"].mask.shape == (1, 64)


def test_lightcurves_of_different_lengths_and_meta():
    samples = make_samples(4, modalities=("lightcurve", "image"))
    samples[1]["lightcurve"] = {k: (v[:7] if isinstance(v, np.ndarray) else v) for k, v in
                                samples[1]["lightcurve"].items()}
    batch = collate(samples)
    lc = batch["lightcurve"]
    assert lc.mask.sum(1).tolist() == [30, 7, 30, 30]
    assert lc.data["band"].dtype == torch.int64
    assert lc.meta["band_names"][0] == ["V", "g"]
    assert batch["image"].mask is None
    assert batch["image"].data["mask"].dtype == torch.bool


def test_targets_numeric_with_missing_and_text():
    samples = [{"object_id": "a", "targets": {"Z": 0.5, "CLASS": "RRAB"}}, {"object_id": "b", "targets": {"Z": None}}]
    batch = collate(samples)
    z = batch.targets["Z"]
    assert z.dtype == torch.float64
    assert z[0] == 0.5
    assert torch.isnan(z[1])
    assert batch.targets["CLASS"] == ["RRAB", None]


def test_images_of_different_sizes_need_a_transform():
    samples = make_samples(2, modalities=("image",))
    samples[1]["image"]["flux"] = samples[1]["image"]["flux"][:, :6, :6]
    with pytest.raises(DataFormatError, match="crop/resample") as info:
        collate(samples)
    assert "object_id=1001" in str(info.value)


def test_to_device_and_dtype():
    batch = collate(make_samples(3))
    moved = batch.to("cpu", dtype=torch.bfloat16)
    assert moved["image"].data["flux"].dtype == torch.bfloat16
    assert moved["image"].data["mask"].dtype == torch.bool
    assert moved["spectrum"].mask.dtype == torch.bool
