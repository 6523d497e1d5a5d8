"""Transforms: behaviour, statistics fitted on train only, JSON round trip, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from astrofm.data.transforms import (
    AperturePhotometry,
    ArcsinhScale,
    CenterCrop,
    Compose,
    IvarNormalize,
    LengthCap,
    MaskBadPixels,
    PerBandNormalize,
    PercentileScale,
    RandomFlipRot90,
    Resample,
    Resize,
    SampleTransform,
    SelectBands,
    Standardize,
    TimeZeroPoint,
)
from astrofm.errors import ConfigError
from tests.helpers.synthetic import image_item, lightcurve_item, spectrum_item


def test_image_band_selection_crop_resize_and_flips():
    rng = np.random.default_rng(0)
    item = image_item(rng, size=16)
    picked = SelectBands(["z", "des-g"])(item)
    assert picked["band"] == ["des-z", "des-g"]
    np.testing.assert_array_equal(picked["flux"][0], item["flux"][3])
    crop = CenterCrop(8)(item)
    np.testing.assert_array_equal(crop["flux"], item["flux"][:, 4:12, 4:12])
    assert crop["mask"].shape == (4, 8, 8)
    small = Resize(4)(item)
    np.testing.assert_allclose(small["flux"][0, 0, 0], item["flux"][0, :4, :4].mean(), rtol=1e-5)
    flipped = RandomFlipRot90()(item, np.random.default_rng(1))
    assert sorted(flipped["flux"].ravel().tolist()) == sorted(item["flux"].ravel().tolist())
    assert RandomFlipRot90()(item, None) is item
    with pytest.raises(ConfigError):
        SelectBands(["y"])(item)


def test_scalers_fit_on_train_and_round_trip():
    rng = np.random.default_rng(1)
    train = [image_item(rng) for _ in range(20)]
    scale = ArcsinhScale().fit(train)
    expected = np.median(1 / np.sqrt(np.stack([t["ivar"] for t in train])), axis=(0, 2, 3))
    np.testing.assert_allclose(scale.softening, expected, rtol=0.05)
    out = scale(train[0])["flux"]
    np.testing.assert_allclose(out, np.arcsinh(train[0]["flux"] / np.asarray(scale.softening)[:, None, None]),
                               rtol=1e-5)
    pct = PercentileScale().fit(train)
    scaled = np.stack([pct(t)["flux"] for t in train])
    assert abs(np.percentile(scaled[:, 0], 99.5) - 1) < 1e-3
    config = SampleTransform({"image": [scale, pct]}).to_dict()
    again = SampleTransform.from_dict(config)
    np.testing.assert_array_equal(again({"image": train[3]})["image"]["flux"],
                                  pct(scale(train[3]))["flux"])
    with pytest.raises(ConfigError, match="not fitted"):
        ArcsinhScale()(train[0])


def _gaussian_galaxy(fluxes: list[float], sigma_px: float, size: int = 64) -> dict:
    yy, xx = np.indices((size, size))
    profile = np.exp(-((yy - size // 2) ** 2 + (xx - size // 2) ** 2) / (2 * sigma_px**2))
    profile /= profile.sum()
    return {"flux": np.stack([f * profile for f in fluxes]).astype(np.float32), "scale": np.full(4, 0.262, np.float32),
            "mask": np.ones((4, size, size), bool), "band": ["des-g", "des-r", "des-i", "des-z"]}


def test_aperture_photometry_measures_enclosed_flux_as_magnitudes():
    """A bright circular Gaussian: each aperture's magnitude is -2.5 log10 of its enclosed flux (analytic
    1 - exp(-r²/2σ²)), the widest gives the total; faint sources stay finite (asinh)."""
    fluxes, sigma = [1.0, 2.0, 4.0, 8.0], 3.0
    photometry = AperturePhotometry(noise=[1e-5] * 4)
    mags = photometry(_gaussian_galaxy(fluxes, sigma))["aperture_mag"].reshape(4, -1)
    radius_px = np.asarray(photometry.radii_arcsec) / 0.262
    enclosed = 1 - np.exp(-(radius_px**2) / (2 * sigma**2))
    expected = -2.5 * np.log10(np.asarray(fluxes)[:, None] * enclosed[None, :])
    np.testing.assert_allclose(mags[:, 1:], expected[:, 1:], atol=0.02)  # pixelization: < 2% at r >= 1"
    np.testing.assert_allclose(mags[:, -1], -2.5 * np.log10(fluxes), atol=1e-3)
    np.testing.assert_allclose(np.diff(mags[:, -1]), -2.5 * np.log10(2), atol=1e-4)  # colours exact
    empty = photometry(_gaussian_galaxy([0.0] * 4, sigma))["aperture_mag"]
    assert np.isfinite(empty).all()


def test_aperture_photometry_ignores_bad_pixels_and_round_trips():
    rng = np.random.default_rng(3)
    galaxy = _gaussian_galaxy([1.0, 2.0, 4.0, 8.0], 3.0)
    galaxy["ivar"] = np.full(galaxy["flux"].shape, 1e4, np.float32)
    clean = AperturePhotometry().fit([galaxy])
    assert clean.noise == pytest.approx([0.01] * 4)
    reference = clean(galaxy)["aperture_mag"]
    broken = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in galaxy.items()}
    broken["mask"][:, 36, 30:36] = False  # a bad column segment 4 px from the centre
    broken["ivar"][:, 20, :] = 0  # and a masked row at the edge of the widest aperture
    broken["flux"][:, 36, 30:36] = rng.normal(1e3, 1.0, (4, 6))
    broken["flux"][:, 20, :] = -1e3
    mags = clean(broken)["aperture_mag"]
    np.testing.assert_allclose(mags, reference, atol=0.02)  # filled from their annulus
    again = AperturePhotometry.from_dict(clean.to_dict())
    np.testing.assert_array_equal(again(galaxy)["aperture_mag"], reference)
    with pytest.raises(ConfigError, match="not fitted"):
        AperturePhotometry()(galaxy)
    with pytest.raises(ConfigError, match="pixel scale"):
        clean({**galaxy, "scale": np.full(4, np.nan, np.float32)})


def test_resample_is_ivar_weighted_and_masks_empty_bins():
    wave = np.arange(3600, 5000, 0.8)
    flux = 2 + np.sin(wave / 50)
    item = {"flux": flux.astype(np.float32), "ivar": np.ones_like(flux, np.float32),
            "lambda": wave.astype(np.float32), "mask": (wave > 4000) & (wave < 4100)}
    out = Resample(3700, 4900, 2.0)(item)
    assert len(out["flux"]) == 601
    good = ~out["mask"]
    np.testing.assert_allclose(out["flux"][good], 2 + np.sin(out["lambda"][good] / 50), atol=1e-2)
    assert out["mask"][(out["lambda"] > 4002) & (out["lambda"] < 4098)].all()
    np.testing.assert_allclose(out["ivar"][good & (out["lambda"] > 4200)], 2.5, rtol=1e-3)
    # a log-linear (SDSS-like) grid with -1 padding resamples just as well
    loglam = 10 ** (3.56 + 1e-4 * np.arange(2000))
    sdss = {"flux": np.full(2100, 3.0, np.float32), "ivar": np.ones(2100, np.float32),
            "lambda": np.concatenate([loglam, -np.ones(100)]).astype(np.float32)}
    out = Resample(3700, 5000, 1.0)(sdss)
    np.testing.assert_allclose(out["flux"][~out["mask"]], 3.0, rtol=1e-5)


def test_spectrum_masking_and_normalization():
    rng = np.random.default_rng(2)
    item = spectrum_item(rng)
    item["flux"][3] = np.nan
    item["ivar"][5] = 0
    masked = MaskBadPixels()(item)
    assert masked["mask"][3] and masked["mask"][5] and masked["flux"][3] == 0
    item["flux"] = np.abs(item["flux"]) * 7
    norm = IvarNormalize()(MaskBadPixels()(item))
    scale = 10 ** float(norm["log_norm"])
    np.testing.assert_allclose(norm["flux"] * scale, MaskBadPixels()(item)["flux"], rtol=1e-5)
    np.testing.assert_allclose(norm["ivar"] / scale**2, MaskBadPixels()(item)["ivar"], rtol=1e-4)


def test_lightcurve_transforms():
    rng = np.random.default_rng(3)
    item = lightcurve_item(rng, n_points=300)
    shifted = TimeZeroPoint()(item)
    assert shifted["time"].min() == 0 and shifted["t0"] == item["time"].min()
    norm = PerBandNormalize()(item)
    for b in range(2):
        sel = item["band"] == b
        assert abs(np.median(norm["flux"][sel])) < 1e-6
    capped = LengthCap(50)(item)
    assert len(capped["time"]) == 50
    np.testing.assert_array_equal(LengthCap(50)(item)["time"], capped["time"])  # deterministic in eval
    random_cap = LengthCap(50)(item, np.random.default_rng(0))
    assert len(random_cap["time"]) == 50 and not np.array_equal(random_cap["time"], capped["time"])


def test_transforms_that_draw_from_the_generator_are_flagged_and_the_cap_applies_in_eval():
    from astrofm.data.transforms import TRANSFORMS

    ours = {name: cls for name, cls in TRANSFORMS.items() if cls.__module__.startswith("astrofm.data.transforms")}
    assert {name for name, cls in ours.items() if cls.uses_rng} == {"LengthCap", "RandomFlipRot90"}
    assert {name for name, cls in ours.items() if cls.random} == {"RandomFlipRot90"}
    item = lightcurve_item(np.random.default_rng(3), n_points=300)
    pipeline = Compose([TimeZeroPoint(), LengthCap(50)])
    assert len(pipeline(item)["time"]) == 50  # not skipped without a generator
    assert len(pipeline(item, np.random.default_rng(0))["time"]) == 50


def test_standardize_fits_on_train_only_and_masks_missing():
    train = [{"values": np.array([1.0, np.nan, 10.0])}, {"values": np.array([3.0, 5.0, 10.0])}]
    test = {"values": np.array([100.0, np.nan, 10.0])}
    std = Standardize().fit(train)
    assert std.mean == [2.0, 5.0, 10.0]
    out = std(test)
    assert out["values"][0] == pytest.approx(98.0)
    assert out["observed"].tolist() == [True, False, True]
    assert out["values"][1] == 0


def test_sample_transform_fit_uses_only_given_samples_and_saves(tmp_path):
    rng = np.random.default_rng(4)
    train = [{"object_id": str(i), "spectrum": spectrum_item(rng)} for i in range(5)]
    pipeline = SampleTransform({"spectrum": Compose([MaskBadPixels(), Resample(3700, 9000, 5.0), IvarNormalize()]),
                                "tabular": [Standardize()]})
    pipeline.fit(train)
    path = pipeline.save(tmp_path / "transforms.json")
    loaded = SampleTransform.load(path)
    out_a = pipeline(train[0])
    out_b = loaded(train[0])
    np.testing.assert_array_equal(out_a["spectrum"]["flux"], out_b["spectrum"]["flux"])


def test_resample_converts_lsf_sigma_to_output_pixels():
    """lsf_sigma is in pixels: 2 input pixels of 1.6 Å are 4 output pixels of 0.8 Å; on a log-linear grid the input
    pixel (λ ln10 1e-4 Å) grows with wavelength."""
    wave = 4000 + 1.6 * np.arange(200)
    out = Resample(4100, 4200, 0.8)({"flux": np.ones(200), "lambda": wave, "lsf_sigma": np.full(200, 2.0)})
    np.testing.assert_allclose(out["lsf_sigma"], 4.0, rtol=1e-6)
    loglam = 10 ** (3.6 + 1e-4 * np.arange(400))
    out = Resample(4000, 4300, 0.8)({"flux": np.ones(400), "lambda": loglam, "lsf_sigma": np.ones(400)})
    np.testing.assert_allclose(out["lsf_sigma"], out["lambda"] * np.log(10) * 1e-4 / 0.8, rtol=1e-4)
