"""Synthetic photometry through real filter curves (``speclite``), in AB nanomaggies.

Flux densities are f_λ in 1e-17 erg/s/cm²/Å (DESI's unit). A band's flux is
``∫ f_λ T λ dλ / ∫ f_λ,AB T λ dλ`` (photon-counting, AB), times 1e9 for
nanomaggies (1 nanomaggy = 3.631 µJy, AB magnitude 22.5). Each band is
reduced once to sample wavelengths and weights, so photometry of a batch of
SEDs evaluated at ``band.wave`` is one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

C_ANGSTROM = 2.99792458e18  # Å/s
#: AB reference f_ν = 3631 Jy, as f_λ · λ² in 1e-17 erg/s/cm²/Å · Å².
AB_FLAMBDA_LAMBDA2 = 3631e-23 * C_ANGSTROM * 1e17

#: Short band names used by the simulator -> speclite filter names.
FILTERS = {
    "des-g": "decam2014-g", "des-r": "decam2014-r", "des-i": "decam2014-i", "des-z": "decam2014-z",
    "W1": "wise2010-W1", "W2": "wise2010-W2", "W3": "wise2010-W3", "W4": "wise2010-W4",
    "V": "bessell-V", "g": "sdss2010-g",
    "G": "gaiadr3-G", "BP": "gaiadr3-BP", "RP": "gaiadr3-RP",
    "J": "twomass-J", "H": "twomass-H", "Ks": "twomass-Ks",
}
#: AB − Vega offsets [mag] of the bands whose catalogs are Vega-based (published values).
AB_MINUS_VEGA = {"V": 0.02, "G": 0.12, "BP": 0.04, "RP": 0.37, "J": 0.91, "H": 1.39, "Ks": 1.85,
                 "W1": 2.699, "W2": 3.339, "W3": 5.174, "W4": 6.620}


_DLN_BAND = 2e-3


@dataclass(frozen=True)
class Band:
    """One filter: sample wavelengths [Å] and weights [nanomaggies per (1e-17 erg/s/cm²/Å)]."""

    name: str
    wave: np.ndarray
    weight: np.ndarray

    @property
    def effective_wavelength(self) -> float:
        """Weight-averaged wavelength [Å]."""
        return float(np.sum(self.wave * self.weight) / np.sum(self.weight))

    @cached_property
    def extinction_coefficient(self) -> float:
        """A_band / E(B−V) of the Milky Way law (R_V = 3.1) for a flat f_ν source."""
        from astrofm.sim.extinction import MW_RV, ccm89

        flat = self.weight / self.wave**2
        return float(-2.5 * np.log10(np.sum(flat * 10 ** (-0.4 * MW_RV * 0.01 * ccm89(self.wave))) / np.sum(flat))
                     / 0.01)


@lru_cache(maxsize=32)
def band(name: str) -> Band:
    """The :class:`Band` of a short name (``des-g``, ``W1``, ``V``, ``G``, ``Ks`` ...).

    The curve is cut where its response falls below 1e-3 of the peak and
    resampled at Δlnλ = 2e-3 (10 Å at 5000 Å, fine enough for the absorption features used).
    """
    import speclite.filters

    curve = speclite.filters.load_filter(FILTERS[name])
    native = np.asarray(curve.wavelength, dtype=np.float64)
    response = np.asarray(curve.response, dtype=np.float64)
    lo, hi = native[np.flatnonzero(response > 1e-3 * response.max())[[0, -1]]]
    wave = np.exp(np.arange(np.log(lo), np.log(hi) + _DLN_BAND, _DLN_BAND))
    response = np.interp(wave, native, response)
    dlam = np.gradient(wave)
    numerator = response * wave * dlam
    norm = np.sum(numerator * AB_FLAMBDA_LAMBDA2 / wave**2)
    return Band(name, wave, numerator / norm * 1e9)


def fluxes(flam: np.ndarray, names: tuple[str, ...] | list[str], wave: np.ndarray | None = None) -> np.ndarray:
    """Band fluxes [nanomaggies] (…, n_bands) of spectra ``flam`` (…, L).

    Without ``wave`` the spectra are sampled at each band's own wavelengths
    (``band(name).wave``); with ``wave`` [Å] they are integrated on their own
    grid (the band response interpolated onto it, 0 outside), which keeps
    narrow lines exact.
    """
    out = []
    for name in names:
        b = band(name)
        if wave is None:
            out.append(flam @ b.weight)
        else:
            per_angstrom = np.interp(wave, b.wave, b.weight / np.gradient(b.wave), left=0.0, right=0.0)
            out.append(flam @ (per_angstrom * np.gradient(wave)))
    return np.stack(out, axis=-1)


def line_fluxes(line_flux: np.ndarray, line_wave: np.ndarray, names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Band fluxes [nanomaggies] (…, n_bands) of emission lines of total flux ``line_flux``
    [1e-17 erg/s/cm²] (…, K) at observed wavelengths ``line_wave`` [Å] (…, K)."""
    out = []
    for name in names:
        b = band(name)
        # a line contributes F · T(λ) λ / norm: the band weight per unit f_λ divided by dλ
        per_angstrom = b.weight / np.gradient(b.wave)
        out.append(np.sum(line_flux * np.interp(line_wave, b.wave, per_angstrom, left=0.0, right=0.0), axis=-1))
    return np.stack(out, axis=-1)


def nanomaggies_to_mag(flux: np.ndarray) -> np.ndarray:
    """AB magnitude of a flux in nanomaggies (NaN for flux <= 0)."""
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, 22.5 - 2.5 * np.log10(flux), np.nan)


def mag_to_nanomaggies(mag: np.ndarray) -> np.ndarray:
    """Flux in nanomaggies of an AB magnitude."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - 22.5))


def nanomaggies_to_flambda(flux: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """f_λ [1e-17 erg/s/cm²/Å] at ``wave`` [Å] of a flat-f_ν source of ``flux`` nanomaggies."""
    return np.asarray(flux) * 1e-9 * AB_FLAMBDA_LAMBDA2 / np.asarray(wave) ** 2
