"""Rows of uncompressed HDF5 datasets mapped into memory instead of read.

An HDF5 dataset stored contiguously (no chunks, filters or external files)
is a plain C-ordered array at a fixed byte offset of its file. Mapping a
block of its rows copy-on-write gives a writable numpy view of the page
cache: no read into fresh memory, and the first copy of those bytes is the
one into the batch. Each mapping covers one block and is released when the
last array viewing it is freed, so memory stays bounded by the blocks in use.
Any other layout (chunked, compressed, variable-length) is read by h5py.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

import h5py
import numpy as np

#: dtype kinds whose bytes can be viewed as they are stored (bool, ints, floats, complex, fixed bytes); variable-
#: length and compound types are read by h5py.
_VIEWABLE_KINDS = frozenset("biufcS")


@dataclass(frozen=True)
class MappedColumn:
    """Where a contiguous dataset's rows lie in its open file."""

    fd: int  # descriptor of the open file
    offset: int  # bytes from the start of the file
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize


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
    column = MappedColumn(fd, int(offset), tuple(dataset.shape), dataset.dtype)
    if column.offset + column.shape[0] * column.row_bytes > os.fstat(fd).st_size:
        return None  # never map past the end of a (truncated) file
    return column


def map_rows(column: MappedColumn, start: int, stop: int) -> np.ndarray:
    """A writable copy-on-write view of rows ``start:stop`` (writes never reach the file)."""
    first = column.offset + start * column.row_bytes
    base = first - first % mmap.ALLOCATIONGRANULARITY
    length = column.offset + stop * column.row_bytes - base
    region = mmap.mmap(column.fd, length, access=mmap.ACCESS_COPY, offset=base)
    return np.ndarray((stop - start, *column.shape[1:]), column.dtype, buffer=region, offset=first - base)


def file_descriptor(handle: h5py.File) -> int | None:
    """The OS file descriptor under an h5py file opened with the default (sec2) driver, else None."""
    if handle.driver != "sec2":
        return None
    try:
        fd = handle.id.get_vfd_handle()
    except (OSError, ValueError, TypeError):  # e.g. a platform whose handle is not a descriptor
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None
