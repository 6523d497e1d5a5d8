"""Continuous sinusoidal encodings of real-valued positions (log wavelength, time in days)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn


class ContinuousEncoding(nn.Module):
    """Sinusoids of a real coordinate at geometric periods, mapped to ``dim`` by a linear layer.

    Periods run from ``min_period`` to ``max_period`` in the coordinate's unit
    (e.g. days for time, natural-log units for log wavelength). The sinusoids
    are computed in float32 whatever the autocast dtype or the weights' dtype, since phases of long
    coordinates need the precision.
    """

    def __init__(self, dim: int, min_period: float, max_period: float, n_frequencies: int | None = None) -> None:
        super().__init__()
        n = n_frequencies or dim // 2
        periods = torch.logspace(math.log10(min_period), math.log10(max_period), n, dtype=torch.float64)
        self._frequencies = (2 * math.pi / periods).float()  # rad per unit; the float32 master copy
        self.register_buffer("angular", self._frequencies.clone(), persistent=False)
        self.proj = nn.Linear(2 * n, dim)

    def _apply(self, fn: Any, recurse: bool = True) -> ContinuousEncoding:
        """``.to(device)`` moves the frequencies; ``.to(torch.bfloat16)`` or ``.half()`` does not round them."""
        super()._apply(fn, recurse)
        self.angular = self._frequencies.to(self.angular.device)
        return self

    def forward(self, x: Tensor) -> Tensor:
        """x (...,) -> (..., dim)."""
        phase = x.float()[..., None] * self.angular
        return self.proj(torch.cat([phase.sin(), phase.cos()], dim=-1).to(self.proj.weight.dtype))
