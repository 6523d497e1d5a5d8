"""Labelled anomalies (~1% of objects): who is anomalous, and what that does to each modality.

Galaxies (:data:`GALAXY_TYPES`):

- ``lens_arc``: a blue background source at z_s 0.8–1.5 lensed into arcs on the
  Einstein radius (1.2–2.5″); its [O II] 3727 line enters the fibre spectrum;
- ``merger``: a companion galaxy (flux ratio 0.3–1, 1–2.5 r_half away, at least
  1.6–4″) with a blue tidal tail; part of its light enters the fibre;
- ``ring``: a blue star-forming ring at 2–3 disk radii (2–3″ at least, 4″ at most, inside the cutout);
- ``qso``: a broad-line AGN: a point source (power law f_ν ∝ ν^-0.5, hot dust
  making W1−W2 red) and broad Balmer and Mg II lines (FWHM 3000–7000 km/s);
- ``artefact``: a satellite trail in one band, or a saturated star with a bleed trail.

Stars (:data:`STAR_TYPES`): ``microlensing`` (a Paczyński bump on a constant
star), ``flare`` (an M dwarf with flares and Hα emission), and
``spectrum_mismatch`` (a light curve and metadata of one class, the spectrum of
a star of another class). Microlensing and flare stars belong to no AstroM3 class.

Rings, merger companions and lensed arcs are placed outside the seeing disc (1–1.3″ FWHM) even of
a small host; tied to the host's size alone (0.3–0.8″ at r ≈ 21), most fell inside it. Most hosts
are faint, so a ring stays near the sky noise per pixel and a companion is a faint second nucleus: a
supervised pixel classifier finds few of them either way (``benchmarks.science.anomaly_visibility``).
Only where the extra light goes depends on these radii, not how much there is, so a normal object's
data do not depend on them.

Anomaly types live in the truth catalog's separate anomaly table, never among
the normal labels.
"""

from __future__ import annotations

import numpy as np

from astrofm.sim.photometry import mag_to_nanomaggies, nanomaggies_to_flambda
from astrofm.sim.render import Blobs, Rings, Sersics, concat
from astrofm.sim.tables import Table

_C_KMS = 2.99792458e5

GALAXY_TYPES = ("lens_arc", "merger", "ring", "qso", "artefact")
STAR_TYPES = ("microlensing", "flare", "spectrum_mismatch")
#: Broad AGN lines: rest wavelength [Å] and flux relative to broad Hβ.
_BROAD_LINES = ((2798.0, 1.6), (4101.7, 0.25), (4340.5, 0.45), (4861.3, 1.0), (6562.8, 3.1))
#: Relative flux per band (g, r, i, z) of a blue, flat-f_ν source.
_BLUE = np.array([1.15, 1.0, 0.92, 0.85])


def assign(rng: np.random.Generator, n: int, fraction: float, types: tuple[str, ...]) -> np.ndarray:
    """Anomaly type per object (bytes, ``b""`` for normal objects), ~``fraction`` anomalous."""
    flagged = rng.random(n) < fraction
    kind = rng.integers(0, len(types), size=n)
    names = np.array([t.encode() for t in types] + [b""], dtype="S20")
    return names[np.where(flagged, kind, len(types))]


def galaxy_parameters(rng: np.random.Generator, gal: Table, kinds: np.ndarray) -> Table:
    """Anomaly parameters of every galaxy (drawn for all, used where ``kinds`` says).

    Fluxes in nanomaggies per band (g, r, i, z); angles in radians; lengths in arcsec.
    """
    n = len(kinds)
    flux = np.stack([gal[f"flux_{b}"] for b in "griz"], axis=1)
    host_r = np.maximum(gal["disk_r_arcsec"], gal["bulge_r_arcsec"])
    agn_r = flux[:, 1] * rng.uniform(0.5, 3.0, n)
    agn_slope = (np.array([4887.0, 6469.0, 7847.0, 9196.0]) / 6469.0) ** 0.5  # f_ν ∝ ν^-0.5
    return {
        "lens_theta_e": rng.uniform(1.2, 2.5, n),
        "lens_source_z": rng.uniform(0.8, 1.5, n),
        "lens_flux": (flux[:, 1] * 10 ** (-0.4 * rng.uniform(0.8, 2.5, n)))[:, None] * _BLUE,
        "lens_phase": rng.uniform(0, 2 * np.pi, (n, 2)),
        "lens_span": rng.uniform(0.6, 2.2, (n, 2)),
        "merger_ratio": rng.uniform(0.3, 1.0, n),
        "merger_offset": rng.uniform(1.0, 2.5, n) * np.maximum(host_r, 1.6),
        "merger_angle": rng.uniform(0, 2 * np.pi, n),
        "merger_n": np.where(rng.random(n) < 0.5, 1.0, 4.0),
        "merger_size": host_r * rng.uniform(0.5, 1.0, n),
        "merger_q": rng.uniform(0.4, 1.0, n),
        "merger_tail_curl": rng.uniform(-1.2, 1.2, n),
        "ring_radius": np.minimum(rng.uniform(2.0, 3.0, n) * np.maximum(gal["disk_r_arcsec"], 1.0), 4.0),
        "ring_flux": (flux * rng.uniform(0.3, 0.8, n)[:, None]) * _BLUE / _BLUE[1],
        "agn_flux": agn_r[:, None] * agn_slope,
        "agn_fwhm_kms": rng.uniform(3000.0, 7000.0, n),
        "artefact_star": rng.random(n) < 0.5,
        "artefact_band": rng.integers(0, 4, n),
        "artefact_angle": rng.uniform(0, np.pi, n),
        "artefact_offset": rng.uniform(-0.3, 0.3, n),
        "artefact_strength": rng.uniform(5.0, 30.0, n),
        "artefact_star_mag": rng.uniform(11.0, 14.0, n),
        "artefact_star_xy": rng.uniform(0.15, 0.4, (n, 2)) * np.where(rng.random((n, 2)) < 0.5, -1, 1),
    }


def galaxy_components(kinds: np.ndarray, params: Table, gal: Table, rows: np.ndarray, pixel_scale: float,
                      size: int) -> tuple[Sersics, Blobs, Rings]:
    """Extra image components of the anomalous galaxies among ``rows`` (indices into the unit).

    Scene indices in the returned sets are positions within ``rows``; lengths in pixels.
    """
    sersics: list[Sersics] = []
    blobs: list[Blobs] = []
    rings: list[Rings] = []
    for scene, i in enumerate(rows):
        kind = kinds[i].decode()
        if kind == "lens_arc":
            theta = params["lens_theta_e"][i] / pixel_scale
            angles = np.concatenate([phase + np.linspace(-span / 2, span / 2, 9)
                                     for phase, span in zip(params["lens_phase"][i], params["lens_span"][i])])
            weight = np.concatenate([np.hanning(11)[1:-1], 0.6 * np.hanning(11)[1:-1]])
            blobs.append(_blobs(scene, params["lens_flux"][i][None] * (weight / weight.sum())[:, None],
                                theta * np.cos(angles), theta * np.sin(angles), 0.7, central=False))
        elif kind == "merger":
            offset = params["merger_offset"][i] / pixel_scale
            angle = params["merger_angle"][i]
            cx, cy = offset * np.cos(angle), offset * np.sin(angle)
            companion = np.array([gal[f"flux_{b}"][i] for b in "griz"]) * params["merger_ratio"][i]
            sersics.append(Sersics(np.array([scene]), companion[None], params["merger_n"][i:i + 1],
                                   params["merger_size"][i:i + 1] / pixel_scale, params["merger_q"][i:i + 1],
                                   np.array([angle + 1.0]), np.array([cx]), np.array([cy]), np.zeros(1, bool)))
            t = np.linspace(0.3, 1.6, 8)
            curl = params["merger_tail_curl"][i]
            tail = np.repeat(0.12 / len(t) * companion[None] * _BLUE / _BLUE[1], len(t), axis=0)
            blobs.append(_blobs(scene, tail, cx + offset * t * np.cos(angle + curl * t),
                                cy + offset * t * np.sin(angle + curl * t), 2.0, central=False))
        elif kind == "ring":
            radius = params["ring_radius"][i] / pixel_scale
            rings.append(Rings(np.array([scene]), params["ring_flux"][i][None], np.array([radius]),
                               np.array([0.15 * radius]), gal["disk_q"][i:i + 1],
                               np.deg2rad(gal["position_angle_deg"][i:i + 1]), np.zeros(1), np.zeros(1),
                               np.ones(1, bool)))
        elif kind == "qso":
            blobs.append(_blobs(scene, params["agn_flux"][i][None], np.zeros(1), np.zeros(1), 0.0, central=True))
        elif kind == "artefact" and params["artefact_star"][i]:
            star = mag_to_nanomaggies(params["artefact_star_mag"][i]) * np.array([0.8, 1.0, 1.1, 1.15])
            x, y = params["artefact_star_xy"][i] * size
            blobs.append(_blobs(scene, star[None], np.array([x]), np.array([y]), 0.0, central=False))
    return concat(Sersics, 4, sersics), concat(Blobs, 4, blobs), concat(Rings, 4, rings)  # type: ignore[return-value]


def _blobs(scene: int, flux: np.ndarray, x: np.ndarray, y: np.ndarray, sigma: float, *, central: bool) -> Blobs:
    k = len(x)
    return Blobs(np.full(k, scene), flux, np.asarray(x, float), np.asarray(y, float), np.full(k, sigma),
                 np.full(k, central))


def apply_artefacts(kinds: np.ndarray, params: Table, rows: np.ndarray, images: np.ndarray, mask: np.ndarray,
                    ivar: np.ndarray, sky_sigma: np.ndarray, psf_sigma_px: np.ndarray) -> None:
    """Satellite trails and saturation of the ``artefact`` galaxies among ``rows``, in place.

    ``images``/``ivar`` (n, B, S, S) [nanomaggies], ``mask`` (n, S, S) True = good,
    ``sky_sigma`` (n, B) per-pixel noise, ``psf_sigma_px`` (n, B).
    """
    size = images.shape[-1]
    yy, xx = np.mgrid[0:size, 0:size] - size // 2
    for scene, i in enumerate(rows):
        if kinds[i] != b"artefact":
            continue
        if params["artefact_star"][i]:
            level = 150.0  # nanomaggies per pixel at saturation
            saturated = (images[scene] > level).any(axis=0)
            columns = np.flatnonzero(saturated.any(axis=0))
            for col in columns:
                rows_sat = np.flatnonzero(saturated[:, col])
                bleed = int(2 + images[scene, :, rows_sat, col].sum() / level / 20)
                lo, hi = max(rows_sat.min() - bleed, 0), min(rows_sat.max() + bleed + 1, size)
                saturated[lo:hi, col] = True
            images[scene][:, saturated] = level
            mask[scene][saturated] = False
            ivar[scene][:, saturated] = 0.0
        else:
            b = int(params["artefact_band"][i])
            angle = params["artefact_angle"][i]
            distance = xx * np.sin(angle) - yy * np.cos(angle) - params["artefact_offset"][i] * size
            trail = np.exp(-0.5 * (distance / psf_sigma_px[scene, b]) ** 2)
            images[scene, b] += (params["artefact_strength"][i] * sky_sigma[scene, b] * trail).astype(np.float32)




def _line(wave: np.ndarray, flux: float, centre: float, sigma: float) -> np.ndarray:
    return flux / (sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((wave - centre) / sigma) ** 2)


def galaxy_spectrum(kinds: np.ndarray, params: Table, gal: Table, wave: np.ndarray) -> np.ndarray:
    """Extra noiseless in-fibre flux (N, L) [1e-17 erg/s/cm²/Å] of QSO and lens galaxies at ``wave`` [Å].

    QSO: the AGN point source (79% of it in a 1.5″ fibre at 1″ seeing) with a
    broad Hβ of rest equivalent width 80 Å and the other broad lines scaled to it.
    Lens: the [O II] doublet (rest EW 40 Å) of the 15% of the arcs in the fibre.
    Merger companions are added by the caller (a scaled copy of the host).
    """
    extra = np.zeros((len(kinds), len(wave)))
    for i in np.flatnonzero(kinds == b"qso"):
        z = gal["z"][i]
        agn_r = 0.79 * params["agn_flux"][i][1]
        extra[i] = nanomaggies_to_flambda(agn_r, wave) * (wave / 6469.0) ** 0.5
        h_beta_obs = 4861.3 * (1 + z)
        h_beta = 80.0 * (1 + z) * nanomaggies_to_flambda(agn_r, h_beta_obs) * (h_beta_obs / 6469.0) ** 0.5
        sigma_v = params["agn_fwhm_kms"][i] / 2.3548 / _C_KMS
        for rest, ratio in _BROAD_LINES:
            extra[i] += _line(wave, ratio * h_beta, rest * (1 + z), rest * (1 + z) * sigma_v)
        for rest, ratio in ((5006.84, 0.3), (4958.91, 0.1)):
            extra[i] += _line(wave, ratio * h_beta, rest * (1 + z), rest * (1 + z) * 250.0 / _C_KMS + 0.5)
    for i in np.flatnonzero(kinds == b"lens_arc"):
        z_s = params["lens_source_z"][i]
        total = 40.0 * (1 + z_s) * nanomaggies_to_flambda(0.15 * params["lens_flux"][i][1], 3727.4 * (1 + z_s))
        for rest, share in ((3726.03, 0.43), (3728.82, 0.57)):
            extra[i] += _line(wave, share * total, rest * (1 + z_s), rest * (1 + z_s) * 60.0 / _C_KMS + 0.5)
    return extra


def merger_fibre_fraction(params: Table) -> np.ndarray:
    """Fraction of the companion's light inside the fibre (Gaussian fall-off with its offset)."""
    return params["merger_ratio"] * 0.5 * np.exp(-((params["merger_offset"] / 1.0) ** 2))
