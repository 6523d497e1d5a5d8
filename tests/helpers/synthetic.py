"""Small synthetic MMU samples for data-layer tests (not the simulated universe)."""

from __future__ import annotations

import numpy as np

BANDS = ["des-g", "des-r", "des-i", "des-z"]


def image_item(rng: np.random.Generator, size: int = 8, value: float | None = None) -> dict:
    flux = rng.normal(size=(4, size, size)).astype(np.float32) if value is None else np.full(
        (4, size, size), value, np.float32)
    return {"flux": flux, "ivar": rng.uniform(1, 2, size=(4, size, size)).astype(np.float32),
            "mask": rng.uniform(size=(4, size, size)) > 0.1, "band": list(BANDS),
            "psf_fwhm": rng.uniform(0.8, 1.5, 4).astype(np.float32), "scale": np.full(4, 0.262, np.float32)}


def spectrum_item(rng: np.random.Generator, length: int = 64, value: float | None = None) -> dict:
    wave = np.linspace(3600, 9824, length).astype(np.float32)
    flux = rng.normal(size=length).astype(np.float32) if value is None else np.full(length, value, np.float32)
    return {"flux": flux, "ivar": rng.uniform(0.5, 2, length).astype(np.float32), "lambda": wave,
            "mask": rng.uniform(size=length) < 0.05, "lsf_sigma": np.full(length, 1.2, np.float32)}


def lightcurve_item(rng: np.random.Generator, n_points: int = 30, n_bands: int = 2) -> dict:
    band = np.sort(rng.integers(0, n_bands, n_points))
    time = np.concatenate([np.sort(rng.uniform(58000, 59500, int((band == b).sum()))) for b in range(n_bands)])
    return {"time": time, "flux": rng.normal(10, 1, n_points), "flux_err": rng.uniform(0.05, 0.2, n_points),
            "band": band.astype(np.int64), "band_names": ["V", "g"][:n_bands]}


def make_samples(n: int, *, seed: int = 0, modalities: tuple[str, ...] = ("image", "spectrum"),
                 ra_range: tuple[float, float] = (10.0, 20.0), dec_range: tuple[float, float] = (-5.0, 5.0),
                 id_offset: int = 1000) -> list[dict]:
    """``n`` samples with random positions, integer-string ids and the given modalities."""
    rng = np.random.default_rng(seed)
    makers = {"image": image_item, "spectrum": spectrum_item, "lightcurve": lightcurve_item}
    samples = []
    for i in range(n):
        sample = {"object_id": str(id_offset + i), "ra": float(rng.uniform(*ra_range)),
                  "dec": float(rng.uniform(*dec_range))}
        for m in modalities:
            sample[m] = makers[m](rng)
        samples.append(sample)
    return samples
