"""Batch arenas: one memory block per batch, ring reuse in workers without ever overwriting a batch in use."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from astrofm.data import arena
from astrofm.data.batch import collate
from astrofm.data.streaming import StreamingDataset, StreamingLoader


def fingerprints(dataset):
    """object_id -> (image flux sum, spectrum flux sum) read straight from the dataset."""
    return {s["object_id"]: (float(np.sum(s["image"]["flux"], dtype=np.float64)),
                             float(np.sum(s["spectrum"]["flux"], dtype=np.float64))) for s in dataset}


def batch_fingerprints(batch):
    image, spectrum = batch["image"], batch["spectrum"]
    flux = spectrum.data["flux"].double() * spectrum.mask
    return {oid: (float(image.data["flux"][i].double().sum()), float(flux[i].sum()))
            for i, oid in enumerate(batch.object_id)}


def assert_same_data(batch, expected):
    for oid, (img, spec) in batch_fingerprints(batch).items():
        np.testing.assert_allclose((img, spec), expected[oid], rtol=1e-5, atol=1e-3, err_msg=oid)


def loader(galaxies, **kwargs):
    stream = StreamingDataset(galaxies, batch_size=8, block_size=32, buffer_size=64, seed=3)
    return StreamingLoader(stream, num_workers=2, **kwargs)


def ring_capacity(feed):
    """Batches all workers' rings hold before one of their arenas must be refilled."""
    return feed.dataset.release_board.used.numel()


def test_workers_refill_their_ring_of_arenas_with_the_right_data(galaxies):
    expected = fingerprints(galaxies)
    slots = []
    feed = loader(galaxies)
    for batch in feed:
        assert_same_data(batch, expected)
        slots.append(batch.arena_slot)
    # a dropped batch frees its slot in time, even at the epoch's end when one worker has every task
    assert all(slot >= 0 for _, slot in slots)
    assert len(slots) > 2 * ring_capacity(feed)  # so every ring was refilled


def test_batches_kept_by_the_consumer_are_never_overwritten(galaxies):
    expected = fingerprints(galaxies)
    kept = list(loader(galaxies))
    assert sum(slot < 0 for _, slot in (b.arena_slot for b in kept)) > 0  # ring exhausted: fresh arenas
    for batch in kept:
        assert_same_data(batch, expected)
    assert sorted(oid for b in kept for oid in b.object_id) == sorted(expected)


def test_a_batch_pickles_its_arena_once_and_round_trips(galaxies):
    samples = [galaxies[i] for i in range(5)]
    batch = collate(samples)
    assert batch.memory is not None
    assert all(t.untyped_storage().data_ptr() == batch.memory.untyped_storage().data_ptr()
               for m in batch.modalities.values() for t in (*m.data.values(), m.presence))
    compact = pickle.dumps(batch)
    copy = pickle.loads(compact)
    for name, m in batch.modalities.items():
        for key, tensor in m.data.items():
            torch.testing.assert_close(copy[name].data[key], tensor, equal_nan=True)
        torch.testing.assert_close(copy[name].presence, m.presence)
    torch.testing.assert_close(copy.targets["Z"], batch.targets["Z"])
    assert copy.object_id == batch.object_id
    # a tensor replaced after collation no longer views the arena: plain pickling, same content
    batch["image"].data["flux"] = batch["image"].data["flux"] * 2
    again = pickle.loads(pickle.dumps(batch))
    torch.testing.assert_close(again["image"].data["flux"], batch["image"].data["flux"])
    assert len(compact) < batch.memory.numel() + 20_000  # one arena, not one buffer per tensor plus the arena


def test_interrupted_epochs_of_persistent_workers_give_their_arenas_back(galaxies):
    expected = fingerprints(galaxies)
    feed = loader(galaxies, persistent_workers=True)
    for _ in range(4):  # the DataLoader receives and drops the batches in flight of each interrupted epoch
        epoch = iter(feed)
        next(epoch), next(epoch)
        del epoch
    rest = []
    for batch in feed:
        assert_same_data(batch, expected)
        rest.append(batch.arena_slot)
        del batch
    assert len(rest) > ring_capacity(feed)
    assert all(slot >= 0 for _, slot in rest)  # no slot was left marked in use: no fresh arenas


def test_ring_arenas_travel_by_name_and_without_it_by_descriptor(galaxies, monkeypatch):
    """Ring arenas are opened by their shared-memory name; where torch cannot share by name, by descriptor."""
    expected = fingerprints(galaxies)
    opened = []
    monkeypatch.setattr(arena, "open_by_name", lambda handle, original=arena.open_by_name: (
        opened.append(handle[1]) or original(handle)))
    feed = loader(galaxies)
    for batch in feed:
        assert_same_data(batch, expected)
    assert len(opened) > ring_capacity(feed)

    def unavailable(self):
        raise RuntimeError("file-system sharing unavailable")

    monkeypatch.setattr(torch.UntypedStorage, "_share_filename_cpu_", unavailable)
    opened.clear()
    batches = 0
    feed = loader(galaxies)
    for batch in feed:
        assert_same_data(batch, expected)
        batches += 1
    assert batches > ring_capacity(feed) and not opened
