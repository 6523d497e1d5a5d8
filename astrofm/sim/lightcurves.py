"""ASAS-SN-like light curves: cadence with seasonal gaps, class light-curve shapes, photometric noise.

Cadence: V band MJD 56000–58450 (2012–2018), g band 58000–60300 (2017–2023),
as ASAS-SN's two eras. A star is observed on a night when its solar elongation
exceeds 55° (seasonal gaps), with a per-night chance (weather, scheduling) of
0.22 in V and 0.32 in g, from one of four sites at different longitudes (so
daily aliases are broken), ~300 and ~400 epochs over the eras.

Shapes (magnitude offsets Δm >= 0 from maximum light, peak-to-peak = the
star's V amplitude): EW contact binaries (cos 4πφ, slightly unequal minima),
EB (unequal minima), EA (narrow Gaussian eclipses, flat maxima), RRAB and
HADS (fast rise, slow decline), RRC (near-sinusoidal), DSCT (two modes),
Mira (skewed, cycle-to-cycle changes), SR (semi-regular: wandering phase and
amplitude), ROT (spots that grow and decay). Amplitudes in g are larger for
pulsators (×1.25). Anomalies: microlensing (achromatic Paczyński bump), flares.

Fluxes in mJy (AB: 3631 Jy at magnitude 0), errors
sqrt((1% f)² + σ_sky²) with 5σ limits V = 17.5, g = 18.0, and 0.5% outliers.
"""

from __future__ import annotations

import numpy as np

from astrofm.sim.tables import Table, group_ranks

#: Band -> (first MJD, last MJD, nightly visit probability, 5σ limiting magnitude).
ERAS = {"V": (56000.0, 58450.0, 0.22, 17.5), "g": (58000.0, 60300.0, 0.32, 18.0)}
BAND_NAMES = {"V": b"asassn-V", "g": b"asassn-g"}
SITES = np.array([0.0, 0.30, 0.55, 0.80])  # fractional-day offsets of the observatories
_PHASE_POINTS = 256
_G_RATIO = {"RRAB": 1.25, "RRC": 1.25, "HADS": 1.25, "DSCT": 1.25, "M": 1.2, "SR": 1.2, "ROT": 1.15}
_OBLIQUITY = np.deg2rad(23.439)


def mjy(mag: np.ndarray) -> np.ndarray:
    """Flux [mJy] of an AB magnitude."""
    return 3631e3 * 10 ** (-0.4 * np.asarray(mag))


def _ecliptic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ecliptic longitude and latitude [rad] of equatorial (ra, dec) [deg]."""
    a, d = np.deg2rad(ra), np.deg2rad(dec)
    sin_beta = np.sin(d) * np.cos(_OBLIQUITY) - np.cos(d) * np.sin(_OBLIQUITY) * np.sin(a)
    lam = np.arctan2(np.sin(a) * np.cos(_OBLIQUITY) + np.tan(d) * np.sin(_OBLIQUITY), np.cos(a))
    return lam, np.arcsin(sin_beta)


def cadence(rng: np.random.Generator, ra: np.ndarray, dec: np.ndarray, band: str) -> tuple[np.ndarray, np.ndarray]:
    """Observation epochs of every star in one band: (star index (M,), MJD (M,)), sorted by star then time."""
    start, stop, chance, _ = ERAS[band]
    nights = np.arange(start, stop)
    lam, beta = _ecliptic(ra, dec)
    sun = np.deg2rad(280.460 + 0.9856474 * (nights - 51544.5))
    elongation = np.arccos(np.cos(beta)[:, None] * np.cos(lam[:, None] - sun[None, :]))
    visit = (elongation > np.deg2rad(55.0)) & (rng.random((len(ra), len(nights))) < chance)
    star, night = np.nonzero(visit)
    time = nights[night] + SITES[rng.integers(0, len(SITES), len(night))] + rng.uniform(-0.12, 0.12, len(night))
    order = np.lexsort((time, star))  # site offsets and jitter can put a visit after the next night's
    return star[order], time[order]


def _skewed(rise: np.ndarray, harmonics: int) -> np.ndarray:
    """Phase curves (N, P) in [0, 1] (0 = maximum light): a fast rise over ``rise`` of the
    cycle and a slow decline, smoothed to ``harmonics`` Fourier terms."""
    phase = np.arange(_PHASE_POINTS) / _PHASE_POINTS
    r = rise[:, None]
    brightness = np.where(phase < r, phase / r, (1 - phase) / (1 - r))
    spectrum = np.fft.rfft(brightness, axis=1)
    spectrum[:, harmonics + 1:] = 0
    smooth = np.fft.irfft(spectrum, _PHASE_POINTS, axis=1)
    low, high = smooth.min(axis=1, keepdims=True), smooth.max(axis=1, keepdims=True)
    return (high - smooth) / (high - low)


def _wrap(phase: np.ndarray) -> np.ndarray:
    return (phase + 0.5) % 1.0 - 0.5


def phase_templates(rng: np.random.Generator, stars: Table) -> np.ndarray:
    """Per-star V-band shapes Δm(φ) (N, 256) [mag], 0 at maximum light, peak-to-peak = amplitude_v."""
    n = len(stars["class"])
    cls = stars["class"]
    phase = np.arange(_PHASE_POINTS)[None, :] / _PHASE_POINTS
    shape = np.zeros((n, _PHASE_POINTS))
    two = 0.5 * (1 - np.cos(4 * np.pi * phase))
    one = 0.5 * (1 - np.cos(2 * np.pi * phase))
    unequal = rng.uniform(0.05, 0.2, (n, 1))
    shape = np.where((cls == b"EW")[:, None], two * (1 - unequal) + unequal * one, shape)
    shape = np.where((cls == b"EB")[:, None], 0.65 * two + 0.35 * one, shape)
    width = np.clip(0.08 * np.nan_to_num(stars["period"], nan=1.0) ** (-1 / 3), 0.02, 0.15)[:, None]
    secondary = rng.uniform(0.05, 0.6, (n, 1))
    eccentric = rng.normal(0, 0.02, (n, 1))
    eclipses = (np.exp(-0.5 * (_wrap(phase) / width) ** 2)
                + secondary * np.exp(-0.5 * (_wrap(phase - 0.5 - eccentric) / width) ** 2))
    shape = np.where((cls == b"EA")[:, None], eclipses, shape)
    for name, rise, harmonics in ((b"RRAB", (0.12, 0.2), 8), (b"HADS", (0.25, 0.35), 5), (b"M", (0.35, 0.45), 3)):
        rows = cls == name
        if rows.any():
            shape[rows] = _skewed(rng.uniform(*rise, rows.sum()), harmonics)
    shape = np.where((cls == b"RRC")[:, None], one + 0.1 * 0.5 * (1 - np.cos(4 * np.pi * phase + 1.0)), shape)
    shape = np.where((cls == b"DSCT")[:, None], one, shape)
    shape = np.where((cls == b"ROT")[:, None], one + 0.3 * 0.5 * (1 - np.cos(4 * np.pi * phase + 0.7)), shape)
    low, high = shape.min(axis=1, keepdims=True), shape.max(axis=1, keepdims=True)
    shape = (shape - low) / np.where(high > low, high - low, 1.0)
    return shape * np.nan_to_num(stars["amplitude_v"])[:, None]


def draw_modulation(rng: np.random.Generator, stars: Table) -> Table:
    """Random parameters of the non-strictly-periodic terms (second modes, wandering phases, spots)."""
    n = len(stars["class"])
    return {
        "templates": phase_templates(rng, stars),
        "mode_ratio": np.where(rng.random(n) < 0.5, rng.uniform(0.75, 0.79, n), rng.uniform(1.1, 1.5, n)),
        "mode_amplitude": rng.uniform(0.3, 0.6, n),
        "mode_phase": rng.uniform(0, 2 * np.pi, n),
        "wander_periods": rng.uniform(3.0, 15.0, (n, 3)),
        "wander_phases": rng.uniform(0, 2 * np.pi, (n, 3)),
        "spot_timescale": rng.uniform(50.0, 300.0, n),
        "spot_phase": rng.uniform(0, 2 * np.pi, n),
        "lens_peak": rng.uniform(56300.0, 60000.0, n),
        "lens_u0": rng.uniform(0.05, 0.6, n),
        "lens_te": rng.uniform(15.0, 120.0, n),
    }


def delta_mag(stars: Table, mod: Table, star: np.ndarray, time: np.ndarray) -> np.ndarray:
    """V-band Δm [mag] (relative to the mean) of stars ``star`` at MJD ``time`` (flattened points)."""
    cls = stars["class"][star]
    period = np.nan_to_num(stars["period"][star], nan=1.0)
    cycles = (time - stars["t0"][star]) / period
    amplitude = np.nan_to_num(stars["amplitude_v"][star])
    wander = np.sum(0.6 * np.sin(2 * np.pi * cycles[:, None] / mod["wander_periods"][star]
                                 + mod["wander_phases"][star]), axis=1)
    semi = cls == b"SR"
    cycles = np.where(semi, cycles + wander / (2 * np.pi), cycles)
    index = ((cycles % 1.0) * _PHASE_POINTS).astype(np.int64) % _PHASE_POINTS
    templates = mod["templates"]
    dm = templates[star, index] - templates.mean(axis=1)[star]
    dm = np.where(semi, amplitude * 0.5 * np.sin(2 * np.pi * cycles) * (1 + 0.3 * np.sin(wander)), dm)
    second = (mod["mode_amplitude"][star] * amplitude * 0.5
              * np.sin(2 * np.pi * cycles * mod["mode_ratio"][star] + mod["mode_phase"][star]))
    dm = np.where(cls == b"DSCT", dm + second, dm)
    spots = 1 + 0.4 * np.sin(2 * np.pi * time / mod["spot_timescale"][star] + mod["spot_phase"][star])
    dm = np.where(cls == b"ROT", dm * spots, dm)
    cycle_change = 1 + 0.1 * np.sin(2 * np.pi * cycles / mod["wander_periods"][star, 0])
    dm = np.where(cls == b"M", dm * cycle_change + 0.15 * np.sin(wander / 2), dm)
    return dm


def microlensing_dmag(mod: Table, star: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Achromatic Paczyński magnification of a point lens, as Δm [mag] (negative = brighter)."""
    u = np.hypot(mod["lens_u0"][star], (time - mod["lens_peak"][star]) / mod["lens_te"][star])
    return -2.5 * np.log10((u**2 + 2) / (u * np.sqrt(u**2 + 4)))


def _peak_on_observed_night(rng: np.random.Generator, star: np.ndarray, time: np.ndarray, n: int,
                            default: np.ndarray) -> np.ndarray:
    """One observed epoch per star (``default`` for stars never observed)."""
    peak = default.copy()
    if len(star):
        first = np.flatnonzero(np.r_[True, star[1:] != star[:-1]])
        counts = np.diff(np.r_[first, len(star)])
        pick = first + (rng.random(len(first)) * counts).astype(np.int64)
        peak[star[pick]] = time[pick]
    return peak


def observe(rng: np.random.Generator, stars: Table, mod: Table, kinds: np.ndarray, ra: np.ndarray,
            dec: np.ndarray, bands: tuple[str, ...], mean_mags: dict[str, np.ndarray]) -> Table:
    """The ``lightcurve`` (N, B, 3, L) [MJD, mJy, mJy] and ``lightcurve_band`` (N, B) columns.

    ``mod`` comes from :func:`draw_modulation`; ``mean_mags`` holds each band's
    mean AB magnitude per star; ``kinds`` the anomaly type per star
    (``b"microlensing"``, ``b"flare"`` or ``b""``). A microlensing peak is put
    on one of the star's observed nights (``mod["lens_peak"]`` is updated).
    """
    n = len(ra)
    epochs = [cadence(rng, ra, dec, band) for band in bands]
    mod["lens_peak"] = _peak_on_observed_night(rng, *epochs[0], n, mod["lens_peak"])
    lens, flare = kinds == b"microlensing", kinds == b"flare"
    per_band = []
    for band, (star, time) in zip(bands, epochs):
        ratio = np.array([_G_RATIO.get(c.decode(), 1.03) for c in stars["class"]]) if band == "g" else np.ones(n)
        mag = mean_mags[band][star] + ratio[star] * delta_mag(stars, mod, star, time)
        mag = np.where(lens[star], mag + microlensing_dmag(mod, star, time), mag)
        flaring = flare[star] & (rng.random(len(star)) < 0.015)
        mag = np.where(flaring, mag - rng.uniform(0.5, 3.0, len(star)) * (1.5 if band == "g" else 1.0), mag)
        flux = mjy(mag)
        sigma = np.hypot(0.01 * flux, mjy(ERAS[band][3]) / 5.0)
        flux = flux + sigma * rng.standard_normal(len(flux))
        outlier = rng.random(len(flux)) < 0.005
        flux = np.where(outlier, flux * rng.uniform(0.3, 0.9, len(flux)), flux)
        per_band.append((star, time, flux, sigma))
    length = max(1, max(int(np.bincount(s, minlength=n).max()) for s, *_ in per_band))
    curves = np.zeros((n, len(bands), 3, length))
    for b, (star, time, flux, sigma) in enumerate(per_band):
        rank = group_ranks(star)
        for k, values in enumerate((time, flux, sigma)):
            curves[star, b, k, rank] = values
    return {"lightcurve": curves,
            "lightcurve_band": np.tile(np.array([BAND_NAMES[b] for b in bands], dtype="S8"), (n, 1))}
