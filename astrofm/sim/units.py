"""Work units: the objects of one population in one HEALPix pixel, made and written together.

A unit draws from random streams keyed by (seed, population, pixel, purpose),
writes one shard per survey (``<dataset>/healpix=<pixel>/001-of-001.hdf5``,
atomically) and then its rows of the truth catalog; that last file marks the
unit as done, so an interrupted simulation redoes only unfinished units.

Survey ids (unique within each dataset):

- Legacy Survey ``object_id``: ``"<BRICKNAME>-<OBJID>"`` (S16), OBJID = the galaxy's index;
- DESI ``object_id`` (TARGETID): 39627000000000000 + galaxy index;
- ASAS-SN ``object_id``: 661000000000 + star index;
- Gaia ``object_id`` (source_id): level-12 HEALPix × 2^35 + running number in the pixel;
- LAMOST ``object_id`` (obsid): 200000000 + star index.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrofm.data.layout import shard_path
from astrofm.data.shard import write_shard
from astrofm.sim import anomalies, desi, gaia, galaxies, lamost, legacysurvey, lightcurves, sky, splits, stars
from astrofm.sim.config import SimConfig
from astrofm.sim.photometry import nanomaggies_to_mag
from astrofm.sim.rng import stream
from astrofm.sim.stellar_sed import magnitudes
from astrofm.sim.tables import Table
from astrofm.sim.truth import part_path, write_table

#: Dataset name -> folder under the root (``<survey>/<subset>``, MMU style).
DATASETS = {
    "legacysurvey": "legacysurvey/dr10_south_21",
    "desi": "desi/dr1_main",
    "asassn": "asassn/variables",
    "gaia": "gaia/dr3",
    "lamost": "lamost/dr8",
}
DESI_TARGETID_BASE = 39627000000000000
ASASSN_ID_BASE = 661000000000
LAMOST_ID_BASE = 200000000
_SPECTRUM_CHUNK = 256


@dataclass(frozen=True)
class Unit:
    """``count`` objects of ``population`` in ``pixel``; ``offset`` is the index of the first one."""

    population: str
    pixel: int
    count: int
    offset: int


def plan(config: SimConfig, seed: int) -> list[Unit]:
    """Every unit of a simulation, galaxies first, in pixel order."""
    units = []
    n_gal_pixels = -(-config.n_galaxies // config.galaxies_per_shard) if config.n_galaxies else 0
    n_star_pixels = -(-config.n_stars // config.stars_per_shard) if config.n_stars else 0
    galaxy_pixels = sky.galaxy_pixels(n_gal_pixels)
    star_pixels = sky.star_pixels(stream(seed, "footprint"), n_star_pixels, galaxy_pixels) if n_star_pixels else []
    for population, pixels, total in (("galaxies", galaxy_pixels, config.n_galaxies),
                                      ("stars", star_pixels, config.n_stars)):
        offset = 0
        for i, pixel in enumerate(pixels):
            count = total // len(pixels) + (i < total % len(pixels))
            units.append(Unit(population, int(pixel), int(count), offset))
            offset += count
    return units


def run_unit(root: str | Path, config: SimConfig, seed: int, unit: Unit) -> Path:
    """Make and write one unit (shards, then its truth part); returns the truth part's path.

    BLAS/OpenMP pools are limited to one thread so that results do not depend on them.
    """
    from threadpoolctl import threadpool_limits

    root = Path(root)
    with threadpool_limits(1):
        if unit.population == "galaxies":
            truth = _galaxy_unit(root, config, seed, unit)
        else:
            truth = _star_unit(root, config, seed, unit)
    return write_table(part_path(root, unit.population, unit.pixel), truth)


def _write(root: Path, dataset: str, pixel: int, columns: Table, compression: str | None = None) -> None:
    if len(columns["object_id"]):
        write_shard(shard_path(root / DATASETS[dataset], pixel), columns, compression=compression)


def _pixel_offsets(ra_true: np.ndarray, dec_true: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """True position relative to a catalog position, in image pixels (x to the West, y to the North)."""
    dra = ((ra_true - ra + 180.0) % 360.0 - 180.0) * np.cos(np.deg2rad(dec))
    return np.stack([-dra, dec_true - dec], axis=1) * 3600.0 / legacysurvey.PIXEL_SCALE


def _galaxy_unit(root: Path, config: SimConfig, seed: int, unit: Unit) -> Table:
    key = (seed, "galaxies", unit.pixel)
    n, size = unit.count, config.image_size
    rng = stream(*key, "latents")
    ra, dec = sky.uniform_in_pixel(rng, unit.pixel, n)
    ebv = sky.foreground_ebv(*sky.galactic(ra, dec))
    gal = galaxies.add_photometry(galaxies.sample_galaxies(rng, ebv, config.redshift_range, config.magnitude_limit_z))
    kinds = anomalies.assign(rng, n, config.anomaly_fraction, anomalies.GALAXY_TYPES)
    params = anomalies.galaxy_parameters(rng, gal, kinds)
    astrometry = stream(*key, "astrometry")
    ls_ra, ls_dec = sky.jitter(astrometry, ra, dec, config.astrometric_jitter, unit.pixel)
    desi_ra, desi_dec = sky.jitter(astrometry, ra, dec, config.astrometric_jitter, unit.pixel)

    field = legacysurvey.draw_field(stream(*key, "field"), gal, size)
    rendered = legacysurvey.render_models(gal, kinds, params, _pixel_offsets(ra, dec, ls_ra, ls_dec), field, size)
    legacysurvey.add_noise(rendered, field, lambda batch: stream(*key, "noise", batch))
    ls = legacysurvey.catalog_columns(stream(*key, "catalog"), gal, kinds, params, field, rendered, size)
    index = unit.offset + np.arange(n)
    bricks = sky.brick_names(ls_ra, ls_dec)
    ls_ids = np.array([f"{b}-{i}" for b, i in zip(bricks, index)], dtype="S16")
    _write(root, "legacysurvey", unit.pixel, {"object_id": ls_ids, "ra": ls_ra, "dec": ls_dec,
                                              "BRICKNAME": bricks.astype("S8"), "OBJID": index, **ls},
           compression="lzf")

    spectro = stream(*key, "spectra")
    observed = desi.spectroscopic_targets(spectro, nanomaggies_to_mag(np.maximum(ls["FLUX_R"], 1e-3)),
                                          config.spectroscopic_fraction)
    rows = np.flatnonzero(observed)
    parts = []
    for chunk, start in enumerate(range(0, len(rows), _SPECTRUM_CHUNK)):
        sub = rows[start:start + _SPECTRUM_CHUNK]
        model = desi.model_spectra(gal, sub, rendered.fibre_fraction, kinds, params)
        parts.append(desi.observe(stream(*key, "spectra", chunk), model))
    spectra = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    snr = np.full(n, np.nan)
    delta_chi2 = np.full(n, np.nan)
    desi_ids = np.full(n, -1, np.int64)
    if len(rows):
        snr[rows] = spectra.pop("snr")
        delta_chi2[rows] = spectra.pop("delta_chi2")
        desi_ids[rows] = DESI_TARGETID_BASE + index[rows]
        columns = {"object_id": desi_ids[rows], "ra": desi_ra[rows], "dec": desi_dec[rows], **spectra,
                   **desi.redshift_columns(spectro, gal["z"][rows], snr[rows], delta_chi2[rows]),
                   "EBV": ls["EBV"][rows]}
        for band in "GRZ":
            for name in ("FLUX", "FLUX_IVAR", "FIBERFLUX", "FIBERTOTFLUX"):
                columns[f"{name}_{band}"] = ls[f"{name}_{band}"][rows]
        _write(root, "desi", unit.pixel, columns)

    truth = {
        "truth_id": index, "ra": ra, "dec": dec, "healpix": np.full(n, unit.pixel, np.int64),
        "legacysurvey_object_id": ls_ids, "desi_object_id": desi_ids, "has_spectrum": observed,
        "split": splits.assign(stream(*key, "split"), n, config.split_fractions),
        **{k: gal[k] for k in _GALAXY_LATENTS},
        "r_half_arcsec": legacysurvey.half_light_radius(gal),
        "fibre_fraction_bulge": rendered.fibre_fraction[:, 0], "fibre_fraction_disk": rendered.fibre_fraction[:, 1],
        **{f"mag_{b}": nanomaggies_to_mag(gal[f"flux_{b}"]) for b in "griz"},
        "desi_snr": snr, "desi_delta_chi2": delta_chi2,
        "anomaly_type": kinds, "anomaly_detail": _galaxy_details(kinds, params),
    }
    return truth


_GALAXY_LATENTS = (
    "z", "log_mstar", "log_ssfr", "sfr", "quiescent", "morphology", "morphology_index", "bulge_fraction", "bt_r",
    "sersic_n", "disk_r_kpc", "bulge_r_kpc", "disk_r_arcsec", "bulge_r_arcsec", "inclination_deg", "disk_q",
    "bulge_q", "position_angle_deg", "dust_av", "f_young", "sigma_gas_kms", "d_lum_mpc", "ebv",
    "flux_g", "flux_r", "flux_i", "flux_z", "flux_w1", "flux_w2", "flux_w3", "flux_w4",
)


def _galaxy_details(kinds: np.ndarray, params: Table) -> np.ndarray:
    details = []
    for i, kind in enumerate(kinds):
        details.append({
            b"lens_arc": f"theta_e={params['lens_theta_e'][i]:.2f}arcsec z_source={params['lens_source_z'][i]:.3f}",
            b"merger": f"flux_ratio={params['merger_ratio'][i]:.2f} offset={params['merger_offset'][i]:.2f}arcsec",
            b"ring": f"radius={params['ring_radius'][i]:.2f}arcsec",
            b"qso": f"agn_flux_r={params['agn_flux'][i][1]:.2f}nmgy fwhm={params['agn_fwhm_kms'][i]:.0f}kms",
            b"artefact": "saturated_star" if params["artefact_star"][i] else "satellite_trail",
        }.get(bytes(kind), ""))
    return np.array(details, dtype="S64")


def _star_unit(root: Path, config: SimConfig, seed: int, unit: Unit) -> Table:
    key = (seed, "stars", unit.pixel)
    n = unit.count
    rng = stream(*key, "latents")
    ra, dec = sky.uniform_in_pixel(rng, unit.pixel, n)
    kinds = anomalies.assign(rng, n, config.anomaly_fraction, anomalies.STAR_TYPES)
    names = [stars.CLASSES[i] for i in stars.sample_classes(rng, n)]
    names = ["constant" if k == b"microlensing" else "flare" if k == b"flare" else c for c, k in zip(names, kinds)]
    star = stars.sample_stars(rng, ra, dec, names)
    mags = magnitudes(star["teff"], star["dust"], star["mean_vmag"], star["av"])
    astrometry = stream(*key, "astrometry")
    positions = {s: sky.jitter(astrometry, ra, dec, config.astrometric_jitter, unit.pixel)
                 for s in ("asassn", "gaia", "lamost")}
    index = unit.offset + np.arange(n)

    light = stream(*key, "lightcurves")
    modulation = lightcurves.draw_modulation(light, star)
    curves = lightcurves.observe(light, star, modulation, kinds, ra, dec, config.lightcurve_bands,
                                 {b: mags[b] for b in config.lightcurve_bands})
    asassn_ids = ASASSN_ID_BASE + index
    _write(root, "asassn", unit.pixel, {"object_id": asassn_ids, "ra": positions["asassn"][0],
                                        "dec": positions["asassn"][1], **curves,
                                        "mean_vmag": _median_magnitude(curves["lightcurve"], config.lightcurve_bands)})

    gaia_ids = sky.gaia_source_ids(*positions["gaia"], np.arange(n))
    _write(root, "gaia", unit.pixel, {"object_id": gaia_ids, "ra": positions["gaia"][0], "dec": positions["gaia"][1],
                                      **gaia.columns(stream(*key, "gaia"), star, mags)})

    spectro = stream(*key, "lamost")
    has_lamost = spectro.random(n) < config.lamost_fraction
    mismatch = kinds == b"spectrum_mismatch"
    shaping = stars.impostors(spectro, star, mismatch)
    lamost_ids = np.where(has_lamost, LAMOST_ID_BASE + index, -1)
    rows = np.flatnonzero(has_lamost)
    if len(rows):
        subset = {k: v[rows] for k, v in star.items()}
        spectra = lamost.observe(spectro, subset, {k: v[rows] for k, v in modulation.items()},
                                 {k: v[rows] for k, v in shaping.items()})
        _write(root, "lamost", unit.pixel, {"object_id": lamost_ids[rows], "ra": positions["lamost"][0][rows],
                                            "dec": positions["lamost"][1][rows], **spectra})

    label = np.array([c if c.decode() in stars.CLASSES else b"" for c in star["class"]], dtype="S4")
    detail = np.where(mismatch, np.char.add(b"spectrum_of=", shaping["class"]), b"")
    detail = np.where(kinds == b"microlensing", [f"peak_mjd={p:.1f}".encode() for p in modulation["lens_peak"]],
                      detail)
    return {
        "truth_id": config.n_galaxies + index, "ra": ra, "dec": dec, "healpix": np.full(n, unit.pixel, np.int64),
        "asassn_object_id": asassn_ids, "gaia_object_id": gaia_ids, "lamost_object_id": lamost_ids,
        "has_lamost": has_lamost, "split": splits.assign(stream(*key, "split"), n, config.split_fractions),
        "class": label,
        "class_index": np.array([stars.CLASSES.index(c.decode()) if c else -1 for c in label], np.int64),
        "is_periodic": np.isin(label, [c.encode() for c in stars.PERIODIC]),
        **{k: star[k] for k in _STAR_LATENTS},
        "anomaly_type": kinds, "anomaly_detail": detail.astype("S64"),
    }


def _median_magnitude(curves: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    """Median V magnitude (AB) of each light curve (NaN without a V band or V points)."""
    if "V" not in bands:
        return np.full(len(curves), np.nan, np.float32)
    b = bands.index("V")
    flux = np.where(curves[:, b, 2] > 0, curves[:, b, 1], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return (-2.5 * np.log10(np.nanmedian(flux, axis=1) / 3631e3)).astype(np.float32)


_STAR_LATENTS = (
    "period", "amplitude_v", "teff", "logg", "feh", "abs_mag_v", "mean_vmag", "distance_pc", "av", "ebv_total",
    "l", "b", "pmra", "pmdec", "rv_kms", "vsini_kms", "dust", "t0",
)
