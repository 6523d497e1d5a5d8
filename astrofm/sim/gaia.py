"""Gaia DR3-like astrometry and photometry with 2MASS and WISE cross-matches (AstroM3's metadata).

Columns (Vega magnitudes, as in the source catalogs; NaN = not detected):

- astrometry: ``parallax``, ``pmra``, ``pmdec`` [mas, mas/yr] with errors
  growing with G (0.02 mas at G < 13, ×10^(0.2 (G − 13)) fainter), ``ruwe``,
  ``l``, ``b`` [deg], ``radial_velocity`` [km/s] for G < 13 (RVS);
- photometry: ``phot_g_mean_mag``, ``phot_bp_mean_mag``, ``phot_rp_mean_mag``
  and errors, ``bp_rp``; 2MASS ``j_mag``, ``h_mag``, ``k_mag``; WISE
  ``w1_mag`` … ``w4_mag`` (W3 fainter than 12.0 and W4 than 8.5 are missing),
  each with an ``_error``; ``ebv`` (the total E(B−V) along the line of sight).

Every value follows from the star's distance, luminosity, temperature,
extinction and motion, so classes of different luminosity separate in the
parallax–magnitude plane while binaries and rotators overlap.
"""

from __future__ import annotations

import numpy as np

from astrofm.sim.photometry import AB_MINUS_VEGA
from astrofm.sim.tables import Table

#: Catalog column -> (simulator band, error floor [mag], 5σ-like limit [Vega mag] or None).
_PHOTOMETRY = {
    "j_mag": ("J", 0.02, 16.5), "h_mag": ("H", 0.02, 16.0), "k_mag": ("Ks", 0.02, 15.5),
    "w1_mag": ("W1", 0.02, 17.0), "w2_mag": ("W2", 0.02, 15.8), "w3_mag": ("W3", 0.03, 12.0),
    "w4_mag": ("W4", 0.05, 8.5),
}
_BINARIES = (b"EW", b"EA", b"EB")


def _vega(mags: dict[str, np.ndarray], band: str) -> np.ndarray:
    return mags[band] - AB_MINUS_VEGA.get(band, 0.0)


def columns(rng: np.random.Generator, stars: Table, mags: dict[str, np.ndarray]) -> Table:
    """Catalog columns of stars (latents from :mod:`astrofm.sim.stars`, AB ``mags`` per band)."""
    n = len(stars["teff"])
    g = _vega(mags, "G")
    sigma_plx = 0.02 * np.maximum(1.0, 10 ** (0.2 * (g - 13.0)))
    ruwe = 1.0 + np.abs(rng.normal(0, 0.08, n)) + np.where(np.isin(stars["class"], _BINARIES),
                                                             rng.exponential(0.15, n), 0.0)
    out: Table = {
        "l": stars["l"], "b": stars["b"],
        "parallax": 1000.0 / stars["distance_pc"] + sigma_plx * rng.standard_normal(n),
        "parallax_error": sigma_plx,
        "pmra": stars["pmra"] + 1.1 * sigma_plx * rng.standard_normal(n), "pmra_error": 1.1 * sigma_plx,
        "pmdec": stars["pmdec"] + 1.1 * sigma_plx * rng.standard_normal(n), "pmdec_error": 1.1 * sigma_plx,
        "ruwe": ruwe,
        "radial_velocity": np.where(g < 13.0, stars["rv_kms"] + rng.normal(0, 2.0, n), np.nan),
        "ebv": stars["ebv_total"],
    }
    for name, band, floor in (("phot_g_mean_mag", "G", 3e-4), ("phot_bp_mean_mag", "BP", 2e-3),
                              ("phot_rp_mean_mag", "RP", 2e-3)):
        error = np.hypot(floor, 1e-3 * 10 ** (0.4 * (_vega(mags, band) - 17.0)))
        out[name] = _vega(mags, band) + error * rng.standard_normal(n)
        out[f"{name}_error"] = error
    out["bp_rp"] = out["phot_bp_mean_mag"] - out["phot_rp_mean_mag"]
    for name, (band, floor, limit) in _PHOTOMETRY.items():
        true = _vega(mags, band)
        error = np.hypot(floor, 0.2 * 10 ** (0.4 * (true - limit)))
        measured = true + error * rng.standard_normal(n)
        detected = true < limit
        out[name] = np.where(detected, measured, np.nan)
        out[f"{name}_error"] = np.where(detected, error, np.nan)
    return {k: np.asarray(v, dtype=np.float32) if k not in ("l", "b") else np.asarray(v) for k, v in out.items()}
