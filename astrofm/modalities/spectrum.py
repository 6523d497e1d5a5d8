"""Spectrum encoder: a transformer over wavelength windows of (flux, ivar).

Input: the spectrum ``ModalityBatch`` after transforms: ``flux`` (P, L)
(e.g. IvarNormalize'd), ``ivar`` (P, L), ``lambda`` (P, L) [Å], ``mask`` (P, L)
True = bad pixel (MMU polarity), and the batch mask (True = real, not padding).

Windows of ``window`` pixels (step ``stride``) are cut with ``unfold``; each
window's pixels (flux and a bounded weight from ivar, both 0 at bad or padded
pixels) are embedded linearly, plus a sinusoidal encoding of the log
wavelength of the window centre. Position comes from the wavelength, not the
pixel index, so one model reads any grid (DESI, LAMOST, SDSS ...). A window
without a good pixel is masked inside attention and pooling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astrofm.data.batch import ModalityBatch
from astrofm.errors import ConfigError
from astrofm.modalities.base import TransformerConfig, TransformerEncoder, register_encoder
from astrofm.nn import ContinuousEncoding


@dataclass
class SpectrumConfig(TransformerConfig):
    """Window tokenization and the wavelength encoding's period range (natural-log units of Å)."""

    #: Pixels per token.
    window: int = 20
    #: Pixels between window starts (None: = window, no overlap).
    stride: int | None = None
    #: Shortest and longest period of the log-wavelength sinusoids (Δ ln λ).
    min_period: float = 1e-3
    max_period: float = 4.0
    #: Weigh pixels by their noise relative to the spectrum's median (the shape of the noise: sky lines,
    #: detector edges) rather than its absolute level, so that the overall S/N, an observing condition
    #: rather than a property of the object, is not an input.
    relative_noise: bool = False


def spectrum_pixels(batch: ModalityBatch, relative_noise: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """flux, weight in [0, 1), wavelength [Å] and good-pixel mask, each (P, L); 0 at bad/padded pixels.

    The weight is σ⁻¹ / (1 + σ⁻¹) of each pixel, with σ⁻¹ relative to the median over the spectrum's good
    pixels if ``relative_noise``."""
    data = batch.data
    flux = data["flux"]
    real = batch.mask if batch.mask is not None else torch.ones_like(flux, dtype=torch.bool)
    ivar = data["ivar"] if "ivar" in data else torch.ones_like(flux)
    wavelength = data["lambda"]
    good = real & (ivar > 0) & torch.isfinite(flux) & (wavelength > 0)
    if "mask" in data:
        good = good & ~data["mask"].bool()
    if relative_noise:
        level = torch.where(good, ivar.float(), torch.nan).nanmedian(dim=1, keepdim=True).values
        ivar = ivar / level.nan_to_num(1.0).clamp_min(1e-30).to(ivar.dtype)
    sigma_inv = ivar.clamp_min(0).sqrt()
    weight = torch.where(good, sigma_inv / (1 + sigma_inv), 0.0)
    flux = torch.where(good, flux, 0.0)
    wavelength = torch.where(real & (wavelength > 0), wavelength, 0.0)
    return flux, weight, wavelength, good


def unfold_windows(x: Tensor, window: int, stride: int) -> Tensor:
    """(P, L) -> (P, T, window) windows of ``window`` pixels every ``stride``, right-padded with zeros."""
    length = x.shape[1]
    n = max(1, math.ceil((length - window) / stride) + 1)
    x = F.pad(x, (0, (n - 1) * stride + window - length))
    return x.unfold(1, window, stride)


def window_tokens(good: Tensor, real: Tensor | None, window: int, stride: int) -> Tensor:
    """(P, T) token mask of the windows of :func:`unfold_windows`: True where a window has a good pixel
    and is one of the windows its spectrum has on its own (``real``: (P, L) True = not padding).

    With overlapping windows (stride < window) a padded batch has windows starting past the end of a
    shorter spectrum's own last window that still hold some of its pixels; they are not its tokens, so that
    an object's tokens never depend on the length of its neighbours in the batch.
    """
    mask = unfold_windows(good.float(), window, stride).amax(dim=-1) > 0
    if real is None or stride == window:
        return mask
    length = real.sum(dim=1, keepdim=True)
    own = (length - window).clamp_min(0).add(stride - 1).div(stride, rounding_mode="floor") + 1
    return mask & (torch.arange(mask.shape[1], device=mask.device) < own)


@register_encoder("spectrum")
class SpectrumEncoder(TransformerEncoder):
    """Windows (unfold) -> linear embedding + log-wavelength encoding -> masked transformer -> pool."""

    config_class = SpectrumConfig
    modality = "spectrum"

    def __init__(self, config: SpectrumConfig) -> None:
        super().__init__(config)
        self.stride = config.stride or config.window
        if self.stride < 1 or self.stride > config.window:
            raise ConfigError(f"spectrum stride must be in [1, window={config.window}], got {self.stride}")
        self.embed = nn.Linear(2 * config.window, config.dim)
        self.wavelength = ContinuousEncoding(config.dim, config.min_period, config.max_period)

    def windows(self, x: Tensor) -> Tensor:
        """(P, L) -> (P, T, window), right-padded with zeros to whole windows."""
        return unfold_windows(x, self.config.window, self.stride)  # type: ignore[attr-defined]

    def tokenize(self, batch: ModalityBatch) -> tuple[Tensor, Tensor]:
        flux, weight, wavelength, good = spectrum_pixels(batch, self.config.relative_noise)  # type: ignore[attr-defined]
        dtype = self.embed.weight.dtype
        tokens = self.embed(torch.cat([self.windows(flux), self.windows(weight)], dim=-1).to(dtype))
        waves = self.windows(wavelength.float())
        counted = (waves > 0).to(waves.dtype)
        centre = (waves * counted).sum(-1) / counted.sum(-1).clamp_min(1)
        tokens = tokens + self.wavelength(centre.clamp_min(1.0).log())
        return tokens, window_tokens(good, batch.mask, self.config.window, self.stride)  # type: ignore[attr-defined]
