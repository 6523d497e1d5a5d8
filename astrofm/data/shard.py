"""Read and write one MMU HDF5 shard: flat columns, axis 0 = object.

Writes are atomic and validated; reads validate the layout when the shard is
opened and the values of every block the first time it is read through the
open handle (or the first time its stream reads it). Uncompressed columns are
viewed through a read-only map of the file rather than read
(``astrofm.data.mapped``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from astrofm.data.layout import healpix_index
from astrofm.data.mapped import MappedColumn, block_view, column_view, mappable, populate
from astrofm.data.schema import (
    DEC,
    HEALPIX,
    OBJECT_ID,
    RA,
    SCHEMAS,
    ModalitySchema,
    dtype_code,
    object_id_str,
)
from astrofm.errors import DataFormatError
from astrofm.utils.atomic import atomic_path

log = logging.getLogger(__name__)

#: Alternative spellings of standard columns found in MMU surveys.
_ALIASES = {OBJECT_ID: ("source_id",), RA: ("RA",), DEC: ("DEC",)}


def _standard_names(columns: Iterable[str]) -> dict[str, str | None]:
    """The column holding each standard column (its own name or an alias; None when absent)."""
    present = set(columns)
    return {standard: next((c for c in (standard, *_ALIASES.get(standard, ())) if c in present), None)
            for standard in (OBJECT_ID, RA, DEC, HEALPIX)}


def _as_storable(file: Path, name: str, values: Any) -> np.ndarray:
    """Convert a column to an HDF5-storable array (text becomes UTF-8 fixed-length bytes)."""
    array = np.asarray(values)
    if array.dtype.kind == "U":
        encoded = np.char.encode(array, "utf-8")
        return encoded.astype(f"S{max(1, encoded.dtype.itemsize)}")
    if array.dtype.kind == "O":
        raise DataFormatError(file, "object arrays cannot be stored; use numbers or text", field=name,
                              expected="a numeric, bool or text array", found="dtype object")
    return array


def write_shard(
    path: str | Path,
    columns: Mapping[str, Any],
    *,
    compression: str | None = None,
    chunk_rows: int | None = None,
) -> Path:
    """Validate ``columns`` and write them atomically as one MMU shard.

    ``columns`` must hold ``object_id``, ``ra`` and ``dec`` (or the MMU spellings
    that readers accept: Gaia's ``source_id``, ``RA``, ``DEC``, written as given);
    ``healpix`` (NESTED, nside 16) is computed when missing. Modality columns are checked
    against their schema (names, dtypes, shapes, finite values). The file is
    written next to ``path`` under a temporary name and renamed into place, so
    an interrupted write never leaves a partial shard.
    """
    path = Path(path)
    arrays = {name: _as_storable(path, name, value) for name, value in columns.items()}
    names = _standard_names(arrays)
    for required in (OBJECT_ID, RA, DEC):
        if names[required] is None:
            raise DataFormatError(path, "missing standard column", field=required,
                                  expected=f"a 1-D array with one entry per object (named "
                                           f"{' or '.join((required, *_ALIASES[required]))})",
                                  found="no such column")
    standard_of = {actual: standard for standard, actual in names.items() if actual is not None}
    id_column = arrays[names[OBJECT_ID]]
    n = len(id_column) if id_column.ndim else 0  # a scalar id fails the check below
    _validate_standard(path, {standard_of.get(name, name): (a.shape, a.dtype) for name, a in arrays.items()}, n,
                       lambda standard: arrays[names[standard] or standard])
    if names[HEALPIX] is None:
        arrays[HEALPIX] = healpix_index(arrays[names[RA]], arrays[names[DEC]])
    for spec in SCHEMAS.values():
        for field_spec in spec.fields:
            array = arrays.get(field_spec.name)
            if array is not None and field_spec.write_dtype:
                if array.dtype.kind not in "biuf":
                    raise DataFormatError(path, "wrong dtype", field=field_spec.name,
                                          expected=f"numbers or bool (stored as {field_spec.write_dtype})",
                                          found=dtype_code(array.dtype))
                arrays[field_spec.name] = array.astype(field_spec.write_dtype, copy=False)
    layout = {name: (a.shape, a.dtype) for name, a in arrays.items()}
    object_ids = id_column
    for schema in SCHEMAS.values():
        if schema.present_in(arrays):
            schema.validate_layout(path, layout, n)
            for field_spec in schema.fields:
                if field_spec.name in arrays:
                    schema.check_values(path, field_spec.name, arrays[field_spec.name], object_ids)
    for name, (shape, _) in layout.items():
        if len(shape) == 0 or shape[0] != n:
            raise DataFormatError(path, "column length differs from object_id", field=name,
                                  expected=f"{n} rows", found=f"shape {shape}")
    with atomic_path(path, suffix=".hdf5.tmp") as tmp, h5py.File(tmp, "w") as handle:
        for name, array in arrays.items():
            kwargs: dict[str, Any] = {}
            if compression is not None:  # HDF5 chunk sizes must be >= 1: an empty axis (e.g. L = 0) stays growable
                kwargs = {"compression": compression,
                          "chunks": tuple(max(1, d) for d in (min(n, chunk_rows or 64), *array.shape[1:])),
                          "maxshape": (None, *(d or None for d in array.shape[1:]))}
            handle.create_dataset(name, data=array, **kwargs)
    return path


def _validate_standard(file: object, layout: Mapping[str, tuple[tuple[int, ...], np.dtype]], n: int,
                       read: Any) -> None:
    """Check object_id (unique, int or text) and ra/dec (finite degrees in range)."""
    shape, dtype = layout[OBJECT_ID]
    if len(shape) != 1 or dtype.kind not in "iuS":
        raise DataFormatError(file, "object_id must be a 1-D integer or byte-string column", field=OBJECT_ID,
                              expected="(N,) int64 or S<k>", found=f"{shape} {dtype_code(dtype)}")
    if n == 0:
        raise DataFormatError(file, "shard holds no objects", field=OBJECT_ID, expected=">= 1 row", found="0 rows")
    ids = read(OBJECT_ID)
    unique, counts = np.unique(ids, return_counts=True)
    if len(unique) != n:
        dup = unique[counts > 1][0]
        raise DataFormatError(file, "object_id values must be unique", object_id=object_id_str(dup),
                              field=OBJECT_ID, expected="unique ids", found=f"{int(counts.max())} rows with this id")
    for name, low, high in ((RA, 0.0, 360.0), (DEC, -90.0, 90.0)):
        if name not in layout:
            continue
        shape, dtype = layout[name]
        if shape != (n,) or dtype.kind != "f":
            raise DataFormatError(file, "wrong shape or dtype", field=name, expected=f"({n},) float degrees",
                                  found=f"{shape} {dtype_code(dtype)}")
        values = read(name)
        bad = ~np.isfinite(values) | (values < low) | (values > high)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(file, "coordinate out of range", object_id=object_id_str(ids[i]), field=name,
                                  expected=f"finite degrees in [{low}, {high}]", found=float(values[i]))


@dataclass(frozen=True)
class ColumnInfo:
    """Name, shape and dtype of one column of a shard."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


class Shard:
    """One MMU HDF5 shard, validated on open and read in row blocks.

    The file handle opens lazily and again after a fork, so a ``Shard`` can be
    handed to DataLoader workers.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: h5py.File | None = None
        self._pid: int | None = None
        self._reset_per_handle()
        handle = self._open()
        try:
            self.columns = self._scan_columns(handle)
            self._names = _standard_names(self.columns)
            if self._names[OBJECT_ID] is None:
                raise DataFormatError(self.path, "missing standard column", field=OBJECT_ID,
                                      expected="object_id (or Gaia source_id)", found="no such column")
            id_shape = self.columns[self._names[OBJECT_ID]].shape
            self.n_objects = id_shape[0] if id_shape else 0
            layout = {self._standard_key(c.name): (c.shape, c.dtype) for c in self.columns.values()}
            self._object_ids = self._read_column(self._names[OBJECT_ID])
            _validate_standard(self.path, layout, self.n_objects, self._read_standard)
            self.modalities: dict[str, dict[str, int]] = {}
            for modality, schema in SCHEMAS.items():
                if schema.present_in(self.columns):
                    self.modalities[modality] = schema.validate_layout(self.path, layout, self.n_objects)
            for column in self.columns.values():
                if column.shape[:1] != (self.n_objects,):
                    raise DataFormatError(self.path, "column length differs from object_id", field=column.name,
                                          expected=f"{self.n_objects} rows", found=f"shape {column.shape}")
        except BaseException:
            self.close()
            raise

    # -- opening -----------------------------------------------------------------------------
    def _open(self) -> h5py.File:
        if self._handle is not None and self._pid == os.getpid():
            return self._handle
        if not self.path.exists():
            raise DataFormatError(self.path, "file not found")
        if self.path.stat().st_size == 0:
            raise DataFormatError(self.path, "empty file", expected="an HDF5 shard", found="0 bytes")
        try:
            self._handle = h5py.File(self.path, "r")
        except OSError as error:
            raise DataFormatError(self.path, "not a readable HDF5 file (truncated or another format)",
                                  expected="an HDF5 shard", found=str(error).split("(")[0].strip()) from error
        self._pid = os.getpid()
        self._reset_per_handle()
        return self._handle

    def _reset_per_handle(self) -> None:
        """Forget what belongs to the open file handle: mapped columns and blocks already checked."""
        self._mapped: dict[str, MappedColumn | None] = {}
        #: (column, start, stop) of row ranges whose values passed ``check_values`` through this handle
        #: (a file is only ever replaced by a rename, never rewritten in place, so they stay valid).
        self._checked: set[tuple[str, int, int]] = set()
        #: (column, start, stop) of mapped row ranges whose page tables this process has built
        self._populated: set[tuple[str, int, int]] = set()

    def close(self) -> None:
        """Close the file handle (reopened on the next read)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_pid"] = None
        state["_mapped"], state["_checked"], state["_populated"] = {}, set(), set()
        return state

    def _scan_columns(self, handle: h5py.File) -> dict[str, ColumnInfo]:
        columns: dict[str, ColumnInfo] = {}
        try:
            for name, item in handle.items():
                if isinstance(item, h5py.Dataset):
                    columns[name] = ColumnInfo(name, tuple(item.shape), item.dtype)
        except (OSError, RuntimeError, KeyError) as error:
            raise DataFormatError(self.path, "unreadable HDF5 structure (truncated file?)",
                                  found=str(error)) from error
        if not columns:
            raise DataFormatError(self.path, "no datasets in file", expected="flat MMU columns",
                                  found="no top-level datasets")
        return columns

    def _standard_key(self, name: str) -> str:
        for standard, actual in self._names.items():
            if actual == name:
                return standard
        return name

    def _read_standard(self, standard: str) -> np.ndarray:
        if standard == OBJECT_ID:
            return self._object_ids
        return self._read_column(self._names[standard] or standard)

    def _read_column(self, name: str, start: int = 0, stop: int | None = None,
                     rows: np.ndarray | None = None, keep_map: bool = False) -> np.ndarray:
        handle = self._open()
        try:
            if rows is None and stop is not None and stop > start:
                mapped = self._mapped_rows(handle, name, start, stop, keep_map)
                if mapped is not None:
                    return mapped
            dataset = handle[name]
            if rows is not None:
                return dataset[np.sort(rows)] if len(rows) else dataset[0:0]
            return dataset[start:stop] if stop is not None or start else dataset[()]
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as error:
            where = f"rows {start}:{stop}" if rows is None else f"{len(rows)} rows"
            raise DataFormatError(self.path, f"cannot read {where} (truncated or corrupt file)", field=name,
                                  found=str(error)) from error

    def _mapped_rows(self, handle: h5py.File, name: str, start: int, stop: int, keep: bool) -> np.ndarray | None:
        """Rows ``start:stop`` of a column as a read-only view of a map of the file (``keep``: the file's kept
        map, else a map of just these rows), or None if its layout can't be mapped."""
        if name not in self._mapped:
            self._mapped[name] = mappable(handle, name)
        column = self._mapped[name]
        if column is None:
            return None
        try:
            if not keep:
                return block_view(column, start, stop)
            view = column_view(column)[start:stop]
            if (name, start, stop) not in self._populated:
                populate(column, start, stop)
                self._populated.add((name, start, stop))
            return view
        except OSError:  # e.g. the process's mapping limit is reached: read instead
            return None

    # -- public reading ---------------------------------------------------------------------
    @property
    def object_ids(self) -> np.ndarray:
        """The raw ``object_id`` column (int64 or bytes)."""
        return self._object_ids

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(ra, dec) in degrees; raises if the shard has none."""
        if self._names[RA] is None or self._names[DEC] is None:
            raise DataFormatError(self.path, "shard has no sky coordinates", field=RA,
                                  expected="ra and dec columns", found="none")
        return self._read_standard(RA).astype(np.float64), self._read_standard(DEC).astype(np.float64)

    def healpix(self) -> np.ndarray:
        """NESTED nside-16 healpix of every object (from the column, else computed)."""
        if self._names[HEALPIX] is not None:
            return self._read_column(self._names[HEALPIX]).astype(np.int64)
        return healpix_index(*self.coordinates())

    def catalog_columns(self) -> list[str]:
        """Columns that are neither standard nor part of a modality."""
        skip = set(self._names.values())
        for modality in self.modalities:
            skip.update(f.name for f in SCHEMAS[modality].fields)
        return [name for name in self.columns if name not in skip]

    def read(self, columns: Sequence[str], start: int = 0, stop: int | None = None,
             rows: np.ndarray | None = None, *, check: bool = True, keep_map: bool = False
             ) -> dict[str, np.ndarray]:
        """Read ``columns`` for rows ``start:stop`` (or the sorted ``rows``), values checked unless ``check`` is
        False (rows another process of the same stream has checked already). Uncompressed columns are views
        of a map of the file: the process's kept map of the whole file if ``keep_map`` (data read again and
        again, as in training), else a map of these rows only.

        Standard names (``object_id``, ``ra``, ``dec``) resolve their aliases.
        """
        stop = self.n_objects if stop is None else stop
        block: dict[str, np.ndarray] = {}
        ids = self._object_ids[np.sort(rows)] if rows is not None else self._object_ids[start:stop]
        for name in columns:
            actual = self._names.get(name) or name
            if actual not in self.columns:
                raise DataFormatError(self.path, "missing column", field=name, expected="a column of that name",
                                      found=f"columns {sorted(self.columns)[:12]}")
            values = self._read_column(actual, start, stop, rows, keep_map)
            checked = (name, start, stop) if rows is None else None
            if check and checked not in self._checked:
                for schema in _schemas_with(name):
                    schema.check_values(self.path, name, values, ids)
                if checked is not None:
                    self._checked.add(checked)
            block[name] = values
        return block

    def __repr__(self) -> str:
        return f"Shard({str(self.path)!r}, n_objects={self.n_objects}, modalities={sorted(self.modalities)})"


def _schemas_with(name: str) -> list[ModalitySchema]:
    return [schema for schema in SCHEMAS.values() if name in schema]
