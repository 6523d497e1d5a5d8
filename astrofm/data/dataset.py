"""An MMU dataset: a folder of HDF5 shards of one survey subset, read as samples."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.data.batch import ColumnBlock
from astrofm.data.layout import discover_shards, healpix_index, shard_path
from astrofm.data.modalities import ARRAY_MODALITIES, DataModality, Sample, TabularModality
from astrofm.data.schema import DEC, HEALPIX, OBJECT_ID, RA, object_id_str
from astrofm.data.shard import Shard, write_shard
from astrofm.errors import DataFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockRef:
    """A contiguous block of rows of one file of a source (the unit of streaming work).

    ``stop`` is None when the length is unknown until read (hub streams).
    """

    file: int
    start: int
    stop: int | None

    @property
    def length(self) -> int | None:
        return None if self.stop is None else self.stop - self.start


@dataclass(frozen=True)
class Catalog:
    """Position index of a dataset: one entry per object."""

    object_id: np.ndarray  # str
    ra: np.ndarray  # deg
    dec: np.ndarray  # deg
    healpix: np.ndarray  # NESTED nside 16
    file: np.ndarray  # index of the shard holding the object
    row: np.ndarray  # row inside that shard

    def __len__(self) -> int:
        return len(self.object_id)


class MMUDataset:
    """A local MMU dataset folder (``<survey>/<subset>``), or a single shard.

    Parameters
    ----------
    path:
        Folder of ``healpix=<N>/*.hdf5`` shards (searched recursively) or one file.
    modalities:
        Array modalities to read (default: every one found in any shard). Objects of a shard that lacks a
        modality have no such key in their samples (absent in batches' ``presence``).
    tabular_columns:
        Catalog columns gathered into the ``tabular`` modality (none by default).
    target_columns:
        Catalog columns returned as ``sample["targets"]`` (labels, never inputs).
    name:
        Short name of the dataset (default: the folder name).
    keep_maps:
        Keep each shard file mapped for the life of the process (``astrofm.data.mapped``): for data read
        every epoch, as in training. Their pages count in the process's RSS (bounded by
        ``ASTROFM_MAP_BUDGET_MB``). Default: a block's map goes with its last sample.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        modalities: Sequence[str] | None = None,
        tabular_columns: Sequence[str] = (),
        target_columns: Sequence[str] = (),
        name: str | None = None,
        keep_maps: bool = False,
    ) -> None:
        self.path = Path(path)
        self.keep_maps = keep_maps
        if not self.path.exists():
            raise DataFormatError(self.path, "dataset path not found")
        files = discover_shards(self.path)
        if not files:
            raise DataFormatError(self.path, "no HDF5 shards found", expected="healpix=<N>/*.hdf5 files",
                                  found="none")
        self.name = name or (self.path.stem if self.path.is_file() else self.path.name)
        self.shards = [Shard(f) for f in files]
        found = {m for s in self.shards for m in s.modalities}
        if modalities is None:
            chosen = [m for m in ARRAY_MODALITIES if m in found]
        else:
            chosen = list(modalities)
            for m in chosen:
                if m not in ARRAY_MODALITIES:
                    raise DataFormatError(self.path, "unknown modality", field=m,
                                          expected=sorted(ARRAY_MODALITIES), found=m)
                if m not in found:
                    raise DataFormatError(self.path, "modality in no shard", field=ARRAY_MODALITIES[m].schema.marker,
                                          expected=f"modality '{m}'", found=sorted(found))
        for m in chosen:
            lacking = [s.path for s in self.shards if m not in s.modalities]
            if lacking:
                log.info("%s: modality '%s' is absent from %d of %d shards (%s%s); their objects have none",
                         self.name, m, len(lacking), len(self.shards), lacking[0], ", ..." if len(lacking) > 1 else "")
        self.plugins: dict[str, DataModality] = {m: ARRAY_MODALITIES[m] for m in chosen}
        if tabular_columns:
            self.plugins["tabular"] = TabularModality(tabular_columns)
        self.target_columns = tuple(target_columns)
        tabular = self.plugins.get("tabular")
        for shard in self.shards:
            available = shard.catalog_columns()
            if isinstance(tabular, TabularModality):
                layout = {c: (shard.columns[c].shape, shard.columns[c].dtype) for c in available}
                tabular.validate_layout(shard.path, layout, shard.n_objects)
            for target in self.target_columns:
                if target not in available:
                    raise DataFormatError(shard.path, "target column not in shard", field=target,
                                          expected="a catalog column", found=f"available {sorted(available)[:20]}")
        self._offsets = np.cumsum([0] + [s.n_objects for s in self.shards])

    # -- size and layout ------------------------------------------------------------------------
    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.plugins)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def dims(self, modality: str) -> dict[str, int]:
        """Symbolic dimensions of a modality in the first shard that holds it (e.g. B, H, W)."""
        for shard in self.shards:
            if modality in shard.modalities:
                return dict(shard.modalities[modality])
        raise DataFormatError(self.path, "modality in no shard", field=modality, expected=f"modality '{modality}'",
                              found=sorted(self.modalities))

    def blocks(self, block_size: int) -> list[BlockRef]:
        """The rows of every shard cut into contiguous blocks of at most ``block_size``."""
        refs = []
        for i, shard in enumerate(self.shards):
            for start in range(0, shard.n_objects, block_size):
                refs.append(BlockRef(i, start, min(start + block_size, shard.n_objects)))
        return refs

    # -- reading ----------------------------------------------------------------------------------
    def _plugins_of(self, shard: Shard) -> dict[str, DataModality]:
        """The modalities read from ``shard``: the array modalities it holds, and tabular."""
        return {name: plugin for name, plugin in self.plugins.items()
                if name in shard.modalities or isinstance(plugin, TabularModality)}

    def _columns_for(self, shard: Shard) -> list[str]:
        available = list(shard.columns)
        cols = [OBJECT_ID]
        cols += [c for c in (RA, DEC) if shard._names[c] is not None]
        for plugin in self._plugins_of(shard).values():
            cols += plugin.columns(shard.catalog_columns() if isinstance(plugin, TabularModality) else available)
        cols += list(self.target_columns)
        return list(dict.fromkeys(cols))

    def _samples(self, shard: Shard, block: Mapping[str, np.ndarray]) -> list[Sample]:
        n = len(block[OBJECT_ID])
        samples: list[Sample] = [{"object_id": oid} for oid in self._object_ids(block)]
        if RA in block and DEC in block:
            for i, s in enumerate(samples):
                s["ra"] = float(block[RA][i])
                s["dec"] = float(block[DEC][i])
        for name, plugin in self._plugins_of(shard).items():
            for s, item in zip(samples, plugin.to_samples(block, n)):
                s[name] = item
        if self.target_columns:
            targets = self._targets(block)
            for i, s in enumerate(samples):
                s["targets"] = {t: values[i] for t, values in targets.items()}
        return samples

    @staticmethod
    def _object_ids(block: Mapping[str, np.ndarray]) -> list[str]:
        return [object_id_str(v) for v in block[OBJECT_ID]]

    def _targets(self, block: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
        return {t: [_scalar(v) for v in block[t]] for t in self.target_columns}

    @property
    def columnar(self) -> bool:
        """Whether every modality read has a columnar form (``read_block_columns`` works)."""
        return all(plugin.columnar for plugin in self.plugins.values())

    def _read(self, ref: BlockRef, check: bool = True) -> tuple[Shard, dict[str, np.ndarray]]:
        """The shard of a block and the block's columns."""
        shard = self.shards[ref.file]
        return shard, shard.read(self._columns_for(shard), ref.start, ref.stop, check=check, keep_map=self.keep_maps)

    def read_block_columns(self, ref: BlockRef, *, check: bool = True) -> ColumnBlock:
        """One contiguous block of rows in columnar form (fields view the block; no per-object dicts); values
        checked unless ``check`` is False."""
        shard, block = self._read(ref, check)
        n = len(block[OBJECT_ID])
        return ColumnBlock(self._object_ids(block),
                           {name: plugin.block_fields(block, n) for name, plugin in self._plugins_of(shard).items()},
                           self._targets(block))

    def read_block(self, ref: BlockRef) -> list[Sample]:
        """Samples of one contiguous block of rows."""
        return self._samples(*self._read(ref))

    def iter_block(self, ref: BlockRef, start: int = 0) -> Iterator[Sample]:
        """Samples of rows ``start``.. of a block (relative to the block)."""
        yield from self.read_block(BlockRef(ref.file, ref.start + start, ref.stop))

    def read_block_rows(self, ref: BlockRef, rows: Sequence[int]) -> list[Sample]:
        """Samples of the given rows of a block (relative to the block), in that order."""
        return self.read_rows(ref.file, ref.start + np.asarray(rows, dtype=np.int64))

    def read_rows(self, file: int, rows: np.ndarray) -> list[Sample]:
        """Samples of the given rows of one shard, in the order of ``rows``."""
        shard = self.shards[file]
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        samples = self._samples(shard, shard.read(self._columns_for(shard), rows=rows[order]))
        out: list[Sample] = [None] * len(rows)  # type: ignore[list-item]
        for k, i in enumerate(order):
            out[i] = samples[k]
        return out

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} objects")
        index %= len(self)
        file = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return self.read_rows(file, np.array([index - self._offsets[file]]))[0]

    def __iter__(self) -> Iterator[Sample]:
        for ref in self.blocks(256):
            yield from self.read_block(ref)

    @cached_property
    def catalog(self) -> Catalog:
        """object_id, ra, dec, healpix and location of every object."""
        ids, ras, decs, pixels, files, rows = [], [], [], [], [], []
        for i, shard in enumerate(self.shards):
            ra, dec = shard.coordinates()
            ids.append(np.array([object_id_str(v) for v in shard.object_ids], dtype=object))
            ras.append(ra)
            decs.append(dec)
            pixels.append(shard.healpix())
            files.append(np.full(shard.n_objects, i, np.int64))
            rows.append(np.arange(shard.n_objects, dtype=np.int64))
        return Catalog(np.concatenate(ids).astype(str), np.concatenate(ras), np.concatenate(decs),
                       np.concatenate(pixels), np.concatenate(files), np.concatenate(rows))

    @cached_property
    def _id_index(self) -> dict[str, int]:
        return {oid: i for i, oid in enumerate(self.catalog.object_id)}

    def locate(self, object_id: str | int) -> tuple[int, int]:
        """(shard index, row) of an object; raises a clear error if absent."""
        key = object_id_str(object_id)
        if key not in self._id_index:
            raise DataFormatError(self.path, "object not in dataset", object_id=key, field=OBJECT_ID)
        i = self._id_index[key]
        return int(self.catalog.file[i]), int(self.catalog.row[i])

    def get(self, object_id: str | int) -> Sample:
        """The sample of one object, by object_id."""
        file, row = self.locate(object_id)
        return self.read_rows(file, np.array([row]))[0]

    def __repr__(self) -> str:
        return (f"MMUDataset({self.name!r}, objects={len(self)}, shards={len(self.shards)}, "
                f"modalities={list(self.modalities)})")


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes | np.bytes_):
        return object_id_str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_dataset(
    root: str | Path,
    samples: Sequence[Sample],
    *,
    catalog: Mapping[str, np.ndarray] | None = None,
    modalities: Sequence[str] | None = None,
    tabular_columns: Sequence[str] = (),
    compression: str | None = None,
) -> list[Path]:
    """Write samples as an MMU dataset folder, one shard per healpix pixel.

    Writes ``modalities`` (default: every array modality of any sample) and, with ``tabular_columns``, the
    samples' ``tabular`` values. A shard has one row per object in every column, so within one healpix pixel
    either every object has a modality or none does (that shard then lacks it; its objects read back without
    it); a mix raises ``DataFormatError`` naming the first object that lacks it. ``catalog`` holds extra
    per-object columns (same order as ``samples``), written with their names. Each shard is written atomically.
    """
    if not samples:
        raise DataFormatError(root, "no samples to write")
    ids = np.array([s["object_id"] for s in samples])
    ra = np.array([s["ra"] for s in samples], np.float64)
    dec = np.array([s["dec"] for s in samples], np.float64)
    pixels = healpix_index(ra, dec)
    names = list(modalities) if modalities is not None else [m for m in ARRAY_MODALITIES
                                                              if any(m in s for s in samples)]
    plugins: dict[str, DataModality] = {m: ARRAY_MODALITIES[m] for m in names}
    if tabular_columns:
        plugins["tabular"] = TabularModality(tabular_columns)
    paths = []
    for pixel in np.unique(pixels):
        rows = np.flatnonzero(pixels == pixel)
        path = shard_path(root, int(pixel))
        columns: dict[str, Any] = {OBJECT_ID: _id_column(ids[rows]), RA: ra[rows], DEC: dec[rows],
                                   HEALPIX: pixels[rows]}
        for name, plugin in plugins.items():
            lacking = [i for i in rows if name not in samples[i]]
            if len(lacking) == len(rows):
                continue
            if lacking:
                raise DataFormatError(path, "objects of one shard (healpix pixel) must all have a modality or all "
                                      "lack it", object_id=str(samples[lacking[0]]["object_id"]), field=name,
                                      expected=f"'{name}' as in the pixel's other objects", found="no such modality")
            columns.update(plugin.to_columns([samples[i][name] for i in rows]))
        for key, values in (catalog or {}).items():
            columns[key] = np.asarray(values)[rows]
        paths.append(write_shard(path, columns, compression=compression))
    return paths


def _id_column(ids: np.ndarray) -> np.ndarray:
    """int64 ids if every id is an integer, else UTF-8 bytes."""
    try:
        as_int = ids.astype(np.int64)
        if (as_int.astype(str) == ids.astype(str)).all():
            return as_int
    except (ValueError, OverflowError):
        pass
    return np.char.encode(ids.astype(str), "utf-8")
