"""Tiny AR model configs shared by the AR tests (raw samples come from tests.modalities.factories)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from astrofm.ar import ARModel
from tests.modalities.factories import N_FEATURES


def tiny_ar_config(modalities: Sequence[str] = ("image", "spectrum"), *, dim: int = 16, depth: int = 2,
                   **options: Any) -> dict[str, Any]:
    """An AR config dict of width ``dim`` over the given modalities, in that order."""
    specs = {
        "image": {"tokenizer": "image_patches", "config": {"in_chans": 4, "img_size": 8, "patch_size": 2},
                  "transforms": [{"type": "ArcsinhScale", "softening": [1.0] * 4}]},
        "spectrum": {"tokenizer": "spectrum_windows", "config": {"window": 8},
                     "transforms": [{"type": "MaskBadPixels"}, {"type": "IvarNormalize"}]},
        "lightcurve": {"tokenizer": "lightcurve_points", "config": {"n_bands": 2},
                       "transforms": [{"type": "TimeZeroPoint"}, {"type": "PerBandNormalize"}]},
        "tabular": {"tokenizer": "tabular_features", "config": {"n_features": N_FEATURES},
                    "transforms": [{"type": "Standardize", "mean": [0.0] * N_FEATURES, "std": [1.0] * N_FEATURES}]},
    }
    return {"model_type": "ar", "modalities": {m: specs[m] for m in modalities}, "dim": dim, "depth": depth,
            "heads": 2, **options}


def tiny_ar_model(modalities: Sequence[str] = ("image", "spectrum"), *, seed: int = 0, **options: Any) -> ARModel:
    torch.manual_seed(seed)
    return ARModel.from_config(tiny_ar_config(modalities, **options)).eval()
