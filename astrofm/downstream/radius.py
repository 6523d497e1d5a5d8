"""Exact fixed-radius queries, in the spirit of GriSPy: bubble, shell and n-th nearest neighbours.

Two spaces:

- embedding space (``euclidean``, ``cosine`` = 1 − cos θ): brute force over chunks in float64, never N×N.
  Candidates come from the matmul form of the distance within a radius padded by a bound on its
  rounding, and are then filtered with the distance computed from the difference of the vectors;
- the sky (``haversine``, ``vincenty``): positions (RA, Dec) in degrees, radii and distances in arcsec.
  Candidates come from a KD-tree on unit vectors (so RA wrap-around and the poles need no special
  case) and are then filtered with the exact great-circle distance of the chosen formula.

Every query returns, per centre, the distances and the indices of the points, sorted by distance
(ties by index). Bubble: d ≤ r. Shell: r_min ≤ d < r_max. Nearest: the n nearest, the n-th last.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from astrofm.downstream.search import exact_search, iter_distance_blocks, pair_distances
from astrofm.downstream.validation import check_vectors
from astrofm.errors import ConfigError, DataFormatError

EMBEDDING_METRICS = ("euclidean", "cosine")
SKY_METRICS = ("haversine", "vincenty")
#: Arcseconds per radian.
ARCSEC_PER_RAD = 180.0 * 3600.0 / np.pi
_PAD = 1e-9  # relative padding of KD-tree candidate radii; the exact distance decides
#: Bound on the rounding of a float64 matmul-form distance, per dimension, relative to the squared norms.
_MATMUL_ROUNDING = 8 * float(np.finfo(np.float64).eps)
_PAIRS_PER_BLOCK = 1 << 22  # pairs × dimensions whose exact distances are computed at once

Neighbourhoods = tuple[list[np.ndarray], list[np.ndarray]]


def angular_distance(ra1: Any, dec1: Any, ra2: Any, dec2: Any, *, method: str = "vincenty") -> np.ndarray:
    """Great-circle distance [arcsec] between positions in degrees (broadcasting).

    ``vincenty`` is accurate at every separation; ``haversine`` loses precision near 180°.
    """
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, np.float64)) for v in (ra1, dec1, ra2, dec2))
    dra = ra2 - ra1
    if method == "haversine":
        h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin(dra / 2) ** 2
        return 2.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))) * ARCSEC_PER_RAD
    if method == "vincenty":
        s1, c1, s2, c2 = np.sin(dec1), np.cos(dec1), np.sin(dec2), np.cos(dec2)
        num = np.hypot(c2 * np.sin(dra), c1 * s2 - s1 * c2 * np.cos(dra))
        return np.arctan2(num, s1 * s2 + c1 * c2 * np.cos(dra)) * ARCSEC_PER_RAD
    raise ConfigError(f"sky metric must be one of {SKY_METRICS}, not {method!r}")


class RadiusSearch:
    """Fixed-radius search over ``points``: (n, D) embeddings, or (n, 2) RA/Dec [deg] for sky metrics."""

    def __init__(
        self,
        points: Any,
        *,
        metric: str = "euclidean",
        batch_size: int = 1024,
        chunk_size: int = 16384,
        device: str | None = None,
    ) -> None:
        if metric not in EMBEDDING_METRICS + SKY_METRICS:
            raise ConfigError(f"metric must be one of {EMBEDDING_METRICS + SKY_METRICS}, not {metric!r}")
        self.metric = metric
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.device = device
        if self.on_sky:
            from scipy.spatial import cKDTree

            self.points = _check_sky(points, "points")
            self._tree = cKDTree(_unit_vectors(self.points))
        else:
            self.points = check_vectors(points, where="radius search", field="points")
            self._max_sq_norm = float(np.max(np.einsum("ij,ij->i", self.points, self.points), initial=0.0))

    @property
    def on_sky(self) -> bool:
        return self.metric in SKY_METRICS

    def __len__(self) -> int:
        return len(self.points)

    def bubble(self, centres: Any, radius: Any) -> Neighbourhoods:
        """Points with d ≤ ``radius`` (scalar or one per centre; arcsec on the sky)."""
        return self._within(centres, -np.inf, radius, upper_inclusive=True)

    def shell(self, centres: Any, r_min: Any, r_max: Any) -> Neighbourhoods:
        """Points with ``r_min`` ≤ d < ``r_max`` (scalars or one per centre; arcsec on the sky)."""
        return self._within(centres, r_min, r_max, upper_inclusive=False)

    def nearest(self, centres: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` nearest points of each centre: (distances (q, n), indices (q, n)); the n-th is last."""
        if not 1 <= n <= len(self.points):
            raise ConfigError(f"n must lie in [1, {len(self.points)}], not {n}")
        centres = self._centres(centres)
        if self.on_sky:
            chord, _ = self._tree.query(_unit_vectors(centres), k=n)
            chord = np.asarray(chord, np.float64).reshape(len(centres), n)
            qi, bi, d = self._sky_candidates(centres, chord[:, -1])
        else:  # the n-th distance of a matmul search bounds the candidates; the exact distances decide
            import torch

            nth, _ = exact_search(
                centres,
                self.points,
                n,
                metric=self._search_metric,
                batch_size=self.batch_size,
                chunk_size=self.chunk_size,
                device=self.device,
                dtype=torch.float64,
            )
            qi, bi, d = self._candidates(centres, nth[:, -1])
        distances, indices = _group(qi, bi, d, len(centres))
        return np.stack([x[:n] for x in distances]), np.stack([x[:n] for x in indices])

    # -- internals ------------------------------------------------------------------------------
    @property
    def _search_metric(self) -> str:
        return "l2" if self.metric == "euclidean" else "cosine"

    def _within(self, centres: Any, r_min: Any, r_max: Any, *, upper_inclusive: bool) -> Neighbourhoods:
        centres = self._centres(centres)
        low = _per_centre(r_min, len(centres), "r_min")
        high = _per_centre(r_max, len(centres), "r_max")
        if (high < low).any():
            raise ConfigError("shell needs r_min <= r_max")
        qi, bi, d = self._candidates(centres, high)
        keep = (d <= high[qi] if upper_inclusive else d < high[qi]) & (d >= low[qi])
        return _group(qi[keep], bi[keep], d[keep], len(centres))

    def _centres(self, centres: Any) -> np.ndarray:
        if self.on_sky:
            return _check_sky(centres, "centres")
        return check_vectors(
            centres, where="radius search", field="centres", dim=self.points.shape[1]
        ).astype(np.float64)

    def _candidates(
        self, centres: np.ndarray, radius: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centre index, point index, distance) of every point that may lie within ``radius``."""
        if self.on_sky:
            theta = np.minimum(np.maximum(radius, 0.0) / ARCSEC_PER_RAD, np.pi)
            return self._sky_candidates(centres, 2.0 * np.sin(theta / 2.0))
        import torch

        radius_t = torch.as_tensor(self._padded(centres, radius))
        parts = [(np.empty(0, np.int64), np.empty(0, np.int64))]
        for q_start, b_start, dist in iter_distance_blocks(
            centres,
            self.points,
            metric=self._search_metric,
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            device=self.device,
            dtype=torch.float64,
        ):
            q, b = torch.nonzero(dist.cpu() <= radius_t[q_start : q_start + len(dist), None], as_tuple=True)
            parts.append((q.numpy() + q_start, b.numpy() + b_start))
        qi, bi = (np.concatenate(p) for p in zip(*parts))
        d = np.empty(len(qi))
        step = max(1, _PAIRS_PER_BLOCK // self.points.shape[1])
        for lo in range(0, len(qi), step):
            pairs = slice(lo, lo + step)
            d[pairs] = pair_distances(centres[qi[pairs]], self.points[bi[pairs]], self._search_metric)
        return qi, bi, d

    def _padded(self, centres: np.ndarray, radius: np.ndarray) -> np.ndarray:
        """``radius`` widened by a bound on the rounding of the matmul-form distance of ``centres``."""
        radius = np.maximum(radius, 0.0)
        tolerance = _MATMUL_ROUNDING * (self.points.shape[1] + 2)
        if self.metric == "cosine":
            return radius + tolerance
        scale = np.einsum("ij,ij->i", centres, centres) + self._max_sq_norm
        return np.sqrt(radius**2 + tolerance * scale)

    def _sky_candidates(
        self, centres: np.ndarray, chord: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        padded = chord * (1.0 + _PAD) + 1e-12
        lists = self._tree.query_ball_point(_unit_vectors(centres), r=padded)
        counts = np.array([len(c) for c in lists], np.int64)
        qi = np.repeat(np.arange(len(centres)), counts)
        bi = (
            np.concatenate([np.asarray(c, np.int64) for c in lists])
            if counts.sum()
            else np.empty(0, np.int64)
        )
        d = angular_distance(
            centres[qi, 0], centres[qi, 1], self.points[bi, 0], self.points[bi, 1], method=self.metric
        )
        return qi, bi, d


def _group(qi: np.ndarray, bi: np.ndarray, d: np.ndarray, n_centres: int) -> Neighbourhoods:
    order = np.lexsort((bi, d, qi))
    qi, bi, d = qi[order], bi[order], d[order]
    bounds = np.searchsorted(qi, np.arange(n_centres + 1))
    return (
        [d[a:b] for a, b in itertools.pairwise(bounds)],
        [bi[a:b].astype(np.int64) for a, b in itertools.pairwise(bounds)],
    )


def _per_centre(value: Any, n: int, name: str) -> np.ndarray:
    array = np.asarray(value, np.float64)
    if array.ndim == 0:
        return np.full(n, float(array))
    if array.shape != (n,):
        raise ConfigError(f"{name} must be a scalar or one value per centre ({n}), not shape {array.shape}")
    return array


def _check_sky(values: Any, field: str) -> np.ndarray:
    array = np.asarray(values, np.float64)
    if array.ndim == 1 and array.shape == (2,):
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != 2:
        raise DataFormatError(
            None,
            "sky positions must be (n, 2) RA, Dec in degrees",
            field=field,
            expected="(n, 2)",
            found=array.shape,
        )
    bad = ~np.isfinite(array).all(axis=1) | (np.abs(array[:, 1]) > 90.0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            None,
            f"invalid sky position in row {row}",
            field=field,
            expected="finite RA, |Dec| <= 90 deg",
            found=tuple(array[row]),
        )
    return array


def _unit_vectors(radec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(radec[:, 0]), np.radians(radec[:, 1])
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)
