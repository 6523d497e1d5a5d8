"""Science checks of the simulated universe, shared by the tests and the benchmarks.

- :func:`fit_redshifts` — template cross-correlation redshifts of DESI-like spectra
  (:func:`posterior_mean_redshifts`: the squared-error-optimal estimate from the same χ² profile);
- :func:`lightcurve_features` — Lomb–Scargle periods (``astropy.timeseries``) and amplitudes;
- :func:`image_colours_and_sizes` — aperture colours and half-light radii measured on cutouts;
- :func:`spectrum_redshift_limit` / :func:`photometric_redshift_limit` — how much redshift the spectra
  and the images hold;
- :func:`galsim_render` / :func:`flux_and_half_light_radius` — GalSim reference images and
  the image statistics compared with them.

GalSim and scikit-learn are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import fft

from astrofm.errors import ConfigError
from astrofm.sim import desi, sed
from astrofm.sim.truth import load_anomalies, load_truth
from astrofm.sim.units import DATASETS

_DLN = 1e-4
_Z_MAX = 1.2
#: Press & Rybicki's extirpolation: ~10-30x faster than astropy's default on these grids.
_FASPER = {"algorithm": "fasper"}


@lru_cache(maxsize=1)
def _fit_templates() -> tuple[np.ndarray, int]:
    """Rest-frame basis on a log grid (n_templates, M) and the number of redshift shifts.

    Old and young populations, a dusty young population, and three nebular-line
    sets (Balmer + [N II] + [S II], [O II], [O III]), each unit-normalized.
    """
    ln_lo = np.log(desi.WAVE_START) - np.log1p(_Z_MAX)
    n_shift = int(np.ceil(np.log1p(_Z_MAX) / _DLN))
    n_data = int(np.ceil((np.log(desi.wavelength()[-1]) - np.log(desi.WAVE_START)) / _DLN)) + 1
    wave = np.exp(ln_lo + _DLN * np.arange(n_shift + n_data))
    old, young, _, attenuation = sed.templates().at(wave)
    lines = {
        "balmer": ("Halpha", "Hbeta", "Hgamma", "NII_6584", "NII_6548", "SII_6716", "SII_6731"),
        "oii": ("OII_3726", "OII_3729"),
        "oiii": ("OIII_5007", "OIII_4959"),
    }
    weights = {"Halpha": 2.86, "Hbeta": 1.0, "Hgamma": 0.47, "NII_6584": 1.0, "NII_6548": 0.33, "SII_6716": 0.5,
               "SII_6731": 0.35, "OII_3726": 1.0, "OII_3729": 1.3, "OIII_5007": 1.0, "OIII_4959": 0.33}
    basis = [old, young, young * 10 ** (-0.4 * attenuation)]
    for names in lines.values():
        template = np.zeros_like(wave)
        for name in names:
            centre = sed.LINES[name]
            template += weights[name] * np.exp(-0.5 * ((wave - centre) / (centre * 1.2e-4 + 0.6)) ** 2)
        basis.append(template)
    basis = np.array([b / np.sqrt(np.mean(b**2)) for b in basis])
    return basis, n_shift


def _to_log_grid(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_data = int(np.ceil((np.log(wave[-1]) - np.log(wave[0])) / _DLN)) + 1
    log_wave = np.exp(np.log(wave[0]) + _DLN * np.arange(n_data))
    index = np.clip(np.searchsorted(wave, log_wave), 1, len(wave) - 1)
    t = (log_wave - wave[index - 1]) / (wave[index] - wave[index - 1])
    f = flux[:, index - 1] * (1 - t) + flux[:, index] * t
    w = np.minimum(ivar[:, index - 1], ivar[:, index])  # a masked neighbour masks the pixel
    return f, w


def redshift_chi2(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray | None = None,
                  batch: int = 64) -> Iterator[tuple[int, np.ndarray]]:
    """χ² of the best template combination at every redshift of ``fit_redshift_grid()``, by batches of spectra:
    yields (first row of the batch, χ² (rows, redshifts)).

    For every shift on a log-λ grid (Δz/(1+z) = 1e-4, 0 <= z <= 1.2) the spectrum
    is fitted by a linear combination of the rest-frame basis; all the weighted
    correlations are computed at once with FFTs. ``mask`` True marks bad pixels
    (MMU spectrum polarity); ``ivar`` [(1e-17 erg/s/cm²/Å)^-2] weights the fit.
    """
    basis, n_shift = _fit_templates()
    n_templates, length = basis.shape
    pairs = [(a, b) for a in range(n_templates) for b in range(a, n_templates)]
    size = fft.next_fast_len(length + flux.shape[1] + 1, real=True)
    basis_ft = fft.rfft(basis, size)
    pair_ft = fft.rfft(np.array([basis[a] * basis[b] for a, b in pairs]), size)
    ivar = np.where(mask, 0.0, ivar) if mask is not None else ivar
    for start in range(0, len(flux), batch):
        f, w = _to_log_grid(wave, np.asarray(flux[start:start + batch], np.float64),
                            np.asarray(ivar[start:start + batch], np.float64))
        wf_ft = np.conj(fft.rfft(w * f, size))
        w_ft = np.conj(fft.rfft(w, size))
        # correlation at lag u: sum_j x_j T[j + u]; u = n_shift - s for a redshift shift s
        b = fft.irfft(basis_ft[None] * wf_ft[:, None], size)[..., :n_shift + 1]
        a_pairs = fft.irfft(pair_ft[None] * w_ft[:, None], size)[..., :n_shift + 1]
        a = np.empty((len(f), n_shift + 1, n_templates, n_templates))
        for k, (i, j) in enumerate(pairs):
            a[..., i, j] = a[..., j, i] = a_pairs[:, k]
        a += np.eye(n_templates) * 1e-9 * np.trace(a, axis1=-2, axis2=-1)[..., None, None]
        b = np.moveaxis(b, 1, -1)
        gain = np.einsum("nui,nui->nu", b, np.linalg.solve(a, b[..., None])[..., 0])
        yield start, np.sum(w * f**2, axis=1)[:, None] - gain


def fit_redshift_grid() -> np.ndarray:
    """The redshifts at which ``redshift_chi2`` evaluates χ² (descending, 1.2 .. 0)."""
    _, n_shift = _fit_templates()
    return np.expm1((n_shift - np.arange(n_shift + 1)) * _DLN)


def fit_redshifts(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray | None = None,
                  batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Best-fit redshifts (N,) and their minimum χ² by template cross-correlation (``redshift_chi2``)."""
    grid = fit_redshift_grid()
    best_z, best_chi2 = np.empty(len(flux)), np.empty(len(flux))
    for start, chi2 in redshift_chi2(wave, flux, ivar, mask, batch):
        u = np.argmin(chi2, axis=1)
        best_z[start:start + len(chi2)] = grid[u]
        best_chi2[start:start + len(chi2)] = chi2[np.arange(len(chi2)), u]
    return best_z, best_chi2


def posterior_mean_redshifts(wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, mask: np.ndarray | None,
                             prior_z: np.ndarray, batch: int = 64) -> np.ndarray:
    """Posterior-mean redshifts (N,): the likelihood exp(-χ²/2) of ``redshift_chi2`` times a prior, the
    histogram of ``prior_z`` (e.g. the train split's redshifts). The mean minimises the squared error, so
    its R² is the most any estimator from the spectrum alone can reach (given the templates)."""
    grid = fit_redshift_grid()
    hist, edges = np.histogram(prior_z, bins=60, range=(0.0, float(np.max(prior_z)) * 1.05))
    log_prior = np.log(np.interp(grid, 0.5 * (edges[1:] + edges[:-1]), (hist + 0.5) / hist.sum(),
                                 left=1e-9, right=1e-9))
    means = np.empty(len(flux))
    for start, chi2 in redshift_chi2(wave, flux, ivar, mask, batch):
        log_p = -0.5 * (chi2 - chi2.min(axis=1, keepdims=True)) + log_prior
        p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        means[start:start + len(chi2)] = (p @ grid) / p.sum(axis=1)
    return means


def lightcurve_features(time: np.ndarray, flux: np.ndarray, flux_err: np.ndarray, *, min_period: float = 0.03,
                        max_period: float = 1500.0) -> tuple[float, float]:
    """(period [days], amplitude [mag]) of one light curve by a coarse-to-fine Lomb–Scargle search.

    ``time`` [MJD], ``flux``, ``flux_err`` (any linear unit; several bands may be
    passed, each divided by its median). Candidates: the best long periods
    (> 5 d) on the full baseline, and the eight highest short-period peaks in the
    best-sampled 300 days (a small frequency grid). Each candidate is refined on
    the full data; the refined frequencies, their halves and doubles are then
    compared by a two-harmonic Lomb–Scargle power (``astropy.timeseries``,
    ``nterms=2``), which tells an eclipsing binary's period from half of it. The amplitude is the
    5–95% range of the flux, in magnitudes.
    """
    from astropy.timeseries import LombScargle

    baseline = float(np.ptp(time))
    single = LombScargle(time, flux, flux_err)
    long_grid = np.arange(1.0 / max_period, 0.2, 1.0 / (5 * baseline))
    long_power = single.power(long_grid, method="fast", assume_regular_frequency=True, method_kwds=_FASPER)
    candidates = [(f, 1.0 / baseline) for f in long_grid[_top_peaks(long_power, 3)]]
    window = _densest_window(time, 300.0)
    span = float(np.ptp(time[window])) or baseline
    short_grid = np.arange(0.2, 1.0 / min_period, 1.0 / (5 * span))
    short_power = LombScargle(time[window], flux[window], flux_err[window]).power(
        short_grid, method="fast", assume_regular_frequency=True, method_kwds=_FASPER)
    candidates += [(f, 1.0 / span) for f in short_grid[_top_peaks(short_power, 8)]]
    refined = []
    for f0, width in candidates:
        fine = np.arange(max(f0 - width, 1e-4), f0 + width, 1.0 / (10 * baseline))
        power = single.power(fine, method="fast", assume_regular_frequency=True, method_kwds=_FASPER)
        refined.append(fine[np.argmax(power)])
    trial = np.array([f * factor for f in refined for factor in (0.5, 1.0, 2.0)])
    power = LombScargle(time, flux, flux_err, nterms=2).power(trial, method="chi2")
    best = float(trial[np.argmax(power)])
    lo, hi = np.percentile(flux, [5, 95])
    amplitude = 2.5 * np.log10(hi / lo) if lo > 0 else np.nan
    return 1.0 / best, float(amplitude)


def _top_peaks(power: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` highest local maxima."""
    peaks = np.flatnonzero((power[1:-1] > power[:-2]) & (power[1:-1] >= power[2:])) + 1
    if not len(peaks):
        return np.array([int(np.argmax(power))])
    return peaks[np.argsort(power[peaks])[::-1][:count]]


def _densest_window(time: np.ndarray, width: float) -> np.ndarray:
    """Boolean mask of the points in the ``width``-day window holding the most points."""
    order = np.sort(time)
    counts = np.searchsorted(order, order + width) - np.arange(len(order))
    start = order[np.argmax(counts)]
    return (time >= start) & (time < start + width)


def flux_and_half_light_radius(image: np.ndarray, centre: tuple[float, float] | None = None) -> tuple[float, float]:
    """(total flux, circular half-light radius [px]) of one image about ``centre`` (x, y; default the middle)."""
    size_y, size_x = image.shape
    cx, cy = centre if centre is not None else (size_x // 2, size_y // 2)
    yy, xx = np.indices(image.shape)
    radius = np.hypot(xx - cx, yy - cy).ravel()
    order = np.argsort(radius, kind="stable")
    cumulative = np.cumsum(image.ravel()[order])
    total = float(cumulative[-1])
    return total, float(np.interp(0.5 * total, cumulative, radius[order]))


def galsim_render(n: float, half_light_radius: float, q: float, angle: float, psf_fwhm: float, size: int,
                  pixel_scale: float, beta: float = 3.5, truncation: float = 8.0) -> np.ndarray:
    """GalSim image of a unit-flux Sérsic (n != 1 truncated at ``truncation`` r_half) or exponential
    (n = 1) galaxy through a Moffat PSF, centred like :mod:`astrofm.sim.render` stamps.

    ``half_light_radius`` and ``psf_fwhm`` in arcsec, ``angle`` in radians.
    """
    import galsim

    if n == 1.0:
        profile = galsim.Exponential(half_light_radius=half_light_radius)
    else:
        profile = galsim.Sersic(n, half_light_radius=half_light_radius, trunc=truncation * half_light_radius)
    profile = profile.shear(q=q, beta=angle * galsim.radians)
    psf = galsim.Moffat(beta=beta, fwhm=psf_fwhm)
    # GalSim centres even-sized images between pixels; shift by half a pixel to the pixel centre
    image = galsim.Convolve(profile, psf).drawImage(nx=size, ny=size, scale=pixel_scale, offset=(0.5, 0.5))
    return image.array


def image_colours_and_sizes(images: np.ndarray, bands: Sequence[str], radius: float = 2.0 / 0.262) -> np.ndarray:
    """Features (N, 4): g−r, r−i, i−z aperture colours [mag] and the r-band half-light radius [px].

    Fluxes in a circular aperture of ``radius`` pixels at the centre of each
    (N, B, S, S) cutout; the radius from the growth curve within twice that.
    """
    index = [list(bands).index(b) for b in ("des-g", "des-r", "des-i", "des-z")]
    size = images.shape[-1]
    yy, xx = np.indices((size, size))
    r = np.hypot(xx - size // 2, yy - size // 2)
    aperture = (r <= radius).astype(np.float32)
    flux = np.einsum("nbyx,yx->nb", images[:, index], aperture)
    mags = -2.5 * np.log10(np.clip(flux, 1e-3, None))
    colours = mags[:, :-1] - mags[:, 1:]
    inner = r <= 2 * radius
    order = np.argsort(r[inner])
    radii = r[inner][order]
    cumulative = np.cumsum(images[:, index[1]][:, inner][:, order], axis=1)
    half = np.array([np.interp(0.5 * c[-1], c, radii) if c[-1] > 0 else 0.0 for c in cumulative])
    return np.column_stack([colours, half])


def iter_blocks(path: str | Path, columns: Sequence[str], size: int = 256) -> Iterator[dict[str, np.ndarray]]:
    """Blocks of up to ``size`` rows of ``columns`` from every shard of a dataset folder (values schema-checked)."""
    from astrofm.data.layout import discover_shards
    from astrofm.data.shard import Shard

    for file in discover_shards(path):
        shard = Shard(file)
        try:
            for start in range(0, shard.n_objects, size):
                yield shard.read(list(columns), start, min(start + size, shard.n_objects))
        finally:
            shard.close()


def read_dataset(path: str | Path, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns of every shard of a dataset folder, concatenated (values schema-checked by the reader).

    Columns whose last axis differs between shards (padded light curves) are zero-padded to the longest.
    """
    blocks = list(iter_blocks(path, columns, size=1 << 30))
    if not blocks:
        raise ConfigError(f"no objects in MMU shards under {path}")
    out = {}
    for c in columns:
        parts = [b[c] for b in blocks]
        longest = max(p.shape[-1] for p in parts) if parts[0].ndim > 1 else None
        if longest is not None:
            parts = [np.pad(p, [(0, 0)] * (p.ndim - 1) + [(0, longest - p.shape[-1])]) for p in parts]
        out[c] = np.concatenate(parts)
    return out


def _join(ids: np.ndarray, truth_ids: np.ndarray) -> np.ndarray:
    """Row in the truth table of each survey id (all must be present)."""
    order = np.argsort(truth_ids)
    position = order[np.searchsorted(truth_ids, ids, sorter=order)]
    if not np.array_equal(truth_ids[position], ids):
        raise ValueError("survey ids missing from the truth catalog")
    return position


def _normal_desi_spectra(root: Path, split: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                                        np.ndarray, np.ndarray]:
    """(truth of the galaxies, DESI-like spectra with their ``ZWARN``, truth row of each spectrum, spectra of
    normal galaxies [of ``split``])."""
    truth = load_truth(root, "galaxies", ["desi_object_id", "z", "desi_snr", "truth_id", "split"])
    anomalous = _anomalous(load_anomalies(root), truth["truth_id"])
    spectra = read_dataset(root / DATASETS["desi"],
                           ["object_id", "spectrum_flux", "spectrum_ivar", "spectrum_mask", "spectrum_lambda", "ZWARN"])
    rows = _join(spectra["object_id"], truth["desi_object_id"])
    normal = ~anomalous[rows]
    if split is not None:
        normal &= truth["split"][rows].astype(str) == split
    return truth, spectra, rows, np.flatnonzero(normal)


def secure_redshift(root: str | Path, desi_object_id: np.ndarray) -> np.ndarray:
    """Which galaxies (by DESI-like ``desi_object_id``, −1 = no spectrum) have a secure spectroscopic redshift:
    a spectrum whose redshift fit is unflagged (``ZWARN`` == 0). These are the galaxies a survey has redshift
    labels for."""
    catalog = read_dataset(Path(root) / DATASETS["desi"], ["object_id", "ZWARN"])
    secure = set(catalog["object_id"][catalog["ZWARN"] == 0].tolist())
    return np.array([int(i) in secure for i in desi_object_id])


def redshift_recovery(root: str | Path, snr_cut: float = 0.5, limit: int | None = None,
                      tolerance: float = 0.01) -> dict[str, float]:
    """Template-fit redshifts of the DESI-like spectra of normal galaxies with median S/N per pixel >= ``snr_cut``.

    Returns the fraction with |Δz|/(1+z) < ``tolerance``, the number fitted and the
    fraction of normal spectra above the cut. ``limit`` caps the number fitted.
    """
    truth, spectra, rows, normal = _normal_desi_spectra(Path(root))
    snr = truth["desi_snr"][rows[normal]]
    keep = normal[snr >= snr_cut][:limit]
    z_fit, _ = fit_redshifts(spectra["spectrum_lambda"][0].astype(np.float64), spectra["spectrum_flux"][keep],
                             spectra["spectrum_ivar"][keep], spectra["spectrum_mask"][keep])
    z_true = truth["z"][rows[keep]]
    good = np.abs(z_fit - z_true) / (1 + z_true) < tolerance
    return {"fraction": float(good.mean()), "n": len(keep), "fraction_above_cut": float(np.mean(snr >= snr_cut))}


def spectrum_redshift_limit(root: str | Path, split: str = "test") -> dict[str, float]:
    """How well redshift can be read from the DESI-like spectra alone: R² against the true redshift of the
    template fit and of the posterior mean (prior: the train split's redshifts) over the normal galaxies of
    ``split`` with a secure redshift (``ZWARN`` == 0, :func:`secure_redshift`; keys ``*_r2``) and over all
    that have a spectrum (``*_r2_all``)."""
    root = Path(root)
    truth, spectra, rows, keep = _normal_desi_spectra(root, split)
    _, _, _, train = _normal_desi_spectra(root, "train")
    arrays = (spectra["spectrum_lambda"][0].astype(np.float64), spectra["spectrum_flux"][keep],
              spectra["spectrum_ivar"][keep], spectra["spectrum_mask"][keep])
    z_fit, _ = fit_redshifts(*arrays)
    z_mean = posterior_mean_redshifts(*arrays, prior_z=truth["z"][rows[train]])
    z_true = truth["z"][rows[keep]]
    secure = spectra["ZWARN"][keep] == 0

    def r2(estimate: np.ndarray, where: np.ndarray) -> float:
        residual = np.sum((estimate[where] - z_true[where]) ** 2)
        return float(1 - residual / np.sum((z_true[where] - z_true[where].mean()) ** 2))

    everything = np.ones(len(keep), bool)
    return {"n": int(secure.sum()), "n_all": len(keep), "fraction_secure": float(secure.mean()),
            "template_fit_r2": r2(z_fit, secure), "posterior_mean_r2": r2(z_mean, secure),
            "template_fit_r2_all": r2(z_fit, everything), "posterior_mean_r2_all": r2(z_mean, everything)}


#: True shape latents a photometric-redshift bound may add to the catalog fluxes (all visible in the images).
SHAPE_COLUMNS = ("r_half_arcsec", "bulge_r_arcsec", "disk_r_arcsec", "bt_r", "sersic_n", "disk_q")


def photometric_redshift_limit(root: str | Path, split: str = "test", seed: int = 0) -> dict[str, float]:
    """How much redshift the g, r, i, z images hold: R² on the normal galaxies of ``split`` with a secure
    spectroscopic redshift (:func:`secure_redshift`, the galaxies a survey has redshift labels for) of a
    regression of true redshift trained on those of the train split (gradient-boosted trees); keys ending in
    ``_all``: the same over every normal galaxy.

    Inputs: the catalog's ``FLUX_*`` (the simulator's optimal-photometry measurement of the image, its noise
    that of a matched filter on the PSF-convolved profile: sky and source Poisson), as z magnitude and
    colours; then those plus the true, noiseless :data:`SHAPE_COLUMNS`, a generous stand-in for all the
    morphology a cutout shows; and, for reference, the noiseless fluxes. A fitted regression approaches the
    posterior mean from below, so these are estimates of the bound, not guarantees. ``catalog_flux_knn_r2``
    applies S1's zero-shot protocol (kNN, k = 64, distance-weighted, standardized) to the catalog magnitude
    and colours, as if they were an embedding.
    """
    from astrofm.downstream.probes import KNNProbe

    root = Path(root)
    bands = "GRIZ"
    catalog = read_dataset(root / DATASETS["legacysurvey"],
                           ["object_id", *(f"FLUX_{b}" for b in bands), *(f"FLUX_IVAR_{b}" for b in bands)])
    truth = load_truth(root, "galaxies", ["truth_id", "legacysurvey_object_id", "desi_object_id", "z", "split",
                                          *(f"flux_{b.lower()}" for b in bands), *SHAPE_COLUMNS])
    rows = _join(catalog["object_id"], truth["legacysurvey_object_id"])
    normal = ~_anomalous(load_anomalies(root), truth["truth_id"])[rows]
    splits = truth["split"][rows].astype(str)
    sigma = np.stack([catalog[f"FLUX_IVAR_{b}"] for b in bands], axis=1) ** -0.5

    def magnitudes(flux: np.ndarray) -> np.ndarray:  # z magnitude and g-r, r-i, i-z; floored at half the 1σ flux
        mag = 22.5 - 2.5 * np.log10(np.maximum(flux, 0.5 * sigma))
        return np.column_stack([mag[:, -1], mag[:, :-1] - mag[:, 1:]])

    measured = magnitudes(np.stack([catalog[f"FLUX_{b}"] for b in bands], axis=1))
    noiseless = magnitudes(np.stack([truth[f"flux_{b.lower()}"][rows] for b in bands], axis=1))
    with_shapes = np.column_stack([measured, *(truth[c][rows] for c in SHAPE_COLUMNS)])
    z = truth["z"][rows]
    features = {"catalog_flux_r2": measured, "catalog_flux_and_true_shapes_r2": with_shapes,
                "noiseless_flux_r2": noiseless}
    result: dict[str, float] = {}
    for suffix, sample in (("", secure_redshift(root, truth["desi_object_id"][rows])), ("_all", normal)):
        train, test = normal & sample & (splits == "train"), normal & sample & (splits == split)
        knn = KNNProbe(k=64).fit(measured[train], z[train]).score(measured[test], z[test])
        result |= {f"n{suffix}": int(test.sum()), f"n_train{suffix}": int(train.sum()),
                   f"catalog_flux_knn_r2{suffix}": float(knn)}
        result |= {f"{name}{suffix}": tree_regression_r2(x[train], z[train], x[test], z[test], seed)
                   for name, x in features.items()}
    return result


def tree_regression_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                       seed: int = 0) -> float:
    """Test R² of gradient-boosted trees (early-stopped) trained on (train_x, train_y): how well the features
    determine the target, with no assumption on the form of the relation."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=1000, learning_rate=0.03, early_stopping=True,
                                          n_iter_no_change=50, random_state=seed)
    residual = test_y - model.fit(train_x, train_y).predict(test_x)
    return float(1 - np.sum(residual**2) / np.sum((test_y - test_y.mean()) ** 2))


def _anomalous(anomalies: dict[str, np.ndarray], truth_id: np.ndarray) -> np.ndarray:
    flagged = set(anomalies["truth_id"][anomalies["is_anomaly"]].tolist())
    return np.array([int(t) in flagged for t in truth_id])


def stellar_features(root: str | Path, limit: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Per normal star: truth (class_index, period, is_periodic), the Lomb–Scargle period and
    amplitude of its light curve, and its Gaia-like metadata (``meta`` (N, F), ``meta_names``).

    ``limit`` keeps a random subset of that many stars (seeded).
    """

    root = Path(root)
    truth = load_truth(root, "stars")
    anomalous = _anomalous(load_anomalies(root), truth["truth_id"])
    curves = read_dataset(root / DATASETS["asassn"], ["object_id", "lightcurve"])
    meta_names = [n for n in _META if n]
    meta = read_dataset(root / DATASETS["gaia"], ["object_id", *meta_names])
    lc_rows = _join(curves["object_id"], truth["asassn_object_id"])
    meta_rows = _join(meta["object_id"], truth["gaia_object_id"])
    rows = np.flatnonzero(~anomalous)
    if limit is not None and limit < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
    lc_at = np.empty(len(truth["truth_id"]), np.int64)
    lc_at[lc_rows] = np.arange(len(lc_rows))
    meta_at = np.empty(len(truth["truth_id"]), np.int64)
    meta_at[meta_rows] = np.arange(len(meta_rows))
    periods, amplitudes = [], []
    for row in rows:
        time, flux, error = _stack_bands(curves["lightcurve"][lc_at[row]])
        period, amplitude = lightcurve_features(time, flux, error)
        periods.append(period)
        amplitudes.append(amplitude)
    features = np.column_stack([meta[n][meta_at[rows]] for n in meta_names]).astype(np.float64)
    return {"class_index": truth["class_index"][rows], "period_true": truth["period"][rows],
            "is_periodic": truth["is_periodic"][rows], "period": np.array(periods),
            "amplitude": np.array(amplitudes), "meta": features, "meta_names": np.array(meta_names),
            "split": truth["split"][rows].astype("S5")}


_META = ("parallax", "parallax_error", "pmra", "pmra_error", "pmdec", "pmdec_error", "ruwe", "phot_g_mean_mag",
         "phot_bp_mean_mag", "phot_rp_mean_mag", "bp_rp", "j_mag", "h_mag", "k_mag", "w1_mag", "w2_mag", "w3_mag",
         "w4_mag", "l", "b", "ebv")


def _stack_bands(curve: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One light curve (B, 3, L) as flat arrays, each band's flux and error divided by its median flux."""
    times, fluxes, errors = [], [], []
    for band in curve:
        real = band[2] > 0
        if real.sum() < 5:
            continue
        scale = np.median(band[1, real])
        times.append(band[0, real])
        fluxes.append(band[1, real] / scale)
        errors.append(band[2, real] / abs(scale))
    return np.concatenate(times), np.concatenate(fluxes), np.concatenate(errors)


def period_recovery(features: dict[str, np.ndarray], tolerance: float = 0.01) -> dict[str, float]:
    """Fraction of periodic stars whose Lomb–Scargle period is within ``tolerance`` of the truth."""
    periodic = features["is_periodic"]
    error = np.abs(features["period"][periodic] / features["period_true"][periodic] - 1)
    return {"fraction": float(np.mean(error < tolerance)), "n": int(periodic.sum())}


def star_classification(features: dict[str, np.ndarray], seed: int = 0, folds: int = 5) -> dict[str, float]:
    """Cross-validated random-forest accuracy from metadata alone, and with (log period, amplitude) added."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    labels = features["class_index"]
    counts = np.bincount(labels)
    keep = counts[labels] >= folds
    meta = np.nan_to_num(features["meta"][keep], nan=-99.0)
    lc = np.column_stack([np.log10(features["period"][keep]), np.nan_to_num(features["amplitude"][keep])])
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    out = {}
    for name, x in (("metadata", meta), ("metadata_lightcurve", np.hstack([meta, lc]))):
        model = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
        out[name] = float(cross_val_score(model, x, labels[keep], cv=cv).mean())
    out["n"] = int(keep.sum())
    return out


def colour_knn_redshift(root: str | Path, k: int = 16, seed: int = 0, folds: int = 5) -> dict[str, float]:
    """Cross-validated R² of a kNN regression of redshift on image colours and size (normal galaxies)."""
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler


    root = Path(root)
    truth = load_truth(root, "galaxies", ["truth_id", "legacysurvey_object_id", "z"])
    anomalous = _anomalous(load_anomalies(root), truth["truth_id"])
    features, ids = [], []
    for block in iter_blocks(root / DATASETS["legacysurvey"], ["object_id", "image_array", "image_band"]):
        features.append(image_colours_and_sizes(block["image_array"], [b.decode() for b in block["image_band"][0]]))
        ids.append(block["object_id"])
    x = np.concatenate(features)
    rows = _join(np.concatenate(ids), truth["legacysurvey_object_id"])
    normal = ~anomalous[rows]
    model = make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=k, weights="distance"))
    scores = cross_val_score(model, x[normal], truth["z"][rows[normal]], cv=KFold(folds, shuffle=True,
                                                                                  random_state=seed), scoring="r2")
    return {"r2": float(scores.mean()), "n": int(normal.sum())}
