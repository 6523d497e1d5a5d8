"""LAMOST-like low-resolution stellar spectra, taken at one epoch of each star's variability.

Grid: log-linear from 3850 Å, Δlog10 λ = 1e-4 (LAMOST's sampling), up to
9000 Å (3689 pixels); resolution R = 1800; flux in 1e-17 erg/s/cm²/Å with a
smooth ±5% flux-calibration error. The spectrum is taken at MJD 55900–59000:
pulsators are cooler when fainter (T ∝ 10^(−0.1 Δm)), binaries show their
orbital radial velocity. Miras show Balmer emission, rotators and flare stars
Hα (and Ca II K) emission. Noise: variance = f / (4 · throughput) + 1.5²,
noisier in the blue and at the dichroic (5700–5900 Å); ``spectrum_mask``
(True = bad) marks ~0.2% bad pixels and, in 30% of spectra, the dichroic gap.

Catalog columns: ``mjd``, ``rv`` and ``rv_err`` [km/s], ``snr_g``, ``snr_r``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from astrofm.sim.lightcurves import delta_mag
from astrofm.sim.stellar_sed import line_spectrum
from astrofm.sim.tables import Table

LOG10_START = np.log10(3850.0)
LOG10_STEP = 1e-4
RESOLUTION = 1800.0
_PULSATORS = (b"RRAB", b"RRC", b"HADS", b"DSCT", b"M", b"SR")
_BINARIES = (b"EW", b"EA", b"EB")


@lru_cache(maxsize=1)
def wavelength() -> np.ndarray:
    """The LAMOST-like grid [Å] (float64)."""
    count = int(np.floor((np.log10(9000.0) - LOG10_START) / LOG10_STEP)) + 1
    return 10 ** (LOG10_START + LOG10_STEP * np.arange(count))


def lsf_sigma_angstrom() -> np.ndarray:
    """Instrumental Gaussian sigma [Å] along the grid."""
    return wavelength() / RESOLUTION / 2.3548


def observe(rng: np.random.Generator, stars: Table, modulation: Table, spectrum_stars: Table) -> Table:
    """Spectra of ``stars`` at a random epoch (MMU ``spectrum_*`` columns and the catalog columns).

    ``modulation`` is the light-curve model of the stars
    (:func:`astrofm.sim.lightcurves.draw_modulation`); ``spectrum_stars`` holds the
    properties that shape the spectrum (the stars themselves, or impostors for
    mismatched spectra): teff, logg, feh, vsini_kms, dust, class.
    """
    wave = wavelength()
    n = len(stars["teff"])
    mjd = rng.uniform(55900.0, 59000.0, n)
    dm = delta_mag(stars, modulation, np.arange(n), mjd)
    pulsating = np.isin(spectrum_stars["class"], _PULSATORS)
    teff = spectrum_stars["teff"] * np.where(pulsating, 10 ** (-0.1 * dm), 1.0)
    phase = 2 * np.pi * ((mjd - stars["t0"]) / np.nan_to_num(stars["period"], nan=1.0))
    orbital = np.where(np.isin(stars["class"], _BINARIES), rng.uniform(30, 150, n) * np.sin(phase), 0.0)
    rv = stars["rv_kms"] + orbital
    shaping = {k: spectrum_stars[k] for k in ("logg", "feh", "vsini_kms", "dust")}
    shaping.update(rv_kms=rv, av=stars["av"])
    cls = spectrum_stars["class"]
    emission = {
        6562.8: np.where(cls == b"ROT", rng.uniform(0.5, 3.0, n), 0.0) + np.where(cls == b"flare",
                                                                                   rng.uniform(3.0, 10.0, n), 0.0),
        4861.3: np.where(cls == b"M", rng.uniform(5.0, 15.0, n), 0.0) + np.where(cls == b"flare", 2.0, 0.0),
        4340.5: np.where(cls == b"M", rng.uniform(10.0, 25.0, n), 0.0),
        4101.7: np.where(cls == b"M", rng.uniform(15.0, 35.0, n), 0.0),
        3933.7: np.where(np.isin(cls, [b"ROT", b"flare"]), rng.uniform(0.5, 2.0, n), 0.0),
    }
    model = line_spectrum(wave, shaping, teff, stars["mean_vmag"] + dm, lsf_sigma_angstrom(), emission)
    x = np.linspace(-1, 1, len(wave))
    calibration = 1 + rng.normal(0, 0.05, (n, 1)) * x + rng.normal(0, 0.03, (n, 1)) * (x**2 - 1 / 3)
    model *= calibration
    throughput = (0.35 + 0.65 * np.exp(-(((wave - 6500.0) / 2200.0) ** 4))) * np.where(
        np.abs(wave - 5800.0) < 100.0, 0.35, 1.0)
    variance = np.maximum(model, 0) / (4.0 * throughput) + 1.5**2
    flux = model + np.sqrt(variance) * rng.standard_normal(model.shape)
    bad = rng.random(model.shape) < 0.002
    bad |= (rng.random((n, 1)) < 0.3) & (np.abs(wave - 5800.0) < 20.0)
    ivar = np.where(bad, 0.0, 1.0 / variance)
    snr = np.sqrt(ivar) * np.abs(model)
    in_g, in_r = (wave > 4100) & (wave < 5400), (wave > 5600) & (wave < 6800)
    rv_err = np.clip(5.0 * 20.0 / np.maximum(np.median(snr[:, in_r], axis=1), 1.0), 2.0, 30.0)
    return {
        "spectrum_flux": flux.astype(np.float32),
        "spectrum_ivar": ivar.astype(np.float32),
        "spectrum_lambda": np.broadcast_to(wave.astype(np.float32), model.shape).copy(),
        "spectrum_mask": bad,
        "spectrum_lsf_sigma": np.broadcast_to(np.float32(1.0 / (RESOLUTION * 2.3548 * LOG10_STEP * np.log(10))),
                                              model.shape).copy(),
        "mjd": mjd,
        "rv": (rv + rv_err * rng.standard_normal(n)).astype(np.float32),
        "rv_err": rv_err.astype(np.float32),
        "snr_g": np.median(snr[:, in_g], axis=1).astype(np.float32),
        "snr_r": np.median(snr[:, in_r], axis=1).astype(np.float32),
    }
