"""Injected galaxy anomalies are something an image can show."""

import numpy as np

from astrofm.sim import anomalies, render
from astrofm.sim.legacysurvey import PIXEL_SCALE, PSF_BETA


def test_rings_companions_and_arcs_of_small_faint_hosts_lie_outside_the_seeing_disc():
    """Each one puts ≥ 60% of its light beyond the seeing FWHM (1.2″) of an r ≈ 21.3, 0.3″ host.

    Tied to the host's size alone, 40–50% of a ring's or companion's light fell inside it.
    """
    n, size, seeing = 60, 64, 1.2
    rng = np.random.default_rng(0)
    gal = {**{f"flux_{band}": np.full(n, 3.0) for band in "griz"}, "disk_r_arcsec": np.full(n, 0.3),
           "bulge_r_arcsec": np.full(n, 0.2), "disk_q": rng.uniform(0.3, 1.0, n),
           "position_angle_deg": rng.uniform(0.0, 180.0, n)}
    kinds = np.array([b"lens_arc", b"merger", b"ring"] * (n // 3))
    params = anomalies.galaxy_parameters(rng, gal, kinds)
    sersics, blobs, rings = anomalies.galaxy_components(kinds, params, gal, np.arange(n), PIXEL_SCALE, size)
    grid = render.fourier_grid(size, 2.0)
    central, others, _ = render.scene_transforms(grid, n, 4, sersics, blobs, rings)
    psf = render.moffat_psf(grid, np.full((n, 4), seeing / PIXEL_SCALE), PSF_BETA)
    image = render.to_images(grid, (central + others) * psf)[:, 1]
    yy, xx = np.mgrid[:size, :size] - size // 2
    outside = (image * (np.hypot(xx, yy) * PIXEL_SCALE > seeing)).sum(axis=(1, 2)) / image.sum(axis=(1, 2))
    for kind in (b"lens_arc", b"merger", b"ring"):
        assert outside[kinds == kind].min() >= 0.6, kind
