"""Next-token regression for ``ARModel``s (AstroPT's objective): Huber (default) or MSE on real tokens.

Each modality's loss is the (weighted) mean over its predicted values - real tokens with a real
token before them, and values with a nonzero weight (e.g. good spectrum pixels) - and the total is
the mean of the modalities' losses weighted by ``weights`` (modalities absent from the batch do
not count).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor

from astrofm.errors import ConfigError
from astrofm.objectives.base import Objective, ObjectiveOutput, register_objective
from astrofm.objectives.distributed import weighted_terms

if TYPE_CHECKING:
    from astrofm.ar import ARModel
    from astrofm.data.batch import Batch

REGRESSION_LOSSES = ("huber", "mse")


def regression_loss(predicted: Tensor, target: Tensor, kind: str, delta: float = 1.0) -> Tensor:
    """Elementwise Huber (quadratic below ``delta``, linear above) or squared error, in float32."""
    if kind == "huber":
        return F.huber_loss(predicted.float(), target.float(), reduction="none", delta=delta)
    if kind == "mse":
        return F.mse_loss(predicted.float(), target.float(), reduction="none")
    raise ConfigError(f"regression loss must be one of {REGRESSION_LOSSES}, not {kind!r}")


@register_objective("autoregressive")
class AutoregressiveObjective(Objective):
    """Next-token regression over every modality of an ``ARModel``.

    Parameters
    ----------
    loss:
        "huber" (AstroPT's choice) or "mse".
    delta:
        Huber transition point, in token-value units.
    weights:
        Weight of each modality's loss (default 1 each).
    """

    def __init__(self, *, loss: str = "huber", delta: float = 1.0, weights: Mapping[str, float] | None = None
                 ) -> None:
        super().__init__()
        if loss not in REGRESSION_LOSSES:
            raise ConfigError(f"autoregressive loss must be one of {REGRESSION_LOSSES}, not {loss!r}")
        self.loss = loss
        self.delta = delta
        self.weights = dict(weights or {})

    @classmethod
    def build(cls, model: Any, **options: Any) -> AutoregressiveObjective:
        from astrofm.ar import ARModel

        if not isinstance(model, ARModel):
            raise ConfigError("the autoregressive objective trains an AR model: set `model_type: ar` in the model "
                              "config (see configs/galaxy-ar.yaml)")
        unknown = sorted(set(options.get("weights") or {}) - set(model.modalities))
        if unknown:
            raise ConfigError(f"autoregressive weights for unknown modalities {unknown}; model: {model.modalities}")
        return cls(**options)

    def forward(self, model: ARModel, batch: Batch) -> ObjectiveOutput:  # type: ignore[override]
        predictions = model(batch)
        sums, counts, metrics = {}, {}, {}
        for name, p in predictions.items():
            elementwise = regression_loss(p.predicted, p.target, self.loss, self.delta)
            weight = p.valid[..., None].float().expand_as(elementwise)
            if p.weight is not None:
                weight = weight * p.weight.float()
            sums[name], counts[name] = (elementwise * weight).sum(), weight.sum()
            metrics[f"tokens/{name}"] = p.valid.sum().detach().float()
        loss, means = weighted_terms(model.modalities, sums, counts, self.weights,
                                      next(model.parameters()).device)
        metrics.update({f"loss/{name}": mean.detach() for name, mean in means.items()})
        names = [f"{kind}/{name}" for name in model.modalities for kind in ("loss", "tokens")]
        return ObjectiveOutput(loss, metrics).with_placeholders(names)
