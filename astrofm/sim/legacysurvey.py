"""Legacy-Survey-DR10-like cutouts and Tractor-like catalog columns for a batch of galaxies.

Each galaxy is a truncated Sérsic bulge plus an exponential disk (with
star-forming clumps along spiral arms for spirals, scattered for irregulars),
moved by its astrometric offset from the cutout centre, with neighbours in the
field, through a Moffat PSF (β = 3.5) per band. Bands g, r, i, z at 0.262″/px;
pixel values in nanomaggies. Noise: sky (per-band 5σ point-source depths
24.7/24.2/23.8/23.3 AB ± 0.25) plus source Poisson noise; ``image_ivar`` holds
the sky inverse variance (as Legacy Survey coadds do), 0 on masked pixels.
``image_mask`` (S, S), shared by the bands, is True on good pixels.

Catalog columns (``FLUX_*``, ``SHAPE_*``, ``TYPE`` ...) are "measured": the
true model value plus the noise its inverse variance implies. Fibre fluxes
(``FIBERFLUX_*``) are the light in a 1.5″ diameter fibre at 1″ Gaussian
seeing, as in the Legacy Survey catalogs; ``FIBERTOTFLUX_*`` adds neighbours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from astrofm.plotting.modalities import image_to_rgb
from astrofm.sim import anomalies, render
from astrofm.sim.photometry import band
from astrofm.sim.profiles import SERSIC_TRUNCATION, sersic_b, truncated_sersic_b
from astrofm.sim.render import Blobs, Sersics
from astrofm.sim.tables import Table, group_ranks

PIXEL_SCALE = 0.262  # arcsec / pixel
BANDS = ("des-g", "des-r", "des-i", "des-z")
PSF_BETA = 3.5
SEEING_FWHM = np.array([1.45, 1.32, 1.22, 1.18])  # arcsec, medians
DEPTH_5SIGMA = np.array([24.7, 24.2, 23.8, 23.3])  # AB, point source
GAIN = 5000.0  # electrons per nanomaggy: sets the source Poisson noise
FIBRE_RADIUS = 0.75  # arcsec
FIBRE_SEEING_FWHM = 1.0  # arcsec
NEIGHBOUR_DENSITY = 0.0023  # field sources per arcsec², r < 24
CATALOG_SIZE = 20
#: Share of the disk light in star-forming clumps, per band (g, r, i, z).
_CLUMP_SHARE = {2: np.array([0.30, 0.22, 0.17, 0.14]), 3: np.array([0.40, 0.30, 0.25, 0.20])}
_N_CLUMPS = {2: 10, 3: 6}
_BATCH = 64


@dataclass
class Field:
    """Observing conditions and field sources of a unit, drawn once (not per batch).

    ``psf_fwhm`` and ``sky_sigma`` (N, 4) in arcsec and nanomaggies per pixel;
    ``neighbours``, ``clumps`` as component sets (positions in pixels from the centre).
    """

    psf_fwhm: np.ndarray
    sky_sigma: np.ndarray
    neighbours: Blobs
    neighbour_is_star: np.ndarray
    clumps: Blobs
    bad_columns: np.ndarray  # (N, 3): column, first row, last row; column -1 for none


def draw_field(rng: np.random.Generator, gal: Table, size: int) -> Field:
    """Seeing, depth, neighbours, clumps and bad columns of every galaxy of a unit."""
    n = len(gal["z"])
    seeing = np.exp(rng.normal(0, 0.1, (n, 1))) * SEEING_FWHM * np.exp(rng.normal(0, 0.05, (n, 4)))
    psf_fwhm = np.clip(seeing, 0.8, 2.2)
    depth = DEPTH_5SIGMA + rng.normal(0, 0.25, (n, 4))
    psf_sigma_px = psf_fwhm / 2.3548 / PIXEL_SCALE
    sky_sigma = 10 ** (-0.4 * (depth - 22.5)) / (5.0 * np.sqrt(4 * np.pi) * psf_sigma_px)

    area = (size * PIXEL_SCALE) ** 2
    counts = rng.poisson(NEIGHBOUR_DENSITY * area, n)
    m = int(counts.sum())
    obj = np.repeat(np.arange(n), counts)
    is_star = rng.random(m) < 0.3
    mag_r = 24.0 + np.log10(1 - rng.random(m) * (1 - 10 ** (-0.35 * 6))) / 0.35  # dN/dm ∝ 10^0.35m, 18–24
    g_r = np.where(is_star, rng.uniform(0.3, 1.4, m), rng.uniform(0.3, 1.8, m))
    r_i = np.where(is_star, 0.4 * g_r, rng.uniform(0.2, 0.8, m))
    i_z = np.where(is_star, 0.2 * g_r, rng.uniform(0.1, 0.5, m))
    mags = np.stack([mag_r + g_r, mag_r, mag_r - r_i, mag_r - r_i - i_z], axis=1)
    radius = np.sqrt(rng.uniform((2.0 / PIXEL_SCALE) ** 2, (size / 2) ** 2, m))
    angle = rng.uniform(0, 2 * np.pi, m)
    neighbours = Blobs(obj, 10 ** (-0.4 * (mags - 22.5)), radius * np.cos(angle), radius * np.sin(angle),
                       np.where(is_star, 0.0, rng.uniform(0.2, 0.8, m) / PIXEL_SCALE), np.zeros(m, bool))
    return Field(psf_fwhm, sky_sigma, neighbours, is_star, _draw_clumps(rng, gal),
                 _draw_bad_columns(rng, n, size))


def _draw_clumps(rng: np.random.Generator, gal: Table) -> Blobs:
    """Star-forming clumps (fluxes as shares of the disk flux) of spirals and irregulars."""
    parts = []
    for morph, count in _N_CLUMPS.items():
        rows = np.flatnonzero(gal["morphology_index"] == morph)
        k = len(rows) * count
        obj = np.repeat(rows, count)
        r_disk = gal["disk_r_arcsec"][obj] / PIXEL_SCALE
        radius = r_disk * rng.uniform(0.3, 1.8, k)
        if morph == 2:  # two logarithmic spiral arms
            pitch = np.deg2rad(rng.uniform(12, 25, len(rows)))[np.repeat(np.arange(len(rows)), count)]
            arm = np.tile(np.arange(count) % 2, len(rows))
            phi = (rng.uniform(0, 2 * np.pi, len(rows))[np.repeat(np.arange(len(rows)), count)]
                   + np.log(radius / r_disk) / np.tan(pitch) + np.pi * arm + rng.normal(0, 0.15, k))
        else:
            phi = rng.uniform(0, 2 * np.pi, k)
        q = gal["disk_q"][obj]
        theta = np.deg2rad(gal["position_angle_deg"][obj])
        major, minor = radius * np.cos(phi) / np.sqrt(q), radius * np.sin(phi) * np.sqrt(q)
        weight = rng.gamma(2.0, 1.0, (len(rows), count))
        weight = (weight / weight.sum(axis=1, keepdims=True)).ravel()
        parts.append(Blobs(obj, weight[:, None] * _CLUMP_SHARE[morph][None, :],
                           major * np.cos(theta) - minor * np.sin(theta), major * np.sin(theta) + minor * np.cos(theta),
                           np.maximum(0.25 * r_disk, 0.5), np.ones(k, bool)))
    return render.concat(Blobs, 4, parts)  # type: ignore[return-value]


def _draw_bad_columns(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    out = np.full((n, 3), -1, np.int64)
    bad = rng.random(n) < 0.05
    col = rng.integers(0, size, n)
    start = rng.integers(0, size // 2, n)
    out[bad] = np.stack([col, start, start + rng.integers(5, size // 2, n)], axis=1)[bad]
    return out


def central_components(gal: Table, rows: np.ndarray, offsets: np.ndarray, field: Field) -> tuple[Sersics, Blobs]:
    """Bulge, disk and clumps of galaxies ``rows``, scene index = position in ``rows``.

    ``offsets`` (N, 2) is each galaxy's true position relative to its catalog position [px].
    """
    k = len(rows)
    scene = np.arange(k)
    dx, dy = offsets[rows, 0], offsets[rows, 1]
    clump_rows = np.isin(field.clumps.obj, rows)
    where = np.searchsorted(rows, field.clumps.obj[clump_rows])
    disk_flux = gal["flux_disk"][rows] + gal["flux_lines"][rows]
    clump_share = np.zeros((k, 4))
    np.add.at(clump_share, where, field.clumps.flux[clump_rows])
    bulge_angle = np.deg2rad(gal["bulge_position_angle_deg"][rows])
    disk_angle = np.deg2rad(gal["position_angle_deg"][rows])
    sersics = Sersics(
        np.concatenate([scene, scene]),
        np.concatenate([gal["flux_bulge"][rows], disk_flux * (1 - clump_share)]),
        np.concatenate([gal["sersic_n"][rows], np.ones(k)]),
        np.concatenate([gal["bulge_r_arcsec"][rows], gal["disk_r_arcsec"][rows]]) / PIXEL_SCALE,
        np.concatenate([gal["bulge_q"][rows], gal["disk_q"][rows]]),
        np.concatenate([bulge_angle, disk_angle]),
        np.concatenate([dx, dx]), np.concatenate([dy, dy]), np.ones(2 * k, bool),
    )
    clumps = Blobs(where, field.clumps.flux[clump_rows] * disk_flux[where], field.clumps.x[clump_rows] + dx[where],
                   field.clumps.y[clump_rows] + dy[where], field.clumps.sigma[clump_rows], np.ones(len(where), bool))
    return sersics, clumps


def half_light_radius(gal: Table, band_index: int = 1) -> np.ndarray:
    """Circularized half-light radius [arcsec] of bulge + disk in one band (default r)."""
    f_bulge = gal["flux_bulge"][:, band_index]
    f_disk = gal["flux_disk"][:, band_index] + gal["flux_lines"][:, band_index]
    n = gal["sersic_n"]
    b1 = float(sersic_b(1.0))
    beta = np.array([truncated_sersic_b(float(v), SERSIC_TRUNCATION) if v != 1.0 else b1 for v in n])
    norm = special.gammainc(2 * n, beta * SERSIC_TRUNCATION ** (1 / n))
    r_b, r_d = gal["bulge_r_arcsec"], gal["disk_r_arcsec"]

    def enclosed(r: np.ndarray) -> np.ndarray:
        inner = np.minimum(r / r_b, SERSIC_TRUNCATION)
        bulge = special.gammainc(2 * n, beta * inner ** (1 / n)) / norm
        return (f_bulge * bulge + f_disk * special.gammainc(2.0, b1 * r / r_d)) / (f_bulge + f_disk)

    lo, hi = np.minimum(r_b, r_d) * 0.01, np.maximum(r_b, r_d) * SERSIC_TRUNCATION
    for _ in range(50):
        mid = np.sqrt(lo * hi)
        below = enclosed(mid) < 0.5
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.sqrt(lo * hi)


@dataclass
class Rendered:
    """Images and fibre fluxes of all galaxies of a unit (nanomaggies)."""

    image: np.ndarray  # (N, 4, S, S) float32
    model: np.ndarray  # (N, 4, S, S) float32, noiseless, all sources
    central_r: np.ndarray  # (N, S, S) float32, noiseless r-band image of the target alone
    flux_central: np.ndarray  # (N, 4) true total flux of the target (incl. AGN / ring)
    fibre_fraction: np.ndarray  # (N, 2) bulge, disk light fraction in the fibre
    fibre_other: np.ndarray  # (N, 4) other sources' flux in the fibre


def render_models(gal: Table, kinds: np.ndarray, params: Table, offsets: np.ndarray, field: Field,
                  size: int) -> Rendered:
    """Noiseless images of every galaxy of a unit (``image`` left empty), in batches of 64 grouped by
    FFT padding."""
    n = len(gal["z"])
    out = Rendered(np.empty((n, 4, size, size), np.float32), np.empty((n, 4, size, size), np.float32),
                   np.empty((n, size, size), np.float32), np.empty((n, 4)), np.empty((n, 2)), np.empty((n, 4)))
    for start in range(0, n, _BATCH):
        _render_batch(gal, kinds, params, offsets, field, size, np.arange(start, min(start + _BATCH, n)), out)
    return out


def add_noise(rendered: Rendered, field: Field, noise_rng: Callable[[int], np.random.Generator]) -> None:
    """Fill ``rendered.image`` with the models plus sky and source Poisson noise.

    ``noise_rng(batch_index)`` gives the generator of one batch of 64 galaxies, so
    the result does not depend on how units are spread over processes.
    """
    for batch, start in enumerate(range(0, len(rendered.model), _BATCH)):
        rows = slice(start, start + _BATCH)
        model = rendered.model[rows]
        sky = field.sky_sigma[rows][:, :, None, None].astype(np.float32)
        sigma = np.sqrt(sky**2 + np.maximum(model, 0) / GAIN)
        rendered.image[rows] = model + sigma * noise_rng(batch).standard_normal(model.shape, dtype=np.float32)


def _render_batch(gal: Table, kinds: np.ndarray, params: Table, offsets: np.ndarray, field: Field, size: int,
                  rows: np.ndarray, out: Rendered) -> None:
    sersics, clumps = central_components(gal, rows, offsets, field)
    extra_s, extra_b, extra_r = anomalies.galaxy_components(kinds, params, gal, rows, PIXEL_SCALE, size)
    in_rows = np.zeros(len(gal["z"]), bool)
    in_rows[rows] = True
    neighbours = render.select(field.neighbours, in_rows, np.cumsum(in_rows) - 1)
    sersics = render.concat(Sersics, 4, [sersics, extra_s])
    blobs = render.concat(Blobs, 4, [clumps, extra_b, neighbours])
    psf_px = field.psf_fwhm[rows] / PIXEL_SCALE
    factors = render.pad_factors(size, render.extent(sersics, len(rows)), psf_px.max(axis=1))
    fibre = (FIBRE_RADIUS / PIXEL_SCALE, FIBRE_SEEING_FWHM / 2.3548 / PIXEL_SCALE)
    for factor in np.unique(factors):
        group = factors == factor
        index = np.cumsum(group) - 1
        grid = render.fourier_grid(size, float(factor))
        part_s, part_b, part_r = (render.select(p, group, index) for p in (sersics, blobs, extra_r))
        central, others, fraction = render.scene_transforms(grid, int(group.sum()), 4, part_s, part_b,
                                                            part_r, aperture=fibre)  # type: ignore[arg-type]
        psf = render.moffat_psf(grid, psf_px[group], PSF_BETA)
        targets = rows[group]
        out.flux_central[targets] = central[:, :, 0, 0].real
        crowded = np.unique(np.concatenate([p.obj[~p.central] for p in (part_s, part_b, part_r)]))
        out.fibre_other[targets] = 0.0
        out.fibre_other[targets[crowded]] = render.aperture_flux(grid, others[crowded], *fibre)
        others_r = render.to_images(grid, others[crowded, 1] * psf[crowded, 1])
        central[crowded] += others[crowded]
        central *= psf
        out.model[targets] = render.to_images(grid, central)
        out.central_r[targets] = out.model[targets, 1]
        out.central_r[targets[crowded]] -= others_r
        n_group = int(group.sum())
        out.fibre_fraction[targets, 0] = fraction[:n_group]  # central bulge rows come first, then disks
        out.fibre_fraction[targets, 1] = fraction[n_group:2 * n_group]


def _tractor_type(gal: Table, r_half: np.ndarray, kinds: np.ndarray, params: Table) -> tuple[np.ndarray, np.ndarray]:
    """Tractor-like ``TYPE`` (S3) and ``SERSIC`` index of each target."""
    bt = gal["bt_r"]
    agn_dominated = (kinds == b"qso") & (params["agn_flux"][:, 1] > gal["flux_r"])
    kind = np.select([agn_dominated | (r_half < 0.2), (r_half < 0.5) & (bt < 0.5), bt > 0.65, bt < 0.3],
                     [b"PSF", b"REX", b"DEV", b"EXP"], b"SER").astype("S3")
    sersic = np.select([kind == b"PSF", kind == b"DEV", (kind == b"EXP") | (kind == b"REX")], [0.0, 4.0, 1.0],
                       1.0 + (gal["sersic_n"] - 1.0) * bt)
    return kind, sersic


def catalog_columns(rng: np.random.Generator, gal: Table, kinds: np.ndarray, params: Table, field: Field,
                    rendered: Rendered, size: int) -> Table:
    """Image arrays, masks, previews and Tractor-like catalog columns of the Legacy Survey dataset.

    Modifies ``rendered.image`` in place (artefacts). Returns MMU column arrays.
    """
    n = len(gal["z"])
    image = rendered.image
    sky = field.sky_sigma
    psf_sigma_px = field.psf_fwhm / 2.3548 / PIXEL_SCALE
    mask = np.ones((n, size, size), bool)
    for i in np.flatnonzero(field.bad_columns[:, 0] >= 0):
        col, first, last = field.bad_columns[i]
        mask[i, first:last, col] = False
    ivar = np.broadcast_to((1.0 / sky**2).astype(np.float32)[:, :, None, None], image.shape).copy()
    anomalies.apply_artefacts(kinds, params, np.arange(n), image, mask, ivar, sky, psf_sigma_px)
    ivar *= mask[:, None]

    r_half = half_light_radius(gal)
    flux_true = rendered.flux_central
    n_eff = 4 * np.pi * (psf_sigma_px**2 + (r_half[:, None] / 1.1774 / PIXEL_SCALE) ** 2)
    flux_sigma = np.sqrt(sky**2 * n_eff + np.maximum(flux_true, 0) / GAIN)
    flux = flux_true + flux_sigma * rng.standard_normal((n, 4))
    agn = np.where((kinds == b"qso")[:, None], params["agn_flux"], 0.0)
    wise_true = gal["flux_wise"] + np.where((kinds == b"qso")[:, None], 3.0 * agn[:, 1:2] * [1.0, 1.6, 3.0, 5.0], 0)
    wise_sigma = np.array([1.5, 3.0, 60.0, 400.0]) * np.exp(rng.normal(0, 0.2, (n, 1)))
    wise = wise_true + wise_sigma * rng.standard_normal((n, 4))
    fibre_true = (gal["flux_bulge"] * rendered.fibre_fraction[:, :1]
                  + (gal["flux_disk"] + gal["flux_lines"]) * rendered.fibre_fraction[:, 1:] + 0.79 * agn)
    scale = np.clip(flux / np.maximum(flux_true, 1e-6), 0.0, 3.0)
    kind, sersic = _tractor_type(gal, r_half, kinds, params)
    snr_r = flux_true[:, 1] / flux_sigma[:, 1]
    shape_r = np.where(kind == b"PSF", 0.0, r_half * np.exp(rng.normal(0, 1, n) * (0.03 + 1.0 / snr_r)))
    bulge_dominated = gal["bt_r"] > 0.5
    q = np.where(bulge_dominated, gal["bulge_q"], gal["disk_q"])
    theta = np.deg2rad(np.where(bulge_dominated, gal["bulge_position_angle_deg"], gal["position_angle_deg"]))
    ellipticity = (1 - q) / (1 + q)
    e1 = ellipticity * np.cos(2 * theta) + rng.normal(0, 1, n) * (0.02 + 0.5 / snr_r)
    e2 = ellipticity * np.sin(2 * theta) + rng.normal(0, 1, n) * (0.02 + 0.5 / snr_r)
    psf_kind = kind == b"PSF"
    columns: Table = {
        "image_array": image,
        "image_ivar": ivar,
        "image_mask": mask,
        "image_band": np.tile(np.array([b.encode() for b in BANDS], dtype="S5"), (n, 1)),
        "image_psf_fwhm": field.psf_fwhm.astype(np.float32),
        "image_scale": np.full((n, 4), PIXEL_SCALE, np.float32),
        "EBV": gal["ebv"].astype(np.float32),
        "TYPE": kind,
        "SERSIC": sersic.astype(np.float32),
        "SHAPE_R": shape_r.astype(np.float32),
        "SHAPE_E1": np.where(psf_kind, 0.0, np.clip(e1, -0.99, 0.99)).astype(np.float32),
        "SHAPE_E2": np.where(psf_kind, 0.0, np.clip(e2, -0.99, 0.99)).astype(np.float32),
    }
    for j, b in enumerate("GRIZ"):
        columns[f"FLUX_{b}"] = flux[:, j].astype(np.float32)
        columns[f"FLUX_IVAR_{b}"] = (1.0 / flux_sigma[:, j] ** 2).astype(np.float32)
        columns[f"FIBERFLUX_{b}"] = (fibre_true[:, j] * scale[:, j]).astype(np.float32)
        columns[f"FIBERTOTFLUX_{b}"] = (fibre_true[:, j] * scale[:, j] + rendered.fibre_other[:, j]).astype(np.float32)
        coefficient = band(BANDS[j]).extinction_coefficient
        columns[f"MW_TRANSMISSION_{b}"] = (10 ** (-0.4 * coefficient * gal["ebv"])).astype(np.float32)
    for j in range(4):
        columns[f"FLUX_W{j + 1}"] = wise[:, j].astype(np.float32)
        columns[f"FLUX_IVAR_W{j + 1}"] = (1.0 / wise_sigma[:, j] ** 2).astype(np.float32)
    columns.update(_cutout_catalog(rng, kinds, params, field, flux, kind, shape_r, e1, e2, size))
    columns.update(_previews(image, rendered, sky))
    return columns


def _cutout_catalog(rng: np.random.Generator, kinds: np.ndarray, params: Table, field: Field, flux: np.ndarray,
                    kind: np.ndarray, shape_r: np.ndarray, e1: np.ndarray, e2: np.ndarray, size: int) -> Table:
    """``catalog_*`` (N, 20): the 20 brightest sources in each cutout (target included), zero-padded."""
    n = len(kind)
    centre = size // 2
    nb = field.neighbours
    obj = [np.arange(n), nb.obj]
    fluxes = [flux, nb.flux * (1 + 0.05 * rng.standard_normal(nb.flux.shape))]
    types = [kind, np.where(field.neighbour_is_star, b"PSF", b"REX").astype("S3")]
    radii = [shape_r, nb.sigma * 1.1774 * PIXEL_SCALE]
    ell1, ell2 = [e1, np.zeros(len(nb.obj))], [e2, np.zeros(len(nb.obj))]
    xs, ys = [np.full(n, float(centre)), centre + nb.x], [np.full(n, float(centre)), centre + nb.y]
    for i in np.flatnonzero(kinds != b""):
        name = kinds[i]
        if name == b"merger":
            offset = params["merger_offset"][i] / PIXEL_SCALE
            angle = params["merger_angle"][i]
            companion = flux[i] * params["merger_ratio"][i]
            extra = (companion, b"EXP" if params["merger_n"][i] == 1 else b"DEV", params["merger_size"][i],
                     centre + offset * np.cos(angle), centre + offset * np.sin(angle))
        elif name == b"artefact" and params["artefact_star"][i]:
            star = 10 ** (-0.4 * (params["artefact_star_mag"][i] - 22.5)) * np.array([0.8, 1.0, 1.1, 1.15])
            x, y = params["artefact_star_xy"][i] * size
            extra = (star, b"PSF", 0.0, centre + x, centre + y)
        else:
            continue
        obj.append(np.array([i]))
        fluxes.append(extra[0][None])
        types.append(np.array([extra[1]], "S3"))
        radii.append(np.array([extra[2]]))
        ell1.append(np.zeros(1))
        ell2.append(np.zeros(1))
        xs.append(np.array([extra[3]]))
        ys.append(np.array([extra[4]]))
    obj_all = np.concatenate(obj)
    flux_all = np.concatenate(fluxes)
    order = np.lexsort((-flux_all[:, 1], obj_all))  # by scene, brightest first
    rank = group_ranks(obj_all[order])
    keep = rank < CATALOG_SIZE
    target = (obj_all[order][keep], rank[keep])
    pick = order[keep]
    out: Table = {}
    for j, b in enumerate("GRIZ"):
        out[f"catalog_FLUX_{b}"] = _scatter(n, target, flux_all[pick, j], np.float32)
    out["catalog_TYPE"] = _scatter(n, target, np.concatenate(types)[pick], "S3")
    for name, values in (("SHAPE_R", radii), ("SHAPE_E1", ell1), ("SHAPE_E2", ell2), ("X", xs), ("Y", ys)):
        out[f"catalog_{name}"] = _scatter(n, target, np.concatenate(values)[pick], np.float32)
    return out


def _scatter(n: int, target: tuple[np.ndarray, np.ndarray], values: np.ndarray, dtype: object) -> np.ndarray:
    out = np.zeros((n, CATALOG_SIZE), dtype=dtype)
    out[target] = values
    return out


def _previews(image: np.ndarray, rendered: Rendered, sky: np.ndarray) -> Table:
    """``image_rgb`` and ``blobmodel`` (N, S, S, 3) uint8 previews and ``object_mask`` (N, S, S) uint8.

    ``object_mask``: 1 where the target's noiseless r-band light exceeds the sky
    noise, 2 where other sources' light does and outshines the target, else 0.
    """
    n, _, size, _ = image.shape
    rgb = np.empty((n, size, size, 3), np.uint8)
    blob = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        rgb[i] = np.round(image_to_rgb(image[i], BANDS) * 255).astype(np.uint8)
        blob[i] = np.round(image_to_rgb(rendered.model[i], BANDS) * 255).astype(np.uint8)
    threshold = sky[:, 1, None, None]
    other = rendered.model[:, 1] - rendered.central_r
    object_mask = np.where(rendered.central_r > threshold, 1, 0)
    object_mask = np.where((other > threshold) & (other > rendered.central_r), 2, object_mask).astype(np.uint8)
    return {"image_rgb": rgb, "blobmodel": blob, "object_mask": object_mask}
