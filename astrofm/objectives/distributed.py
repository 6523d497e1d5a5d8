"""Collectives for objectives: all-gather across DDP ranks with gradients flowing back, and means over
every rank's elements.

Ranks may hold different numbers of rows (a last partial batch): rows are
padded to the largest count for the collective and the padding is stripped.
:func:`rank_sizes` exchanges the row counts once per step; pass its result to
the gathers. Outside an initialized process group everything is an identity.

A loss averaged over elements (tokens, pixels, objects) that ranks hold in unequal numbers is averaged
over all of them by :func:`means_over_ranks`, not per rank: a per-rank mean that DDP then averages would
give each element of a rank with few of them more weight than one of a rank with many.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

_local_only = contextvars.ContextVar("astrofm_local_only", default=False)


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Objectives inside see one process: no collectives (e.g. validation, where ranks may see unequal
    numbers of batches and a per-step all-gather would wait forever for the rank that has finished)."""
    token = _local_only.set(True)
    try:
        yield
    finally:
        _local_only.reset(token)


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) without one or inside ``local_only``."""
    if not _local_only.get() and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_sizes(n_local: int, device: torch.device | str = "cpu") -> list[int]:
    """Every rank's row count (one small collective; [n_local] without DDP)."""
    _, size = world()
    if size == 1:
        return [n_local]
    count = torch.tensor([n_local], device=device)
    counts = [torch.zeros_like(count) for _ in range(size)]
    dist.all_gather(counts, count)
    return [int(c) for c in counts]


def _gather_padded(x: Tensor, sizes: Sequence[int]) -> Tensor:
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, sizes: Sequence[int]) -> Tensor:
        ctx.sizes = list(sizes)
        return _gather_padded(x, sizes)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every rank's loss depends on every rank's rows
        rank, _ = world()
        start = sum(ctx.sizes[:rank])
        return grad[start: start + ctx.sizes[rank]], None


def gather_with_grad(x: Tensor, sizes: Sequence[int]) -> Tensor:
    """All ranks' rows of ``x`` (rank order); gradients reach each rank's own rows.

    The backward pass sums the gradient over ranks, so each local row receives
    the gradient of the sum of all ranks' losses.
    """
    return x if len(sizes) == 1 else _GatherWithGrad.apply(x, sizes)


def gather(x: Tensor, sizes: Sequence[int]) -> Tensor:
    """All ranks' rows of ``x`` without gradient (e.g. presence masks)."""
    return x if len(sizes) == 1 else _gather_padded(x, sizes)


def means_over_ranks(sums: Sequence[Tensor], counts: Sequence[Tensor]) -> tuple[list[Tensor], Tensor]:
    """Per term, the sum of its elements over every rank divided by their total weight, and those totals.

    ``sums[i]``: this rank's weighted sum of term i's elements (differentiable); ``counts[i]``: the total
    weight of those elements. Every rank passes the same terms in the same order (zeros for a term it has
    no elements of); one all-reduce serves them all. Each returned mean has the value of the mean over
    all ranks, and a gradient (this rank's share, times the world size) that DDP's averaging over ranks
    turns into the gradient of that mean. A term with no weight anywhere has mean 0.
    """
    _, size = world()
    totals = torch.stack([torch.stack([s.detach().float(), c.detach().float()]) for s, c in zip(sums, counts)])
    if size > 1:
        dist.all_reduce(totals)
    weight = totals[:, 1].clamp_min(1e-12)
    means = []
    for term, total, w in zip(sums, totals[:, 0], weight):
        share = term * (size / w)
        means.append(share + (total / w - share).detach())
    return means, totals[:, 1]


def weighted_terms(names: Sequence[str], sums: Mapping[str, Tensor], counts: Mapping[str, Tensor],
                   weights: Mapping[str, float], device: torch.device) -> tuple[Tensor, dict[str, Tensor]]:
    """A loss made of named terms (one per modality, say), each a mean over every rank's elements.

    ``sums``/``counts``: this rank's weighted sum and total weight of the terms it has elements of (see
    :func:`means_over_ranks`); every rank passes the same ``names``. Returns the average of the terms'
    means weighted by ``weights`` (default 1) over the terms with elements on some rank (0 if none has),
    and the means of the terms this rank has.
    """
    zero = torch.zeros((), device=device)
    means, totals = means_over_ranks([sums.get(n, zero) for n in names], [counts.get(n, zero) for n in names])
    used = torch.stack([weights.get(n, 1.0) * (total > 0).float() for n, total in zip(names, totals)])
    loss = (torch.stack(means) * used).sum() / used.sum().clamp_min(1e-12)
    return loss, {n: m for n, m in zip(names, means) if n in sums}
