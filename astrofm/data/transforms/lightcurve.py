"""Light-curve transforms: time zero-point, per-band normalization, length cap by subsampling.

Items are light-curve modality dicts: ``time`` (L,) [MJD], ``flux``,
``flux_err``, ``band`` (L,) int, ``band_names``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astrofm.data.transforms.base import Item, Transform

_POINT_FIELDS = ("time", "flux", "flux_err", "band")


@dataclass
class TimeZeroPoint(Transform):
    """time -> time - t0 [days]; t0 is the first observation, or ``mjd0`` if given. Keeps ``t0``."""

    mjd0: float | None = None

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        time = np.asarray(item["time"], np.float64)
        t0 = self.mjd0 if self.mjd0 is not None else (float(time.min()) if len(time) else 0.0)
        out = dict(item)
        out["time"] = (time - t0).astype(np.float32)
        out["t0"] = np.float64(t0)
        return out


@dataclass
class PerBandNormalize(Transform):
    """Per object and band: flux -> (flux - median) / scale, flux_err -> flux_err / scale.

    scale is 1.4826 x the median absolute deviation (falls back to the median
    error for constant curves). ``log_scale`` (B,) keeps the amplitude scale.
    """

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        flux = np.asarray(item["flux"], np.float64).copy()
        err = np.asarray(item["flux_err"], np.float64).copy()
        band = np.asarray(item["band"])
        n_bands = len(item.get("band_names") or []) or (int(band.max()) + 1 if len(band) else 1)
        log_scale = np.zeros(n_bands, np.float32)
        for b in range(n_bands):
            sel = band == b
            if not sel.any():
                continue
            median = np.median(flux[sel])
            scale = 1.4826 * np.median(np.abs(flux[sel] - median))
            if not np.isfinite(scale) or scale <= 0:
                scale = float(np.median(err[sel])) or 1.0
            flux[sel] = (flux[sel] - median) / scale
            err[sel] = err[sel] / scale
            log_scale[b] = np.log10(scale)
        out = dict(item)
        out["flux"] = flux.astype(np.float32)
        out["flux_err"] = err.astype(np.float32)
        out["log_scale"] = log_scale
        return out


@dataclass
class LengthCap(Transform):
    """Keep at most ``max_points`` observations.

    Without a generator (evaluation) the kept points are evenly spaced in
    index, so the result is deterministic; with one (training) they are a
    random subset. Time order is preserved.
    """

    uses_rng = True
    max_points: int = 200

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        n = len(item["time"])
        if n <= self.max_points:
            return item
        if rng is None:
            keep = np.unique(np.linspace(0, n - 1, self.max_points).round().astype(np.int64))
        else:
            keep = np.sort(rng.choice(n, size=self.max_points, replace=False))
        out = dict(item)
        for key in _POINT_FIELDS:
            if key in out:
                out[key] = np.asarray(out[key])[keep]
        return out
