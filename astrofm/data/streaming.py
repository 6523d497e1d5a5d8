"""Streaming over a block source: sharded across DDP ranks and DataLoader workers, shuffled, resumable.

How an epoch is laid out:

1. the source's rows are cut into blocks (contiguous rows of one shard);
2. the block order is permuted with a generator seeded by (seed, epoch);
3. block ``i`` goes to global worker ``i mod (world_size x num_workers)``,
   so every object is seen exactly once per epoch, with no duplicates;
4. each worker keeps a few blocks in memory and draws rows at random from
   them (seeded by seed, epoch, worker), then collates batches itself.

Reads are contiguous block reads, samples are views into the blocks, and
memory is bounded by the resident blocks (about ``buffer_size`` rows).
Because the order depends only on (seed, epoch, topology) and the block
lengths, a worker can skip the samples it already delivered without reading
them: that is how a run resumes mid-epoch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from astrofm.data.arena import ReleaseBoard, ring_slots
from astrofm.data.batch import Batch, ColumnBlock, collate, collate_rows
from astrofm.data.dataset import BlockRef
from astrofm.data.modalities import Sample
from astrofm.data.sources import BlockSource, ColumnSource
from astrofm.errors import ConfigError

log = logging.getLogger(__name__)

SampleFn = Callable[[Sample, "np.random.Generator | None"], Sample]


@dataclass(frozen=True)
class Topology:
    """Where this stream runs: DDP rank and DataLoader worker."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    @property
    def index(self) -> int:
        """Global worker index in [0, total)."""
        return self.rank * self.num_workers + self.worker

    @property
    def total(self) -> int:
        return self.world_size * self.num_workers


def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size) from torch.distributed if initialized, else RANK/WORLD_SIZE, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class _Uniforms:
    """Uniform [0, 1) numbers drawn from a generator in chunks (cheap per draw, same sequence)."""

    def __init__(self, rng: np.random.Generator, chunk: int = 4096) -> None:
        self.rng, self.chunk = rng, chunk
        self.values = rng.random(chunk)
        self.pos = 0

    def __call__(self) -> float:
        if self.pos == self.chunk:
            self.values = self.rng.random(self.chunk)
            self.pos = 0
        self.pos += 1
        return float(self.values[self.pos - 1])


def shuffled_stream(
    source: BlockSource,
    refs: Sequence[BlockRef],
    *,
    resident_blocks: int,
    rng: np.random.Generator | None,
    skip: int = 0,
) -> Iterator[Any]:
    """Stream the rows of ``refs`` (samples, or whatever items ``source`` gives per row), shuffled across
    ``resident_blocks`` blocks held in memory.

    With a generator, each emitted sample is drawn uniformly from the rows
    not yet emitted of the resident blocks; when a block is used up, the next
    one is read. Memory is bounded by ``resident_blocks`` blocks and samples
    stay views into them (no per-sample copies). Without a generator the rows
    come in order. The first ``skip`` samples are dropped without reading
    them (only their positions are simulated): this resumes a stream.
    """
    shuffle = rng is not None
    capacity = max(1, resident_blocks) if shuffle else 1
    uniform = _Uniforms(rng) if rng is not None else None
    keys: list[tuple[int, int]] = []  # rows not yet emitted of the resident blocks
    remaining: dict[int, int] = {}
    store: dict[tuple[int, int], Any] = {}
    emitted = 0
    upcoming = iter(range(len(refs)))

    def load(b: int) -> None:
        ref = refs[b]
        if emitted >= skip or ref.length is None:  # an unknown length can only be learnt by reading
            samples = list(source.iter_block(ref))
            if ref.length is not None and len(samples) != ref.length:
                raise ConfigError(f"{source.name}: block {ref} holds {len(samples)} rows, "
                                  f"not the {ref.length} its file declares")
            store.update(((b, r), sample) for r, sample in enumerate(samples))
            length = len(samples)
        else:
            length = ref.length
        if length:
            new = [(b, r) for r in range(length)]
            keys.extend(new if shuffle else reversed(new))
            remaining[b] = length

    def fetch(key: tuple[int, int]) -> Any:
        if key not in store:  # loaded while skipping: read its block's rows that are still to come
            block = key[0]
            rows = sorted({r for b, r in keys if b == block} | {key[1]})
            store.update(((block, r), s) for r, s in zip(rows, source.read_block_rows(refs[block], rows)))
        return store.pop(key)

    for b in upcoming:
        load(b)
        if len(remaining) >= capacity:
            break
    while keys:
        if uniform is not None:
            j = int(uniform() * len(keys))
            keys[j], keys[-1] = keys[-1], keys[j]
        key = keys.pop()
        if emitted < skip:
            store.pop(key, None)
        else:
            yield fetch(key)
        emitted += 1
        remaining[key[0]] -= 1
        if remaining[key[0]] == 0:
            del remaining[key[0]]
            for b in upcoming:  # refill: read blocks until one has rows
                load(b)
                if len(remaining) >= capacity:
                    break


class ColumnRows:
    """A columnar source's blocks as ``(ColumnBlock, row)`` items instead of samples: batches are then gathered
    column by column (``collate_rows``), with no dict per object.

    ``validated``: one flag per block of ``refs``, shared by the stream's DataLoader workers; a block's values
    are checked by the first worker that reads it, not once per worker.
    """

    def __init__(self, source: ColumnSource, refs: Sequence[BlockRef] = (),
                 validated: torch.Tensor | None = None) -> None:
        self.source = source
        self.name = source.name
        self.validated = validated
        self._index = {ref: i for i, ref in enumerate(refs)}

    def blocks(self, block_size: int) -> list[BlockRef]:
        return self.source.blocks(block_size)

    def _read(self, ref: BlockRef) -> ColumnBlock:
        i, flags = self._index.get(ref), self.validated
        if flags is None or i is None:
            return self.source.read_block_columns(ref)
        block = self.source.read_block_columns(ref, check=not bool(flags[i]))
        flags[i] = 1
        return block

    def iter_block(self, ref: BlockRef, start: int = 0) -> Iterator[tuple[ColumnBlock, int]]:
        block = self._read(ref)
        return iter([(block, r) for r in range(start, len(block))])

    def read_block_rows(self, ref: BlockRef, rows: Sequence[int]) -> list[tuple[ColumnBlock, int]]:
        block = self._read(ref)
        return [(block, int(r)) for r in rows]


class StreamingDataset(IterableDataset[Batch]):
    """An iterable dataset of collated ``Batch``es over a block source.

    Parameters
    ----------
    source:
        ``MMUDataset``, ``HFDataset``, ``CrossMatchDataset`` or any ``BlockSource``.
    batch_size:
        Objects per batch (each worker batches its own stream).
    shuffle:
        Permute blocks per epoch and pass samples through a shuffle buffer.
    buffer_size:
        Rows held in memory for shuffling (rounded to whole blocks; the memory bound).
    block_size:
        Rows per contiguous read.
    transform:
        Called as ``transform(sample, rng)``; ``rng`` is None unless ``augment``. Without one, a source with a
        columnar form (``MMUDataset`` of image, spectrum and tabular data) is batched column by column, with
        no dict per object; the batches are the same.
    augment:
        Give transforms a generator (random augmentations); default: ``shuffle``.
    seed:
        Seeds block order, buffer and augmentations together with the epoch.
    drop_last:
        Drop each worker's final partial batch.
    rank, world_size:
        DDP placement; default: from torch.distributed or RANK/WORLD_SIZE.
    """

    def __init__(
        self,
        source: BlockSource,
        *,
        batch_size: int = 32,
        shuffle: bool = True,
        buffer_size: int = 2048,
        block_size: int = 256,
        transform: SampleFn | None = None,
        augment: bool | None = None,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1 or block_size < 1:
            raise ConfigError("batch_size and block_size must be >= 1")
        self.source = source
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.block_size = block_size
        self.transform = transform
        self.augment = shuffle if augment is None else augment
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.resume: dict[int, int] = {}
        #: DataLoader worker ``w`` plays stream ``(w + rotation) mod num_workers`` (set when resuming, so
        #: that the DataLoader's round-robin continues with the stream that was due next).
        self.rotation = 0
        #: Reusable batch arenas of the DataLoader workers (set by ``StreamingLoader``).
        self.release_board: ReleaseBoard | None = None
        #: Shared (epoch, rotation, resume per local worker) that persistent workers read at every epoch.
        self.control: torch.Tensor | None = None
        #: Shared flags of the blocks whose values a worker has checked (columnar batches; set by ``StreamingLoader``).
        self.validated: torch.Tensor | None = None
        self._refs = source.blocks(block_size)

    def __len__(self) -> int:
        """Objects per epoch over all ranks and workers (not batches); TypeError if unknown."""
        lengths = [r.length for r in self._refs]
        if any(n is None for n in lengths):
            raise TypeError(f"{self.source.name}: length unknown until streamed")
        return sum(lengths)  # type: ignore[arg-type]

    @property
    def resident_blocks(self) -> int:
        """Blocks held in memory at once: about ``buffer_size`` rows."""
        lengths = [r.length for r in self._refs if r.length]
        typical = float(np.median(lengths)) if lengths else float(self.block_size)
        return max(1, round(self.buffer_size / typical))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def topology(self) -> Topology:
        """The (rank, worker) placement of the calling process."""
        rank, world = distributed_rank_world()
        rank = self.rank if self.rank is not None else rank
        world = self.world_size if self.world_size is not None else world
        if not 0 <= rank < world:
            raise ConfigError(f"rank {rank} outside world size {world}")
        info = get_worker_info()
        if info is None:
            return Topology(rank, world, 0, 1)
        return Topology(rank, world, (info.id + self.rotation) % info.num_workers, info.num_workers)

    def worker_blocks(self, topology: Topology) -> list[BlockRef]:
        """The blocks this worker streams this epoch."""
        order = np.arange(len(self._refs))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self._refs))
        return [self._refs[i] for i in order[topology.index:: topology.total]]

    @property
    def columnar(self) -> bool:
        """Batches are gathered column by column: no transform, and a source with a columnar form."""
        return self.transform is None and isinstance(self.source, ColumnSource) and self.source.columnar

    def iter_samples(self, topology: Topology | None = None) -> Iterator[Sample]:
        """This worker's samples for the current epoch, untransformed and unbatched."""
        return self._stream(self.source, topology or self.topology())

    def _stream(self, source: BlockSource, topology: Topology) -> Iterator[Any]:
        rng = np.random.default_rng([self.seed, self.epoch, topology.index, 1]) if self.shuffle else None
        return shuffled_stream(source, self.worker_blocks(topology), resident_blocks=self.resident_blocks, rng=rng,
                               skip=self.resume.get(topology.index, 0))

    def publish(self) -> None:
        """Write epoch, rotation and resume positions where (persistent) workers will read them."""
        if self.control is None:
            return
        workers = self.control.shape[0] - 2
        rank = self.rank or 0
        self.control[0], self.control[1] = self.epoch, self.rotation
        for w in range(workers):
            self.control[2 + w] = self.resume.get(rank * workers + w, 0)

    def _read_published(self) -> None:
        if self.control is None or get_worker_info() is None:
            return
        workers = self.control.shape[0] - 2
        rank = self.rank or 0
        self.epoch, self.rotation = int(self.control[0]), int(self.control[1])
        self.resume = {rank * workers + w: int(self.control[2 + w]) for w in range(workers)}

    def __iter__(self) -> Iterator[Batch]:
        self._read_published()
        topology = self.topology()
        emitted = self.resume.get(topology.index, 0)
        batch_index = emitted // self.batch_size
        columnar = self.columnar
        pending: list[Any] = []
        source: BlockSource = (ColumnRows(cast(ColumnSource, self.source), self._refs, self.validated) if columnar
                               else self.source)
        for item in self._stream(source, topology):
            pending.append(item)
            if len(pending) == self.batch_size:
                emitted += len(pending)
                yield self._make_batch(pending, topology, batch_index, emitted, columnar)
                batch_index += 1
                pending = []
        if pending and not self.drop_last:
            emitted += len(pending)
            yield self._make_batch(pending, topology, batch_index, emitted, columnar)

    def _make_batch(self, items: list[Any], topology: Topology, batch_index: int, emitted: int,
                    columnar: bool) -> Batch:
        if columnar:
            batch = collate_rows(items, self.release_board)
        else:
            if self.transform is not None:
                rng = (np.random.default_rng([self.seed, self.epoch, topology.index, 2, batch_index])
                       if self.augment else None)
                items = [self.transform(s, rng) for s in items]
            batch = collate(items, self.release_board)
        batch.stream_state = {"epoch": self.epoch, "worker": topology.index, "emitted": emitted,
                              "total_workers": topology.total}
        return batch


class StreamingLoader(DataLoader):
    """A DataLoader over a ``StreamingDataset`` that can save and restore its position mid-epoch.

    Each ``iter()`` starts the next epoch (or continues an interrupted one
    after ``load_state_dict``). ``state_dict()`` records how many samples each
    global worker has delivered in batches already yielded. Lightning saves and
    restores it in checkpoints, since it has ``state_dict``/``load_state_dict``.
    A resumed epoch yields exactly the remaining objects; the batch order is
    the uninterrupted one as long as no worker had finished its share yet.
    """

    def __init__(self, dataset: StreamingDataset, *, num_workers: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("persistent_workers", False)
        super().__init__(dataset, batch_size=None, num_workers=num_workers, **kwargs)
        if num_workers > 0:
            dataset.release_board = ReleaseBoard(num_workers, ring_slots(num_workers, self.prefetch_factor))
            dataset.control = torch.zeros(2 + num_workers, dtype=torch.int64).share_memory_()
            dataset.validated = torch.zeros(len(dataset._refs), dtype=torch.uint8).share_memory_()
        self._epoch = dataset.epoch
        self._consumed: dict[int, int] = {}
        self._batches = 0

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        dataset: StreamingDataset = self.dataset  # type: ignore[assignment]
        if dataset.rank is None or dataset.world_size is None:  # bind placement here: workers can't see DDP
            rank, world = distributed_rank_world()
            dataset.rank = rank if dataset.rank is None else dataset.rank
            dataset.world_size = world if dataset.world_size is None else dataset.world_size
        dataset.set_epoch(self._epoch)
        dataset.resume = dict(self._consumed)
        dataset.rotation = self._batches % max(1, self.num_workers)
        dataset.publish()
        board = dataset.release_board
        if board is not None and not self.persistent_workers:  # fresh workers: no arena is in use
            board.reset()
        for batch in super().__iter__():
            if board is not None:
                board.sweep()
            state = batch.stream_state or {}
            if "worker" in state:
                self._consumed[state["worker"]] = state["emitted"]
            self._batches += 1
            yield batch
        self.end_epoch()

    def end_epoch(self) -> None:
        """Close the current epoch: the next ``iter()`` starts the next one (called at the stream's end, or by
        a caller that stops an epoch early on purpose)."""
        dataset: StreamingDataset = self.dataset  # type: ignore[assignment]
        self._epoch += 1
        self._consumed = {}
        self._batches = 0
        dataset.resume = {}
        dataset.rotation = 0

    def _total_workers(self) -> int:
        dataset: StreamingDataset = self.dataset  # type: ignore[assignment]
        world = dataset.world_size if dataset.world_size is not None else distributed_rank_world()[1]
        return world * max(1, self.num_workers)

    def state_dict(self) -> dict[str, Any]:
        dataset: StreamingDataset = self.dataset  # type: ignore[assignment]
        return {"epoch": self._epoch, "consumed": {str(k): v for k, v in self._consumed.items()},
                "batches": self._batches, "seed": dataset.seed, "total_workers": self._total_workers()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dataset: StreamingDataset = self.dataset  # type: ignore[assignment]
        if state.get("seed", dataset.seed) != dataset.seed:
            raise ConfigError(f"stream state was saved with seed {state['seed']}, dataset has {dataset.seed}")
        if state["consumed"] and state.get("total_workers") != self._total_workers():
            raise ConfigError(
                f"stream state was saved with {state.get('total_workers')} ranks x workers, now "
                f"{self._total_workers()}: mid-epoch resume needs the same layout (resume at an epoch end instead)"
            )
        self._epoch = int(state["epoch"])
        self._consumed = {int(k): int(v) for k, v in state["consumed"].items()}
        self._batches = int(state.get("batches", 0))

