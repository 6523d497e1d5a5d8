"""``AstroFMDataModule``: train/val/test streams over MMU datasets (cross-matched, concatenated, split).

A data config lists *sources*; each source is one dataset or several
cross-matched by position (e.g. Legacy Survey images + DESI spectra). Several
sources are concatenated (e.g. galaxies and stars). Splits come from a
manifest of object ids (``split``, beside the data) or, without one, from a
hash of the object id. Batches are collated in the loader workers; the sample
transform is the model's (set by the LightningModule before loaders are made).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from astrofm.data.batch import Batch
from astrofm.data.crossmatch import CrossMatchDataset
from astrofm.data.dataset import MMUDataset
from astrofm.data.modalities import Sample
from astrofm.data.sources import BlockSource
from astrofm.data.streaming import SampleFn, StreamingDataset, StreamingLoader, Topology, distributed_rank_world
from astrofm.data.transforms import SampleTransform
from astrofm.errors import ConfigError, DataFormatError
from astrofm.sim.splits import SPLITS_FILE
from astrofm.training.cache import CachedSource, split_random
from astrofm.training.sources import SPLITS, ConcatSource, SubsetSource, hash_split, object_positions, split_ids

log = logging.getLogger(__name__)


@dataclass
class DatasetSpec:
    """One MMU dataset folder (relative to the data root) and what to read from it."""

    path: str
    modalities: list[str] | None = None
    tabular_columns: list[str] = field(default_factory=list)
    target_columns: list[str] = field(default_factory=list)


@dataclass
class SourceSpec:
    """Datasets cross-matched by position into one catalog (a single dataset needs no match)."""

    datasets: dict[str, DatasetSpec]
    how: str = "inner"
    radius_arcsec: float = 1.0


@dataclass
class LabelSpec:
    """Label columns joined onto samples from a flat HDF5 table (e.g. the simulator's truth catalog)."""

    #: Table path relative to the data root (one dataset per column, axis 0 = object).
    path: str
    #: Column of the table holding the ids to join on.
    key: str
    #: Columns added to ``sample["targets"]``.
    columns: list[str]
    #: Dataset whose object id is matched (``sample["source_ids"][dataset]``); None: the sample's object_id.
    dataset: str | None = None


class LabelJoin:
    """Adds label columns of a table to each sample's ``targets`` (missing objects get None)."""

    def __init__(self, spec: LabelSpec, root: Path) -> None:
        import h5py

        self.spec = spec
        with h5py.File(root / spec.path, "r") as handle:
            missing = [c for c in [spec.key, *spec.columns] if c not in handle]
            if missing:
                raise DataFormatError(root / spec.path, "label column not in table", field=missing[0],
                                      expected="a column", found=sorted(handle)[:20])
            keys = handle[spec.key][:]
            self.values = {c: _decoded(handle[c][:]) for c in spec.columns}
        self.index = {k: i for i, k in enumerate(_decoded(keys).astype(str))}

    def __call__(self, sample: Sample) -> Sample:
        key = sample.get("source_ids", {}).get(self.spec.dataset) if self.spec.dataset else sample.get("object_id")
        row = self.index.get(str(key)) if key is not None else None
        targets = dict(sample.get("targets", {}))
        for column, values in self.values.items():
            targets[column] = None if row is None else values[row].item()
        return {**sample, "targets": targets}


def _decoded(values: np.ndarray) -> np.ndarray:
    return np.char.decode(values, "utf-8") if values.dtype.kind == "S" else values


class _WithLabels:
    """Label joins, then the sample transform (picklable, for loader workers)."""

    def __init__(self, joins: list[LabelJoin], transform: SampleFn | None) -> None:
        self.joins, self.transform = joins, transform

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        for join in self.joins:
            sample = join(sample)
        return self.transform(sample, rng) if self.transform is not None else sample


def _smallest(counts: list[int | None]) -> int | None:
    """The smallest count, None if any is unknown."""
    return None if any(c is None for c in counts) else min(counts)  # type: ignore[type-var]


class EpochLoader(StreamingLoader):
    """A ``StreamingLoader`` whose ``len()`` is the number of batches this DDP rank delivers in the current epoch.

    With ``equal_ranks`` (training) that is the smallest count over the ranks, so that the ranks step together
    (a rank with one batch more would wait for the others in its gradient all-reduce forever); a rank's extra
    batches are left for later epochs, whose block order differs. Without it (evaluation) every rank runs its
    own stream to its end, so each object is evaluated exactly once; only if some rank has no batch at all do
    all ranks deliver none (a rank that skips evaluation would miss the others' end-of-epoch metric sync).

    Lightning stops asking for batches once it has had ``len()`` of them, so the stream would never
    see its end and would start the next epoch where it stood (an empty epoch). The loader therefore
    closes the epoch itself when it hands out the epoch's last batch.
    """

    def __init__(self, dataset: StreamingDataset, *, equal_ranks: bool = True, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.equal_ranks = equal_ranks

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        own, total = self._epoch_counts()
        if total == 0 and own:
            dataset: StreamingDataset = self.dataset  # type: ignore[assignment]
            log.warning("%s: a DDP rank has no batch this epoch, so no rank reads one; use fewer ranks or "
                        "loader workers for this split", dataset.source.name)
        remaining = None if total is None else total - self._batches
        if remaining is not None and remaining <= 0:
            self.end_epoch()
            return
        stream = super().__iter__()
        for i, batch in enumerate(stream, 1):
            if i == remaining:
                if own == total:
                    next(stream, None)  # closes the epoch (no batch is left: the count is exact)
                else:  # this rank's extra batches are not delivered
                    stream.close()
                    self.end_epoch()
            yield batch

    def batches_in_epoch(self) -> int | None:
        """Batches this rank delivers in the current epoch; None if a block's length is unknown."""
        return self._epoch_counts()[1]

    def _epoch_counts(self) -> tuple[int | None, int | None]:
        """(batches this rank could deliver in the current epoch, batches it delivers)."""
        counts, rank = self._rank_counts()
        smallest = _smallest(counts)
        return counts[rank], smallest if self.equal_ranks or smallest == 0 else counts[rank]

    def _rank_counts(self) -> tuple[list[int | None], int]:
        """(batches each rank could deliver in the current epoch, this rank)."""
        dataset: StreamingDataset = self.dataset  # type: ignore[assignment]
        rank, world = distributed_rank_world()
        rank = dataset.rank if dataset.rank is not None else rank
        world = dataset.world_size if dataset.world_size is not None else world
        return [self._rank_batches(r, world) for r in range(world)], rank

    def _rank_batches(self, rank: int, world: int) -> int | None:
        dataset: StreamingDataset = self.dataset  # type: ignore[assignment]
        workers = max(1, self.num_workers)
        dataset.set_epoch(self._epoch)
        total = 0
        for w in range(workers):
            lengths = [r.length for r in dataset.worker_blocks(Topology(rank, world, w, workers))]
            if any(n is None for n in lengths):
                return None
            n = sum(lengths)  # type: ignore[arg-type]
            total += n // dataset.batch_size if dataset.drop_last else math.ceil(n / dataset.batch_size)
        return total

    def __len__(self) -> int:
        total = self.batches_in_epoch()
        if total is None:
            raise TypeError("number of batches unknown until streamed")
        return total


class AstroFMDataModule(L.LightningDataModule):
    """Streams of collated, transformed ``Batch``es for training and evaluation.

    Parameters
    ----------
    root:
        Data root; dataset paths and the split manifest are relative to it.
    sources:
        One entry per catalog (see :class:`SourceSpec`); several are concatenated.
    simulate:
        Simulator preset ("tiny", "small", ...) written to ``root`` unless it is there already.
    sim_seed:
        Seed of the simulation.
    split:
        Split manifest (JSON), relative to ``root`` or absolute. None: hash split with ``split_fractions`` and
        ``split_seed``; so is the default ``splits.json`` where ``root`` has none (a warning says so). Any other
        manifest that does not exist is a ConfigError, as is one whose train split matches no object when
        fitting.
    split_fractions:
        Train, val and test fractions of the hash split.
    split_seed:
        Seeds the hash split (without a manifest), independently of ``seed``: keep it fixed across the runs and
        evaluations of one experiment, or test objects leak into training.
    batch_size, eval_batch_size:
        Objects per training / evaluation batch (per rank).
    num_workers:
        Loader worker processes.
    persistent_workers:
        Keep the workers alive between epochs (default): no start-up cost per epoch, and each keeps its maps
        of the shard files and the blocks already checked; they still follow the epoch's order and a resumed
        position.
    buffer_size, block_size:
        Shuffle buffer (samples) and contiguous read size (rows).
    seed:
        Seeds the stream order and augmentations (not the split: see ``split_seed``).
    fit_samples:
        Train objects used to fit the transforms' statistics.
    drop_last:
        Drop the last partial training batch (keeps DDP ranks in step).
    labels:
        Label tables joined onto the samples as targets (see :class:`LabelSpec`).
    cache:
        Keep preprocessed samples in memory after their first read (transforms that use no generator
        done once; from the first that does, e.g. an augmentation or ``LengthCap``, every epoch). For data
        that fits in RAM; use ``num_workers=0``.
    """

    def __init__(self, root: str, sources: list[SourceSpec], *, simulate: str | None = None, sim_seed: int = 0,
                 split: str | None = SPLITS_FILE, split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 split_seed: int = 0, batch_size: int = 64, eval_batch_size: int | None = None, num_workers: int = 0,
                 persistent_workers: bool = True, buffer_size: int = 2048, block_size: int = 256, seed: int = 0,
                 fit_samples: int = 2048, drop_last: bool = True, labels: list[LabelSpec] | None = None,
                 cache: bool = False) -> None:
        super().__init__()
        if not sources:
            raise ConfigError("the data module needs at least one source")
        self.root = Path(root).expanduser()
        self.sources = [s if isinstance(s, SourceSpec) else _source_spec(s) for s in sources]
        self.simulate = simulate
        self.sim_seed = sim_seed
        self.split = split
        self.split_fractions = tuple(split_fractions)
        self.split_seed = split_seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers and num_workers > 0
        self.buffer_size = buffer_size
        self.block_size = block_size
        self.seed = seed
        self.n_fit_samples = fit_samples
        self.drop_last = drop_last
        self.labels = [x if isinstance(x, LabelSpec) else LabelSpec(**x) for x in labels or []]
        self._joins: list[LabelJoin] | None = None
        self.cache = cache
        self._cached: dict[str, tuple[SampleFn, CachedSource, SampleTransform]] = {}
        #: Applied to every sample in the loaders (the model's transform; set before loaders are made).
        self.transform: SampleFn | None = None
        self.splits: dict[str, SubsetSource] = {}

    # -- data ------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.simulate:  # writes, finishes or (when complete) just checks the simulation
            from astrofm.sim import simulate

            simulate(self.root, preset=self.simulate, seed=self.sim_seed, progress=False)

    def open_source(self) -> BlockSource:
        """All sources, cross-matched and concatenated (whole catalog, no split)."""
        opened = []
        for spec in self.sources:
            datasets = {name: MMUDataset(self.root / d.path, modalities=d.modalities,
                                         tabular_columns=d.tabular_columns, target_columns=d.target_columns,
                                         name=name, keep_maps=True)  # read every epoch
                        for name, d in spec.datasets.items()}
            if len(datasets) == 1:
                opened.append(next(iter(datasets.values())))
            else:
                opened.append(CrossMatchDataset.open(datasets, radius_arcsec=spec.radius_arcsec, how=spec.how))
        return opened[0] if len(opened) == 1 else ConcatSource(opened)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.prepare_data()
        source = self.open_source()
        ids = object_positions(source)[0]
        manifest = None if self.split is None else self.root / self.split
        if manifest is not None and not manifest.exists():
            if self.split != SPLITS_FILE:
                raise ConfigError(f"split manifest {manifest} does not exist (data.split={self.split!r}; a relative "
                                  f"path is read from data.root {self.root}); pass null for a hash split")
            log.warning("no split manifest at %s: splitting by object-id hash", manifest)
            manifest = None
        chosen = (hash_split(ids, self.split_fractions, self.split_seed) if manifest is None
                  else split_ids(manifest, ids, required=("train",) if stage in (None, "fit") else ()))
        self.splits = {name: SubsetSource(source, chosen[name], name=f"{source.name}:{name}") for name in SPLITS}
        log.info("splits: %s", {k: len(v) for k, v in self.splits.items()})

    def fit_samples(self, limit: int | None = None) -> list[Sample]:
        """Raw train objects, spread over the split, to fit transform statistics on."""
        self.setup()
        return self.splits["train"].spread_samples(limit or self.n_fit_samples)

    # -- loaders -----------------------------------------------------------------------------------
    def stream(self, split: str, *, shuffle: bool, batch_size: int | None = None, drop_last: bool = False,
               transform: SampleFn | None = None) -> StreamingDataset:
        """A streaming dataset over one split."""
        self.setup()
        if split not in self.splits:
            raise ConfigError(f"unknown split {split!r}; splits: {list(self.splits)}")
        if self._joins is None:
            self._joins = [LabelJoin(spec, self.root) for spec in self.labels]
        chosen = transform or self.transform
        source: BlockSource = self.splits[split]
        if self.cache and isinstance(chosen, SampleTransform):
            if split not in self._cached or self._cached[split][0] is not chosen:
                fixed, rest = split_random(chosen)
                self._cached[split] = (chosen, CachedSource(source, fixed), rest)
            _, source, chosen = self._cached[split]
        return StreamingDataset(source, batch_size=batch_size or self.batch_size, shuffle=shuffle,
                                buffer_size=self.buffer_size, block_size=self._block_size_for(source),
                                transform=_WithLabels(self._joins, chosen) if self._joins else chosen,
                                seed=self.seed, drop_last=drop_last)

    def _block_size_for(self, source: BlockSource) -> int:
        """``block_size``, halved until every DDP rank and loader worker gets at least one block of ``source``."""
        needed = distributed_rank_world()[1] * max(1, self.num_workers)
        size = self.block_size
        while size > 1 and len(source.blocks(size)) < needed:
            size //= 2
        return size

    def loader(self, split: str, *, shuffle: bool = False, batch_size: int | None = None,
               drop_last: bool = False, transform: SampleFn | None = None, equal_ranks: bool = False
               ) -> EpochLoader:
        """A resumable loader over one split (evaluation order unless ``shuffle``; every DDP rank to its end
        unless ``equal_ranks``, see :class:`EpochLoader`)."""
        return EpochLoader(self.stream(split, shuffle=shuffle, batch_size=batch_size, drop_last=drop_last,
                                       transform=transform), equal_ranks=equal_ranks,
                           num_workers=self.num_workers, persistent_workers=self.persistent_workers)

    def train_dataloader(self) -> EpochLoader:
        return self.loader("train", shuffle=True, drop_last=self.drop_last, equal_ranks=True)

    def val_dataloader(self) -> EpochLoader:
        return self.loader("val", batch_size=self.eval_batch_size)

    def test_dataloader(self) -> EpochLoader:
        return self.loader("test", batch_size=self.eval_batch_size)


def _source_spec(values: Any) -> SourceSpec:
    values = dict(values)
    datasets = {k: v if isinstance(v, DatasetSpec) else DatasetSpec(**v) for k, v in values.pop("datasets").items()}
    return SourceSpec(datasets, **values)

