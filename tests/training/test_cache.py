"""In-memory caching: deterministic transforms run once, random augmentations still every epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from astrofm.data.batch import Batch
from astrofm.data.dataset import write_dataset
from astrofm.data.transforms import Compose, SampleTransform
from astrofm.model import AstroFM
from astrofm.training import AstroFMDataModule
from astrofm.training.cache import CachedSource, split_random
from astrofm.training.data import EpochLoader
from tests.helpers.synthetic import make_samples
from tests.modalities.factories import tiny_config


def test_split_random_keeps_order_around_the_first_augmentation() -> None:
    transform = SampleTransform.from_dict({
        "image": [{"type": "ArcsinhScale", "softening": [1.0] * 4}, {"type": "RandomFlipRot90"}],
        "spectrum": [{"type": "MaskBadPixels"}]})
    fixed, rest = split_random(transform)
    assert [type(t).__name__ for t in fixed.pipelines["image"].transforms] == ["ArcsinhScale"]
    assert [type(t).__name__ for t in rest.pipelines["image"].transforms] == ["RandomFlipRot90"]
    assert "spectrum" not in rest.pipelines and isinstance(fixed.pipelines["spectrum"], Compose)


def test_split_random_runs_transforms_that_draw_from_the_generator_every_epoch() -> None:
    transform = SampleTransform.from_dict({"lightcurve": [{"type": "TimeZeroPoint"}, {"type": "PerBandNormalize"},
                                                          {"type": "LengthCap", "max_points": 8}]})
    fixed, rest = split_random(transform)
    assert [type(t).__name__ for t in fixed.pipelines["lightcurve"].transforms] == ["TimeZeroPoint",
                                                                                     "PerBandNormalize"]
    assert [type(t).__name__ for t in rest.pipelines["lightcurve"].transforms] == ["LengthCap"]


def _streamed_and_cached(root: Path, dataset: str, model: AstroFM, batch_size: int, *, evaluation: bool = False
                         ) -> tuple[dict[bool, list[list[Batch]]], EpochLoader]:
    """Two training epochs (then the val batches, with ``evaluation``) streamed (False) and cached (True), and
    the cached training loader."""
    batches = {}
    for cache in (False, True):
        data = AstroFMDataModule(str(root), [{"datasets": {dataset: {"path": dataset}}}], split=None,
                                 batch_size=batch_size, cache=cache)
        data.transform = model.transform
        loader = data.train_dataloader()
        batches[cache] = [list(loader), list(loader)] + ([list(data.val_dataloader())] if evaluation else [])
    return batches, loader


def _assert_same(streamed: list[Batch], cached: list[Batch], modalities: tuple[str, ...]) -> None:
    for a, b in zip(streamed, cached):
        assert a.object_id == b.object_id
        for m in modalities:
            for field, value in a[m].data.items():
                torch.testing.assert_close(b[m].data[field], value)


@pytest.fixture(scope="module")
def lightcurve_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lightcurves")
    write_dataset(root / "lc", make_samples(48, modalities=("lightcurve",)))
    return root


def test_cached_lightcurve_batches_equal_streamed_ones_with_a_length_cap(lightcurve_root: Path) -> None:
    config = tiny_config(("lightcurve",))
    config["modalities"]["lightcurve"]["transforms"].append({"type": "LengthCap", "max_points": 10})
    batches, _ = _streamed_and_cached(lightcurve_root, "lc", AstroFM.from_config(config), 8, evaluation=True)
    for streamed, cached in zip(batches[False], batches[True]):  # two epochs, evaluation
        assert len(streamed) == len(cached) > 0
        _assert_same(streamed, cached, ("lightcurve",))
    assert all(b["lightcurve"].data["time"].shape[1] == 10 for b in batches[True][2])  # capped in evaluation too
    times = [{oid: t for b in epoch for oid, t in zip(b.object_id, b["lightcurve"].data["time"])}
             for epoch in batches[True][:2]]
    assert any(not torch.equal(times[0][oid], times[1][oid]) for oid in times[0])  # new points each epoch


def test_cached_batches_equal_streamed_ones(synthetic_root: Path) -> None:
    config = tiny_config(("image", "spectrum"))
    config["modalities"]["image"]["transforms"].append({"type": "RandomFlipRot90"})
    batches, cached_loader = _streamed_and_cached(synthetic_root, "gal", AstroFM.from_config(config), 16)
    assert isinstance(cached_loader.dataset.source, CachedSource)
    for epoch in range(2):
        _assert_same(batches[False][epoch], batches[True][epoch], ("image", "spectrum"))
    first, second = batches[True][0][0]["image"].data["flux"], batches[True][1][0]["image"].data["flux"]
    assert not torch.equal(first, second)  # new augmentations (and order) in the next epoch
