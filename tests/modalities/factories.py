"""Tiny model configs and raw samples shared by the model-side tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from astrofm.model import AstroFM
from tests.helpers.synthetic import image_item, lightcurve_item, spectrum_item

N_FEATURES = 5


def tiny_config(modalities: Sequence[str] = ("image", "spectrum", "lightcurve", "tabular"), *, dim: int = 16,
                embed_dim: int = 8, **encoder_options: Any) -> dict[str, Any]:
    """An AstroFM config dict with one-block encoders of width ``dim``."""
    trunk = {"dim": dim, "depth": 1, "heads": 2, "pool_heads": 2, **encoder_options}
    specs = {
        "image": {"encoder": "image_vit", "config": {**trunk, "in_chans": 4, "img_size": 8, "patch_size": 4},
                  "transforms": [{"type": "ArcsinhScale", "softening": [1.0] * 4}]},
        "spectrum": {"encoder": "spectrum", "config": {**trunk, "window": 8},
                     "transforms": [{"type": "MaskBadPixels"}, {"type": "IvarNormalize"}]},
        "lightcurve": {"encoder": "lightcurve", "config": {**trunk, "n_bands": 2},
                       "transforms": [{"type": "TimeZeroPoint"}, {"type": "PerBandNormalize"}]},
        "tabular": {"encoder": "tabular", "config": {**trunk, "n_features": N_FEATURES},
                    "transforms": [{"type": "Standardize", "mean": [0.0] * N_FEATURES, "std": [1.0] * N_FEATURES}]},
    }
    return {"modalities": {m: specs[m] for m in modalities}, "embed_dim": embed_dim}


def tiny_model(modalities: Sequence[str] = ("image", "spectrum", "lightcurve", "tabular"), *, seed: int = 0,
               **options: Any) -> AstroFM:
    import torch

    torch.manual_seed(seed)
    return AstroFM.from_config(tiny_config(modalities, **options)).eval()


def tabular_item(rng: np.random.Generator, missing: float = 0.2) -> dict[str, Any]:
    values = rng.normal(size=N_FEATURES).astype(np.float32)
    values[rng.uniform(size=N_FEATURES) < missing] = np.nan
    return {"values": values}


def _item(modality: str, rng: np.random.Generator, length: int) -> dict[str, Any]:
    if modality == "image":
        return image_item(rng)
    if modality == "spectrum":
        return spectrum_item(rng, length=length)
    if modality == "lightcurve":
        return lightcurve_item(rng, n_points=length)
    return tabular_item(rng)


def raw_samples(n: int, *, seed: int = 0, modalities: Sequence[str] = ("image", "spectrum", "lightcurve", "tabular"),
                lengths: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """``n`` raw samples; spectra and light curves get ``lengths[i]`` pixels / points if given."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        length = lengths[i] if lengths is not None else int(rng.integers(20, 60))
        sample: dict[str, Any] = {"object_id": f"obj{seed}-{i}"}
        for m in modalities:
            sample[m] = _item(m, rng, length)
        samples.append(sample)
    return samples
