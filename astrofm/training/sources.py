"""Block sources for training: a subset of objects (a split) and a concatenation of sources.

Both follow ``astrofm.data.sources.BlockSource``, so the streaming loader
reads them like any dataset: contiguous reads within a shard, resumable.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from astrofm.data.crossmatch import CrossMatchDataset
from astrofm.data.dataset import BlockRef, MMUDataset
from astrofm.data.modalities import Sample
from astrofm.data.sources import BlockSource
from astrofm.errors import ConfigError, DataFormatError

SPLITS = ("train", "val", "test")

log = logging.getLogger(__name__)


def object_positions(source: BlockSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object_id, file, row) of every object of a source (rows as its block references count them)."""
    if isinstance(source, MMUDataset):
        cat = source.catalog
        return cat.object_id, cat.file, cat.row
    if isinstance(source, CrossMatchDataset):
        ids = source.match.columns["object_id"]
        return ids, np.zeros(len(ids), np.int64), np.arange(len(ids), dtype=np.int64)
    if isinstance(source, SubsetSource):  # its blocks index the selection
        return source.object_ids, source.files, np.arange(len(source), dtype=np.int64)
    if isinstance(source, ConcatSource):
        parts = [object_positions(s) for s in source.sources]
        files = [f + off for (_, f, _), off in zip(parts, source.file_offsets)]
        return (np.concatenate([p[0] for p in parts]), np.concatenate(files), np.concatenate([p[2] for p in parts]))
    raise ConfigError(f"cannot select objects of a {type(source).__name__}; use an MMUDataset or CrossMatchDataset")


class ConcatSource:
    """Several sources read as one (e.g. galaxies and stars for an all-modalities model)."""

    def __init__(self, sources: Sequence[BlockSource]) -> None:
        if not sources:
            raise ConfigError("ConcatSource needs at least one source")
        self.sources = list(sources)
        self.name = "|".join(s.name for s in self.sources)
        self._files = [_file_count(s) for s in self.sources]
        self.file_offsets = np.cumsum([0, *self._files[:-1]]).tolist()

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)  # type: ignore[arg-type]

    def _local(self, ref: BlockRef) -> tuple[BlockSource, BlockRef]:
        k = int(np.searchsorted(self.file_offsets, ref.file, side="right") - 1)
        return self.sources[k], BlockRef(ref.file - self.file_offsets[k], ref.start, ref.stop)

    def blocks(self, block_size: int) -> list[BlockRef]:
        return [BlockRef(r.file + off, r.start, r.stop)
                for s, off in zip(self.sources, self.file_offsets) for r in s.blocks(block_size)]

    def iter_block(self, ref: BlockRef, start: int = 0) -> Iterator[Sample]:
        source, local = self._local(ref)
        yield from source.iter_block(local, start)

    def read_block_rows(self, ref: BlockRef, rows: Sequence[int]) -> list[Sample]:
        source, local = self._local(ref)
        return source.read_block_rows(local, rows)


def _file_count(source: BlockSource) -> int:
    return int(max(r.file for r in source.blocks(1 << 62)) + 1)


class SubsetSource:
    """The objects of ``source`` whose ids are in ``object_ids``, in storage order."""

    def __init__(self, source: BlockSource, object_ids: Sequence[str] | np.ndarray, *, name: str | None = None
                 ) -> None:
        self.source = source
        self.name = name or source.name
        ids, files, rows = object_positions(source)
        keep = np.isin(ids, np.asarray(object_ids, dtype=str))
        order = np.lexsort((rows[keep], files[keep]))
        self.files, self.rows = files[keep][order], rows[keep][order]
        #: Object ids of the subset, in storage (stream) order.
        self.object_ids = ids[keep][order]
        self._whole = {int(r.file): r for r in source.blocks(1 << 62)}

    def __len__(self) -> int:
        return len(self.rows)

    def blocks(self, block_size: int) -> list[BlockRef]:
        """Blocks of up to ``block_size`` selected rows of one file (start/stop index the selection)."""
        refs = []
        for file in np.unique(self.files):
            lo, hi = np.searchsorted(self.files, file), np.searchsorted(self.files, file, side="right")
            refs += [BlockRef(int(file), int(s), int(min(s + block_size, hi))) for s in range(lo, hi, block_size)]
        return refs

    def read_block_rows(self, ref: BlockRef, rows: Sequence[int]) -> list[Sample]:
        selected = self.rows[ref.start + np.asarray(rows, dtype=np.int64)]
        whole = self._whole[ref.file]
        return self.source.read_block_rows(whole, (selected - whole.start).tolist())

    def iter_block(self, ref: BlockRef, start: int = 0) -> Iterator[Sample]:
        yield from self.read_block_rows(ref, range(start, ref.length or 0))

    def spread_samples(self, limit: int) -> list[Sample]:
        """At most ``limit`` objects spread evenly over the subset (e.g. to fit statistics on)."""
        picks = np.unique(np.linspace(0, len(self) - 1, min(limit, len(self))).round().astype(np.int64))
        out: list[Sample] = []
        for file in np.unique(self.files[picks]):
            chosen = picks[self.files[picks] == file]
            out += self.read_block_rows(BlockRef(int(file), 0, len(self)), chosen.tolist())
        return out


def hash_split(object_ids: Sequence[str] | np.ndarray, fractions: Sequence[float] = (0.8, 0.1, 0.1),
               seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic train/val/test split by a hash of (seed, object_id)."""
    ids = np.asarray(object_ids, dtype=str)
    u = np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "little")
                  for i in ids], dtype=np.float64) / 2.0**64
    edges = np.cumsum([0.0, *fractions])
    return {name: ids[(u >= lo) & (u < hi)] for name, lo, hi in zip(SPLITS, edges[:-1], edges[1:])}


def split_ids(path: str | Path, object_ids: np.ndarray, required: Sequence[str] = ("train",)
              ) -> dict[str, np.ndarray]:
    """The ids of ``object_ids`` in each split of a manifest.

    Two layouts are read: ``{"train": [ids], "val": [...], "test": [...]}``, and the simulated
    universe's ``{"populations": {<population>: {<split>: {<survey>: [ids], ...}}}}``, where an
    object is in a split if its id is listed there under any survey. Ids are compared as text. A
    ``required`` split that matches no object is a ConfigError; another empty split is logged as a warning.
    """
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise DataFormatError(path, "cannot read split manifest", found=str(error)) from error
    if "populations" in manifest:
        listed = {s: [str(i) for pop in manifest["populations"].values() if s in pop
                      for survey in pop.get("surveys", []) for i in pop[s].get(survey, [])] for s in SPLITS}
    else:
        listed = {s: [str(i) for i in manifest.get(s, [])] for s in SPLITS}
    if not any(listed.values()):
        raise DataFormatError(path, "split manifest lists no objects", expected=f"ids under {list(SPLITS)}")
    ids = np.asarray(object_ids, dtype=str)
    chosen = {s: ids[np.isin(ids, np.asarray(listed[s], dtype=str))] for s in SPLITS}
    for split in (s for s in SPLITS if not len(chosen[s])):
        problem = (f"split manifest {path}: no object of the data is in its {split!r} split: the manifest lists "
                   f"{len(listed[split])} ids there (e.g. {listed[split][:3]}), the data has {len(ids)} (e.g. "
                   f"{ids[:3].tolist()}); ids are compared as text, so e.g. 7 and '007' differ")
        if split in required:
            raise ConfigError(problem)
        log.warning(problem)
    return chosen
