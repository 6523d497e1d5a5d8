"""Streaming: exactly-once sharding over ranks x workers, deterministic shuffle, mid-epoch resume."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from astrofm.data.streaming import StreamingDataset, StreamingLoader, Topology, shuffled_stream
from astrofm.data.transforms import RandomFlipRot90, SampleTransform


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
def test_resume_mid_epoch_reproduces_the_uninterrupted_run(galaxies, num_workers):
    transform = SampleTransform({"image": [RandomFlipRot90()]})
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
