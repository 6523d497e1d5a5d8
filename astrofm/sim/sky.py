"""Where objects sit on the sky: footprints, positions, astrometric jitter, foreground dust, ids.

- Galaxies fill a contiguous patch of NESTED nside-16 HEALPix pixels around
  (RA, Dec) = (180°, +5°), inside the Legacy Survey DR10 south footprint at
  Galactic latitude ≈ 60°.
- Stars fill pixels spread over the whole sky, drawn more often near the
  Galactic plane, so their Galactic (l, b) vary as in AstroM3's sample.
- Positions are uniform inside each pixel (equal-area pixel coordinates). Each
  survey measures the true position with its own Gaussian jitter [arcsec]; a
  jittered position is kept inside the true pixel, so an object's shards share
  one ``healpix``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from astrofm.data.layout import healpix_index
from astrofm.data.schema import HEALPIX_NSIDE

GALAXY_CENTRE = (180.0, 5.0)  # deg


@lru_cache(maxsize=2)
def _grid(nside: int = HEALPIX_NSIDE):
    from astropy_healpix import HEALPix

    return HEALPix(nside=nside, order="nested")


def pixel_centres(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) in degrees of pixel centres."""
    lon, lat = _grid().healpix_to_lonlat(np.asarray(pixels, dtype=np.int64))
    return np.asarray(lon.deg), np.asarray(lat.deg)


def _separation(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Great-circle distance [deg]."""
    r0, d0, r, d = map(np.deg2rad, (ra0, dec0, ra, dec))
    cos = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - r0)
    return np.rad2deg(np.arccos(np.clip(cos, -1, 1)))


def galaxy_pixels(n_pixels: int) -> np.ndarray:
    """The ``n_pixels`` pixels nearest to :data:`GALAXY_CENTRE`, sorted."""
    every = np.arange(_grid().npix)
    distance = _separation(*GALAXY_CENTRE, *pixel_centres(every))
    return np.sort(every[np.argsort(distance, kind="stable")[:n_pixels]])


def star_pixels(rng: np.random.Generator, n_pixels: int, exclude: np.ndarray) -> np.ndarray:
    """``n_pixels`` distinct pixels over the sky, weighted 0.2 + exp(−|b| / 15°), sorted."""
    every = np.setdiff1d(np.arange(_grid().npix), exclude)
    _, b = galactic(*pixel_centres(every))
    weight = 0.2 + np.exp(-np.abs(b) / 15.0)
    return np.sort(rng.choice(every, size=n_pixels, replace=False, p=weight / weight.sum()))


def uniform_in_pixel(rng: np.random.Generator, pixel: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions (ra, dec) [deg] uniform inside one pixel."""
    lon, lat = _grid().healpix_to_lonlat(np.full(n, pixel, np.int64), dx=rng.random(n), dy=rng.random(n))
    return np.asarray(lon.deg) % 360.0, np.asarray(lat.deg)


def jitter(rng: np.random.Generator, ra: np.ndarray, dec: np.ndarray, sigma_arcsec: float,
           pixel: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions measured with Gaussian errors of ``sigma_arcsec`` per axis, kept inside ``pixel``."""
    n = len(ra)
    offsets = rng.normal(0.0, sigma_arcsec / 3600.0, size=(8, 2, n))
    out_ra, out_dec = ra.copy(), dec.copy()
    pending = np.ones(n, bool)
    for dra, ddec in offsets:
        new_dec = np.clip(dec + ddec, -90.0, 90.0)
        new_ra = (ra + dra / np.maximum(np.cos(np.deg2rad(dec)), 1e-6)) % 360.0
        inside = pending & (healpix_index(new_ra, new_dec) == pixel)
        out_ra[inside], out_dec[inside] = new_ra[inside], new_dec[inside]
        pending &= ~inside
        if not pending.any():
            break
    return out_ra, out_dec


def galactic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Galactic (l, b) [deg] of ICRS (ra, dec) [deg]."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    coords = SkyCoord(ra=np.asarray(ra) * u.deg, dec=np.asarray(dec) * u.deg, frame="icrs").galactic
    return np.asarray(coords.l.deg), np.asarray(coords.b.deg)


def foreground_ebv(l_deg: np.ndarray, b_deg: np.ndarray) -> np.ndarray:
    """A smooth, patchy stand-in for the SFD dust map: E(B−V) [mag] ∝ 1 / |sin b|."""
    lon, b = np.deg2rad(l_deg), np.deg2rad(b_deg)
    patchy = 1.0 + 0.3 * np.sin(3 * lon + 1.0) * np.cos(5 * b) + 0.15 * np.sin(11 * lon) * np.sin(7 * b + 0.5)
    return np.clip(0.022 / np.maximum(np.abs(np.sin(b)), 0.03) * patchy, 0.004, 2.5)


def brick_names(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Legacy-Survey-like brick names ``RRRR{p,m}DDD`` (RA and |Dec| in tenths of a degree)."""
    ra10 = np.floor(np.asarray(ra) * 10).astype(np.int64) % 3600
    dec10 = np.floor(np.abs(np.asarray(dec)) * 10).astype(np.int64)
    sign = np.where(np.asarray(dec) >= 0, "p", "m")
    return np.array([f"{r:04d}{s}{d:03d}" for r, s, d in zip(ra10, sign, dec10)])


def gaia_source_ids(ra: np.ndarray, dec: np.ndarray, running: np.ndarray) -> np.ndarray:
    """Gaia-style ``source_id``: level-12 NESTED HEALPix index × 2^35 + a running number."""
    return healpix_index(ra, dec, nside=4096) * np.int64(34359738368) + np.asarray(running, dtype=np.int64)
