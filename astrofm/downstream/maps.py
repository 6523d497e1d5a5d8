"""UMAP maps of embeddings: 2-D projections, reproducible with a seed and cached on disk.

The cache key is the SHA-256 of the embeddings and the UMAP parameters, so a cached map is reused
only for the same vectors; maps are stored as ``umap-<key>.npy`` (plain float32, no pickle).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.downstream.validation import check_vectors
from astrofm.errors import ConfigError
from astrofm.utils.atomic import atomic_path

log = logging.getLogger(__name__)

_MIN_OBJECTS = 4


def umap_projection(
    X: Any,
    *,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """(n, 2) float32 UMAP coordinates of the rows of ``X``; the same seed gives the same map.

    With ``cache_dir`` the map is read from / written to ``cache_dir/umap-<key>.npy``. It needs at least
    4 objects: UMAP's spectral initial layout takes 3 eigenvectors of the n × n neighbour graph.
    """
    import umap

    X = check_vectors(X, where="UMAP input", field="X")
    if len(X) < _MIN_OBJECTS:
        raise ConfigError(f"a UMAP map needs at least {_MIN_OBJECTS} objects, not {len(X)}")
    params = {
        "seed": seed,
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
        "metric": metric,
        "umap": umap.__version__,
    }
    path = None
    if cache_dir is not None:
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
        digest.update(str(X.shape).encode())
        digest.update(np.ascontiguousarray(X).tobytes())
        path = Path(cache_dir) / f"umap-{digest.hexdigest()[:24]}.npy"
        if path.is_file():
            log.info("UMAP map from cache %s", path)
            return np.load(path, allow_pickle=False)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, len(X) - 1),
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_jobs=1,
    )
    xy = reducer.fit_transform(X).astype(np.float32)
    if path is not None:
        with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, xy, allow_pickle=False)
    return xy
