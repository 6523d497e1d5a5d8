"""Streaming: exactly-once sharding over ranks x workers, deterministic shuffle, mid-epoch resume."""

from __future__ import annotations

import collections

import h5py
import numpy as np
import pytest
import torch

from astrofm.data.batch import collate
from astrofm.data.dataset import MMUDataset, write_dataset
from astrofm.data.streaming import StreamingDataset, StreamingLoader, Topology, shuffled_stream
from astrofm.data.transforms import RandomFlipRot90, SampleTransform
from tests.data.raw import write_raw_shard
from tests.data.test_shard import columns_of
from tests.helpers.synthetic import make_samples


def stream(galaxies, **kwargs):
    options = {"batch_size": 16, "block_size": 32, "buffer_size": 64, "seed": 7, **kwargs}
    return StreamingDataset(galaxies, **options)


def test_two_ranks_two_workers_see_every_object_exactly_once(galaxies):
    expected = sorted(s["object_id"] for s in galaxies)
    for epoch in range(2):
        seen: list[str] = []
        for rank in range(2):
            loader = StreamingLoader(stream(galaxies, rank=rank, world_size=2), num_workers=2)
            loader._epoch = epoch
            seen += [oid for batch in loader for oid in batch.object_id]
        counts = collections.Counter(seen)
        assert sorted(counts) == expected
        assert max(counts.values()) == 1


def test_shuffle_is_deterministic_by_seed_and_epoch(galaxies):
    def order(seed, epoch):
        ds = stream(galaxies, seed=seed)
        ds.set_epoch(epoch)
        return [s["object_id"] for s in ds.iter_samples(Topology())]

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)
    assert sorted(order(1, 0)) == sorted(order(2, 3))
    plain = StreamingDataset(galaxies, shuffle=False, block_size=32)
    assert [s["object_id"] for s in plain.iter_samples(Topology())] == [s["object_id"] for s in galaxies]


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("augmented", [True, False], ids=["per-object", "columnar"])
def test_resume_mid_epoch_reproduces_the_uninterrupted_run(galaxies, num_workers, augmented):
    transform = SampleTransform({"image": [RandomFlipRot90()]}) if augmented else None
    assert stream(galaxies, transform=transform).columnar is not augmented
    full_loader = StreamingLoader(stream(galaxies, transform=transform), num_workers=num_workers)
    full = [batch for batch in full_loader]
    interrupted = StreamingLoader(stream(galaxies, transform=transform), num_workers=num_workers)
    first = []
    for i, batch in enumerate(interrupted):
        first.append(batch)
        if i == 6:
            break
    state = interrupted.state_dict()
    resumed_loader = StreamingLoader(stream(galaxies, transform=transform), num_workers=num_workers)
    resumed_loader.load_state_dict(state)
    rest = list(resumed_loader)
    combined = first + rest
    assert [b.object_id for b in combined] == [b.object_id for b in full]
    for a, b in zip(combined, full):  # same augmentations too
        np.testing.assert_array_equal(a["image"].data["flux"].numpy(), b["image"].data["flux"].numpy())
    # the next epoch continues normally
    assert sorted(o for b in resumed_loader for o in b.object_id) == sorted(o for b in full for o in b.object_id)


def test_persistent_workers_follow_the_epoch_and_resume_in_process(galaxies):
    """Persistent workers keep their dataset copy: epoch and resume position still reach them."""
    plain = StreamingLoader(stream(galaxies), num_workers=2)
    expected = [[b.object_id for b in plain] for _ in range(2)]
    assert expected[0] != expected[1]
    loader = StreamingLoader(stream(galaxies), num_workers=2, persistent_workers=True)
    assert [b.object_id for b in loader] == expected[0]
    first = []
    for i, batch in enumerate(loader):  # epoch 1, interrupted, then continued by the same loader
        first.append(batch.object_id)
        if i == 4:
            break
    assert first + [b.object_id for b in loader] == expected[1]


def test_resume_with_a_different_layout_is_refused(galaxies):
    loader = StreamingLoader(stream(galaxies), num_workers=2)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    state = loader.state_dict()
    other = StreamingLoader(stream(galaxies), num_workers=0)
    with pytest.raises(Exception, match="same layout"):
        other.load_state_dict(state)


def test_skip_without_reading(galaxies):
    """Skipping k samples yields the tail of the full stream and reads only the blocks still needed."""
    refs = galaxies.blocks(32)
    full = [s["object_id"] for s in shuffled_stream(galaxies, refs, resident_blocks=2, rng=np.random.default_rng(3))]
    reads = []
    original = galaxies.read_block

    def counting(ref):
        reads.append(ref)
        return original(ref)

    galaxies.read_block = counting
    tail = [s["object_id"] for s in shuffled_stream(galaxies, refs, resident_blocks=2, rng=np.random.default_rng(3),
                                                      skip=200)]
    assert tail == full[200:]
    assert len(reads) < len(refs)


def test_batches_carry_drop_last_and_len(galaxies):
    ds = stream(galaxies, drop_last=True)
    batches = list(StreamingLoader(ds))
    assert all(len(b) == 16 for b in batches)
    assert len(ds) == 300


def _assert_same_batch(a, b):
    assert a.object_id == b.object_id
    assert list(a.modalities) == list(b.modalities)
    for name in a.modalities:
        ma, mb = a[name], b[name]
        assert list(ma.data) == list(mb.data) and ma.meta == mb.meta, name
        for key in ma.data:  # bit for bit, NaN (missing tabular values) included
            torch.testing.assert_close(ma.data[key], mb.data[key], rtol=0, atol=0, equal_nan=True, msg=(name, key))
        assert torch.equal(ma.presence, mb.presence)
        assert (ma.mask is None) == (mb.mask is None) and (ma.mask is None or torch.equal(ma.mask, mb.mask))
    assert list(a.targets) == list(b.targets)
    for t in a.targets:
        assert torch.equal(a.targets[t], b.targets[t]) if isinstance(a.targets[t], torch.Tensor) else (
            a.targets[t] == b.targets[t])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_columnar_batches_equal_the_batches_of_samples(galaxies, num_workers):
    """Without a transform, batches are gathered column by column; they are the batches collated from samples."""
    columnar = stream(galaxies, batch_size=24)
    per_object = stream(galaxies, batch_size=24, transform=lambda sample, rng: sample)
    assert columnar.columnar and not per_object.columnar
    for epoch in range(2):
        left = list(StreamingLoader(columnar, num_workers=num_workers))
        right = list(StreamingLoader(per_object, num_workers=num_workers))
        assert len(left) == len(right) == 13
        for a, b in zip(left, right):
            _assert_same_batch(a, b)
        assert {"image", "spectrum", "tabular"} <= set(left[0].modalities) and "Z" in left[0].targets
        columnar.set_epoch(epoch + 1)
        per_object.set_epoch(epoch + 1)


def test_light_curves_stream_per_object(tmp_path):
    """Light curves drop their padding (every curve its own length): such a dataset is batched from samples."""
    write_dataset(tmp_path, make_samples(20, seed=4, modalities=("spectrum", "lightcurve")))
    data = MMUDataset(tmp_path)
    assert not data.columnar and not stream(data).columnar
    batches = list(StreamingLoader(stream(data, batch_size=8)))
    assert sum(len(b) for b in batches) == 20 and batches[0]["lightcurve"].mask is not None


def test_values_are_checked_once_per_stream_and_a_bad_block_still_fails(galaxies, tmp_path):
    """Workers share which blocks were checked (NaN/inf, negative ivar); the worker that first reads a bad block
    fails the epoch with the object and field."""
    clean = stream(galaxies)
    list(StreamingLoader(clean, num_workers=2))
    assert clean.validated is not None and bool(clean.validated.all())
    cols = columns_of(make_samples(40, seed=5))
    cols["spectrum_flux"][17, 3] = np.nan
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:  # written without astrofm's checks
        for key, values in cols.items():
            f.create_dataset(key, data=values)
    bad = stream(MMUDataset(path), block_size=8, buffer_size=16)
    message = ""
    try:  # (not pytest.raises: a kept traceback keeps the workers until the session ends)
        list(StreamingLoader(bad, num_workers=2))
    except Exception as error:  # the DataLoader re-raises the worker's error, as RuntimeError if it must
        message = str(error)
    assert f"object_id={cols['object_id'][17]}" in message and "spectrum_flux" in message


def test_big_endian_columns_stream_like_samples(tmp_path):
    """FITS big-endian columns (MMU writers pass them through) give the same native float32 batch whether
    gathered column by column or collated from samples."""
    flux = np.arange(24, dtype=np.float32).reshape(4, 6) / 7
    write_raw_shard(tmp_path / "healpix=0" / "001-of-001.hdf5", {
        "spectrum_flux": flux.astype(">f4"), "spectrum_ivar": np.full((4, 6), 2, ">f4"),
        "spectrum_lambda": np.tile(np.linspace(4000, 5000, 6), (4, 1)).astype(">f4"),
        "Z": np.array([0.1, 0.2, 0.3, 0.4], ">f4")}, ids=np.arange(4))
    data = MMUDataset(tmp_path, tabular_columns=["Z"], target_columns=["Z"])
    columnar = stream(data, batch_size=4, shuffle=False)
    assert columnar.columnar
    batch = next(iter(columnar))
    _assert_same_batch(batch, collate([data[i] for i in range(4)]))
    spectrum = batch["spectrum"].data
    assert spectrum["flux"].dtype == torch.float32
    np.testing.assert_array_equal(spectrum["flux"].numpy(), flux)
    np.testing.assert_array_equal(spectrum["ivar"].numpy(), np.full((4, 6), 2, np.float32))
    np.testing.assert_allclose(batch["tabular"].data["values"].numpy()[:, 0], [0.1, 0.2, 0.3, 0.4], rtol=1e-7)
