"""Map-style access for small data: random access by index and by object_id, with transforms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from torch.utils.data import Dataset

from astrofm.data.modalities import Sample
from astrofm.data.schema import object_id_str
from astrofm.data.streaming import SampleFn
from astrofm.errors import DataFormatError


class RandomAccessSource(Protocol):
    """A source with random access: ``MMUDataset`` or ``CrossMatchDataset``."""

    name: str

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...

    def get(self, object_id: str | int) -> Sample: ...


class MapDataset(Dataset[Sample]):
    """A ``torch.utils.data.Dataset`` view of a source, optionally restricted to some object_ids.

    Use with ``DataLoader(..., collate_fn=astrofm.data.batch.collate)``.
    ``transform(sample, rng)`` is applied to each sample; pass ``seed`` to give
    random augmentations a generator seeded per (seed, index), so that
    indexing is reproducible.
    """

    def __init__(self, source: RandomAccessSource, *, transform: SampleFn | None = None,
                 object_ids: Sequence[str] | None = None, seed: int | None = None) -> None:
        self.source = source
        self.transform = transform
        self.seed = seed
        self._ids = None if object_ids is None else [object_id_str(o) for o in object_ids]

    def __len__(self) -> int:
        return len(self.source) if self._ids is None else len(self._ids)

    def _finish(self, sample: Sample, index: int) -> Sample:
        if self.transform is None:
            return sample
        rng = np.random.default_rng([self.seed, index]) if self.seed is not None else None
        return self.transform(sample, rng)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.source.name}: index {index} out of range for {len(self)} objects")
        index %= len(self)
        sample = self.source[index] if self._ids is None else self.source.get(self._ids[index])
        return self._finish(sample, index)

    def by_object_id(self, object_id: str | int) -> Sample:
        """The (transformed) sample of one object."""
        key = object_id_str(object_id)
        if self._ids is not None and key not in self._ids:
            raise DataFormatError(None, "object not in this subset", object_id=key, field="object_id")
        return self._finish(self.source.get(key), 0)

    def subset(self, object_ids: Sequence[Any]) -> MapDataset:
        """The same view restricted to ``object_ids`` (e.g. one split of a manifest)."""
        return MapDataset(self.source, transform=self.transform, object_ids=list(object_ids), seed=self.seed)
