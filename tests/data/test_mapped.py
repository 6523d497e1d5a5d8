"""Columns viewed through a map of their file instead of read: same values, read-only, block maps released with
their samples, kept maps one per file and bounded by the budget, values still checked, fallbacks."""

from __future__ import annotations

import gc
from pathlib import Path

import h5py
import numpy as np
import pytest

from astrofm.data.dataset import MMUDataset
from astrofm.data.mapped import BUDGET_ENV, FILE_MAPS, map_budget_bytes
from astrofm.data.shard import Shard, write_shard
from astrofm.errors import DataFormatError
from tests.data.test_shard import columns_of
from tests.helpers.synthetic import make_samples


def _mappings(path: Path) -> int:
    """How many memory mappings of ``path`` this process holds."""
    return sum(1 for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith(str(path)))


@pytest.fixture
def shard_path(tmp_path):
    cols = columns_of(make_samples(40, seed=11, modalities=("image", "spectrum", "lightcurve")),
                      ("image", "spectrum", "lightcurve"))
    cols["Z"] = np.linspace(0, 1, 40, dtype=np.float32)
    return write_shard(tmp_path / "healpix=5" / "001-of-001.hdf5", cols), cols


def test_mapped_blocks_equal_h5py_reads_bit_for_bit(shard_path):
    path, cols = shard_path
    shard = Shard(path)
    names = list(cols)
    for start, stop in ((0, 40), (3, 17), (39, 40)):
        block = shard.read(names, start, stop)
        with h5py.File(path, "r") as f:
            for name in names:
                expected = f[name][start:stop]
                assert block[name].dtype == expected.dtype, name
                assert block[name].tobytes() == expected.tobytes(), (name, start, stop)
    mapped = [name for name in names if not shard.read([name], 0, 5)[name].flags.owndata]
    assert {"image_array", "spectrum_flux", "lightcurve"} <= set(mapped)


def test_mapped_samples_are_read_only_and_the_file_never_changes(shard_path):
    path, cols = shard_path
    before = path.read_bytes()
    dataset = MMUDataset(path)
    sample = dataset.read_block(dataset.blocks(8)[0])[3]
    with pytest.raises(ValueError, match="read-only"):
        sample["spectrum"]["flux"][:] = -1.0
    block = Shard(path).read(["spectrum_flux"], 0, 10)["spectrum_flux"]
    assert not block.flags.writeable
    np.testing.assert_array_equal(block, cols["spectrum_flux"][:10])
    assert path.read_bytes() == before


def test_block_maps_go_with_their_samples(shard_path):
    path, _ = shard_path
    dataset = MMUDataset(path)
    base = _mappings(path)
    samples = [s for ref in dataset.blocks(8) for s in dataset.read_block(ref)]
    assert _mappings(path) > base
    del samples
    gc.collect()
    assert _mappings(path) == base


def test_kept_maps_one_per_file_serve_every_block_and_epoch(shard_path):
    path, _ = shard_path
    dataset = MMUDataset(path, keep_maps=True)
    for _ in range(3):  # epochs
        samples = [s for ref in dataset.blocks(8) for s in dataset.read_block(ref)]
        assert len(samples) == 40
        assert _mappings(path) == 1  # image, spectrum and light-curve columns of every block: one map
    del samples
    gc.collect()
    assert _mappings(path) == 1  # kept for the next epoch


def test_file_maps_stay_within_the_budget(tmp_path, monkeypatch):
    """Past the budget the least recently used map is dropped; arrays still viewing it stay valid until freed."""
    paths = []
    for k in range(3):
        cols = columns_of(make_samples(10, seed=20 + k))
        paths.append(write_shard(tmp_path / f"healpix={k}" / "001-of-001.hdf5", cols))
    monkeypatch.setenv(BUDGET_ENV, str(1.5 * max(p.stat().st_size for p in paths) / 2**20))
    kept = [Shard(p).read(["image_array"], 0, 10, keep_map=True)["image_array"] for p in paths]
    assert [_mappings(p) for p in paths] == [1, 1, 1]  # the first map was dropped but is still viewed
    assert FILE_MAPS.mapped_bytes <= map_budget_bytes()
    for p, values in zip(paths, kept):
        with h5py.File(p, "r") as f:
            np.testing.assert_array_equal(values, f["image_array"][:10])
    del kept, values
    gc.collect()
    assert [_mappings(p) for p in paths] == [0, 0, 1]


def test_chunked_and_compressed_columns_are_read_not_mapped(tmp_path):
    cols = columns_of(make_samples(12, seed=2))
    path = write_shard(tmp_path / "healpix=5" / "001-of-001.hdf5", cols, compression="gzip")
    block = Shard(path).read(["image_array", "spectrum_flux"], 2, 9)
    assert block["image_array"].flags.owndata and block["spectrum_flux"].flags.owndata
    np.testing.assert_array_equal(block["spectrum_flux"], cols["spectrum_flux"][2:9])


def test_nan_in_a_mapped_block_names_the_object(tmp_path):
    cols = columns_of(make_samples(6, seed=7))
    cols["image_array"][3, 1, 5, 5] = np.inf
    path = tmp_path / "inf.hdf5"
    with h5py.File(path, "w") as f:  # written without astrofm's checks, contiguous layout
        for k, v in cols.items():
            f.create_dataset(k, data=v)
    shard = Shard(path)
    assert not shard.read(["image_array"], 0, 3)["image_array"].flags.owndata  # mapped, and clean
    for _ in range(2):  # every read of a bad block fails, not only the first
        with pytest.raises(DataFormatError) as info:
            shard.read(["object_id", "image_array"], 0, 6)
        assert f"object_id={cols['object_id'][3]}" in str(info.value)
        assert "image_array" in str(info.value) and "non-finite" in str(info.value)
