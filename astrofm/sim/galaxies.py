"""The galaxy population: latent properties and their true photometry.

Redshifts follow the comoving volume (Planck18) in ``redshift_range``; stellar
masses a double Schechter function (Baldry et al. 2012) over log M* 8.5–11.8;
the sample is cut at a z-band magnitude (21, as MMU's ``dr10_south_21``), so it
is flux limited like the real one. Given (z, M*):

- star-forming or quiescent (quenched fraction rising through log M* ≈ 10.5);
  sSFR on the main sequence (−10 − 0.2 (log M* − 10) + 2.5 log(1+z), 0.3 dex)
  or 10^−12 yr⁻¹ (0.4 dex): a bimodal sSFR;
- morphology E / S0 / Sp / Irr, with bulge mass fraction, bulge Sérsic index,
  sizes from mass–size relations (van der Wel et al. 2014 slopes, 0.18 dex
  scatter, shrinking as (1+z)^-0.7), inclination, axis ratios, position angle;
- dust: disk A_V growing with mass and inclination, bulges a third of that.

All star formation sits in the disk. Fluxes are AB nanomaggies through DECam
g, r, i, z and WISE W1–W4, after Milky Way extinction (``ebv``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from astrofm.sim import cosmology, sed
from astrofm.sim.extinction import transmission
from astrofm.sim.photometry import band, line_fluxes, nanomaggies_to_mag
from astrofm.sim.tables import Table

MORPHOLOGIES = ("E", "S0", "Sp", "Irr")
IMAGE_BANDS = ("des-g", "des-r", "des-i", "des-z")
WISE_BANDS = ("W1", "W2", "W3", "W4")
LOG_MASS_RANGE = (8.5, 11.8)
#: Maximum young mass fraction of a disk.
MAX_F_YOUNG = 0.5


def _schechter_cdf() -> tuple[np.ndarray, np.ndarray]:
    log_m = np.linspace(*LOG_MASS_RANGE, 2000)
    x = 10 ** (log_m - 10.66)
    phi = np.log(10) * np.exp(-x) * (3.96e-3 * x ** (1 - 0.35) + 0.79e-3 * x ** (1 - 1.47))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (phi[1:] + phi[:-1]) * np.diff(log_m))])
    return log_m, cdf / cdf[-1]


@lru_cache(maxsize=4)
def _mass_limit(mag_limit: float) -> tuple[np.ndarray, np.ndarray]:
    """log M* below which no galaxy at z can pass the z-band cut.

    Computed for a dust-free disk with a young mass fraction of 0.2, less 0.1 dex:
    rarer, bluer starbursts below it are not drawn (a tiny incompleteness).
    """
    z = np.linspace(1e-3, 1.0, 200)
    brightest = {"z": z, "log_mstar": np.zeros_like(z), "bulge_fraction": np.zeros_like(z),
                 "f_young": np.full_like(z, 0.2), "dust_av": np.zeros_like(z),
                 "bulge_av": np.zeros_like(z), "sfr": np.zeros_like(z), "ebv": np.zeros_like(z)}
    mag_per_msun = nanomaggies_to_mag(band_fluxes(brightest, ("des-z",))["total"][:, 0])
    return z, (mag_per_msun - mag_limit) / 2.5 - 0.1


_Z_TABLE = np.linspace(0.0, 1.0, 501)
_AV_TABLE = np.linspace(0.0, 4.0, 81)


@lru_cache(maxsize=16)
def _flux_table(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band integrals of the old and young templates on (z, A_V) grids and of dust emission on z.

    Each entry is ``Σ_i w_i S(λ_i / (1+z)) 10^(−0.4 A_V k(λ_i / (1+z)))`` for the
    band's samples λ_i and weights w_i (nanomaggies per f_λ unit).
    """
    b = band(name)
    old, young, dust, attenuation = sed.templates().at(b.wave[None, :] / (1 + _Z_TABLE[:, None]))
    ext = 10.0 ** (-0.4 * _AV_TABLE[None, :, None] * attenuation[:, None, :])  # (z, A_V, λ)
    return (np.einsum("zal,zl,l->za", ext, old, b.weight), np.einsum("zal,zl,l->za", ext, young, b.weight),
            dust @ b.weight)


def _bilinear(table: np.ndarray, z: np.ndarray, a_v: np.ndarray) -> np.ndarray:
    fz = np.clip(z / (_Z_TABLE[1] - _Z_TABLE[0]), 0, len(_Z_TABLE) - 1.000001)
    fa = np.clip(a_v / (_AV_TABLE[1] - _AV_TABLE[0]), 0, len(_AV_TABLE) - 1.000001)
    iz, ia = fz.astype(np.int64), fa.astype(np.int64)
    tz, ta = fz - iz, fa - ia
    return ((table[iz, ia] * (1 - ta) + table[iz, ia + 1] * ta) * (1 - tz)
            + (table[iz + 1, ia] * (1 - ta) + table[iz + 1, ia + 1] * ta) * tz)


def band_fluxes(gal: Table, bands: tuple[str, ...]) -> Table:
    """True fluxes [nanomaggies] (N, len(bands)) of the bulge, disk (stars + dust), lines and total.

    Continua come from tabulated band integrals (z step 0.002, A_V step 0.05,
    bilinear: < 0.1% error); Milky Way extinction is applied per band with
    its coefficient A_band / E(B−V), as survey catalogs do; lines are exact.
    """
    z = gal["z"]
    d_lum = cosmology.luminosity_distance_mpc(z) * cosmology.MPC_CM
    scale = 1e17 / (4 * np.pi * d_lum**2) / (1 + z)  # L_λ [erg/s/Å] -> f_λ [1e-17 erg/s/cm²/Å]
    mass = 10 ** gal["log_mstar"]
    bulge_mass = mass * gal["bulge_fraction"]
    bulge, disk = [], []
    for name in bands:
        old, young, dust = _flux_table(name)
        mw = scale * 10 ** (-0.4 * band(name).extinction_coefficient * gal["ebv"])
        bulge.append(mw * bulge_mass * _bilinear(old, z, gal["bulge_av"]))
        stars = (1 - gal["f_young"]) * _bilinear(old, z, gal["dust_av"]) + gal["f_young"] * _bilinear(
            young, z, gal["dust_av"])
        disk.append(mw * ((mass - bulge_mass) * stars + gal["sfr"] * np.interp(z, _Z_TABLE, dust)))
    result = {"bulge": np.stack(bulge, axis=-1), "disk": np.stack(disk, axis=-1)}
    line_wave, line_flux = observed_lines(gal)
    result["lines"] = line_fluxes(line_flux, line_wave, bands)
    result["total"] = result["bulge"] + result["disk"] + result["lines"]
    return result


def observed_lines(gal: Table) -> tuple[np.ndarray, np.ndarray]:
    """Observed wavelengths [Å] and fluxes [1e-17 erg/s/cm²] of the nebular lines, (N, len(sed.LINES))."""
    z = gal["z"]
    d_lum = cosmology.luminosity_distance_mpc(z) * cosmology.MPC_CM
    wave = sed.LINE_WAVES[None, :] * (1 + z[:, None])
    luminosity = sed.line_luminosities(gal["log_mstar"], gal["sfr"], gal["dust_av"])
    flux = luminosity * 1e17 / (4 * np.pi * d_lum**2)[:, None] * transmission(wave, 3.1 * gal["ebv"][:, None])
    return wave, flux


def _draw(rng: np.random.Generator, n: int, z_range: tuple[float, float], mag_limit: float) -> Table:
    """Latents of ``n`` candidates, with masses above the z-dependent limit."""
    grid_log_m, mass_cdf = _schechter_cdf()
    z_lim, m_lim = _mass_limit(mag_limit)
    zgrid = cosmology.redshift_grid()
    floor = np.clip(np.interp(zgrid, z_lim, m_lim), *LOG_MASS_RANGE)
    surviving = 1.0 - np.interp(floor, grid_log_m, mass_cdf)
    z = cosmology.sample_volume_redshifts(rng, n, *z_range, weight=surviving)
    low = np.interp(np.clip(np.interp(z, z_lim, m_lim), *LOG_MASS_RANGE), grid_log_m, mass_cdf)
    log_m = np.interp(low + rng.random(n) * (1.0 - low), mass_cdf, grid_log_m)

    quiescent = rng.random(n) < 1.0 / (1.0 + np.exp(-(log_m - 10.5 - 0.5 * z) / 0.25))
    evolution = 2.5 * np.log10(1 + z)
    log_ssfr = np.where(quiescent, -12.0 + evolution + rng.normal(0, 0.4, n),
                        -10.0 - 0.2 * (log_m - 10.0) + evolution + rng.normal(0, 0.3, n))
    u = rng.random(n)
    p_irregular = 1.0 / (1.0 + np.exp((log_m - 9.2) / 0.3))
    p_elliptical = np.clip(0.55 + 0.3 * (log_m - 10.5), 0.2, 0.9)
    morph = np.where(quiescent, np.where(u < p_elliptical, 0, 1), np.where(u < p_irregular, 3, 2))
    bt_spiral = np.clip(0.05 + 0.08 * (log_m - 9.0) + rng.normal(0, 0.08, n), 0.0, 0.45)
    bulge_fraction = np.select([morph == 0, morph == 1, morph == 2], [rng.uniform(0.75, 1.0, n),
                               rng.uniform(0.35, 0.7, n), bt_spiral], 0.0)
    sersic_n = np.select([morph == 0, morph == 1], [np.clip(rng.normal(4.0, 0.5, n), 2.5, 6.0),
                         np.clip(rng.normal(3.0, 0.6, n), 1.5, 5.0)], np.clip(rng.normal(2.0, 0.6, n), 1.0, 4.0))

    size_z = -0.7 * np.log10(1 + z)
    disk_kpc = 10 ** (0.6 + 0.22 * (log_m - 10.0) + size_z + rng.normal(0, 0.18, n))
    elliptical_kpc = 10 ** (0.35 + 0.6 * (log_m - 10.5) + size_z + rng.normal(0, 0.18, n))
    bulge_kpc = np.where(morph == 0, elliptical_kpc, disk_kpc * 10 ** (-0.6 + rng.normal(0, 0.15, n)))
    disk_kpc = np.where(morph == 0, np.maximum(disk_kpc, 1.5 * elliptical_kpc), disk_kpc)

    cos_i = rng.random(n)
    thickness = np.where(morph == 3, 0.35, 0.15)
    disk_q = np.sqrt(cos_i**2 + thickness**2 * (1 - cos_i**2))
    bulge_q = np.where(morph == 0, np.clip(rng.normal(0.75, 0.15, n), 0.35, 1.0), rng.uniform(0.6, 1.0, n))
    angle = rng.uniform(0.0, np.pi, n)
    bulge_angle = np.where(morph == 0, angle, angle + np.deg2rad(rng.normal(0, 10, n)))

    sfr = 10 ** (log_m + log_ssfr)
    disk_mass = 10**log_m * (1 - bulge_fraction)
    f_young = np.clip(sfr * 1e8 / np.maximum(disk_mass, 1.0), 0.0, MAX_F_YOUNG)
    dust_av = np.where(quiescent, np.clip(rng.normal(0.1, 0.05, n), 0, None),
                       np.clip(0.3 + 0.3 * (log_m - 9.5) + rng.normal(0, 0.15, n), 0.0, 1.5)
                       * (1 + 0.8 * (1 - cos_i)))
    scale = cosmology.arcsec_per_kpc(z)
    return {
        "z": z, "log_mstar": log_m, "log_ssfr": log_ssfr, "sfr": sfr, "quiescent": quiescent,
        "morphology_index": morph.astype(np.int64),
        "bulge_fraction": bulge_fraction, "sersic_n": np.round(sersic_n / 0.05) * 0.05,
        "disk_r_kpc": disk_kpc, "bulge_r_kpc": bulge_kpc,
        "disk_r_arcsec": disk_kpc * scale, "bulge_r_arcsec": bulge_kpc * scale,
        "inclination_deg": np.rad2deg(np.arccos(cos_i)), "disk_q": disk_q, "bulge_q": bulge_q,
        "position_angle_deg": np.rad2deg(angle), "bulge_position_angle_deg": np.rad2deg(bulge_angle) % 180.0,
        "dust_av": dust_av, "bulge_av": dust_av / 3.0, "f_young": f_young,
        "sigma_gas_kms": np.clip(30 + 25 * (log_m - 9.0) + rng.normal(0, 10, n), 20, 200),
        "d_lum_mpc": cosmology.luminosity_distance_mpc(z), "arcsec_per_kpc": scale,
    }


def sample_galaxies(rng: np.random.Generator, ebv: np.ndarray, z_range: tuple[float, float],
                    mag_limit: float) -> Table:
    """Latents and true fluxes of ``len(ebv)`` galaxies brighter than ``mag_limit`` in z.

    ``ebv`` is the Milky Way E(B−V) [mag] at each galaxy's position. Candidates are
    drawn in rounds of N and cut on their true z-band magnitude until N pass.
    """
    n = len(ebv)
    kept: list[Table] = []
    count = 0
    while count < n:
        cand = _draw(rng, n + 16, z_range, mag_limit)
        cand["ebv"] = np.zeros_like(cand["z"])
        flux_z = band_fluxes(cand, ("des-z",))["total"][:, 0]
        passed = nanomaggies_to_mag(flux_z) < mag_limit
        kept.append({k: v[passed] for k, v in cand.items()})
        count += int(passed.sum())
    gal = {k: np.concatenate([t[k] for t in kept])[:n] for k in kept[0]}
    gal["ebv"] = np.asarray(ebv, dtype=np.float64)
    gal["morphology"] = np.array(MORPHOLOGIES, dtype="S3")[gal["morphology_index"]]
    return gal


def add_photometry(gal: Table) -> Table:
    """True fluxes [nanomaggies] per component: ``flux_bulge``/``flux_disk``/``flux_lines`` (N, 4)
    in g, r, i, z, ``flux_wise`` (N, 4) in W1–W4, and ``flux_{g,r,i,z,w1..w4}`` totals."""
    optical = band_fluxes(gal, IMAGE_BANDS)
    wise = band_fluxes(gal, WISE_BANDS)["total"]
    gal["flux_bulge"] = optical["bulge"]
    gal["flux_disk"] = optical["disk"]
    gal["flux_lines"] = optical["lines"]
    gal["flux_wise"] = wise
    for j, name in enumerate("griz"):
        gal[f"flux_{name}"] = optical["total"][:, j]
    for j in range(4):
        gal[f"flux_w{j + 1}"] = wise[:, j]
    gal["bt_r"] = optical["bulge"][:, 1] / optical["total"][:, 1]
    return gal
