"""Collate samples into a padded, masked ``Batch``: the contract between data and models.

For every modality present in at least one object of the batch, a
``ModalityBatch`` holds:

- ``data``: one tensor per field, over the *present* objects only (P rows),
  padded along the sequence axis to the batch's longest entry;
- ``mask``: (P, L) bool, True at real positions (sequence modalities, and
  observed features of tabular data); ``None`` for fixed-size modalities;
- ``presence``: (B,) bool over all objects of the batch;
- ``meta``: non-array fields (band names ...), one entry per present object.

A modality absent from the whole batch is absent from the ``Batch``. A batch
of one works like any other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

from astrofm.data.modalities import ARRAY_MODALITIES, Sample
from astrofm.errors import DataFormatError

#: Sample keys that are not modalities.
RESERVED_KEYS = frozenset({"object_id", "ra", "dec", "targets", "source_ids"})
#: Field holding the per-feature observed mask of tabular data after transforms.
OBSERVED_FIELD = "observed"


@dataclass
class ModalityBatch:
    """One modality of a batch, over the P objects that have it."""

    data: dict[str, torch.Tensor]
    presence: torch.Tensor
    mask: torch.Tensor | None = None
    meta: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def index(self) -> torch.Tensor:
        """(P,) positions of the present objects in the batch."""
        return torch.nonzero(self.presence, as_tuple=False).reshape(-1)

    def __len__(self) -> int:
        return int(self.presence.sum())

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> ModalityBatch:
        """Move tensors to ``device``; cast floating tensors to ``dtype`` if given."""
        def move(t: torch.Tensor) -> torch.Tensor:
            cast = dtype if dtype is not None and t.is_floating_point() else None
            return t.to(device=device, dtype=cast, non_blocking=non_blocking)

        return ModalityBatch(
            data={k: move(v) for k, v in self.data.items()},
            presence=self.presence.to(device=device, non_blocking=non_blocking),
            mask=None if self.mask is None else self.mask.to(device=device, non_blocking=non_blocking),
            meta=self.meta,
        )


@dataclass
class Batch:
    """A padded, masked batch of multimodal objects."""

    object_id: list[str]
    modalities: dict[str, ModalityBatch]
    targets: dict[str, torch.Tensor | list[Any]] = field(default_factory=dict)
    #: Streaming position after this batch (set by the streaming dataset, used to resume).
    stream_state: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.object_id)

    def __contains__(self, modality: object) -> bool:
        return modality in self.modalities

    def __getitem__(self, modality: str) -> ModalityBatch:
        return self.modalities[modality]

    def __iter__(self) -> Iterator[str]:
        return iter(self.modalities)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> Batch:
        """Move every tensor to ``device``; cast floating tensors to ``dtype`` if given."""
        return Batch(
            object_id=self.object_id,
            modalities={k: v.to(device, dtype, non_blocking) for k, v in self.modalities.items()},
            targets={k: v.to(device=device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
                     for k, v in self.targets.items()},
            stream_state=self.stream_state,
        )

    def pin_memory(self) -> Batch:
        """Pinned copy for fast host-to-GPU transfer (called by DataLoader(pin_memory=True))."""
        return Batch(
            object_id=self.object_id,
            modalities={
                k: ModalityBatch({f: t.pin_memory() for f, t in m.data.items()}, m.presence.pin_memory(),
                                 None if m.mask is None else m.mask.pin_memory(), m.meta)
                for k, m in self.modalities.items()
            },
            targets={k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in self.targets.items()},
            stream_state=self.stream_state,
        )


def _empty(shape: tuple[int, ...], dtype: np.dtype) -> torch.Tensor:
    """An uninitialized tensor; in a DataLoader worker it lives in shared memory.

    The DataLoader then hands it to the main process without another copy
    (the same trick as torch's default collate).
    """
    torch_dtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    if get_worker_info() is None:
        return torch.empty(shape, dtype=torch_dtype)
    numel = int(np.prod(shape))
    storage = torch.empty(0, dtype=torch_dtype)._typed_storage()._new_shared(numel)
    return torch.empty(0, dtype=torch_dtype).new(storage).resize_(*shape)


def _pad_stack(name: str, field_name: str, arrays: Sequence[np.ndarray], ids: Sequence[str],
               ragged_axis0: bool) -> torch.Tensor:
    """Stack arrays into one tensor, zero-padding axis 0 (only if ``ragged_axis0``) to the longest."""
    first = arrays[0]
    trailing = first.shape[1:]
    dtype = np.result_type(*[a.dtype for a in arrays])
    if all(a.shape == first.shape for a in arrays):
        out = _empty((len(arrays), *first.shape), dtype)
        np.stack(arrays, out=out.numpy())
        return out
    for a, oid in zip(arrays, ids):
        if a.ndim != first.ndim or a.shape[1:] != trailing or (not ragged_axis0 and a.shape != first.shape):
            raise DataFormatError(
                None, f"cannot batch modality '{name}': shapes differ (add a crop/resample transform)",
                object_id=oid, field=field_name, expected=f"shape {first.shape}", found=f"shape {a.shape}",
            )
    length = max(len(a) for a in arrays)
    out = _empty((len(arrays), length, *trailing), dtype)
    view = out.numpy()
    for i, a in enumerate(arrays):
        view[i, : len(a)] = a
        view[i, len(a):] = 0
    return out


def _collate_modality(name: str, items: Sequence[Mapping[str, Any]], ids: Sequence[str],
                      presence: np.ndarray) -> ModalityBatch:
    plugin = ARRAY_MODALITIES.get(name)
    sequence_field = plugin.sequence_field if plugin is not None else None
    data: dict[str, torch.Tensor] = {}
    meta: dict[str, list[Any]] = {}
    for key in items[0]:
        values = [it.get(key) for it in items]
        if any(v is None for v in values):
            missing = ids[next(i for i, v in enumerate(values) if v is None)]
            raise DataFormatError(None, f"field missing in some objects of modality '{name}'", object_id=missing,
                                  field=key, expected="the same fields in every object", found="no such field")
        if isinstance(values[0], np.ndarray | torch.Tensor | np.generic | float | int | bool) and not isinstance(
                values[0], str):
            arrays = [np.asarray(v) for v in values]
            if arrays[0].dtype.kind in "biuf":
                ragged = sequence_field is not None and arrays[0].ndim >= 1
                data[key] = _pad_stack(name, key, arrays, ids, ragged)
                continue
        meta[key] = values
    mask = None
    if sequence_field is not None and sequence_field in data:
        lengths = torch.tensor([len(it[sequence_field]) for it in items])
        mask = torch.arange(data[sequence_field].shape[1])[None, :] < lengths[:, None]
    elif OBSERVED_FIELD in data:
        mask = data[OBSERVED_FIELD].bool()
    return ModalityBatch(data=data, presence=torch.from_numpy(presence), mask=mask, meta=meta)


def collate(samples: Sequence[Sample]) -> Batch:
    """Collate samples (dicts of modalities) into a ``Batch``."""
    if not samples:
        raise DataFormatError(None, "cannot collate an empty list of samples")
    ids = [str(s.get("object_id", i)) for i, s in enumerate(samples)]
    names = list(dict.fromkeys(k for s in samples for k in s if k not in RESERVED_KEYS and not k.startswith("_")))
    modalities: dict[str, ModalityBatch] = {}
    for name in names:
        presence = np.array([name in s for s in samples], dtype=bool)
        present = [s[name] for s in samples if name in s]
        present_ids = [i for i, p in zip(ids, presence) if p]
        modalities[name] = _collate_modality(name, present, present_ids, presence)
    targets: dict[str, torch.Tensor | list[Any]] = {}
    target_names = list(dict.fromkeys(k for s in samples for k in s.get("targets", {})))
    for t in target_names:
        values = [s.get("targets", {}).get(t) for s in samples]
        if all(v is None or (isinstance(v, int | float | np.number) and not isinstance(v, bool)) for v in values):
            targets[t] = torch.tensor([np.nan if v is None else float(v) for v in values], dtype=torch.float64)
        else:
            targets[t] = values
    return Batch(object_id=ids, modalities=modalities, targets=targets)
