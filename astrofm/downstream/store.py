"""The embedding store: vectors keyed by object_id, one vector set per modality, with metadata.

A store is a folder::

    my.store/
      store.json     the JSON sidecar (manifest): format version, store uid, model name/version,
                     id width, free metadata; per modality: its file, dimension, normalization,
                     the committed row count and SHA-256 digests of every full 65,536-row block
      image.h5       one HDF5 file per modality with two contiguous datasets allocated up front:
      spectrum.h5    'object_id' (S<id_width>, capacity) and 'vectors' (float32, capacity × D)

How appends stay safe: one writer at a time (an exclusive ``flock`` on ``.lock`` while a store is
open for appending, taken before the manifest is read; readers need no lock). ``append`` writes the new
rows *past* the committed count, straight into the preallocated contiguous datasets through a memory map
at their file offsets, flushes them to disk, and only then advances ``count`` in ``store.json`` (atomic
rename). An interrupted append therefore never touches committed rows; the rows it wrote lie past
``count`` and are overwritten by the next append. The HDF5 metadata is written once, when a file is
created; when capacity runs out, the file is rewritten with doubled capacity to a temporary file and
renamed over the old one. Readers memory-map the committed rows (no copy, no pickle) from the files they
opened, so a reader keeps seeing its rows when a writer renames a grown file over one (the old file's
space is freed when the reader closes). When an append is interrupted (Ctrl-C included) the writer
re-reads the committed state from disk, since a rename may already have happened; a writer opening the
store deletes the temporary files of writers that were killed.

Resuming: ``EmbeddingStore.create(path, ..., exist_ok=True)`` reopens an existing store for appending
(after checking that the model matches); ``missing(modality, ids)`` says which ids still need vectors and
``append(..., skip_existing=True)`` drops ids that are already stored.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np

from astrofm.downstream.validation import FieldCheck, as_object_ids, check_fields, check_vectors, read_format_json
from astrofm.errors import ConfigError, DataFormatError
from astrofm.utils.atomic import atomic_path, atomic_write_text, remove_temp_files

log = logging.getLogger(__name__)

FORMAT = "astrofm-embedding-store"
FORMAT_VERSION = 1
MANIFEST = "store.json"
#: Rows per digest block (the unit of ``verify`` and of the fingerprint).
DIGEST_BLOCK_ROWS = 65_536
#: Normalizations a store can declare; ``l2`` is checked on append (unit norm within 1e-3).
NORMALIZATIONS = ("l2", "none")
_NORM_TOLERANCE = 1e-3
_MIN_CAPACITY = 1024
_COPY_ROWS = 65_536
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DIGEST = re.compile(r"[0-9a-f]{64}")
#: Checks of the manifest's top-level fields and of each modality entry.
_MANIFEST_FIELDS: dict[str, FieldCheck] = {
    "uid": (lambda v: isinstance(v, str), "a string"),
    "model": (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str), "an object with a 'name'"),
    "normalization": (lambda v: v in NORMALIZATIONS, f"one of {NORMALIZATIONS}"),
    "id_width": (lambda v: type(v) is int and v >= 1, "a positive integer"),
    "metadata": (lambda v: isinstance(v, dict), "an object"),
    "modalities": (lambda v: isinstance(v, dict), "an object of modality entries"),
}
_ENTRY_FIELDS: dict[str, FieldCheck] = {
    "file": (lambda v: isinstance(v, str) and bool(_NAME.fullmatch(v)), "a file name in the store folder"),
    "dim": (lambda v: type(v) is int and v >= 1, "a positive integer"),
    "normalization": (lambda v: v in NORMALIZATIONS, f"one of {NORMALIZATIONS}"),
    "count": (lambda v: type(v) is int and v >= 0, "a non-negative integer"),
    "block_digests": (
        lambda v: isinstance(v, list) and all(isinstance(d, str) and _DIGEST.fullmatch(d) for d in v),
        "a list of SHA-256 hex digests",
    ),
}

IdsLike = Sequence[str] | Sequence[int] | np.ndarray


@dataclass
class _Modality:
    """In-memory state of one modality: manifest entry plus its open file and memory maps."""

    name: str
    path: Path
    dim: int
    normalization: str
    count: int
    digests: list[str]
    capacity: int = 0
    vec_offset: int = 0
    id_offset: int = 0
    file: IO[bytes] | None = field(default=None, repr=False)
    ids_index: dict[str, int] | None = None
    write_maps: tuple[np.memmap, np.memmap] | None = field(default=None, repr=False)

    def entry(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "dim": self.dim,
            "normalization": self.normalization,
            "count": self.count,
            "block_digests": list(self.digests),
        }

    def release(self) -> None:
        """Close the file and drop the write maps (arrays already returned stay valid)."""
        if self.file is not None:
            self.file.close()
        self.write_maps = None


class EmbeddingStore:
    """Embeddings keyed by object_id, one vector set per modality (see the module docstring for the format).

    Make one with :meth:`create`, open one with :meth:`open`. Object ids are strings (integers are
    written in decimal). Vectors are float32 (n, D).
    """

    def __init__(self, path: Path, *, writable: bool) -> None:
        """Open the store at ``path``: take the writer lock when ``writable``, then read the manifest.

        Use :meth:`create` or :meth:`open`.
        """
        self.path = path
        self.writable = writable
        self._manifest: dict[str, Any] = {}
        self._modalities: dict[str, _Modality] = {}
        self._lock = None
        if writable:
            _manifest_path(path)  # a folder that is not a store raises here and gets no lock file
            self._lock = _writer_lock(path)
            weakref.finalize(self, self._lock.close)  # released at garbage collection, if not closed before
        try:
            if writable:
                remove_temp_files(path)  # left by writers that were killed; no other writer runs now
            self._load()
        except BaseException:
            self.close()
            raise

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        model: str,
        model_version: str | None = None,
        normalization: str = "l2",
        id_width: int = 64,
        metadata: Mapping[str, Any] | None = None,
        exist_ok: bool = False,
    ) -> EmbeddingStore:
        """A new, writable store at ``path`` (a folder).

        ``normalization`` is the default for new modalities (``l2``: unit vectors, checked on append;
        ``none``). ``id_width`` is the longest object_id in UTF-8 bytes. With ``exist_ok`` an existing
        store of the same model is reopened for appending (resume).
        """
        path = Path(path)
        if normalization not in NORMALIZATIONS:
            raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, not {normalization!r}")
        if id_width < 1:
            raise ConfigError(f"id_width must be positive, not {id_width}")
        if (path / MANIFEST).exists():
            if not exist_ok:
                raise ConfigError(
                    f"{path}: an embedding store already exists (pass exist_ok=True to resume it)"
                )
            store = cls.open(path, mode="a")
            found = (store.model, store.model_version)
            if found != (model, model_version):
                store.close()
                raise ConfigError(
                    f"{path}: store holds embeddings of model {found}, not {(model, model_version)}"
                )
            return store
        if path.exists() and any(path.iterdir()):
            raise ConfigError(f"{path}: folder exists and is not an embedding store")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "uid": uuid.uuid4().hex,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": {"name": model, "version": model_version},
            "normalization": normalization,
            "id_width": int(id_width),
            "metadata": dict(metadata or {}),
            "modalities": {},
        }
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / MANIFEST, json.dumps(manifest, indent=2))
        log.info("created embedding store %s (model %s %s)", path, model, model_version or "")
        return cls(path, writable=True)

    @classmethod
    def open(cls, path: str | Path, *, mode: str = "r") -> EmbeddingStore:
        """Open a store: ``mode='r'`` read-only, ``'a'`` to append. Bad or truncated stores raise."""
        if mode not in ("r", "a"):
            raise ConfigError(f"mode must be 'r' or 'a', not {mode!r}")
        return cls(Path(path), writable=mode == "a")

    def close(self) -> None:
        """Close the modality files and release the writer lock (vectors already returned stay valid)."""
        for mod in self._modalities.values():
            mod.release()
            mod.ids_index = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
            self.writable = False

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return self._manifest["model"]["name"]

    @property
    def model_version(self) -> str | None:
        return self._manifest["model"]["version"]

    @property
    def uid(self) -> str:
        """Random id given to the store when created."""
        return self._manifest["uid"]

    @property
    def id_width(self) -> int:
        return int(self._manifest["id_width"])

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._manifest["metadata"])

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self._modalities)

    def dim(self, modality: str) -> int:
        return self._get(modality).dim

    def count(self, modality: str) -> int:
        """Committed rows of a modality."""
        return self._get(modality).count

    def normalization(self, modality: str) -> str:
        return self._get(modality).normalization

    def info(self) -> dict[str, Any]:
        """Model, metadata and per-modality dim/count/normalization, as a JSON-able dict."""
        return {
            "path": str(self.path),
            "uid": self.uid,
            "model": self.model,
            "model_version": self.model_version,
            "metadata": self.metadata,
            "modalities": {
                m.name: {"dim": m.dim, "count": m.count, "normalization": m.normalization}
                for m in self._modalities.values()
            },
        }

    def default_modality(self, modality: str | None = None) -> str:
        """``modality`` if given (checked), else the store's only modality."""
        if modality is not None:
            self._get(modality)
            return modality
        if len(self._modalities) != 1:
            raise ConfigError(f"{self.path}: choose a modality among {list(self._modalities)}")
        return next(iter(self._modalities))

    # -- reading --------------------------------------------------------------------------------
    def vectors(self, modality: str) -> np.ndarray:
        """The committed (count, D) float32 vectors, memory-mapped read-only (no copy)."""
        mod = self._get(modality)
        if mod.count == 0:
            return np.empty((0, mod.dim), np.float32)
        return self._maps(mod, mod.count)[1]

    def object_ids(self, modality: str) -> np.ndarray:
        """The committed object ids (str array, in row order)."""
        mod = self._get(modality)
        if mod.count == 0:
            return np.array([], dtype=str)
        return np.char.decode(np.asarray(self._maps(mod, mod.count)[0]), "utf-8")

    def contains(self, modality: str, object_ids: IdsLike) -> np.ndarray:
        """Which of ``object_ids`` have a vector of ``modality`` (bool array; False if no such modality)."""
        ids = as_object_ids(object_ids, where=self.path)
        if modality not in self._modalities:
            return np.zeros(len(ids), bool)
        index = self._index(self._modalities[modality])
        return np.fromiter((i in index for i in ids), bool, count=len(ids))

    def missing(self, modality: str, object_ids: IdsLike) -> np.ndarray:
        """The ids among ``object_ids`` that still need a vector of ``modality`` (for resuming)."""
        ids = as_object_ids(object_ids, where=self.path)
        return ids[~self.contains(modality, ids)]

    def index_of(self, modality: str, object_ids: IdsLike) -> np.ndarray:
        """Row numbers of ``object_ids`` in ``modality``; an id not stored raises DataFormatError."""
        ids = as_object_ids(object_ids, where=self.path)
        index = self._index(self._get(modality))
        rows = np.fromiter((index.get(i, -1) for i in ids), np.int64, count=len(ids))
        if (rows < 0).any():
            first = str(ids[np.flatnonzero(rows < 0)[0]])
            raise DataFormatError(
                self.path,
                "object_id not in store",
                object_id=first,
                field=modality,
                expected="a stored object_id",
                found=f"{int((rows < 0).sum())} of {len(ids)} ids missing",
            )
        return rows

    def get(self, modality: str, object_ids: IdsLike) -> np.ndarray:
        """Vectors (n, D) of the given ids, in their order (a copy)."""
        rows = self.index_of(modality, object_ids)
        return (
            np.asarray(self.vectors(modality)[rows])
            if len(rows)
            else np.empty((0, self.dim(modality)), np.float32)
        )

    # -- writing --------------------------------------------------------------------------------
    def add_modality(
        self, modality: str, dim: int, *, normalization: str | None = None, capacity: int = 0
    ) -> None:
        """Declare a modality (idempotent) and reserve room for ``capacity`` rows in total.

        Appending creates modalities on the fly; reserving the final size up front avoids regrowing the file.
        """
        self._require_writable()
        normalization = normalization or self._manifest["normalization"]
        if normalization not in NORMALIZATIONS:
            raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, not {normalization!r}")
        if modality in self._modalities:
            mod = self._modalities[modality]
            if (mod.dim, mod.normalization) != (dim, normalization):
                raise DataFormatError(
                    self.path / MANIFEST,
                    "modality already stored with another shape",
                    field=modality,
                    expected=(mod.dim, mod.normalization),
                    found=(dim, normalization),
                )
        else:
            if not _NAME.match(modality):
                raise ConfigError(f"modality name {modality!r} must be letters, digits, '_', '-' or '.'")
            if dim < 1:
                raise ConfigError(f"dimension must be positive, not {dim}")
            mod = _Modality(modality, self.path / f"{modality}.h5", int(dim), normalization, 0, [])
            with self._recovering():
                self._create_file(mod, max(capacity, _MIN_CAPACITY))
                self._modalities[modality] = mod
                self._write_manifest()
        if capacity > mod.capacity:
            with self._recovering():
                self._grow(mod, capacity)

    def append(self, modality: str, object_ids: IdsLike, vectors: Any, *, skip_existing: bool = False) -> int:
        """Append vectors (n, D) of ``object_ids`` to ``modality``; returns the number of rows written.

        Ids already stored raise DataFormatError unless ``skip_existing``. The rows are committed (on disk,
        visible to new readers) when this returns.
        """
        self._require_writable()
        where = self.path / MANIFEST
        ids = as_object_ids(object_ids, where=where)
        dim = self._modalities[modality].dim if modality in self._modalities else None
        array = check_vectors(vectors, where=where, object_ids=ids, dim=dim, field=modality)
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise DataFormatError(
                where,
                "object_id repeated within one append",
                object_id=str(unique[counts > 1][0]),
                field=modality,
            )
        stored = self.contains(modality, ids)
        if stored.any():
            if not skip_existing:
                raise DataFormatError(
                    where,
                    "object_id already stored",
                    object_id=str(ids[stored][0]),
                    field=modality,
                    expected="new ids (or skip_existing=True)",
                    found=f"{int(stored.sum())} already stored",
                )
            ids, array = ids[~stored], array[~stored]
        if len(ids) == 0:
            return 0
        encoded = np.char.encode(ids, "utf-8")
        if encoded.dtype.itemsize > self.id_width or (np.char.str_len(encoded) == 0).any():
            lengths = np.char.str_len(encoded)
            bad = int(np.flatnonzero((lengths > self.id_width) | (lengths == 0))[0])
            raise DataFormatError(
                where,
                "object_id empty or too long",
                object_id=str(ids[bad]),
                field="object_id",
                expected=f"1 to {self.id_width} UTF-8 bytes",
                found=int(lengths[bad]),
            )
        if modality not in self._modalities:
            self.add_modality(modality, array.shape[1])
        mod = self._modalities[modality]
        if mod.normalization == "l2":
            norms = np.linalg.norm(array, axis=1)
            bad_rows = np.flatnonzero(np.abs(norms - 1.0) > _NORM_TOLERANCE)
            if len(bad_rows):
                raise DataFormatError(
                    where,
                    "vector is not L2-normalized",
                    object_id=str(ids[bad_rows[0]]),
                    field=modality,
                    expected="unit norm (store normalization 'l2')",
                    found=f"norm {norms[bad_rows[0]]:.6g}",
                )
        start, stop = mod.count, mod.count + len(ids)
        with self._recovering():
            if stop > mod.capacity:
                self._grow(mod, max(stop, 2 * mod.capacity))
            id_map, vec_map = self._write_maps(mod)
            id_map[start:stop] = encoded.astype(f"S{self.id_width}")
            vec_map[start:stop] = array
            id_map.flush()
            vec_map.flush()
            digests = list(mod.digests)
            for block in range(start // DIGEST_BLOCK_ROWS, stop // DIGEST_BLOCK_ROWS):
                digests.append(
                    _block_digest(id_map, vec_map, block * DIGEST_BLOCK_ROWS, (block + 1) * DIGEST_BLOCK_ROWS)
                )
            mod.count, mod.digests = stop, digests
            self._write_manifest()
            if mod.ids_index is not None:
                mod.ids_index.update(zip(ids.tolist(), range(start, stop)))
        return len(ids)

    # -- integrity ------------------------------------------------------------------------------
    def fingerprint(self, modality: str) -> str:
        """SHA-256 identifying a modality's committed content (ids and vectors); changes with every append."""
        mod = self._get(modality)
        digest = hashlib.sha256(f"{mod.dim}:{mod.count}:{self.id_width}".encode())
        for block in mod.digests:
            digest.update(bytes.fromhex(block))
        tail_start = len(mod.digests) * DIGEST_BLOCK_ROWS
        if mod.count > tail_start:
            ids, vectors = self._maps(mod, mod.count)
            digest.update(bytes.fromhex(_block_digest(ids, vectors, tail_start, mod.count)))
        return digest.hexdigest()

    def verify(self, modality: str | None = None) -> None:
        """Recompute the block digests from the data; raise DataFormatError where they differ."""
        for mod in [self._get(modality)] if modality else list(self._modalities.values()):
            ids, vectors = self._maps(mod, mod.count)
            for block, expected in enumerate(mod.digests):
                start = block * DIGEST_BLOCK_ROWS
                found = _block_digest(ids, vectors, start, start + DIGEST_BLOCK_ROWS)
                if found != expected:
                    raise DataFormatError(
                        mod.path,
                        f"rows {start}-{start + DIGEST_BLOCK_ROWS - 1} changed since they were written",
                        field=mod.name,
                        expected=expected,
                        found=found,
                    )

    # -- export ---------------------------------------------------------------------------------
    def to_table(self, modalities: Sequence[str] | None = None) -> Any:
        """An astropy ``Table``: ``object_id`` plus one (n, D) column per modality, masked where absent."""
        from astropy.table import MaskedColumn, Table

        ids, columns = self._aligned(modalities)
        table = Table()
        table["object_id"] = ids
        for name, (values, present) in columns.items():
            if present.all():
                table[name] = values
            else:
                table[name] = MaskedColumn(values, mask=np.broadcast_to(~present[:, None], values.shape))
        table.meta.update({"model": self.model, "model_version": self.model_version, "store_uid": self.uid})
        return table

    def to_arrow(self, modalities: Sequence[str] | None = None) -> Any:
        """A ``pyarrow.Table``: ``object_id`` and one float32 list column per modality (null = absent)."""
        import pyarrow as pa

        ids, columns = self._aligned(modalities)
        arrays = {"object_id": pa.array(ids.tolist(), pa.string())}
        for name, (values, present) in columns.items():
            flat = pa.array(values.reshape(-1), pa.float32())
            arrays[name] = pa.FixedSizeListArray.from_arrays(
                flat, values.shape[1], mask=pa.array(~present) if not present.all() else None
            )
        meta = {
            "astrofm": json.dumps(
                {
                    "model": self.model,
                    "model_version": self.model_version,
                    "store_uid": self.uid,
                    "dims": {n: int(v.shape[1]) for n, (v, _) in columns.items()},
                }
            )
        }
        return pa.table(arrays).replace_schema_metadata(meta)

    def to_hf(self, modalities: Sequence[str] | None = None) -> Any:
        """A Hugging Face ``datasets.Dataset`` with the columns of :meth:`to_arrow`."""
        import datasets

        return datasets.Dataset(self.to_arrow(modalities))

    def to_parquet(self, path: str | Path, modalities: Sequence[str] | None = None) -> Path:
        """Write :meth:`to_arrow` to a Parquet file (atomically)."""
        import pyarrow.parquet as pq

        path = Path(path)
        with atomic_path(path, suffix=".parquet") as tmp:
            pq.write_table(self.to_arrow(modalities), tmp)
        return path

    def join(self, catalog: Any, modalities: Sequence[str] | None = None, *, join_type: str = "inner") -> Any:
        """Join the store's :meth:`to_table` with a catalog (astropy Table or path) on ``object_id``."""
        from astropy.table import join

        from astrofm.downstream.catalog import read_catalog

        table = read_catalog(catalog)
        return join(self.to_table(modalities), table, keys="object_id", join_type=join_type)

    # -- internals ------------------------------------------------------------------------------
    def _get(self, modality: str) -> _Modality:
        if modality not in self._modalities:
            raise DataFormatError(
                self.path / MANIFEST,
                "modality not in store",
                field=modality,
                expected=f"one of {list(self._modalities)}",
                found=modality,
            )
        return self._modalities[modality]

    def _require_writable(self) -> None:
        if not self.writable:
            raise ConfigError(
                f"{self.path}: store opened read-only (use EmbeddingStore.open(path, mode='a'))"
            )

    def _index(self, mod: _Modality) -> dict[str, int]:
        if mod.ids_index is None:
            mod.ids_index = {oid: i for i, oid in enumerate(self.object_ids(mod.name).tolist())}
        return mod.ids_index

    def _aligned(
        self, modalities: Sequence[str] | None
    ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        names = list(modalities) if modalities is not None else list(self._modalities)
        per = {name: (self.object_ids(name), self.vectors(name)) for name in names}
        ids = list(dict.fromkeys(oid for name in names for oid in per[name][0].tolist()))
        position = {oid: i for i, oid in enumerate(ids)}
        columns = {}
        for name, (mod_ids, vectors) in per.items():
            values = np.zeros((len(ids), self.dim(name)), np.float32)
            present = np.zeros(len(ids), bool)
            rows = np.fromiter((position[i] for i in mod_ids.tolist()), np.int64, count=len(mod_ids))
            values[rows] = vectors
            present[rows] = True
            columns[name] = (values, present)
        return np.array(ids, dtype=str), columns

    def _write_manifest(self) -> None:
        self._manifest["modalities"] = {m.name: m.entry() for m in self._modalities.values()}
        atomic_write_text(self.path / MANIFEST, json.dumps(self._manifest, indent=2))

    def _load(self) -> None:
        """Read the manifest and (re)attach every modality file it names, closing the previous ones."""
        manifest = _read_manifest(self.path)
        self._manifest, previous = manifest, self._modalities
        modalities = {
            name: _Modality(
                name,
                self.path / entry["file"],
                entry["dim"],
                entry["normalization"],
                entry["count"],
                list(entry["block_digests"]),
            )
            for name, entry in manifest["modalities"].items()
        }
        self._modalities = modalities
        for mod in previous.values():
            mod.release()
        for mod in modalities.values():
            self._attach(mod)

    @contextlib.contextmanager
    def _recovering(self) -> Iterator[None]:
        """On any exception (Ctrl-C included), re-read the committed state from disk before re-raising.

        A grown file or the manifest may have been renamed in just before the exception; memory that
        assumed otherwise would make the next append write at stale offsets or over committed rows.
        """
        try:
            yield
        except BaseException:
            try:
                self._load()
            except BaseException:
                self.close()  # state unknown: stop writing
                raise
            raise

    def _create_file(self, mod: _Modality, capacity: int) -> None:
        """Write ``mod.path`` anew (atomically) with room for ``capacity`` rows and the committed rows; attach it."""
        with atomic_path(mod.path, suffix=".h5.tmp") as tmp:  # a name remove_temp_files knows
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            with h5py.File(tmp, "w", track_order=True) as handle:
                handle.attrs.update(
                    {
                        "format": FORMAT,
                        "store_uid": self.uid,
                        "modality": mod.name,
                        "dim": mod.dim,
                        "note": f"rows past the committed count in {MANIFEST} are not data",
                    }
                )
                ids = handle.create_dataset(
                    "object_id", shape=(capacity,), dtype=f"S{self.id_width}", dcpl=dcpl
                )
                vectors = handle.create_dataset("vectors", shape=(capacity, mod.dim), dtype="<f4", dcpl=dcpl)
                id_offset, vec_offset = ids.id.get_offset(), vectors.id.get_offset()
            if mod.count:
                old_ids, old_vectors = self._maps(mod, mod.count)
                new_ids = np.memmap(
                    tmp, dtype=f"S{self.id_width}", mode="r+", offset=id_offset, shape=(capacity,)
                )
                new_vectors = np.memmap(
                    tmp, dtype="<f4", mode="r+", offset=vec_offset, shape=(capacity, mod.dim)
                )
                for start in range(0, mod.count, _COPY_ROWS):
                    stop = min(start + _COPY_ROWS, mod.count)
                    new_ids[start:stop] = old_ids[start:stop]
                    new_vectors[start:stop] = old_vectors[start:stop]
                new_ids.flush()
                new_vectors.flush()
                del new_ids, new_vectors
        self._attach(mod)

    def _grow(self, mod: _Modality, capacity: int) -> None:
        log.info("growing %s from %d to %d rows", mod.path, mod.capacity, capacity)
        self._create_file(mod, capacity)

    def _attach(self, mod: _Modality) -> None:
        """Open a modality file (closing the one open before), read its layout and check it against the manifest.

        The store maps rows from this open file, so they stay valid after a writer renames a grown file over it.
        """
        mod.release()
        try:
            mod.file = open(mod.path, "r+b" if self.writable else "rb")  # noqa: SIM115 - kept open, see release
        except OSError as error:
            raise DataFormatError(
                mod.path, f"modality file of the store is missing or unreadable ({error.strerror})", field=mod.name
            ) from None
        weakref.finalize(mod, mod.file.close)
        try:
            with h5py.File(mod.file, "r") as handle:
                attrs = dict(handle.attrs)
                ids, vectors = handle["object_id"], handle["vectors"]
                shapes = (ids.shape, vectors.shape, ids.dtype, vectors.dtype)
                offsets = (ids.id.get_offset(), vectors.id.get_offset())
        except (OSError, KeyError) as error:
            raise DataFormatError(
                mod.path, f"unreadable or truncated modality file ({error})", field=mod.name
            ) from None
        if attrs.get("store_uid") != self.uid:
            raise DataFormatError(
                mod.path,
                "modality file belongs to another store",
                field="store_uid",
                expected=self.uid,
                found=attrs.get("store_uid"),
            )
        (id_shape, vec_shape, id_dtype, vec_dtype) = shapes
        if len(vec_shape) != 2 or vec_shape[1] != mod.dim:
            raise DataFormatError(
                mod.path,
                "vector dimension differs from the manifest",
                field="vectors",
                expected=mod.dim,
                found=vec_shape,
            )
        if (
            id_dtype != np.dtype(f"S{self.id_width}")
            or vec_dtype != np.dtype("<f4")
            or id_shape[0] != vec_shape[0]
        ):
            raise DataFormatError(
                mod.path,
                "unexpected dataset types or lengths",
                field=mod.name,
                expected=f"S{self.id_width} and float32 of equal length",
                found=f"{id_dtype}{id_shape}, {vec_dtype}{vec_shape}",
            )
        if None in offsets:
            raise DataFormatError(mod.path, "datasets are not contiguous", field=mod.name)
        capacity = int(vec_shape[0])
        if mod.count > capacity:
            raise DataFormatError(
                mod.path,
                "file holds fewer rows than the manifest commits",
                field=mod.name,
                expected=f">= {mod.count} rows",
                found=capacity,
            )
        if len(mod.digests) != mod.count // DIGEST_BLOCK_ROWS:
            raise DataFormatError(
                self.path / MANIFEST,
                "block digests do not match the row count",
                field=mod.name,
                expected=mod.count // DIGEST_BLOCK_ROWS,
                found=len(mod.digests),
            )
        needed = max(offsets[0] + capacity * self.id_width, offsets[1] + capacity * mod.dim * 4)
        size = os.fstat(mod.file.fileno()).st_size
        if size < needed:
            raise DataFormatError(
                mod.path,
                "modality file is truncated",
                field=mod.name,
                expected=f">= {needed} bytes",
                found=f"{size} bytes",
            )
        mod.capacity, mod.id_offset, mod.vec_offset = capacity, int(offsets[0]), int(offsets[1])

    def _maps(self, mod: _Modality, rows: int, mode: str = "r") -> tuple[np.memmap, np.memmap]:
        """Memory maps of the first ``rows`` (at least one) object ids and vectors in the modality's open file."""
        if mod.file is None or mod.file.closed:
            raise ConfigError(f"{self.path}: the store is closed")
        rows = max(rows, 1)
        ids = np.memmap(mod.file, dtype=f"S{self.id_width}", mode=mode, offset=mod.id_offset, shape=(rows,))
        vectors = np.memmap(mod.file, dtype="<f4", mode=mode, offset=mod.vec_offset, shape=(rows, mod.dim))
        return ids, vectors

    def _write_maps(self, mod: _Modality) -> tuple[np.memmap, np.memmap]:
        if mod.write_maps is None:
            mod.write_maps = self._maps(mod, mod.capacity, "r+")
        return mod.write_maps

    def __repr__(self) -> str:
        parts = ", ".join(f"{m.name}: {m.count}×{m.dim}" for m in self._modalities.values())
        return f"EmbeddingStore({str(self.path)!r}, model={self.model!r}, {parts or 'empty'})"


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the store at ``path``, checked field by field (bad or missing ones raise)."""
    manifest_path = _manifest_path(path)
    manifest = read_format_json(manifest_path, FORMAT, "an embedding store manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataFormatError(
            manifest_path,
            "unsupported store format version",
            field="format_version",
            expected=FORMAT_VERSION,
            found=manifest.get("format_version"),
        )
    check_fields(manifest_path, manifest, _MANIFEST_FIELDS)
    for name, entry in manifest["modalities"].items():
        if not isinstance(entry, dict):
            raise DataFormatError(
                manifest_path,
                "modality entry is not an object",
                field=f"modalities.{name}",
                found=type(entry).__name__,
            )
        check_fields(manifest_path, entry, _ENTRY_FIELDS, prefix=f"modalities.{name}.")
    return manifest


def _manifest_path(path: Path) -> Path:
    """``path/store.json``; raises if ``path`` is not a store folder."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise DataFormatError(
            path,
            "not an embedding store",
            field=MANIFEST,
            expected=f"a store folder with {MANIFEST}",
            found="no manifest" if path.exists() else "no such folder",
        )
    return manifest_path


def _writer_lock(path: Path) -> Any:
    """An exclusive lock on ``path/.lock`` held while the store is open for writing (one writer at a time).

    The kernel releases it when the process ends, so a crashed writer never leaves a stale lock.
    """
    import fcntl

    handle = open(path / ".lock", "a")  # noqa: SIM115 - held open for the store's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(f"{path}: the store is open for writing elsewhere (one writer at a time)") from None
    return handle


def _block_digest(ids: np.ndarray, vectors: np.ndarray, start: int, stop: int) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(ids[start:stop]).tobytes())
    digest.update(np.ascontiguousarray(vectors[start:stop]).tobytes())
    return digest.hexdigest()
