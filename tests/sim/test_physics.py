"""The simulated universe is physically coherent, and neither too easy nor useless (tiny preset)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from astrofm.sim import desi, load_truth, validation
from astrofm.sim.extinction import calzetti
from astrofm.sim.photometry import fluxes
from astrofm.sim.stars import CLASS_COUNTS, CLASSES

#: Median S/N per 0.8 Å pixel above which redshifts must be recovered (most spectra pass it).
SNR_CUT = 0.5


def test_redshift_recovery(tiny):
    result = validation.redshift_recovery(tiny.root, snr_cut=SNR_CUT)
    assert result["n"] >= 300
    assert result["fraction_above_cut"] >= 0.7
    assert result["fraction"] >= 0.95


def test_posterior_mean_redshift_beats_the_best_fit_and_bounds_spectrum_estimates(tiny):
    """The posterior mean minimises the squared error: its R² is above the maximum-likelihood fit's, and it is
    the ceiling for redshift read from these spectra (the secure ones are nearly exact, the rest are not)."""
    limit = validation.spectrum_redshift_limit(tiny.root, split="train")
    assert limit["n_all"] >= 300
    assert 0.5 < limit["fraction_secure"] < 0.9
    assert limit["posterior_mean_r2_all"] > limit["template_fit_r2_all"] + 0.005
    assert limit["posterior_mean_r2"] > 0.98
    assert limit["posterior_mean_r2_all"] < limit["posterior_mean_r2"] - 0.02


def test_feature_chi2_counts_what_a_redshift_moves():
    """A featureless continuum carries no redshift information; a line adds its own χ², in proportion to ivar."""
    wave = desi.wavelength()
    continuum = np.tile(2.0 + wave / 5000.0, (3, 1))
    line = 40.0 * np.exp(-0.5 * ((wave - 6000.0) / 2.0) ** 2)
    ivar = np.full(continuum.shape, 4.0)
    flat, with_line, noisier = desi.feature_chi2(continuum + np.stack([0 * line, line, line]),
                                                 ivar * np.array([[1.0], [1.0], [0.25]]))
    assert flat < 1e-6 * with_line  # a straight continuum is its own running mean (but at the edges)
    # a narrow line's χ², less what the running mean takes of it: (Σ line)² / width
    assert with_line == pytest.approx(4.0 * (np.sum(line**2) - np.sum(line) ** 2 / desi.FEATURE_WIDTH), rel=0.01)
    assert noisier == pytest.approx(with_line / 4, rel=1e-6)


def test_unflagged_redshifts_are_secure_and_flags_mark_spectra_without_one(tiny):
    """``ZWARN`` follows the spectrum's redshift information: a template fit almost never misses an unflagged
    spectrum's redshift and often misses a flagged one's; the catalog ``Z`` of unflagged fits is the truth."""
    truth = load_truth(tiny.root, "galaxies", ["desi_object_id", "z"])
    row = {int(i): r for r, i in enumerate(truth["desi_object_id"])}
    spectra = validation.read_dataset(tiny.datasets["desi"], ["object_id", "spectrum_flux", "spectrum_ivar",
                                                              "spectrum_mask", "spectrum_lambda", "ZWARN", "Z"])
    z_true = truth["z"][[row[int(i)] for i in spectra["object_id"]]]
    z_fit, _ = validation.fit_redshifts(spectra["spectrum_lambda"][0].astype(np.float64), spectra["spectrum_flux"],
                                        spectra["spectrum_ivar"], spectra["spectrum_mask"])
    missed = np.abs(z_fit - z_true) / (1 + z_true) > 0.0033
    secure = spectra["ZWARN"] == 0
    assert secure.sum() >= 200 and (~secure).sum() >= 50
    assert missed[secure].mean() < 0.02
    assert missed[~secure].mean() > 0.15
    assert np.abs(spectra["Z"][secure] - z_true[secure]).max() < 0.01
    assert np.array_equal(validation.secure_redshift(tiny.root, spectra["object_id"]), secure)


def test_photometric_redshift_bound_shows_what_the_image_noise_costs(tiny):
    """Redshift from the cutouts' optimal photometry: good (the colours carry it), but clearly short of what
    the noiseless fluxes give; adding the true shapes does not lose information. Galaxies with a secure
    spectroscopic redshift are the brighter part of the sample."""
    limit = validation.photometric_redshift_limit(tiny.root, split="val")
    assert limit["n_all"] >= 80 and limit["n_train_all"] >= 700
    assert 0.3 * limit["n_train_all"] < limit["n_train"] < 0.8 * limit["n_train_all"]
    for suffix in ("", "_all"):
        assert limit[f"catalog_flux_r2{suffix}"] > 0.75
        assert limit[f"noiseless_flux_r2{suffix}"] > limit[f"catalog_flux_r2{suffix}"] + 0.02
    # (on every galaxy: the tiny universe's few hundred secure ones are too few to fit the extra features)
    assert limit["catalog_flux_and_true_shapes_r2_all"] > limit["catalog_flux_r2_all"] - 0.02


def test_period_recovery(star_features):
    result = validation.period_recovery(star_features)
    assert result["n"] >= 600
    assert result["fraction"] >= 0.80


def test_colour_knn_redshift_is_informative_but_not_perfect(tiny):
    result = validation.colour_knn_redshift(tiny.root)
    assert 0.5 <= result["r2"] <= 0.95


def test_metadata_alone_does_not_classify_stars_and_light_curves_help(star_features):
    result = validation.star_classification(star_features)
    assert result["metadata"] < 0.90
    assert result["metadata_lightcurve"] > result["metadata"] + 0.05


def test_class_frequencies_follow_astrom3(tiny):
    labels = tiny.truth("stars")["class_index"]
    counts = np.bincount(labels[labels >= 0], minlength=len(CLASSES))
    expected = CLASS_COUNTS / CLASS_COUNTS.sum() * counts.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    assert counts[CLASSES.index("EW")] == counts.max()
    assert counts[CLASSES.index("DSCT")] < 0.03 * counts.sum()


def _joined(tiny, name, columns, id_column):
    """Columns of a dataset and, per row, its row in the galaxy truth table."""
    data = validation.read_dataset(tiny.datasets[name], ["object_id", *columns])
    truth = tiny.truth("galaxies")
    order = np.argsort(truth[id_column])
    rows = order[np.searchsorted(truth[id_column], data["object_id"], sorter=order)]
    assert np.array_equal(truth[id_column][rows], data["object_id"])
    normal = tiny.anomalies()["anomaly_type"][rows] == b""
    return data, {k: v[rows] for k, v in truth.items()}, normal


def _band_mean(flux, rest, lo, hi):
    inside = (rest > lo) & (rest < hi)
    return np.where(inside, flux, 0).sum(1) / inside.sum(1)


def test_spectra_agree_with_fibre_photometry(tiny):
    spectra, _, normal = _joined(tiny, "desi", ["spectrum_flux", "spectrum_mask", "FIBERFLUX_G", "FIBERFLUX_R"],
                                 "desi_object_id")
    wave = desi.wavelength()
    flux = spectra["spectrum_flux"].astype(np.float64)
    for i in range(len(flux)):  # bridge masked pixels (cosmic rays) before integrating
        bad = spectra["spectrum_mask"][i]
        flux[i, bad] = np.interp(wave[bad], wave[~bad], flux[i, ~bad])
    synthetic = fluxes(flux, ("des-g", "des-r"), wave)
    catalog = np.column_stack([spectra["FIBERFLUX_G"], spectra["FIBERFLUX_R"]])
    bright = normal & (catalog[:, 1] > 2.0)
    ratio = np.median(synthetic[bright] / catalog[bright], axis=0)
    assert ratio == pytest.approx([1.0, 1.0], abs=0.03)


def test_catalog_fluxes_match_the_truth_within_their_errors(tiny):
    ls, truth, normal = _joined(tiny, "legacysurvey", ["FLUX_R", "FLUX_IVAR_R"], "legacysurvey_object_id")
    pull = (ls["FLUX_R"] - truth["flux_r"]) * np.sqrt(ls["FLUX_IVAR_R"])
    assert np.median(pull[normal]) == pytest.approx(0.0, abs=0.15)
    assert np.std(pull[normal]) == pytest.approx(1.0, abs=0.15)


def test_image_light_matches_catalog_flux_for_isolated_galaxies(tiny):
    ls, _, normal = _joined(tiny, "legacysurvey", ["image_array", "catalog_FLUX_R", "FLUX_R", "SHAPE_R"],
                            "legacysurvey_object_id")
    isolated = normal & (ls["catalog_FLUX_R"][:, 1] == 0) & (ls["SHAPE_R"] < 1.0) & (ls["FLUX_R"] > 5)
    size = ls["image_array"].shape[-1]
    yy, xx = np.indices((size, size))
    aperture = np.hypot(xx - size // 2, yy - size // 2) < 6.0 / 0.262
    light = (ls["image_array"][isolated, 1] * aperture).sum(axis=(1, 2))
    assert isolated.sum() >= 30
    assert np.median(light / ls["FLUX_R"][isolated]) == pytest.approx(0.99, abs=0.03)


def test_balmer_emission_scales_with_star_formation(tiny):
    spectra, truth, normal = _joined(tiny, "desi", ["spectrum_flux"], "desi_object_id")
    wave = desi.wavelength()
    centre = 6562.8 * (1 + truth["z"])
    usable = normal & (centre < 9600) & ~truth["quiescent"]
    measured = []
    for i in np.flatnonzero(usable):
        line = np.abs(wave - centre[i]) < 8
        side = (np.abs(wave - centre[i]) > 40) & (np.abs(wave - centre[i]) < 80)
        measured.append((spectra["spectrum_flux"][i, line] - np.median(spectra["spectrum_flux"][i, side])).sum())
    attenuation = 10 ** (-0.4 * truth["dust_av"] / 0.44 * calzetti(np.array(6562.8)))
    expected = (truth["sfr"] * attenuation * truth["fibre_fraction_disk"] / truth["d_lum_mpc"] ** 2)[usable]
    assert usable.sum() >= 100
    assert stats.spearmanr(measured, expected).statistic > 0.5


def test_quiescent_galaxies_have_a_stronger_4000_break(tiny):
    spectra, truth, normal = _joined(tiny, "desi", ["spectrum_flux"], "desi_object_id")
    rest = desi.wavelength()[None, :] / (1 + truth["z"][:, None])
    blue = _band_mean(spectra["spectrum_flux"], rest, 3850, 3950)
    red = _band_mean(spectra["spectrum_flux"], rest, 4000, 4100)
    bright = normal & (red > 1.0)
    d4000 = red / np.maximum(blue, 1e-3)
    quiescent = truth["quiescent"]
    assert np.median(d4000[bright & quiescent]) > np.median(d4000[bright & ~quiescent]) + 0.2


def test_giants_keep_the_k_band_period_luminosity_relation_in_their_metadata(tiny):
    """Miras and semi-regulars are placed by M_K(P); the written 2MASS-like Ks must give it back."""
    from astrofm.sim.photometry import band

    gaia = validation.read_dataset(tiny.datasets["gaia"], ["object_id", "k_mag"])
    truth = tiny.truth("stars")
    order = np.argsort(truth["gaia_object_id"])
    rows = order[np.searchsorted(truth["gaia_object_id"], gaia["object_id"], sorter=order)]
    a_k = band("Ks").extinction_coefficient / 3.1 * truth["av"][rows]
    m_k = gaia["k_mag"] - 5 * np.log10(truth["distance_pc"][rows] / 10) - a_k
    log_p = np.log10(truth["period"][rows])
    relations = {b"M": (-3.51 * (log_p - 2.38) - 7.25, 0.15), b"SR": (-3.5 * (log_p - 2.0) - 6.0, 0.4)}
    for name, (relation, scatter) in relations.items():
        residual = (m_k - relation)[truth["class"][rows] == name]
        assert len(residual) >= 10
        assert abs(np.median(residual)) < 0.1 and np.std(residual) < 1.5 * scatter


def test_light_curve_epochs_are_in_time_order():
    from astrofm.sim.lightcurves import cadence

    rng = np.random.default_rng(0)
    for survey_band in ("V", "g"):
        star, time = cadence(rng, rng.uniform(0, 360, 40), rng.uniform(-60, 60, 40), survey_band)
        same_star = star[1:] == star[:-1]
        assert np.all(np.diff(star) >= 0) and np.all(np.diff(time)[same_star] > 0)
