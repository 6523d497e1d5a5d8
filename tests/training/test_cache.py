"""In-memory caching: deterministic transforms run once, random augmentations still every epoch."""

from __future__ import annotations

from pathlib import Path

import torch

from astrofm.data.transforms import Compose, SampleTransform
from astrofm.model import AstroFM
from astrofm.training import AstroFMDataModule
from astrofm.training.cache import CachedSource, split_random
from tests.modalities.factories import tiny_config


def test_split_random_keeps_order_around_the_first_augmentation() -> None:
    transform = SampleTransform.from_dict({
        "image": [{"type": "ArcsinhScale", "softening": [1.0] * 4}, {"type": "RandomFlipRot90"}],
        "spectrum": [{"type": "MaskBadPixels"}]})
    fixed, rest = split_random(transform)
    assert [type(t).__name__ for t in fixed.pipelines["image"].transforms] == ["ArcsinhScale"]
    assert [type(t).__name__ for t in rest.pipelines["image"].transforms] == ["RandomFlipRot90"]
    assert "spectrum" not in rest.pipelines and isinstance(fixed.pipelines["spectrum"], Compose)


def test_cached_batches_equal_streamed_ones(synthetic_root: Path) -> None:
    config = tiny_config(("image", "spectrum"))
    config["modalities"]["image"]["transforms"].append({"type": "RandomFlipRot90"})
    model = AstroFM.from_config(config)
    batches = {}
    for cache in (False, True):
        data = AstroFMDataModule(str(synthetic_root), [{"datasets": {"gal": {"path": "gal"}}}], split=None,
                                 batch_size=16, cache=cache)
        data.transform = model.transform
        loader = data.train_dataloader()
        batches[cache] = [list(loader), list(loader)]  # two epochs
    assert isinstance(loader.dataset.source, CachedSource)
    for epoch in range(2):
        for a, b in zip(batches[False][epoch], batches[True][epoch]):
            assert a.object_id == b.object_id
            for m in ("image", "spectrum"):
                for field, value in a[m].data.items():
                    torch.testing.assert_close(b[m].data[field], value)
    first, second = batches[True][0][0]["image"].data["flux"], batches[True][1][0]["image"].data["flux"]
    assert not torch.equal(first, second)  # new augmentations (and order) in the next epoch
