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

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from astrofm.data import arena
from astrofm.data.arena import Arena, ReleaseBoard
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
    #: The uint8 arena every tensor of a freshly collated batch views (see ``astrofm.data.arena``).
    memory: torch.Tensor | None = field(default=None, repr=False, compare=False)
    #: (DataLoader worker, ring slot) the arena came from; (-1, -1) if from no ring.
    arena_slot: tuple[int, int] = field(default=(-1, -1), repr=False, compare=False)
    #: Token of the ``ReleaseBoard`` of that ring (0: none).
    arena_board: int = field(default=0, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.object_id)

    def __contains__(self, modality: object) -> bool:
        return modality in self.modalities

    def __getitem__(self, modality: str) -> ModalityBatch:
        return self.modalities[modality]

    def __iter__(self) -> Iterator[str]:
        return iter(self.modalities)

    def map_tensors(self, fn: Callable[[torch.Tensor], Any]) -> Batch:
        """A batch with ``fn`` applied to every tensor (data, masks, presence, numeric targets)."""
        def modality(m: ModalityBatch) -> ModalityBatch:
            return ModalityBatch(data={k: fn(v) for k, v in m.data.items()}, presence=fn(m.presence),
                                 mask=None if m.mask is None else fn(m.mask), meta=m.meta)

        return Batch(
            object_id=self.object_id,
            modalities={k: modality(m) for k, m in self.modalities.items()},
            targets={k: v if isinstance(v, list) else fn(v) for k, v in self.targets.items()},
            stream_state=self.stream_state,
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> Batch:
        """Move every tensor to ``device``; cast floating tensors to ``dtype`` if given.

        Models take float32 batches whatever the dtype of their weights (each encoder casts after its float32
        position codes); a bf16 cast here would round wavelengths (Å) and times (days) too coarsely for them.
        """
        def move(t: torch.Tensor) -> torch.Tensor:
            cast = dtype if dtype is not None and t.is_floating_point() else None
            return t.to(device=device, dtype=cast, non_blocking=non_blocking)

        return self.map_tensors(move)

    def pin_memory(self) -> Batch:
        """Pinned copy for fast host-to-GPU transfer (called by DataLoader(pin_memory=True)); the arena is
        freed for reuse once this batch is dropped."""
        return self.map_tensors(torch.Tensor.pin_memory)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickle the arena once (one shared-memory handle between processes) when every tensor views it."""
        memory = self.memory
        if memory is None:
            return super().__reduce_ex__(protocol)
        base = memory.untyped_storage().data_ptr()
        start = memory.storage_offset()

        def where(t: torch.Tensor) -> tuple[int, tuple[int, ...], torch.dtype]:
            if t.untyped_storage().data_ptr() != base or not t.is_contiguous():
                raise _NotInArena
            return (t.storage_offset() * t.element_size() - start, tuple(t.shape), t.dtype)

        try:
            skeleton = self.map_tensors(where)
        except _NotInArena:
            return replace(self, memory=None).__reduce_ex__(protocol)
        skeleton.arena_slot, skeleton.arena_board = self.arena_slot, self.arena_board
        if self.arena_slot[1] >= 0:  # a ring arena: passed by its shared-memory name
            try:
                return (_rebuild_named_batch, (arena.share_by_name(memory), skeleton))
            except RuntimeError:  # not shared by name (file-system sharing unavailable): torch's default
                pass
        return (_rebuild_batch, (memory, skeleton))


class _NotInArena(Exception):
    """A tensor of the batch does not view its arena (it was replaced after collation)."""


def _rebuild_named_batch(handle: tuple[Any, ...], skeleton: Batch) -> Batch:
    return _rebuild_batch(arena.open_by_name(handle), skeleton)


def _rebuild_batch(memory: torch.Tensor, skeleton: Batch) -> Batch:
    batch = skeleton.map_tensors(lambda where: arena.view(memory, *where))  # type: ignore[arg-type]
    batch.memory, batch.arena_slot, batch.arena_board = memory, skeleton.arena_slot, skeleton.arena_board
    arena.received(batch.arena_board, *batch.arena_slot, memory)
    return batch


@dataclass
class _Planned:
    """A tensor of the batch to be: its shape and dtype, and how to fill it (given its numpy view)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fill: Callable[[np.ndarray], None]


class _Plan:
    """Every tensor of a batch, planned first so that they can share one arena."""

    def __init__(self) -> None:
        self.items: list[_Planned] = []

    def add(self, shape: tuple[int, ...], dtype: np.dtype, fill: Callable[[np.ndarray], None]) -> int:
        """Plan a tensor; its dtype is ``dtype`` in native byte order (filling it swaps the bytes of big-endian
        FITS columns, which torch cannot hold)."""
        self.items.append(_Planned(tuple(int(d) for d in shape), np.dtype(dtype).newbyteorder("="), fill))
        return len(self.items) - 1

    def realize(self, board: ReleaseBoard | None) -> tuple[list[torch.Tensor], Arena]:
        offsets, nbytes = arena.layout([(it.shape, it.dtype) for it in self.items])
        memory = arena.acquire(nbytes, board)
        tensors = []
        for item, offset in zip(self.items, offsets):
            tensor = arena.view(memory.memory, offset, item.shape, arena.torch_dtype(item.dtype))
            item.fill(tensor.numpy())
            tensors.append(tensor)
        return tensors, memory


def _copy_rows(out: np.ndarray, rows: Sequence[np.ndarray]) -> None:
    """``out[i] = rows[i]``: one vectorized copy for small rows, row by row for large ones (faster than np.stack,
    above all for broadcast views with zero strides)."""
    first = rows[0]
    if first.nbytes < 4096 and 0 not in first.strides:
        np.stack(rows, out=out)
        return
    for i, row in enumerate(rows):
        out[i] = row


def _plan_stack(plan: _Plan, name: str, field_name: str, arrays: Sequence[np.ndarray], ids: Sequence[str],
                ragged_axis0: bool) -> int:
    """Plan one tensor stacking ``arrays``, zero-padding axis 0 (only if ``ragged_axis0``) to the longest."""
    first = arrays[0]
    trailing = first.shape[1:]
    dtype = np.result_type(*[a.dtype for a in arrays])
    if all(a.shape == first.shape for a in arrays):
        return plan.add((len(arrays), *first.shape), dtype, lambda out: _copy_rows(out, arrays))
    for a, oid in zip(arrays, ids):
        if a.ndim != first.ndim or a.shape[1:] != trailing or (not ragged_axis0 and a.shape != first.shape):
            raise DataFormatError(
                None, f"cannot batch modality '{name}': shapes differ (add a crop/resample transform)",
                object_id=oid, field=field_name, expected=f"shape {first.shape}", found=f"shape {a.shape}",
            )

    def fill(out: np.ndarray) -> None:
        for i, a in enumerate(arrays):
            out[i, : len(a)] = a
            out[i, len(a):] = 0

    return plan.add((len(arrays), max(len(a) for a in arrays), *trailing), dtype, fill)


@dataclass
class _Rows:
    """One field of a batch as rows of block arrays that share row shape and dtype: no per-row checks."""

    pairs: list[tuple[np.ndarray, int]]  # (block array, row) per object

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.pairs), *self.pairs[0][0].shape[1:])

    def rows(self) -> list[np.ndarray]:
        """The row views, in batch order."""
        return [array[r] for array, r in self.pairs]


@dataclass
class _PlannedModality:
    data: dict[str, int]
    presence: int
    mask: int | None
    meta: dict[str, list[Any]]


def _plan_modality(plan: _Plan, name: str, fields: Mapping[str, Sequence[Any]], ids: Sequence[str],
                   presence: np.ndarray) -> _PlannedModality:
    """Plan the tensors of one modality from its fields, each a list over the present objects."""
    plugin = ARRAY_MODALITIES.get(name)
    sequence_field = plugin.sequence_field if plugin is not None else None
    data: dict[str, int] = {}
    meta: dict[str, list[Any]] = {}
    arrays_of: dict[str, list[np.ndarray]] = {}
    for key, values in fields.items():
        if isinstance(values, _Rows):
            rows = values.rows()
            data[key] = plan.add(values.shape, values.pairs[0][0].dtype, lambda out, r=rows: _copy_rows(out, r))
            arrays_of[key] = rows
            continue
        if isinstance(values[0], np.ndarray | torch.Tensor | np.generic | float | int | bool) and not isinstance(
                values[0], str):
            arrays = [np.asarray(v) for v in values]
            if arrays[0].dtype.kind in "biuf":
                ragged = sequence_field is not None and arrays[0].ndim >= 1
                data[key] = _plan_stack(plan, name, key, arrays, ids, ragged)
                arrays_of[key] = arrays
                continue
        meta[key] = list(values)
    mask = None
    if sequence_field is not None and sequence_field in data:
        lengths = np.array([len(a) for a in arrays_of[sequence_field]])
        length = plan.items[data[sequence_field]].shape[1]
        mask = plan.add((len(ids), length), np.dtype(bool),
                        lambda out: np.less(np.arange(length)[None, :], lengths[:, None], out=out))
    elif OBSERVED_FIELD in data:
        observed = arrays_of[OBSERVED_FIELD]
        mask = plan.add(plan.items[data[OBSERVED_FIELD]].shape, np.dtype(bool),
                        lambda out: np.not_equal(np.stack(observed), 0, out=out))
    present = plan.add(presence.shape, np.dtype(bool), lambda out: np.copyto(out, presence))
    return _PlannedModality(data, present, mask, meta)


def _fields_of(name: str, items: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> dict[str, list[Any]]:
    """Per-object modality dicts as one list per field; every object must have the fields of the first."""
    fields = {}
    for key in items[0]:
        values = [it.get(key) for it in items]
        if any(v is None for v in values):
            missing = ids[next(i for i, v in enumerate(values) if v is None)]
            raise DataFormatError(None, f"field missing in some objects of modality '{name}'", object_id=missing,
                                  field=key, expected="the same fields in every object", found="no such field")
        fields[key] = values
    return fields


def collate(samples: Sequence[Sample], board: ReleaseBoard | None = None) -> Batch:
    """Collate samples (dicts of modalities) into a ``Batch`` whose tensors share one arena.

    ``board``: in a DataLoader worker, the ring of reusable shared arenas to take the memory from.
    """
    if not samples:
        raise DataFormatError(None, "cannot collate an empty list of samples")
    ids = [str(s.get("object_id", i)) for i, s in enumerate(samples)]
    names = list(dict.fromkeys(k for s in samples for k in s if k not in RESERVED_KEYS and not k.startswith("_")))
    modalities = {}
    for name in names:
        presence = np.array([name in s for s in samples], dtype=bool)
        present_ids = [i for i, p in zip(ids, presence) if p]
        modalities[name] = (_fields_of(name, [s[name] for s in samples if name in s], present_ids), presence)
    targets = {t: [s.get("targets", {}).get(t) for s in samples]
               for t in dict.fromkeys(k for s in samples for k in s.get("targets", {}))}
    return _collate_fields(ids, modalities, targets, board)


@dataclass(eq=False)
class ColumnBlock:
    """A block of rows in columnar form, the way a batch is gathered without one dict per object.

    ``modalities[name][field]`` is an array with a leading row axis or a list with one entry per row (the
    fields of ``DataModality.block_fields``); ``targets[name]`` a list of Python scalars.
    """

    object_id: list[str]
    modalities: dict[str, dict[str, Any]]
    targets: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.object_id)


def collate_rows(rows: Sequence[tuple[ColumnBlock, int]], board: ReleaseBoard | None = None) -> Batch:
    """Collate rows ``(block, row)`` of column blocks into the ``Batch`` that ``collate`` makes of their samples."""
    if not rows:
        raise DataFormatError(None, "cannot collate an empty list of rows")
    ids = [block.object_id[r] for block, r in rows]
    names = list(dict.fromkeys(name for block in dict.fromkeys(b for b, _ in rows) for name in block.modalities))
    modalities = {}
    for name in names:
        presence = np.array([name in block.modalities for block, _ in rows], dtype=bool)
        present = [(block.modalities[name], r) for block, r in rows if name in block.modalities]
        distinct = list({id(columns): columns for columns, _ in present}.values())
        fields: dict[str, Any] = {}
        for key in present[0][0]:
            first = distinct[0][key]
            if isinstance(first, np.ndarray) and first.dtype.kind in "biuf" and all(
                    isinstance(c[key], np.ndarray) and c[key].shape[1:] == first.shape[1:]
                    and c[key].dtype == first.dtype for c in distinct):
                fields[key] = _Rows([(columns[key], r) for columns, r in present])
            else:
                fields[key] = [columns[key][r] for columns, r in present]
        modalities[name] = (fields, presence)
    targets = {t: [block.targets[t][r] if t in block.targets else None for block, r in rows]
               for t in dict.fromkeys(t for block, _ in rows for t in block.targets)}
    return _collate_fields(ids, modalities, targets, board)


def _collate_fields(ids: list[str], modalities: Mapping[str, tuple[Mapping[str, Sequence[Any]], np.ndarray]],
                    targets: Mapping[str, list[Any]], board: ReleaseBoard | None) -> Batch:
    """The batch of objects ``ids``: per modality its fields (lists over the present objects) and presence;
    per target its values (None where unknown)."""
    plan = _Plan()
    planned: dict[str, _PlannedModality] = {}
    for name, (fields, presence) in modalities.items():
        present_ids = [i for i, p in zip(ids, presence) if p]
        planned[name] = _plan_modality(plan, name, fields, present_ids, presence)
    numeric_targets: dict[str, int] = {}
    target_values: dict[str, torch.Tensor | list[Any]] = {}
    for t, values in targets.items():
        if all(v is None or (isinstance(v, int | float | np.number) and not isinstance(v, bool)) for v in values):
            numbers = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            numeric_targets[t] = plan.add(numbers.shape, numbers.dtype, lambda out, x=numbers: np.copyto(out, x))
        target_values[t] = values
    tensors, memory = plan.realize(board)
    batch_modalities = {
        name: ModalityBatch(data={k: tensors[i] for k, i in p.data.items()}, presence=tensors[p.presence],
                            mask=None if p.mask is None else tensors[p.mask], meta=p.meta)
        for name, p in planned.items()
    }
    target_values.update({t: tensors[i] for t, i in numeric_targets.items()})
    return Batch(object_id=ids, modalities=batch_modalities, targets=target_values, memory=memory.memory,
                 arena_slot=(memory.worker, memory.slot), arena_board=memory.board)
