"""Image transforms: band selection, aperture photometry, arcsinh/percentile scaling, crop/resize, flips, rot90.

Items are image modality dicts with ``flux`` (B, H, W) [nanomaggies] and
optionally ``ivar``, ``mask`` (True = good) of the same shape, ``band`` names.
Geometric transforms move every per-pixel array together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from astrofm.data.transforms.base import Item, Transform
from astrofm.errors import ConfigError

_PIXEL_FIELDS = ("flux", "ivar", "mask")


def _map_pixels(item: Item, fn: object) -> Item:
    out = dict(item)
    for key in _PIXEL_FIELDS:
        if key in out:
            out[key] = np.ascontiguousarray(fn(np.asarray(out[key])))  # type: ignore[operator]
    return out


@dataclass
class SelectBands(Transform):
    """Keep the named bands, in the given order (``des-g`` or just ``g``)."""

    bands: list[str] = field(default_factory=lambda: ["g", "r", "z"])

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        names = list(item.get("band") or [])
        short = [n.split("-")[-1] for n in names]
        index = []
        for b in self.bands:
            if b in names:
                index.append(names.index(b))
            elif b in short:
                index.append(short.index(b))
            else:
                raise ConfigError(f"band {b!r} not in image bands {names}")
        out = dict(item)
        for key in _PIXEL_FIELDS:
            if key in out:
                out[key] = np.asarray(out[key])[index]
        for key in ("psf_fwhm", "scale"):
            if key in out:
                out[key] = np.asarray(out[key])[index]
        out["band"] = [names[i] for i in index]
        return out


def median_pixel_noise(items: Sequence[Item]) -> list[float]:
    """Median pixel noise [nanomaggies] per band over ``items``: from ``ivar``, else the MAD of the flux."""
    per_band = []
    for it in items:
        if "ivar" in it:
            ivar = np.asarray(it["ivar"], np.float64).reshape(len(it["flux"]), -1)
            with np.errstate(divide="ignore"):
                sigma = np.where(ivar > 0, 1 / np.sqrt(ivar), np.nan)
            per_band.append(np.nanmedian(sigma, axis=1))
        else:
            flux = np.asarray(it["flux"], np.float64).reshape(len(it["flux"]), -1)
            per_band.append(1.4826 * np.median(np.abs(flux - np.median(flux, axis=1, keepdims=True)), axis=1))
    noise = np.nanmedian(np.stack(per_band), axis=0)
    return [float(s) if np.isfinite(s) and s > 0 else 1.0 for s in noise]


@dataclass
class ArcsinhScale(Transform):
    """flux -> arcsinh(flux / softening_b) per band.

    ``softening`` (nanomaggies, one per band) defaults to the median pixel
    noise of the train split (from ``ivar``, or the MAD of the flux).
    """

    softening: list[float] | None = None
    fitted_fields = ("softening",)

    def fit(self, items: Sequence[Item]) -> ArcsinhScale:
        self.softening = median_pixel_noise(items)
        return self

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        self.require_fitted()
        soft = np.asarray(self.softening, np.float32)[:, None, None]
        out = dict(item)
        out["flux"] = np.arcsinh(np.asarray(item["flux"], np.float32) / soft).astype(np.float32)
        return out


@dataclass
class PercentileScale(Transform):
    """flux -> (flux - p_low_b) / (p_high_b - p_low_b) with per-band percentiles fitted on train."""

    low: float = 1.0
    high: float = 99.5
    lows: list[float] | None = None
    highs: list[float] | None = None
    fitted_fields = ("lows", "highs")

    def fit(self, items: Sequence[Item]) -> PercentileScale:
        pixels = np.concatenate([np.asarray(it["flux"]).reshape(len(it["flux"]), -1) for it in items], axis=1)
        self.lows = np.percentile(pixels, self.low, axis=1).tolist()
        self.highs = np.percentile(pixels, self.high, axis=1).tolist()
        return self

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        self.require_fitted()
        lo = np.asarray(self.lows, np.float32)[:, None, None]
        span = np.maximum(np.asarray(self.highs, np.float32)[:, None, None] - lo, 1e-12)
        out = dict(item)
        out["flux"] = ((np.asarray(item["flux"], np.float32) - lo) / span).astype(np.float32)
        return out


@lru_cache(maxsize=32)
def _annuli(shape: tuple[int, int], edges_px: tuple[float, ...]) -> np.ndarray:
    """One-hot (A, H*W) float64: pixel -> annulus ``(edge_{k-1}, edge_k]`` about the centre pixel (H//2, W//2)."""
    yy, xx = np.indices(shape)
    radius = np.hypot(yy - shape[0] // 2, xx - shape[1] // 2).ravel()
    index = np.searchsorted(np.asarray(edges_px), radius, side="left")
    return (index[None, :] == np.arange(len(edges_px))[:, None]).astype(np.float64)


@dataclass
class AperturePhotometry(Transform):
    """Per-band fluxes in circular apertures about the cutout centre, as ``aperture_mag`` for an encoder.

    Photometric redshifts rest on integrated colours, which a patch-based network recovers only roughly
    from scaled pixels; this measures them on the raw nanomaggy fluxes (put it before any crop or
    scaling) so that an encoder can take them as a context token (``context_fields: {aperture_mag:
    B * len(radii_arcsec)}``). Bad pixels (``mask`` False or ``ivar`` 0) take the mean of the good pixels
    of their annulus. ``aperture_mag`` (B * A,) band-major: asinh magnitudes (Lupton et al. 1999) minus
    22.5, i.e. ``-2.5 log10(flux / 1 nanomaggy)`` for bright sources, softened at each aperture's 1σ
    sky noise (``noise``: pixel noise per band [nanomaggies], fitted on train like ArcsinhScale). Radii in
    arcsec, converted with the item's ``scale`` [arcsec/px].
    """

    radii_arcsec: list[float] = field(default_factory=lambda: [0.75, 1.0, 1.5, 2.0, 3.0, 4.0])
    noise: list[float] | None = None
    fitted_fields = ("noise",)

    def fit(self, items: Sequence[Item]) -> AperturePhotometry:
        self.noise = median_pixel_noise(items)
        return self

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        self.require_fitted()
        flux = np.asarray(item["flux"], np.float64)
        scale = np.asarray(item.get("scale", np.nan), np.float64).reshape(-1)
        if not np.isfinite(scale).all() or len(set(scale.tolist())) != 1:
            raise ConfigError(f"AperturePhotometry needs one finite pixel scale for all bands, got {scale}")
        if len(self.noise) != len(flux):
            raise ConfigError(f"AperturePhotometry fitted on {len(self.noise)} bands, image has {len(flux)}")
        onehot = _annuli(flux.shape[-2:], tuple(r / scale[0] for r in self.radii_arcsec))
        good = np.ones(flux.shape, bool)
        if "mask" in item:
            good &= np.asarray(item["mask"], bool)
        if "ivar" in item:
            good &= np.asarray(item["ivar"]) > 0
        bands = len(flux)
        sums = (np.where(good, flux, 0.0).reshape(bands, -1)) @ onehot.T  # (B, A)
        counts = good.reshape(bands, -1).astype(np.float64) @ onehot.T
        area = onehot.sum(axis=1)
        annulus = np.where(counts > 0, sums / np.maximum(counts, 1.0), 0.0) * area
        enclosed = np.cumsum(annulus, axis=1)
        softening = np.asarray(self.noise)[:, None] * np.sqrt(np.cumsum(area))[None, :]
        magnitude = -2.5 / np.log(10) * (np.arcsinh(enclosed / (2 * softening)) + np.log(softening))
        out = dict(item)
        out["aperture_mag"] = magnitude.reshape(-1).astype(np.float32)
        return out


@dataclass
class CenterCrop(Transform):
    """Central ``size`` x ``size`` pixels."""

    size: int = 48

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        h, w = np.asarray(item["flux"]).shape[-2:]
        if self.size > min(h, w):
            raise ConfigError(f"CenterCrop({self.size}) larger than image {h}x{w}")
        top, left = (h - self.size) // 2, (w - self.size) // 2
        return _map_pixels(item, lambda a: a[..., top: top + self.size, left: left + self.size])


@dataclass
class Resize(Transform):
    """Resample to ``size`` x ``size`` pixels (area-averaging when shrinking, bilinear when growing)."""

    size: int = 64

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        import torch
        import torch.nn.functional as F

        def resize(a: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.asarray(a, np.float32))[None]
            mode = "area" if a.shape[-1] >= self.size else "bilinear"
            kwargs = {} if mode == "area" else {"align_corners": False}
            out = F.interpolate(t, size=(self.size, self.size), mode=mode, **kwargs)[0].numpy()
            return out > 0.5 if a.dtype == bool else out.astype(a.dtype)

        return _map_pixels(item, resize)


@dataclass
class RandomFlipRot90(Transform):
    """Random horizontal flip and rotation by k x 90 degrees (train-time augmentation)."""

    random = True

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        if rng is None:
            return item
        k = int(rng.integers(4))
        flip = bool(rng.integers(2))
        return _map_pixels(item, lambda a: np.rot90(a[..., ::-1] if flip else a, k, axes=(-2, -1)))
