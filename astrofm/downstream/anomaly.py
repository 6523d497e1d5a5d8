"""Unsupervised anomaly scores on embeddings: isolation forest, LOF and kNN distance, on one scale.

Each method gives a raw score (higher = more anomalous); :class:`AnomalyDetector` maps it to the
common scale [0, 1]: min-max over the reference objects (those it was fitted on), clipped for new
objects, as Astronomaly rescales its scores. The scale keeps the gaps between scores, which the
active-learning score multiplies with a relevance factor (a rank scale would squeeze all outliers
together near 1).

Defaults follow Astronomaly: 200 trees for the isolation forest; LOF with k = 50. LOF's k is capped
at half the objects (with a warning): with k = n − 1 every neighbourhood is the whole set and all
scores are alike.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from astrofm.downstream.search import exact_search
from astrofm.downstream.validation import check_vectors
from astrofm.errors import ConfigError

log = logging.getLogger(__name__)

METHODS = ("iforest", "lof", "knn")
_DEFAULT_NEIGHBOURS = {"lof": 50, "knn": 10}


class AnomalyDetector:
    """Anomaly scores of embeddings on a common [0, 1] scale (1 = most anomalous of the reference set).

    ``method``: ``iforest`` (``n_estimators`` trees), ``lof`` (local outlier factor) or ``knn`` (mean
    Euclidean distance to the ``n_neighbors`` nearest reference objects). ``n_neighbors`` defaults to 50
    for LOF (capped at half the reference objects) and 10 for kNN. ``fit_score`` scores the reference
    objects themselves (each without itself).
    """

    def __init__(
        self,
        method: str = "iforest",
        *,
        n_estimators: int = 200,
        n_neighbors: int | None = None,
        standardize: bool = False,
        seed: int = 0,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"anomaly method must be one of {METHODS}, not {method!r}")
        self.method = method
        self.n_estimators = n_estimators
        self.n_neighbors = n_neighbors or _DEFAULT_NEIGHBOURS.get(method, 0)
        self.standardize = standardize
        self.seed = seed

    def fit(self, X: Any) -> AnomalyDetector:
        self.fit_score(X)
        return self

    def fit_score(self, X: Any) -> np.ndarray:
        """Fit on ``X`` and return the common-scale scores of its rows."""
        X = self._input(X, fitting=True)
        k = min(self.n_neighbors, len(X) - 1)
        if self.method != "iforest" and k < 1:
            raise ConfigError(f"{self.method} needs at least 2 objects")
        if self.method == "lof" and k > max(1, len(X) // 2):
            k = max(1, len(X) // 2)
            log.warning("LOF of %d objects: n_neighbors capped from %d to %d", len(X), self.n_neighbors, k)
        if self.method == "iforest":
            from sklearn.ensemble import IsolationForest

            self.model_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(X)
            raw = -self.model_.score_samples(X)
        elif self.method == "lof":
            from sklearn.neighbors import LocalOutlierFactor

            self.model_ = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(X)
            raw = -self.model_.negative_outlier_factor_
        else:
            self.reference_ = X
            distances, _ = exact_search(X, X, k + 1, metric="l2")
            raw = distances[:, 1:].mean(axis=1)  # column 0 is the object itself
        self.range_ = (float(raw.min()), float(raw.max()))
        log.info("%s anomaly scores of %d objects", self.method, len(X))
        return _common_scale(raw, self.range_)

    def score_samples(self, X: Any) -> np.ndarray:
        """Common-scale scores of new objects against the fitted reference set."""
        if not hasattr(self, "range_"):
            raise ConfigError("fit the anomaly detector first")
        X = self._input(X, fitting=False)
        if self.method == "knn":
            distances, _ = exact_search(
                X, self.reference_, min(self.n_neighbors, len(self.reference_)), metric="l2"
            )
            raw = distances.mean(axis=1)
        else:
            raw = -self.model_.score_samples(X)
        return _common_scale(raw, self.range_)

    def _input(self, X: Any, *, fitting: bool) -> np.ndarray:
        X = check_vectors(X, where="anomaly input", field="X", dim=None if fitting else self.n_features_in_)
        if fitting:
            if len(X) < 2:
                raise ConfigError("anomaly detection needs at least 2 objects")
            self.n_features_in_ = X.shape[1]
            if self.standardize:
                from sklearn.preprocessing import StandardScaler

                self.scaler_ = StandardScaler().fit(X)
        return self.scaler_.transform(X).astype(np.float32) if self.standardize else X


def anomaly_scores(X: Any, method: str = "iforest", **params: Any) -> np.ndarray:
    """Common-scale anomaly scores of the rows of ``X`` (see :class:`AnomalyDetector`)."""
    return AnomalyDetector(method, **params).fit_score(X)


def _common_scale(raw: np.ndarray, reference_range: tuple[float, float]) -> np.ndarray:
    """Raw scores min-max scaled by the reference set's range, clipped to [0, 1]."""
    low, high = reference_range
    return np.clip((raw - low) / max(high - low, 1e-12), 0.0, 1.0)
