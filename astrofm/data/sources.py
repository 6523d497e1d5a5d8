"""The block-source protocol: what the streaming and map-style datasets read from.

A source cuts its objects into blocks (contiguous rows of one file) and reads
them as samples. Local MMU folders, Hugging Face Parquet copies (local or on
the hub) and cross-matched catalogs are all sources.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from astrofm.data.batch import ColumnBlock
from astrofm.data.dataset import BlockRef
from astrofm.data.modalities import Sample


@runtime_checkable
class BlockSource(Protocol):
    """Anything the streaming loader can read: blocks of rows, as samples."""

    name: str

    def blocks(self, block_size: int) -> list[BlockRef]:
        """Every row of the source, cut into blocks of at most ``block_size`` (lengths known)."""
        ...

    def iter_block(self, ref: BlockRef, start: int = 0) -> Iterator[Sample]:
        """Samples of rows ``start``.. of a block (``start`` relative to the block)."""
        ...

    def read_block_rows(self, ref: BlockRef, rows: Sequence[int]) -> list[Sample]:
        """Samples of the given rows of a block (relative to the block), in that order."""
        ...


@runtime_checkable
class ColumnSource(BlockSource, Protocol):
    """A block source that can also give a block in columnar form (batches gathered without per-object dicts)."""

    @property
    def columnar(self) -> bool:
        """Whether every modality it reads has a columnar form."""
        ...

    def read_block_columns(self, ref: BlockRef, *, check: bool = True) -> ColumnBlock:
        """One block of rows in columnar form; values checked unless ``check`` is False."""
        ...


def open_source(location: str | Path, **options: object) -> BlockSource:
    """Open a dataset from a local MMU folder, a local Parquet copy, or a hub id.

    - a folder or file of HDF5 shards -> ``MMUDataset``;
    - a ``.parquet`` file or a folder of them (MMU's hub schema) -> ``HFDataset``;
    - ``hf://<owner>/<name>[@revision]`` or an ``<owner>/<name>`` that is not a
      local path -> ``HFDataset`` streaming from the Hugging Face hub.
    """
    from astrofm.data.dataset import MMUDataset
    from astrofm.data.hf import HFDataset, parse_hub_id

    text = str(location)
    path = Path(text).expanduser()
    if text.startswith("hf://") or (not path.exists() and parse_hub_id(text) is not None):
        repo, revision = parse_hub_id(text)  # type: ignore[misc]
        return HFDataset.from_hub(repo, revision=revision, **options)  # type: ignore[arg-type]
    if (path.is_file() and path.suffix == ".parquet") or (path.is_dir() and any(path.rglob("*.parquet")) and not any(
            path.rglob("*.hdf5"))):
        return HFDataset.from_parquet(path, **options)  # type: ignore[arg-type]
    return MMUDataset(path, **options)  # type: ignore[arg-type]


def parse_named_paths(items: Sequence[str]) -> dict[str, Path]:
    """``name=path`` or ``path`` (named after its folder; the parent is added if names clash)."""
    from astrofm.errors import ConfigError

    named: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        location = Path(path if sep else item)
        key = name if sep else location.name
        if key in named and not sep:
            key = f"{location.parent.name}-{location.name}"
        if key in named:
            raise ConfigError(f"two datasets are named {key!r}: use NAME=PATH")
        named[key] = location
    return named


def open_sources(items: Sequence[str], *, radius_arcsec: float = 1.0, modalities: Sequence[str] | None = None
                 ) -> BlockSource:
    """One dataset (``[path]``), or the outer cross-match of several (``["name=path", ...]``) within
    ``radius_arcsec``, keeping the datasets that hold one of ``modalities`` (all if None)."""
    from astrofm.data.crossmatch import CrossMatchDataset
    from astrofm.data.dataset import MMUDataset

    named = parse_named_paths(items)
    if len(named) == 1:
        return open_source(next(iter(named.values())))
    datasets = {}
    for name, path in named.items():
        dataset = MMUDataset(path, name=name)
        keep = [m for m in dataset.modalities if modalities is None or m in modalities]
        if keep:
            datasets[name] = MMUDataset(path, name=name, modalities=keep)
    return CrossMatchDataset.open(datasets, radius_arcsec=radius_arcsec, how="outer")
