"""DESI-like fibre spectra of galaxies and the catalog columns MMU's DESI reader expects.

Grid: 3600–9824 Å in 0.8 Å steps (7781 pixels), flux in 1e-17 erg/s/cm²/Å.
The noiseless spectrum is the light of the galaxy inside a 1.5″ fibre: its
bulge and disk SEDs (:mod:`astrofm.sim.sed`) each scaled by their own fibre
fraction, nebular lines (in the disk) as Gaussians of width
sqrt(σ_gas² + σ_LSF²) integrated over pixels, Milky Way extinction per pixel,
plus anomaly light. Resolution R rises from 2000 (blue) to 5000 (red);
``spectrum_lsf_sigma`` is the LSF sigma in pixels.

Noise: variance = (object + sky) / (exposure · throughput) + read noise, where
the sky has a continuum and ~40 bright night-sky lines (5577 Å, Na D, [O I]
6300/6364, OH bands in the red) whose subtraction leaves 2% residuals. The
mask (True = bad pixel, MMU's spectrum polarity) marks cosmic rays and bad CCD
columns, where ``spectrum_ivar`` is 0.

Redshift catalog: ``Z``, ``ZERR``, ``DELTACHI2`` (the expected Δχ² of the fit to the next-best redshift) and
``ZWARN`` (4, DESI's small-Δχ² bit, where that is too small for a secure redshift).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special

from astrofm.sim import anomalies, cosmology, sed
from astrofm.sim.extinction import transmission
from astrofm.sim.galaxies import observed_lines
from astrofm.sim.tables import Table

WAVE_START = 3600.0
WAVE_STEP = 0.8
N_PIXELS = 7781
_C_KMS = 2.99792458e5
#: Night-sky emission lines: wavelength [Å], integrated flux in the fibre [1e-17 erg/s/cm²].
SKY_LINES = (
    (5577.34, 400.0), (5889.95, 60.0), (5895.92, 60.0), (6300.30, 160.0), (6363.78, 55.0), (6863.96, 80.0),
    (7276.41, 110.0), (7316.28, 140.0), (7340.89, 150.0), (7369.25, 120.0), (7401.69, 90.0), (7750.64, 190.0),
    (7794.11, 200.0), (7821.50, 170.0), (7853.00, 120.0), (7913.71, 240.0), (7964.65, 260.0), (7993.33, 260.0),
    (8025.67, 150.0), (8062.40, 120.0), (8344.60, 320.0), (8399.17, 330.0), (8430.17, 300.0), (8465.36, 300.0),
    (8505.05, 200.0), (8761.32, 230.0), (8778.33, 250.0), (8791.19, 260.0), (8827.10, 420.0), (8885.85, 430.0),
    (8919.64, 380.0), (8943.40, 450.0), (8958.08, 470.0), (8988.38, 480.0), (9001.20, 300.0), (9037.95, 260.0),
    (9375.98, 500.0), (9439.67, 520.0), (9503.00, 420.0), (9552.00, 380.0), (9567.00, 420.0), (9713.00, 500.0),
    (9792.00, 520.0),
)
EXPOSURE = 8.0  # effective (exposure × collecting area) scale: S/N = flux / sqrt((flux + sky) / EXPOSURE)
READ_NOISE = 0.25  # 1e-17 erg/s/cm²/Å per pixel
FEATURE_WIDTH = 101  # pixels (80 Å): the running mean that :func:`feature_chi2` takes as the featureless continuum
#: Expected Δχ² at which half of the redshift fits are flagged (ZWARN = 4). Chosen so that the unflagged fits
#: are ≥ 99% pure, as DESI requires of its catalogs: on the small preset's test galaxies a template fit
#: misses by |Δz|/(1+z) > 0.0033 for 37% of the spectra with Δχ² < 10, 7% at 10–30, 0.8% at 30–60 and none
#: above, so 0.7% of the unflagged fits (72% of the spectra) at this value.
SECURE_DELTA_CHI2 = 20.0


def wavelength() -> np.ndarray:
    """The observed-frame grid [Å] (float64)."""
    return WAVE_START + WAVE_STEP * np.arange(N_PIXELS)


def resolution(wave: np.ndarray) -> np.ndarray:
    """Resolving power λ/Δλ(FWHM) along the grid."""
    return 2000.0 + 3000.0 * (wave - WAVE_START) / (wave[-1] - WAVE_START)


@lru_cache(maxsize=1)
def instrument() -> dict[str, np.ndarray]:
    """LSF sigma [Å], throughput, sky continuum and sky-line profiles (n_lines, L) on the grid."""
    wave = wavelength()
    lsf = wave / resolution(wave) / 2.3548
    throughput = 0.3 + 0.7 * np.exp(-(((wave - 7000.0) / 2600.0) ** 4))
    continuum = 1.2 * (wave / 6000.0) ** 1.5
    profiles = np.stack([_pixel_gaussian(wave, centre, np.interp(centre, wave, lsf)) for centre, _ in SKY_LINES])
    strengths = np.array([s for _, s in SKY_LINES])
    return {"wave": wave, "lsf": lsf, "throughput": throughput, "sky": continuum + strengths @ profiles,
            "sky_lines": profiles * strengths[:, None]}


def _pixel_gaussian(wave: np.ndarray, centre: float | np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
    """A unit-flux Gaussian integrated over the pixels of ``wave`` [per Å]."""
    half = WAVE_STEP / 2
    scale = np.sqrt(2.0) * np.asarray(sigma)
    return (special.erf((wave + half - centre) / scale) - special.erf((wave - half - centre) / scale)) / (2 * WAVE_STEP)


def model_spectra(gal: Table, rows: np.ndarray, fibre_fraction: np.ndarray, kinds: np.ndarray,
                  params: Table) -> np.ndarray:
    """Noiseless in-fibre spectra (len(rows), L) [1e-17 erg/s/cm²/Å].

    ``fibre_fraction`` (N, 2): bulge and disk light fractions in the fibre (whole unit).
    """
    inst = instrument()
    wave = inst["wave"]
    sub = {k: v[rows] for k, v in gal.items()}
    z = sub["z"]
    d_lum = cosmology.luminosity_distance_mpc(z) * cosmology.MPC_CM
    scale = (1e17 / (4 * np.pi * d_lum**2) / (1 + z))[:, None] * transmission(wave[None, :], 3.1 * sub["ebv"][:, None])
    rest = wave[None, :] / (1 + z[:, None])
    mass = 10 ** sub["log_mstar"]
    bulge_mass = mass * sub["bulge_fraction"]
    zero = np.zeros_like(z)
    fb, fd = fibre_fraction[rows, 0:1], fibre_fraction[rows, 1:2]
    values = sed.templates().at(rest)
    flux = fb * sed.component_sed(rest, bulge_mass, zero, sub["bulge_av"], zero, values)
    flux += fd * sed.component_sed(rest, mass - bulge_mass, sub["f_young"], sub["dust_av"], sub["sfr"], values)
    flux *= scale
    line_wave, line_flux = observed_lines(sub)
    sigma = np.hypot(line_wave * sub["sigma_gas_kms"][:, None] / _C_KMS, np.interp(line_wave, wave, inst["lsf"]))
    _add_lines(flux, wave, line_wave, line_flux * fd, sigma)
    merger = kinds[rows] == b"merger"
    flux[merger] *= 1.0 + anomalies.merger_fibre_fraction({k: v[rows][merger] for k, v in params.items()})[:, None]
    flux += anomalies.galaxy_spectrum(kinds[rows], {k: v[rows] for k, v in params.items()}, sub, wave)
    return flux


def _add_lines(flux: np.ndarray, wave: np.ndarray, centre: np.ndarray, total: np.ndarray, sigma: np.ndarray) -> None:
    """Add pixel-integrated Gaussian lines (N, K) to ``flux`` (N, L), each within ±48 pixels."""
    width = 97
    first = np.rint((centre - wave[0]) / WAVE_STEP).astype(np.int64) - width // 2
    index = first[..., None] + np.arange(width)
    inside = (index >= 0) & (index < len(wave))
    index = np.clip(index, 0, len(wave) - 1)
    values = total[..., None] * _pixel_gaussian(wave[index], centre[..., None], sigma[..., None]) * inside
    rows = np.broadcast_to(np.arange(flux.shape[0])[:, None, None], index.shape)
    np.add.at(flux, (rows.ravel(), index.ravel()), values.ravel())


def observe(rng: np.random.Generator, model: np.ndarray) -> Table:
    """Noisy spectra of noiseless ``model`` (n, L): the ``spectrum_*`` columns, a median S/N (n,) and the
    redshift information ``delta_chi2`` (n,) (:func:`feature_chi2`)."""
    inst = instrument()
    n = len(model)
    exposure = EXPOSURE * np.exp(rng.normal(0, 0.25, n))[:, None] * inst["throughput"]
    variance = (np.maximum(model, 0) + inst["sky"]) / exposure + READ_NOISE**2
    sigma = np.sqrt(variance)
    residual = (rng.normal(0, 0.02, (n, len(SKY_LINES))) @ inst["sky_lines"])
    flux = model + residual + sigma * rng.standard_normal(model.shape)
    bad = np.zeros(model.shape, bool)
    for i in range(n):
        for _ in range(rng.poisson(1.5)):
            start = rng.integers(0, N_PIXELS - 3)
            length = rng.integers(1, 4)
            bad[i, start:start + length] = True
            flux[i, start:start + length] += rng.uniform(5, 50) * sigma[i, start:start + length]
        if rng.random() < 0.05:
            start = rng.integers(0, N_PIXELS - 60)
            bad[i, start:start + rng.integers(10, 60)] = True
    ivar = np.where(bad, 0.0, 1.0 / variance)
    snr = np.median(np.where(bad, 0.0, model / sigma), axis=1)
    return {
        "spectrum_flux": flux.astype(np.float32),
        "spectrum_ivar": ivar.astype(np.float32),
        "spectrum_lambda": np.broadcast_to(inst["wave"].astype(np.float32), model.shape).copy(),
        "spectrum_mask": bad | (ivar < 1e-6),
        "spectrum_lsf_sigma": np.broadcast_to((inst["lsf"] / WAVE_STEP).astype(np.float32), model.shape).copy(),
        "snr": snr,
        "delta_chi2": feature_chi2(model, np.where(bad, 0.0, 1.0 / variance)),
    }


def feature_chi2(model: np.ndarray, ivar: np.ndarray, width: int = FEATURE_WIDTH) -> np.ndarray:
    """χ² of the spectral features of noiseless ``model`` (n, L): Σ ivar · (model − its running mean over
    ``width`` pixels)². Lines, breaks and bands that a redshift moves are what a fit at a wrong redshift
    misplaces, so this is the expected Δχ² between the true and a wrong redshift; a featureless
    continuum carries none."""
    padded = np.pad(model, ((0, 0), (width // 2, width // 2)), mode="edge")
    total = np.cumsum(np.pad(padded, ((0, 0), (1, 0))), axis=1)
    smooth = (total[:, width:] - total[:, :-width]) / width
    return np.sum(ivar * (model - smooth) ** 2, axis=1)


def redshift_columns(rng: np.random.Generator, z: np.ndarray, snr: np.ndarray, delta_chi2: np.ndarray) -> Table:
    """``Z``, ``ZERR``, ``ZWARN`` and ``DELTACHI2`` of a redrock-like fit. ``delta_chi2`` (n,) is the expected
    Δχ² to the next-best redshift (:func:`feature_chi2`); as in DESI's ``ZWARN`` bit 2 (SMALL_DELTA_CHI2 = 4),
    the fit is flagged where that is small: with probability 1/2 at :data:`SECURE_DELTA_CHI2`, falling off
    over a factor of ~2. Half of the flagged fits land on a wrong redshift."""
    n = len(z)
    zerr = 2e-5 * (1 + z) * (1 + 2.0 / np.maximum(snr, 0.05))
    log_ratio = np.log(np.maximum(delta_chi2, 1e-6) / SECURE_DELTA_CHI2)
    fail = rng.random(n) < 1.0 / (1.0 + np.exp(log_ratio / 0.25))
    wrong = fail & (rng.random(n) < 0.5)
    measured = np.where(wrong, rng.uniform(0.0, 1.5, n), z + zerr * rng.standard_normal(n))
    return {"Z": measured.astype(np.float32), "ZERR": zerr.astype(np.float32),
            "ZWARN": np.where(fail, 4, 0).astype(np.int64), "DELTACHI2": delta_chi2.astype(np.float32)}


def spectroscopic_targets(rng: np.random.Generator, mag_r: np.ndarray, fraction: float) -> np.ndarray:
    """Which galaxies get a spectrum: brighter ones more often, ``fraction`` of them on average."""
    if fraction <= 0:
        return np.zeros(len(mag_r), bool)
    lo, hi = -10.0, 40.0
    for _ in range(60):
        mid = (lo + hi) / 2
        mean = np.mean(1.0 / (1.0 + np.exp((mag_r - mid) / 0.6)))
        lo, hi = (mid, hi) if mean < fraction else (lo, mid)
    return rng.random(len(mag_r)) < 1.0 / (1.0 + np.exp((mag_r - lo) / 0.6))
