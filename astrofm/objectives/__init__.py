"""Training objectives, separate from the model and the LightningModule.

``create_objective(name, model, **options)`` builds a registered objective:
``contrastive`` (CLIP / SigLIP over every pair of modalities), ``autoregressive``
(next-token regression of an ``ARModel``), ``masked`` (masked reconstruction
with an ``AstroFM``'s encoders), ``predict`` (decode a modality's coarse content from
an embedding), ``wavelength_shift`` (tell how far a spectrum was redshifted) and ``sum`` (a weighted
sum of these).
"""

from astrofm.objectives.autoregressive import AutoregressiveObjective
from astrofm.objectives.base import (
    OBJECTIVES,
    Objective,
    ObjectiveOutput,
    create_objective,
    register_objective,
)
from astrofm.objectives.combined import WeightedSumObjective
from astrofm.objectives.contrastive import ContrastiveObjective
from astrofm.objectives.masked import MaskedObjective
from astrofm.objectives.prediction import EmbeddingPredictionObjective
from astrofm.objectives.shift import WavelengthShiftObjective

__all__ = [
    "OBJECTIVES",
    "AutoregressiveObjective",
    "ContrastiveObjective",
    "EmbeddingPredictionObjective",
    "MaskedObjective",
    "Objective",
    "ObjectiveOutput",
    "WavelengthShiftObjective",
    "WeightedSumObjective",
    "create_objective",
    "register_objective",
]
