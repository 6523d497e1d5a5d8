"""Batch memory: every tensor of a batch is a view into one block of memory (an arena).

Why one block: a DataLoader worker hands tensors to the main process through
shared memory, and shared memory gets no huge pages, so a freshly allocated
batch costs a page fault per 4 KiB (about 1 GB/s, slower than reading the
data from HDF5). So a batch lives in one arena, and each worker keeps a ring
of arenas that it refills in place. Ring arenas are passed to the main
process by their shared-memory name (torch's file-system sharing, for these
arenas only): torch's default passes a file descriptor through a socket and
a helper thread for every batch, which cost more than the batch's data on a
2-core machine. The main process hands an arena back (a flag in a small
shared board) once nothing refers to the batch any more, which it sees from a
weak reference to the batch's storage: a batch the user keeps is never
overwritten, the worker then takes a fresh arena instead. Every batch that
arrives is noted when it is unpickled, so a batch the DataLoader receives and
drops (the rest of an interrupted epoch) frees its arena too.

Outside workers, arenas are plain process memory allocated through numpy
(which asks the kernel for huge pages), fresh for every batch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
from torch.multiprocessing.reductions import StorageWeakRef, rebuild_storage_filename
from torch.utils.data import get_worker_info

#: Byte alignment of every tensor inside an arena.
ALIGN = 64
#: Ring arenas that arrived in this process (batches unpickled), per board token, until their board sweeps.
_RECEIVED: dict[int, list[tuple[int, int, StorageWeakRef]]] = {}


def ring_slots(num_workers: int, prefetch_factor: int) -> int:
    """Arenas in each worker's ring. In the steady state a worker has its ``prefetch_factor`` tasks in flight,
    plus the batch the consumer holds, the one it just received and one freed at its next sweep. At an epoch's
    end a worker also takes the tasks of a neighbour that has finished its share, so the ring covers twice
    the prefetch. Beyond that (a worker taking the tasks of several finished ones) it takes fresh arenas,
    freed after use, rather than keep that many arenas for the rest of the run. Slots are allocated when first
    used."""
    return prefetch_factor * min(num_workers, 2) + 3


@cache
def torch_dtype(dtype: np.dtype) -> torch.dtype:
    """The torch dtype of a numpy dtype."""
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def layout(specs: Sequence[tuple[tuple[int, ...], np.dtype]]) -> tuple[list[int], int]:
    """Byte offsets of tensors with these (shape, dtype), and the arena size they need."""
    offsets, total = [], 0
    for shape, dtype in specs:
        offsets.append(total)
        total += _aligned(math.prod(shape) * np.dtype(dtype).itemsize)
    return offsets, max(total, ALIGN)


def view(memory: torch.Tensor, offset: int, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """A contiguous ``shape``/``dtype`` tensor at byte ``offset`` of a uint8 arena."""
    nbytes = math.prod(shape) * dtype.itemsize
    return memory[offset: offset + nbytes].view(dtype).view(*shape)


def heap_arena(nbytes: int) -> torch.Tensor:
    """A fresh uint8 arena in process memory (numpy allocation: huge pages where the kernel allows)."""
    return torch.from_numpy(np.empty(nbytes, np.uint8))


def shared_arena(nbytes: int) -> torch.Tensor:
    """A fresh uint8 arena in shared memory (what a worker sends without copying)."""
    return torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(nbytes))


def named_arena(nbytes: int) -> torch.Tensor:
    """A uint8 arena in shared memory that other processes open by its name (``share_by_name``); a
    ``shared_arena`` where torch's file-system sharing is unavailable."""
    storage = torch.UntypedStorage(nbytes)
    try:
        storage._share_filename_cpu_()
    except RuntimeError:
        return shared_arena(nbytes)
    return torch.empty(0, dtype=torch.uint8).set_(storage)


def share_by_name(memory: torch.Tensor) -> tuple[Any, ...]:
    """What another process needs to open ``memory``'s (``named_arena``) storage: its shared-memory name.

    Passing a name costs nothing, where torch's default passes a file descriptor through a socket and a helper
    thread for every batch (the main cost of moving batches out of DataLoader workers on small machines).
    The reference taken here is dropped by ``open_by_name``, as torch does for its file-system strategy.
    """
    storage = memory.untyped_storage()
    manager, name, size = storage._share_filename_cpu_()
    storage._shared_incref()
    return (manager, name, size, memory.storage_offset(), memory.numel())


def open_by_name(handle: tuple[Any, ...]) -> torch.Tensor:
    """The uint8 arena that ``share_by_name`` described, opened in this process."""
    manager, name, size, offset, numel = handle
    storage = rebuild_storage_filename(torch.UntypedStorage, manager, name, size)
    return torch.empty(0, dtype=torch.uint8).set_(storage)[offset: offset + numel]


@dataclass
class Arena:
    """Memory for one batch, and where it came from (``slot`` -1: not from a ring)."""

    memory: torch.Tensor
    worker: int = -1
    slot: int = -1
    board: int = 0  # token of the ReleaseBoard of the ring


class ReleaseBoard:
    """Which ring arenas of which worker are still in use by the consumer (shared between processes).

    Workers take a free slot and mark it used; every batch of a slot that
    arrives in the consumer is noted (``received``), and ``sweep`` frees the
    slot once the storage of every copy received is gone.
    """

    def __init__(self, num_workers: int, slots: int) -> None:
        self.used = torch.zeros((num_workers, slots), dtype=torch.uint8).share_memory_()
        self.token = int.from_bytes(os.urandom(7), "little") | 1  # names this board's arenas in batches
        self._pending: list[tuple[int, int, StorageWeakRef]] = []
        self._rings: dict[int, list[torch.Tensor | None]] = {}

    # -- worker side ------------------------------------------------------------------------------
    def acquire(self, nbytes: int, worker: int) -> Arena:
        """An arena of ``nbytes`` for DataLoader worker ``worker``: a free ring slot, else a fresh one."""
        ring = self._rings.setdefault(worker, [None] * self.used.shape[1])
        used = self.used[worker]
        for slot, memory in enumerate(ring):
            if used[slot]:
                continue
            if memory is None or memory.numel() < nbytes:
                memory = ring[slot] = named_arena(_aligned(nbytes + nbytes // 4))  # room for longer batches
            used[slot] = 1
            return Arena(memory[:nbytes], worker, slot, self.token)
        return Arena(shared_arena(nbytes))

    # -- consumer side ----------------------------------------------------------------------------
    def sweep(self) -> None:
        """Free the slots whose received batches nobody refers to any more (every copy of them)."""
        self._pending += _RECEIVED.pop(self.token, [])
        alive = [(worker, slot, ref) for worker, slot, ref in self._pending if not ref.expired()]
        in_use = {(worker, slot) for worker, slot, _ in alive}
        for worker, slot, _ in self._pending:
            if (worker, slot) not in in_use:
                self.used[worker, slot] = 0
        self._pending = alive

    def reset(self) -> None:
        """Forget every slot (new workers, nothing in flight)."""
        self.used.zero_()
        self._pending = []
        _RECEIVED.pop(self.token, None)

    def __getstate__(self) -> dict[str, object]:
        return {"used": self.used, "token": self.token, "_pending": [], "_rings": {}}


def received(board: int, worker: int, slot: int, memory: torch.Tensor) -> None:
    """Note a ring arena that arrived in this process (a batch was unpickled); its board frees the slot on a
    sweep once ``memory``'s storage is gone."""
    if board and slot >= 0:
        _RECEIVED.setdefault(board, []).append((worker, slot, StorageWeakRef(memory.untyped_storage())))


def acquire(nbytes: int, board: ReleaseBoard | None = None) -> Arena:
    """An arena of ``nbytes``: process memory outside workers; in a worker a ring slot of ``board``, else fresh
    shared memory."""
    info = get_worker_info()
    if info is None:
        return Arena(heap_arena(nbytes))
    if board is not None and info.id < board.used.shape[0]:
        return board.acquire(nbytes, info.id)
    return Arena(shared_arena(nbytes))
