"""Catalogs for the downstream jobs: any table with an ``object_id`` column.

A catalog is read by astropy from ``.parquet``, ``.fits``, ``.csv``, ``.ecsv`` or ``.h5``/``.hdf5``
(an astropy HDF5 table, or an MMU-style file whose 1-D root datasets are the columns). Its
``object_id`` column is turned into strings, the store's key; a CSV id column is read as text, so ids
such as ``000021`` keep their form.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.downstream.validation import as_object_ids
from astrofm.errors import DataFormatError

_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".fits": "fits",
    ".fit": "fits",
    ".csv": "ascii.csv",
    ".ecsv": "ascii.ecsv",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
}


def read_catalog(source: Any, *, id_column: str = "object_id") -> Any:
    """An astropy ``Table`` from a path, a Table or a mapping of columns, with ``object_id`` as str.

    ``id_column`` names the column that holds the ids (e.g. ``desi_object_id``
    in the simulated universe's truth); it becomes ``object_id``.
    """
    from astropy.table import Table

    where: Path | None = None
    if isinstance(source, Table):
        table = source.copy(copy_data=False)
    elif isinstance(source, Mapping):
        table = Table(dict(source))
    else:
        where = Path(source)
        if not where.is_file():
            raise DataFormatError(where, "catalog file not found")
        suffix = where.suffix.lower()
        if suffix not in _FORMATS:
            raise DataFormatError(where, "unknown catalog format", expected=sorted(_FORMATS), found=suffix)
        if _FORMATS[suffix] == "hdf5":
            table = _read_hdf5(where)
        elif _FORMATS[suffix] == "ascii.csv":  # ids as written: "000021" must not become the integer 21
            table = Table.read(where, format="ascii.csv", converters={id_column: str})
        else:
            table = Table.read(where, format=_FORMATS[suffix])
    if id_column not in table.colnames:
        raise DataFormatError(
            where,
            f"catalog has no {id_column} column",
            field=id_column,
            expected=f"a column named {id_column}",
            found=table.colnames[:20],
        )
    if id_column != "object_id":
        if "object_id" in table.colnames:
            table.remove_column("object_id")
        table.rename_column(id_column, "object_id")
    table["object_id"] = as_object_ids(np.asarray(table["object_id"]), where=where)
    return table


def column(table: Any, name: str, *, where: Any = None) -> np.ndarray:
    """One catalog column as an array: masked entries become NaN (numbers) or "" (text), bytes become str.

    A missing column raises DataFormatError listing the available ones.
    """
    if name not in table.colnames:
        raise DataFormatError(
            where,
            "catalog has no such column",
            field=name,
            expected="one of the columns",
            found=table.colnames[:30],
        )
    values = table[name]
    mask = np.ma.getmaskarray(values)
    if values.dtype.kind in "fiub":
        data = np.asarray(values.filled(0) if mask.any() else values)
        return np.where(mask, np.nan, data.astype(np.float64)) if mask.any() else data
    data = np.asarray(values.filled("") if mask.any() else values)
    return np.char.decode(data, "utf-8") if data.dtype.kind == "S" else data


def align(table: Any, object_ids: np.ndarray) -> np.ndarray:
    """Row of each ``object_ids`` in ``table`` (-1 where the catalog lacks the object)."""
    position = {oid: i for i, oid in enumerate(np.asarray(table["object_id"]).tolist())}
    return np.fromiter(
        (position.get(oid, -1) for oid in np.asarray(object_ids).tolist()), np.int64, count=len(object_ids)
    )


def _read_hdf5(path: Path) -> Any:
    import h5py
    from astropy.table import Table

    try:
        return Table.read(path, format="hdf5")
    except ValueError:
        pass  # not an astropy table: read 1-D root datasets as columns (MMU shards)
    with h5py.File(path, "r") as handle:
        columns = {
            name: item[()]
            for name, item in handle.items()
            if isinstance(item, h5py.Dataset) and item.ndim == 1
        }
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise DataFormatError(
            path,
            "HDF5 catalog columns differ in length",
            expected="1-D datasets of one length",
            found=sorted(lengths),
        )
    return Table(
        {name: np.char.decode(v, "utf-8") if v.dtype.kind == "S" else v for name, v in columns.items()}
    )
