"""Spectrum transforms: bad-pixel masking, resampling to any wavelength grid, ivar-aware normalization.

Items are spectrum modality dicts: ``flux`` (L,) [1e-17 erg/s/cm²/Å],
``ivar`` (L,), ``lambda`` (L,) [Å], ``mask`` (L,) with True = bad pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astrofm.data.transforms.base import Item, Transform
from astrofm.errors import ConfigError


def _bad_pixels(item: Item) -> np.ndarray:
    flux = np.asarray(item["flux"])
    ivar = np.asarray(item.get("ivar", np.ones_like(flux)))
    wavelength = np.asarray(item["lambda"])
    bad = ~np.isfinite(flux) | ~np.isfinite(ivar) | (ivar <= 0) | (wavelength <= 0)
    if "mask" in item:
        bad |= np.asarray(item["mask"], bool)
    return bad


@dataclass
class MaskBadPixels(Transform):
    """Mark non-finite, zero-ivar, padded (λ ≤ 0) and flagged pixels bad; zero their flux and ivar."""

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        bad = _bad_pixels(item)
        out = dict(item)
        out["flux"] = np.where(bad, 0.0, np.asarray(item["flux"])).astype(np.float32)
        out["ivar"] = np.where(bad, 0.0, np.asarray(item.get("ivar", np.ones(len(bad))))).astype(np.float32)
        out["mask"] = bad
        return out


@dataclass
class Resample(Transform):
    """Rebin onto a linear grid ``start``..``stop`` [Å] with ``step`` [Å], ivar-weighted.

    Each output bin averages the input pixels it covers, weighted by inverse
    variance (bad pixels weigh nothing); its ivar is the input ivar summed over
    the (fractionally) covered pixels. Bins with no good pixel are bad.
    ``lsf_sigma`` [px] is converted to output pixels: interpolated in Å (input
    sigma x local input pixel width), then divided by ``step``.
    Works for any input grid (linear, log-linear, padded).
    """

    start: float = 3600.0
    stop: float = 9824.0
    step: float = 0.8

    def grid(self) -> np.ndarray:
        n = round((self.stop - self.start) / self.step) + 1
        return (self.start + self.step * np.arange(n)).astype(np.float64)

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        wave = np.asarray(item["lambda"], np.float64)
        bad = _bad_pixels(item)
        ivar = np.where(bad, 0.0, np.asarray(item.get("ivar", np.ones(len(wave))), np.float64))
        flux = np.where(bad, 0.0, np.asarray(item["flux"], np.float64))
        good_wave = wave > 0
        wave, ivar, flux = wave[good_wave], ivar[good_wave], flux[good_wave]
        if len(wave) < 2:
            raise ConfigError("Resample needs at least two pixels with a wavelength")
        order = np.argsort(wave, kind="stable")
        wave, ivar, flux = wave[order], ivar[order], flux[order]
        # input pixel edges, then cumulative weights at any wavelength by linear interpolation
        mid = 0.5 * (wave[1:] + wave[:-1])
        edges_in = np.concatenate([[wave[0] - (mid[0] - wave[0])], mid, [wave[-1] + (wave[-1] - mid[-1])]])
        cum_w = np.concatenate([[0.0], np.cumsum(ivar)])
        cum_wf = np.concatenate([[0.0], np.cumsum(ivar * flux)])
        out_wave = self.grid()
        edges_out = np.concatenate([out_wave - self.step / 2, [out_wave[-1] + self.step / 2]])
        w = np.diff(np.interp(edges_out, edges_in, cum_w))
        wf = np.diff(np.interp(edges_out, edges_in, cum_wf))
        with np.errstate(invalid="ignore", divide="ignore"):
            new_flux = np.where(w > 0, wf / w, 0.0)
        new_ivar = np.maximum(w, 0.0)
        new_bad = w <= 0
        out = dict(item)
        out.update(flux=new_flux.astype(np.float32), ivar=new_ivar.astype(np.float32),
                   **{"lambda": out_wave.astype(np.float32)}, mask=new_bad)
        if "lsf_sigma" in out:
            sigma_angstrom = np.asarray(item["lsf_sigma"], np.float64)[good_wave][order] * np.diff(edges_in)
            out["lsf_sigma"] = (np.interp(out_wave, wave, sigma_angstrom) / self.step).astype(np.float32)
        return out


@dataclass
class IvarNormalize(Transform):
    """Divide by the ivar-weighted median |flux| of good pixels; ivar scales by its square.

    The log10 of the scale is kept as ``log_norm`` so that models can still
    see the overall brightness.
    """

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        flux = np.asarray(item["flux"], np.float64)
        ivar = np.asarray(item.get("ivar", np.ones_like(flux)), np.float64)
        good = ~_bad_pixels(item)
        scale = 1.0
        if good.any():
            values, weights = np.abs(flux[good]), ivar[good]
            order = np.argsort(values)
            cdf = np.cumsum(weights[order])
            scale = float(values[order][np.searchsorted(cdf, 0.5 * cdf[-1])]) if cdf[-1] > 0 else 1.0
        scale = scale if np.isfinite(scale) and scale > 0 else 1.0
        out = dict(item)
        out["flux"] = (flux / scale).astype(np.float32)
        out["ivar"] = (ivar * scale**2).astype(np.float32)
        out["log_norm"] = np.float32(np.log10(scale))
        return out
