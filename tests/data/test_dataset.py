"""MMUDataset and MapDataset: random access by index and object_id, targets, tabular, layout."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from astrofm.data.batch import collate
from astrofm.data.dataset import MMUDataset
from astrofm.data.layout import discover_shards, healpix_of_path
from astrofm.data.mapstyle import MapDataset
from astrofm.data.transforms import RandomFlipRot90, SampleTransform


def test_layout_is_healpix_partitioned(galaxy_dir, galaxies):
    shards = discover_shards(galaxy_dir)
    assert shards and all(p.name == "001-of-001.hdf5" for p in shards)
    for shard in galaxies.shards:
        assert np.all(shard.healpix() == healpix_of_path(shard.path))
    assert len(galaxies) == 300


def test_index_and_object_id_access_agree(galaxies, galaxy_samples):
    for i in (0, 17, 299, -1):
        by_index = galaxies[i]
        by_id = galaxies.get(by_index["object_id"])
        np.testing.assert_array_equal(by_index["spectrum"]["flux"], by_id["spectrum"]["flux"])
    original = {s["object_id"]: s for s in galaxy_samples}
    sample = galaxies.get("1042")
    np.testing.assert_array_equal(sample["image"]["flux"], original["1042"]["image"]["flux"])
    assert 0 <= sample["targets"]["Z"] <= 1
    assert sample["tabular"]["values"].shape == (2,)
    with pytest.raises(IndexError):
        galaxies[300]


def test_tabular_missing_values_are_nan(galaxies):
    values = np.stack([s["tabular"]["values"] for s in galaxies])
    assert np.isnan(values[:, 1]).sum() == len(range(0, 300, 7))
    assert not np.isnan(values[:, 0]).any()


def test_read_rows_preserves_requested_order(galaxies):
    rows = np.array([3, 0, 2])
    samples = galaxies.read_rows(0, rows)
    ids = galaxies.shards[0].object_ids
    assert [s["object_id"] for s in samples] == [str(ids[r]) for r in rows]


def test_map_dataset_subset_transform_and_loader(galaxies):
    ids = [galaxies[i]["object_id"] for i in range(0, 300, 10)]
    view = MapDataset(galaxies, object_ids=ids,
                      transform=SampleTransform({"image": [RandomFlipRot90()]}), seed=5)
    assert len(view) == 30
    assert view[3]["object_id"] == ids[3]
    np.testing.assert_array_equal(view[3]["image"]["flux"], view[3]["image"]["flux"])  # reproducible per index
    batches = list(DataLoader(view, batch_size=8, collate_fn=collate))
    assert [len(b) for b in batches] == [8, 8, 8, 6]
    assert view.by_object_id(ids[0])["object_id"] == ids[0]


def test_choose_modalities(galaxy_dir):
    ds = MMUDataset(galaxy_dir, modalities=["spectrum"])
    assert ds.modalities == ("spectrum",)
    assert "image" not in ds[0]
