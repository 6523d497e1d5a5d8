"""Columns of uncompressed HDF5 files viewed through a read-only memory map instead of read.

An HDF5 dataset stored contiguously (no chunks, filters or external files)
is a plain C-ordered array at a fixed byte offset of its file. A read-only
map makes its rows a numpy view of the page cache: no read into fresh
memory, and the only copy of the bytes is the one into the batch. Views are
read-only (writing to a sample raises; transforms build new arrays).

Two lifetimes:

- ``block_view``: a map of one block's rows, gone with the last view of it
  (single passes: embedding, inspection, evaluation scripts);
- ``column_view``: the whole file mapped once and kept by the process
  (``FILE_MAPS``), so that every block and every epoch reuses the page tables
  built for it. On small cloud VMs a page fault or a system call costs
  microseconds, and re-faulting every block every epoch cost more than copying
  its bytes. Training streams read the data every epoch and keep their maps.

Pages of a kept map are file pages shared with the page cache (the kernel
drops them under memory pressure like any cached file), but they count in the
process's RSS while mapped. The maps a process keeps are bounded by
``map_budget_bytes()`` (``ASTROFM_MAP_BUDGET_MB``, default a quarter of the
machine's memory) and by ``MAX_MAPPED_FILES``; past either, the least recently
used file map is dropped (it stays valid until the last view of it is freed).
Any other layout (chunked, compressed, variable-length) is read by h5py.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections import OrderedDict
from dataclasses import dataclass

import h5py
import numpy as np

#: dtype kinds whose bytes can be viewed as they are stored (bool, ints, floats, complex, fixed bytes); variable-
#: length and compound types are read by h5py.
_VIEWABLE_KINDS = frozenset("biufcS")
#: File maps a process keeps open at most (each holds a file descriptor).
MAX_MAPPED_FILES = 256
#: Environment variable: MB of file maps a process keeps open at most.
BUDGET_ENV = "ASTROFM_MAP_BUDGET_MB"


@dataclass(frozen=True)
class MappedColumn:
    """Where a contiguous dataset's rows lie in its open file."""

    fd: int  # descriptor of the open file
    file: tuple[int, int, int]  # (device, inode, size in bytes): names the file's contents
    offset: int  # bytes from the start of the file
    shape: tuple[int, ...]
    dtype: np.dtype


def mappable(handle: h5py.File, name: str) -> MappedColumn | None:
    """Where dataset ``name`` lies if its rows can be mapped, else None (chunked, filtered, external, not a
    plain array, or a file not opened by the default driver)."""
    fd = file_descriptor(handle)
    dataset = handle[name]
    if fd is None or dataset.chunks is not None or dataset.external or dataset.dtype.kind not in _VIEWABLE_KINDS:
        return None
    offset = dataset.id.get_offset()
    if offset is None or not dataset.shape or dataset.size == 0:
        return None
    stat = os.fstat(fd)
    column = MappedColumn(fd, (stat.st_dev, stat.st_ino, stat.st_size), int(offset), tuple(dataset.shape),
                          dataset.dtype)
    if column.offset + dataset.size * column.dtype.itemsize > stat.st_size:
        return None  # never map past the end of a (truncated) file
    return column


def map_budget_bytes() -> int:
    """Bytes of file maps a process keeps open: ``ASTROFM_MAP_BUDGET_MB``, else a quarter of physical memory."""
    configured = os.environ.get(BUDGET_ENV)
    if configured:
        return int(float(configured) * 2**20)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


class FileMaps:
    """Read-only maps of whole files, keyed by (device, inode, size), least recently used dropped first."""

    def __init__(self) -> None:
        self._maps: OrderedDict[tuple[int, int, int], mmap.mmap] = OrderedDict()

    @property
    def mapped_bytes(self) -> int:
        return sum(len(m) for m in self._maps.values())

    def region(self, column: MappedColumn) -> mmap.mmap:
        """The map of ``column``'s file (made on first use; kept while within the budget)."""
        region = self._maps.get(column.file)
        if region is not None:
            self._maps.move_to_end(column.file)
            return region
        region = mmap.mmap(column.fd, column.file[2], access=mmap.ACCESS_READ)
        self._maps[column.file] = region
        budget, total = map_budget_bytes(), self.mapped_bytes
        while len(self._maps) > 1 and (total > budget or len(self._maps) > MAX_MAPPED_FILES):
            _, dropped = self._maps.popitem(last=False)  # views of it keep it alive until they go
            total -= len(dropped)
        return region


#: The file maps of this process (inherited by forked DataLoader workers, which keep using them).
FILE_MAPS = FileMaps()


def column_view(column: MappedColumn) -> np.ndarray:
    """The whole column as a read-only array viewing the file's map."""
    return np.ndarray(column.shape, column.dtype, buffer=FILE_MAPS.region(column), offset=column.offset)


def block_view(column: MappedColumn, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` as a read-only array viewing a map of just those rows (unmapped with its last view)."""
    base, length, first = _byte_range(column, start, stop, mmap.ALLOCATIONGRANULARITY)
    region = mmap.mmap(column.fd, length, access=mmap.ACCESS_READ, offset=base)
    return np.ndarray((stop - start, *column.shape[1:]), column.dtype, buffer=region, offset=first - base)


def populate(column: MappedColumn, start: int, stop: int) -> None:
    """Build this process's page tables for rows ``start:stop`` in one call (``MADV_POPULATE_READ``) instead of
    a page fault per few pages; a no-op where the kernel (< 5.14) lacks it."""
    base, length, _ = _byte_range(column, start, stop, mmap.PAGESIZE)
    with contextlib.suppress(OSError):
        FILE_MAPS.region(column).madvise(_MADV_POPULATE_READ, base, length)


def _byte_range(column: MappedColumn, start: int, stop: int, alignment: int) -> tuple[int, int, int]:
    """(file offset rounded down to ``alignment``, bytes from there to the end of row ``stop - 1``, file offset
    of row ``start``)."""
    row_bytes = int(np.prod(column.shape[1:], dtype=np.int64)) * column.dtype.itemsize
    first = column.offset + start * row_bytes
    base = first - first % alignment
    return base, column.offset + stop * row_bytes - base, first


#: ``madvise`` advice that faults a range in (Linux >= 5.14; not exported by Python's mmap module).
_MADV_POPULATE_READ = 22


def file_descriptor(handle: h5py.File) -> int | None:
    """The OS file descriptor under an h5py file opened with the default (sec2) driver, else None."""
    if handle.driver != "sec2":
        return None
    try:
        fd = handle.id.get_vfd_handle()
    except (OSError, ValueError, TypeError):  # e.g. a platform whose handle is not a descriptor
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None
