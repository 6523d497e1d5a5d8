"""Plot one modality of one object, from a sample dict of the data layer.

Every function draws into a given matplotlib ``Axes`` (or makes one) and
returns it, so figures compose: ``plot_sample`` puts all of an object's
modalities side by side, and ``thumbnail_grid`` lays out many objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.utils.atomic import atomic_path

#: Legacy Survey DR10-like bands shown as (R, G, B) when present.
_RGB_PREFERENCE = (("z", "r", "g"), ("i", "r", "g"), ("r", "g", "g"))

#: The RGB value in [0, 1] of bad pixels in image composites (neutral grey).
BAD_PIXEL_GREY = 0.5


def pyplot() -> Any:
    """``matplotlib.pyplot``, imported on first use (headless machines get matplotlib's Agg fallback)."""
    import matplotlib.pyplot as plt

    return plt


def _band_letter(name: str) -> str:
    return name.split("-")[-1].lower()


def image_to_rgb(flux: np.ndarray, bands: Sequence[str] | None = None, *, good: np.ndarray | None = None,
                 stretch: float = 3.0, q: float = 8.0) -> np.ndarray:
    """An (H, W, 3) RGB array in [0, 1] from a (B, H, W) cutout, with an arcsinh stretch (Lupton-like).

    Bands are picked as z/r/g (or i/r/g) when their names are known, else the
    last, middle and first band. ``good`` (bool, broadcastable to ``flux``) marks
    usable pixels: the stretch is set by them alone, and a pixel that is bad (or
    not finite) in a shown band is drawn in :data:`BAD_PIXEL_GREY`.
    """
    flux = np.asarray(flux, dtype=np.float64)
    n_bands = flux.shape[0]
    letters = [_band_letter(b) for b in bands] if bands is not None else []
    index = None
    for choice in _RGB_PREFERENCE:
        if all(c in letters for c in choice):
            index = [letters.index(c) for c in choice]
            break
    if index is None:
        index = [n_bands - 1, n_bands // 2, 0]
    rgb = np.stack([flux[i] for i in index], axis=-1)
    bad = ~np.isfinite(rgb).all(axis=-1)
    if good is not None:
        good = np.broadcast_to(np.asarray(good, bool), flux.shape)
        bad |= ~np.stack([good[i] for i in index], axis=-1).all(axis=-1)
    rgb[bad] = 0.0
    usable = np.abs(rgb[~bad])
    scale = (np.percentile(usable, 99.5) if usable.size else 0.0) or 1.0
    intensity = rgb.mean(axis=-1, keepdims=True) / scale
    stretched = np.arcsinh(q * stretch * np.clip(intensity, 0, None)) / q
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(intensity > 0, rgb / scale * stretched / np.maximum(intensity, 1e-12), 0.0)
    out = np.clip(out, 0.0, 1.0)
    out[bad] = BAD_PIXEL_GREY
    return out


def plot_image(item: Mapping[str, Any], ax: Any = None, *, title: str | None = None) -> Any:
    """Draw an image modality dict (``flux`` (B,H,W), ``band``) as an RGB composite.

    Bad pixels (``mask`` False, MMU's image polarity, or ``ivar`` <= 0) do not set the stretch and are
    drawn grey.
    """
    plt = pyplot()
    ax = ax or plt.subplots(figsize=(3, 3))[1]
    good = np.asarray(item.get("mask", True), bool) & (np.asarray(item.get("ivar", 1.0)) > 0)
    ax.imshow(image_to_rgb(item["flux"], item.get("band"), good=good), origin="lower", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def plot_spectrum(item: Mapping[str, Any], ax: Any = None, *, title: str | None = None,
                  smooth: int = 5) -> Any:
    """Draw a spectrum modality dict: flux against wavelength [Å], bad pixels hidden.

    ``smooth`` is the width in pixels of a boxcar that makes noisy spectra readable.
    """
    plt = pyplot()
    ax = ax or plt.subplots(figsize=(6, 2.5))[1]
    wavelength = np.asarray(item["lambda"], dtype=np.float64)
    flux = np.asarray(item["flux"], dtype=np.float64)
    bad = np.asarray(item.get("mask", np.zeros_like(flux, bool)), bool) | (wavelength <= 0)
    if "ivar" in item:
        bad |= np.asarray(item["ivar"]) <= 0
    shown = np.where(bad, np.nan, flux)
    if smooth > 1:
        kernel = np.ones(smooth) / smooth
        weights = np.convolve(~bad, kernel, mode="same")
        with np.errstate(invalid="ignore", divide="ignore"):
            shown = np.convolve(np.nan_to_num(shown), kernel, mode="same") / weights
        shown[bad] = np.nan
    ax.plot(wavelength, shown, lw=0.6, color="k")
    ax.set_xlabel("wavelength [Å]", fontsize=8)
    ax.set_ylabel("flux [1e-17 erg/s/cm²/Å]", fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def plot_lightcurve(item: Mapping[str, Any], ax: Any = None, *, title: str | None = None,
                    period: float | None = None) -> Any:
    """Draw a light-curve modality dict per band; folded on ``period`` [days] if given."""
    plt = pyplot()
    ax = ax or plt.subplots(figsize=(5, 2.5))[1]
    time = np.asarray(item["time"], dtype=np.float64)
    names = item.get("band_names") or [f"band{b}" for b in range(int(np.max(item["band"])) + 1)]
    x = ((time - time.min()) / period) % 1.0 if period else time
    for b, name in enumerate(names):
        sel = np.asarray(item["band"]) == b
        if sel.any():
            ax.errorbar(x[sel], np.asarray(item["flux"])[sel], yerr=np.asarray(item["flux_err"])[sel], fmt=".",
                        ms=2, lw=0.4, label=name)
    ax.set_xlabel("phase" if period else "time [MJD]", fontsize=8)
    ax.set_ylabel("flux", fontsize=8)
    ax.tick_params(labelsize=7)
    if len(names) > 1:
        ax.legend(fontsize=6, loc="best")
    if title:
        ax.set_title(title, fontsize=8)
    return ax


#: The plotting function of each modality.
PLOTTERS = {"image": plot_image, "spectrum": plot_spectrum, "lightcurve": plot_lightcurve}


def plot_sample(sample: Mapping[str, Any], *, modalities: Sequence[str] | None = None) -> Any:
    """A figure with every plottable modality of one sample side by side."""
    plt = pyplot()
    names = [m for m in (modalities or PLOTTERS) if m in sample and m in PLOTTERS]
    widths = [1.0 if m == "image" else 2.2 for m in names] or [1.0]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3 * sum(widths), 3),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, name in zip(axes[0], names):
        PLOTTERS[name](sample[name], ax, title=f"{sample.get('object_id', '')} {name}")
    fig.tight_layout()
    return fig


def thumbnail_grid(samples: Sequence[Mapping[str, Any] | None], *, modality: str | None = None, ncols: int = 6,
                   titles: Sequence[str] | None = None, size: float = 2.0) -> Any:
    """A grid of thumbnails, one per sample, of ``modality`` (default: the first plottable one).

    A ``None`` sample leaves its cell blank (to keep rows aligned); ``size`` is a cell's height [inches].
    """
    plt = pyplot()
    n = max(1, len(samples))
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    wide = modality in {"spectrum", "lightcurve"}
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols * (1.8 if wide else 1.0), size * nrows),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        sample = samples[k] if k < len(samples) else None
        if sample is None:
            ax.axis("off")
            continue
        name = modality or next((m for m in PLOTTERS if m in sample), None)
        title = titles[k] if titles is not None else str(sample.get("object_id", ""))
        if name is None or name not in sample:
            ax.text(0.5, 0.5, f"no {modality or 'data'}", ha="center", va="center", fontsize=7)
            ax.axis("off")
            ax.set_title(title, fontsize=7)
            continue
        PLOTTERS[name](sample[name], ax, title=title)
        if name != "image":
            ax.set_xlabel("")
            ax.set_ylabel("")
    fig.tight_layout()
    return fig


def save_figure(fig: Any, path: str | Path, *, dpi: int = 150) -> Path:
    """Save a figure as PNG atomically and close it."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    pyplot().close(fig)
    return path
