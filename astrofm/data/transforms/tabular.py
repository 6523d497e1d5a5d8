"""Tabular transforms: standardization with missing values turned into a mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from astrofm.data.batch import OBSERVED_FIELD
from astrofm.data.transforms.base import Item, Transform


@dataclass
class Standardize(Transform):
    """values -> (values - mean) / std per feature (fitted on train, NaN-aware).

    Missing (NaN) values become 0 and ``observed`` (F,) bool marks the real ones.
    """

    mean: list[float] | None = None
    std: list[float] | None = None
    fitted_fields = ("mean", "std")

    def fit(self, items: Sequence[Item]) -> Standardize:
        values = np.stack([np.asarray(it["values"], np.float64) for it in items])
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0)
        self.mean = np.where(np.isfinite(mean), mean, 0.0).tolist()
        self.std = np.where(np.isfinite(std) & (std > 0), std, 1.0).tolist()
        return self

    def __call__(self, item: Item, rng: np.random.Generator | None = None) -> Item:
        self.require_fitted()
        values = np.asarray(item["values"], np.float64)
        observed = np.isfinite(values)
        scaled = np.where(observed, (values - np.asarray(self.mean)) / np.asarray(self.std), 0.0)
        out = dict(item)
        out["values"] = scaled.astype(np.float32)
        out[OBSERVED_FIELD] = observed
        return out
