"""A weighted sum of registered objectives, e.g. contrastive + masked modelling.

Parts that take the model's embeddings (``uses_embeddings``: contrastive, predict) share one
encoding of the batch.

Config: ``{name: sum, objectives: [{name: contrastive, weight: 1.0}, {name: masked, weight: 0.5,
modalities: [spectrum], mask_ratio: 0.5}]}``; each entry's other options go to that objective.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from astrofm.errors import ConfigError
from astrofm.objectives.base import Objective, ObjectiveOutput, create_objective, register_objective

if TYPE_CHECKING:
    from astrofm.data.batch import Batch
    from astrofm.model import AstroFM


@register_objective("sum")
class WeightedSumObjective(Objective):
    """sum_i weight_i * loss_i over the listed objectives; their metrics are logged under ``<name>/``."""

    def __init__(self, parts: Mapping[str, tuple[Objective, float]]) -> None:
        super().__init__()
        if not parts:
            raise ConfigError("the sum objective needs at least one objective")
        self.parts = nn.ModuleDict({key: objective for key, (objective, _) in parts.items()})
        self.part_weights = {key: float(weight) for key, (_, weight) in parts.items()}

    @classmethod
    def build(cls, model: AstroFM, *, objectives: Sequence[Mapping[str, Any]]) -> WeightedSumObjective:
        parts: dict[str, tuple[Objective, float]] = {}
        for spec in objectives:
            options = dict(spec)
            name = options.pop("name", None)
            if name is None:
                raise ConfigError(f"each summed objective needs a 'name', got {dict(spec)}")
            if name == "sum":
                raise ConfigError("a sum objective cannot contain another sum")
            weight = options.pop("weight", 1.0)
            key = name if name not in parts else f"{name}_{len(parts)}"
            parts[key] = (create_objective(name, model, **options), weight)
        return cls(parts)

    def forward(self, model: AstroFM, batch: Batch) -> ObjectiveOutput:
        total = torch.zeros(())
        metrics, absent = {}, set()
        sharing = sum(objective.uses_embeddings for objective in self.parts.values()) > 1
        embedded = model(batch) if sharing else None  # encoded once for every part that takes embeddings
        for key, objective in self.parts.items():
            output = (objective(model, batch, embedded=embedded) if sharing and objective.uses_embeddings
                      else objective(model, batch))
            total = total.to(output.loss.device) + self.part_weights[key] * output.loss
            metrics[f"{key}/loss"] = output.loss.detach()
            metrics.update({f"{key}/{k}": v for k, v in output.metrics.items()})
            absent.update(f"{key}/{k}" for k in output.absent)
        return ObjectiveOutput(total, metrics, frozenset(absent))
