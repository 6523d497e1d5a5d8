"""Stellar spectral energy distributions: photometry in every band, and line spectra.

A photosphere is a blackbody at Teff with line blanketing in the blue for cool
stars, a Balmer jump for hot ones and TiO bands below 4100 K (bandheads at
4761–8432 Å); dusty long-period variables add a 800 K shell carrying a fraction
``dust`` of the stellar luminosity (their WISE excess). Band colours are
tabulated on a Teff grid; interstellar extinction uses each band's
A/E(B−V) coefficient (CCM89, R_V = 3.1).

:func:`line_spectrum` adds absorption lines whose strengths follow Teff, logg
and [Fe/H] (Balmer lines peaking near 9500 K, Ca II H&K, G band, Mg b, Na D,
Ca triplet) and emission (Balmer lines of Miras, Hα of active stars), broadened
by rotation and the instrument, and Doppler-shifted by the radial velocity.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special

from astrofm.sim.photometry import band

#: Bands of the star catalogs (light curves, Gaia, 2MASS, WISE).
STAR_BANDS = ("V", "g", "G", "BP", "RP", "J", "H", "Ks", "W1", "W2", "W3", "W4")
_TIO_BANDS = ((4761.0, 0.5), (4954.0, 0.6), (5167.0, 0.7), (5448.0, 0.8), (5847.0, 0.8), (6159.0, 1.0),
              (6651.0, 0.9), (7054.0, 1.0), (7589.0, 0.9), (8432.0, 0.6))
_SHELL_TEMPERATURE = 800.0
_TEFF_GRID = np.arange(2300.0, 13025.0, 25.0)
_C_KMS = 2.99792458e5


def _planck(wave: np.ndarray, teff: np.ndarray) -> np.ndarray:
    x = 1.4387769e8 / (wave * teff)
    return wave**-5 / np.expm1(np.minimum(x, 700.0))


def tio_depth(teff: np.ndarray) -> np.ndarray:
    """Strength (0 to 3) of the TiO bands of a star of ``teff`` [K]."""
    return np.clip((4100.0 - np.asarray(teff)) / 500.0, 0.0, 3.0)


def photosphere(wave: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """Continuum f_λ shape (N, L) of photospheres ``teff`` (N,) at ``wave`` [Å], (L,) or (N, L) (arbitrary units)."""
    t = np.asarray(teff, dtype=np.float64)[:, None]
    flux = _planck(wave, t)
    hot = np.exp(-(((t - 9500.0) / 3000.0) ** 2))
    flux *= np.where(wave < 3646.0, 1.0 - 0.5 * hot, 1.0)
    cool = special.expit((5000.0 - t) / 600.0)
    flux *= 1.0 - 0.35 * cool * special.expit((4300.0 - wave) / 150.0)
    depth = tio_depth(t)
    tau = np.zeros_like(flux)
    for head, strength in _TIO_BANDS:
        tau += strength * depth * np.where(wave >= head, np.exp(-np.maximum(wave - head, 0.0) / 120.0), 0.0)
    return flux * np.exp(-tau)


def dust_shell(wave: np.ndarray, teff: np.ndarray) -> np.ndarray:
    """f_λ of a shell re-emitting the star's luminosity at 800 K, same units as :func:`photosphere`."""
    t = np.asarray(teff, dtype=np.float64)[:, None]
    return _planck(wave, _SHELL_TEMPERATURE) * (t / _SHELL_TEMPERATURE) ** 4


@lru_cache(maxsize=1)
def _band_table() -> tuple[np.ndarray, np.ndarray]:
    """Band fluxes (n_teff, n_bands) of the photosphere and of the dust shell, per unit of the shapes."""
    phot, shell = [], []
    for name in STAR_BANDS:
        b = band(name)
        phot.append(photosphere(b.wave, _TEFF_GRID) @ b.weight)
        shell.append(dust_shell(b.wave, _TEFF_GRID) @ b.weight)
    return np.array(phot).T, np.array(shell).T


def magnitudes(teff: np.ndarray, dust: np.ndarray, mean_v: np.ndarray, av: np.ndarray) -> dict[str, np.ndarray]:
    """Apparent AB magnitudes in :data:`STAR_BANDS` of stars of mean (observed) V magnitude ``mean_v``.

    ``av`` is the interstellar A_V [mag] in front of each star.
    """
    phot, shell = _band_table()
    index = np.interp(teff, _TEFF_GRID, np.arange(len(_TEFF_GRID)))
    lo = np.clip(index.astype(np.int64), 0, len(_TEFF_GRID) - 2)
    t = (index - lo)[:, None]
    fluxes = ((phot[lo] * (1 - t) + phot[lo + 1] * t)
              + np.asarray(dust)[:, None] * (shell[lo] * (1 - t) + shell[lo + 1] * t))
    intrinsic = -2.5 * np.log10(fluxes)
    ebv = np.asarray(av) / 3.1
    extinction = np.array([band(name).extinction_coefficient for name in STAR_BANDS])
    v = STAR_BANDS.index("V")
    mags = (mean_v[:, None] + intrinsic - intrinsic[:, v:v + 1]
            + (extinction[None, :] - extinction[v]) * ebv[:, None])
    return {name: mags[:, j] for j, name in enumerate(STAR_BANDS)}


def _line_table(teff: np.ndarray, logg: np.ndarray, feh: np.ndarray, ebv: np.ndarray) -> list[tuple]:
    """(rest wavelength Å, equivalent width (N,) Å (< 0: emission), intrinsic sigma (N,) Å) of each line."""
    t = np.asarray(teff, dtype=np.float64)
    metals = 10 ** (0.5 * np.clip(feh, -2.5, 0.5))
    balmer = 1.0 + 13.0 * np.exp(-((np.log10(t / 9500.0) / 0.15) ** 2))
    balmer_sigma = 2.0 + 12.0 * np.exp(-((np.log10(t / 9500.0) / 0.15) ** 2))
    cool = special.expit((6000.0 - t) / 600.0)
    giant = 1.0 + 0.15 * (4.5 - np.asarray(logg))
    lines = [(w, balmer * ratio, balmer_sigma) for w, ratio in
             ((6562.8, 0.9), (4861.3, 1.0), (4340.5, 0.9), (4101.7, 0.85), (3970.1, 0.8), (3889.0, 0.6))]
    ca_hk = (1.0 + 14.0 * cool) * metals
    lines += [(3933.7, ca_hk, np.full_like(t, 6.0)), (3968.5, 0.8 * ca_hk, np.full_like(t, 6.0))]
    lines += [(4304.4, 6.0 * cool * metals, np.full_like(t, 10.0)),
              (5175.4, (0.5 + 5.0 / (1 + np.exp((t - 5200) / 500))) * metals, np.full_like(t, 4.0)),
              (5892.9, 0.5 + 6.0 / (1 + np.exp((t - 4800) / 400)) + 1.5 * np.asarray(ebv), np.full_like(t, 3.0)),
              (5269.0, 2.0 * cool * metals, np.full_like(t, 2.0)), (4383.5, 1.5 * cool * metals, np.full_like(t, 2.0))]
    triplet = (1.0 + 2.0 / (1 + np.exp((t - 5500) / 700))) * giant * metals
    lines += [(8498.0, 0.6 * triplet, np.full_like(t, 2.0)), (8542.1, triplet, np.full_like(t, 2.5)),
              (8662.1, 0.8 * triplet, np.full_like(t, 2.5))]
    return lines


def line_spectrum(wave: np.ndarray, stars: dict[str, np.ndarray], teff: np.ndarray, v_mag: np.ndarray,
                  lsf_sigma: np.ndarray, emission: dict[float, np.ndarray] | None = None) -> np.ndarray:
    """Noiseless spectra f_λ (N, L) [1e-17 erg/s/cm²/Å] on ``wave`` [Å] at the observation epoch.

    ``stars`` holds logg, feh, rv_kms, vsini_kms, av, dust of each star; ``teff``
    [K] and ``v_mag`` (observed V) are those of the epoch; ``lsf_sigma`` [Å] (L,)
    the instrumental resolution; ``emission`` maps a rest wavelength [Å] to an
    emission equivalent width (N,) [Å, > 0].
    """
    from astrofm.sim.extinction import transmission

    n = len(teff)
    rest = wave[None, :] / (1 + stars["rv_kms"][:, None] / _C_KMS)
    continuum = photosphere(rest, teff) + stars["dust"][:, None] * dust_shell(rest, teff)
    profile = np.ones((n, len(wave)))
    rotation = stars["vsini_kms"] / _C_KMS / 1.5
    for centre, ew, sigma in _line_table(teff, stars["logg"], stars["feh"], stars["av"] / 3.1):
        width = np.sqrt(sigma**2 + (centre * rotation) ** 2)[:, None]
        width = np.sqrt(width**2 + np.interp(centre, wave, lsf_sigma) ** 2)
        profile -= (np.asarray(ew)[:, None] / (width * np.sqrt(2 * np.pi))
                    * np.exp(-0.5 * ((rest - centre) / width) ** 2))
    for centre, ew in (emission or {}).items():
        width = np.hypot(1.5, np.interp(centre, wave, lsf_sigma))
        gaussian = np.exp(-0.5 * ((rest - centre) / width) ** 2) / (width * np.sqrt(2 * np.pi))
        profile += np.asarray(ew)[:, None] * gaussian
    spectra = continuum * np.clip(profile, 0.02, None) * transmission(wave[None, :], stars["av"][:, None])
    v = band("V")
    v_flux = np.array([np.interp(v.wave, wave, s) @ v.weight for s in spectra])
    return spectra * (10 ** (-0.4 * (v_mag - 22.5)) / v_flux)[:, None]
