"""Collectives for objectives: all-gather across DDP ranks with gradients flowing back.

Ranks may hold different numbers of rows (a last partial batch): rows are
padded to the largest count for the collective and the padding is stripped.
:func:`rank_sizes` exchanges the row counts once per step; pass its result to
the gathers. Outside an initialized process group everything is an identity.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
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
