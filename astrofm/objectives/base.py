"""The objective interface: a component that turns (model, batch) into a loss.

Objectives are separate from the LightningModule and from the model: the
contrastive objective of this package, and autoregressive or masked ones,
plug into the same place (``create_objective(name, model=..., **options)``).
Objectives may own parameters (e.g. a learnable temperature); these are
trained with the model but are not part of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import Tensor, nn

from astrofm.errors import ConfigError

if TYPE_CHECKING:
    from astrofm.data.batch import Batch
    from astrofm.model import AstroFM

ObjectiveType = TypeVar("ObjectiveType", bound="type[Objective]")

#: Objective classes by registered name.
OBJECTIVES: dict[str, type[Objective]] = {}


@dataclass
class ObjectiveOutput:
    """A scalar loss to minimize and detached metrics to log (name -> scalar tensor).

    ``absent`` names the metrics that are placeholders (0) because the batch had no data for them (a
    modality or pair missing from it): every batch reports the same names, so that DDP ranks reduce the
    same validation metrics, and a placeholder is given no weight.
    """

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()

    def with_placeholders(self, names: Iterable[str]) -> ObjectiveOutput:
        """This output with a 0 placeholder, marked absent, for every one of ``names`` it lacks."""
        missing = [name for name in names if name not in self.metrics]
        placeholders = {name: self.loss.detach().new_zeros(()) for name in missing}
        return ObjectiveOutput(self.loss, {**self.metrics, **placeholders}, self.absent | frozenset(missing))


class Objective(nn.Module, ABC):
    """``forward(model, batch) -> ObjectiveOutput``.

    An objective with ``uses_embeddings`` also takes ``embedded=``, the model's output on the whole
    batch (``model(batch)``), so that a ``sum`` of such objectives encodes the batch once.
    """

    uses_embeddings: bool = False

    @abstractmethod
    def forward(self, model: AstroFM, batch: Batch) -> ObjectiveOutput:
        """The loss of ``model`` on ``batch``."""


def zero_loss(module: nn.Module) -> Tensor:
    """A zero loss connected to every parameter of ``module`` (for a batch that gives it nothing to do, so
    that DDP still sees a gradient for each parameter)."""
    return torch.stack([p.sum() for p in module.parameters()]).sum() * 0.0


def register_objective(name: str) -> Callable[[ObjectiveType], ObjectiveType]:
    """Class decorator: make an objective available to :func:`create_objective` as ``name``."""

    def decorate(cls: ObjectiveType) -> ObjectiveType:
        OBJECTIVES[name] = cls
        return cls

    return decorate


def create_objective(name: str, model: AstroFM, **options: Any) -> Objective:
    """An objective by registered name, built for ``model`` (``cls.build(model, **options)``)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; registered: {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    build = getattr(cls, "build", None)
    return build(model, **options) if build is not None else cls(**options)


def expand_cells(cells: Tensor, block: int, shape: Sequence[int]) -> Tensor:
    """(n, *shape): each value of ``cells`` (n, *cell grid) repeated over its ``block`` positions per axis,
    cut to ``shape`` (e.g. patch flags -> pixel flags)."""
    for dim, size in enumerate(shape, start=1):
        cells = cells.repeat_interleave(block, dim=dim).narrow(dim, 0, size)
    return cells
