"""Exact similarity search: batched matmul over chunks of the base, on CPU or GPU, never N×N.

Distances: ``cosine`` is 1 − cos θ (0 = same direction, 2 = opposite), ``l2`` is the Euclidean
distance. Inputs are numpy arrays (memory maps from the store are read chunk by chunk) or torch
tensors (CPU or CUDA); results are numpy arrays. :func:`search_store` adds object ids: in-modal and
cross-modal queries, by object_id or by new vectors, with an exact or an ANN index.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from astrofm.downstream.validation import as_object_ids, check_vectors
from astrofm.errors import ConfigError, DataFormatError

METRICS = ("cosine", "l2")


class Index(Protocol):
    """Anything that answers k-nearest-neighbour queries over a fixed base (exact or ANN)."""

    metric: str

    def __len__(self) -> int: ...

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def iter_distance_blocks(
    queries: Any,
    base: Any,
    *,
    metric: str = "cosine",
    batch_size: int = 1024,
    chunk_size: int = 16384,
    device: str | None = None,
    dtype: Any = None,
) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(query_start, base_start, D)`` with D the torch distance block of ≤ batch_size × chunk_size.

    Each base chunk is moved to the device once; the queries are compared to it batch by batch.
    """
    import torch

    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {METRICS}, not {metric!r}")
    if batch_size < 1 or chunk_size < 1:
        raise ConfigError("batch_size and chunk_size must be positive")
    dtype = dtype or torch.float32
    device = torch.device(device or (queries.device if isinstance(queries, torch.Tensor) else "cpu"))
    q_all = _prepare(_tensor(queries, device, dtype), metric)
    if base.ndim != 2 or base.shape[1] != q_all.shape[1]:
        raise DataFormatError(
            None,
            "queries and base differ in dimension",
            field="vectors",
            expected=tuple(base.shape[1:]),
            found=q_all.shape[1],
        )
    q_sq = (q_all * q_all).sum(dim=1) if metric == "l2" else None
    for b_start in range(0, len(base), chunk_size):
        chunk = _prepare(_tensor(base[b_start : b_start + chunk_size], device, dtype), metric)
        c_sq = (chunk * chunk).sum(dim=1) if metric == "l2" else None
        for q_start in range(0, len(q_all), batch_size):
            q = q_all[q_start : q_start + batch_size]
            dot = q @ chunk.T
            if metric == "cosine":
                dist = (1.0 - dot).clamp_(0.0, 2.0)  # rounding can leave |cos| a hair above 1
            else:
                dist = (q_sq[q_start : q_start + batch_size, None] + c_sq[None, :] - 2.0 * dot).clamp_min_(0).sqrt_()
            yield q_start, b_start, dist


def exact_search(
    queries: Any,
    base: Any,
    k: int,
    *,
    metric: str = "cosine",
    batch_size: int = 1024,
    chunk_size: int = 16384,
    device: str | None = None,
    dtype: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` to each query: (distances (q, k), row indices (q, k)), ascending.

    Memory is O(batch_size × chunk_size), whatever the base size. Of equal distances the lower rows
    come first, whatever the chunking. Fewer than ``k`` base rows give index -1 and distance inf in the
    missing columns.
    """
    import torch

    if k < 1:
        raise ConfigError(f"k must be positive, not {k}")
    n_queries = len(queries)
    dtype = dtype or torch.float32
    best_d = torch.full((n_queries, k), float("inf"), dtype=dtype)
    best_i = torch.full((n_queries, k), -1, dtype=torch.long)
    for q_start, b_start, dist in iter_distance_blocks(
        queries, base, metric=metric, batch_size=batch_size, chunk_size=chunk_size, device=device, dtype=dtype
    ):
        d, i = _smallest(dist, min(k, dist.shape[1]))
        rows = slice(q_start, q_start + len(d))
        cand_d, cand_i = _by_distance_then_row(
            torch.cat([best_d[rows], d.cpu()], dim=1), torch.cat([best_i[rows], i.cpu() + b_start], dim=1)
        )
        best_d[rows], best_i[rows] = cand_d[:, :k], cand_i[:, :k]
    distances, indices = best_d.numpy(), best_i.numpy()
    if metric == "l2" and n_queries:
        distances, indices = _exact_l2(queries, base, distances, indices)
    return distances, indices


class ExactIndex:
    """Exact k-NN over a fixed base (numpy, memory map or torch tensor), same interface as the ANN indexes."""

    def __init__(
        self,
        vectors: Any,
        *,
        metric: str = "cosine",
        device: str | None = None,
        batch_size: int = 1024,
        chunk_size: int = 16384,
    ) -> None:
        if metric not in METRICS:
            raise ConfigError(f"metric must be one of {METRICS}, not {metric!r}")
        self.vectors = vectors
        self.metric = metric
        self.device = device
        self.batch_size = batch_size
        self.chunk_size = chunk_size

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(
            queries,
            self.vectors,
            k,
            metric=self.metric,
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            device=self.device,
        )


@dataclass(frozen=True)
class Neighbours:
    """Result of :func:`search_store`: for each query, ``k`` neighbours (ids, store rows, distances)."""

    query_ids: np.ndarray  # (q,) str, "" for queries given as vectors
    ids: np.ndarray  # (q, k) str, "" where fewer than k neighbours exist
    rows: np.ndarray  # (q, k) int64, -1 where missing
    distances: np.ndarray  # (q, k) float32
    modality: str
    target_modality: str
    metric: str

    def to_table(self) -> Any:
        """An astropy Table with one row per (query, rank)."""
        from astropy.table import Table

        q, k = self.rows.shape
        valid = (self.rows >= 0).reshape(-1)
        return Table(
            {
                "query_id": np.repeat(self.query_ids, k)[valid],
                "rank": np.tile(np.arange(1, k + 1), q)[valid],
                "object_id": self.ids.reshape(-1)[valid],
                "distance": self.distances.reshape(-1)[valid],
            },
            meta={"modality": self.modality, "target_modality": self.target_modality, "metric": self.metric},
        )


def search_store(
    store: Any,
    modality: str,
    *,
    object_ids: Any = None,
    vectors: Any = None,
    target_modality: str | None = None,
    k: int = 10,
    metric: str = "cosine",
    index: Index | None = None,
    exclude_self: bool = True,
    device: str | None = None,
) -> Neighbours:
    """Neighbours in ``target_modality`` (default: ``modality``) of queries given by id or by vector.

    ``object_ids`` are looked up in ``modality`` (an image embedding can search the spectrum store);
    ``vectors`` (q, D) are new query vectors. In-modal queries by id skip the object itself when
    ``exclude_self``. ``index`` (exact or ANN, built over ``target_modality``) defaults to exact search.
    """
    target_modality = target_modality or modality
    if (object_ids is None) == (vectors is None):
        raise ConfigError("give either object_ids or vectors as queries")
    dim = store.dim(target_modality)
    if object_ids is not None:
        query_ids = as_object_ids(object_ids, where=store.path)
        queries = store.get(modality, query_ids)
    else:
        queries = check_vectors(vectors, where="query vectors", field="vectors")
        query_ids = np.full(len(queries), "", dtype=str)
    if queries.shape[1] != dim:
        raise DataFormatError(
            store.path,
            "query and target embeddings differ in dimension",
            field=target_modality,
            expected=dim,
            found=queries.shape[1],
        )
    index = index or ExactIndex(store.vectors(target_modality), metric=metric, device=device)
    if len(index) != store.count(target_modality):
        raise DataFormatError(
            store.path,
            "index size differs from the store",
            field=target_modality,
            expected=store.count(target_modality),
            found=len(index),
        )
    n_base = store.count(target_modality)
    if n_base == 0:
        raise DataFormatError(store.path, "no vectors to search", field=target_modality)
    drop_self = exclude_self and object_ids is not None and target_modality == modality
    distances, rows = index.search(queries, k + int(drop_self))
    ids = np.where(rows >= 0, store.object_ids(target_modality)[np.maximum(rows, 0)], "")
    if drop_self:  # move each query's own row to the end, then cut to k
        order = np.argsort(ids == query_ids[:, None], axis=1, kind="stable")[:, :k]
        rows, ids, distances = (np.take_along_axis(a, order, 1) for a in (rows, ids, distances))
    return Neighbours(
        query_ids,
        ids,
        rows,
        distances.astype(np.float32),
        modality,
        target_modality,
        getattr(index, "metric", metric),
    )


def pair_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Float64 distances between the paired rows of ``a`` and ``b`` (..., D), from their difference.

    ``l2``: |a − b|; ``cosine``: |â − b̂|² / 2 = 1 − cos θ (1 where a vector is zero). Unlike the matmul
    form |a|² + |b|² − 2 a·b used to scan the base, these keep their digits for close pairs.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if metric == "l2":
        return np.sqrt(((a - b) ** 2).sum(axis=-1))
    norm_a, norm_b = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    unit_a = a / np.where(norm_a > 0, norm_a, 1.0)[..., None]
    unit_b = b / np.where(norm_b > 0, norm_b, 1.0)[..., None]
    half_chord = ((unit_a - unit_b) ** 2).sum(axis=-1) / 2.0
    return np.where((norm_a > 0) & (norm_b > 0), half_chord, 1.0)


def _smallest(dist: Any, k: int) -> tuple[Any, Any]:
    """The ``k`` smallest entries of each row of a distance block, unordered; of equal ones the first columns."""
    import torch

    if k == dist.shape[1]:
        return dist, torch.arange(k, device=dist.device).expand_as(dist)
    d, i = torch.topk(dist, k + 1, dim=1, largest=False, sorted=True)
    d, i, tied = d[:, :k], i[:, :k], d[:, k] == d[:, k - 1]  # topk picks any of entries equal to the k-th
    if tied.any():
        d[tied], i[tied] = (x[:, :k] for x in torch.sort(dist[tied], dim=1, stable=True))
    return d, i


def _by_distance_then_row(d: Any, i: Any) -> tuple[Any, Any]:
    """Each row of (distances, indices) sorted by distance, equal distances by index."""
    import torch

    i, order = torch.sort(i, dim=1)
    d, order = torch.sort(torch.gather(d, 1, order), dim=1, stable=True)
    return d, torch.gather(i, 1, order)


def _exact_l2(queries: Any, base: Any, distances: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recompute the found L2 distances as |q − x| in float64 and re-sort each row (ties by index).

    The matmul form |q|² + |x|² − 2 q·x loses digits for close pairs (|x| ≫ |q − x|).
    """
    import torch

    out_d, out_i = distances.copy(), indices.copy()
    for lo in range(0, len(indices), 4096):
        idx = indices[lo : lo + 4096]
        valid = idx >= 0
        if not valid.any():
            continue
        rows = np.unique(idx[valid])
        picked = _numpy(base[torch.as_tensor(rows)] if isinstance(base, torch.Tensor) else base[rows])
        x = picked.astype(np.float64)[np.searchsorted(rows, np.where(valid, idx, rows[0]))]
        q = _numpy(queries[lo : lo + 4096]).astype(np.float64)
        exact = np.where(valid, pair_distances(q[:, None, :], x, "l2"), np.inf)
        order = np.lexsort((idx, exact), axis=1)
        out_d[lo : lo + 4096] = np.take_along_axis(exact, order, 1)
        out_i[lo : lo + 4096] = np.take_along_axis(idx, order, 1)
    return out_d, out_i


def _numpy(values: Any) -> np.ndarray:
    import torch

    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def _tensor(values: Any, device: Any, dtype: Any) -> Any:
    import torch

    if isinstance(values, torch.Tensor):
        return values.to(device=device, dtype=dtype)
    array = np.ascontiguousarray(values)
    if not array.flags.writeable:  # a read-only memory map: torch wants its own copy
        array = array.copy()
    return torch.as_tensor(array, dtype=dtype).to(device)


def _prepare(x: Any, metric: str) -> Any:
    import torch

    if x.ndim != 2:
        raise DataFormatError(None, "search inputs must be 2-D", expected="(n, D)", found=tuple(x.shape))
    return torch.nn.functional.normalize(x, dim=1) if metric == "cosine" else x
