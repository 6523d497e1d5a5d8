"""Vectorized image rendering in Fourier space, for whole batches of objects at once.

A scene is built as its 2-D Fourier transform on an FFT grid of side ``pad``
(larger than the stamp, so that light beyond the stamp does not wrap back in),
multiplied by the PSF and the pixel response, and brought back with one batched
inverse FFT. Profiles are centred on the origin of the grid and moved with
phase ramps; the returned stamp has the scene centre at pixel ``(size // 2,
size // 2)`` (0-based, row = y). All lengths here are in pixels, angles in
radians counter-clockwise from the +x axis, fluxes in the caller's unit
(nanomaggies for the Legacy-Survey-like images).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from scipy import fft, special

from astrofm.sim.profiles import (
    SERSIC_TRUNCATION,
    gaussian_ft,
    moffat_alpha,
    moffat_ft,
    pixel_ft,
    sersic_ft,
)
from astrofm.sim.tables import group_ranks


@dataclass(frozen=True)
class FourierGrid:
    """The rFFT grid of one stamp size: ``ky`` (pad,) and ``kx`` (pad // 2 + 1,) in radians per pixel."""

    size: int
    pad: int

    @cached_property
    def ky(self) -> np.ndarray:
        return 2.0 * np.pi * fft.fftfreq(self.pad)

    @cached_property
    def kx(self) -> np.ndarray:
        return 2.0 * np.pi * fft.rfftfreq(self.pad)

    @cached_property
    def k(self) -> np.ndarray:
        """|k| on the grid, (pad, pad // 2 + 1)."""
        return np.hypot(self.ky[:, None], self.kx[None, :])

    @cached_property
    def k_unique(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct values of |k| (float32) and the index of each grid point among them."""
        values, inverse = np.unique(np.round(self.k, 12), return_inverse=True)
        return values.astype(np.float32), inverse.reshape(self.k.shape)

    @cached_property
    def response(self) -> np.ndarray:
        """Pixel response times the sign that moves the origin to the centre of the FFT box (float32)."""
        iy = np.arange(self.pad)[:, None]
        ix = np.arange(self.pad // 2 + 1)[None, :]
        sign = np.where((iy + ix) % 2 == 0, 1.0, -1.0)
        return (pixel_ft(self.kx[None, :], self.ky[:, None]) * sign).astype(np.float32)

    @cached_property
    def half_plane_weight(self) -> np.ndarray:
        """Weights that turn a sum over the rFFT half plane into one over the full plane."""
        weight = np.full(self.pad // 2 + 1, 2.0)
        weight[0] = 1.0
        if self.pad % 2 == 0:
            weight[-1] = 1.0
        return weight

    @property
    def stamp(self) -> slice:
        """The rows (and columns) of the padded grid that hold the ``size`` x ``size`` stamp."""
        start = self.pad // 2 - self.size // 2
        return slice(start, start + self.size)


@lru_cache(maxsize=8)
def fourier_grid(size: int, pad_factor: float = 1.5) -> FourierGrid:
    """The grid for ``size`` x ``size`` stamps, FFT side an even fast length >= ``pad_factor * size``."""
    pad = fft.next_fast_len(int(np.ceil(pad_factor * size)), real=True)
    pad += pad % 2
    return FourierGrid(int(size), int(pad))


def sheared_k(grid: FourierGrid, q: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """|k| seen by an area-preserving ellipse of axis ratio ``q`` with major axis at ``angle``, (N, pad, Q).

    A profile ``I(sqrt(q x'² + y'²/q))`` (x' along the major axis) has transform
    ``F(sqrt(kx'²/q + ky'² q))``; its half-light radius is the circularized one.
    """
    q = np.asarray(q, dtype=np.float64)[:, None, None]
    cos = np.cos(angle)[:, None, None]
    sin = np.sin(angle)[:, None, None]
    kx = grid.kx[None, None, :].astype(np.float32)
    ky = grid.ky[None, :, None].astype(np.float32)
    k_major = kx * cos.astype(np.float32) + ky * sin.astype(np.float32)
    k_minor = ky * cos.astype(np.float32) - kx * sin.astype(np.float32)
    return np.sqrt(k_major**2 / q.astype(np.float32) + k_minor**2 * q.astype(np.float32))


def sersic_transforms(grid: FourierGrid, n: np.ndarray, r_half: np.ndarray, q: np.ndarray,
                      angle: np.ndarray) -> np.ndarray:
    """Unit-flux elliptical Sérsic transforms (N, pad, Q); ``r_half`` circularized [px]."""
    kr = sheared_k(grid, q, angle)
    kr *= np.asarray(r_half, dtype=np.float32)[:, None, None]
    return sersic_ft(n, kr)


def phase(grid: FourierGrid, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Separable phase ramps (…, pad) and (…, Q) that move a profile by (dx, dy) pixels."""
    dx = np.asarray(dx, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    return (np.exp(-1j * dy[..., None] * grid.ky).astype(np.complex64),
            np.exp(-1j * dx[..., None] * grid.kx).astype(np.complex64))


def shift(grid: FourierGrid, transform: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``transform`` (N, …, pad, Q) moved by (dx, dy) pixels (one shift per object)."""
    row, col = phase(grid, dx, dy)
    index = (slice(None),) + (None,) * (transform.ndim - 3)
    return transform * row[(*index, slice(None), None)] * col[(*index, None, slice(None))]


def gaussian_blobs(grid: FourierGrid, flux: np.ndarray, x: np.ndarray, y: np.ndarray,
                   sigma: np.ndarray) -> np.ndarray:
    """Sum of K round Gaussians per object, (N, B, pad, Q).

    ``flux`` (N, B, K) per band; centres ``x``, ``y`` (N, K) in pixels from the
    stamp centre; ``sigma`` (N, K) in pixels. Gaussians and phase ramps are
    separable in (ky, kx), so the sum over K is one batched matrix product.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    row, col = phase(grid, x, y)
    row = row * gaussian_ft(sigma[..., None] * grid.ky).astype(np.float32)
    col = col * gaussian_ft(sigma[..., None] * grid.kx).astype(np.float32)
    n, n_bands, k = np.shape(flux)
    weighted = np.asarray(flux, np.float32)[..., None] * row[:, None]  # (N, B, K, pad)
    stacked = np.ascontiguousarray(np.swapaxes(weighted, -1, -2)).reshape(n, n_bands * grid.pad, k)
    return np.matmul(stacked, col).reshape(n, n_bands, grid.pad, -1)


def moffat_psf(grid: FourierGrid, fwhm: np.ndarray, beta: float) -> np.ndarray:
    """Moffat PSF transforms (N, B, pad, Q) for FWHM (N, B) in pixels."""
    alpha = moffat_alpha(np.asarray(fwhm, dtype=np.float64), beta).astype(np.float32)
    values, inverse = grid.k_unique
    return moffat_ft(alpha[..., None] * values, beta)[..., inverse]


def to_images(grid: FourierGrid, transform: np.ndarray) -> np.ndarray:
    """Stamps (…, size, size) float32 from scene transforms (…, pad, Q), pixel response applied.

    ``transform`` is overwritten.
    """
    transform *= grid.response
    # the inverse along y first, so that the inverse along x runs only on the stamp's rows
    rows = fft.ifft(transform, axis=-2, overwrite_x=True)[..., grid.stamp, :]
    return np.ascontiguousarray(fft.irfft(rows, n=grid.pad, axis=-1)[..., grid.stamp], dtype=np.float32)


@lru_cache(maxsize=8)
def _aperture_weights(grid: FourierGrid, radius: float, seeing_sigma: float) -> np.ndarray:
    k = np.maximum(grid.k, 1e-12)
    disk = 2.0 * np.pi * radius * special.j1(k * radius) / k
    disk[grid.k == 0] = np.pi * radius**2
    return disk * gaussian_ft(grid.k * seeing_sigma) * grid.half_plane_weight / grid.pad**2


def aperture_flux(grid: FourierGrid, transform: np.ndarray, radius: float, seeing_sigma: float) -> np.ndarray:
    """Flux inside a circle of ``radius`` px at the stamp centre after a Gaussian seeing of ``seeing_sigma`` px.

    ``transform`` (…, pad, Q) holds scenes before PSF and pixel response; this is
    exact in Fourier space (no pixelization), as for DESI's FIBERFLUX.
    """
    weights = _aperture_weights(grid, float(radius), float(seeing_sigma))
    return np.einsum("...yx,yx->...", transform.real, weights)


@dataclass
class Sersics:
    """Sérsic components (one row each) of a batch of scenes.

    ``obj`` (M,) scene index; ``flux`` (M, B); ``n``; ``r_half`` circularized [px];
    ``q`` axis ratio; ``angle`` [rad]; ``x``, ``y`` centre [px] from the stamp centre;
    ``central`` marks light of the target itself (as opposed to neighbours).
    """

    obj: np.ndarray
    flux: np.ndarray
    n: np.ndarray
    r_half: np.ndarray
    q: np.ndarray
    angle: np.ndarray
    x: np.ndarray
    y: np.ndarray
    central: np.ndarray


@dataclass
class Blobs:
    """Round Gaussian components (``sigma`` [px]; 0 = point source), same fields as :class:`Sersics`."""

    obj: np.ndarray
    flux: np.ndarray
    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    central: np.ndarray


@dataclass
class Rings:
    """Elliptical Gaussian-section rings: ``radius`` and ``width`` (sigma) [px], ``q``, ``angle``."""

    obj: np.ndarray
    flux: np.ndarray
    radius: np.ndarray
    width: np.ndarray
    q: np.ndarray
    angle: np.ndarray
    x: np.ndarray
    y: np.ndarray
    central: np.ndarray


def empty(kind: type, n_bands: int) -> Sersics | Blobs | Rings:
    """A component set of type ``kind`` with no rows."""
    values = {f: np.zeros(0) for f in kind.__dataclass_fields__}
    values.update(obj=np.zeros(0, np.int64), flux=np.zeros((0, n_bands)), central=np.zeros(0, bool))
    return kind(**values)


def concat(kind: type, n_bands: int, parts: list) -> Sersics | Blobs | Rings:
    """Rows of several component sets of type ``kind`` as one set (an empty set if none)."""
    parts = [empty(kind, n_bands), *parts]
    return kind(**{f: np.concatenate([np.asarray(getattr(p, f)) for p in parts]) for f in kind.__dataclass_fields__})


def select(parts: object, rows: np.ndarray, new_index: np.ndarray) -> object:
    """The components of the scenes ``rows`` (a boolean mask over scenes), renumbered by ``new_index``."""
    keep = rows[parts.obj]  # type: ignore[attr-defined]
    values = {f: getattr(parts, f)[keep] for f in parts.__dataclass_fields__}  # type: ignore[attr-defined]
    values["obj"] = new_index[values["obj"]]
    return type(parts)(**values)


def scene_transforms(grid: FourierGrid, n_scenes: int, n_bands: int, sersics: Sersics, blobs: Blobs,
                     rings: Rings, aperture: tuple[float, float] | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transforms (N, B, pad, Q) of the central light and of the other sources, before PSF and pixels.

    The third result holds, for each Sérsic row, the fraction of its light inside
    ``aperture = (radius, seeing_sigma)`` [px] (see :func:`aperture_flux`; zeros without one).
    """
    shape = (n_scenes, n_bands, grid.pad, grid.pad // 2 + 1)
    central = np.zeros(shape, np.complex64)
    others = np.zeros(shape, np.complex64)
    fractions = np.zeros(len(sersics.obj))
    if len(sersics.obj):
        profile = sersic_transforms(grid, sersics.n, sersics.r_half, sersics.q, sersics.angle)
        shifted = _add_rows(grid, central, others, sersics, profile)
        if aperture is not None:
            fractions = aperture_flux(grid, shifted, *aperture)
    if len(rings.obj):
        kr = sheared_k(grid, rings.q, rings.angle)
        profile = (special.j0(kr * rings.radius[:, None, None])
                   * gaussian_ft(kr * rings.width[:, None, None])).astype(np.float32)
        _add_rows(grid, central, others, rings, profile)
    if len(blobs.obj):
        for is_central in (True, False):
            rows = blobs.central == is_central
            if not rows.any():
                continue
            obj = blobs.obj[rows]
            ranks = group_ranks(obj)
            width = int(ranks.max()) + 1
            flux = np.zeros((n_scenes, width, n_bands))
            x, y, sigma = (np.zeros((n_scenes, width)) for _ in range(3))
            flux[obj, ranks] = blobs.flux[rows]
            x[obj, ranks], y[obj, ranks], sigma[obj, ranks] = blobs.x[rows], blobs.y[rows], blobs.sigma[rows]
            (central if is_central else others)[...] += gaussian_blobs(grid, np.swapaxes(flux, 1, 2), x, y, sigma)
    return central, others, fractions


def _add_rows(grid: FourierGrid, central: np.ndarray, others: np.ndarray, parts: Sersics | Rings,
              profile: np.ndarray) -> np.ndarray:
    """Add each row's per-band flux times its shifted profile to its scene; returns the shifted profiles.

    The rows are laid out as (scene, rank among the scene's rows), so that each target's sum over rows is one
    batched real matrix product, (N, B, R) fluxes times (N, R, 2·pad·Q) real and imaginary parts.
    """
    shifted = shift(grid, profile, parts.x, parts.y)
    ranks = group_ranks(parts.obj)
    n_scenes, n_bands = central.shape[:2]
    width = int(ranks.max()) + 1
    dense = np.zeros((n_scenes, width, *shifted.shape[1:]), np.complex64)
    dense[parts.obj, ranks] = shifted
    parts_real = dense.view(np.float32).reshape(n_scenes, width, -1)
    for target, is_central in ((central, True), (others, False)):
        rows = parts.central == is_central
        if not rows.any():
            continue
        flux = np.zeros((n_scenes, n_bands, width), np.float32)
        flux[parts.obj[rows], :, ranks[rows]] = parts.flux[rows]
        target += np.matmul(flux, parts_real).view(np.complex64).reshape(target.shape)
    return shifted


def extent(sersics: Sersics, n_scenes: int) -> np.ndarray:
    """Radius [px] holding ~99.7% of each scene's Sérsic light (for the FFT padding)."""
    n = np.clip(sersics.n, 0.5, 8.0)
    # radius enclosing 99.7% of an untruncated Sérsic profile, in r_half, capped at the truncation
    reach = np.where(n <= 1.0, 5.0, np.minimum(SERSIC_TRUNCATION, 5.0 * n**1.6))
    radius = np.hypot(sersics.x, sersics.y) + reach * sersics.r_half
    out = np.zeros(n_scenes)
    np.maximum.at(out, sersics.obj, radius)
    return out


def pad_factors(size: int, reach: np.ndarray, psf_fwhm_max: np.ndarray) -> np.ndarray:
    """Smallest FFT padding factor in (1.25, 1.5, 2, 3, 4) with room for each scene's light and PSF wings."""
    need = size / 2 + np.hypot(reach, 3.5 * psf_fwhm_max)
    factors = np.array([1.25, 1.5, 2.0, 3.0, 4.0])
    fits = factors[None, :] * size - size / 2 >= need[:, None]
    return np.where(fits.any(axis=1), factors[np.argmax(fits, axis=1)], 4.0)
