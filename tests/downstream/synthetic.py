"""Synthetic embeddings with known structure, for the downstream tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astrofm.downstream.store import EmbeddingStore


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def smooth_manifold(n: int, dim: int = 64, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of a 2-D latent space curved into ``dim`` dimensions, and a smooth target in [0.05, 0.7]."""
    rng = np.random.default_rng(seed)
    latent = rng.uniform(0, 1, size=(n, 2))
    freq = np.random.default_rng(1234).normal(scale=6.0, size=(2, dim))  # the same map for every seed
    phase = np.random.default_rng(1235).uniform(0, 2 * np.pi, dim)
    X = np.cos(latent @ freq + phase) + 0.01 * rng.normal(size=(n, dim))
    y = 0.05 + 0.5 * latent[:, 0] + 0.1 * np.sin(3 * latent[:, 1])
    return X.astype(np.float32), y


def gaussian_classes(n: int, dim: int = 32, n_classes: int = 5, *, seed: int = 0,
                     spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Unbalanced Gaussian clusters (class i has weight ∝ i + 1); labels are strings."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(scale=1.2, size=(n_classes, dim))
    weights = np.arange(1, n_classes + 1, dtype=float)
    labels = rng.choice(n_classes, size=n, p=weights / weights.sum())
    X = centres[labels] + spread * rng.normal(size=(n, dim))
    return X.astype(np.float32), np.array([f"class{c}" for c in labels])


def planted_outliers(n: int = 4000, dim: int = 32, *, n_interesting: int = 60, n_boring: int = 25,
                     interesting_offset: float = 3.5, boring_offset: float = 4.5,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal objects on a 4-D subspace plus two planted outlier populations off it.

    Returns (X, interesting, outlier): ``interesting`` marks the population a person cares about,
    ``outlier`` marks both; the other population plays artefacts, rarer but more extreme, so that
    the unsupervised ranking puts them first. Rows are shuffled.
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]

    def normal(m: int) -> np.ndarray:
        return rng.normal(size=(m, 4)) @ basis[:, :4].T + 0.1 * rng.normal(size=(m, dim))

    def planted(m: int, axes: list[int], offset: float) -> np.ndarray:
        direction = rng.normal(size=(m, len(axes)))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        return normal(m) + offset * direction @ basis[:, axes].T

    X = np.vstack([normal(n), planted(n_interesting, [4, 5, 6], interesting_offset),
                   planted(n_boring, [7, 8, 9], boring_offset)])
    interesting = np.r_[np.zeros(n), np.ones(n_interesting), np.zeros(n_boring)].astype(bool)
    outlier = np.r_[np.zeros(n), np.ones(n_interesting + n_boring)].astype(bool)
    order = rng.permutation(len(X))
    return X[order].astype(np.float32), interesting[order], outlier[order]


def sparse_factors(n: int, dim: int = 48, n_factors: int = 64, *, active: int = 3,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings that are sparse positive sums of ``n_factors`` unit directions (+ 1% noise).

    Returns (X, factors (F, D), codes (n, F)).
    """
    rng = np.random.default_rng(seed)
    factors = unit(rng.normal(size=(n_factors, dim)))
    codes = np.zeros((n, n_factors))
    rows = np.repeat(np.arange(n), active)
    cols = np.argsort(rng.uniform(size=(n, n_factors)), axis=1)[:, :active].reshape(-1)
    codes[rows, cols] = rng.uniform(0.5, 2.0, size=n * active)
    X = codes @ factors + 0.01 * rng.normal(size=(n, dim))
    return X.astype(np.float32), factors, codes


def make_store(path: Path, vectors: dict[str, tuple[np.ndarray, np.ndarray]], *,
               normalization: str = "l2") -> EmbeddingStore:
    """A store with ``{modality: (ids, vectors)}``, vectors unit-normalized when ``normalization='l2'``."""
    store = EmbeddingStore.create(path, model="synthetic", model_version="0", normalization=normalization)
    for modality, (ids, X) in vectors.items():
        store.append(modality, ids, unit(X) if normalization == "l2" else X)
    return store
