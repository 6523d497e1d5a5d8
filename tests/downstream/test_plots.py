"""Figures: bad image pixels, NaN map values and short neighbour rows are drawn, not dropped or shifted."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from astrofm.downstream import plots
from astrofm.plotting import image_to_rgb, plot_image
from astrofm.plotting.modalities import BAD_PIXEL_GREY

matplotlib.use("Agg")
BANDS = ["DES-G", "DES-R", "DES-I", "DES-Z"]


def _galaxy(size: int = 64) -> np.ndarray:
    """A (4, size, size) round Gaussian galaxy [nanomaggies], brighter in the redder bands, with faint noise."""
    yy, xx = np.mgrid[:size, :size] - size / 2
    profile = np.exp(-(xx**2 + yy**2) / (2 * 6.0**2))
    noise = np.random.default_rng(0).normal(0, 0.01, (4, size, size))
    return (np.array([1.0, 1.5, 2.0, 2.5])[:, None, None] * profile + noise).astype(np.float32)


def test_bad_image_pixels_neither_set_the_stretch_nor_keep_their_values():
    clean = _galaxy()
    flux, mask = clean.copy(), np.ones(clean.shape, bool)
    flux[:, :, [5, 50]] = 500.0  # two saturated columns ...
    mask[:, :, [5, 50]] = False  # ... flagged bad (MMU image mask: True = good)
    good = np.ones(clean.shape[1:], bool)
    good[:, [5, 50]] = False

    reference = image_to_rgb(clean, BANDS)
    assert reference[32, 32].mean() > 0.4  # the centre is bright without bad pixels
    fig, ax = plt.subplots()
    plot_image({"flux": flux, "mask": mask, "ivar": np.ones_like(flux), "band": BANDS}, ax)
    drawn = np.asarray(ax.get_images()[0].get_array())
    np.testing.assert_allclose(drawn[good], reference[good], atol=0.01)  # was centre 0.525 -> 0.006
    np.testing.assert_array_equal(drawn[~good], BAD_PIXEL_GREY)

    ivar = np.ones_like(flux)
    ivar[:, :, [5, 50]] = 0.0  # ivar <= 0 alone marks them bad too
    ax.clear()
    plot_image({"flux": flux, "ivar": ivar, "band": BANDS}, ax)
    np.testing.assert_allclose(np.asarray(ax.get_images()[0].get_array())[good], reference[good], atol=0.01)
    plt.close(fig)


def test_map_draws_nan_values_grey_as_unknown():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(100, 2))
    values = rng.integers(0, 3, 100).astype(np.float64)
    values[:20] = np.nan
    fig = plots.plot_map(xy, values, label="class")
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 100  # was 80: NaN never equals itself
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["0.0", "1.0", "2.0", "unknown"]
    unknown = ax.collections[-1]
    assert len(unknown.get_offsets()) == 20
    np.testing.assert_allclose(unknown.get_facecolor()[0, :3], 0.85)
    plt.close(fig)


def test_neighbour_grid_starts_every_query_on_its_own_row():
    queries = [{"object_id": f"q{i}"} for i in range(3)]
    results = [[{"object_id": "a"}, {"object_id": "b"}], [{"object_id": "c"}], [{"object_id": "d"}, {"object_id": "e"}]]
    distances = np.array([[0.1, 0.2, np.inf], [0.3, np.inf, np.inf], [0.4, 0.5, np.inf]])  # k = 3, fewer found
    fig = plots.neighbour_grid(queries, results, distances)
    titles = np.array([ax.get_title() for ax in fig.axes]).reshape(3, 4)
    np.testing.assert_array_equal(titles[:, 0], ["query q0", "query q1", "query q2"])
    np.testing.assert_array_equal(titles[1], ["query q1", "c\nd=0.3", "", ""])
    np.testing.assert_array_equal(titles[2], ["query q2", "d\nd=0.4", "e\nd=0.5", ""])
    assert not fig.axes[2 * 4 + 3].axison  # blank cells are off
    plt.close(fig)
