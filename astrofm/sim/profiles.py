"""Fourier transforms of the light profiles the renderer draws (all normalized to unit flux).

Every function returns the 2-D Fourier transform ``F(k)`` of a circular profile,
``F(0) = 1``, as a function of ``k·r`` (``k`` in radians per unit length, ``r``
the profile's size in the same unit). Elliptical profiles use the same 1-D
function at a sheared ``k``; see :mod:`astrofm.sim.render`.

- Sérsic: ``I(r) ∝ exp(-b (r / r_half)^(1/n))``, hard-truncated at
  :data:`SERSIC_TRUNCATION` half-light radii (as the Tractor's de Vaucouleurs
  model, and as GalSim's ``Sersic(trunc=...)``; ``b`` is solved so that
  ``r_half`` is the half-light radius of the truncated profile). Transformed once
  per index ``n`` with a fast Hankel transform (FFTLog, ``scipy.fft.fht``) and
  interpolated. ``n = 1`` (the exponential disk) uses its untruncated closed form;
  untruncated tables agree with the closed forms for ``n = 1`` and ``n = 0.5`` to 1e-11.
- Moffat PSF ``I(r) ∝ (1 + (r/α)²)^-β``: closed form with a modified Bessel function.
- Gaussian, thin ring (``J0``), square pixel (``sinc``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft, optimize, special

#: Sérsic indices are rounded to this step before their transform is tabulated.
SERSIC_N_STEP = 0.05
#: Sérsic profiles (n != 1) are cut at this many half-light radii.
SERSIC_TRUNCATION = 8.0
_FHT_POINTS = 8192
_FHT_LOG10_RANGE = (-14.0, 5.0)  # radii in units of r_half


def sersic_b(n: float | np.ndarray) -> np.ndarray:
    """``b_n`` such that half the light of a Sérsic profile lies inside ``r_half``."""
    return special.gammaincinv(2.0 * np.asarray(n, dtype=np.float64), 0.5)


def round_sersic_n(n: np.ndarray) -> np.ndarray:
    """Sérsic indices on the tabulation grid (steps of :data:`SERSIC_N_STEP`)."""
    return np.round(np.asarray(n, dtype=np.float64) / SERSIC_N_STEP) * SERSIC_N_STEP


@lru_cache(maxsize=512)
def truncated_sersic_b(n: float, truncation: float) -> float:
    """``b`` of ``exp(-b (r/r_half)^(1/n))`` cut at ``truncation`` r_half, with r_half its half-light radius."""
    def excess(b: float) -> float:
        return special.gammainc(2.0 * n, b) - 0.5 * special.gammainc(2.0 * n, b * truncation ** (1.0 / n))

    return float(optimize.brentq(excess, 1e-3, float(sersic_b(n)) + 1e-9))


class UniformTable:
    """A function tabulated on ``x = 0, h, 2h, ... x_max`` and interpolated linearly (the last value beyond)."""

    def __init__(self, x_max: float, points: int, values_at: object) -> None:
        self.step = x_max / (points - 1)
        self.values = np.asarray(values_at(np.arange(points) * self.step), np.float32)  # type: ignore[operator]
        self.slopes = np.append(np.diff(self.values), np.float32(0.0))  # change per step
        self.last = points - 1

    def locate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Table index (int32) and fraction of a step beyond it (float32) of each ``x``; the same for every
        table of the same step and length."""
        position = np.asarray(x, np.float32) * np.float32(1.0 / self.step)
        np.minimum(position, np.float32(self.last), out=position)
        index = position.astype(np.int32)
        position -= index
        return index, position

    def at(self, index: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        """Interpolated values at the places :meth:`locate` returned."""
        out = self.slopes[index]
        out *= fraction
        out += self.values[index]
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.at(*self.locate(x))


#: Every Sérsic index is tabulated in k·r_half on the same grid: steps of 0.01 up to 2000.
_SERSIC_TABLE_GRID = (2000.0, 200_001)


@lru_cache(maxsize=256)
def _sersic_uniform(n: float, truncation: float) -> UniformTable:
    if n == 1.0:
        b1 = float(sersic_b(1.0))
        return UniformTable(*_SERSIC_TABLE_GRID, lambda x: (1.0 + (x / b1) ** 2) ** -1.5)
    k, values = _sersic_table(n, truncation)
    return UniformTable(*_SERSIC_TABLE_GRID, lambda x: np.interp(x, k, values, right=0.0))


@lru_cache(maxsize=256)
def _sersic_table(n: float, truncation: float) -> tuple[np.ndarray, np.ndarray]:
    """(k·r_half, F) of a unit-flux truncated Sérsic profile of index ``n``, increasing in k."""
    b = truncated_sersic_b(n, truncation) if np.isfinite(truncation) else float(sersic_b(n))
    radius = np.logspace(*_FHT_LOG10_RANGE, _FHT_POINTS)
    dln = float(np.log(radius[1] / radius[0]))
    profile = np.where(radius <= truncation, np.exp(-b * radius ** (1.0 / n)), 0.0)
    edge = b * truncation ** (1.0 / n) if np.isfinite(truncation) else np.inf
    total = 2.0 * np.pi * n * special.gamma(2.0 * n) / b ** (2.0 * n) * special.gammainc(2.0 * n, edge)
    offset = fft.fhtoffset(dln, mu=0.0)
    transform = fft.fht(radius * profile, dln, mu=0.0, offset=offset)
    centre = np.sqrt(radius[0] * radius[-1])
    k = np.exp(offset) / centre * np.exp((np.arange(_FHT_POINTS) - (_FHT_POINTS - 1) / 2) * dln)
    values = 2.0 * np.pi * transform / k / total
    keep = (k > 1e-6) & (k < 1e4)
    return np.concatenate([[0.0], k[keep]]), np.concatenate([[1.0], values[keep]])


def sersic_ft(n: np.ndarray, kr: np.ndarray, truncation: float = SERSIC_TRUNCATION) -> np.ndarray:
    """Fourier transforms of unit-flux Sérsic profiles at ``k·r_half``, float32: row ``i`` of ``kr`` (M, ...) for
    index ``n[i]`` (M,), rounded to the grid.

    ``truncation`` in half-light radii (``inf``: untruncated); ``n = 1`` is never truncated.
    Evaluated from tables with step 0.01 in ``k·r_half`` up to 2000 (relative error < 1e-5).
    """
    n = round_sersic_n(n)

    def table(value: float) -> UniformTable:
        return _sersic_uniform(value, float(truncation) if value != 1.0 else np.inf)

    if not len(n):
        return np.zeros(np.shape(kr), np.float32)
    index, fraction = table(float(n[0])).locate(kr)  # the same for every index n: one grid
    out = np.empty_like(fraction)
    for value in np.unique(n):
        rows = n == value
        out[rows] = table(float(value)).at(index[rows], fraction[rows])
    return out


def moffat_alpha(fwhm: np.ndarray, beta: float) -> np.ndarray:
    """Moffat scale radius α from its FWHM (same unit)."""
    return np.asarray(fwhm) / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


@lru_cache(maxsize=16)
def _moffat_table(beta: float) -> UniformTable:
    nu = beta - 1.0

    def values(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            out = x**nu * special.kv(nu, x) / (2.0 ** (nu - 1.0) * special.gamma(nu))
        return np.nan_to_num(np.where(x == 0, 1.0, out))

    return UniformTable(100.0, 50_001, values)


def moffat_ft(k_alpha: np.ndarray, beta: float) -> np.ndarray:
    """Fourier transform of a unit-flux (untruncated) Moffat profile at ``k·α`` (float32)."""
    return _moffat_table(float(beta))(k_alpha)


def gaussian_ft(k_sigma: np.ndarray) -> np.ndarray:
    """Fourier transform of a unit-flux circular Gaussian at ``k·σ``."""
    return np.exp(-0.5 * np.square(k_sigma))


def ring_ft(k_radius: np.ndarray) -> np.ndarray:
    """Fourier transform of an infinitely thin unit-flux ring at ``k·R``."""
    return special.j0(k_radius)


def pixel_ft(kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """Transform of a square pixel of side 1 (k in radians per pixel)."""
    return np.sinc(kx / (2.0 * np.pi)) * np.sinc(ky / (2.0 * np.pi))
