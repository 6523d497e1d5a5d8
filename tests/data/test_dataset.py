"""MMUDataset and MapDataset: random access by index and object_id, targets, tabular, layout."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from torch.utils.data import DataLoader

from astrofm.data.batch import collate
from astrofm.data.dataset import MMUDataset, write_dataset
from astrofm.data.layout import discover_shards, healpix_of_path
from astrofm.data.mapstyle import MapDataset
from astrofm.data.streaming import StreamingDataset
from astrofm.data.transforms import RandomFlipRot90, SampleTransform
from astrofm.errors import DataFormatError
from tests.data.raw import write_raw_shard
from tests.helpers.synthetic import make_samples


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


def _at(ra: float, n: int, modalities: tuple[str, ...], id_offset: int) -> list[dict]:
    """``n`` samples in one healpix pixel (all at ``ra``, dec 0)."""
    return make_samples(n, modalities=modalities, ra_range=(ra, ra), dec_range=(0, 0), id_offset=id_offset)


def test_modality_missing_from_one_shard_is_kept_and_marked_absent(tmp_path, caplog):
    spectra, bare = _at(10.0, 3, ("spectrum",), 1000), _at(40.0, 2, (), 7)
    write_dataset(tmp_path, spectra)
    bare_shard = write_dataset(tmp_path, bare)[0]
    with caplog.at_level(logging.INFO, logger="astrofm.data.dataset"):
        data = MMUDataset(tmp_path)
    assert data.modalities == MMUDataset(tmp_path, modalities=["spectrum"]).modalities == ("spectrum",)
    assert "'spectrum'" in caplog.text and str(bare_shard) in caplog.text
    samples = {s["object_id"]: s for s in data}
    for s in spectra:
        np.testing.assert_array_equal(samples[s["object_id"]]["spectrum"]["flux"], s["spectrum"]["flux"])
    assert not any("spectrum" in samples[s["object_id"]] for s in bare)
    batch = next(iter(StreamingDataset(data, batch_size=5, shuffle=False)))  # column by column, across shards
    assert batch["spectrum"].presence.tolist() == [oid.startswith("100") for oid in batch.object_id]
    assert batch["spectrum"].data["flux"].shape == (3, 64)


@pytest.mark.parametrize(("column", "found"), [("TYPE", "shape (3,), dtype S3"),
                                               ("catalog_FLUX_G", "shape (3, 20), dtype f4")])
def test_tabular_columns_must_hold_one_number_per_object(tmp_path, column, found):
    path = write_raw_shard(tmp_path / "healpix=0" / "001-of-001.hdf5", {
        "TYPE": np.array([b"PSF", b"DEV", b"EXP"]), "catalog_FLUX_G": np.ones((3, 20), np.float32),
        "FLAG": np.array([True, False, True]), "NOBS": np.array([3, 4, 5], np.int16)}, ids=np.arange(3))
    with pytest.raises(DataFormatError) as info:
        MMUDataset(tmp_path, tabular_columns=["FLAG", column])
    assert (info.value.file, info.value.field, info.value.found) == (str(path), column, found)
    assert MMUDataset(tmp_path, tabular_columns=["FLAG", "NOBS"])[1]["tabular"]["values"].tolist() == [0.0, 4.0]


def test_write_dataset_writes_each_modality_where_objects_have_it(tmp_path):
    images, spectra = _at(10.0, 2, ("image",), 1000), _at(40.0, 2, ("spectrum",), 7)
    write_dataset(tmp_path / "ok", images + spectra)
    data = MMUDataset(tmp_path / "ok")
    assert data.modalities == ("image", "spectrum")
    np.testing.assert_array_equal(data.get("1001")["image"]["flux"], images[1]["image"]["flux"])
    np.testing.assert_array_equal(data.get("8")["spectrum"]["flux"], spectra[1]["spectrum"]["flux"])
    assert "spectrum" not in data.get("1001") and "image" not in data.get("8")
    lacking = {**spectra[0], "ra": 10.0}  # in the images' pixel, without an image
    with pytest.raises(DataFormatError) as info:
        write_dataset(tmp_path / "mixed", [lacking, *images])
    assert (info.value.object_id, info.value.field) == ("7", "image")
    assert not (tmp_path / "mixed").exists()
