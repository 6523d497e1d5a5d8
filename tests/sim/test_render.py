"""The Fourier-space renderer against closed forms and against GalSim (the field's reference)."""

from __future__ import annotations

import numpy as np
import pytest

from astrofm.sim import profiles, render
from astrofm.sim.legacysurvey import PIXEL_SCALE, PSF_BETA
from astrofm.sim.validation import flux_and_half_light_radius, galsim_render

SIZE = 64


def _ours(n: float, r_half: float, q: float, angle: float, psf_fwhm: float, dx: float = 0.0) -> np.ndarray:
    sersics = render.Sersics(np.array([0]), np.ones((1, 1)), np.array([n]), np.array([r_half / PIXEL_SCALE]),
                             np.array([q]), np.array([angle]), np.array([dx]), np.zeros(1), np.ones(1, bool))
    factor = render.pad_factors(SIZE, render.extent(sersics, 1), np.array([psf_fwhm / PIXEL_SCALE]))[0]
    grid = render.fourier_grid(SIZE, float(factor))
    central, others, _ = render.scene_transforms(grid, 1, 1, sersics, render.empty(render.Blobs, 1),
                                                 render.empty(render.Rings, 1))
    psf = render.moffat_psf(grid, np.array([[psf_fwhm / PIXEL_SCALE]]), PSF_BETA)
    return render.to_images(grid, (central + others) * psf)[0, 0]


def test_hankel_tables_match_closed_forms():
    kr = np.linspace(0, 40, 2001)
    exponential = (1 + (kr / profiles.sersic_b(1.0)) ** 2) ** -1.5
    k, values = profiles._sersic_table(1.0, np.inf)
    assert np.abs(np.interp(kr, k, values) - exponential).max() < 1e-5
    k, values = profiles._sersic_table(0.5, np.inf)  # a Gaussian of sigma^2 = 1 / (2 b)
    assert np.abs(np.interp(kr, k, values) - np.exp(-(kr**2) / (4 * profiles.sersic_b(0.5)))).max() < 1e-5


def test_sersic_rows_each_use_their_own_index():
    kr = np.linspace(0, 60, 3001, dtype=np.float32)
    rows = profiles.sersic_ft(np.array([1.0, 4.02, 1.0, 2.5]), np.tile(kr, (4, 1)))
    exponential = (1 + (kr / profiles.sersic_b(1.0)) ** 2) ** -1.5
    assert np.abs(rows[0] - exponential).max() < 1e-5
    np.testing.assert_array_equal(rows[2], rows[0])
    for i, n in ((1, 4.0), (3, 2.5)):  # 4.02 is rounded to the grid
        alone = profiles.sersic_ft(np.array([n]), kr[None])[0]
        np.testing.assert_array_equal(rows[i], alone)
        k, values = profiles._sersic_table(n, profiles.SERSIC_TRUNCATION)
        assert np.abs(rows[i] - np.interp(kr, k, values)).max() < 1e-5


def test_scene_is_the_sum_of_its_components():
    """Scenes with different numbers of components, some of them neighbours, equal the sums of their parts."""
    fields = dict(obj=np.array([0, 1, 0, 0, 1]), flux=np.arange(1.0, 11.0).reshape(5, 2),
                  n=np.array([4.0, 1.0, 1.0, 2.0, 1.5]), r_half=np.array([2.0, 3.0, 5.0, 1.5, 2.5]),
                  q=np.array([0.8, 0.5, 0.6, 1.0, 0.7]), angle=np.array([0.1, 1.0, 0.3, 0.0, 2.0]),
                  x=np.array([0.0, 0.3, 0.0, 12.0, -9.0]), y=np.array([0.0, -0.2, 0.0, 7.0, 4.0]),
                  central=np.array([True, True, True, False, False]))
    grid = render.fourier_grid(SIZE, 1.5)
    no_blobs, no_rings = render.empty(render.Blobs, 2), render.empty(render.Rings, 2)
    central, others, _ = render.scene_transforms(grid, 2, 2, render.Sersics(**fields), no_blobs, no_rings)
    expected = {True: np.zeros_like(central), False: np.zeros_like(others)}
    for row in range(5):
        one = {name: value[row:row + 1] for name, value in fields.items()}
        alone, alone_others, _ = render.scene_transforms(grid, 1, 2, render.Sersics(**{**one, "obj": np.zeros(1, int)}),
                                                         no_blobs, no_rings)
        expected[bool(fields["central"][row])][fields["obj"][row]] += (alone + alone_others)[0]
    np.testing.assert_allclose(central, expected[True], atol=1e-5)
    np.testing.assert_allclose(others, expected[False], atol=1e-5)
    assert np.abs(others[0]).max() > 1 and np.abs(central[1]).max() > 1


def test_truncated_sersic_keeps_its_half_light_radius():
    n, cut = 4.0, profiles.SERSIC_TRUNCATION
    b = profiles.truncated_sersic_b(n, cut)
    radius = np.linspace(0, cut, 400001)
    light = radius * np.exp(-b * radius ** (1 / n))
    cumulative = np.cumsum(light) / light.sum()
    assert np.interp(0.5, cumulative, radius) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("n", [1.0, 4.0])
@pytest.mark.parametrize("r_half", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("psf_fwhm", [0.9, 1.3, 1.8])
def test_matches_galsim(n, r_half, psf_fwhm):
    ours = _ours(n, r_half, 0.6, 0.4, psf_fwhm)
    reference = galsim_render(n, r_half, 0.6, 0.4, psf_fwhm, SIZE, PIXEL_SCALE, beta=PSF_BETA)
    flux, hlr = flux_and_half_light_radius(ours)
    flux_ref, hlr_ref = flux_and_half_light_radius(reference)
    assert flux == pytest.approx(flux_ref, rel=0.01)
    assert hlr == pytest.approx(hlr_ref, rel=0.03)
    assert np.abs(ours - reference).max() < 0.01 * reference.max()


def test_subpixel_offset_moves_the_centroid():
    image = _ours(1.0, 0.8, 1.0, 0.0, 1.2, dx=0.37)
    x = np.arange(SIZE)
    centroid = (image.sum(axis=0) * x).sum() / image.sum()
    assert centroid == pytest.approx(SIZE // 2 + 0.37, abs=0.01)


def test_aperture_flux_of_a_point_source():
    grid = render.fourier_grid(SIZE)
    point = np.ones((1, grid.pad, grid.pad // 2 + 1), np.complex64)
    sigma, radius = 2.0, 3.0
    expected = 1 - np.exp(-(radius**2) / (2 * sigma**2))  # a circle on a circular Gaussian
    assert render.aperture_flux(grid, point, radius, sigma)[0] == pytest.approx(expected, rel=1e-3)
