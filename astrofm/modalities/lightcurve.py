"""Light-curve encoder: a transformer over observations (time, band, flux, error).

Input: the light-curve ``ModalityBatch`` after transforms: ``time`` (P, L)
[days, e.g. since the first point, TimeZeroPoint], ``flux`` and ``flux_err``
(P, L) (e.g. PerBandNormalize'd), ``band`` (P, L) int, and the batch mask
(True = real point, not padding). Each observation is one token: a linear
embedding of (flux, error) plus a band embedding plus a continuous-time
encoding. Irregular sampling needs nothing special; 10 to 1000+ points work,
padding is masked inside attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch
from astrofm.modalities.base import TransformerConfig, TransformerEncoder, register_encoder
from astrofm.nn import ContinuousEncoding


@dataclass
class LightCurveConfig(TransformerConfig):
    """Band vocabulary and the time encoding's period range [days]."""

    #: Size of the band vocabulary (band indices must be below it).
    n_bands: int = 8
    min_period: float = 0.02
    max_period: float = 5000.0


@register_encoder("lightcurve")
class LightCurveEncoder(TransformerEncoder):
    """Observation tokens -> masked transformer -> pool."""

    config_class = LightCurveConfig
    modality = "lightcurve"

    def __init__(self, config: LightCurveConfig) -> None:
        super().__init__(config)
        self.values = nn.Linear(2, config.dim)
        self.band = nn.Embedding(config.n_bands, config.dim)
        self.time = ContinuousEncoding(config.dim, config.min_period, config.max_period)

    def tokenize(self, batch: ModalityBatch) -> tuple[Tensor, Tensor | None]:
        data = batch.data
        real = batch.mask if batch.mask is not None else torch.ones_like(data["time"], dtype=torch.bool)
        values = torch.stack([data["flux"], data["flux_err"]], dim=-1)
        values = torch.where(real[..., None] & torch.isfinite(values), values, 0.0).to(self.values.weight.dtype)
        band = torch.where(real, data["band"].long(), 0)
        tokens = self.values(values) + self.band(band) + self.time(torch.where(real, data["time"], 0.0))
        return tokens, real
