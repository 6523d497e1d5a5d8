"""Figures of single objects (images, spectra, light curves) and of collections."""

from astrofm.plotting.modalities import (
    image_to_rgb,
    plot_image,
    plot_lightcurve,
    plot_sample,
    plot_spectrum,
    save_figure,
    thumbnail_grid,
)

__all__ = [
    "image_to_rgb",
    "plot_image",
    "plot_lightcurve",
    "plot_sample",
    "plot_spectrum",
    "save_figure",
    "thumbnail_grid",
]
