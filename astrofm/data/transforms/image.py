"""Image transforms: band selection, arcsinh/percentile scaling, crop/resize, flips and rot90.

Items are image modality dicts with ``flux`` (B, H, W) [nanomaggies] and
optionally ``ivar``, ``mask`` (True = good) of the same shape, ``band`` names.
Geometric transforms move every per-pixel array together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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


@dataclass
class ArcsinhScale(Transform):
    """flux -> arcsinh(flux / softening_b) per band.

    ``softening`` (nanomaggies, one per band) defaults to the median pixel
    noise of the train split (from ``ivar``, or the MAD of the flux).
    """

    softening: list[float] | None = None
    fitted_fields = ("softening",)

    def fit(self, items: Sequence[Item]) -> ArcsinhScale:
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
        soft = np.nanmedian(np.stack(per_band), axis=0)
        self.softening = [float(s) if np.isfinite(s) and s > 0 else 1.0 for s in soft]
        return self

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        if self.softening is None:
            raise ConfigError("ArcsinhScale is not fitted; call fit() on the train split first")
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
        if self.lows is None or self.highs is None:
            raise ConfigError("PercentileScale is not fitted; call fit() on the train split first")
        lo = np.asarray(self.lows, np.float32)[:, None, None]
        span = np.maximum(np.asarray(self.highs, np.float32)[:, None, None] - lo, 1e-12)
        out = dict(item)
        out["flux"] = ((np.asarray(item["flux"], np.float32) - lo) / span).astype(np.float32)
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
