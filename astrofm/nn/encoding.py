"""Continuous sinusoidal encodings of real-valued positions (log wavelength, time in days)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ContinuousEncoding(nn.Module):
    """Sinusoids of a real coordinate at geometric periods, mapped to ``dim`` by a linear layer.

    Periods run from ``min_period`` to ``max_period`` in the coordinate's unit
    (e.g. days for time, natural-log units for log wavelength). The sinusoids
    are computed in float32 whatever the autocast dtype, since phases of long
    coordinates need the precision.
    """

    def __init__(self, dim: int, min_period: float, max_period: float, n_frequencies: int | None = None) -> None:
        super().__init__()
        n = n_frequencies or dim // 2
        periods = torch.logspace(math.log10(min_period), math.log10(max_period), n, dtype=torch.float64)
        self.register_buffer("angular", (2 * math.pi / periods).float(), persistent=False)
        self.proj = nn.Linear(2 * n, dim)

    def forward(self, x: Tensor) -> Tensor:
        """x (...,) -> (..., dim)."""
        phase = x.float()[..., None] * self.angular.float()
        return self.proj(torch.cat([phase.sin(), phase.cos()], dim=-1).to(self.proj.weight.dtype))
