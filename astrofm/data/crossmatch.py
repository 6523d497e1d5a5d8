"""Cross-match datasets by sky position into one multimodal catalog.

Matching is one-to-one: a pair is kept when each object is the other's
nearest neighbour within the radius (astropy ``SkyCoord`` matching). Unlike
MMU's own join, pairs across healpix borders are kept. The first dataset is
the reference; each further dataset is matched against the catalog built so
far. An inner join keeps objects present in every dataset; an outer join
keeps all objects, with the datasets they lack marked absent. Cross-match ids
are unique: an object without the reference is named ``<dataset>:<id>``.

The result is saved beside the data (Parquet, with the inputs' signature in
its metadata) and reused while the inputs are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.data.dataset import BlockRef, MMUDataset
from astrofm.data.modalities import Sample
from astrofm.data.schema import object_id_str
from astrofm.errors import ConfigError, DataFormatError
from astrofm.utils.atomic import atomic_path

log = logging.getLogger(__name__)

_FORMAT_VERSION = 2  # 2: ids of rows without the reference are qualified "<name>:<id>"


@dataclass
class CrossMatch:
    """A multimodal catalog: one row per matched object.

    Columns: ``object_id`` (unique: the reference (first) dataset's id; for
    rows without the reference, ``<name>:<id>`` of the first dataset present,
    since surveys may number objects alike), ``ra``, ``dec`` [deg] (of the
    first present dataset), and per dataset ``<name>`` (present, bool),
    ``<name>_object_id`` ("" if absent), ``<name>_idx`` (row in that dataset's
    catalog, -1 if absent), ``<name>_sep_arcsec`` (NaN if absent).
    """

    names: list[str]
    columns: dict[str, np.ndarray]
    radius_arcsec: float
    how: str

    def __len__(self) -> int:
        return len(self.columns["object_id"])

    def present(self, name: str) -> np.ndarray:
        return self.columns[name]

    def to_table(self) -> Any:
        """As an astropy ``Table``."""
        from astropy.table import Table

        return Table(self.columns, meta={"radius_arcsec": self.radius_arcsec, "how": self.how, "names": self.names})

    def save(self, path: str | Path, signature: Mapping[str, Any] | None = None) -> Path:
        """Write as Parquet (atomically) with the match parameters in the metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta = {"format": _FORMAT_VERSION, "names": self.names, "radius_arcsec": self.radius_arcsec,
                "how": self.how, "signature": dict(signature or {})}
        table = pa.table({k: pa.array(v) for k, v in self.columns.items()})
        table = table.replace_schema_metadata({b"astrofm.crossmatch": json.dumps(meta).encode()})
        path = Path(path)
        with atomic_path(path, suffix=".parquet.tmp") as tmp:
            pq.write_table(table, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> tuple[CrossMatch, dict[str, Any]]:
        """Read a saved cross-match; returns it and its metadata."""
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
            meta = json.loads(table.schema.metadata[b"astrofm.crossmatch"])
        except Exception as error:  # pyarrow raises several types for bad files
            raise DataFormatError(path, "not an astrofm cross-match file", found=str(error)) from error
        columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
        columns = {k: v.astype(str) if v.dtype == object else v for k, v in columns.items()}
        return cls(meta["names"], columns, meta["radius_arcsec"], meta["how"]), meta


def _mutual_nearest(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray,
                    radius_arcsec: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs (i in 1, j in 2) that are mutual nearest neighbours within the radius, and separations."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    if len(ra1) == 0 or len(ra2) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    c1 = SkyCoord(ra1 * u.deg, dec1 * u.deg)
    c2 = SkyCoord(ra2 * u.deg, dec2 * u.deg)
    j_of_i, sep, _ = c1.match_to_catalog_sky(c2)
    i_of_j, _, _ = c2.match_to_catalog_sky(c1)
    i = np.arange(len(ra1))
    keep = (sep.to_value(u.arcsec) <= radius_arcsec) & (i_of_j[j_of_i] == i)
    return i[keep], np.asarray(j_of_i)[keep], sep.to_value(u.arcsec)[keep]


def crossmatch(datasets: Mapping[str, MMUDataset], *, radius_arcsec: float = 1.0, how: str = "inner") -> CrossMatch:
    """Match two or more datasets by position; see the module docstring."""
    if how not in ("inner", "outer"):
        raise ConfigError(f"how must be 'inner' or 'outer', not {how!r}")
    if len(datasets) < 2:
        raise ConfigError("cross-matching needs at least two datasets")
    if radius_arcsec <= 0:
        raise ConfigError(f"radius must be positive, got {radius_arcsec} arcsec")
    names = list(datasets)
    catalogs = {n: datasets[n].catalog for n in names}
    first = catalogs[names[0]]
    ra, dec = first.ra.copy(), first.dec.copy()
    idx = {names[0]: np.arange(len(first), dtype=np.int64)}
    sep = {names[0]: np.zeros(len(first))}
    for name in names[1:]:
        cat = catalogs[name]
        i, j, s = _mutual_nearest(ra, dec, cat.ra, cat.dec, radius_arcsec)
        n_rows = len(ra)
        idx[name] = np.full(n_rows, -1, np.int64)
        sep[name] = np.full(n_rows, np.nan)
        idx[name][i] = j
        sep[name][i] = s
        if how == "outer":
            unmatched = np.setdiff1d(np.arange(len(cat)), j)
            ra = np.concatenate([ra, cat.ra[unmatched]])
            dec = np.concatenate([dec, cat.dec[unmatched]])
            for other in idx:
                if other != name:
                    idx[other] = np.concatenate([idx[other], np.full(len(unmatched), -1, np.int64)])
                    sep[other] = np.concatenate([sep[other], np.full(len(unmatched), np.nan)])
            idx[name] = np.concatenate([idx[name], unmatched])
            sep[name] = np.concatenate([sep[name], np.zeros(len(unmatched))])
        log.info("cross-match %s: %d of %d objects matched within %.2f arcsec", name, len(i), len(cat), radius_arcsec)
    keep = np.ones(len(ra), bool)
    if how == "inner":
        for name in names:
            keep &= idx[name] >= 0
    columns: dict[str, np.ndarray] = {}
    object_id = np.full(int(keep.sum()), "", dtype=object)
    for name in names:
        rows = idx[name][keep]
        present = rows >= 0
        ids = np.full(len(rows), "", dtype=object)
        ids[present] = catalogs[name].object_id[rows[present]]
        fill = (object_id == "") & present
        object_id[fill] = ids[fill] if name == names[0] else f"{name}:" + ids[fill]
        columns[name] = present
        columns[f"{name}_object_id"] = ids.astype(str)
        columns[f"{name}_idx"] = rows
        columns[f"{name}_sep_arcsec"] = sep[name][keep]
    # position of the first dataset in which each object is present
    ra_out, dec_out = np.full(len(object_id), np.nan), np.full(len(object_id), np.nan)
    for name in reversed(names):
        rows = columns[f"{name}_idx"]
        present = rows >= 0
        ra_out[present] = catalogs[name].ra[rows[present]]
        dec_out[present] = catalogs[name].dec[rows[present]]
    out = {"object_id": object_id.astype(str), "ra": ra_out, "dec": dec_out, **columns}
    return CrossMatch(names, out, float(radius_arcsec), how)


def signature(datasets: Mapping[str, MMUDataset]) -> dict[str, Any]:
    """A fingerprint of the inputs (paths, sizes, modification times) to detect stale cross-matches."""
    digest = hashlib.sha256()
    for name, ds in datasets.items():
        for shard in ds.shards:
            stat = shard.path.stat()
            digest.update(f"{name}|{shard.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return {"sha256": digest.hexdigest(), "datasets": {n: str(d.path.resolve()) for n, d in datasets.items()}}


def default_path(datasets: Mapping[str, MMUDataset], radius_arcsec: float, how: str) -> Path:
    """``<common parent>/crossmatch/<a>+<b>-r<radius>-<how>.parquet``, beside the data."""
    import os

    parents = [str(d.path.resolve().parent) for d in datasets.values()]
    common = Path(os.path.commonpath(parents))
    return common / "crossmatch" / f"{'+'.join(datasets)}-r{radius_arcsec:g}-{how}.parquet"


def load_or_crossmatch(datasets: Mapping[str, MMUDataset], *, radius_arcsec: float = 1.0, how: str = "inner",
                       path: str | Path | None = None) -> CrossMatch:
    """Reuse the saved cross-match if its inputs are unchanged, else compute and save it."""
    path = Path(path) if path is not None else default_path(datasets, radius_arcsec, how)
    sig = signature(datasets)
    if path.exists():
        try:
            cached, meta = CrossMatch.load(path)
        except DataFormatError as error:
            log.warning("ignoring unreadable cross-match %s: %s", path, error)
        else:
            if (meta.get("format") == _FORMAT_VERSION and meta.get("signature", {}).get("sha256") == sig["sha256"]
                    and meta["radius_arcsec"] == radius_arcsec and meta["how"] == how
                    and meta["names"] == list(datasets)):
                log.info("reusing cross-match %s", path)
                return cached
    result = crossmatch(datasets, radius_arcsec=radius_arcsec, how=how)
    result.save(path, sig)
    return result


class CrossMatchDataset:
    """A cross-match read as samples: each object's modalities from every dataset it is in.

    Modality names must be unique across the datasets. ``sample["source_ids"]``
    maps dataset name to that dataset's object_id; targets are merged.
    """

    def __init__(self, datasets: Mapping[str, MMUDataset], match: CrossMatch) -> None:
        self.datasets = dict(datasets)
        self.match = match
        self.name = "+".join(self.datasets)
        owners: dict[str, str] = {}
        for name, ds in self.datasets.items():
            for modality in ds.modalities:
                if modality in owners:
                    raise ConfigError(f"modality '{modality}' comes from both '{owners[modality]}' and '{name}'; "
                                      "open one of them with modalities=[...] to choose")
                owners[modality] = name
        self._locations = {n: (d.catalog.file, d.catalog.row) for n, d in self.datasets.items()}

    @classmethod
    def open(cls, datasets: Mapping[str, MMUDataset], *, radius_arcsec: float = 1.0, how: str = "inner",
             path: str | Path | None = None) -> CrossMatchDataset:
        """Cross-match (or reuse the saved match) and wrap it as a source."""
        return cls(datasets, load_or_crossmatch(datasets, radius_arcsec=radius_arcsec, how=how, path=path))

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for d in self.datasets.values() for m in d.modalities)

    def __len__(self) -> int:
        return len(self.match)

    def blocks(self, block_size: int) -> list[BlockRef]:
        n = len(self.match)
        return [BlockRef(0, s, min(s + block_size, n)) for s in range(0, n, block_size)]

    def _read(self, rows: np.ndarray) -> list[Sample]:
        cols = self.match.columns
        samples: list[Sample] = [
            {"object_id": str(cols["object_id"][r]), "ra": float(cols["ra"][r]), "dec": float(cols["dec"][r]),
             "source_ids": {}}
            for r in rows
        ]
        for name, ds in self.datasets.items():
            idx = cols[f"{name}_idx"][rows]
            files, shard_rows = self._locations[name]
            present = np.flatnonzero(idx >= 0)
            for file in np.unique(files[idx[present]]):
                members = present[files[idx[present]] == file]
                for k, part in zip(members, ds.read_rows(int(file), shard_rows[idx[members]])):
                    sample = samples[k]
                    sample["source_ids"][name] = part["object_id"]
                    for key, value in part.items():
                        if key == "targets":
                            sample.setdefault("targets", {}).update(value)
                        elif key not in ("object_id", "ra", "dec"):
                            sample[key] = value
        return samples

    def read_block(self, ref: BlockRef) -> list[Sample]:
        return self._read(np.arange(ref.start, ref.stop))

    def iter_block(self, ref: BlockRef, start: int = 0) -> Iterator[Sample]:
        yield from self._read(np.arange(ref.start + start, ref.stop))

    def read_block_rows(self, ref: BlockRef, rows: Sequence[int]) -> list[Sample]:
        return self._read(ref.start + np.asarray(rows, dtype=np.int64))

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} objects")
        return self._read(np.array([index % len(self)]))[0]

    def __iter__(self) -> Iterator[Sample]:
        for ref in self.blocks(256):
            yield from self.read_block(ref)

    @cached_property
    def _id_index(self) -> tuple[dict[str, int], set[str]]:
        """(row of each id that names one row, bare member ids that name several rows)."""
        cols = self.match.columns
        index: dict[str, int] = {}
        ambiguous: set[str] = set()
        for name in self.datasets:
            for i, oid in enumerate(cols[f"{name}_object_id"]):
                if oid:
                    index[f"{name}:{oid}"] = i
                    if index.setdefault(oid, i) != i:
                        ambiguous.add(oid)
        for oid in ambiguous:
            del index[oid]
        index.update({oid: i for i, oid in enumerate(cols["object_id"])})
        return index, ambiguous

    def get(self, object_id: str | int) -> Sample:
        """The sample of one object, by its cross-match id (first), ``<dataset>:<id>``, or a member dataset's bare
        id if that id names one row only."""
        key = object_id_str(object_id)
        index, ambiguous = self._id_index
        if key not in index:
            if key in ambiguous:
                raise DataFormatError(None, f"ambiguous id in cross-match {self.name}", object_id=key,
                                      field="object_id", expected="a cross-match id or '<dataset>:<id>'",
                                      found="the id of objects in several datasets")
            raise DataFormatError(None, f"object not in cross-match {self.name}", object_id=key, field="object_id")
        return self._read(np.array([index[key]]))[0]

    def __repr__(self) -> str:
        return f"CrossMatchDataset({self.name!r}, objects={len(self)}, how={self.match.how!r})"
